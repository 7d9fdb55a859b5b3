package cooperchi_test

import (
	"fmt"
	"net"
	"net/http/httptest"

	"github.com/go-chi/chi/v5"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperchi"
	"lowbit.dev/cooper/internal/testkit"
)

// A chi route whose handler reads its URL parameter after the upgrade.
func ExampleHandler() {
	u := cooper.New(cooper.Protocols("websocket"))
	r := chi.NewRouter()
	r.Get("/rooms/{room}/ws", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		fmt.Fprintf(conn, "welcome to %s\n", chi.URLParam(hs.Request, "room"))
	}))
	srv := httptest.NewServer(r)
	defer srv.Close()

	fmt.Print(testkit.FirstLine(srv.URL + "/rooms/lobby/ws")) // what a client of cooper.Dial reads
	// Output:
	// welcome to lobby
}
