// Package serve is what the examples' main packages share: the command
// line and signals of main, and an http.Server that starts, says where it
// listens, and shuts down with its Upgrader.
package serve

import (
	"context"
	"flag"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
)

// A Run is an example's server, which Main runs, and the examples' tests
// too (wstest.Start). It serves on addr until ctx is done, and writes
// "listening on http://ADDR" (https:// over TLS) to out once it listens:
// its first line, unless the example says it prints others before. Then
// it stops taking requests, has every upgraded connection told goodbye,
// and waits for them, 10 s at most, as [Server] does unless the example
// says otherwise. It returns nil when all of that went cleanly.
type Run func(ctx context.Context, addr string, out io.Writer) error

// Main is an example's main function. It parses the command line, with
// the flags the example defined and -addr (host:port to listen on, default
// 127.0.0.1:8080; an example may define -addr itself to say more), then
// calls run with a context that ends on SIGINT or SIGTERM, the address and
// standard output. If run fails, Main logs the error and exits with 1.
func Main(run Run) {
	if flag.Lookup("addr") == nil {
		flag.String("addr", "127.0.0.1:8080", "`host:port` to listen on")
	}
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, flag.Lookup("addr").Value.String(), os.Stdout); err != nil {
		log.Fatal(err)
	}
}
