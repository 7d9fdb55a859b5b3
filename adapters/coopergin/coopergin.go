// Package coopergin registers cooper upgrades as gin routes:
//
//	u := cooper.New(cooper.Protocols("websocket"))
//	r.GET("/rooms/:room/ws", coopergin.Handler(u, func(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
//		defer conn.Close()
//		join(conn, c.Param("room")) // a framing layer takes conn over
//	}))
//
// The upgrade takes the connection over before anything writes the
// response's header, which gin 1.11 and later refuse to hijack after, and
// ends the handler chain, so no later handler writes to the connection;
// what a middleware writes once the chain returns to it is discarded.
// Over HTTP/2 an upgrade is an extended CONNECT (RFC 8441), which a route
// registered with GET alone does not match: where the server turns it on,
// register the handler with Match([]string{"GET", "CONNECT"}, ...).
// gin.Logger logs the upgrade as 101 and a refusal with its own status;
// gin.Recovery recovers panics in the chain, while a panic in the upgraded
// handler is cooper's: the connection is closed and the panic goes to
// [cooper.OnError].
package coopergin

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/gin-gonic/gin"
	"lowbit.dev/cooper"
)

// Handler returns a gin handler that upgrades requests with u and calls h
// with the connection and what was agreed, as [cooper.Upgrader.Handler]
// does; a request that cannot be upgraded gets cooper's error response.
// Either way the handler chain stops there ([gin.Context.Abort]).
//
// gin reuses its Context once ServeHTTP returns, which is before h runs,
// so h gets a copy ([gin.Context.Copy]) with the route's parameters and
// keys, whose Request is hs.Request: its context keeps the request's
// values and ends when u shuts down, and with the engine's
// ContextWithFallback the copy is that context too. The copy has no
// response to write to; the connection is the response.
//
// Panics if u or h is nil.
func Handler(u *cooper.Upgrader, h func(c *gin.Context, conn net.Conn, hs *cooper.Handshake)) gin.HandlerFunc {
	if u == nil || h == nil {
		panic("coopergin: Handler: nil Upgrader or handler")
	}
	return func(c *gin.Context) {
		cp := c.Copy()
		w := writer{c.Writer, new(atomic.Bool)}
		u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			w.switched.Store(true) // over HTTP/2, before ServeHTTP returns
			cp.Request = hs.Request
			h(cp, conn, hs)
		}).ServeHTTP(w, c.Request)
		if w.switched.Load() {
			c.Writer = switched{c.Writer}
		}
		c.Abort()
	}
}

// A switched writer is a Context's writer once the connection, or over
// HTTP/2 the stream, belongs to the new protocol: it reports the status
// gin's writer recorded (101, or 200 over HTTP/2), and discards what
// middleware writes when the chain returns to it, which net/http would
// refuse and log, or send on the stream after the protocol's last byte.
type switched struct{ gin.ResponseWriter }

func (switched) WriteHeader(int)                   {}
func (switched) WriteHeaderNow()                   {}
func (switched) Write(b []byte) (int, error)       { return len(b), nil }
func (switched) WriteString(s string) (int, error) { return len(s), nil }
func (switched) Flush()                            {}

// A writer is the ResponseWriter cooper upgrades through. It takes the
// connection over through gin's own writer, so gin knows the response is
// gone and writes nothing more, after recording 101 as the status for
// gin.Logger, which gin's writer does without writing anything.
type writer struct {
	gin.ResponseWriter
	switched *atomic.Bool // set once the connection is taken over
}

func (w writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.Written() {
		// The header is on its way to the client; a 101 cannot follow it.
		return nil, nil, errors.New("coopergin: the response was already written")
	}
	// gin's writer asserts that the writer beneath it is an http.Hijacker
	// and panics when it is not; let cooper answer 500 instead.
	if u, ok := w.ResponseWriter.(interface{ Unwrap() http.ResponseWriter }); ok {
		if _, ok := u.Unwrap().(http.Hijacker); !ok {
			return nil, nil, fmt.Errorf("coopergin: the writer beneath gin's is no http.Hijacker: %w", http.ErrNotSupported)
		}
	}
	w.ResponseWriter.WriteHeader(http.StatusSwitchingProtocols)
	conn, brw, err := w.ResponseWriter.Hijack()
	if err == nil {
		w.switched.Store(true)
	}
	return conn, brw, err
}
