package cooper

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// clientURL returns the URL a client dials for s, with scheme ws or, in
// h1+TLS mode, wss, and path.
func (s *testServer) clientURL(path string) string {
	if s.mode == h1TLS {
		return "wss://" + s.host() + path
	}
	return "ws://" + s.host() + path
}

// tlsConfig returns a client TLS configuration that trusts s's
// certificate.
func (s *testServer) tlsConfig() *tls.Config {
	return s.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
}

// dialOptions returns the options a client of s needs, in h1+TLS mode the
// configuration that trusts s, followed by opts.
func (s *testServer) dialOptions(opts ...DialOption) []DialOption {
	if s.mode == h1TLS {
		opts = append([]DialOption{WithTLSConfig(s.tlsConfig())}, opts...)
	}
	return opts
}

// newClientRequest returns a GET request for rawURL whose context ends
// after 10 s, so that no test can hang.
func newClientRequest(t *testing.T, rawURL string) *http.Request {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// mustDial dials req with opts, failing the test on error; the test's
// cleanup closes the connection.
func mustDial(t *testing.T, req *http.Request, opts ...DialOption) net.Conn {
	t.Helper()
	conn, err := Dial(req, opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestDialCooper upgrades to cooper's own server, over h1 and h1+TLS, and
// checks that the client reports what the server agreed and that bytes
// then flow both ways.
func TestDialCooper(t *testing.T) {
	cases := []struct {
		name        string
		server      []Option
		client      []UpgradeOption
		edit        func(r *http.Request)
		proto       string // the protocol both report
		subprotocol string // the subprotocol both report
	}{
		{name: "a WebSocket upgrade with a key cooper makes",
			server: []Option{Protocols("websocket")}, proto: "websocket"},
		{name: "WithProtocol sets Upgrade on a request without one",
			server: []Option{Protocols("websocket")}, edit: func(r *http.Request) { r.Header.Del("Upgrade") }, proto: "websocket"},
		{name: "the client's first subprotocol the server speaks is agreed",
			server: []Option{Protocols("websocket"), Subprotocols("v2.chat", "v1.chat")},
			client: []UpgradeOption{WithSubprotocols("v1.chat", "v2.chat")}, proto: "websocket", subprotocol: "v1.chat"},
		{name: "subprotocols the request carries are offered with those of WithSubprotocols",
			server: []Option{Protocols("websocket"), Subprotocols("v2.chat")},
			client: []UpgradeOption{WithSubprotocols("v1.chat")},
			edit:   func(r *http.Request) { r.Header.Set("Sec-WebSocket-Protocol", "v2.chat") }, proto: "websocket", subprotocol: "v2.chat"},
		{name: "no common subprotocol upgrades without one",
			server: []Option{Protocols("websocket"), Subprotocols("mqtt")},
			client: []UpgradeOption{WithSubprotocols("chat")}, proto: "websocket"},
		{name: "a generic protocol is upgraded to",
			server: []Option{Protocols("chat/2")}, edit: func(r *http.Request) { r.Header.Set("Upgrade", "chat/2") }, proto: "chat/2"},
		{name: "a generic protocol is matched ignoring ASCII case and reported as requested",
			server: []Option{Protocols("chat/2")}, edit: func(r *http.Request) { r.Header.Set("Upgrade", "Chat/2") }, proto: "Chat/2"},
		{name: "the WebSocket options are not applied to another protocol",
			server: []Option{Protocols("chat/2")}, client: []UpgradeOption{WithSubprotocols("v1"), WithDeflate(DeflateParams{})},
			edit: func(r *http.Request) { r.Header.Set("Upgrade", "chat/2") }, proto: "chat/2"},
	}
	run(t, func(t *testing.T, m mode) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, m, tc.server...)
				req := newClientRequest(t, f.clientURL("/ws"))
				req.Header.Set("Upgrade", "websocket")
				if tc.edit != nil {
					tc.edit(req)
				}
				var hs Handshake
				opts := f.dialOptions(WithUpgradeOptions(tc.client...), WithUpgradeOptions(WithHandshake(&hs)))
				if req.Header.Get("Upgrade") == "" {
					opts = append(opts, WithProtocol("websocket"))
				}
				conn := mustDial(t, req, opts...)
				got := wait(t, f.handled, "handler call")
				if hs.Protocol != tc.proto || hs.Subprotocol != tc.subprotocol {
					t.Errorf("client's Handshake = {%q, %q}, want {%q, %q}", hs.Protocol, hs.Subprotocol, tc.proto, tc.subprotocol)
				}
				if !tokenEqual(got.Protocol, tc.proto) || got.Subprotocol != tc.subprotocol {
					t.Errorf("server's Handshake = {%q, %q}, want {%q, %q}", got.Protocol, got.Subprotocol, tc.proto, tc.subprotocol)
				}
				if hs.Deflate != nil || got.Deflate != nil {
					t.Errorf("Deflate = %+v (client), %+v (server), want nil", hs.Deflate, got.Deflate)
				}
				if hs.Request == nil || hs.Request.Header.Get("Upgrade") == "" || hs.Request.Context() != req.Context() {
					t.Errorf("Handshake.Request = %v, want the request sent, with the caller's context", hs.Request)
				}
				checkSocket(t, m, conn)
				echo(t, conn, bufio.NewReader(conn), "ping")
			})
		}
	})
}

// TestDialDeflate offers permessage-deflate to cooper's server under each
// policy and checks that the client reports, in its Handshake, the
// parameters the server reports in its own.
func TestDialDeflate(t *testing.T) {
	p := func(snct, cnct bool, smwb, cmwb int) *DeflateParams {
		return &DeflateParams{ServerNoContextTakeover: snct, ClientNoContextTakeover: cnct, ServerMaxWindowBits: smwb, ClientMaxWindowBits: cmwb}
	}
	cases := []struct {
		name           string
		policy         *DeflateParams // the server's Deflate; nil: off
		offer          *DeflateParams // the client's WithDeflate; nil: none
		client, server *DeflateParams // what each side reports
	}{
		{name: "the default offer is agreed with context takeover and full windows",
			policy: p(false, false, 0, 0), offer: p(false, false, 0, 0), client: p(false, false, 15, 15), server: p(false, false, 15, 15)},
		{name: "the server's no-context-takeover policy reaches the client",
			policy: p(true, true, 0, 0), offer: p(false, false, 0, 0), client: p(true, true, 15, 15), server: p(true, true, 15, 15)},
		{name: "the client's server_no_context_takeover binds the server",
			policy: p(false, false, 0, 0), offer: p(true, false, 0, 0), client: p(true, false, 15, 15), server: p(true, false, 15, 15)},
		{name: "the client's client_no_context_takeover is answered",
			policy: p(false, false, 0, 0), offer: p(false, true, 0, 0), client: p(false, true, 15, 15), server: p(false, true, 15, 15)},
		{name: "the server limits the client's window through client_max_window_bits",
			policy: p(false, false, 0, 10), offer: p(false, false, 0, 0), client: p(false, false, 15, 10), server: p(false, false, 15, 10)},
		{name: "the client's own window limit is agreed",
			policy: p(false, false, 0, 0), offer: p(false, false, 0, 12), client: p(false, false, 15, 12), server: p(false, false, 15, 12)},
		{name: "the smaller of both client windows is agreed",
			policy: p(false, false, 0, 9), offer: p(false, false, 0, 12), client: p(false, false, 15, 9), server: p(false, false, 15, 9)},
		{name: "a server window the server keeps is agreed",
			policy: p(false, false, 12, 0), offer: p(false, false, 12, 0), client: p(false, false, 12, 15), server: p(false, false, 12, 15)},
		// The server compresses with 10 bits but does not say so unasked;
		// the client must then assume 15, which can read anything.
		{name: "a server window not asked for is reported as 15 by the client",
			policy: p(false, false, 10, 0), offer: p(false, false, 0, 0), client: p(false, false, 15, 15), server: p(false, false, 10, 15)},
		{name: "a server window smaller than the server keeps is declined",
			policy: p(false, false, 0, 0), offer: p(false, false, 10, 0)},
		{name: "a server without Deflate declines the offer",
			offer: p(true, true, 0, 0)},
		{name: "a client without WithDeflate offers nothing",
			policy: p(false, false, 0, 0)},
	}
	run(t, func(t *testing.T, m mode) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				opts := []Option{Protocols("websocket")}
				if tc.policy != nil {
					opts = append(opts, Deflate(*tc.policy))
				}
				f := newFixture(t, m, opts...)
				var hs Handshake
				uopts := []UpgradeOption{WithHandshake(&hs)}
				if tc.offer != nil {
					uopts = append(uopts, WithDeflate(*tc.offer))
				}
				conn := mustDial(t, newClientRequest(t, f.clientURL("/")), f.dialOptions(WithProtocol("websocket"), WithUpgradeOptions(uopts...))...)
				got := wait(t, f.handled, "handler call")
				if !equalDeflate(hs.Deflate, tc.client) {
					t.Errorf("client's Deflate = %+v, want %+v", hs.Deflate, tc.client)
				}
				if !equalDeflate(got.Deflate, tc.server) {
					t.Errorf("server's Deflate = %+v, want %+v", got.Deflate, tc.server)
				}
				echo(t, conn, bufio.NewReader(conn), "ping")
			})
		}
	})
}

// equalDeflate reports whether a and b are both nil or hold the same
// parameters.
func equalDeflate(a, b *DeflateParams) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

// A gatedConn holds its first Read until open is closed, so that what the
// server has sent by then arrives in that one read.
type gatedConn struct {
	net.Conn
	open <-chan struct{}
	once sync.Once
}

func (c *gatedConn) Read(p []byte) (int, error) {
	c.once.Do(func() {
		select {
		case <-c.open:
		case <-time.After(5 * time.Second):
		}
	})
	return c.Conn.Read(p)
}

// TestServerBytesAfterThe101 runs a cooper handler that writes as soon as
// it gets the connection. Those bytes must reach the caller first, then
// the connection carries bytes both ways. Over h1 the client's first read
// is held until the handler has written, so the bytes arrive with the 101
// and must be replayed by a connection with NetConn.
func TestServerBytesAfterThe101(t *testing.T) {
	const hello = "hello from the server, sent right after the 101"
	run(t, func(t *testing.T, m mode) {
		wrote := make(chan struct{})
		u := New(Protocols("websocket"))
		s := newServer(t, m, u.Handler(func(conn net.Conn, hs *Handshake) {
			defer conn.Close()
			io.WriteString(conn, hello)
			close(wrote)
			io.Copy(conn, conn)
		}))
		t.Cleanup(func() { u.Shutdown(context.Background()) })
		var conn net.Conn
		if m == h1 {
			raw, err := net.Dial("tcp", s.host())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { raw.Close() })
			req := newClientRequest(t, s.clientURL("/"))
			req.Header.Set("Upgrade", "websocket")
			if conn, err = Upgrade(&gatedConn{Conn: raw, open: wrote}, req); err != nil {
				t.Fatalf("Upgrade: %v", err)
			}
			nc, ok := conn.(interface{ NetConn() net.Conn })
			if !ok {
				t.Fatalf("connection is %T, want one that replays what came with the 101", conn)
			}
			if _, ok := nc.NetConn().(*gatedConn); !ok {
				t.Errorf("NetConn() = %T, want the connection given to Upgrade", nc.NetConn())
			}
		} else {
			conn = mustDial(t, newClientRequest(t, s.clientURL("/")), s.dialOptions(WithProtocol("websocket"))...)
		}
		br := bufio.NewReader(conn)
		got := make([]byte, len(hello))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != hello {
			t.Fatalf("first bytes = %q, %v, want %q", got, err, hello)
		}
		echo(t, conn, br, "and then both ways")
	})
}

