package cooperchi_test

import (
	"net"
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
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
	t.Run("a route for GET and CONNECT serves the extended CONNECT", func(t *testing.T) {
		testHTTP2(t, true, http.StatusOK)
	})
	t.Run("a route for GET alone answers 405", func(t *testing.T) {
		testHTTP2(t, false, http.StatusMethodNotAllowed)
	})
}

func testHTTP2(t *testing.T, connect bool, status int) {
	u := cooper.New(cooper.Protocols("websocket"))
	r := chi.NewRouter()
	r.Use(middleware.RequestLogger(&middleware.DefaultLogFormatter{Logger: discard{}, NoColor: true}), middleware.Compress(5))
	h := cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
		testkit.RoomEcho(conn, chi.URLParam(hs.Request, "room"))
	})
	r.Get("/rooms/{room}/ws", h)
	if connect {
		r.Connect("/rooms/{room}/ws", h)
	}
	testkit.CheckRoomOverH2(t, u, r, status)
}

// discard is a chi logger that drops what it is given.
type discard struct{}

func (discard) Print(...any) {}
