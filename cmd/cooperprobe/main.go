// Cooperprobe checks a WebSocket server's opening handshake against RFC
// 6455, RFC 7692 (permessage-deflate), RFC 8441 (WebSockets over HTTP/2)
// and RFC 9110, whatever the server is written in.
//
//	cooperprobe [-json] [-h2] [-run RE] [-origin O] [-subprotocol S] [-header H] [-timeout D] URL
//
// It runs each case on fresh connections, writing requests as bytes, and
// prints one line a case (or, with -json, one JSON object a line with id,
// title, rfc, result and detail), then the summary line
// "N passed, N failed, N warned, N skipped". The exit status is 1 when a
// case failed, 2 on a usage error. The cases that exchange messages need
// an endpoint that echoes every message; without one they are skipped.
//
// Install it with
//
//	go install lowbit.dev/cooper/cmd/cooperprobe@latest
package main

import (
	"context"
	"os"
	"os/signal"

	"lowbit.dev/cooper/cmd/cooperprobe/probe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(probe.Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
