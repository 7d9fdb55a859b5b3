package cooper

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// This file is how an Upgrader stops: Shutdown and ShutdownServer, the
// drain that DrainTime spreads, and closing what is left at the deadline.

// The states of an Upgrader's drain.
const (
	drainNone    = iota // Shutdown has not started one
	drainRunning        // Shutdown is ending contexts one by one
	drainOver           // every context has been ended
)

// maxPoll is the longest Shutdown and the drain wait between two looks at
// whether every handler has returned: how late they see it.
const maxPoll = 100 * time.Millisecond

// sleep waits for d, or until ctx is done, and then returns ctx's error.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ShutdownServer shuts srv and the Upgrader down together and waits for
// both: [http.Server.Shutdown] closes srv's listeners and waits for its
// requests, HTTP/2 streams included, while [Upgrader.Shutdown] refuses new
// upgrades and has the handlers say goodbye; then the connections of
// either that ctx's end leaves open are closed ([http.Server.Close] for
// srv's). It returns both errors joined, nil when both stopped in time. A
// nil srv shuts the Upgrader down alone.
//
// net/http neither waits for nor closes connections it no longer owns, and
// does not wait for functions given to [http.Server.RegisterOnShutdown]: a
// program that returns when srv.Shutdown does ends before its handlers have
// said goodbye. ShutdownServer is the one call to make instead.
//
// srv.Shutdown counts a connection on which no request has come yet as
// busy for its first 5 seconds; browsers open such connections ahead of
// need, so give ctx more than 5 s for the server to stop in time.
func (u *Upgrader) ShutdownServer(ctx context.Context, srv *http.Server) error {
	if srv == nil {
		return u.Shutdown(ctx)
	}
	upgraded := make(chan error, 1)
	// Both at once: an HTTP/2 stream's handler runs inside ServeHTTP, so
	// srv.Shutdown waits for it, and only u.Shutdown has it return.
	go u.shutdownTo(ctx, upgraded)
	err := srv.Shutdown(ctx)
	if err != nil {
		srv.Close()
	}
	return errors.Join(err, <-upgraded)
}

// shutdownTo shuts the Upgrader down and sends the result on done. It runs
// on a goroutine of ShutdownServer's, which waits for it.
func (u *Upgrader) shutdownTo(ctx context.Context, done chan<- error) { done <- u.Shutdown(ctx) }

// Shutdown stops the Upgrader: from then on, requests are refused with 503
// and Retry-After, and the contexts of running handlers are cancelled, with
// [ErrShutdown] as their [context.Cause], so a handler can say goodbye and
// return. With [DrainTime], Shutdown cancels them one by one, in random
// order, spread evenly over that time, so their clients do not all come
// back at once; a [Hijack] handler, which has no context, has its
// connection closed at its turn instead. Shutdown waits for every handler
// to return (and, for [Upgrader.Accept], every ServeHTTP that took a
// connection), or for ctx to be done; then it cancels what is left and
// closes the connections still open, those still being answered included,
// and returns ctx's error. It closes them at once, whatever their peers do:
// a TLS connection's socket is closed without waiting to send
// close_notify. Once Shutdown has returned, no handler starts. Calling it
// more than once is safe; only the first call drains, and a call made
// while it does waits for it, or for its own ctx.
func (u *Upgrader) Shutdown(ctx context.Context) error {
	u.closed.Store(true)
	if u.cfg.drainTime > 0 && u.drain.CompareAndSwap(drainNone, drainRunning) {
		err := u.drainAll(ctx)
		u.drain.Store(drainOver)
		if err != nil {
			u.endAll()
			u.closeAll()
			return err
		}
	}
	if u.drain.Load() != drainRunning {
		// A call made while another drains waits for it instead.
		u.endAll()
	}
	poll := time.Millisecond
	timer := time.NewTimer(poll)
	defer timer.Stop()
	for {
		if u.count.Load() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			u.closeAll()
			return ctx.Err()
		case <-timer.C:
			poll = min(2*poll, maxPoll)
			timer.Reset(poll)
		}
	}
}

