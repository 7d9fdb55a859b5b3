package coopergin_test

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

	"github.com/gin-gonic/gin"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergin"
)

// TestMain runs gin in test mode and fails the run when a test leaves a
// goroutine of cooper's, gin's or net/http's behind.
func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for goroutines running cooper's, gin's or
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
			if strings.Contains(g, "lowbit.dev/cooper") || strings.Contains(g, "gin-gonic/gin") || strings.Contains(g, "net/http") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A server is a gin engine on a loopback httptest server, with what its
// upgrades, gin.Logger and net/http reported.
type server struct {
	URL      string
	u        *cooper.Upgrader
	errs     chan error    // what the Upgrader told OnError
	logs     *lockedBuffer // gin.Logger's output
	errorLog *lockedBuffer // http.Server.ErrorLog
}

// serve starts a gin engine with gin.Logger and gin.Recovery, set up by
// build, on a loopback server whose upgrades go through an Upgrader that
// collects its errors; wrap, if not nil, wraps the engine. The server and
// the Upgrader are shut down when the test ends.
func serve(t *testing.T, build func(e *gin.Engine, u *cooper.Upgrader), wrap func(http.Handler) http.Handler) *server {
	t.Helper()
	s := &server{errs: make(chan error, 64), logs: &lockedBuffer{}, errorLog: &lockedBuffer{}}
	s.u = cooper.New(cooper.Protocols("websocket"), cooper.OnError(func(err error) {
		select {
		case s.errs <- err:
		default:
		}
	}))
	e := gin.New()
	e.Use(gin.LoggerWithWriter(s.logs), gin.RecoveryWithWriter(io.Discard))
	build(e, s.u)
	var h http.Handler = e
	if wrap != nil {
		h = wrap(e)
	}
	srv := httptest.NewUnstartedServer(h)
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
	body string // the body of a response other than 101
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
		c.body = string(body)
	} else if got, want := c.resp.Header.Get("Sec-WebSocket-Accept"), cooper.AcceptKey(req.Header.Get("Sec-WebSocket-Key")); got != want {
		t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	return c
}

