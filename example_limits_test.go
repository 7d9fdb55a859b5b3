package cooper_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"lowbit.dev/cooper"
)

// A server in a reconnect storm sheds the excess early and cheaply. Here
// the rate is one upgrade a minute with no burst, so of two clients that
// come at once the second is refused: it gets 503 Service Unavailable with
// Retry-After: 60 or so, when the bucket holds a token again.
func ExampleUpgradeRate() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket"), cooper.UpgradeRate(1.0/60, 1)))
	defer srv.Close()

	for _, client := range []string{"first", "second"} {
		req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		conn, err := cooper.Dial(req)
		if err != nil {
			fmt.Println(client, "refused:", err)
			continue
		}
		conn.Close()
		fmt.Println(client, "upgraded")
	}
	// Output:
	// first upgraded
	// second refused: cooper: status: "503 Service Unavailable" is not 101 Switching Protocols; body "cooper: UpgradeRate: more upgrades than 0.01667 a second"
}

// MaxConnections keeps the Upgrader's connections under the process's
// open-file limit. Here it holds two; the third client gets 503 Service
// Unavailable with a Retry-After of 5 to 10 seconds.
func ExampleMaxConnections() {
	u := cooper.New(cooper.Protocols("lines/1"), cooper.MaxConnections(2))
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		io.Copy(io.Discard, conn) // until the client closes
	}))
	defer srv.Close()

	var refused error
	for refused == nil {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		conn, err := cooper.Dial(req, cooper.WithProtocol("lines/1"))
		if err == nil {
			defer conn.Close()
		}
		refused = err
	}
	fmt.Println("held:", u.Stats().Active)
	fmt.Println(refused)
	// Output:
	// held: 2
	// cooper: status: "503 Service Unavailable" is not 101 Switching Protocols; body "cooper: MaxConnections: 2 connections are open"
}

// MaxConnectionsPerClient keeps one client from taking every connection.
// Here a client address may hold one at a time: while the first
// connection is open, a second from the same address gets 429 Too Many
// Requests with a Retry-After of 5 to 10 seconds.
func ExampleMaxConnectionsPerClient() {
	u := cooper.New(cooper.Protocols("websocket"), cooper.MaxConnectionsPerClient(1))
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		io.Copy(io.Discard, conn) // until the client closes
	}))
	defer srv.Close()

	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	first, err := cooper.Dial(req)
	if err != nil {
		panic(err)
	}
	defer first.Close()
	_, err = cooper.Dial(req)
	fmt.Println(err)
	// Output:
	// cooper: status: "429 Too Many Requests" is not 101 Switching Protocols; body "cooper: MaxConnectionsPerClient: 127.0.0.1 holds 1 connections"
}

// Behind a reverse proxy every request comes from the proxy's address, so
// MaxConnectionsPerClient counts by the client address the proxy names in
// X-Forwarded-For, from the proxies TrustedProxies lists. Here the client
// on 127.0.0.1 plays the proxy: two clients behind it are upgraded, and a
// client that already holds its one connection is refused with 429 even
// when it writes a made-up address of its own in front of the proxy's.
func ExampleTrustedProxies() {
	u := cooper.New(cooper.Protocols("websocket"),
		cooper.MaxConnectionsPerClient(1), cooper.TrustedProxies("127.0.0.0/8"))
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		io.Copy(io.Discard, conn) // until the client closes
	}))
	defer srv.Close()

	for _, forwardedFor := range []string{"203.0.113.7", "198.51.100.9", "192.0.2.1, 203.0.113.7"} {
		req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		req.Header.Set("X-Forwarded-For", forwardedFor)
		conn, err := cooper.Dial(req)
		if err != nil {
			fmt.Printf("%s: %v\n", forwardedFor, err)
			continue
		}
		defer conn.Close()
		fmt.Printf("%s: upgraded\n", forwardedFor)
	}
	// Output:
	// 203.0.113.7: upgraded
	// 198.51.100.9: upgraded
	// 192.0.2.1, 203.0.113.7: cooper: status: "429 Too Many Requests" is not 101 Switching Protocols; body "cooper: MaxConnectionsPerClient: 203.0.113.7 holds 1 connections"
}
