package coopergin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergin"
	"lowbit.dev/cooper/internal/testkit"
)

// TestMain runs gin in test mode and fails the run when a test leaves a
// goroutine of cooper's, gin's or net/http's behind.
func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	testkit.Main(m, "gin-gonic/gin")
}

// A server is a gin engine on a loopback server, with what its upgrades,
// gin.Logger and net/http reported.
type server struct {
	*testkit.Server
	logs *testkit.LockedBuffer // gin.Logger's output
}

// serve starts a gin engine with gin.Logger and gin.Recovery, set up by
// build, on a loopback server whose upgrades go through an Upgrader that
// collects its errors (see testkit.Serve); wrap, if not nil, wraps the
// engine.
func serve(t *testing.T, build func(e *gin.Engine, u *cooper.Upgrader), wrap func(http.Handler) http.Handler) *server {
	t.Helper()
	logs := &testkit.LockedBuffer{}
	s := testkit.Serve(t, nil, func(u *cooper.Upgrader) http.Handler {
		e := gin.New()
		e.Use(gin.LoggerWithWriter(logs), gin.RecoveryWithWriter(io.Discard))
		build(e, u)
		if wrap != nil {
			return wrap(e)
		}
		return e
	})
	return &server{Server: s, logs: logs}
}

// echo is testkit.Echo as a coopergin handler.
func echo(c *gin.Context, conn net.Conn, hs *cooper.Handshake) { testkit.Echo(conn, hs) }

