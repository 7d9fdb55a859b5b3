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
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperchi"
	"lowbit.dev/cooper/examples/internal/wsecho"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`host:port` to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run serves on addr, printing "listening on http://ADDR" to out once it
// listens, and then a log line per request, until ctx is done. Then it
// stops taking requests, says goodbye to every WebSocket, and waits for
// them, 10 s at most.
func run(ctx context.Context, addr string, out io.Writer) error {
	u := cooper.New(
		cooper.Protocols("websocket"),
		cooper.Subprotocols("echo.v1"),
		cooper.Deflate(wsecho.Deflate),
		cooper.OnError(func(err error) { log.Print(err) }),
	)
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

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(out, "listening on http://%s\n", ln.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// More than the 5 s http.Server.Shutdown waits for a connection a
	// browser opened ahead of need, so that the server stops in time.
	grace, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Stops srv and u together: http.Server.Shutdown alone neither waits
	// for nor closes upgraded connections.
	return u.ShutdownServer(grace, srv)
}

// echo echoes the messages of one WebSocket after prefix, and logs how it
// ended with the request's ID.
func echo(conn net.Conn, hs *cooper.Handshake, prefix string) {
	if err := wsecho.Serve(conn, hs, prefix); err != nil {
		log.Printf("[%s] %v", middleware.GetReqID(hs.Request.Context()), err)
	}
}
