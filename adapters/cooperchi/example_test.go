package cooperchi_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/go-chi/chi/v5"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperchi"
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

	req, _ := http.NewRequest("GET", srv.URL+"/rooms/lobby/ws", nil)
	conn, err := cooper.Dial(req, cooper.WithProtocol("websocket"))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	line, _ := bufio.NewReader(conn).ReadString('\n')
	fmt.Print(line)
	// Output:
	// welcome to lobby
}
