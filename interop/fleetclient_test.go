package interop

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"lowbit.dev/cooper"
)

// A fleetClient is one client of examples/fleet's protocol, behaving as a
// client of a fleet should: it sends numbered messages, one at a time, and
// waits for each acknowledgement; when its connection ends it reconnects,
// with exponential backoff and full jitter, waiting what a Retry-After
// asks and up to a second more, and resends what was not acknowledged. It runs on one
// goroutine, run, and records what it saw for the test to check.
type fleetClient struct {
	id       int
	addr     string        // host:port of the balancer
	interval time.Duration // between an acknowledgement and the next message, ±50%

	connected   atomic.Bool
	connectedAt atomic.Int64 // when the last connection was upgraded, UnixNano
	lastAck     atomic.Int64 // when the last acknowledgement came, UnixNano

	// Written by run, read by the test once run has returned.
	acked        uint64 // the last number acknowledged; all before it were, once each
	connects     int
	closes       map[int]int // close codes the server sent, by code
	unclean      []string    // connections that ended without a close frame from the server
	violations   []string    // acknowledgements out of order, and other breaches of the protocol
	refusals     map[int]int // handshakes refused, by status
	worstDown    time.Duration
	downSince    time.Time // when the last connection ended; zero while connected
	dialFailures int
}

// errStopping ends a connection because the test is over.
var errStopping = errors.New("the test is over")

// run connects, exchanges numbered messages and reconnects until ctx is
// done; then it closes its connection with 1000 and returns.
func (c *fleetClient) run(ctx context.Context) {
	c.closes, c.refusals = map[int]int{}, map[int]int{}
	attempt := 0
	var wait time.Duration
	for {
		if !sleep(ctx, wait) {
			return
		}
		conn, br, status, retryAfter, err := c.dial(ctx)
		switch {
		case ctx.Err() != nil:
			if conn != nil {
				conn.Close()
			}
			return
		case err != nil && status != 0:
			c.refusals[status]++
			attempt++
			wait = backoff(attempt)
			if retryAfter > 0 {
				// What the server asks, in whole seconds, and up to a
				// second more, so that refused clients do not return
				// together.
				wait = time.Duration(retryAfter)*time.Second + rand.N(time.Second)
			}
			continue
		case err != nil:
			c.dialFailures++
			attempt++
			wait = backoff(attempt)
			continue
		}
		c.connects++
		if !c.downSince.IsZero() {
			c.worstDown = max(c.worstDown, time.Since(c.downSince))
			c.downSince = time.Time{}
		}
		c.connectedAt.Store(time.Now().UnixNano())
		c.connected.Store(true)
		code, err := c.exchange(ctx, conn, br)
		c.connected.Store(false)
		c.downSince = time.Now()
		conn.Close()
		switch {
		case errors.Is(err, errStopping):
			return
		case code != 0:
			c.closes[code]++
		default:
			c.unclean = append(c.unclean, err.Error())
		}
		// A server that said goodbye with a close frame lets its client
		// come back soon: with 1012 (service restart) or 1001 (going away)
		// another process takes it. Jitter keeps them apart.
		attempt = 0
		switch code {
		case 1012, 1001:
			wait = rand.N(500 * time.Millisecond)
		default:
			attempt = 1
			wait = backoff(attempt)
		}
	}
}

// backoff is the wait before the attempt'th retry: full jitter over an
// exponential bound, 250 ms doubled each time, 8 s at most.
func backoff(attempt int) time.Duration {
	bound := min(250*time.Millisecond<<min(attempt, 10), 8*time.Second)
	return rand.N(bound)
}

// sleep waits d, or until ctx is done; it reports whether ctx is still
// going.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// dial opens a WebSocket to the balancer: a raw upgrade request, so that a
// refusal's status and Retry-After can be read. On a refusal it returns
// the status and Retry-After in seconds (0 when absent) with an error.
func (c *fleetClient) dial(ctx context.Context) (conn net.Conn, br *bufio.Reader, status, retryAfter int, err error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err = d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, nil, 0, 0, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	nonce := make([]byte, 16)
	crand.Read(nonce)
	key := base64.StdEncoding.EncodeToString(nonce)
	req := "GET /ws?client=" + strconv.Itoa(c.id) + " HTTP/1.1\r\nHost: " + c.addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
		"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: fleet.v1\r\n\r\n"
	if _, err = io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, nil, 0, 0, err
	}
	br = bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, nil, 0, 0, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		conn.Close()
		retryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
		return nil, nil, resp.StatusCode, retryAfter, fmt.Errorf("status %s", resp.Status)
	}
	if resp.Header.Get("Sec-WebSocket-Accept") != cooper.AcceptKey(key) || resp.Header.Get("Sec-WebSocket-Protocol") != "fleet.v1" {
		conn.Close()
		return nil, nil, 0, 0, fmt.Errorf("101 with %v", resp.Header)
	}
	conn.SetDeadline(time.Time{})
	return conn, br, 0, 0, nil
}

// ackTimeout is how long an acknowledgement may take before the client
// gives up on the connection.
const ackTimeout = 15 * time.Second

