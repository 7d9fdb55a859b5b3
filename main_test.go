package cooper

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lowbit.dev/cooper/internal/idlemem"
	"lowbit.dev/cooper/internal/leakcheck"
)

// TestMain fails the run when a test leaves a goroutine of cooper's or of
// net/http's behind. Started by BenchmarkIdleMemory, it is that
// benchmark's server instead.
func TestMain(m *testing.M) {
	if kind := idlemem.Kind(); kind != "" {
		runIdleServer(kind)
		return
	}
	code := m.Run()
	// Connections idle in the pool of net/http's default client are the
	// pool's, not left behind by a test.
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	os.Exit(leakcheck.ExitCode(code, "lowbit.dev/cooper", "net/http"))
}

// A mode is a transport an end-to-end test runs over.
type mode string

const (
	h1    mode = "h1"
	h1TLS mode = "h1+tls"
	h2    mode = "h2" // TLS with HTTP/2; upgrades are extended CONNECTs (RFC 8441)
)

// run runs fn as a subtest once per mode, over h1 and h1+TLS when modes is
// empty, so every end-to-end test covers both.
func run(t *testing.T, fn func(t *testing.T, m mode), modes ...mode) {
	t.Helper()
	if len(modes) == 0 {
		modes = []mode{h1, h1TLS}
	}
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) { fn(t, m) })
	}
}

// A testServer is a loopback httptest.Server that counts the connections
// taken over from net/http and fails the test when net/http logs anything.
type testServer struct {
	*httptest.Server
	mode     mode
	hijacked atomic.Int32
	logMu    sync.Mutex
	log      bytes.Buffer
}

// newServer starts h on a loopback port in mode m; the test's cleanup stops
// it.
func newServer(t *testing.T, m mode, h http.Handler) *testServer {
	t.Helper()
	return newServerConfig(t, m, h, nil)
}

// newServerConfig is newServer with the http.Server passed to configure, if
// not nil, before it starts.
func newServerConfig(t *testing.T, m mode, h http.Handler, configure func(*http.Server)) *testServer {
	t.Helper()
	s := &testServer{mode: m}
	s.Server = httptest.NewUnstartedServer(h)
	if configure != nil {
		configure(s.Config)
	}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateHijacked {
			s.hijacked.Add(1)
		}
	}
	s.Config.ErrorLog = log.New(lockedWriter{&s.logMu, &s.log}, "", 0)
	switch m {
	case h1TLS:
		s.StartTLS()
	case h2:
		s.EnableHTTP2 = true
		s.StartTLS()
	default:
		s.Start()
	}
	t.Cleanup(func() {
		s.Close()
		s.logMu.Lock()
		defer s.logMu.Unlock()
		if s.log.Len() > 0 {
			t.Errorf("net/http logged: %s", s.log.String())
		}
	})
	return s
}

// A lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// host is the Host header a client of s sends.
func (s *testServer) host() string { return s.Listener.Addr().String() }

// dial opens a raw client connection to s, with TLS in h1+TLS mode, that
// the test's cleanup closes. Every operation on it must end within 10 s.
func (s *testServer) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.host(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if s.mode == h1TLS {
		cfg := s.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		cfg.ServerName = "example.com"
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		return tc
	}
	return c
}

// testKey is the sample Sec-WebSocket-Key of RFC 6455, section 1.3.
const testKey = "dGhlIHNhbXBsZSBub25jZQ=="

// wsRequest returns a valid WebSocket opening handshake for s, as a
// same-origin browser sends it.
func (s *testServer) wsRequest() *http.Request {
	scheme := "http"
	if s.mode == h1TLS {
		scheme = "https"
	}
	return &http.Request{
		Method: "GET", URL: &url.URL{Path: "/ws"}, Proto: "HTTP/1.1", Host: s.host(),
		Header: http.Header{
			"Connection":            {"Upgrade"},
			"Upgrade":               {"websocket"},
			"Sec-Websocket-Key":     {testKey},
			"Sec-Websocket-Version": {"13"},
			"Origin":                {scheme + "://" + s.host()},
		},
	}
}

