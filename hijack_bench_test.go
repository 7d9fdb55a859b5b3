package cooper

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"lowbit.dev/cooper/internal/idlemem"
)

// BenchmarkIdleMemory measures what an idle upgraded connection costs the
// server process: heap plus goroutine stacks after GC, per connection, with
// 10,000 connections open (1,000 with -short), each waiting in Read. The
// server runs in a process of its own, so the clients' memory is not
// counted. "bare" is a TCP listener with one goroutine per connection, the
// floor; "cooper" is Hijack; "inside" upgrades with Accept and stays inside
// ServeHTTP, as a handler that blocks there does.
func BenchmarkIdleMemory(b *testing.B) {
	idlemem.Run(b, []string{"bare", "cooper", "inside"}, 10000, idleRound)
}

// idleRound opens n idle connections to srv, a server of kind, and returns
// the server's heap and stack growth per connection.
func idleRound(b *testing.B, srv *idlemem.Server, kind string, n int) float64 {
	addr := srv.Hello
	base, g0 := srv.Stats(b)
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + testKey + "\r\n\r\n"
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT to exhaust ports across rounds
			c.Close()
		}
	}()
	buf := make([]byte, 512)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
		if kind == "bare" {
			continue
		}
		io.WriteString(c, req)
		if m, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:m]), "HTTP/1.1 101") {
			b.Fatalf("upgrade %d: %q, %v", len(conns), buf[:m], err)
		}
	}
	mem := srv.Settle(b, func(goroutines int) bool { return goroutines == g0+n })
	return float64(mem-base) / float64(n)
}

// runIdleServer is the server side of BenchmarkIdleMemory: it serves kind
// and reports its memory and number of goroutines (see [idlemem.Serve]).
func runIdleServer(kind string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	switch kind {
	case "bare":
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go idlemem.Hold(c)
			}
		}()
	case "cooper":
		go http.Serve(ln, Hijack(func(c net.Conn, _ string) { idlemem.Hold(c) }, Protocols("websocket")))
	case "inside":
		u := New(Protocols("websocket"))
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, _, err := u.Accept(w, r); err == nil {
				idlemem.Hold(c)
			}
		}))
	}
	idlemem.Serve(ln.Addr().String(), runtime.NumGoroutine)
}

// A fakeWriter is a ResponseWriter whose Hijack hands over a connection
// that discards what is written, with a reused bufio.ReadWriter as
// net/http's own, so a benchmark measures cooper's path and not a socket.
type fakeWriter struct {
	header http.Header
	conn   fakeConn
	brw    *bufio.ReadWriter
}

func newFakeWriter() *fakeWriter {
	w := &fakeWriter{header: http.Header{}}
	w.brw = bufio.NewReadWriter(bufio.NewReaderSize(strings.NewReader(""), 4096), bufio.NewWriterSize(io.Discard, 4096))
	return w
}

func (w *fakeWriter) Header() http.Header         { return w.header }
func (w *fakeWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *fakeWriter) WriteHeader(int)             {}
func (w *fakeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return &w.conn, w.brw, nil
}

// A fakeConn counts writes, keeps the first, and reads nothing.
type fakeConn struct {
	net.TCPConn
	writes int
	first  []byte
}

func (c *fakeConn) Write(p []byte) (int, error) {
	if c.writes++; c.writes == 1 {
		c.first = append(c.first[:0], p...)
	}
	return len(p), nil
}
func (c *fakeConn) Read(p []byte) (int, error)       { return 0, io.EOF }
func (c *fakeConn) Close() error                     { return nil }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

// BenchmarkUpgrade measures cooper's own path for one upgrade, from
// ServeHTTP to the handler's start, with Chromium's request (a subprotocol
// and permessage-deflate negotiated) and a fake hijackable writer: no
// socket, no net/http parsing. The sub-benchmarks after the first two turn
// one fleet option on each, at settings that never refuse, to measure what
// it costs an admitted upgrade.
func BenchmarkUpgrade(b *testing.B) {
	for _, bc := range upgradeCases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			h, done := bc.start()
			w, r := newFakeWriter(), bc.request()
			for b.Loop() {
				h.ServeHTTP(w, r)
				<-done
			}
		})
	}
}

// An upgradeCase is a way of upgrading for BenchmarkUpgrade and
// TestUpgradeAllocs: an entry point, and a fleet option on, at settings
// that never refuse.
type upgradeCase struct {
	name    string
	handler bool // Upgrader.Handler rather than Hijack
	proxied bool // the request comes from a trusted proxy, with X-Forwarded-For
	opts    []Option
}

// read-only
var upgradeCases = []upgradeCase{
	{name: "Hijack"},
	{name: "Handler", handler: true},
	{name: "Handler+DrainTime", handler: true, opts: []Option{DrainTime(time.Minute)}},
	{name: "Hijack+UpgradeRate", opts: []Option{UpgradeRate(1e9, 1<<30)}},
	{name: "Hijack+MaxConnectionsPerClient", opts: []Option{MaxConnectionsPerClient(1 << 20)}},
	{name: "Hijack+MaxConnectionsPerClient+TrustedProxies", proxied: true,
		opts: []Option{MaxConnectionsPerClient(1 << 20), TrustedProxies("10.0.0.0/8")}},
}

// start returns the case's handler, whose every call sends on done.
func (c upgradeCase) start() (h http.Handler, done chan struct{}) {
	done = make(chan struct{}, 1)
	opts := append([]Option{Protocols("websocket"), Subprotocols("v1.chat"), Deflate(DeflateParams{})}, c.opts...)
	if c.handler {
		return New(opts...).Handler(func(net.Conn, *Handshake) { done <- struct{}{} }), done
	}
	return Hijack(func(net.Conn, string) { done <- struct{}{} }, opts...), done
}

