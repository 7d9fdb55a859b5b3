package coopergin_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/net/http2"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergin"
	"lowbit.dev/cooper/internal/testkit"
)

// TestHTTP2 opens a WebSocket over HTTP/2 (RFC 8441) through gin, with
// golang.org/x/net/http2's client: the upgrade is a CONNECT, so a route
// registered for CONNECT as well as GET serves it, behind gin.Logger and
// gin.Recovery, with its parameters and a middleware writing after the
// chain; one registered with GET alone answers gin's 404, as the package
// documentation warns.
func TestHTTP2(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	for _, tt := range []struct {
		name    string
		methods []string
		status  int
	}{
		{"a route for GET and CONNECT serves the extended CONNECT", []string{http.MethodGet, http.MethodConnect}, http.StatusOK},
		{"a route for GET alone answers 404", []string{http.MethodGet}, http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &testkit.LockedBuffer{}
			u := cooper.New(cooper.Protocols("websocket"))
			e := gin.New()
			e.Use(gin.LoggerWithWriter(logs), gin.RecoveryWithWriter(io.Discard))
			writesAfter := func(c *gin.Context) { c.Next(); c.String(http.StatusOK, "written after the chain") }
			e.Match(tt.methods, "/rooms/:room/ws", writesAfter, coopergin.Handler(u, func(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				io.WriteString(conn, c.Param("room")+"\n")
				io.Copy(conn, conn)
			}))
			s := httptest.NewUnstartedServer(e)
			s.EnableHTTP2 = true
			s.StartTLS()
			t.Cleanup(func() {
				s.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := u.Shutdown(ctx); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			})

			tr := &http2.Transport{TLSClientConfig: s.Client().Transport.(*http.Transport).TLSClientConfig}
			t.Cleanup(tr.CloseIdleConnections)
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			t.Cleanup(cancel)
			req, err := http.NewRequestWithContext(ctx, http.MethodConnect, s.URL+"/rooms/r7/ws", pr)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set(":protocol", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Origin", s.URL)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("extended CONNECT: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %s, want %d", resp.Status, tt.status)
			}
			if tt.status != http.StatusOK {
				return
			}
			const msg = "hello over a stream"
			if _, err := pw.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len("r7\n"+msg))
			if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != "r7\n"+msg {
				t.Fatalf("read %q, %v; want the room's name, then the echo", got, err)
			}
			pw.Close()
			if rest, err := io.ReadAll(resp.Body); len(rest) > 0 || err != nil {
				t.Errorf("after the handler: %q, %v; want the end of the stream", rest, err)
			}
			logs.WaitFor(t, "| 200 |")
		})
	}
}
