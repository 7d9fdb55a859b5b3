package cooper

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// This file is what the Upgrader keeps of each connection it admitted: the
// entry that tracks it until its handler returns, the Handshake and context
// the handler is given, and the handler's run.

// A tracked is an upgraded connection in the Upgrader's ring of those whose
// handler runs, with what the handler is given.
type tracked struct {
	prev, next *tracked
	conn       atomic.Value // the net.Conn to hand over, from the take-over on; empty before
	h          *handler     // nil for Accept
	hs         *Handshake   // for the handler, until it is given
}

// netConn returns the connection to hand over, or nil before the take-over.
func (t *tracked) netConn() net.Conn {
	c, _ := t.conn.Load().(net.Conn)
	return c
}

// newTracked returns the ring entry for an upgrade of r agreed as d, with
// the Handshake the handler h (nil for Accept) is given, and what the entry
// holds beyond the ring (with DrainTime, the cancellation of a Handler's
// context). A Hijack handler sees only the protocol, so for a configured
// one it shares a Handshake made once by New: such an upgrade allocates the
// entry alone.
func (u *Upgrader) newTracked(r *http.Request, d *decision, h *handler) (*tracked, ownState) {
	t := &tracked{h: h}
	var o ownState
	switch {
	case h == nil || h.proto == nil:
		t.hs, o.cancel = u.handshake(r, d, h != nil && u.cfg.drainTime > 0)
	default:
		for i, p := range u.cfg.protocols {
			if p == d.protocol {
				t.hs = &u.cfg.protocolHandshakes[i]
				break
			}
		}
		if t.hs == nil {
			t.hs = &Handshake{Protocol: d.protocol}
		}
	}
	return t, o
}

// handshake returns the Handshake for the agreed d and the request r, whose
// context it replaces by one that outlives ServeHTTP and ends with the
// Upgrader's; or, when own is true, ends when the returned cancel is called.
func (u *Upgrader) handshake(r *http.Request, d *decision, own bool) (*Handshake, context.CancelCauseFunc) {
	// allocates: all of this escapes to the handler; one allocation holds
	// the Handshake, its DeflateParams and the context.
	a := &struct {
		hs      Handshake
		deflate DeflateParams
		ctx     connContext
	}{
		hs:  Handshake{Protocol: d.protocol, Subprotocol: d.subprotocol},
		ctx: connContext{values: r.Context(), done: u.ctx},
	}
	var cancel context.CancelCauseFunc
	if own {
		// allocates: with DrainTime, the context and its cancellation, so
		// the drain can end each connection at its own time. The parent is
		// not the Upgrader's, which would keep every one registered after
		// its handler returned, until Shutdown; the drain ends those still
		// running, Shutdown every one left.
		a.ctx.done, cancel = context.WithCancelCause(context.Background())
	}
	if d.deflateOK {
		a.deflate = d.deflate.params
		a.hs.Deflate = &a.deflate
	}
	a.hs.Request = r.WithContext(&a.ctx)
	return &a.hs, cancel
}

// hold records conn as the connection of t, for closeAll, and reports
// whether it may be used: false when Shutdown already began closing every
// connection, so conn must be closed. Either closeAll sees conn or hold
// sees that it ran, since both sides write before they read.
func (u *Upgrader) hold(t *tracked, conn net.Conn) bool {
	t.conn.Store(conn)
	return !u.forced.Load()
}

// run runs the handler of t, then stops tracking t. It runs on a goroutine
// of its own, started by ServeHTTP, or over HTTP/2 inside ServeHTTP.
func (t *tracked) run() {
	hs := t.hs
	t.hs = nil // the ring does not keep what the handler may let go
	defer t.h.u.finish(t)
	conn := t.netConn()
	if t.h.u.forced.Load() {
		// Shutdown closed every connection before this goroutine ran; its
		// handler must not start after Shutdown returned.
		conn.Close()
		return
	}
	if t.h.proto != nil {
		t.h.proto(conn, hs.Protocol)
		return
	}
	t.h.handshake(conn, hs)
}

// finish stops tracking t after its handler returned. After a panic, which
// would otherwise end the process, it closes the connection and reports the
// panic.
func (u *Upgrader) finish(t *tracked) {
	if v := recover(); v != nil {
		t.netConn().Close()
		u.panics.Add(1)
		if v != http.ErrAbortHandler {
			u.report(newPanicError(v))
		}
	}
	u.untrack(t)
}

// A connContext is the context of an upgraded connection's request: it
// keeps the request's values but not its cancellation, which net/http
// triggers when ServeHTTP returns, and is cancelled instead when the
// Upgrader shuts down. Many share the Upgrader's one cancellation, so a
// connection costs no goroutine, channel or registration; with DrainTime,
// a Handler's connection has one of its own instead.
//
// A key is looked up in done first, which holds none but the context
// package's own: so the package sees done, not the request's cancellation,
// as the one a context derived from this one must follow, and cancels it
// with done, at once, as it would a child of context.WithCancel; and
// context.Cause reports done's. Every other key falls through to the
// request's values. Looking done up first takes the place of
// context.WithoutCancel, which would cost an allocation per upgrade.
type connContext struct {
	values context.Context // r.Context(), whose own cancellation done hides
	done   context.Context // the Upgrader's, or with DrainTime the connection's own
}

func (c *connContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *connContext) Done() <-chan struct{}       { return c.done.Done() }
func (c *connContext) Err() error                  { return c.done.Err() }

func (c *connContext) Value(key any) any {
	if v := c.done.Value(key); v != nil {
		return v
	}
	return c.values.Value(key)
}

func (c *connContext) String() string { return "cooper.connContext" }

var _ context.Context = (*connContext)(nil)