// request returns Chromium's request, from a client's address or through
// a trusted proxy.
func (c upgradeCase) request() *http.Request {
	r := realRequest("permessage-deflate; client_max_window_bits")
	r.RemoteAddr = "203.0.113.7:50000"
	if c.proxied {
		r.RemoteAddr = "10.0.0.1:50000"
		r.Header["X-Forwarded-For"] = []string{"198.51.100.1, 203.0.113.7"}
	}
	return r
}

// TestUpgradeAllocs holds cooper's own path for an upgrade through Hijack
// to its budget: with nothing buffered, the ring entry and the handler
// goroutine's start, 2 allocations and 64 bytes; with early bytes, one more
// for the replay wrapper and one for the bytes. UpgradeRate and
// MaxConnectionsPerClient, with or without TrustedProxies, add nothing to
// it. Through Upgrader.Handler, the Handshake with its request's context,
// and the copy of the request that carries it, add two; DrainTime adds the
// connection's own context and its cancellation.
func TestUpgradeAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under coverage or the race detector")
	}
	cases := []struct {
		name          string
		with          upgradeCase
		early         string
		allocs, bytes float64
	}{
		{"nothing buffered", upgradeCases[0], "", 2, 64},
		{"early bytes buffered", upgradeCases[0], "early frame", 4, 64 + 64 + 16},
		{"through Handler", upgradeCases[1], "", 4, 496},
		{"through Handler with DrainTime", upgradeCases[2], "", 6, 592},
		{"with UpgradeRate", upgradeCases[3], "", 2, 64},
		{"with MaxConnectionsPerClient", upgradeCases[4], "", 2, 64},
		{"with MaxConnectionsPerClient through a trusted proxy", upgradeCases[5], "", 2, 64},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, done := tc.with.start()
			w, r := newFakeWriter(), tc.with.request()
			src := strings.NewReader(tc.early)
			upgrade := func() {
				src.Reset(tc.early)
				w.brw.Reader.Reset(src)
				w.brw.Reader.Peek(len(tc.early))
				h.ServeHTTP(w, r)
				<-done
			}
			// The fewest of several rounds: now and then the runtime
			// allocates for itself, for instance a new goroutine descriptor.
			allocs, bytes := math.Inf(1), math.Inf(1)
			for range 5 {
				const n = 1000
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for range n {
					upgrade()
				}
				runtime.ReadMemStats(&after)
				allocs = min(allocs, float64(after.Mallocs-before.Mallocs)/n)
				bytes = min(bytes, float64(after.TotalAlloc-before.TotalAlloc)/n)
			}
			if allocs > tc.allocs || bytes > tc.bytes {
				t.Errorf("%.1f allocations and %.0f bytes per upgrade, want at most %.0f and %.0f", allocs, bytes, tc.allocs, tc.bytes)
			}
		})
	}
}

// BenchmarkUpgradeLoopback measures a whole upgrade over loopback TCP: a
// client dials, sends Chromium's request, reads the 101 and closes; the
// server is net/http with Hijack. Time and allocations cover both sides.
func BenchmarkUpgradeLoopback(b *testing.B) {
	b.ReportAllocs()
	s := httptest.NewServer(Hijack(func(c net.Conn, _ string) { c.Close() },
		Protocols("websocket"), Subprotocols("v1.chat"), Deflate(DeflateParams{})))
	defer s.Close()
	addr := s.Listener.Addr().String()
	r := realRequest("permessage-deflate; client_max_window_bits")
	r.URL, r.Host = &url.URL{Path: "/ws"}, addr
	r.Header.Set("Origin", "http://"+addr)
	req := appendRequest(nil, r, "")
	buf := make([]byte, 1024)
	for b.Loop() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		c.Write(req)
		if n, err := c.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101 ")) {
			b.Fatalf("upgrade: %q, %v", buf[:n], err)
		}
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
}

// TestAnswerIsOneWrite checks that the 101 reaches the connection in one
// Write, with application headers, whatever their number.
func TestAnswerIsOneWrite(t *testing.T) {
	done := make(chan struct{}, 1)
	h := Hijack(func(net.Conn, string) { done <- struct{}{} }, Protocols("websocket"), Subprotocols("v1.chat"),
		Deflate(DeflateParams{}), ResponseHeaders(func(*http.Request, string) http.Header {
			h := http.Header{}
			for i := range 200 {
				h.Set(fmt.Sprintf("X-App-%d", i), strings.Repeat("v", 100))
			}
			return h
		}))
	w, r := newFakeWriter(), realRequest("permessage-deflate; client_max_window_bits")
	h.ServeHTTP(w, r)
	<-done
	if w.conn.writes != 1 || !bytes.HasPrefix(w.conn.first, []byte("HTTP/1.1 101 ")) || !bytes.HasSuffix(w.conn.first, []byte("\r\n\r\n")) {
		t.Errorf("%d writes, the first %d bytes starting %.20q; want the whole 101 in one", w.conn.writes, len(w.conn.first), w.conn.first)
	}
}

// BenchmarkHostileOrigin measures validating a request whose Origin is
// 1 MB long and cross-origin, for an Upgrader with OriginPatterns: the
// work one such request can make the origin check do.
func BenchmarkHostileOrigin(b *testing.B) {
	b.ReportAllocs()
	c := newConfig([]Option{Protocols("websocket"), OriginPatterns("*.example.com")})
	r := realRequest("permessage-deflate")
	r.Header["Origin"] = []string{"https://" + strings.Repeat("a", 1<<20) + ".example.org"}
	for b.Loop() {
		if _, rej := validate(r, c); rej == nil || !errors.Is(rej, ErrOrigin) {
			b.Fatalf("validate = %v, want an ErrOrigin refusal", rej)
		}
	}
}
