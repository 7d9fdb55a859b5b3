package cooperchi_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"golang.org/x/net/http2"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperchi"
	"lowbit.dev/cooper/internal/testkit"
)

// TestHTTP2 opens a WebSocket over HTTP/2 (RFC 8441) through chi, with
// golang.org/x/net/http2's client: the upgrade is a CONNECT, so a route
// registered with Connect as well as Get serves it, behind Logger and
// Compress, with its parameters; one registered with Get alone answers
// chi's 405, as the package documentation warns.
func TestHTTP2(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	for _, tt := range []struct {
		name    string
		connect bool
		status  int
	}{
		{"a route for GET and CONNECT serves the extended CONNECT", true, http.StatusOK},
		{"a route for GET alone answers 405", false, http.StatusMethodNotAllowed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := cooper.New(cooper.Protocols("websocket"))
			r := chi.NewRouter()
			r.Use(middleware.RequestLogger(&middleware.DefaultLogFormatter{Logger: discard{}, NoColor: true}), middleware.Compress(5))
			h := cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				io.WriteString(conn, chi.URLParam(hs.Request, "room")+"\n")
				io.Copy(conn, conn)
			})
			r.Get("/rooms/{room}/ws", h)
			if tt.connect {
				r.Connect("/rooms/{room}/ws", h)
			}
			s := httptest.NewUnstartedServer(r)
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
		})
	}
}

// discard is a chi logger that drops what it is given.
type discard struct{}

func (discard) Print(...any) {}
