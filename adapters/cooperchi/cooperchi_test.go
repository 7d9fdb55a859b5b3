package cooperchi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperchi"
)

// TestMain fails the run when a test leaves a goroutine of cooper's, chi's
// or net/http's behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for goroutines running cooper's, chi's or
// net/http's code to end, and returns the stacks of those that did not.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "leakedGoroutines") || strings.Contains(g, "testing.(*M).") {
				continue
			}
			if strings.Contains(g, "lowbit.dev/cooper") || strings.Contains(g, "go-chi/chi") || strings.Contains(g, "net/http") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A server is a chi router on a loopback httptest server, with what its
// upgrades and net/http reported.
type server struct {
	URL      string
	u        *cooper.Upgrader
	errs     chan error    // what the Upgrader told OnError
	errorLog *lockedBuffer // http.Server.ErrorLog
}

// serve starts r on a loopback server whose upgrades go through u, built
// from opts plus an OnError that collects errors. The server and u are
// shut down when the test ends.
func serve(t *testing.T, build func(r chi.Router, u *cooper.Upgrader), opts ...cooper.Option) *server {
	t.Helper()
	s := &server{errs: make(chan error, 64), errorLog: &lockedBuffer{}}
	opts = append(opts, cooper.Protocols("websocket"), cooper.OnError(func(err error) {
		select {
		case s.errs <- err:
		default:
		}
	}))
	s.u = cooper.New(opts...)
	r := chi.NewRouter()
	build(r, s.u)
	srv := httptest.NewUnstartedServer(r)
	srv.Config.ErrorLog = log.New(s.errorLog, "", 0)
	srv.Start()
	s.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.u.Shutdown(ctx); err != nil {
			t.Errorf("Upgrader.Shutdown: %v", err)
		}
		if msg := s.errorLog.String(); msg != "" {
			t.Errorf("http.Server logged:\n%s", msg)
		}
	})
	return s
}

// nextErr returns the next error the Upgrader reported, waiting up to 5 s.
func (s *server) nextErr(t *testing.T) error {
	t.Helper()
	return recv(t, s.errs)
}

// recv receives from ch, waiting up to 5 s.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing received in 5 s")
		var zero T
		return zero
	}
}

// A client is one upgraded connection, as a raw loopback client sees it.
type client struct {
	net.Conn
	r    *bufio.Reader
	resp *http.Response
}

func (c *client) Read(p []byte) (int, error) { return c.r.Read(p) }

// dial sends a WebSocket opening handshake for url's path with the extra
// header, and returns the response and, after a 101, the connection. The
// connection may be used for 10 s and is closed when the test ends.
func dial(t *testing.T, url string, header http.Header) *client {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 16)
	rand.Read(key)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	for k, v := range map[string]string{
		"Connection": "Upgrade", "Upgrade": "websocket",
		"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": base64.StdEncoding.EncodeToString(key),
	} {
		if req.Header.Get(k) == "" {
			req.Header.Set(k, v)
		}
	}
	conn, err := net.DialTimeout("tcp", req.URL.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	c := &client{Conn: conn, r: bufio.NewReader(conn)}
	if c.resp, err = http.ReadResponse(c.r, req); err != nil {
		t.Fatal(err)
	}
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(c.resp.Body)
		c.resp.Body = io.NopCloser(bytes.NewReader(body))
	} else if got, want := c.resp.Header.Get("Sec-WebSocket-Accept"), cooper.AcceptKey(req.Header.Get("Sec-WebSocket-Key")); got != want {
		t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	return c
}

// echoes checks that what c sends comes back unchanged.
func (c *client) echoes(t *testing.T, msg string) {
	t.Helper()
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(c.resp.Body)
		t.Fatalf("status = %s (%q), want 101", c.resp.Status, body)
	}
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// echo is an upgraded handler that sends back what it reads.
func echo(conn net.Conn, hs *cooper.Handshake) {
	defer conn.Close()
	io.Copy(conn, conn)
}

