package guide

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/wstest"
	"lowbit.dev/cooper/internal/testkit"
)

func TestMain(m *testing.M) { wstest.Main(m) }

// guidePath is the guide whose code this package holds.
const guidePath = "../../../docs/migrating-from-gorilla.md"

// TestGuideCodeCompiles checks that every Go block of the guide is, as
// written, in one of this package's files, which the build compiles.
func TestGuideCodeCompiles(t *testing.T) {
	guide, err := os.ReadFile(guidePath)
	if err != nil {
		t.Fatal(err)
	}
	var code strings.Builder
	for _, name := range []string{"gorilla.go", "coder.go", "cooper.go"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		code.Write(b)
	}
	n := 0
	for rest := string(guide); ; n++ {
		var ok bool
		if _, rest, ok = strings.Cut(rest, "```go\n"); !ok {
			break
		}
		var block string
		block, rest, _ = strings.Cut(rest, "```\n")
		if !strings.Contains(code.String(), block) {
			t.Errorf("this block of the guide is in none of gorilla.go, coder.go, cooper.go:\n%s", block)
		}
	}
	if n < 5 {
		t.Errorf("the guide has %d Go blocks, want the 5 or more it was written with", n)
	}
}

// dial connects a gorilla client offering chat.v1 then chat.v2, from
// origin ("" for none), with compression; it returns the connection, or
// the refusal.
func dial(t *testing.T, url, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, EnableCompression: true, Subprotocols: []string{"chat.v1", "chat.v2"}}
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	conn, resp, err := d.Dial(url, h)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	}
	return conn, resp, err
}

// TestGuide runs the guide's servers, gorilla's, coder's and cooper's, with
// a gorilla client and checks what the guide says of them: they echo, they
// agree on different subprotocols, cross-origin requests are refused, and
// cooper's says goodbye on shutdown.
func TestGuide(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/gorilla", serveGorilla)
	mux.HandleFunc("/coder", serveCoder)
	mux.Handle("/cooper", serveCooper)
	mux.HandleFunc("/accept", serveAccept)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ws := "ws" + strings.TrimPrefix(srv.URL, "http")

	for _, tc := range []struct {
		path, subprotocol string
	}{
		{"/gorilla", "chat.v2"}, // the server's first
		{"/coder", "chat.v2"},   // the server's first
		{"/cooper", "chat.v1"},  // the client's first
		{"/accept", "chat.v1"},
	} {
		t.Run(tc.path[1:]+" echoes and agrees on "+tc.subprotocol, func(t *testing.T) {
			conn, resp, err := dial(t, ws+tc.path, "https://app.example")
			if err != nil {
				t.Fatal(err)
			}
			if conn.Subprotocol() != tc.subprotocol {
				t.Errorf("subprotocol %q, want %q", conn.Subprotocol(), tc.subprotocol)
			}
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
				t.Errorf("Sec-WebSocket-Extensions %q, want permessage-deflate", ext)
			}
			for _, msg := range []string{"hello", strings.Repeat("compressible ", 30)} {
				conn.WriteMessage(websocket.TextMessage, []byte(msg))
				if typ, got, err := conn.ReadMessage(); err != nil || typ != websocket.TextMessage || string(got) != msg {
					t.Fatalf("echo of %.20q: %d %.20q %v", msg, typ, got, err)
				}
			}
			conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Errorf("after the client's close: %v, want close 1000", err)
			}
		})
	}

	for _, path := range []string{"/gorilla", "/coder", "/cooper"} {
		t.Run(path[1:]+" refuses a page on another site with 403", func(t *testing.T) {
			_, resp, err := dial(t, ws+path, "https://evil.example")
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("dial: %v, %v; want 403", err, resp)
			}
			if path != "/coder" && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q, want the JSON of the refusal handler", resp.Header.Get("Content-Type"))
			}
		})
	}

	t.Run("serverOrder agrees on the server's first, as gorilla does", func(t *testing.T) {
		u := cooper.New(cooper.Protocols("websocket"), serverOrder("chat.v2", "chat.v1"))
		s := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) { conn.Close() }))
		defer s.Close()
		conn, _, err := dial(t, "ws"+strings.TrimPrefix(s.URL, "http"), "")
		if err != nil {
			t.Fatal(err)
		}
		if conn.Subprotocol() != "chat.v2" {
			t.Errorf("subprotocol %q, want chat.v2", conn.Subprotocol())
		}
	})

	t.Run("cooper's handler says goodbye when the server shuts down", func(t *testing.T) {
		// Shutting u down is for good: it is done in a process of its own.
		if !testkit.InChildProcess(t, "COOPER_GUIDE_SHUTDOWN", "1") {
			return
		}
		conn, _, err := dial(t, ws+"/cooper", "https://app.example")
		if err != nil {
			t.Fatal(err)
		}
		conn.WriteMessage(websocket.TextMessage, []byte("before"))
		if _, _, err := conn.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		stopped := make(chan error, 1)
		go func() { stopped <- shutdown(srv.Config) }()
		if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("during the shutdown the client read %v, want close 1001", err)
		}
		if err := testkit.Recv(t, stopped); err != nil {
			t.Errorf("shutdown = %v", err)
		}
	})
}
