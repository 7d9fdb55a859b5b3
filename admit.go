package cooper

import (
	"context"
	"net/http"
)

// This file is the admit step: whether the server takes one more
// connection now (shutdown, MaxConnections). With its options off it costs
// two atomic operations and the lock that links the connection into the
// ring.

// An ownState is what a tracked connection holds beyond its ring entry,
// with DrainTime.
type ownState struct {
	cancel context.CancelCauseFunc // ends its handler's own context; nil without one
}

// track admits t and adds it to the ring before its connection is taken
// over, or refuses with 503 when the Upgrader is shutting down or holds
// MaxConnections. o is what t holds beyond the ring. The checks are atomic,
// outside the lock, which guards only the ring's links: a request counts
// itself first, so Shutdown, which waits for the count to fall to zero,
// cannot miss one that is past its check.
func (u *Upgrader) track(t *tracked, r *http.Request, o ownState) *UpgradeError {
	n := u.count.Add(1)
	if u.closed.Load() {
		u.count.Add(-1)
		// A client should reconnect at once, to a server that is not going away.
		return refuse(http.StatusServiceUnavailable, ErrShutdown, http.Header{"Retry-After": {"1"}},
			"shutdown: the server is shutting down")
	}
	if max := u.cfg.maxConns; max > 0 && n > max {
		u.count.Add(-1)
		return refuse(http.StatusServiceUnavailable, ErrTooManyConnections, http.Header{"Retry-After": {"5"}},
			"MaxConnections: %d connections are open", max)
	}
	u.mu.Lock()
	t.prev, t.next = u.active.prev, &u.active
	t.prev.next, t.next.prev = t, t
	if o.cancel != nil {
		u.own[t] = o
	}
	u.mu.Unlock()
	return nil
}

// untrack removes t from the ring and forgets what it held; it is safe to
// call more than once.
func (u *Upgrader) untrack(t *tracked) {
	u.mu.Lock()
	linked := t.next != nil
	if linked {
		t.prev.next, t.next.prev = t.next, t.prev
		t.prev, t.next = nil, nil
		delete(u.own, t)
	}
	u.mu.Unlock()
	if linked {
		u.count.Add(-1)
	}
}