// TestNoDeadlineLeftOnClient upgrades with a context whose deadline is
// short, waits past it, and checks that the connection still works: Dial
// and Upgrade leave no deadline behind.
func TestNoDeadlineLeftOnClient(t *testing.T) {
	const short = 200 * time.Millisecond
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"))
		t.Run("Dial", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), short)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", f.clientURL("/"), nil)
			conn := mustDial(t, req, f.dialOptions(WithProtocol("websocket"))...)
			<-ctx.Done()
			time.Sleep(short / 2)
			echo(t, conn, bufio.NewReader(conn), "still open")
		})
		t.Run("Upgrade", func(t *testing.T) {
			raw := f.dial(t) // with a deadline 10 s away, which Upgrade replaces, then clears
			ctx, cancel := context.WithTimeout(context.Background(), short)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "/", nil)
			req.Host = f.host()
			req.Header.Set("Upgrade", "websocket")
			conn, err := Upgrade(raw, req)
			if err != nil {
				t.Fatalf("Upgrade: %v", err)
			}
			if conn != raw {
				t.Errorf("Upgrade returned %T, want the connection given", conn)
			}
			<-ctx.Done()
			time.Sleep(short / 2)
			echo(t, conn, bufio.NewReader(conn), "still open")
		})
	})
}

// A deadlineConn records the deadlines set on it.
type deadlineConn struct {
	net.Conn
	mu        sync.Mutex
	deadlines []time.Time
}

func (c *deadlineConn) SetDeadline(d time.Time) error {
	c.mu.Lock()
	c.deadlines = append(c.deadlines, d)
	c.mu.Unlock()
	return c.Conn.SetDeadline(d)
}

// TestNoDeadlineLeftAfterFailedUpgrade checks that Upgrade clears conn's
// deadlines when it fails too, so that the caller, who keeps conn, can go
// on using it: after a refusal, and after the context's end has set a
// deadline in the past to abort the wait.
func TestNoDeadlineLeftAfterFailedUpgrade(t *testing.T) {
	cases := []struct {
		name    string
		answer  string // "": the server never answers
		timeout time.Duration
		err     error
	}{
		{"a refusal", "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 10 * time.Second, ErrUnexpectedStatus},
		{"the context's end", "", 200 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, tc.answer)
			raw, err := net.Dial("tcp", s.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			conn := &deadlineConn{Conn: raw}
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "ws://"+s.addr()+"/", nil)
			if _, err := Upgrade(conn, req); !errors.Is(err, tc.err) {
				t.Fatalf("Upgrade error = %v, want %v", err, tc.err)
			}
			conn.mu.Lock()
			defer conn.mu.Unlock()
			if n := len(conn.deadlines); n == 0 || !conn.deadlines[n-1].IsZero() {
				t.Errorf("deadlines set: %v, want the last one cleared", conn.deadlines)
			}
		})
	}
}

// TestDefaultClientTimeout checks that a request whose context has no
// deadline is bounded by 30 s, the context Dial dials with included, and
// that Upgrade clears the deadlines afterwards, whatever the caller had
// set.
func TestDefaultClientTimeout(t *testing.T) {
	if d, ok := mustHandshakeDeadline(t); !ok || d < 29*time.Second || d > 30*time.Second {
		t.Errorf("a context without a deadline gets one %v away, want 30 s", d)
	}
	f := newFixture(t, h1, Protocols("websocket"))
	var dialDeadline time.Duration
	d := &net.Dialer{ControlContext: func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
		deadline, _ := ctx.Deadline()
		dialDeadline = time.Until(deadline)
		return nil
	}}
	req, _ := http.NewRequest("GET", f.clientURL("/"), nil)
	mustDial(t, req, WithProtocol("websocket"), WithDialer(d)).Close()
	if dialDeadline < 29*time.Second || dialDeadline > 30*time.Second {
		t.Errorf("Dial dials with a deadline %v away, want 30 s", dialDeadline)
	}
	raw, err := net.Dial("tcp", f.host())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn := &deadlineConn{Conn: raw}
	req, _ = http.NewRequest("GET", f.clientURL("/"), nil)
	req.Header.Set("Upgrade", "websocket")
	if _, err := Upgrade(conn, req); err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if len(conn.deadlines) != 1 || !conn.deadlines[0].IsZero() {
		t.Fatalf("deadlines set: %v, want only their clearing", conn.deadlines)
	}
}

// TestDefaultTimeoutEndsHandshake has Dial and Upgrade, with a context
// without a deadline, wait for a server that never answers: the default
// bound, cut short for the test, ends the wait, as the context's own
// deadline would.
func TestDefaultTimeoutEndsHandshake(t *testing.T) {
	const timeout = 300 * time.Millisecond
	cases := []struct {
		name string
		call func(req *http.Request, addr string) (net.Conn, error)
	}{
		{"Dial", func(req *http.Request, _ string) (net.Conn, error) {
			return dial(req, rand.Reader, timeout, nil)
		}},
		{"Upgrade", func(req *http.Request, addr string) (net.Conn, error) {
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				return nil, err
			}
			defer raw.Close()
			return upgrade(raw, req, rand.Reader, timeout, nil)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, "")
			start := time.Now()
			conn, err := tc.call(wsRequest("ws://"+s.addr()+"/"), s.addr())
			if err == nil {
				conn.Close()
				t.Fatal("the upgrade succeeded")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the upgrade took %v, with a bound of %v", d, timeout)
			}
			const want = "cooper: read response: context deadline exceeded"
			if !errors.Is(err, ErrReadResponse) || !errors.Is(err, context.DeadlineExceeded) || err.Error() != want {
				t.Errorf("error = %v, want %q matching ErrReadResponse and context.DeadlineExceeded", err, want)
			}
		})
	}
}

// mustHandshakeDeadline returns how far away the deadline is that
// handshakeContext gives a context without one.
func mustHandshakeDeadline(t *testing.T) (time.Duration, bool) {
	t.Helper()
	ctx, cancel := handshakeContext(context.Background(), clientTimeout)
	defer cancel()
	d, ok := ctx.Deadline()
	return time.Until(d), ok
}

// TestHandshakeContextKeepsDeadline checks that a context with a deadline
// keeps it, however far away it is.
func TestHandshakeContextKeepsDeadline(t *testing.T) {
	want := time.Now().Add(time.Hour)
	parent, cancel := context.WithDeadline(context.Background(), want)
	defer cancel()
	ctx, cancel2 := handshakeContext(parent, clientTimeout)
	defer cancel2()
	if d, ok := ctx.Deadline(); !ok || !d.Equal(want) {
		t.Errorf("deadline = %v, %v, want %v", d, ok, want)
	}
}

// A writeCounter counts the writes on a connection.
type writeCounter struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// A loopback is a TCP listener on 127.0.0.1 that serves every connection
// it accepts on a goroutine of its own; the client's tests build their
// hand-written servers on it. The test's cleanup closes the listener and
// every connection tracked, and waits for those goroutines.
type loopback struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	closed bool // by the cleanup: track closes what comes after
}

// newLoopback listens on a loopback port; serve starts accepting.
func newLoopback(t *testing.T) *loopback {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &loopback{ln: ln}
	t.Cleanup(func() {
		ln.Close()
		l.mu.Lock()
		l.closed = true
		for _, c := range l.conns {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return l
}

// addr is the listener's host:port.
func (l *loopback) addr() string { return l.ln.Addr().String() }

// serve starts accepting connections and serves each with fn on a
// goroutine of its own, closing it when fn returns.
func (l *loopback) serve(fn func(c net.Conn)) {
	l.wg.Add(1)
	go l.accept(fn)
}

// accept serves connections with fn until the listener is closed.
func (l *loopback) accept(fn func(c net.Conn)) {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		l.track(c)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer c.Close()
			fn(c)
		}()
	}
}

// track adds c, accepted or dialled by a server, to the connections the
// cleanup closes; once the cleanup has run, it closes c at once, so that a
// connection accepted just before the listener closed cannot hold the
// cleanup's wait.
func (l *loopback) track(c net.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return
	}
	l.conns = append(l.conns, c)
}

// A rawRequest is a request head as a rawServer read it.
type rawRequest struct {
	head string
	req  *http.Request
}

// A rawServer is a loopback server that answers with canned bytes: on
// every connection it reads a request head and records it, then writes
// the answer in one write and closes, or, when the answer is "", holds the
// connection until the client closes it.
type rawServer struct {
	*loopback
	answer string
	reqs   chan rawRequest
}

// newRawServer starts a rawServer; the test's cleanup stops it and waits
// for its goroutines.
func newRawServer(t *testing.T, answer string) *rawServer {
	t.Helper()
	s := &rawServer{loopback: newLoopback(t), answer: answer, reqs: make(chan rawRequest, 16)}
	s.serve(s.answerConn)
	return s
}

// answerConn reads one request head on c and answers it.
func (s *rawServer) answerConn(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil {
			return
		}
		if line == "\r\n" {
			break
		}
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head.String())))
	if err != nil {
		return
	}
	s.reqs <- rawRequest{head.String(), req}
	if s.answer == "" {
		io.Copy(io.Discard, br)
		return
	}
	c.Write([]byte(s.answer))
}

// The Sec-WebSocket-Accept for testKey, and a valid 101 for it without the
// blank line that ends it.
const (
	testAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	head101    = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n"
)