// A lockedBuffer is a bytes.Buffer that loggers on several goroutines can
// share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// take returns what b holds and empties it.
func (b *lockedBuffer) take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits up to 5 s for b to contain s and returns what it holds.
func (b *lockedBuffer) waitFor(t *testing.T, s string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := b.String()
		if strings.Contains(got, s) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", s, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestURLParamsOutliveTheRequest upgrades many rooms at once and, while
// their handlers wait, serves enough other requests for chi to reuse every
// routing context it had pooled; each handler must still read its own
// room.
func TestURLParamsOutliveTheRequest(t *testing.T) {
	const rooms = 40
	release := make(chan struct{})
	s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
		r.Get("/rooms/{room}/ws", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
			defer conn.Close()
			<-release
			rctx := chi.RouteContext(hs.Request.Context())
			fmt.Fprintf(conn, "%s %s\n", chi.URLParam(hs.Request, "room"), rctx.RoutePattern())
		}))
		r.Get("/rooms/{room}/info", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, chi.URLParam(r, "room"))
		})
	})

	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll)

	clients := make([]*client, rooms)
	for i := range clients {
		clients[i] = dial(t, fmt.Sprintf("%s/rooms/r%d/ws", s.URL, i), nil)
		if clients[i].resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("room %d: status = %s, want 101", i, clients[i].resp.Status)
		}
	}

	var churn sync.WaitGroup
	for w := range 8 {
		churn.Go(func() {
			for i := range 50 {
				room := fmt.Sprintf("other-%d-%d", w, i)
				resp, err := http.Get(s.URL + "/rooms/" + room + "/info")
				if err != nil {
					t.Error(err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != room {
					t.Errorf("GET /rooms/%s/info = %q", room, body)
				}
			}
		})
	}
	churn.Wait()
	http.DefaultClient.CloseIdleConnections()
	releaseAll()

	for i, c := range clients {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("room %d: %v", i, err)
		}
		if want := fmt.Sprintf("r%d /rooms/{room}/ws\n", i); line != want {
			t.Errorf("room %d: handler read %q, want %q", i, line, want)
		}
	}
}