// exchange sends numbered messages on conn and reads their
// acknowledgements until the server closes the connection (it returns the
// close code it sent, having answered the close) or the connection fails
// (code 0 and the error), or ctx is done (it closes with 1000 and returns
// errStopping). The message not yet acknowledged is sent first, again.
func (c *fleetClient) exchange(ctx context.Context, conn net.Conn, br *bufio.Reader) (code int, err error) {
	// The end of ctx interrupts a wait for the server, but not the reading
	// of a frame that has begun to arrive, which would lose it; goodbye,
	// which sets deadlines of its own, waits for that to be over.
	var mu sync.Mutex
	waiting := false // in the Peek below; mu guards it and the deadline
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		if waiting {
			conn.SetReadDeadline(time.Now())
		}
		mu.Unlock()
		close(interrupted)
	})
	defer stop()
	pending := false // a message was sent and not yet acknowledged
	var sentAt time.Time
	next := time.Now() // when to send the next message
	for {
		if ctx.Err() != nil {
			if !stop() {
				<-interrupted
			}
			return 0, c.goodbye(conn, br, pending)
		}
		if !pending && !time.Now().Before(next) {
			msg := strconv.FormatUint(c.acked+1, 10)
			if err := ws.WriteFrame(conn, ws.MaskFrame(ws.NewTextFrame([]byte(msg)))); err != nil {
				return 0, fmt.Errorf("sending %s: %w", msg, err)
			}
			pending, sentAt = true, time.Now()
		}
		// Wait for the server without consuming anything, until the next
		// message is due; a frame that has begun to arrive is read whole.
		until := next
		if pending {
			until = sentAt.Add(ackTimeout)
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			continue
		}
		waiting = true
		conn.SetReadDeadline(until)
		mu.Unlock()
		_, err := br.Peek(1)
		mu.Lock()
		waiting = false
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		mu.Unlock()
		if err != nil {
			var ne net.Error
			switch {
			case ctx.Err() != nil:
				continue
			case errors.As(err, &ne) && ne.Timeout() && !pending:
				continue // time for the next message
			case errors.As(err, &ne) && ne.Timeout():
				c.violations = append(c.violations, fmt.Sprintf("no acknowledgement of %d in %v", c.acked+1, ackTimeout))
				return 0, err
			}
			return 0, fmt.Errorf("connection ended without a close frame after %d acknowledgements: %w", c.acked, err)
		}
		f, err := ws.ReadFrame(br)
		if err != nil {
			return 0, fmt.Errorf("reading a frame: %w", err)
		}
		switch f.Header.OpCode {
		case ws.OpText:
			n, err := strconv.ParseUint(string(f.Payload), 10, 64)
			if err != nil || !pending || n != c.acked+1 {
				c.violations = append(c.violations, fmt.Sprintf("acknowledgement %q after %d (waiting: %v)", f.Payload, c.acked, pending))
				return 0, errors.New("protocol violation")
			}
			c.acked = n
			c.lastAck.Store(time.Now().UnixNano())
			pending = false
			next = time.Now().Add(c.interval/2 + rand.N(c.interval))
		case ws.OpPing:
			ws.WriteFrame(conn, ws.MaskFrame(ws.NewPongFrame(f.Payload)))
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(f.Payload)
			ws.WriteFrame(conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
			return int(code), nil
		default:
			c.violations = append(c.violations, fmt.Sprintf("unexpected frame %v", f.Header.OpCode))
			return 0, errors.New("protocol violation")
		}
	}
}

// goodbye closes conn with 1000 and waits, 5 s at most, for the server's
// close frame. An acknowledgement of the message pending, which the server
// may send before it reads the close, still counts.
func (c *fleetClient) goodbye(conn net.Conn, br *bufio.Reader, pending bool) error {
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := ws.WriteFrame(conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))); err != nil {
		c.unclean = append(c.unclean, "closing: "+err.Error())
		return errStopping
	}
	for {
		f, err := ws.ReadFrame(br)
		if err != nil {
			c.unclean = append(c.unclean, "no close frame in answer to 1000: "+err.Error())
			return errStopping
		}
		switch f.Header.OpCode {
		case ws.OpClose:
			return errStopping
		case ws.OpText:
			n, err := strconv.ParseUint(string(f.Payload), 10, 64)
			if err != nil || !pending || n != c.acked+1 {
				c.violations = append(c.violations, fmt.Sprintf("acknowledgement %q after %d while closing (waiting: %v)", f.Payload, c.acked, pending))
				return errStopping
			}
			c.acked, pending = n, false
		}
	}
}

// A fleetClients is a crowd of clients of one balancer.
type fleetClients struct {
	all    []*fleetClient
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startFleetClients starts n clients of addr, each after a random delay of
// up to ramp, so that the first connections spread over the servers.
func startFleetClients(n int, addr string, ramp, interval time.Duration) *fleetClients {
	ctx, cancel := context.WithCancel(context.Background())
	fc := &fleetClients{cancel: cancel}
	for i := range n {
		c := &fleetClient{id: i + 1, addr: addr, interval: interval}
		fc.all = append(fc.all, c)
		fc.wg.Go(func() {
			if sleep(ctx, rand.N(ramp)) {
				c.run(ctx)
			}
		})
	}
	return fc
}

// stop closes every client's connection and waits for them.
func (fc *fleetClients) stop() {
	fc.cancel()
	fc.wg.Wait()
}

// waitAllAcked waits until every client is connected and has had an
// acknowledgement since since, or until timeout; it returns how many are
// not, and when the last connection was made, since since or before.
func (fc *fleetClients) waitAllAcked(since time.Time, timeout time.Duration) (missing int, back time.Time) {
	deadline := time.Now().Add(timeout)
	for {
		missing, last := 0, since.UnixNano()
		for _, c := range fc.all {
			if !c.connected.Load() || c.lastAck.Load() < since.UnixNano() {
				missing++
			}
			last = max(last, c.connectedAt.Load())
		}
		if missing == 0 || time.Now().After(deadline) {
			return missing, time.Unix(0, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