// TestMisbehavingServer answers a WebSocket request (key testKey, offers
// set by each case) with canned bytes, one defect per case, then closes,
// and checks the exact error, the sentinel it matches, and that a valid
// answer passes, with the bytes after its head replayed to the caller and
// then the end of the connection.
func TestMisbehavingServer(t *testing.T) {
	errRejected := errors.New("no session cookie")
	pmd := func(o DeflateParams) []UpgradeOption { return []UpgradeOption{WithDeflate(o)} }
	cases := []struct {
		name   string
		opts   []UpgradeOption
		edit   func(r *http.Request)
		answer string
		err    error  // nil: the upgrade succeeds
		msg    string // the error's message
		replay string // on success, what the caller reads before the end
	}{
		{name: "a valid 101 is accepted",
			answer: head101 + "\r\n"},
		{name: "interim 1xx answers before the 101 are skipped",
			answer: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </app.js>\r\n\r\n" + head101 + "\r\n"},
		{name: "a wrong Sec-WebSocket-Accept is refused",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testKey + "\r\n\r\n",
			err:    ErrAcceptMismatch, msg: `cooper: Sec-WebSocket-Accept: "dGhlIHNhbXBsZSBub25jZQ==" does not match the key`},
		{name: "a missing Sec-WebSocket-Accept is refused",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
			err:    ErrAcceptMismatch, msg: `cooper: Sec-WebSocket-Accept: missing from the 101`},
		{name: "Sec-WebSocket-Accept sent twice is refused",
			answer: head101 + "Sec-WebSocket-Accept: " + testAccept + "\r\n\r\n",
			err:    ErrAcceptMismatch, msg: `cooper: Sec-WebSocket-Accept: sent 2 times`},
		{name: "200 instead of 101 is refused",
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			err:    ErrUnexpectedStatus, msg: `cooper: status: "200 OK" is not 101 Switching Protocols`},
		{name: "a refusal's body that came with its head is quoted",
			answer: "HTTP/1.1 403 Forbidden\r\nContent-Length: 23\r\n\r\nno upgrades from there\n",
			err:    ErrUnexpectedStatus, msg: `cooper: status: "403 Forbidden" is not 101 Switching Protocols; body "no upgrades from there"`},
		{name: "a subprotocol that was not offered is refused",
			opts:   []UpgradeOption{WithSubprotocols("chat", "superchat")},
			answer: head101 + "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
			err:    ErrSubprotocolMismatch, msg: `cooper: Sec-WebSocket-Protocol: "mqtt" was not offered`},
		{name: "a subprotocol offered in another case is refused",
			opts:   []UpgradeOption{WithSubprotocols("chat")},
			answer: head101 + "Sec-WebSocket-Protocol: Chat\r\n\r\n",
			err:    ErrSubprotocolMismatch, msg: `cooper: Sec-WebSocket-Protocol: "Chat" was not offered`},
		{name: "a subprotocol answered when none was offered is refused",
			answer: head101 + "Sec-WebSocket-Protocol: chat\r\n\r\n",
			err:    ErrSubprotocolMismatch, msg: `cooper: Sec-WebSocket-Protocol: "chat" answered, but none was offered`},
		{name: "two subprotocols in one answer are refused",
			opts:   []UpgradeOption{WithSubprotocols("chat", "superchat")},
			answer: head101 + "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n",
			err:    ErrSubprotocolMismatch, msg: `cooper: Sec-WebSocket-Protocol: "chat, superchat" is not one subprotocol`},
		{name: "Sec-WebSocket-Protocol sent twice is refused",
			opts:   []UpgradeOption{WithSubprotocols("chat")},
			answer: head101 + "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
			err:    ErrSubprotocolMismatch, msg: `cooper: Sec-WebSocket-Protocol: sent 2 times`},
		{name: "an offered subprotocol is agreed",
			opts:   []UpgradeOption{WithSubprotocols("chat", "superchat")},
			answer: head101 + "Sec-WebSocket-Protocol: superchat\r\n\r\n"},
		{name: "client_max_window_bits answered but not offered is refused",
			edit:   func(r *http.Request) { r.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate") },
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: permessage-deflate has client_max_window_bits, which was not offered`},
		{name: "client_max_window_bits larger than offered is refused",
			opts:   pmd(DeflateParams{ClientMaxWindowBits: 10}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=12\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: permessage-deflate has client_max_window_bits=12, more than the 10 offered`},
		{name: "server_max_window_bits larger than offered is refused",
			opts:   pmd(DeflateParams{ServerMaxWindowBits: 10}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: permessage-deflate has server_max_window_bits=12, more than the 10 offered`},
		{name: "server_max_window_bits missing when offered is refused",
			opts:   pmd(DeflateParams{ServerMaxWindowBits: 10}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: permessage-deflate lacks server_max_window_bits, offered as 10`},
		{name: "server_no_context_takeover missing when offered is refused",
			opts:   pmd(DeflateParams{ServerNoContextTakeover: true}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: permessage-deflate lacks server_no_context_takeover, which was offered`},
		{name: "an extension that was not offered is refused",
			opts:   pmd(DeflateParams{}),
			answer: head101 + "Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: "x-webkit-deflate-frame" was not offered`},
		{name: "permessage-deflate answered when not offered is refused",
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: "permessage-deflate" was not offered`},
		{name: "a permessage-deflate parameter given twice is refused",
			opts:   pmd(DeflateParams{}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; Server_No_Context_Takeover\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: permessage-deflate has server_no_context_takeover twice`},
		{name: "permessage-deflate answered twice is refused",
			opts:   pmd(DeflateParams{}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: "permessage-deflate" is answered twice`},
		{name: "an unknown permessage-deflate parameter is refused",
			opts:   pmd(DeflateParams{}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate; max_window_bits=10\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: permessage-deflate has an unknown parameter "max_window_bits"`},
		{name: "a window of 16 bits is refused",
			opts:   pmd(DeflateParams{}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: permessage-deflate has server_max_window_bits="16", not 8 to 15`},
		{name: "client_max_window_bits without a value in an answer is refused",
			opts:   pmd(DeflateParams{}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: permessage-deflate has client_max_window_bits without a value`},
		{name: "client_no_context_takeover with a value is refused",
			opts:   pmd(DeflateParams{}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover=1\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: permessage-deflate has client_no_context_takeover with a value, "1"`},
		{name: "a malformed extension list is refused",
			opts:   pmd(DeflateParams{}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate; =\r\n\r\n",
			err:    ErrExtensionMismatch, msg: `cooper: Sec-WebSocket-Extensions: "permessage-deflate; =" is not a valid extension list`},
		{name: "a valid permessage-deflate answer is agreed",
			opts:   pmd(DeflateParams{ServerMaxWindowBits: 10, ClientMaxWindowBits: 12}),
			answer: head101 + "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9; client_max_window_bits=\"11\"; client_no_context_takeover\r\n\r\n"},
		{name: "an extension the caller offered itself is let through",
			edit:   func(r *http.Request) { r.Header.Set("Sec-WebSocket-Extensions", "x-custom; level=2") },
			answer: head101 + "Sec-WebSocket-Extensions: x-custom; level=1\r\n\r\n"},
		{name: "an Upgrade that is not the protocol requested is refused",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n",
			err:    ErrProtocolMismatch, msg: `cooper: Upgrade: "h2c" is not the "websocket" requested`},
		{name: "an Upgrade listing more than the protocol requested is refused",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n",
			err:    ErrProtocolMismatch, msg: `cooper: Upgrade: "websocket, h2c" is not the "websocket" requested`},
		{name: "an Upgrade with empty list elements around the protocol requested is accepted",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: ,\r\nUpgrade: websocket ,\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n"},
		{name: "an Upgrade that is not a protocol list is refused",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket/\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n",
			err:    ErrProtocolMismatch, msg: `cooper: Upgrade: "websocket/" is not the "websocket" requested`},
		{name: "a missing Upgrade is refused",
			answer: "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n",
			err:    ErrMissingUpgradeHeader, msg: `cooper: Upgrade: missing from the 101`},
		{name: "a missing Connection is refused",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n",
			err:    ErrMissingConnectionHeader, msg: `cooper: Connection: missing from the 101`},
		{name: "a Connection without the upgrade token is refused",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n",
			err:    ErrMissingConnectionHeader, msg: `cooper: Connection: "keep-alive" has no "upgrade" token`},
		{name: "a Connection that is not a token list is refused",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: up grade\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n",
			err:    ErrMissingConnectionHeader, msg: `cooper: Connection: "up grade" is not a valid list`},
		{name: "the Connection token is found on any line, in any case",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive\r\nConnection: UPGRADE\r\nSec-WebSocket-Accept: " + testAccept + "\r\n\r\n"},
		{name: "a generic upgrade answered with another protocol is refused",
			edit: func(r *http.Request) {
				r.Header.Set("Upgrade", "chat/2")
				r.Header.Del("Sec-WebSocket-Key")
			},
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: chat/3\r\nConnection: upgrade\r\n\r\n",
			err:    ErrProtocolMismatch, msg: `cooper: Upgrade: "chat/3" is not the "chat/2" requested`},
		{name: "a generic upgrade needs no Sec-WebSocket-Accept",
			edit: func(r *http.Request) {
				r.Header.Set("Upgrade", "chat/2")
				r.Header.Del("Sec-WebSocket-Key")
			},
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: CHAT/2\r\nConnection: upgrade\r\n\r\n"},
		{name: "a WithResponseValidator's error fails the upgrade",
			opts: []UpgradeOption{WithResponseValidator(func(req *http.Request, resp *http.Response) error {
				if resp.Header.Get("Set-Cookie") == "" {
					return errRejected
				}
				return nil
			})},
			answer: head101 + "\r\n",
			err:    errRejected, msg: `cooper: response validator: no session cookie`},
		{name: "a ResponseValidator's nil lets the upgrade through",
			opts:   []UpgradeOption{ResponseValidator(func(req *http.Request, resp *http.Response) error { return nil })},
			answer: head101 + "\r\n"},
		{name: "ResponseValidator, the older spelling, still fails the upgrade",
			opts:   []UpgradeOption{ResponseValidator(func(req *http.Request, resp *http.Response) error { return errRejected })},
			answer: head101 + "\r\n",
			err:    errRejected, msg: `cooper: response validator: no session cookie`},
		{name: "an HTTP/1.0 101 is refused",
			answer: strings.Replace(head101, "HTTP/1.1", "HTTP/1.0", 1) + "\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: version "HTTP/1.0" of the 101 is not HTTP/1.1`},
		{name: "an HTTP/2.0 101 is refused",
			answer: strings.Replace(head101, "HTTP/1.1", "HTTP/2.0", 1) + "\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: version "HTTP/2.0" of the 101 is not HTTP/1.1`},
		{name: "an HTTP/9.9 101 is refused",
			answer: strings.Replace(head101, "HTTP/1.1", "HTTP/9.9", 1) + "\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: version "HTTP/9.9" of the 101 is not HTTP/1.1`},
		{name: "a refusal in HTTP/1.0 is reported by its status",
			answer: "HTTP/1.0 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
			err:    ErrUnexpectedStatus, msg: `cooper: status: "403 Forbidden" is not 101 Switching Protocols`},
		{name: "an answer that is not HTTP is refused",
			answer: "SSH-2.0-OpenSSH_9.6\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: malformed HTTP response "SSH-2.0-OpenSSH_9.6"`},
		{name: "a server that closes halfway through its answer is refused",
			answer: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: unexpected EOF`},
		{name: "a response head longer than 1 MiB is refused",
			answer: head101 + "X-Padding: " + strings.Repeat("a", 1<<20) + "\r\n\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: head longer than 1048576 bytes`},
		{name: "header lines that add up to more than 1 MiB are refused",
			answer: head101 + manyHeaderLines(1<<20) + "\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: head longer than 1048576 bytes`},
		{name: "a malformed status line of nearly 1 MiB is quoted cut",
			answer: strings.Repeat("x", 1<<19) + "\r\n\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: malformed HTTP response "` + strings.Repeat("x", 103) + `...`},
		{name: "a malformed header line of nearly 1 MiB is quoted cut",
			answer: head101 + strings.Repeat("\x01", 1<<19) + "\r\n\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: malformed MIME header: missing colon: "` + strings.Repeat(`\x01`, 22) + `\...`},
		{name: "more interim answers than are skipped are refused",
			answer: strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </app.js>\r\n\r\n", 6) + head101 + "\r\n",
			err:    ErrUnexpectedStatus, msg: `cooper: status: "103 Early Hints" is not 101 Switching Protocols`},
		{name: "the bytes after a 101 are replayed, then the end of the connection",
			answer: head101 + "\r\n\x81\x05hello", replay: "\x81\x05hello"},
		{name: "a Content-Length on a 101 frames no body: the bytes after it are replayed",
			answer: head101 + "Content-Length: 5\r\n\r\nhello, and more", replay: "hello, and more"},
		{name: "a Transfer-Encoding on a 101 frames no body: the bytes after it are replayed",
			answer: head101 + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", replay: "5\r\nhello\r\n0\r\n\r\n"},
		{name: "two different Content-Lengths on a 101 are refused",
			answer: head101 + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: http: message cannot contain multiple Content-Length headers; got ["5" "6"]`},
		{name: "a Content-Length on a 101 that is not a number is refused",
			answer: head101 + "Content-Length: five\r\n\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: bad Content-Length "five"`},
		{name: "a Transfer-Encoding on a 101 other than chunked is refused",
			answer: head101 + "Transfer-Encoding: gzip\r\n\r\n",
			err:    ErrReadResponse, msg: `cooper: read response: unsupported transfer encoding: "gzip"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, tc.answer)
			req := newClientRequest(t, "ws://"+s.addr()+"/")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Key", testKey)
			if tc.edit != nil {
				tc.edit(req)
			}
			conn, err := Dial(req, WithUpgradeOptions(tc.opts...))
			if tc.err == nil {
				if err != nil {
					t.Fatalf("Dial: %v, want success", err)
				}
				defer conn.Close()
				if got, err := io.ReadAll(conn); string(got) != tc.replay || err != nil {
					t.Errorf("the caller read %q, %v, want %q then the end", got, err, tc.replay)
				}
				return
			}
			if err == nil {
				conn.Close()
				t.Fatalf("Dial succeeded, want %v", tc.err)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("Dial error %q does not match %q", err, tc.err)
			}
			if tc.err == errRejected && !errors.Is(err, ErrResponseValidator) {
				t.Errorf("Dial error %q does not match ErrResponseValidator", err)
			}
			if err.Error() != tc.msg {
				t.Errorf("Dial error =\n%s\nwant\n%s", err, tc.msg)
			}
		})
	}
}

// manyHeaderLines returns header lines, each with a name of its own, that
// add up to n bytes or a little more.
func manyHeaderLines(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "X-%d: v\r\n", i)
	}
	return b.String()
}

// TestExtensionFaultOrder checks which fault the client reports when an
// extensions answer has several: a list that is not well-formed before
// any other, so a permessage-deflate answer after the first fault is still
// parsed, and otherwise the first fault, which a valid extension after it
// does not hide. A list of offers that is not well-formed offers nothing.
func TestExtensionFaultOrder(t *testing.T) {
	const prefix = "cooper: Sec-WebSocket-Extensions: "
	cases := []struct{ name, offer, answer, msg string }{
		{name: "a malformed permessage-deflate after another fault makes the list malformed",
			offer: "permessage-deflate", answer: "x-unoffered, permessage-deflate; =",
			msg: prefix + `"x-unoffered, permessage-deflate; =" is not a valid extension list`},
		{name: "a valid permessage-deflate after a fault does not hide it",
			offer: "permessage-deflate", answer: "x-unoffered, permessage-deflate",
			msg: prefix + `"x-unoffered" was not offered`},
		{name: "a malformed list of offers offers nothing",
			offer: "permessage-deflate, permessage-deflate; =", answer: "permessage-deflate",
			msg: prefix + `"permessage-deflate" was not offered`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agreed, err := verifyExtensions([]string{tc.offer}, []string{tc.answer})
			if agreed != nil || !errors.Is(err, ErrExtensionMismatch) || err.Error() != tc.msg {
				t.Errorf("verifyExtensions(%q, %q) = %+v, %v, want %q", tc.offer, tc.answer, agreed, err, tc.msg)
			}
		})
	}
}

// TestDialClosesOnError checks that a failed Dial leaves no connection
// open: the server, which answers the first bytes it reads with a refusal,
// then sees the client close, whether the upgrade or the TLS handshake
// before it failed.
func TestDialClosesOnError(t *testing.T) {
	cases := []struct {
		name   string
		scheme string
		err    error
	}{
		{"a refused upgrade closes the connection", "ws", ErrUnexpectedStatus},
		{"a failed TLS handshake closes the connection", "wss", ErrTLSHandshakeFailed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLoopback(t)
			closed := make(chan error, 1)
			l.serve(func(c net.Conn) {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Read(make([]byte, 4096)); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
				_, err := io.Copy(io.Discard, c)
				closed <- err
			})
			req := newClientRequest(t, tc.scheme+"://"+l.addr()+"/")
			if conn, err := Dial(req); !errors.Is(err, tc.err) {
				if err == nil {
					conn.Close()
				}
				t.Fatalf("Dial error = %v, want %v", err, tc.err)
			}
			if err := wait(t, closed, "close by the client"); err != nil {
				t.Errorf("the server read %v, want the client's close", err)
			}
		})
	}
}

// TestFramesWithThe101 has the server send frames in the same write as the
// 101: the caller must read each byte of them exactly once, then the end
// of the connection, through a connection whose NetConn is the socket.
func TestFramesWithThe101(t *testing.T) {
	frames := "\x81\x05hello\x82\x03\x01\x02\x03" + strings.Repeat("\x81\x01x", 300)
	s := newRawServer(t, head101+"\r\n"+frames)
	req := newClientRequest(t, "ws://"+s.addr()+"/")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Key", testKey)
	conn := mustDial(t, req)
	nc, ok := conn.(interface{ NetConn() net.Conn })
	if !ok {
		t.Fatalf("connection is %T, want one that replays the frames", conn)
	}
	if _, ok := nc.NetConn().(*net.TCPConn); !ok {
		t.Errorf("NetConn() = %T, want *net.TCPConn", nc.NetConn())
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != frames {
		t.Fatalf("read %d bytes %q..., want the %d bytes sent once", len(got), got[:min(len(got), 16)], len(frames))
	}
}

// TestClientContext checks that the request's context bounds the
// handshake: a server that never answers, a context cancelled while the
// client waits, a context cancelled before dialing, and a cause given to
// the cancellation all end the call at once with an error naming why.
func TestClientContext(t *testing.T) {
	errGone := errors.New("user went away")
	cases := []struct {
		name   string
		ctx    func() (context.Context, context.CancelFunc)
		cancel bool  // cancel once the server has the request
		err    error // the sentinel
		cause  error
		msg    string
	}{
		{name: "a server that never answers times out at the context's deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 200*time.Millisecond)
			},
			err: ErrReadResponse, cause: context.DeadlineExceeded, msg: "cooper: read response: context deadline exceeded"},
		{name: "cancelling the context aborts the wait for the answer",
			ctx:    func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			cancel: true, err: ErrReadResponse, cause: context.Canceled, msg: "cooper: read response: context canceled"},
		{name: "a context cancelled before Dial does not dial",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			err: ErrDialFailed, cause: context.Canceled, msg: "cooper: dial: context canceled"},
		{name: "the cause of a cancellation is the error's",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancelCause(context.Background())
				return ctx, func() { cancel(errGone) }
			},
			cancel: true, err: ErrReadResponse, cause: errGone, msg: "cooper: read response: user went away"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, "")
			ctx, cancel := tc.ctx()
			defer cancel()
			if tc.cancel {
				go func() {
					select {
					case <-s.reqs:
					case <-time.After(5 * time.Second):
					}
					cancel()
				}()
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", "ws://"+s.addr()+"/", nil)
			req.Header.Set("Upgrade", "websocket")
			start := time.Now()
			conn, err := Dial(req)
			if err == nil {
				conn.Close()
				t.Fatal("Dial succeeded")
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Dial took %v", d)
			}
			if !errors.Is(err, tc.err) || !errors.Is(err, tc.cause) {
				t.Errorf("Dial error %q does not match %q and %q", err, tc.err, tc.cause)
			}
			if err.Error() != tc.msg {
				t.Errorf("Dial error = %q, want %q", err, tc.msg)
			}
		})
	}
}

// TestHostileServer has a server, or a proxy, that a canned answer cannot
// play misbehave on the socket: it drips its answer or its TLS handshake,
// never answers, resets the connection, or answers a CONNECT with what ends
// badly. Each Dial
// must end by the context's deadline at the latest, with the error
// matching its sentinel and cause; or succeed, when the 101 was whole,
// and hand the caller the bytes after it, then the reset.
func TestHostileServer(t *testing.T) {
	const dripLines = "X-Drip: v\r\n"
	cases := []struct {
		name    string
		proxy   bool // the server is the proxy that Dial is told to use
		tls     bool // Dial asks for wss, and the server reads no request
		serve   func(c *net.TCPConn, br *bufio.Reader, wrote *atomic.Int64)
		timeout time.Duration // of the request's context; 5 s when 0
		wrote   int64         // the least the server must have written
		err     error         // nil: the upgrade succeeds
		cause   error
		msg     string // "": any message of cooper's
		replay  string // on success, what the caller reads before the reset
	}{
		{name: "an answer dripped a byte at a time is cut off by the context's deadline",
			serve:   func(c *net.TCPConn, _ *bufio.Reader, wrote *atomic.Int64) { drip(c, head101, dripLines, wrote) },
			timeout: time.Second, wrote: 2,
			err: ErrReadResponse, cause: context.DeadlineExceeded, msg: "cooper: read response: context deadline exceeded"},
		{name: "a TLS handshake dripped a byte at a time is cut off by the context's deadline",
			tls: true, serve: func(c *net.TCPConn, _ *bufio.Reader, wrote *atomic.Int64) {
				drip(c, "\x16\x03\x03\x40\x00", "\x00", wrote) // a handshake record of 16 KiB
			},
			timeout: time.Second, wrote: 2,
			err: ErrTLSHandshakeFailed, cause: context.DeadlineExceeded, msg: "cooper: TLS handshake: context deadline exceeded"},
		{name: "a 101 then a reset hands the caller the reset",
			serve: func(c *net.TCPConn, _ *bufio.Reader, _ *atomic.Int64) { reset(c, head101+"\r\n") }},
		{name: "a 101 with bytes after it then a reset hands the caller the bytes, then the reset",
			serve:  func(c *net.TCPConn, _ *bufio.Reader, _ *atomic.Int64) { reset(c, head101+"\r\n\x81\x02hi") },
			replay: "\x81\x02hi"},
		{name: "a reset halfway through the answer is refused",
			serve: func(c *net.TCPConn, _ *bufio.Reader, _ *atomic.Int64) { reset(c, head101) },
			err:   ErrReadResponse},
		{name: "a proxy that never answers CONNECT is cut off by the context's deadline",
			proxy: true, serve: func(c *net.TCPConn, br *bufio.Reader, _ *atomic.Int64) { io.Copy(io.Discard, br) },
			timeout: 300 * time.Millisecond,
			err:     ErrDialFailed, cause: context.DeadlineExceeded, msg: "cooper: proxy: read answer to CONNECT: context deadline exceeded"},
		{name: "a proxy that drips its answer to CONNECT is cut off by the context's deadline",
			proxy: true, serve: func(c *net.TCPConn, _ *bufio.Reader, wrote *atomic.Int64) {
				drip(c, "HTTP/1.1 200 Connection established\r\n", dripLines, wrote)
			},
			timeout: time.Second, wrote: 2,
			err: ErrDialFailed, cause: context.DeadlineExceeded, msg: "cooper: proxy: read answer to CONNECT: context deadline exceeded"},
		{name: "a proxy whose answer to CONNECT never ends is refused after 1 MiB",
			proxy: true, serve: func(c *net.TCPConn, _ *bufio.Reader, _ *atomic.Int64) {
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n")
				for line := []byte(manyHeaderLines(64 << 10)); ; {
					if _, err := c.Write(line); err != nil {
						return
					}
				}
			},
			err: ErrDialFailed, msg: "cooper: proxy: read answer to CONNECT: head longer than 1048576 bytes"},
		{name: "a proxy that answers 200 then garbage fails the upgrade",
			proxy: true, serve: func(c *net.TCPConn, br *bufio.Reader, _ *atomic.Int64) {
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-OpenSSH_9.6\r\n")
				io.Copy(io.Discard, br)
			},
			err: ErrReadResponse, msg: `cooper: read response: malformed HTTP response "SSH-2.0-OpenSSH_9.6"`},
		{name: "a 101 in the same write as the proxy's 200 reaches the upgrade",
			proxy: true, serve: func(c *net.TCPConn, br *bufio.Reader, _ *atomic.Int64) {
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"+head101+"\r\n\x81\x02hi")
				http.ReadRequest(br)
				reset(c, "")
			},
			replay: "\x81\x02hi"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := newLoopback(t)
			var wrote atomic.Int64
			served := make(chan struct{})
			l.serve(func(c net.Conn) {
				defer close(served)
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				if !tc.tls {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
				}
				tc.serve(c.(*net.TCPConn), br, &wrote)
			})
			timeout := cmp.Or(tc.timeout, 5*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			target := "ws://" + l.addr() + "/"
			var opts []DialOption
			if tc.tls {
				target = "wss://" + l.addr() + "/"
			}
			if tc.proxy {
				target = "ws://127.0.0.1:1/"
				opts = append(opts, WithProxy(http.ProxyURL(&url.URL{Scheme: "http", Host: l.addr()})))
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", target, nil)
			req.Header.Set("Sec-WebSocket-Key", testKey)
			start := time.Now()
			conn, err := Dial(req, opts...)
			if d := time.Since(start); d > timeout+2*time.Second {
				t.Errorf("Dial took %v, with a context of %v", d, timeout)
			}
			if tc.err == nil {
				if err != nil {
					t.Fatalf("Dial: %v, want success", err)
				}
				defer conn.Close()
				if got, err := io.ReadAll(conn); string(got) != tc.replay || !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("the caller read %q, %v, want %q then the reset", got, err, tc.replay)
				}
				return
			}
			if err == nil {
				conn.Close()
				t.Fatalf("Dial succeeded, want %v", tc.err)
			}
			if !errors.Is(err, tc.err) || tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("Dial error %q does not match %v and %v", err, tc.err, tc.cause)
			}
			if tc.msg != "" && err.Error() != tc.msg || !strings.HasPrefix(err.Error(), "cooper: ") {
				t.Errorf("Dial error = %q, want %q", err, tc.msg)
			}
			wait(t, served, "the server's end once Dial closed the connection")
			if n := wrote.Load(); n < tc.wrote {
				t.Errorf("the server wrote %d bytes before Dial gave up, want at least %d", n, tc.wrote)
			}
		})
	}
}

// TestEndlessHeadAllocs bounds what a server that sends its head without
// end costs the client, whatever the lines are like: Upgrade reads no more
// than maxResponseHead bytes of it before refusing, and allocates no more
// than 32 times that meanwhile: net/http's parser makes a map entry, a
// slice and strings of each short line, 22 times the bytes at worst.
func TestEndlessHeadAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under coverage or the race detector")
	}
	const budget = 32 * maxResponseHead
	shapes := []struct{ name, head string }{
		{"lines with a name each", head101 + manyHeaderLines(maxResponseHead)},
		{"lines of one name without a value", head101 + strings.Repeat("A:\r\n", maxResponseHead/4)},
		{"one line", head101 + "X-Padding: " + strings.Repeat("a", maxResponseHead)},
		{"interim answers", strings.Repeat("HTTP/1.1 100 Continue\r\n"+manyHeaderLines(maxResponseHead/4)+"\r\n", max1xx)},
	}
	for _, tc := range shapes {
		t.Run(tc.name, func(t *testing.T) {
			answer := []byte(tc.head)
			buf := make([]byte, 4096)
			l := newLoopback(t)
			l.serve(func(c net.Conn) {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Read(buf); err == nil {
					c.Write(answer)
				}
			})
			raw, err := net.Dial("tcp", l.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			conn := &readCounter{Conn: raw}
			req := wsRequest("ws://" + l.addr() + "/")
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err = Upgrade(conn, req)
			runtime.ReadMemStats(&after)
			if want := "cooper: read response: head longer than 1048576 bytes"; !errors.Is(err, ErrReadResponse) || err.Error() != want {
				t.Errorf("Upgrade error = %v, want %q", err, want)
			}
			if conn.n > maxResponseHead {
				t.Errorf("Upgrade read %d bytes, more than the %d a head may have", conn.n, maxResponseHead)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("read %d bytes, allocated %d bytes (%.1f times the head's limit)", conn.n, alloc, float64(alloc)/maxResponseHead)
			if alloc > budget {
				t.Errorf("Upgrade allocated %d bytes, want at most %d", alloc, budget)
			}
		})
	}
}

// A readCounter counts the bytes read from a connection.
type readCounter struct {
	net.Conn
	n int
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n += n
	return n, err
}

// drip writes head to w a byte every 10 ms, then lines, over and over,
// until a write fails, counting the bytes written in wrote.
func drip(w io.Writer, head, lines string, wrote *atomic.Int64) {
	for i := 0; ; i++ {
		var b byte
		if i < len(head) {
			b = head[i]
		} else {
			b = lines[(i-len(head))%len(lines)]
		}
		if _, err := w.Write([]byte{b}); err != nil {
			return
		}
		wrote.Add(1)
		time.Sleep(10 * time.Millisecond)
	}
}

// reset writes b to c, then resets the connection instead of closing it.
func reset(c *net.TCPConn, b string) {
	io.WriteString(c, b)
	c.SetLinger(0)
	c.Close()
}

// TestAppendUpgradeRequestAllocs holds the encoding of a WebSocket upgrade
// request, with its subprotocol and permessage-deflate offers, to no
// allocation beyond the buffer it is given.
func TestAppendUpgradeRequestAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under coverage or the race detector")
	}
	r := wsRequest("ws://example.com/chat")
	r.Header.Set("Sec-WebSocket-Key", testKey)
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Protocol", "v2.chat, v1.chat")
	r.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
	r.Header.Set("Origin", "https://example.com")
	r.Header.Set("User-Agent", "test")
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := appendUpgradeRequest(buf[:0], r); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("appendUpgradeRequest allocates %v times, want 0", n)
	}
}

// TestRequestSent checks the exact bytes Dial sends: the request line with
// ws mapped away, Host, the caller's headers and the handshake's, sorted,
// in the RFC's spelling, a key from the nonce source, Authorization from
// the URL's user, no User-Agent; and that the caller's request is left as
// it was.
func TestRequestSent(t *testing.T) {
	s := newRawServer(t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"+
		"Sec-WebSocket-Accept: "+testAccept+"\r\nSec-WebSocket-Protocol: v1\r\n"+
		"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits=9\r\n\r\n")
	req := newClientRequest(t, "ws://user:p%40ss@"+s.addr()+"/chat?room=1")
	req.Header.Set("X-Trace", "abc")
	req.Header.Set("Connection", "keep-alive")
	req.Header["Host"] = []string{"ignored.example"}
	var hs Handshake
	nonce := bytes.NewReader([]byte("the sample nonce")) // testKey decoded
	conn, err := dial(req, nonce, clientTimeout, []DialOption{WithProtocol("websocket"), WithUpgradeOptions(
		WithSubprotocols("v2", "v1"), WithDeflate(DeflateParams{ClientNoContextTakeover: true, ClientMaxWindowBits: 10}), WithHandshake(&hs))})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	conn.Close()
	got := wait(t, s.reqs, "request").head
	want := "GET /chat?room=1 HTTP/1.1\r\n" +
		"Host: " + s.addr() + "\r\n" +
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("user:p@ss")) + "\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; client_max_window_bits=10\r\n" +
		"Sec-WebSocket-Key: " + testKey + "\r\n" +
		"Sec-WebSocket-Protocol: v2, v1\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Upgrade: websocket\r\n" +
		"X-Trace: abc\r\n" +
		"\r\n"
	if got != want {
		t.Errorf("request =\n%s\nwant\n%s", got, want)
	}
	wantHS := Handshake{Protocol: "websocket", Subprotocol: "v1",
		Deflate: &DeflateParams{ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 9}}
	if hs.Protocol != wantHS.Protocol || hs.Subprotocol != wantHS.Subprotocol || !equalDeflate(hs.Deflate, wantHS.Deflate) {
		t.Errorf("Handshake = {%q, %q, %+v}, want {%q, %q, %+v}", hs.Protocol, hs.Subprotocol, hs.Deflate, wantHS.Protocol, wantHS.Subprotocol, wantHS.Deflate)
	}
	if hs.Request.URL.Scheme != "http" || hs.Request.Header.Get("Sec-WebSocket-Key") != testKey {
		t.Errorf("Handshake.Request = %s with key %q, want the request sent", hs.Request.URL, hs.Request.Header.Get("Sec-WebSocket-Key"))
	}
	if req.URL.Scheme != "ws" || len(req.Header) != 3 || req.Header.Get("Connection") != "keep-alive" {
		t.Errorf("the caller's request was modified: %s %v", req.URL, req.Header)
	}
}

// TestRequestBuiltByHand checks that a request without a Method or a
// Host, as one built by hand may be, is sent as a GET with its URL's host,
// by Dial and by Upgrade alike.
func TestRequestBuiltByHand(t *testing.T) {
	for _, tc := range []struct {
		name    string
		upgrade bool // use Upgrade on a connection of our own rather than Dial
	}{{"Dial", false}, {"Upgrade", true}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, head101+"\r\n")
			req := newClientRequest(t, "ws://"+s.addr()+"/")
			req.Method, req.Host = "", ""
			req.Header.Set("Sec-WebSocket-Key", testKey)
			var conn net.Conn
			var err error
			if tc.upgrade {
				c, derr := net.Dial("tcp", s.addr())
				if derr != nil {
					t.Fatal(derr)
				}
				defer c.Close()
				conn, err = Upgrade(c, req)
			} else {
				conn, err = Dial(req)
			}
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			conn.Close()
			if got := wait(t, s.reqs, "request").req; got.Method != "GET" || got.Host != s.addr() {
				t.Errorf("%s sent %s with Host %q, want GET with the URL's, %q", tc.name, got.Method, got.Host, s.addr())
			}
		})
	}
}

// TestRequestKeepsCallerHeaders checks the caller's Connection with the
// upgrade token, key and spelling of Upgrade are sent as given, in one
// write, and that a fresh key is made for every request without one.
func TestRequestKeepsCallerHeaders(t *testing.T) {
	s := newRawServer(t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: "+testAccept+"\r\n\r\n")
	raw, err := net.Dial("tcp", s.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	req := newClientRequest(t, "http://"+s.addr()+"/")
	req.Header.Set("Connection", "keep-alive, Upgrade")
	req.Header.Set("Upgrade", "WebSocket")
	req.Header.Set("Sec-WebSocket-Key", " "+testKey)
	req.Header.Set("User-Agent", "cooper-test/1")
	wc := &writeCounter{Conn: raw}
	if _, err := Upgrade(wc, req); err != nil {
		t.Fatalf("Upgrade: %v", err)
	}
	if wc.writes != 1 {
		t.Errorf("the request took %d writes, want 1", wc.writes)
	}
	r := wait(t, s.reqs, "request").req
	for k, v := range map[string]string{"Connection": "keep-alive, Upgrade", "Upgrade": "WebSocket", "Sec-Websocket-Key": testKey, "User-Agent": "cooper-test/1"} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}

	keys := map[string]bool{}
	for range 3 {
		s := newRawServer(t, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		req := newClientRequest(t, "ws://"+s.addr()+"/")
		if _, err := Dial(req, WithProtocol("websocket")); !errors.Is(err, ErrUnexpectedStatus) {
			t.Fatalf("Dial error = %v, want ErrUnexpectedStatus", err)
		}
		key := wait(t, s.reqs, "request").req.Header.Get("Sec-WebSocket-Key")
		if !isValidKey(key) || keys[key] {
			t.Errorf("key %q is not a fresh 16-byte key", key)
		}
		keys[key] = true
	}
}

// TestRequestRefused checks the requests Dial and Upgrade refuse before
// sending anything, each with its sentinel and message.
func TestRequestRefused(t *testing.T) {
	s := newRawServer(t, "")
	cases := []struct {
		name string
		req  func() *http.Request
		opts []DialOption
		err  error
		msg  string
	}{
		{name: "a nil request is refused",
			req: func() *http.Request { return nil }, err: ErrNilRequest, msg: "cooper: request: nil"},
		{name: "a request without a URL is refused",
			req: func() *http.Request { return &http.Request{Header: http.Header{"Upgrade": {"websocket"}}} },
			err: ErrInvalidHost, msg: "cooper: URL: missing"},
		{name: "a scheme other than ws, wss, http and https is refused",
			req: func() *http.Request { return wsRequest("ftp://" + s.addr()) },
			err: ErrInvalidHost, msg: `cooper: URL: scheme "ftp" is not ws, wss, http or https`},
		{name: "a URL without a host is refused",
			req: func() *http.Request { return wsRequest("ws:///chat") },
			err: ErrInvalidHost, msg: `cooper: URL: "ws:///chat" has no valid host`},
		{name: "a port out of range is refused",
			req: func() *http.Request { return wsRequest("ws://127.0.0.1:70000/") },
			err: ErrInvalidHost, msg: `cooper: URL: port "70000" is not 1 to 65535`},
		{name: "a Host that cannot be sent is refused",
			req: func() *http.Request { r := wsRequest("ws://" + s.addr()); r.Host = "a b"; return r },
			err: ErrInvalidHost, msg: `cooper: Host: "a b" is not a valid host`},
		{name: "an http URL without Upgrade or WithProtocol is refused",
			req: func() *http.Request { r := wsRequest("http://" + s.addr()); r.Header.Del("Upgrade"); return r },
			err: ErrMissingUpgradeHeader, msg: "cooper: Upgrade: missing from the request, and neither WithProtocol nor a ws or wss URL"},
		{name: "an Upgrade that is not a protocol is refused",
			req: func() *http.Request {
				r := wsRequest("ws://" + s.addr())
				r.Header.Set("Upgrade", "web socket")
				return r
			},
			err: ErrMissingUpgradeHeader, msg: `cooper: Upgrade: "web socket" is not a valid protocol list`},
		{name: "an Upgrade with two protocols is refused",
			req: func() *http.Request {
				r := wsRequest("ws://" + s.addr())
				r.Header.Set("Upgrade", "websocket, h2c")
				return r
			},
			err: ErrProtocolConflict, msg: `cooper: Upgrade: "websocket, h2c" names more than one protocol`},
		{name: "an Upgrade other than WithProtocol's is refused",
			req: func() *http.Request { return wsRequest("ws://" + s.addr()) }, opts: []DialOption{WithProtocol("chat")},
			err: ErrProtocolConflict, msg: `cooper: Upgrade: "websocket" conflicts with WithProtocol("chat")`},
		{name: "a request with a body is refused",
			req: func() *http.Request {
				r, _ := http.NewRequest("GET", "ws://"+s.addr(), strings.NewReader("x"))
				r.Header.Set("Upgrade", "websocket")
				return r
			},
			err: ErrSendRequest, msg: "cooper: request body: an upgrade request has none"},
		{name: "a header value with a line break is refused",
			req: func() *http.Request {
				r := wsRequest("ws://" + s.addr())
				r.Header.Set("X-Evil", "a\r\nX-Injected: 1")
				return r
			},
			err: ErrSendRequest, msg: `cooper: X-Evil: value has a control byte: "a\r\nX-Injected: 1"`},
		{name: "a header name that is not a token is refused",
			req: func() *http.Request {
				r := wsRequest("ws://" + s.addr())
				r.Header["Bad Name"] = []string{"1"}
				return r
			},
			err: ErrSendRequest, msg: `cooper: header name: "Bad Name" is not a token`},
		{name: "a method that is not a token is refused",
			req: func() *http.Request { r := wsRequest("ws://" + s.addr()); r.Method = "GET /x"; return r },
			err: ErrSendRequest, msg: `cooper: method: "GET /x" is not a token`},
		{name: "a Sec-WebSocket-Key that is not 16 bytes is refused",
			req: func() *http.Request {
				r := wsRequest("ws://" + s.addr())
				r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=")
				return r
			},
			err: ErrSendRequest, msg: `cooper: Sec-WebSocket-Key: "c2hvcnQ=" does not decode to 16 bytes`},
		{name: "a proxy whose scheme is not http is refused",
			req:  func() *http.Request { return wsRequest("ws://" + s.addr()) },
			opts: []DialOption{WithProxy(http.ProxyURL(&url.URL{Scheme: "socks5", Host: s.addr()}))},
			err:  ErrDialFailed, msg: `cooper: proxy: scheme "socks5" is not http`},
		{name: "an error picking the proxy fails the dial",
			req: func() *http.Request { return wsRequest("ws://" + s.addr()) },
			opts: []DialOption{WithProxy(func(*http.Request) (*url.URL, error) {
				return nil, errors.New("no proxy configuration")
			})},
			err: ErrDialFailed, msg: `cooper: proxy: no proxy configuration`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := Dial(tc.req(), tc.opts...)
			if err == nil {
				conn.Close()
				t.Fatalf("Dial succeeded, want %v", tc.err)
			}
			if !errors.Is(err, tc.err) || err.Error() != tc.msg {
				t.Errorf("Dial error = %q, want %q matching %q", err, tc.msg, tc.err)
			}
		})
	}
	none(t, s.reqs, "request sent")

	t.Run("Upgrade refuses a nil connection", func(t *testing.T) {
		_, err := Upgrade(nil, wsRequest("ws://"+s.addr()))
		if !errors.Is(err, ErrSendRequest) || err.Error() != "cooper: connection: nil" {
			t.Errorf("Upgrade error = %v, want ErrSendRequest", err)
		}
	})
	t.Run("Upgrade refuses a nil request", func(t *testing.T) {
		_, err := Upgrade(&net.TCPConn{}, nil)
		if !errors.Is(err, ErrNilRequest) {
			t.Errorf("Upgrade error = %v, want ErrNilRequest", err)
		}
	})
	t.Run("a refused connection fails the dial", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = Dial(wsRequest("ws://" + addr))
		if !errors.Is(err, ErrDialFailed) || !errors.Is(err, syscall.ECONNREFUSED) || !strings.HasPrefix(err.Error(), "cooper: dial: dial tcp "+addr+": ") {
			t.Errorf("Dial error = %v, want ErrDialFailed wrapping ECONNREFUSED", err)
		}
	})
}

// wsRequest returns a request for rawURL with Upgrade: websocket.
func wsRequest(rawURL string) *http.Request {
	r, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		panic(err)
	}
	r.Header.Set("Upgrade", "websocket")
	return r
}

// TestClientOptionPanics checks that options refuse programmer errors when
// they are built, naming the option.
func TestClientOptionPanics(t *testing.T) {
	checkPanics(t, []panicCase{
		{"WithProtocol refuses a name that is not a protocol", func() { WithProtocol("web socket") }, `cooper: WithProtocol: "web socket" is not a protocol name`},
		{"WithProtocol refuses an empty name", func() { WithProtocol("") }, `cooper: WithProtocol: "" is not a protocol name`},
		{"WithSubprotocols refuses a list in one name", func() { WithSubprotocols("a", "b,c") }, `cooper: WithSubprotocols: "b,c" is not a token`},
		{"WithDeflate refuses a server window of 16 bits", func() { WithDeflate(DeflateParams{ServerMaxWindowBits: 16}) }, "cooper: WithDeflate: window bits 16 are not 8 to 15"},
		{"WithDeflate refuses a client window of 7 bits", func() { WithDeflate(DeflateParams{ClientMaxWindowBits: 7}) }, "cooper: WithDeflate: window bits 7 are not 8 to 15"},
		{"WithHandshake refuses nil", func() { WithHandshake(nil) }, "cooper: WithHandshake: nil Handshake"},
	})
}

// TestClientTLS checks where TLS comes from and how it is set up: the wss
// and https schemes and WithTLSConfig each turn it on, ALPN offers only
// HTTP/1.1 whatever the configuration offers, the configuration's
// ServerName is used as SNI, and without a configuration the system's
// roots are used.
func TestClientTLS(t *testing.T) {
	seen := make(chan *tls.ConnectionState, 16)
	u := New(Protocols("websocket"))
	ts := httptest.NewUnstartedServer(u.Handler(func(conn net.Conn, hs *Handshake) {
		defer conn.Close()
		seen <- hs.Request.TLS
		io.Copy(conn, conn)
	}))
	ts.EnableHTTP2 = true
	ts.TLS = &tls.Config{NextProtos: []string{"h2", "http/1.1"}} // the server prefers h2
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)              // a test fails a handshake on purpose
	ts.StartTLS()
	t.Cleanup(func() {
		ts.Close()
		u.Shutdown(context.Background())
	})
	roots := ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	host := ts.Listener.Addr().String()

	cases := []struct {
		name       string
		url        string
		cfg        *tls.Config
		serverName string // the SNI the server sees
	}{
		{name: "wss with a configuration that offers h2 first upgrades over HTTP/1.1",
			url: "wss://" + host, cfg: &tls.Config{RootCAs: roots, NextProtos: []string{"h2", "http/1.1"}}},
		{name: "https turns TLS on",
			url: "https://" + host, cfg: &tls.Config{RootCAs: roots}},
		{name: "WithTLSConfig turns TLS on for ws",
			url: "ws://" + host, cfg: &tls.Config{RootCAs: roots}},
		{name: "the configuration's ServerName is sent as SNI",
			url: "wss://" + host, cfg: &tls.Config{RootCAs: roots, ServerName: "www.example.com"}, serverName: "www.example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.cfg.Clone()
			conn := mustDial(t, wsRequest(tc.url), WithTLSConfig(tc.cfg))
			c, ok := conn.(*tls.Conn)
			if !ok {
				t.Fatalf("connection is %T, want *tls.Conn", conn)
			}
			if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
				t.Errorf("client's NegotiatedProtocol = %q, want http/1.1", p)
			}
			state := wait(t, seen, "handler call")
			if state == nil || state.NegotiatedProtocol != "http/1.1" || state.ServerName != tc.serverName {
				t.Errorf("server's ConnectionState = %+v, want http/1.1 negotiated with SNI %q", state, tc.serverName)
			}
			if strings.Join(tc.cfg.NextProtos, ",") != strings.Join(before.NextProtos, ",") || tc.cfg.ServerName != before.ServerName {
				t.Errorf("the caller's configuration was modified: NextProtos %q, ServerName %q", tc.cfg.NextProtos, tc.cfg.ServerName)
			}
			echo(t, conn, bufio.NewReader(conn), "over TLS")
		})
	}
	t.Run("wss without WithTLSConfig verifies with the system's roots", func(t *testing.T) {
		_, err := Dial(wsRequest("wss://" + host))
		if !errors.Is(err, ErrTLSHandshakeFailed) || !strings.HasPrefix(err.Error(), "cooper: TLS handshake: tls: failed to verify certificate: x509: ") {
			t.Errorf("Dial error = %v, want ErrTLSHandshakeFailed for an unknown authority", err)
		}
	})
}

// A connectProxy is a loopback HTTP proxy that answers CONNECT: with the
// right Proxy-Authorization it tunnels to upstream, whatever authority was
// asked for, and records that authority; otherwise it answers 407.
type connectProxy struct {
	*loopback
	upstream  string
	auth      string // the Proxy-Authorization it wants
	interim   string // sent before its 200, when set
	requested chan string
}

// newConnectProxy starts a connectProxy; the test's cleanup stops it and
// waits for its goroutines.
func newConnectProxy(t *testing.T, upstream, auth string) *connectProxy {
	t.Helper()
	p := &connectProxy{loopback: newLoopback(t), upstream: upstream, auth: auth, requested: make(chan string, 16)}
	p.serve(p.tunnel)
	return p
}

// tunnel serves one CONNECT on c.
func (p *connectProxy) tunnel(c net.Conn) {
	br := bufio.NewReader(c)
	r, err := http.ReadRequest(br)
	if err != nil || r.Method != "CONNECT" {
		return
	}
	p.requested <- r.Host
	if r.Header.Get("Proxy-Authorization") != p.auth {
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	p.track(up)
	defer up.Close()
	io.WriteString(c, p.interim+"HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, br)
		up.Close()
	}()
	io.Copy(c, up)
	c.Close()
	<-done
}

// TestDialThroughProxy dials through a CONNECT proxy that wants Basic
// authentication, given in the proxy URL: the upgrade works over the
// tunnel, TLS included, with the URL's host as SNI; wrong credentials get
// the proxy's 407 as the error.
func TestDialThroughProxy(t *testing.T) {
	const user, password = "alice", "s3cret:x"
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	proxyURL := func(p *connectProxy, userinfo *url.Userinfo) func(*http.Request) (*url.URL, error) {
		return http.ProxyURL(&url.URL{Scheme: "http", User: userinfo, Host: p.addr()})
	}
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"))
		p := newConnectProxy(t, f.host(), auth)

		t.Run("the upgrade goes through the tunnel", func(t *testing.T) {
			conn := mustDial(t, newClientRequest(t, f.clientURL("/")), f.dialOptions(WithProtocol("websocket"),
				WithProxy(proxyURL(p, url.UserPassword(user, password))))...)
			if got := wait(t, p.requested, "CONNECT"); got != f.host() {
				t.Errorf("CONNECT %s, want %s", got, f.host())
			}
			wait(t, f.handled, "handler call")
			echo(t, conn, bufio.NewReader(conn), "through the proxy")
		})
		if m == h1TLS {
			t.Run("the URL's host is the authority and the SNI", func(t *testing.T) {
				conn := mustDial(t, newClientRequest(t, "wss://example.com/"), WithTLSConfig(&tls.Config{RootCAs: f.tlsConfig().RootCAs}),
					WithProtocol("websocket"), WithProxy(proxyURL(p, url.UserPassword(user, password))))
				if got := wait(t, p.requested, "CONNECT"); got != "example.com:443" {
					t.Errorf("CONNECT %s, want example.com:443", got)
				}
				hs := wait(t, f.handled, "handler call")
				if hs.Request.TLS.ServerName != "example.com" || hs.Request.Host != "example.com" {
					t.Errorf("SNI %q, Host %q, want example.com", hs.Request.TLS.ServerName, hs.Request.Host)
				}
				echo(t, conn, bufio.NewReader(conn), "through the proxy")
			})
		}
		t.Run("an interim answer before the proxy's 200 is skipped", func(t *testing.T) {
			p := &connectProxy{loopback: newLoopback(t), upstream: f.host(), interim: "HTTP/1.1 100 Continue\r\n\r\n", requested: make(chan string, 16)}
			p.serve(p.tunnel)
			conn := mustDial(t, newClientRequest(t, f.clientURL("/")), f.dialOptions(WithProtocol("websocket"), WithProxy(proxyURL(p, nil)))...)
			wait(t, p.requested, "CONNECT")
			wait(t, f.handled, "handler call")
			echo(t, conn, bufio.NewReader(conn), "after a 100")
		})
		t.Run("a 407 from the proxy fails the dial", func(t *testing.T) {
			_, err := Dial(newClientRequest(t, f.clientURL("/")), f.dialOptions(WithProtocol("websocket"),
				WithProxy(proxyURL(p, url.UserPassword(user, "wrong"))))...)
			want := `cooper: proxy: CONNECT ` + f.host() + ` answered "407 Proxy Authentication Required", not 200`
			if !errors.Is(err, ErrDialFailed) || err == nil || err.Error() != want {
				t.Errorf("Dial error = %v, want %q matching ErrDialFailed", err, want)
			}
			wait(t, p.requested, "CONNECT")
		})
		t.Run("a proxy without credentials gets none", func(t *testing.T) {
			_, err := Dial(newClientRequest(t, f.clientURL("/")), f.dialOptions(WithProtocol("websocket"), WithProxy(proxyURL(p, nil)))...)
			if !errors.Is(err, ErrDialFailed) {
				t.Errorf("Dial error = %v, want ErrDialFailed", err)
			}
			wait(t, p.requested, "CONNECT")
		})
	})
}

// TestWithProxy checks WithProxy's contract beyond the tunnel itself: the
// function is given the request with ws spelled http and wss https, as
// http.ProxyFromEnvironment, the default, needs to pick a proxy; and a
// nil function dials directly.
func TestWithProxy(t *testing.T) {
	if got, want := reflect.ValueOf(newDialConfig(nil).proxy).Pointer(), reflect.ValueOf(http.ProxyFromEnvironment).Pointer(); got != want {
		t.Errorf("the default proxy function is not http.ProxyFromEnvironment")
	}
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"))
		t.Run("the function sees the scheme as http or https", func(t *testing.T) {
			var scheme string
			mustDial(t, newClientRequest(t, f.clientURL("/")), f.dialOptions(WithProxy(func(r *http.Request) (*url.URL, error) {
				scheme = r.URL.Scheme
				return nil, nil
			}))...)
			wait(t, f.handled, "handler call")
			if want := map[mode]string{h1: "http", h1TLS: "https"}[m]; scheme != want {
				t.Errorf("the proxy function saw scheme %q, want %q", scheme, want)
			}
		})
		t.Run("a nil function dials directly", func(t *testing.T) {
			mustDial(t, newClientRequest(t, f.clientURL("/")), f.dialOptions(WithProxy(func(*http.Request) (*url.URL, error) {
				return nil, errors.New("the proxy function was called")
			}), WithProxy(nil))...)
			wait(t, f.handled, "handler call")
		})
	})
}

// refDeflateOffer is one permessage-deflate offer as the fuzz reference
// sees it.
type refDeflateOffer struct {
	serverNoContext bool
	serverBits      int // 0: not offered
	clientBits      int // 0: not offered; -1: offered without a value
}

// refVerifyAnswer is the client's check of a WebSocket answer written out
// plainly, as a reference for FuzzAnswer: RFC 6455, section 4.1 for the
// subprotocol, RFC 7692, section 7 for permessage-deflate answering one of
// offers, and customOffered saying whether the caller offered "x-custom".
func refVerifyAnswer(subs []string, offers []refDeflateOffer, customOffered bool, subAnswer, extAnswer []string) (sub string, agreed *DeflateParams, ok bool) {
	switch {
	case len(subAnswer) > 1:
		return "", nil, false
	case len(subAnswer) == 1 && strings.Trim(subAnswer[0], " \t") != "":
		sub = strings.Trim(subAnswer[0], " \t")
		found := false
		for _, s := range subs {
			found = found || s == sub
		}
		if !found {
			return "", nil, false
		}
	}
	var elems []refElem
	for _, line := range extAnswer {
		e, wellFormed := refParseExtensions(line)
		if !wellFormed {
			return "", nil, false
		}
		elems = append(elems, e...)
	}
	seen := map[string]bool{}
	for _, e := range elems {
		name := strings.ToLower(e.name)
		if seen[name] {
			return "", nil, false
		}
		seen[name] = true
		if name == "x-custom" && customOffered {
			continue
		}
		if name != "permessage-deflate" || len(offers) == 0 {
			return "", nil, false
		}
		var snct, cnct bool
		smwb, cmwb := 0, 0
		params := map[string]bool{}
		for _, p := range e.params {
			pn := strings.ToLower(p.name)
			if params[pn] {
				return "", nil, false
			}
			params[pn] = true
			switch pn {
			case "server_no_context_takeover", "client_no_context_takeover":
				if p.hasValue {
					return "", nil, false
				}
				snct = snct || pn == "server_no_context_takeover"
				cnct = cnct || pn == "client_no_context_takeover"
			case "server_max_window_bits", "client_max_window_bits":
				n, err := strconv.Atoi(p.value)
				if !p.hasValue || err != nil || n < 8 || n > 15 || strconv.Itoa(n) != p.value {
					return "", nil, false
				}
				if pn == "server_max_window_bits" {
					smwb = n
				} else {
					cmwb = n
				}
			default:
				return "", nil, false
			}
		}
		effServer, effClient := smwb, cmwb
		if effServer == 0 {
			effServer = 15
		}
		if effClient == 0 {
			effClient = 15
		}
		answers := false
		for _, o := range offers {
			if o.serverNoContext && !snct ||
				o.serverBits != 0 && effServer > o.serverBits ||
				cmwb != 0 && o.clientBits == 0 ||
				o.clientBits > 0 && cmwb > o.clientBits {
				continue
			}
			answers = true
			break
		}
		if !answers {
			return "", nil, false
		}
		agreed = &DeflateParams{ServerNoContextTakeover: snct, ClientNoContextTakeover: cnct, ServerMaxWindowBits: effServer, ClientMaxWindowBits: effClient}
	}
	return sub, agreed, true
}

// shapedAnswer builds a permessage-deflate answer from the bits of shape,
// so that the fuzzer reaches every window value and parameter mix by
// changing a number: 0x1 server_no_context_takeover, 0x2
// client_no_context_takeover, 0x3c server_max_window_bits (0: none, else
// 5 + the value, 6 to 20), 0x3c0 client_max_window_bits (0: none, 1: no
// value, else 5 + the value), 0x400 a parameter twice, 0x800 x-custom
// first, 0x1000 an unknown parameter, 0x2000 quoted values.
func shapedAnswer(shape uint16) string {
	b := []byte("permessage-deflate")
	q := ""
	if shape&0x2000 != 0 {
		q = `"`
	}
	if shape&0x1 != 0 {
		b = append(b, "; server_no_context_takeover"...)
	}
	if shape&0x2 != 0 {
		b = append(b, "; client_no_context_takeover"...)
	}
	if n := shape >> 2 & 0xf; n != 0 {
		b = append(b, "; server_max_window_bits="+q+strconv.Itoa(int(n)+5)+q...)
	}
	switch n := shape >> 6 & 0xf; n {
	case 0:
	case 1:
		b = append(b, "; client_max_window_bits"...)
	default:
		b = append(b, "; client_max_window_bits="+q+strconv.Itoa(int(n)+5)+q...)
	}
	if shape&0x400 != 0 {
		b = append(b, "; client_no_context_takeover"...)
	}
	if shape&0x1000 != 0 {
		b = append(b, "; x_unknown"...)
	}
	if shape&0x800 != 0 {
		return "x-custom, " + string(b)
	}
	return string(b)
}

// FuzzAnswer checks that, whatever Sec-WebSocket-Protocol and
// Sec-WebSocket-Extensions answer comes in (lines separated by "\n", and
// one built by shapedAnswer), the client's checks do not panic and agree
// with the reference: they accept the same answers and report the same
// subprotocol and permessage-deflate parameters, which are always valid
// and among what was offered.
func FuzzAnswer(f *testing.F) {
	// Offer bits: 0x01 server_no_context_takeover, 0x02
	// client_no_context_takeover, 0x0c server window {-, 8, 10, 15}, 0x30
	// client window {-, 8, 12, 15}, 0x40 WithDeflate, 0x80 x-custom, 0x300
	// subprotocols, 0x400 the caller's own two permessage-deflate offers.
	// The seeds are valid answers at each limit, so that one changed byte
	// crosses it, and a few invalid ones.
	for _, seed := range []struct {
		offer     uint16
		sub, exts string
	}{
		{0x0150, "chat", "permessage-deflate; client_max_window_bits=8"},
		{0x0170, "chat", "permessage-deflate; client_max_window_bits=15"},
		{0x0060, "", "permessage-deflate; client_max_window_bits=12; client_no_context_takeover"},
		{0x0048, "", "permessage-deflate; server_max_window_bits=10"},
		{0x0044, "", "permessage-deflate; server_max_window_bits=8; server_no_context_takeover"},
		{0x004c, "", "permessage-deflate; server_max_window_bits=15"},
		{0x0041, "", "permessage-deflate; server_no_context_takeover"},
		{0x0245, "v2.chat", "permessage-deflate; server_no_context_takeover; server_max_window_bits=\"8\""},
		{0x0400, "", "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"},
		{0x0400, "", "permessage-deflate"},
		{0x0380, " v1.chat ", "x-custom; a=1, permessage-deflate"},
		{0x02c0, "v1.chat", "x-custom, permessage-deflate; client_max_window_bits=9"},
		{0x01c0, "chat\nchat", "permessage-deflate\npermessage-deflate"},
		{0x0040, "", "permessage-deflate; client_max_window_bits; foo"},
		{0x0070, "", "PerMessage-Deflate; Client_Max_Window_Bits=08"},
	} {
		f.Add(seed.offer, seed.sub, seed.exts, uint16(0))
	}
	f.Add(uint16(0x0050), "", "", uint16(0x0c0)) // client_max_window_bits=8 to an offer of 8
	f.Add(uint16(0x0048), "", "", uint16(0x014)) // server_max_window_bits=10 to an offer of 10
	f.Add(uint16(0x0400), "", "", uint16(0x110)) // server 9, client 9 to the caller's offers
	f.Fuzz(func(t *testing.T, offer uint16, subAnswer, extAnswer string, shape uint16) {
		policy := DeflateParams{
			ServerNoContextTakeover: offer&1 != 0,
			ClientNoContextTakeover: offer&2 != 0,
			ServerMaxWindowBits:     []int{0, 8, 10, 15}[offer>>2&3],
			ClientMaxWindowBits:     []int{0, 8, 12, 15}[offer>>4&3],
		}
		subOffers := [][]string{nil, {"chat"}, {"chat", "superchat"}, {"v1.chat", "v2.chat"}}[offer>>8&3]
		var opts []UpgradeOption
		var refOffers []refDeflateOffer
		r := &http.Request{Header: http.Header{}, URL: &url.URL{}}
		if offer&0x40 != 0 {
			opts = append(opts, WithDeflate(policy))
			o := refDeflateOffer{serverNoContext: policy.ServerNoContextTakeover, serverBits: policy.ServerMaxWindowBits, clientBits: policy.ClientMaxWindowBits}
			if o.clientBits == 0 {
				o.clientBits = -1
			}
			refOffers = append(refOffers, o)
		}
		if offer&0x400 != 0 { // the caller's own offers, before those of WithDeflate
			r.Header.Add("Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9, permessage-deflate")
			refOffers = append([]refDeflateOffer{{serverBits: 10, clientBits: 9}, {}}, refOffers...)
		}
		customOffered := offer&0x80 != 0
		if customOffered {
			r.Header.Add("Sec-WebSocket-Extensions", "x-custom; a=2")
		}
		if len(subOffers) > 0 {
			opts = append(opts, WithSubprotocols(subOffers...))
		}
		r.Header.Set("Sec-WebSocket-Key", testKey)
		if _, err := newUpgradeConfig(opts).prepare(r, "websocket", nil); err != nil {
			t.Fatal(err)
		}
		lines := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, "\n")
		}
		for _, extAnswer := range []string{extAnswer, shapedAnswer(shape)} {
			sub, subErr := verifySubprotocol(r.Header[hdrWSProtocol], lines(subAnswer))
			agreed, extErr := verifyExtensions(r.Header[hdrWSExtensions], lines(extAnswer))
			refSub, refAgreed, refOK := refVerifyAnswer(subOffers, refOffers, customOffered, lines(subAnswer), lines(extAnswer))
			ok := subErr == nil && extErr == nil
			if ok != refOK || ok && (sub != refSub || !equalDeflate(agreed, refAgreed)) {
				t.Fatalf("offers %q %q, answer %q %q: got %q %+v (%v, %v), reference says %q %+v ok=%v",
					r.Header[hdrWSProtocol], r.Header[hdrWSExtensions], subAnswer, extAnswer, sub, agreed, subErr, extErr, refSub, refAgreed, refOK)
			}
			for _, err := range []error{subErr, extErr} {
				if err != nil && (!strings.HasPrefix(err.Error(), "cooper: Sec-WebSocket-") || strings.ContainsAny(err.Error(), "\r\n")) {
					t.Fatalf("error %q is not one line naming its header", err)
				}
			}
			if agreed != nil {
				for _, bits := range []int{agreed.ServerMaxWindowBits, agreed.ClientMaxWindowBits} {
					if bits < 8 || bits > 15 {
						t.Fatalf("agreed %+v has a window outside 8 to 15", agreed)
					}
				}
			}
		}
	})
}

// TestWithDialer checks that Dial connects with the dialer given: its local
// address is the one the server sees, and a nil dialer restores the default.
func TestWithDialer(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"))
		local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
		conn := mustDial(t, newClientRequest(t, f.clientURL("/ws")),
			f.dialOptions(WithProtocol("websocket"), WithDialer(&net.Dialer{LocalAddr: local}))...)
		hs := wait(t, f.handled, "handler call")
		if host, _, _ := net.SplitHostPort(hs.Request.RemoteAddr); host != "127.0.0.2" {
			t.Errorf("the server saw the client at %s, want 127.0.0.2, the dialer's local address", hs.Request.RemoteAddr)
		}
		conn.Close()

		mustDial(t, newClientRequest(t, f.clientURL("/ws")),
			f.dialOptions(WithProtocol("websocket"), WithDialer(&net.Dialer{LocalAddr: local}), WithDialer(nil))...)
		hs = wait(t, f.handled, "handler call")
		if host, _, _ := net.SplitHostPort(hs.Request.RemoteAddr); host != "127.0.0.1" {
			t.Errorf("after WithDialer(nil) the server saw the client at %s, want 127.0.0.1", hs.Request.RemoteAddr)
		}
	})
}

// TestDialDefaultPorts checks the port Dial connects to when the URL, or
// the proxy's URL, names none: 80 without TLS, 443 with it, whether TLS
// comes from the scheme or from WithTLSConfig. The dialer's Control sees
// the address and stops the dial before any packet is sent.
func TestDialDefaultPorts(t *testing.T) {
	proxy := func(rawURL string) DialOption {
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		return WithProxy(http.ProxyURL(u))
	}
	cases := []struct {
		name string
		url  string
		opts []DialOption
		addr string // the address dialed
	}{
		{name: "ws dials port 80", url: "ws://127.0.0.1/", addr: "127.0.0.1:80"},
		{name: "http dials port 80", url: "http://127.0.0.1/", addr: "127.0.0.1:80"},
		{name: "no scheme dials port 80", url: "//127.0.0.1/", addr: "127.0.0.1:80"},
		{name: "wss dials port 443", url: "wss://127.0.0.1/", addr: "127.0.0.1:443"},
		{name: "https dials port 443", url: "HTTPS://127.0.0.1/", addr: "127.0.0.1:443"},
		{name: "ws with WithTLSConfig dials port 443", url: "ws://127.0.0.1/",
			opts: []DialOption{WithTLSConfig(&tls.Config{})}, addr: "127.0.0.1:443"},
		{name: "a port in the URL is dialed", url: "wss://127.0.0.1:8443/", addr: "127.0.0.1:8443"},
		{name: "a proxy without a port is dialed on port 80", url: "wss://127.0.0.1/",
			opts: []DialOption{proxy("http://127.0.0.2")}, addr: "127.0.0.2:80"},
		{name: "a proxy without a scheme or port is dialed on port 80", url: "wss://127.0.0.1/",
			opts: []DialOption{proxy("//127.0.0.2")}, addr: "127.0.0.2:80"},
		{name: "a port in the proxy's URL is dialed", url: "wss://127.0.0.1/",
			opts: []DialOption{proxy("http://127.0.0.2:3128")}, addr: "127.0.0.2:3128"},
	}
	errStop := errors.New("stopped before connecting")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var dialed string
			d := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
				dialed = address
				return errStop
			}}
			opts := append([]DialOption{WithProxy(nil), WithDialer(d)}, tc.opts...)
			_, err := Dial(wsRequest(tc.url), opts...)
			if !errors.Is(err, ErrDialFailed) || !errors.Is(err, errStop) {
				t.Fatalf("Dial error = %v, want ErrDialFailed from the dialer's Control", err)
			}
			if dialed != tc.addr {
				t.Errorf("dialed %q, want %q", dialed, tc.addr)
			}
		})
	}
}

// TestWebSocketSchemeImpliesProtocol checks that a ws or wss URL upgrades
// to WebSocket without WithProtocol, for Dial and Upgrade, and that an
// Upgrade header or WithProtocol still says otherwise.
func TestWebSocketSchemeImpliesProtocol(t *testing.T) {
	cases := []struct {
		name    string
		upgrade bool // use Upgrade on a connection of our own rather than Dial
		header  string
		opts    []DialOption
		proto   string
	}{
		{name: "Dial on a ws or wss URL without Upgrade upgrades to websocket", proto: "websocket"},
		{name: "Upgrade on a ws or wss URL without Upgrade upgrades to websocket", upgrade: true, proto: "websocket"},
		{name: "the request's own Upgrade still decides", header: "lines/1", proto: "lines/1"},
		{name: "WithProtocol still decides", opts: []DialOption{WithProtocol("lines/1")}, proto: "lines/1"},
	}
	run(t, func(t *testing.T, m mode) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f := newFixture(t, m, Protocols("websocket", "lines/1"))
				req := newClientRequest(t, f.clientURL("/ws"))
				if tc.header != "" {
					req.Header.Set("Upgrade", tc.header)
				}
				var hs Handshake
				var conn net.Conn
				if tc.upgrade {
					c := f.dial(t)
					var err error
					if conn, err = Upgrade(c, req, WithHandshake(&hs)); err != nil {
						t.Fatalf("Upgrade: %v", err)
					}
				} else {
					conn = mustDial(t, req, f.dialOptions(append(tc.opts, WithUpgradeOptions(WithHandshake(&hs)))...)...)
				}
				if got := wait(t, f.handled, "handler call"); got.Protocol != tc.proto || hs.Protocol != tc.proto {
					t.Errorf("agreed %q (server), %q (client), want %q", got.Protocol, hs.Protocol, tc.proto)
				}
				if req.Header.Get("Upgrade") != tc.header {
					t.Errorf("the caller's request was modified: Upgrade %q", req.Header.Get("Upgrade"))
				}
				echo(t, conn, bufio.NewReader(conn), "implied")
			})
		}
	})
}
