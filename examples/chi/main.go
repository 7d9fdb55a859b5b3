// Chi serves the WebSocket echo behind chi's middleware: at /ws every
// message comes back unchanged, and at /rooms/{room}/ws after the room's
// name.
//
//	go run ./examples/chi [-addr 127.0.0.1:8080]
//
// cooperchi.Handler registers the upgrade as a chi route; the handler reads
// the room with chi.URLParam after the upgrade, and the request ID that
// middleware.RequestID set.
package main

import (
	"context"
	"io"
	"log"
	"net"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperchi"
	"lowbit.dev/cooper/examples/internal/serve"
	"lowbit.dev/cooper/examples/internal/wsecho"
)

func main() { serve.Main(run) }

// run serves the echo behind chi's middleware on addr until ctx is done,
// as serve.Run says, and writes a log line per request to out.
func run(ctx context.Context, addr string, out io.Writer) error {
	u := cooper.New(wsecho.Options()...) // as in examples/echo
	r := chi.NewRouter()
	r.Use(
		middleware.RequestID,
		middleware.RealIP, // trusts X-Forwarded-For and X-Real-IP: only behind a proxy of yours
		middleware.RequestLogger(&middleware.DefaultLogFormatter{Logger: log.New(out, "", log.LstdFlags), NoColor: true}),
		middleware.Recoverer,
	)
	r.Get("/ws", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
		echo(conn, hs, "")
	}))
	r.Get("/rooms/{room}/ws", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
		echo(conn, hs, chi.URLParam(hs.Request, "room")+": ")
	}))

	return serve.Server{Upgrader: u, Handler: r}.ListenAndServe(ctx, addr, out)
}

// echo echoes the messages of one WebSocket after prefix, and logs how it
// ended with the request's ID.
func echo(conn net.Conn, hs *cooper.Handshake, prefix string) {
	if err := wsecho.Serve(conn, hs, prefix); err != nil {
		log.Printf("[%s] %v", middleware.GetReqID(hs.Request.Context()), err)
	}
}
