package testkit

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"lowbit.dev/cooper"
)

// ServeH2 serves h, whose upgrades go through u, on a loopback server with
// TLS and HTTP/2. When the test ends it closes the server and shuts u down
// (within 5 s), failing the test if that does not go cleanly. Extended
// CONNECT works only in a process started with it turned on (see
// InExtendedConnectProcess).
func ServeH2(t testing.TB, u *cooper.Upgrader, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = true
	s.StartTLS()
	t.Cleanup(func() {
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := u.Shutdown(ctx); err != nil {
			t.Errorf("Upgrader.Shutdown: %v", err)
		}
	})
	return s
}

// ConnectH2 opens a WebSocket to url as an extended CONNECT over HTTP/2
// (RFC 8441), with golang.org/x/net/http2's client and the TLS
// configuration cfg, as Chromium does against a server that announces it,
// with header's fields besides :protocol and Sec-WebSocket-Version. It
// returns the response and the stream, whose Close ends the client's side
// and which the test's cleanup closes; it fails the test when the request
// fails.
func ConnectH2(t testing.TB, cfg *tls.Config, url string, header http.Header) (*http.Response, io.ReadWriteCloser) {
	t.Helper()
	tr := &http2.Transport{TLSClientConfig: cfg}
	t.Cleanup(tr.CloseIdleConnections)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	for name, values := range header {
		for _, v := range values {
			req.Header.Add(name, v)
		}
	}
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("extended CONNECT: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, struct {
		io.Reader
		io.WriteCloser
	}{resp.Body, pw}
}

// RoomEcho is a handler's part of CheckRoomOverH2: it writes room on a
// line of its own, then echoes what it reads until the client ends its
// side, and closes conn.
func RoomEcho(conn net.Conn, room string) {
	defer conn.Close()
	io.WriteString(conn, room+"\n")
	io.Copy(conn, conn)
}

// CheckRoomOverH2 serves h, whose upgrades go through u, with ServeH2 and
// opens a WebSocket to its /rooms/r7/ws with ConnectH2, which must be
// answered with status. For 200 the handler must be RoomEcho for the
// route's room parameter: the check reads "r7", then an echo, and returns
// the stream; for any other status it returns nil.
func CheckRoomOverH2(t testing.TB, u *cooper.Upgrader, h http.Handler, status int) io.ReadWriteCloser {
	t.Helper()
	s := ServeH2(t, u, h)
	resp, stream := ConnectH2(t, s.Client().Transport.(*http.Transport).TLSClientConfig, s.URL+"/rooms/r7/ws", http.Header{"Origin": {s.URL}})
	if resp.StatusCode != status {
		t.Fatalf("status = %s, want %d", resp.Status, status)
	}
	if status != http.StatusOK {
		return nil
	}
	const msg = "hello over a stream"
	if _, err := stream.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("r7\n"+msg))
	if _, err := io.ReadFull(stream, got); err != nil || string(got) != "r7\n"+msg {
		t.Fatalf("read %q, %v; want the room's name, then the echo", got, err)
	}
	return stream
}