// TestMiddleware upgrades and echoes behind each of chi's common
// middleware, and checks what the middleware did.
func TestMiddleware(t *testing.T) {
	tests := []struct {
		name   string
		use    func(logs *lockedBuffer) []func(http.Handler) http.Handler
		header http.Header
		check  func(t *testing.T, hs *cooper.Handshake, logs *lockedBuffer)
	}{{
		name: "Logger logs the upgrade as 101",
		use: func(logs *lockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{logger(logs)}
		},
		check: func(t *testing.T, hs *cooper.Handshake, logs *lockedBuffer) {
			logs.waitFor(t, `"GET http://`+hs.Request.Host+`/ws HTTP/1.1" from `+hs.Request.RemoteAddr+` - 101 0B`)
		},
	}, {
		name: "RequestID is in the handler's context",
		use: func(*lockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.RequestID}
		},
		header: http.Header{"X-Request-Id": {"req-42"}},
		check: func(t *testing.T, hs *cooper.Handshake, _ *lockedBuffer) {
			if got := middleware.GetReqID(hs.Request.Context()); got != "req-42" {
				t.Errorf("GetReqID(hs.Request.Context()) = %q, want req-42", got)
			}
		},
	}, {
		name: "RealIP sets the handler's RemoteAddr",
		use: func(*lockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.RealIP}
		},
		header: http.Header{"X-Real-Ip": {"203.0.113.7"}},
		check: func(t *testing.T, hs *cooper.Handshake, _ *lockedBuffer) {
			if hs.Request.RemoteAddr != "203.0.113.7" {
				t.Errorf("hs.Request.RemoteAddr = %q, want 203.0.113.7", hs.Request.RemoteAddr)
			}
		},
	}, {
		name: "Recoverer lets the upgrade through",
		use: func(*lockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.Recoverer}
		},
	}, {
		name: "Compress with gzip accepted leaves the connection alone",
		use: func(*lockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.Compress(5)}
		},
		header: http.Header{"Accept-Encoding": {"gzip, deflate"}},
	}, {
		name: "Compress inside Logger",
		use: func(logs *lockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{logger(logs), middleware.Compress(5)}
		},
		header: http.Header{"Accept-Encoding": {"gzip"}},
		check: func(t *testing.T, hs *cooper.Handshake, logs *lockedBuffer) {
			logs.waitFor(t, " - 101 0B")
		},
	}, {
		name: "Compress outside Logger",
		use: func(logs *lockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.Compress(5), logger(logs)}
		},
		header: http.Header{"Accept-Encoding": {"gzip"}},
		check: func(t *testing.T, hs *cooper.Handshake, logs *lockedBuffer) {
			logs.waitFor(t, " - 101 0B")
		},
	}, {
		name: "Throttle lets the upgrade through",
		use: func(*lockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.Throttle(1)}
		},
	}, {
		name: "the whole stack",
		use: func(logs *lockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{
				middleware.RequestID, middleware.RealIP, logger(logs), middleware.Recoverer,
				middleware.Compress(5), middleware.Throttle(4), middleware.Timeout(time.Minute),
			}
		},
		header: http.Header{"Accept-Encoding": {"gzip"}, "X-Forwarded-For": {"198.51.100.2, 10.0.0.1"}},
		check: func(t *testing.T, hs *cooper.Handshake, logs *lockedBuffer) {
			if hs.Request.RemoteAddr != "198.51.100.2" {
				t.Errorf("hs.Request.RemoteAddr = %q, want 198.51.100.2", hs.Request.RemoteAddr)
			}
			if middleware.GetReqID(hs.Request.Context()) == "" {
				t.Error("no request ID in hs.Request.Context()")
			}
			logs.waitFor(t, "from 198.51.100.2 - 101 0B")
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			handshakes := make(chan *cooper.Handshake, 1)
			s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
				r.Use(tt.use(logs)...)
				r.Get("/ws", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
					handshakes <- hs
					echo(conn, hs)
				}))
			})
			c := dial(t, s.URL+"/ws", tt.header)
			c.echoes(t, "hello through chi")
			if enc := c.resp.Header.Get("Content-Encoding"); enc != "" {
				t.Errorf("101 has Content-Encoding: %s", enc)
			}
			hs := recv(t, handshakes)
			if tt.check != nil {
				tt.check(t, hs, logs)
			}
			c.echoes(t, "and again")
		})
	}
}

// logger is chi's Logger, writing to logs without colour.
func logger(logs *lockedBuffer) func(http.Handler) http.Handler {
	return middleware.RequestLogger(&middleware.DefaultLogFormatter{Logger: log.New(logs, "", 0), NoColor: true})
}

// TestRefusal checks that a request cooper refuses gets cooper's answer
// through chi, and that Logger logs its status.
func TestRefusal(t *testing.T) {
	logs := &lockedBuffer{}
	s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
		r.Use(logger(logs), middleware.Recoverer)
		r.Get("/ws", cooperchi.Handler(u, echo))
	})
	c := dial(t, s.URL+"/ws", http.Header{"Sec-Websocket-Version": {"8"}})
	body, _ := io.ReadAll(c.resp.Body)
	if c.resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("status = %s, want 426", c.resp.Status)
	}
	if got := c.resp.Header.Get("Sec-WebSocket-Version"); got != "13" {
		t.Errorf("Sec-WebSocket-Version = %q, want 13", got)
	}
	if want := `cooper: Sec-WebSocket-Version: "8" is not 13`; !strings.Contains(string(body), want) {
		t.Errorf("body = %q, want %q", body, want)
	}
	if err := s.nextErr(t); !errors.Is(err, cooper.ErrWebSocketVersion) {
		t.Errorf("OnError got %v, want ErrWebSocketVersion", err)
	}
	logs.waitFor(t, " - 426 ")
}

