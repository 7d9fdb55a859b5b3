package cooper

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lowbit.dev/cooper/internal/poll"
)

// TestStats checks that every outcome is counted: upgrades, refusals by
// sentinel, failures, panics, and connections whose handler runs.
func TestStats(t *testing.T) {
	f := newFixture(t, h1, Protocols("websocket"))
	u := f.Config.Handler.(*handler).u
	r := f.wsRequest()
	r.Header.Set("Origin", "https://evil.example")
	f.roundTrip(t, r, "")
	wait(t, f.errs, "refusal")
	r = f.wsRequest()
	r.Method = "POST"
	f.roundTrip(t, r, "")
	wait(t, f.errs, "refusal")
	_, _, c, br := f.roundTrip(t, f.wsRequest(), "")
	wait(t, f.handled, "handler call")
	s := u.Stats()
	if s.Active != 1 || s.Upgrades != 1 || s.Failures != 0 || s.Panics != 0 ||
		len(s.Refusals) != 2 || s.Refusals[ErrOrigin] != 1 || s.Refusals[ErrMethod] != 1 {
		t.Errorf("Stats = %+v, want 1 active, 1 upgrade, one refusal each for ErrOrigin and ErrMethod", s)
	}
	echo(t, c, br, "x")
	c.Close()
	poll.Until(t, 10*time.Second, "the handler to return", func() bool { return u.Stats().Active == 0 })
}

// TestStatsRefusals checks that Stats.Refusals counts refusals by each
// sentinel a refusal can match, from ErrMethod to ErrHijackFailed as
// errors.go lists them, and by nothing else.
func TestStatsRefusals(t *testing.T) {
	sentinels := refusalSentinels
	u := New(OnError(func(error) {}))
	for i, err := range sentinels {
		for range i + 1 {
			u.countRefusal(refusal(http.StatusBadRequest, err, nil, "test: refused"))
		}
	}
	u.countRefusal(hijackFailed(http.ErrNotSupported, "test"))
	s := u.Stats()
	for i, err := range sentinels {
		want := uint64(i + 1)
		if err == ErrHijackFailed {
			want++
		}
		if s.Refusals[err] != want {
			t.Errorf("Stats().Refusals[%v] = %d, want %d", err, s.Refusals[err], want)
		}
	}
	if len(s.Refusals) != len(sentinels) {
		t.Errorf("Stats().Refusals has %d sentinels, want %d: %v", len(s.Refusals), len(sentinels), s.Refusals)
	}
}

// TestMaxConnections holds the limit's worth of connections open: the next
// request gets 503 with Retry-After and is not taken over; once one closes,
// an upgrade succeeds again.
func TestMaxConnections(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"), MaxConnections(2))
		var open []net.Conn
		for range 2 {
			resp, _, c, _ := f.roundTrip(t, f.wsRequest(), "")
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status = %d, want 101", resp.StatusCode)
			}
			wait(t, f.handled, "handler call")
			open = append(open, c)
		}
		resp, body, _, _ := f.roundTrip(t, f.wsRequest(), "")
		f.checkRetryRefusal(t, resp, body, http.StatusServiceUnavailable, ErrTooManyConnections)
		if n := f.hijacked.Load(); n != 2 {
			t.Errorf("%d connections taken over, want 2", n)
		}
		open[0].Close()
		u := f.Config.Handler.(*handler).u
		poll.Until(t, 10*time.Second, "a handler to return", func() bool { return u.Stats().Active == 1 })
		if resp, _, _, _ := f.roundTrip(t, f.wsRequest(), ""); resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("below the limit again: status = %d, want 101", resp.StatusCode)
		}
	})
}

// openFDs counts this process's open file descriptors, or -1 where
// /proc/self/fd does not exist.
func openFDs() int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(fds)
}

// loadServer starts an echo server for the load tests. A request to
// /server-closes gets one echo and then the server closes; a handler of
// /obey-context returns when its context is cancelled.
func loadServer(t *testing.T, opts ...Option) (*testServer, *Upgrader) {
	u := New(append([]Option{Protocols("websocket")}, opts...)...)
	s := newServer(t, h1, u.Handler(func(conn net.Conn, hs *Handshake) {
		defer conn.Close()
		switch hs.Request.URL.Path {
		case "/server-closes":
			buf := make([]byte, 4)
			if _, err := io.ReadFull(conn, buf); err == nil {
				conn.Write(buf)
			}
			return
		case "/obey-context":
			stop := context.AfterFunc(hs.Request.Context(), func() { conn.Close() })
			defer stop()
		}
		io.Copy(conn, conn)
	}))
	return s, u
}

