// H2 serves the echo of examples/echo over TLS with HTTP/2, where browsers
// open WebSockets as extended CONNECTs on the connection they already have
// (RFC 8441), and over HTTP/1.1 for clients that do not.
//
//	go run ./examples/h2 [-addr 127.0.0.1:8080] [-cert cert.pem -key key.pem]
//
// Without -cert and -key it makes a self-signed certificate for the
// loopback names at start, which a browser warns about. For every WebSocket
// it prints how it came, for instance
//
//	websocket over HTTP/2.0 (extended CONNECT) from 127.0.0.1:53012
//
// Go's HTTP/2 server announces extended CONNECT only in a process started
// with GODEBUG=http2xconnect=1, so when the environment does not say so
// this program starts itself again with it.
package main

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/page"
	"lowbit.dev/cooper/examples/internal/serve"
	"lowbit.dev/cooper/examples/internal/tlsserve"
	"lowbit.dev/cooper/examples/internal/wsecho"
)

func main() { tlsserve.Main("cooper h2 example", run) }

// run serves the page and the echo on addr until ctx is done, as
// tlsserve.Run says, and writes a line for every WebSocket to out.
func run(ctx context.Context, addr string, cert tls.Certificate, out io.Writer) error {
	u := cooper.New(wsecho.Options()...) // as in examples/echo
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", page.Serve)
	// The same handler takes the WebSockets of every HTTP version; it
	// prints how each came.
	mux.Handle("/ws", u.Handler(wsecho.Announced(out)))

	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}}
	return serve.Server{Upgrader: u, Handler: mux, TLS: tlsConfig}.ListenAndServe(ctx, addr, out)
}
