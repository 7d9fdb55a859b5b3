// Package cooperchi registers cooper upgrades as chi routes:
//
//	u := cooper.New(cooper.Protocols("websocket"))
//	r.Get("/rooms/{room}/ws", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
//		defer conn.Close()
//		join(conn, chi.URLParam(hs.Request, "room")) // a framing layer takes conn over
//	}))
//
// Over HTTP/2 an upgrade is an extended CONNECT (RFC 8441), which a route
// registered with Get alone answers with chi's 405: where the server turns
// it on, register the handler with Connect too (or with Handle; cooper
// answers other methods with 405 itself).
//
// # Middleware
//
// cooper's handler runs on a goroutine of its own once ServeHTTP has
// returned, so what a middleware does after calling its next handler
// happens at the hand-over, not when the connection ends:
//
//   - Logger, and any middleware that records the status through
//     [middleware.WrapResponseWriter], logs the upgrade as 101; a refusal
//     is logged with its own status.
//   - RequestID, RealIP and other middleware that set request values or
//     fields: hs.Request carries them.
//   - Recoverer recovers panics in the middleware chain; a panic in the
//     upgraded handler is cooper's: the connection is closed and the panic
//     goes to [cooper.OnError].
//   - Compress leaves the connection alone: the upgrade writes no body.
//     Above a writer with only Unwrap, it is stepped over in the hijack.
//   - Throttle counts handshakes in progress, not open connections: its
//     slot is released when the connection is handed over. Bound open
//     connections in the handler, for instance with a semaphore.
//   - Timeout does not limit an upgraded connection. ServeHTTP returns
//     before its deadline, so it writes no 504, and hs.Request's context
//     drops the deadline with the rest of the request's cancellation. To
//     bound a connection's life, derive a context with
//     context.WithTimeout(hs.Request.Context(), d) or set deadlines on conn.
//     Only a Timeout shorter than the handshake itself writes its 504, after
//     the hijack: a Logger between the two discards it; without one,
//     net/http drops it and logs that it did.
package cooperchi

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"reflect"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"lowbit.dev/cooper"
)

// Handler returns a chi handler that upgrades requests with u and calls h
// with the connection and what was agreed, as [cooper.Upgrader.Handler]
// does; a request that cannot be upgraded gets cooper's error response.
//
// chi reuses a request's routing context once ServeHTTP returns, which is
// before h runs, so hs.Request carries a copy of it, taken at the upgrade:
// chi.URLParam(hs.Request, name) and chi.RouteContext work in h for as long
// as it runs.
//
// Panics if u or h is nil.
func Handler(u *cooper.Upgrader, h func(conn net.Conn, hs *cooper.Handshake)) http.HandlerFunc {
	if u == nil {
		panic("cooperchi: Handler: nil Upgrader")
	}
	upgrade := u.Handler(h)
	return func(w http.ResponseWriter, r *http.Request) {
		if rctx := chi.RouteContext(r.Context()); rctx != nil {
			r = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, rctx.Clone()))
		}
		upgrade.ServeHTTP(writer{w}, r)
	}
}

// A writer is the ResponseWriter cooper upgrades through. Once the
// connection is taken over, the response belongs to it: every
// [middleware.WrapResponseWriter] in the chain records 101 for loggers and
// discards what is written later, such as middleware.Timeout's 504, so none
// of it reaches the hijacked connection.
type writer struct{ http.ResponseWriter }

func (w writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(hijacker(w.ResponseWriter)).Hijack()
	if err != nil {
		return nil, nil, err
	}
	for rw := w.ResponseWriter; ; {
		if ww, ok := rw.(middleware.WrapResponseWriter); ok {
			ww.Discard()
			ww.WriteHeader(http.StatusSwitchingProtocols)
		}
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return conn, brw, nil
		}
		rw = u.Unwrap()
	}
}

// hijacker returns the writer of rw's chain to hijack through: rw, or the
// one beneath a writer of chi's Compress that would fail, because that one
// has no Hijack of its own, with an error after which cooper could not
// answer (net/http would send an empty 200). An upgrade writes no body for
// Compress to handle.
func hijacker(rw http.ResponseWriter) http.ResponseWriter {
	for w := rw; ; {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return rw
		}
		t := reflect.TypeOf(w) // chi does not export Compress's writer
		if _, ok := u.Unwrap().(http.Hijacker); !ok && t.String() == "*middleware.compressResponseWriter" &&
			t.Elem().PkgPath() == "github.com/go-chi/chi/v5/middleware" {
			return u.Unwrap()
		}
		w = u.Unwrap()
	}
}
