// Echo serves a WebSocket echo at /ws and, at /, a page that talks to it.
//
//	go run ./examples/echo [-addr 127.0.0.1:8080]
//
// cooper answers the handshake, agreeing on the echo.v1 subprotocol and on
// permessage-deflate; coopergobwas (github.com/gobwas/ws) then frames every
// message, text or binary, and sends it back unchanged.
package main

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/page"
	"lowbit.dev/cooper/examples/internal/serve"
	"lowbit.dev/cooper/examples/internal/wsecho"
)

func main() { serve.Main(run) }

// run serves the page and the echo on addr until ctx is done; serve.Run
// says what it prints and how it stops.
func run(ctx context.Context, addr string, out io.Writer) error {
	u := cooper.New(
		cooper.Protocols("websocket"),
		cooper.Subprotocols("echo.v1"),
		cooper.Deflate(wsecho.Deflate),
		cooper.OnError(func(err error) { log.Print(err) }),
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", page.Serve)
	mux.Handle("/ws", u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		if err := wsecho.Serve(conn, hs, ""); err != nil {
			log.Printf("%s: %v", conn.RemoteAddr(), err)
		}
	}))

	return serve.Server{Upgrader: u, Handler: mux}.ListenAndServe(ctx, addr, out)
}