// upgradeOnce upgrades a new connection to path, exchanges "ping" and
// returns the connection and its reader.
func upgradeOnce(s *testServer, path string) (net.Conn, *bufio.Reader, error) {
	c, err := net.DialTimeout("tcp", s.host(), 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	r := s.wsRequest()
	r.URL.Path = path
	if _, err := c.Write(appendRequest(nil, r, "ping")); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	got := make([]byte, 4)
	if err == nil {
		_, err = io.ReadFull(br, got)
	}
	if err == nil && string(got) != "ping" {
		err = fmt.Errorf("echo %q", got)
	}
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, br, nil
}

// TestLoadNoLeaks runs thousands of upgrades, sequential and concurrent,
// each exchanging data and closed by either side, with clients vanishing
// mid-request and mid-handshake. Afterwards goroutines, open files and
// active connections are back to where they started.
func TestLoadNoLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("load test; run without -short")
	}
	s, u := loadServer(t)
	goroutines, fds := runtime.NumGoroutine(), openFDs()

	one := func(i int) error {
		switch i % 10 {
		case 0: // vanishes halfway through its request
			c, err := net.Dial("tcp", s.host())
			if err != nil {
				return err
			}
			req := appendRequest(nil, s.wsRequest(), "")
			c.Write(req[:len(req)/2])
			return c.Close()
		case 1: // vanishes right after its request, before the 101
			c, err := net.Dial("tcp", s.host())
			if err != nil {
				return err
			}
			c.Write(appendRequest(nil, s.wsRequest(), ""))
			c.(*net.TCPConn).SetLinger(0)
			return c.Close()
		case 2, 3, 4: // the server closes after one echo
			c, br, err := upgradeOnce(s, "/server-closes")
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := br.ReadByte(); err != io.EOF {
				return fmt.Errorf("after the server closed: %v, want EOF", err)
			}
			return nil
		default: // the client closes after some more echoes
			c, br, err := upgradeOnce(s, "/ws")
			if err != nil {
				return err
			}
			defer c.Close()
			for range 3 {
				c.Write([]byte("more"))
				if _, err := io.ReadFull(br, make([]byte, 4)); err != nil {
					return err
				}
			}
			return nil
		}
	}

	const sequential, concurrent, parallel = 500, 2500, 100
	for i := range sequential {
		if err := one(i); err != nil {
			t.Fatalf("sequential upgrade %d: %v", i, err)
		}
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	sem := make(chan struct{}, parallel)
	for i := range concurrent {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := one(i); err != nil && failed.Add(1) == 1 {
				t.Errorf("concurrent upgrade %d: %v", i, err)
			}
		})
	}
	wg.Wait()

	poll.Until(t, 10*time.Second, "every handler to return", func() bool { return u.Stats().Active == 0 })
	poll.Until(t, 10*time.Second, "goroutines and open files back to their baseline", func() bool {
		return runtime.NumGoroutine() <= goroutines && openFDs() <= fds
	})
	st := u.Stats()
	t.Logf("%d connections: %d upgraded, %d failed writing the 101, refusals %v", sequential+concurrent, st.Upgrades, st.Failures, st.Refusals)
	if st.Upgrades < (sequential+concurrent)*8/10 {
		t.Errorf("%d upgrades, want at least the %d clients that complete their handshake", st.Upgrades, (sequential+concurrent)*8/10)
	}
}

// TestShutdownUnderLoad shuts down with hundreds of live connections, half
// of whose handlers ignore their context: Shutdown returns at its deadline,
// every connection is closed, and no handler is left running.
func TestShutdownUnderLoad(t *testing.T) {
	s, u := loadServer(t)
	goroutines := runtime.NumGoroutine()
	const n = 300
	conns := make([]net.Conn, 0, n)
	readers := make([]*bufio.Reader, 0, n)
	for i := range n {
		path := "/ws"
		if i%2 == 0 {
			path = "/obey-context"
		}
		c, br, err := upgradeOnce(s, path)
		if err != nil {
			t.Fatalf("upgrade %d: %v", i, err)
		}
		defer c.Close()
		conns, readers = append(conns, c), append(readers, br)
	}
	if a := u.Stats().Active; a != n {
		t.Fatalf("Active = %d, want %d", a, n)
	}
	const grace = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	err := u.Shutdown(ctx)
	if took := time.Since(start); err != context.DeadlineExceeded || took > grace+2*time.Second {
		t.Fatalf("Shutdown = %v after %v, want context.DeadlineExceeded at about %v", err, took, grace)
	}
	for i, br := range readers {
		conns[i].SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := br.ReadByte(); err != io.EOF && !strings.Contains(fmt.Sprint(err), "reset") {
			t.Fatalf("connection %d after Shutdown: %v, want it closed", i, err)
		}
	}
	poll.Until(t, 10*time.Second, "every handler to return", func() bool { return u.Stats().Active == 0 })
	poll.Until(t, 10*time.Second, "goroutines back to their baseline", func() bool { return runtime.NumGoroutine() <= goroutines })
}
