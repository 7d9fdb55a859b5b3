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
	"io"
	"log"
	"net/http"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergobwas"
	"lowbit.dev/cooper/examples/internal/serve"
)

func main() { serve.Main(run) }

// run serves the page and the room on addr until ctx is done, as
// serve.Run says: at the end everyone in the room is told goodbye.
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

	return serve.Server{Upgrader: u, Handler: mux}.ListenAndServe(ctx, addr, out)
}
