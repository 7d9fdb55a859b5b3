// Fleet is one process of a fleet of WebSocket servers behind a load
// balancer, as docs/deploying.md describes: it drains gradually on SIGTERM,
// tells its balancer when it stops being ready, and speaks a protocol of
// numbered messages that a test can check end to end across a rolling
// deploy.
//
//	go run ./examples/fleet [-addr 127.0.0.1:8080] [-drain 30s] [-grace 10s] [-rate 0 -burst 0]
//
// /ws is the WebSocket (subprotocol fleet.v1). The client sends text
// messages holding a sequence number, in decimal, and the server answers
// each with the same number: the acknowledgement. A client that reconnects
// sends again what was not acknowledged, so each message is acknowledged
// once. The client may name itself with ?client=ID (letters, digits, '.',
// '_', '-'), for the log.
//
// /healthz answers 200 "ready" while the process takes connections and
// 503 "draining" from the moment it gets SIGTERM or SIGINT, so a load
// balancer's health check takes it out of rotation.
//
// On SIGTERM the process stops taking upgrades (503 with Retry-After) and
// ends its connections over -drain (cooper's DrainTime), in random order:
// each gets a close frame with code 1012, service restart, after the last
// acknowledgement, and its client reconnects through the balancer to
// another process. The process exits once every connection has closed, or
// closes what is left -grace after the drain.
//
// It writes to standard output, besides "listening on http://ADDR":
//
//	stats ms=UNIXMILLI upgrades=N active=N refused=N    every 100 ms, when a count changed
//	conn client=ID acked=FIRST-LAST n=N end=REASON     each connection, when it ends
//	draining N connections over D                      on the signal
//	drained                                            when the last connection closed
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/serve"
)

func main() {
	var o options
	flag.DurationVar(&o.drain, "drain", 30*time.Second, "spread the connections' ends over `d` on SIGTERM (cooper.DrainTime); 0 ends them all at once")
	flag.DurationVar(&o.grace, "grace", 10*time.Second, "after the drain, wait `d` more for connections to close before closing them")
	flag.Float64Var(&o.rate, "rate", 0, "admit at most `n` upgrades a second (cooper.UpgradeRate); 0: no limit")
	flag.IntVar(&o.burst, "burst", 0, "with -rate, admit bursts of up to `n` upgrades")
	serve.Main(o.run) // o.run sees the flags: Main parses them before it calls o.run
}

// options are the command line's flags, but -addr.
type options struct {
	drain, grace time.Duration
	rate         float64
	burst        int
}

// Subprotocol is the protocol of numbered messages, agreed at the upgrade.
const Subprotocol = "fleet.v1"

// run serves on addr until ctx is done, as serve.Run says, but stops in
// its own way: it reports itself not ready, drains its WebSockets over
// o.drain, and stops serving HTTP once they have all closed, o.grace after
// the drain at the latest.
func (o *options) run(ctx context.Context, addr string, out io.Writer) error {
	lw := &lineWriter{w: out}
	opts := []cooper.Option{
		cooper.Protocols("websocket"),
		cooper.Subprotocols(Subprotocol),
		cooper.DrainTime(o.drain),
	}
	if o.rate > 0 {
		opts = append(opts, cooper.UpgradeRate(o.rate, max(o.burst, 1)))
	}
	u := cooper.New(opts...)
	var draining atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	mux.Handle("/ws", u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		s := acknowledge(conn, hs)
		lw.printf("conn client=%s acked=%s n=%d end=%s", s.client, s.acked(), s.n, s.end)
	}))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	lw.printf("listening on http://%s", ln.Addr())
	statsDone := make(chan struct{})
	statsCtx, stopStats := context.WithCancel(context.Background())
	go func() {
		defer close(statsDone)
		printStats(statsCtx, u, lw)
	}()
	defer func() {
		stopStats()
		<-statsDone
	}()

	return serve.Server{
		Handler: mux,
		Grace:   o.drain + o.grace,
		Shutdown: func(grace context.Context, srv *http.Server) error {
			// From here the health check fails, so the balancer takes this
			// process out; meanwhile cooper refuses upgrades with 503 and
			// Retry-After, which the balancer may retry on another server.
			// The listener stays open for the health check until the drain
			// is over.
			draining.Store(true)
			lw.printf("draining %d connections over %v", u.Stats().Active, o.drain)
			errUpgraded := u.Shutdown(grace)
			if errUpgraded == nil {
				lw.printf("drained")
			}
			return errors.Join(errUpgraded, srv.Shutdown(grace))
		},
	}.Serve(ctx, ln)
}

