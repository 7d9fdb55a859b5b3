package serve

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"lowbit.dev/cooper"
)

// A Server is an http.Server with the examples' limits (5 s to read a
// request's header, 16 KiB of header at most) and their way of stopping.
type Server struct {
	// Upgrader is shut down with the http.Server, by
	// Upgrader.ShutdownServer; it must be set unless Shutdown is.
	Upgrader *cooper.Upgrader
	// Handler answers the requests.
	Handler http.Handler
	// TLS, when set, has the server speak HTTPS (HTTP/2 included), with
	// its certificates.
	TLS *tls.Config
	// Grace bounds the shutdown; 10 s when zero: more than the 5 s
	// http.Server.Shutdown waits for a connection a browser opened ahead
	// of need, so that the server stops in time.
	Grace time.Duration
	// Shutdown, when set, stops srv and the upgraded connections, in
	// place of Upgrader.ShutdownServer; ctx ends after Grace.
	Shutdown func(ctx context.Context, srv *http.Server) error
	// Beside, when set, is another server that runs next to this one, on
	// a goroutine of its own, until Serve closes it once this one has shut
	// down; if it fails, Serve closes both and returns its error.
	Beside interface {
		Serve() error
		Close() error
	}
}

// ListenAndServe listens on addr over TCP, prints "listening on
// http://ADDR" (https with TLS) to out, and serves there; see Serve.
func (s Server) ListenAndServe(ctx context.Context, addr string, out io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	scheme := "http"
	if s.TLS != nil {
		scheme = "https"
	}
	fmt.Fprintf(out, "listening on %s://%s\n", scheme, ln.Addr())
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done. Then it stops taking requests,
// has every upgraded connection told goodbye, and waits for them, Grace at
// most.
func (s Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler, TLSConfig: s.TLS, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10}
	served := make(chan error, 2)
	go func() {
		if s.TLS != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	if s.Beside != nil {
		go func() { served <- s.Beside.Serve() }()
	}

	select {
	case err := <-served:
		srv.Close()
		if s.Beside != nil {
			s.Beside.Close()
		}
		return err
	case <-ctx.Done():
	}
	grace, cancel := context.WithTimeout(context.Background(), cmp.Or(s.Grace, 10*time.Second))
	defer cancel()
	var err error
	if s.Shutdown != nil {
		err = s.Shutdown(grace, srv)
	} else {
		// Stops srv and the Upgrader together: http.Server.Shutdown alone
		// neither waits for nor closes upgraded connections.
		err = s.Upgrader.ShutdownServer(grace, srv)
	}
	if s.Beside != nil {
		err = errors.Join(err, s.Beside.Close())
	}
	return err
}
