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

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/page"
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
// listens, until ctx is done. Then it stops taking requests, says goodbye
// to every WebSocket, and waits for them, 10 s at most.
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

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10}
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
