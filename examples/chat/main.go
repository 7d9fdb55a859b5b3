// Chat serves a chat room: a page at / where people type messages, and a
// WebSocket at /ws that sends every message to everyone in the room.
//
//	go run ./examples/chat [-addr 127.0.0.1:8080]
//
// It is gorilla/websocket's chat example (a hub, a reader and a writer per
// client, a broadcast, a browser page) moved to cooper: cooper answers the
// handshake, agreeing on permessage-deflate when the client offers it, and
// lowbit.dev/cooper/adapters/coopergobwas frames the messages. On SIGINT or
// SIGTERM everyone in the room is told goodbye (close code 1001).
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
	"lowbit.dev/cooper/adapters/coopergobwas"
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

// run serves the room on addr, printing "listening on http://ADDR" to out
// once it listens, until ctx is done. Then it stops taking requests, says
// goodbye to everyone in the room, and waits for them, 10 s at most.
func run(ctx context.Context, addr string, out io.Writer) error {
	u := cooper.New(
		cooper.Protocols("websocket"),
		cooper.Deflate(coopergobwas.Deflate()),
		cooper.OnError(func(err error) { log.Print(err) }),
	)
	room := newHub()
	go room.run()
	defer room.close()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", servePage)
	mux.Handle("/ws", u.Handler(room.serve))

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