// echoes checks that what c sends comes back unchanged.
func (c *client) echoes(t *testing.T, msg string) {
	t.Helper()
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %s (%q), want 101", c.resp.Status, c.body)
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
func echo(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
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

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits up to 5 s for b to contain s.
func (b *lockedBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", s, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestParamsAndKeysOutliveTheRequest upgrades many rooms at once and, while
// their handlers wait, serves enough other requests for gin to reuse every
// Context it had pooled; each handler must still read its own parameters
// and keys.
func TestParamsAndKeysOutliveTheRequest(t *testing.T) {
	const rooms = 40
	release := make(chan struct{})
	s := serve(t, func(e *gin.Engine, u *cooper.Upgrader) {
		e.Use(func(c *gin.Context) { c.Set("room", "key-"+c.Param("room")) })
		e.GET("/rooms/:room/ws", coopergin.Handler(u, func(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
			defer conn.Close()
			<-release
			fmt.Fprintf(conn, "%s %s %s\n", c.Param("room"), c.GetString("room"), c.FullPath())
		}))
		e.GET("/rooms/:room/info", func(c *gin.Context) { c.String(http.StatusOK, c.Param("room")) })
	}, nil)

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
		if want := fmt.Sprintf("r%d key-r%d /rooms/:room/ws\n", i, i); line != want {
			t.Errorf("room %d: handler read %q, want %q", i, line, want)
		}
	}
}

// TestHandlerContext checks the Context the handler gets: its Request is
// the Handshake's, and with ContextWithFallback it is done when the
// Upgrader shuts down, not when ServeHTTP returns.
func TestHandlerContext(t *testing.T) {
	contexts := make(chan *gin.Context, 1)
	s := serve(t, func(e *gin.Engine, u *cooper.Upgrader) {
		e.ContextWithFallback = true
		e.GET("/ws", coopergin.Handler(u, func(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
			defer conn.Close()
			if c.Request != hs.Request {
				t.Error("c.Request is not hs.Request")
			}
			contexts <- c
			<-c.Done()
		}))
	}, nil)
	dial(t, s.URL+"/ws", nil)
	c := recv(t, contexts)
	time.Sleep(20 * time.Millisecond)
	if err := c.Err(); err != nil {
		t.Fatalf("c.Err() = %v after ServeHTTP returned, want nil", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.u.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v; the handler did not see c.Done()", err)
	}
	if !errors.Is(c.Err(), context.Canceled) {
		t.Errorf("c.Err() = %v after Shutdown, want context.Canceled", c.Err())
	}
}

// TestLogger checks that gin.Logger logs an upgrade as 101 and a refusal
// with its status, and that the handler chain stops at the upgrade either
// way.
func TestLogger(t *testing.T) {
	s := serve(t, func(e *gin.Engine, u *cooper.Upgrader) {
		e.GET("/ws", coopergin.Handler(u, echo), func(c *gin.Context) {
			t.Error("the handler after the upgrade ran")
			c.String(http.StatusTeapot, "too late")
		})
	}, nil)

	dial(t, s.URL+"/ws", nil).echoes(t, "hello through gin")
	s.logs.waitFor(t, `| 101 |`)

	c := dial(t, s.URL+"/ws", http.Header{"Upgrade": {"h2c"}})
	if c.resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("status = %s, want 426", c.resp.Status)
	}
	if want := `cooper: Upgrade: "h2c" has none of "websocket"`; !strings.Contains(c.body, want) {
		t.Errorf("body = %q, want %q", c.body, want)
	}
	if got := c.resp.Header.Get("Upgrade"); got != "websocket" {
		t.Errorf("Upgrade = %q, want websocket", got)
	}
	s.logs.waitFor(t, `| 426 |`)
}

// TestRecovery checks that gin.Recovery keeps working around the upgrade:
// a middleware's panic after a refusal is recovered without touching the
// refusal, and a panic in the upgraded handler is cooper's, which closes
// that connection and reports it.
func TestRecovery(t *testing.T) {
	s := serve(t, func(e *gin.Engine, u *cooper.Upgrader) {
		e.Use(func(c *gin.Context) {
			c.Next()
			if c.Writer.Status() == http.StatusUpgradeRequired {
				panic("middleware failed after a refusal")
			}
		})
		e.GET("/ws", coopergin.Handler(u, echo))
		e.GET("/panic", coopergin.Handler(u, func(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
			panic("upgraded handler failed")
		}))
	}, nil)

	c := dial(t, s.URL+"/ws", http.Header{"Sec-Websocket-Version": {"8"}})
	if c.resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(c.body, "is not 13") {
		t.Errorf("refusal = %s %q, want 426 and cooper's reason", c.resp.Status, c.body)
	}
	if err := s.nextErr(t); !errors.Is(err, cooper.ErrWebSocketVersion) {
		t.Errorf("OnError got %v, want ErrWebSocketVersion", err)
	}

	c = dial(t, s.URL+"/panic", nil)
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

// TestCannotHijack checks the two cases in which gin's writer cannot be
// taken over: the writer beneath it is no http.Hijacker, which gin would
// panic on, and a middleware already wrote the header. Neither panics or
// sends a 101.
func TestCannotHijack(t *testing.T) {
	t.Run("writer beneath gin's is no Hijacker", func(t *testing.T) {
		s := serve(t, func(e *gin.Engine, u *cooper.Upgrader) {
			e.GET("/ws", coopergin.Handler(u, echo))
		}, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(unwrapOnly{w}, r)
			})
		})
		c := dial(t, s.URL+"/ws", nil)
		if c.resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("status = %s, want 500", c.resp.Status)
		}
		if err := s.nextErr(t); !errors.Is(err, cooper.ErrHijackFailed) || !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("OnError got %v, want ErrHijackFailed and http.ErrNotSupported", err)
		}
		s.logs.waitFor(t, `| 500 |`)
	})
	t.Run("header already written", func(t *testing.T) {
		s := serve(t, func(e *gin.Engine, u *cooper.Upgrader) {
			e.Use(func(c *gin.Context) { c.Writer.WriteHeaderNow() })
			e.GET("/ws", coopergin.Handler(u, echo))
		}, nil)
		c := dial(t, s.URL+"/ws", nil)
		if c.resp.StatusCode != http.StatusOK {
			t.Errorf("status = %s, want the 200 the middleware wrote", c.resp.Status)
		}
		if err := s.nextErr(t); !errors.Is(err, cooper.ErrHijackFailed) {
			t.Errorf("OnError got %v, want ErrHijackFailed", err)
		}
	})
}

// unwrapOnly hides every method of a ResponseWriter but Unwrap, as some
// middleware writers do.
type unwrapOnly struct{ http.ResponseWriter }

func (w unwrapOnly) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestHandlerPanicsOnNil(t *testing.T) {
	for _, tt := range []struct {
		name string
		u    *cooper.Upgrader
		h    func(*gin.Context, net.Conn, *cooper.Handshake)
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
			coopergin.Handler(tt.u, tt.h)
		})
	}
}
