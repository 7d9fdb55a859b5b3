package cooper_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"lowbit.dev/cooper"
)

// wss to a server whose certificate a private CA signed, here httptest's:
// WithTLSConfig gives Dial the roots that trust it. The server name
// checked is the URL's host, 127.0.0.1, which the certificate names.
func ExampleWithTLSConfig() {
	srv := httptest.NewTLSServer(cooper.Hijack(func(conn net.Conn, proto string) {
		defer conn.Close()
		io.WriteString(conn, "hello over TLS\n")
	}, cooper.Protocols("websocket")))
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	req, _ := http.NewRequest("GET", "wss"+strings.TrimPrefix(srv.URL, "https"), nil)
	conn, err := cooper.Dial(req, cooper.WithTLSConfig(&tls.Config{RootCAs: roots}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	line, _ := bufio.NewReader(conn).ReadString('\n')
	fmt.Printf("%T: %s", conn, line)
	// Output: *tls.Conn: hello over TLS
}

// WithResponseValidator checks what cooper does not know to: here the
// client needs a server that announces version 2 of the application's
// protocol in a header of the 101, and this one announces 1.
func ExampleWithResponseValidator() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket"),
		cooper.ResponseHeaders(func(r *http.Request, proto string) http.Header {
			return http.Header{"X-Chat-Version": {"1"}}
		})))
	defer srv.Close()

	errOldServer := errors.New("the server speaks an older chat")
	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	_, err := cooper.Dial(req, cooper.WithUpgradeOptions(
		cooper.WithResponseValidator(func(req *http.Request, resp *http.Response) error {
			if resp.Header.Get("X-Chat-Version") != "2" {
				return errOldServer
			}
			return nil
		})))
	fmt.Println(errors.Is(err, cooper.ErrResponseValidator), errors.Is(err, errOldServer))
	fmt.Println(err)
	// Output:
	// true true
	// cooper: response validator: the server speaks an older chat
}

// Dial through an HTTP proxy, which it asks to CONNECT to the server.
// WithProxy names it; the default, http.ProxyFromEnvironment, reads
// HTTPS_PROXY and HTTP_PROXY and never proxies a loopback address. The
// proxy here is a minimal one on loopback that tunnels every CONNECT.
func ExampleWithProxy() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) {
		defer conn.Close()
		io.WriteString(conn, "hello through the proxy\n")
	}, cooper.Protocols("websocket")))
	defer srv.Close()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("proxy:", r.Method, r.Host == srv.Listener.Addr().String())
		server, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer server.Close()
		client, buffered, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer client.Close()
		io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")
		go io.Copy(server, buffered) // ends when the client closes
		io.Copy(client, server)      // ends when the server closes
	}))
	defer proxy.Close()

	proxyURL, _ := url.Parse(proxy.URL)
	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	conn, err := cooper.Dial(req, cooper.WithProxy(http.ProxyURL(proxyURL)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	line, _ := bufio.NewReader(conn).ReadString('\n')
	fmt.Print(line)
	// Output:
	// proxy: CONNECT true
	// hello through the proxy
}