// TestParamsAndKeysOutliveTheRequest upgrades many rooms at once and, while
// their handlers wait, serves enough other requests for gin to reuse every
// Context it had pooled; each handler must still read its own parameters
// and keys.
func TestParamsAndKeysOutliveTheRequest(t *testing.T) {
	const rooms = 40
	gate := testkit.NewGate()
	s := serve(t, func(e *gin.Engine, u *cooper.Upgrader) {
		e.Use(func(c *gin.Context) { c.Set("room", "key-"+c.Param("room")) })
		e.GET("/rooms/:room/ws", coopergin.Handler(u, func(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
			defer conn.Close()
			gate.Wait()
			fmt.Fprintf(conn, "%s %s %s\n", c.Param("room"), c.GetString("room"), c.FullPath())
		}))
		e.GET("/rooms/:room/info", func(c *gin.Context) { c.String(http.StatusOK, c.Param("room")) })
	}, nil)

	t.Cleanup(gate.Open)
	testkit.CheckRequestStateOutlives(t, s.URL, rooms, gate.Open, func(i int) string {
		return fmt.Sprintf("r%d key-r%d /rooms/:room/ws\n", i, i)
	})
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
	testkit.Dial(t, s.URL+"/ws", nil)
	c := testkit.Recv(t, contexts)
	time.Sleep(20 * time.Millisecond)
	if err := c.Err(); err != nil {
		t.Fatalf("c.Err() = %v after ServeHTTP returned, want nil", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.U.Shutdown(ctx); err != nil {
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

	testkit.Dial(t, s.URL+"/ws", nil).Echoes(t, "hello through gin")
	s.logs.WaitFor(t, `| 101 |`)

	c := testkit.Dial(t, s.URL+"/ws", http.Header{"Upgrade": {"h2c"}})
	if c.Resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("status = %s, want 426", c.Resp.Status)
	}
	if want := `cooper: Upgrade: "h2c" has none of "websocket"`; !strings.Contains(c.Body, want) {
		t.Errorf("body = %q, want %q", c.Body, want)
	}
	if got := c.Resp.Header.Get("Upgrade"); got != "websocket" {
		t.Errorf("Upgrade = %q, want websocket", got)
	}
	s.logs.WaitFor(t, `| 426 |`)
}

// TestMiddlewareAroundTheUpgrade upgrades behind gin middleware that
// touches the response before or after the chain: each upgrade works, is
// logged as 101, and nothing a middleware writes reaches the connection or
// makes net/http log (testkit.Serve fails the test if it does).
func TestMiddlewareAroundTheUpgrade(t *testing.T) {
	tests := []struct {
		name string
		mw   gin.HandlerFunc
	}{
		{"a status set before the chain is replaced by 101",
			func(c *gin.Context) { c.Status(http.StatusUnauthorized); c.Next() }},
		{"a writer that records the body, as loggers of bodies do",
			func(c *gin.Context) { c.Writer = bodyRecorder{c.Writer, &strings.Builder{}}; c.Next() }},
		{"a body written after the chain is discarded",
			func(c *gin.Context) { c.Next(); c.String(http.StatusOK, "written after the upgrade") }},
		{"a status and header written after the chain are discarded",
			func(c *gin.Context) { c.Next(); c.AbortWithStatus(http.StatusInternalServerError); c.Writer.Flush() }},
		{"a panic after the chain, which gin.Recovery answers with 500, leaves the connection alone",
			func(c *gin.Context) { c.Next(); panic("middleware failed after the upgrade") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serve(t, func(e *gin.Engine, u *cooper.Upgrader) {
				e.Use(tt.mw)
				e.GET("/ws", coopergin.Handler(u, echo))
			}, nil)
			c := testkit.Dial(t, s.URL+"/ws", nil)
			c.Echoes(t, "hello through gin")
			line := s.logs.WaitFor(t, `| 101 |`)
			if strings.Contains(line, "Error #") {
				t.Errorf("gin.Logger logged an error: %q", line)
			}
			c.Echoes(t, "and again")
		})
	}
}

// A bodyRecorder is a gin middleware's writer that records the body it
// passes on; it hides gin's Unwrap, as such writers do.
type bodyRecorder struct {
	gin.ResponseWriter
	body *strings.Builder
}

func (w bodyRecorder) Write(b []byte) (int, error) {
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
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

	c := testkit.Dial(t, s.URL+"/ws", http.Header{"Sec-Websocket-Version": {"8"}})
	if c.Resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(c.Body, "is not 13") {
		t.Errorf("refusal = %s %q, want 426 and cooper's reason", c.Resp.Status, c.Body)
	}
	if err := s.NextErr(t); !errors.Is(err, cooper.ErrWebSocketVersion) {
		t.Errorf("OnError got %v, want ErrWebSocketVersion", err)
	}

	s.CheckHandlerPanic(t)
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
		c := testkit.Dial(t, s.URL+"/ws", nil)
		if c.Resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("status = %s, want 500", c.Resp.Status)
		}
		if err := s.NextErr(t); !errors.Is(err, cooper.ErrHijackFailed) || !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("OnError got %v, want ErrHijackFailed and http.ErrNotSupported", err)
		}
		s.logs.WaitFor(t, `| 500 |`)
	})
	t.Run("header already written", func(t *testing.T) {
		s := serve(t, func(e *gin.Engine, u *cooper.Upgrader) {
			e.Use(func(c *gin.Context) { c.Writer.WriteHeaderNow() })
			e.GET("/ws", coopergin.Handler(u, echo))
		}, nil)
		c := testkit.Dial(t, s.URL+"/ws", nil)
		if c.Resp.StatusCode != http.StatusOK {
			t.Errorf("status = %s, want the 200 the middleware wrote", c.Resp.Status)
		}
		if err := s.NextErr(t); !errors.Is(err, cooper.ErrHijackFailed) {
			t.Errorf("OnError got %v, want ErrHijackFailed", err)
		}
	})
}

// unwrapOnly hides every method of a ResponseWriter but Unwrap, as some
// middleware writers do.
type unwrapOnly struct{ http.ResponseWriter }

func (w unwrapOnly) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestHandlerPanicsOnNil(t *testing.T) {
	testkit.MustPanic(t, "Handler(nil, echo)", func() { coopergin.Handler(nil, echo) })
	testkit.MustPanic(t, "Handler(cooper.New(), nil)", func() { coopergin.Handler(cooper.New(), nil) })
}
