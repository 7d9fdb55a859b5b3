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
		w := writer{c.Writer, new(bool)}
		u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			cp.Request = hs.Request
			h(cp, conn, hs)
		}).ServeHTTP(w, c.Request)
		if *w.hijacked {
			c.Writer = hijacked{c.Writer}
		}
		c.Abort()
	}
}

// A hijacked writer is a Context's writer once its connection is taken
// over: it reports the 101 gin's writer recorded, and discards what
// middleware writes when the chain returns to it, such as gin.Recovery's
// 500 or a default body, which net/http would refuse and log.
type hijacked struct{ gin.ResponseWriter }

func (hijacked) WriteHeader(int)                   {}
func (hijacked) WriteHeaderNow()                   {}
func (hijacked) Write(b []byte) (int, error)       { return len(b), nil }
func (hijacked) WriteString(s string) (int, error) { return len(s), nil }
func (hijacked) Flush()                            {}

// A writer is the ResponseWriter cooper upgrades through. It takes the
// connection over through gin's own writer, so gin knows the response is
// gone and writes nothing more, after recording 101 as the status for
// gin.Logger, which gin's writer does without writing anything.
type writer struct {
	gin.ResponseWriter
	hijacked *bool // set once the connection is taken over
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
	*w.hijacked = err == nil
	return conn, brw, err
}