// drainAll ends the connections tracked when it starts one by one, in
// random order, the i-th of n at i*DrainTime/n from its start, skipping
// those whose handler has returned by their turn. It returns early, with
// nil, once no connection is left, and with ctx's error when ctx is done.
// It runs on Shutdown's goroutine.
func (u *Upgrader) drainAll(ctx context.Context) error {
	order := u.drainOrder()
	start, n := u.now(), time.Duration(len(order))
	for i, t := range order {
		at := start + u.cfg.drainTime*time.Duration(i)/n
		for {
			if u.count.Load() == 0 {
				return nil
			}
			wait := at - u.now()
			if wait <= 0 {
				break
			}
			if err := u.sleep(ctx, min(wait, maxPoll)); err != nil {
				return err
			}
		}
		u.end(t)
	}
	return nil
}

// drainOrder returns, in random order, the tracked connections the drain
// can end one at a time: those of Upgrader.Handler, each with a context of
// its own, and those of Hijack, which it closes. Those of Accept share the
// Upgrader's context, whose cancellation ends the drain.
func (u *Upgrader) drainOrder() []*tracked {
	u.mu.Lock()
	var order []*tracked
	for t := u.active.next; t != &u.active; t = t.next {
		if u.own[t].cancel != nil || t.h != nil && t.h.proto != nil {
			order = append(order, t)
		}
	}
	u.mu.Unlock()
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// end ends one connection's turn in the drain: it cancels its handler's
// context with ErrShutdown, or, when its handler has none, closes it at
// once, so a peer that does not read cannot hold up the next turns. It does
// nothing when the handler has returned.
func (u *Upgrader) end(t *tracked) {
	u.mu.Lock()
	linked, cancel, conn := t.next != nil, u.own[t].cancel, t.netConn()
	u.mu.Unlock()
	switch {
	case !linked:
	case cancel != nil:
		cancel(ErrShutdown)
	case conn != nil:
		closeNow(conn)
	}
}

// endAll cancels the Upgrader's context and every context of a connection
// of its own, with ErrShutdown.
func (u *Upgrader) endAll() {
	u.cancel(ErrShutdown)
	if u.cfg.drainTime == 0 {
		return
	}
	u.mu.Lock()
	cancels := make([]context.CancelCauseFunc, 0, len(u.own))
	for _, o := range u.own {
		if o.cancel != nil {
			cancels = append(cancels, o.cancel)
		}
	}
	u.mu.Unlock()
	for _, cancel := range cancels {
		cancel(ErrShutdown)
	}
}

// closeAll closes every tracked connection that was taken over, and makes
// any upgrade still under way close its own (see hold). It lists them under
// the lock and closes them outside it, so requests and handlers returning
// are not held up meanwhile.
func (u *Upgrader) closeAll() {
	u.forced.Store(true)
	u.mu.Lock()
	// allocates: once, at Shutdown's deadline.
	conns := make([]net.Conn, 0, u.count.Load())
	for t := u.active.next; t != &u.active; t = t.next {
		if c := t.netConn(); c != nil {
			conns = append(conns, c)
		}
	}
	u.mu.Unlock()
	for _, c := range conns {
		closeNow(c)
	}
}

// closeNow closes c at once, whatever its peer does. It first closes the
// socket beneath, reached through NetConn methods: a *tls.Conn's Close
// would otherwise try to send close_notify for up to 5 s to a peer that
// stopped reading, which then fails at once.
func closeNow(c net.Conn) {
	socket := c
	for {
		u, ok := socket.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		next := u.NetConn()
		if next == nil || next == socket {
			break
		}
		socket = next
	}
	if socket != c {
		socket.Close()
	}
	c.Close()
}
