package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A hsSample is one measurement of handshakes: one server, one number of
// concurrent clients, one round.
type hsSample struct {
	rate     float64 // handshakes per second, wall clock
	p50, p99 time.Duration
	cpu      float64 // server CPU (user + system) per handshake, ns
	allocs   float64 // server allocations per handshake
	bytes    float64 // server bytes allocated per handshake
}

// measureHandshakes runs n handshakes, each with its echo, from clients
// concurrent clients against p, and reads what they cost the server
// process from its counters before and after.
func measureHandshakes(ctx context.Context, p *proc, clients, n int) (hsSample, error) {
	before, err := p.stats("gc")
	if err != nil {
		return hsSample{}, err
	}
	lat, wall, err := load(ctx, p.addr, clients, n)
	if err != nil {
		return hsSample{}, fmt.Errorf("%s, %d clients: %w", p.kind, clients, err)
	}
	after, err := drained(p, before.Goroutines)
	if err != nil {
		return hsSample{}, err
	}
	if after.Fails > before.Fails {
		return hsSample{}, fmt.Errorf("%s, %d clients: the server failed %d times, first: %s",
			p.kind, clients, after.Fails-before.Fails, after.FirstFail)
	}
	slices.Sort(lat)
	fn := float64(n)
	return hsSample{
		rate:   fn / wall.Seconds(),
		p50:    lat[(n-1)/2],
		p99:    lat[(n-1)*99/100],
		cpu:    float64(after.CPU-before.CPU) / fn,
		allocs: float64(after.Mallocs-before.Mallocs) / fn,
		bytes:  float64(after.TotalAlloc-before.TotalAlloc) / fn,
	}, nil
}

// drained waits until the server has finished with the connections of a
// measurement, which the clients closed, so that their whole cost is
// counted: until no more than goroutines goroutines are left. Then it
// returns the counters.
func drained(p *proc, goroutines int64) (serverStats, error) {
	const timeout = 10 * time.Second
	for deadline := time.Now().Add(timeout); ; time.Sleep(time.Millisecond) {
		s, err := p.stats("stats")
		if err != nil || s.Goroutines <= goroutines {
			return s, err
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("%s: %d goroutines left %v after the last handshake", p.kind, s.Goroutines-goroutines, timeout)
		}
	}
}