// printStats prints the Upgrader's counters every 100 ms while they change,
// until ctx is done, and once more then.
func printStats(ctx context.Context, u *cooper.Upgrader, lw *lineWriter) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for done := false; ; {
		s := u.Stats()
		var refused uint64
		for _, n := range s.Refusals {
			refused += n
		}
		line := fmt.Sprintf("upgrades=%d active=%d refused=%d", s.Upgrades, s.Active, refused)
		if line != last {
			lw.printf("stats ms=%d %s", time.Now().UnixMilli(), line)
			last = line
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
	}
}

// A session is what one connection acknowledged.
type session struct {
	client      string
	first, last uint64 // the first and last number acknowledged
	n           uint64 // how many were
	end         string // why the connection ended
}

func (s *session) acked() string {
	if s.n == 0 {
		return "none"
	}
	return fmt.Sprintf("%d-%d", s.first, s.last)
}

// acknowledge acknowledges numbered messages on conn until the client closes
// it, the protocol is broken, or hs.Request's context is done; then it
// says goodbye with the close code that fits. Numbers on one connection
// must follow each other; the first may be any (a client that reconnects
// continues where its acknowledgements stopped).
func acknowledge(conn net.Conn, hs *cooper.Handshake) *session {
	defer conn.Close()
	s := &session{client: hs.Request.URL.Query().Get("client")}
	if !isClientID(s.client) {
		s.client = conn.RemoteAddr().String()
	}
	ctx := hs.Request.Context()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	rd := &wsutil.Reader{
		Source:         conn,
		State:          ws.StateServerSide,
		MaxMessageSize: 64,
		OnIntermediate: wsutil.ControlFrameHandler(conn, ws.StateServerSide),
	}
	buf := make([]byte, 0, 64)
	for {
		hdr, err := rd.NextFrame()
		if err == nil && hdr.OpCode.IsControl() {
			err = wsutil.ControlFrameHandler(conn, ws.StateServerSide)(hdr, rd)
			if err == nil {
				continue
			}
		}
		var closed wsutil.ClosedError
		switch {
		case errors.As(err, &closed):
			s.end = "client closed " + strconv.Itoa(int(closed.Code))
			return s // the control handler has answered the close
		case err != nil && ctx.Err() != nil:
			s.end = leave(conn, ctx)
			return s
		case err != nil:
			s.end = err.Error()
			return s
		}
		buf, err = readMessage(rd, buf[:0])
		switch {
		case errors.Is(err, wsutil.ErrMessageTooLarge):
			s.end = err.Error()
			goodbye(conn, ws.StatusMessageTooBig, "message too big")
			return s
		case err != nil && ctx.Err() != nil:
			s.end = leave(conn, ctx) // the message is not acknowledged
			return s
		case err != nil:
			s.end = err.Error()
			return s
		}
		seq, err := strconv.ParseUint(string(buf), 10, 64)
		if hdr.OpCode != ws.OpText || err != nil || seq == 0 || (s.n > 0 && seq != s.last+1) {
			s.end = fmt.Sprintf("message %q after %d is not the next number", buf, s.last)
			goodbye(conn, ws.StatusProtocolError, "not the next number")
			return s
		}
		if err := ws.WriteFrame(conn, ws.NewTextFrame(buf)); err != nil {
			s.end = err.Error()
			return s
		}
		if s.n == 0 {
			s.first = seq
		}
		s.last = seq
		s.n++
	}
}

// leave says goodbye to the client because ctx, the handler's, is done,
// and returns why the connection ended. A drain (cooper.ErrShutdown) is a
// restart: the client should come back, to another process.
func leave(conn net.Conn, ctx context.Context) string {
	code, reason := ws.StatusGoingAway, "going away"
	if errors.Is(context.Cause(ctx), cooper.ErrShutdown) {
		code, reason = statusServiceRestart, "service restart"
	}
	goodbye(conn, code, reason)
	return "server closed " + strconv.Itoa(int(code))
}

// isClientID reports whether id is fit for the log: 1 to 64 letters,
// digits, '.', '_' or '-'.
func isClientID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// statusServiceRestart is close code 1012, service restart, from the IANA
// WebSocket Close Code Number Registry: the server is restarting, and the
// client may reconnect.
const statusServiceRestart ws.StatusCode = 1012

// readMessage appends the rest of the message rd is at to buf.
func readMessage(rd *wsutil.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			return buf, wsutil.ErrMessageTooLarge
		}
		n, err := rd.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// goodbye sends a close frame with code and reason, then discards what the
// client still sends, unacknowledged, until it closes the connection, 2 s
// at most, so that the client reads the close frame and not a reset.
func goodbye(conn net.Conn, code ws.StatusCode, reason string) {
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason))) == nil {
		io.Copy(io.Discard, conn)
	}
}

// A lineWriter writes whole lines to w, one at a time.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (lw *lineWriter) printf(format string, args ...any) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	fmt.Fprintf(lw.w, format+"\n", args...)
}
