package wsclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"

	"lowbit.dev/cooper/internal/testkit"
	"lowbit.dev/cooper/internal/testkit/wsclient"
)

// TestMain fails the run when a test leaves a goroutine of net/http's or
// of one of the libraries behind.
func TestMain(m *testing.M) { testkit.Main(m, "gorilla/websocket", "coder/websocket", "gobwas/ws") }

// startGorilla starts a gorilla/websocket server that speaks subprotocol
// v1 and permessage-deflate and echoes every message, except that it
// answers "flip" with a binary message, and returns its ws URL.
func startGorilla(t *testing.T) string {
	t.Helper()
	u := gorilla.Upgrader{Subprotocols: []string{"v1"}, EnableCompression: true}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, p, err := c.ReadMessage()
			if string(p) == "flip" {
				typ = gorilla.BinaryMessage
			}
			if err != nil || c.WriteMessage(typ, p) != nil {
				return // gorilla has answered a close frame with its code
			}
		}
	}))
	t.Cleanup(s.Close)
	return "ws" + strings.TrimPrefix(s.URL, "http")
}

// TestDialers has each client agree on a subprotocol and compression,
// exchange messages with an echo, see Exchange fail on an echo of the
// wrong type, and close; then, on a second connection, see Close fail on a
// data message that comes before the server's close frame, unless it is
// coder's.
func TestDialers(t *testing.T) {
	const both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	for _, c := range []struct {
		name       string
		dial       wsclient.Dialer
		extensions string
		skipsData  bool // Close skips a data message before the close frame
	}{
		{"gorilla", wsclient.Gorilla(false), "", false},
		{"gorilla, compressing", wsclient.Gorilla(true), both, false},
		{"coder", wsclient.Coder(coder.CompressionDisabled), "", true},
		{"coder, compressing", wsclient.Coder(coder.CompressionNoContextTakeover), both, true},
		{"gobwas", wsclient.Gobwas(false), "", false},
		{"gobwas, compressing", wsclient.Gobwas(true), both, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			url := startGorilla(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cl, err := c.dial(ctx, url, "v0", "v1")
			if err != nil {
				t.Fatal(err)
			}
			if got := cl.Subprotocol(); got != "v1" {
				t.Errorf("Subprotocol() = %q, want v1", got)
			}
			if got := cl.Extensions(); got != c.extensions {
				t.Errorf("Extensions() = %q, want %q", got, c.extensions)
			}
			msgs := []wsclient.Message{
				{Name: "text", Data: []byte(strings.Repeat("hello ✓ ", 100))},
				{Name: "binary", Binary: true, Data: []byte{0, 1, 0xfe, 0xff}},
			}
			if err := wsclient.Exchange(ctx, cl, msgs); err != nil {
				t.Error(err)
			}
			err = wsclient.Exchange(ctx, cl, []wsclient.Message{{Name: "flip", Data: []byte("flip")}})
			if want := "echo of flip: binary true, 4 bytes; want binary false, the 4 bytes sent"; err == nil || err.Error() != want {
				t.Errorf("Exchange of a message echoed as binary = %v, want %q", err, want)
			}
			if err := cl.Close(ctx, 4000, "bye"); err != nil {
				t.Errorf("Close: %v", err)
			}

			cl, err = c.dial(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.Send(ctx, msgs[0]); err != nil {
				t.Fatal(err)
			}
			if err := cl.Close(ctx, 1000, ""); (err == nil) != c.skipsData {
				t.Errorf("Close with an echo unread = %v, want an error: %v", err, !c.skipsData)
			}
		})
	}
}