// TestHandlerPanic checks that a panic in the upgraded handler, behind
// Recoverer, closes that connection and reaches OnError, and that the
// router goes on serving.
func TestHandlerPanic(t *testing.T) {
	s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
		r.Use(middleware.Recoverer)
		r.Get("/panic", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
			panic("upgraded handler failed")
		}))
		r.Get("/ws", cooperchi.Handler(u, echo))
	})
	c := dial(t, s.URL+"/panic", nil)
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %s, want 101", c.resp.Status)
	}
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read after the panic = %d, %v; want the connection closed", n, err)
	}
	if err := s.nextErr(t); !errors.Is(err, cooper.ErrHandlerPanic) {
		t.Errorf("OnError got %v, want ErrHandlerPanic", err)
	}
	dial(t, s.URL+"/ws", nil).echoes(t, "still serving")
}

// TestThrottleCountsHandshakes holds more connections open than Throttle's
// limit: its slot is released when each connection is handed over.
func TestThrottleCountsHandshakes(t *testing.T) {
	s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
		r.Use(middleware.ThrottleBacklog(1, 0, time.Millisecond))
		r.Get("/ws", cooperchi.Handler(u, echo))
	})
	var clients []*client
	for i := range 5 {
		c := dial(t, s.URL+"/ws", nil)
		c.echoes(t, fmt.Sprint("connection ", i))
		clients = append(clients, c)
	}
	for i, c := range clients {
		c.echoes(t, fmt.Sprint("connection ", i, " again"))
	}
}

// TestTimeout checks what chi's Timeout does to an upgraded connection:
// nothing. The handler outlives the timeout with no deadline and no
// cancellation, the connection keeps working, and Timeout writes nothing,
// so net/http logs nothing.
func TestTimeout(t *testing.T) {
	const timeout = 20 * time.Millisecond
	for _, tt := range []struct {
		name string
		use  []func(http.Handler) http.Handler
	}{
		{"Timeout alone", []func(http.Handler) http.Handler{middleware.Timeout(timeout)}},
		{"Timeout inside Logger", []func(http.Handler) http.Handler{logger(&lockedBuffer{}), middleware.Timeout(timeout)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			contexts := make(chan context.Context, 1)
			s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
				r.Use(tt.use...)
				r.Get("/ws", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
					time.Sleep(5 * timeout)
					contexts <- hs.Request.Context()
					echo(conn, hs)
				}))
			})
			c := dial(t, s.URL+"/ws", nil)
			ctx := recv(t, contexts)
			if d, ok := ctx.Deadline(); ok {
				t.Errorf("handler's context has deadline %v", d)
			}
			if err := ctx.Err(); err != nil {
				t.Errorf("handler's context: %v", err)
			}
			c.echoes(t, "after the timeout")
		})
	}
}

// TestTimeoutShorterThanTheHandshake checks a Timeout that expires before
// the connection is handed over, the one case in which it writes its 504
// after the hijack. A Logger between them swallows it; without one,
// net/http drops it and logs that it did. The connection works either way.
func TestTimeoutShorterThanTheHandshake(t *testing.T) {
	t.Run("inside Logger", func(t *testing.T) {
		s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
			r.Use(logger(&lockedBuffer{}), middleware.Timeout(time.Nanosecond))
			r.Get("/ws", cooperchi.Handler(u, echo))
		})
		dial(t, s.URL+"/ws", nil).echoes(t, "the 504 went nowhere")
	})
	t.Run("alone", func(t *testing.T) {
		s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
			r.Use(middleware.Timeout(time.Nanosecond))
			r.Get("/ws", cooperchi.Handler(u, echo))
		})
		dial(t, s.URL+"/ws", nil).echoes(t, "the 504 went nowhere")
		s.errorLog.waitFor(t, "http: response.WriteHeader on hijacked connection")
		s.errorLog.take()
	})
}

func TestHandlerPanicsOnNil(t *testing.T) {
	for _, tt := range []struct {
		name string
		u    *cooper.Upgrader
		h    func(net.Conn, *cooper.Handshake)
	}{
		{"nil Upgrader", nil, echo},
		{"nil handler", cooper.New(), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Handler did not panic")
				}
			}()
			cooperchi.Handler(tt.u, tt.h)
		})
	}
}
