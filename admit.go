package cooper

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// This file is the admit step: whether the server takes one more
// connection now (shutdown, MaxConnections, UpgradeRate). With its options
// off it costs two atomic operations and the lock that links the
// connection into the ring.

// An ownState is what a tracked connection holds beyond its ring entry,
// with DrainTime.
type ownState struct {
	cancel context.CancelCauseFunc // ends its handler's own context; nil without one
}

// track admits t and adds it to the ring before its connection is taken
// over, or refuses with 503 when the Upgrader is shutting down, holds
// MaxConnections or is past UpgradeRate. o is what t holds beyond the ring.
// The checks are atomic, outside the lock, which guards only the ring's
// links: a request counts itself first, so Shutdown, which waits for the
// count to fall to zero, cannot miss one that is past its check.
func (u *Upgrader) track(t *tracked, r *http.Request, o ownState) *UpgradeError {
	n := u.count.Add(1)
	if u.closed.Load() {
		u.count.Add(-1)
		// A client should come back soon, to a server that is not going away.
		return refuse(http.StatusServiceUnavailable, ErrShutdown, retryAfter(1, 2),
			"shutdown: the server is shutting down")
	}
	if max := u.cfg.maxConns; max > 0 && n > max {
		u.count.Add(-1)
		return refuse(http.StatusServiceUnavailable, ErrTooManyConnections, retryAfter(5, 5),
			"MaxConnections: %d connections are open", max)
	}
	if u.cfg.rateInterval > 0 {
		if rej := u.takeToken(); rej != nil {
			u.count.Add(-1)
			return rej
		}
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

// retryAfter returns a Retry-After header of min to min+spread whole
// seconds, at random, so that clients refused together do not come back
// together.
func retryAfter(min, spread int) http.Header {
	return http.Header{"Retry-After": {strconv.Itoa(min + rand.IntN(spread+1))}}
}

// maxRetryAfter bounds the Retry-After of an UpgradeRate refusal.
const maxRetryAfter = 60 * time.Second

// A rateState is UpgradeRate's token bucket, kept as the generic cell rate
// algorithm keeps it: as one time, so that taking a token is one
// compare-and-swap. tat is the theoretical arrival time: when the next
// upgrade would be due were upgrades spaced exactly at the rate. One is
// admitted while tat is at most the tolerance ahead of now, that is, while
// the bucket holds a token; admitting one moves tat an interval on.
type rateState struct {
	tat   atomic.Int64 // nanoseconds since New
	retry atomic.Int64 // the last time a refused client was told to come back at
}

// takeToken takes a token from UpgradeRate's bucket, or refuses with 503
// when it is empty.
func (u *Upgrader) takeToken() *UpgradeError {
	now := int64(u.now())
	interval, tolerance := int64(u.cfg.rateInterval), int64(u.cfg.rateTolerance)
	for {
		tat := u.rate.tat.Load()
		next := max(tat, now)
		if next-now > tolerance {
			return u.rateRefusal(now, next-tolerance)
		}
		if u.rate.tat.CompareAndSwap(tat, next+interval) {
			return nil
		}
	}
}

// rateRefusal refuses an upgrade at now because the bucket is empty until
// free. Its Retry-After hands out successive times at the rate from free
// on, so the clients refused in a storm are told to come back no faster
// than they can be admitted, within maxRetryAfter, plus up to a second at
// random.
func (u *Upgrader) rateRefusal(now, free int64) *UpgradeError {
	interval := int64(u.cfg.rateInterval)
	var at int64
	for {
		last := u.rate.retry.Load()
		at = max(last+interval, free)
		if at-now > int64(maxRetryAfter) {
			at = now + int64(maxRetryAfter)
			break
		}
		if u.rate.retry.CompareAndSwap(last, at) {
			break
		}
	}
	secs := max(int((at-now+int64(time.Second)-1)/int64(time.Second)), 1)
	return refuse(http.StatusServiceUnavailable, ErrUpgradeRate, retryAfter(secs, 1),
		"UpgradeRate: more upgrades than %s a second", strconv.FormatFloat(float64(time.Second)/float64(interval), 'g', 4, 64))
}