// load runs n handshakes from clients concurrent clients and returns the
// latency of each (connect to echo) and the time all of them took. It stops
// at the first failure.
func load(ctx context.Context, addr *net.TCPAddr, clients, n int) ([]time.Duration, time.Duration, error) {
	d := &dialer{raddr: addr}
	cs := make([]*client, clients)
	for i := range cs {
		cs[i] = newClient(d)
	}
	lat := make([]time.Duration, n)
	var (
		next    atomic.Int64
		failed  atomic.Bool
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	start := time.Now()
	for _, c := range cs {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || failed.Load() || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				_, _, err := c.handshake(false)
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Store(true)
					errOnce.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if first == nil {
		first = ctx.Err()
	}
	return lat, wall, first
}

// An idleSample is what idle connections cost a server process: heap plus
// goroutine stacks after GC, per connection, once its goroutines settled.
type idleSample struct {
	conns      int
	perConn    float64 // bytes
	goroutines float64 // per connection
}

// measureIdle opens n connections to p, upgraded and past their echo (or,
// for bare TCP, accepted), leaves them idle and measures what they cost.
func measureIdle(ctx context.Context, p *proc, websocket bool, n int) (idleSample, error) {
	base, err := warmIdle(ctx, p, websocket)
	if err != nil {
		return idleSample{}, err
	}
	conns, _, err := openConns(ctx, p.addr, websocket, n, nil)
	defer closeConns(conns)
	if err != nil {
		return idleSample{}, fmt.Errorf("%s, idle connection %d of %d: %w", p.kind, len(conns)+1, n, err)
	}
	return settle(p, base, n)
}

// idleWarmup is how many connections warmIdle opens and closes.
const idleWarmup = 16

// warmIdle opens and closes a few connections to p, so that what the first
// connection sets up once for all (pools, tables, lazily built state) is not
// counted per connection, waits until their goroutines are gone and returns
// the server's counters after GC: the base of an idle measurement.
func warmIdle(ctx context.Context, p *proc, websocket bool) (serverStats, error) {
	const timeout = 10 * time.Second
	before, err := p.stats("gc")
	if err != nil {
		return before, err
	}
	conns, _, err := openConns(ctx, p.addr, websocket, idleWarmup, nil)
	closeConns(conns)
	if err != nil {
		return before, fmt.Errorf("%s, warm-up: %w", p.kind, err)
	}
	for deadline := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		s, err := p.stats("gc")
		if err != nil || s.Goroutines <= before.Goroutines && s.Echoes-before.Echoes >= idleWarmup {
			return s, err
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("%s, warm-up: %d goroutines left after %v", p.kind, s.Goroutines-before.Goroutines, timeout)
		}
	}
}

// settle waits until the server has served all n connections opened since
// base and its goroutine count holds still, then measures their cost.
func settle(p *proc, base serverStats, n int) (idleSample, error) {
	const (
		poll    = 100 * time.Millisecond
		still   = 3 // equal goroutine counts in a row
		timeout = 60 * time.Second
	)
	deadline := time.Now().Add(timeout)
	var s serverStats
	prev, same := int64(-1), 0
	for {
		var err error
		if s, err = p.stats("gc"); err != nil {
			return idleSample{}, err
		}
		if s.Fails > base.Fails {
			return idleSample{}, fmt.Errorf("%s: the server failed %d times, first: %s", p.kind, s.Fails-base.Fails, s.FirstFail)
		}
		if s.Goroutines == prev {
			same++
		} else {
			prev, same = s.Goroutines, 1
		}
		if s.Echoes-base.Echoes >= int64(n) && same >= still {
			break
		}
		if time.Now().After(deadline) {
			return idleSample{}, fmt.Errorf("%s: %d of %d connections served and goroutines not settled after %v",
				p.kind, s.Echoes-base.Echoes, n, timeout)
		}
		time.Sleep(poll)
	}
	mem := float64(s.Heap+s.Stack) - float64(base.Heap+base.Stack)
	return idleSample{
		conns:      n,
		perConn:    mem / float64(n),
		goroutines: float64(s.Goroutines-base.Goroutines) / float64(n),
	}, nil
}

// openWorkers is how many connections openConns sets up at once.
const openWorkers = 16

// openConns opens n connections to addr and leaves them open: upgraded
// and past their echo when websocket is set, else accepted. It
// returns the connections open when it stopped, how long opening them
// took, and the first failure. If marks is not empty, marks[i] is set to
// the time since the start at which marks[i] connections were open.
func openConns(ctx context.Context, addr *net.TCPAddr, websocket bool, n int, marks []markedTime) ([]*net.TCPConn, time.Duration, error) {
	d := &dialer{raddr: addr}
	d.spread.Store(true) // they stay open: spread them over source addresses
	conns := make([]*net.TCPConn, n)
	var (
		next    atomic.Int64
		opened  atomic.Int64
		failed  atomic.Bool
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
		mu      sync.Mutex // guards marks
	)
	start := time.Now()
	for range min(openWorkers, n) {
		c := newClient(d)
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || failed.Load() || ctx.Err() != nil {
					return
				}
				var conn *net.TCPConn
				var err error
				if websocket {
					conn, _, err = c.handshake(true)
				} else {
					conn, err = c.connect()
				}
				if err != nil {
					failed.Store(true)
					errOnce.Do(func() { first = err })
					return
				}
				conns[i] = conn
				if k := opened.Add(1); len(marks) > 0 {
					mu.Lock()
					for j := range marks {
						if marks[j].conns == int(k) {
							marks[j].at = time.Since(start)
						}
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	open := conns[:0]
	for _, c := range conns {
		if c != nil {
			open = append(open, c)
		}
	}
	if first == nil {
		first = ctx.Err()
	}
	return open, elapsed, first
}

// A markedTime is when a ramp reached a number of connections.
type markedTime struct {
	conns int
	at    time.Duration
}

// closeConns resets every connection, so none lingers in TIME_WAIT.
func closeConns(conns []*net.TCPConn) {
	for _, c := range conns {
		c.SetLinger(0)
		c.Close()
	}
}

// A rampSample is how far a ramp to the open-file limit went.
type rampSample struct {
	conns     int
	rate      float64   // connections per second over the whole ramp
	quarters  []float64 // connections per second in each quarter of it
	perConn   float64   // bytes of heap and stacks per connection, settled
	stoppedBy string    // what ended the ramp
}

// rampMargin is how many file descriptors a ramp leaves free on each side.
const rampMargin = 32

// measureRamp opens as many idle connections to p as both processes'
// open-file limits allow (at most max, if max > 0) and measures the rate at
// which they were set up and what they cost the server once idle.
func measureRamp(ctx context.Context, p *proc, websocket bool, max int) (rampSample, error) {
	base, err := warmIdle(ctx, p, websocket)
	if err != nil {
		return rampSample{}, err
	}
	serverFree := int(base.FileLimit-base.OpenFiles) - rampMargin
	clientFree := fileLimit() - openFiles() - rampMargin
	n := min(serverFree, clientFree)
	stoppedBy := fmt.Sprintf("open-file limit (server %d, harness %d)", base.FileLimit, fileLimit())
	if max > 0 && max < n {
		n, stoppedBy = max, "-ramp-max"
	}
	if n < 4 {
		return rampSample{}, fmt.Errorf("%s: room for %d connections only", p.kind, n)
	}
	marks := make([]markedTime, 4)
	for i := range marks {
		marks[i].conns = n * (i + 1) / 4
	}
	conns, elapsed, err := openConns(ctx, p.addr, websocket, n, marks)
	defer closeConns(conns)
	if err != nil {
		if ctx.Err() != nil || len(conns) == 0 {
			return rampSample{}, fmt.Errorf("%s ramp: %w", p.kind, err)
		}
		stoppedBy = fmt.Sprintf("connection %d failed: %v", len(conns)+1, err)
	}
	r := rampSample{conns: len(conns), rate: float64(len(conns)) / elapsed.Seconds(), stoppedBy: stoppedBy}
	var prev markedTime
	for _, m := range marks {
		if m.at == 0 {
			break
		}
		r.quarters = append(r.quarters, float64(m.conns-prev.conns)/(m.at-prev.at).Seconds())
		prev = m
	}
	idle, err := settle(p, base, len(conns))
	if err != nil {
		return rampSample{}, err
	}
	r.perConn = idle.perConn
	return r, nil
}