// appendRequest serialises r as it is, header lines in the order of their
// names, then body: unlike r.Write it keeps r.Proto, every header line
// and Content-Length and Transfer-Encoding as set in r.Header.
func appendRequest(b []byte, r *http.Request, body string) []byte {
	b = fmt.Appendf(b, "%s %s %s\r\n", r.Method, r.URL.RequestURI(), r.Proto)
	if r.Host != "" {
		b = fmt.Appendf(b, "Host: %s\r\n", r.Host)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		for _, v := range r.Header[k] {
			b = fmt.Appendf(b, "%s: %s\r\n", k, v)
		}
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// roundTrip sends r (and then body, in the same write) on a new raw
// connection and reads the response head. For a response other than 101 it
// reads the body too. It returns the connection and a reader of what follows
// the response.
func (s *testServer) roundTrip(t *testing.T, r *http.Request, body string) (*http.Response, string, net.Conn, *bufio.Reader) {
	t.Helper()
	c := s.dial(t)
	if _, err := c.Write(appendRequest(nil, r, body)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: r.Method})
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	var text string
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		text = string(b)
	}
	return resp, text, c, br
}

// A fixture is a server whose handler records every upgrade and echoes
// what it reads until the client closes, with an OnError that records every
// error.
type fixture struct {
	*testServer
	handled chan *Handshake // one per handler call
	conns   chan net.Conn   // the connection each handler got
	errs    chan error      // one per OnError call
}

// refusalSentinels are the sentinels a refusal can match, from ErrMethod
// to ErrHijackFailed as errors.go lists them; serverSentinels, every
// sentinel of the server side.
var (
	refusalSentinels = []error{
		ErrMethod, ErrHTTPVersion, ErrRequestBody, ErrNotUpgrade, ErrProtocol, ErrMalformedHeader,
		ErrWebSocketKey, ErrWebSocketVersion, ErrOrigin, ErrShutdown, ErrTooManyConnections,
		ErrUpgradeRate, ErrTooManyClientConnections, ErrResponseHeader, ErrHijackFailed,
	}
	serverSentinels = append(slices.Clip(refusalSentinels), ErrWriteResponse, ErrHandlerPanic)
)

// newFixture starts a fixture in mode m with opts after its own OnError,
// which fails the test for an error that matches no server sentinel, as
// errors.go promises every reported error does.
func newFixture(t *testing.T, m mode, opts ...Option) *fixture {
	t.Helper()
	f := &fixture{handled: make(chan *Handshake, 16), conns: make(chan net.Conn, 16), errs: make(chan error, 16)}
	opts = append([]Option{OnError(func(err error) {
		if !slices.ContainsFunc(serverSentinels, func(s error) bool { return errors.Is(err, s) }) {
			t.Errorf("OnError got %v, which matches no server sentinel", err)
		}
		f.errs <- err
	})}, opts...)
	u := New(opts...)
	f.testServer = newServer(t, m, u.Handler(func(conn net.Conn, hs *Handshake) {
		defer conn.Close()
		f.handled <- hs
		f.conns <- conn
		io.Copy(conn, conn)
	}))
	shutdownAtEnd(t, u) // by then the test's clients are closed, so every handler returns
	return f
}

// shutdownAtEnd shuts u down when the test ends and fails it unless every
// connection is done within 5 s: bounded, since a connection left counted
// would hold Shutdown forever.
func shutdownAtEnd(t *testing.T, u *Upgrader) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := u.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
}

// wait returns the next value from c, failing the test after 5 s.
func wait[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5 s", what)
		panic("unreachable")
	}
}

// none fails the test when c yields a value within a short while.
func none[T any](t *testing.T, c <-chan T, what string) {
	t.Helper()
	select {
	case v := <-c:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(50 * time.Millisecond):
	}
}

// echo writes msg on c and checks that it comes back through br.
func echo(t *testing.T, c net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("reading the echo of %q: %v", msg, err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// checkRetryRefusal checks that resp, with body, refused a request with
// status, a Retry-After and a one-line reason, and that OnError was told
// an error matching sentinel.
func (f *fixture) checkRetryRefusal(t *testing.T, resp *http.Response, body string, status int, sentinel error) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status = %d, Retry-After = %q, want %d with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), status)
	}
	checkReason(t, resp, body)
	if err := wait(t, f.errs, "refusal"); !errors.Is(err, sentinel) {
		t.Errorf("OnError got %v, want %v", err, sentinel)
	}
}

// A panicCase is a call that must panic with msg, as an option built with
// a programmer error does.
type panicCase struct {
	name string
	fn   func()
	msg  string
}

// checkPanics runs each case as a subtest and checks that it panics with
// its message.
func checkPanics(t *testing.T, cases []panicCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if v := recover(); v != tc.msg {
					t.Errorf("panic = %v, want %q", v, tc.msg)
				}
			}()
			tc.fn()
		})
	}
}
