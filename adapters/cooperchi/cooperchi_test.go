package cooperchi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperchi"
	"lowbit.dev/cooper/internal/testkit"
)

// TestMain fails the run when a test leaves a goroutine of cooper's, chi's
// or net/http's behind.
func TestMain(m *testing.M) { testkit.Main(m, "go-chi/chi") }

// serve starts r on a loopback server whose upgrades go through an
// Upgrader built from opts (see testkit.Serve), set up by build.
func serve(t *testing.T, build func(r chi.Router, u *cooper.Upgrader), opts ...cooper.Option) *testkit.Server {
	t.Helper()
	return testkit.Serve(t, opts, func(u *cooper.Upgrader) http.Handler {
		r := chi.NewRouter()
		build(r, u)
		return r
	})
}

// TestURLParamsOutliveTheRequest upgrades many rooms at once and, while
// their handlers wait, serves enough other requests for chi to reuse every
// routing context it had pooled; each handler must still read its own
// room.
func TestURLParamsOutliveTheRequest(t *testing.T) {
	const rooms = 40
	gate := testkit.NewGate()
	s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
		r.Get("/rooms/{room}/ws", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
			defer conn.Close()
			gate.Wait()
			rctx := chi.RouteContext(hs.Request.Context())
			fmt.Fprintf(conn, "%s %s\n", chi.URLParam(hs.Request, "room"), rctx.RoutePattern())
		}))
		r.Get("/rooms/{room}/info", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, chi.URLParam(r, "room"))
		})
	})

	t.Cleanup(gate.Open)
	testkit.CheckRequestStateOutlives(t, s.URL, rooms, gate.Open, func(i int) string {
		return fmt.Sprintf("r%d /rooms/{room}/ws\n", i)
	})
}

// TestMiddleware upgrades and echoes behind each of chi's common
// middleware, and checks what the middleware did.
func TestMiddleware(t *testing.T) {
	tests := []struct {
		name   string
		use    func(logs *testkit.LockedBuffer) []func(http.Handler) http.Handler
		header http.Header
		check  func(t *testing.T, hs *cooper.Handshake, logs *testkit.LockedBuffer)
	}{{
		name: "Logger logs the upgrade as 101",
		use: func(logs *testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{logger(logs)}
		},
		check: func(t *testing.T, hs *cooper.Handshake, logs *testkit.LockedBuffer) {
			logs.WaitFor(t, `"GET http://`+hs.Request.Host+`/ws HTTP/1.1" from `+hs.Request.RemoteAddr+` - 101 0B`)
		},
	}, {
		name: "RequestID is in the handler's context",
		use: func(*testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.RequestID}
		},
		header: http.Header{"X-Request-Id": {"req-42"}},
		check: func(t *testing.T, hs *cooper.Handshake, _ *testkit.LockedBuffer) {
			if got := middleware.GetReqID(hs.Request.Context()); got != "req-42" {
				t.Errorf("GetReqID(hs.Request.Context()) = %q, want req-42", got)
			}
		},
	}, {
		name: "RealIP sets the handler's RemoteAddr",
		use: func(*testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.RealIP}
		},
		header: http.Header{"X-Real-Ip": {"203.0.113.7"}},
		check: func(t *testing.T, hs *cooper.Handshake, _ *testkit.LockedBuffer) {
			if hs.Request.RemoteAddr != "203.0.113.7" {
				t.Errorf("hs.Request.RemoteAddr = %q, want 203.0.113.7", hs.Request.RemoteAddr)
			}
		},
	}, {
		name: "Recoverer lets the upgrade through",
		use: func(*testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.Recoverer}
		},
	}, {
		name: "Compress with gzip accepted leaves the connection alone",
		use: func(*testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.Compress(5)}
		},
		header: http.Header{"Accept-Encoding": {"gzip, deflate"}},
	}, {
		name: "Compress inside Logger",
		use: func(logs *testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{logger(logs), middleware.Compress(5)}
		},
		header: http.Header{"Accept-Encoding": {"gzip"}},
		check: func(t *testing.T, hs *cooper.Handshake, logs *testkit.LockedBuffer) {
			logs.WaitFor(t, " - 101 0B")
		},
	}, {
		name: "Compress outside Logger",
		use: func(logs *testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.Compress(5), logger(logs)}
		},
		header: http.Header{"Accept-Encoding": {"gzip"}},
		check: func(t *testing.T, hs *cooper.Handshake, logs *testkit.LockedBuffer) {
			logs.WaitFor(t, " - 101 0B")
		},
	}, {
		name: "Compress above a writer with only Unwrap is stepped over",
		use: func(*testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{wrap(func(w http.ResponseWriter) http.ResponseWriter { return unwrapOnly{w} }), middleware.Compress(5)}
		},
		header: http.Header{"Accept-Encoding": {"gzip"}},
	}, {
		name: "Compress above a writer with only Unwrap, inside Logger",
		use: func(logs *testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{
				wrap(func(w http.ResponseWriter) http.ResponseWriter { return unwrapOnly{w} }), logger(logs), middleware.Compress(5),
			}
		},
		header: http.Header{"Accept-Encoding": {"gzip"}},
		check: func(t *testing.T, hs *cooper.Handshake, logs *testkit.LockedBuffer) {
			logs.WaitFor(t, " - 101 0B")
		},
	}, {
		name: "Throttle lets the upgrade through",
		use: func(*testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{middleware.Throttle(1)}
		},
	}, {
		name: "the whole stack",
		use: func(logs *testkit.LockedBuffer) []func(http.Handler) http.Handler {
			return []func(http.Handler) http.Handler{
				middleware.RequestID, middleware.RealIP, logger(logs), middleware.Recoverer,
				middleware.Compress(5), middleware.Throttle(4), middleware.Timeout(time.Minute),
			}
		},
		header: http.Header{"Accept-Encoding": {"gzip"}, "X-Forwarded-For": {"198.51.100.2, 10.0.0.1"}},
		check: func(t *testing.T, hs *cooper.Handshake, logs *testkit.LockedBuffer) {
			if hs.Request.RemoteAddr != "198.51.100.2" {
				t.Errorf("hs.Request.RemoteAddr = %q, want 198.51.100.2", hs.Request.RemoteAddr)
			}
			if middleware.GetReqID(hs.Request.Context()) == "" {
				t.Error("no request ID in hs.Request.Context()")
			}
			logs.WaitFor(t, "from 198.51.100.2 - 101 0B")
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &testkit.LockedBuffer{}
			handshakes := make(chan *cooper.Handshake, 1)
			s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
				r.Use(tt.use(logs)...)
				r.Get("/ws", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
					handshakes <- hs
					testkit.Echo(conn, hs)
				}))
			})
			c := testkit.Dial(t, s.URL+"/ws", tt.header)
			c.Echoes(t, "hello through chi")
			if enc := c.Resp.Header.Get("Content-Encoding"); enc != "" {
				t.Errorf("101 has Content-Encoding: %s", enc)
			}
			hs := testkit.Recv(t, handshakes)
			if tt.check != nil {
				tt.check(t, hs, logs)
			}
			c.Echoes(t, "and again")
		})
	}
}

// logger is chi's Logger, writing to logs without colour.
func logger(logs *testkit.LockedBuffer) func(http.Handler) http.Handler {
	return middleware.RequestLogger(&middleware.DefaultLogFormatter{Logger: log.New(logs, "", 0), NoColor: true})
}

// wrap is a middleware that hands the next handler its writer as fn
// wraps it.
func wrap(fn func(http.ResponseWriter) http.ResponseWriter) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(fn(w), r) })
	}
}

// An unwrapOnly writer, as a metrics middleware's, has Unwrap and no Hijack.
type unwrapOnly struct{ http.ResponseWriter }

func (w unwrapOnly) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// An opaque writer hides the writer it wraps: it has neither Unwrap nor
// Hijack.
type opaque struct{ http.ResponseWriter }

// TestCompressOverUnhijackableWriter checks that an upgrade behind Compress
// whose chain cannot be hijacked at all is refused with 500, a reason that
// names the writer to fix, and ErrHijackFailed, not left to net/http's
// empty 200.
func TestCompressOverUnhijackableWriter(t *testing.T) {
	s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
		r.Use(wrap(func(w http.ResponseWriter) http.ResponseWriter { return opaque{w} }), middleware.Compress(5))
		r.Get("/ws", cooperchi.Handler(u, testkit.Echo))
	})
	c := testkit.Dial(t, s.URL+"/ws", nil) // without gzip, so the body can be read
	if c.Resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status = %s, want 500", c.Resp.Status)
	}
	if want := "cooper: hijack: cooperchi_test.opaque cannot be hijacked: give it an Unwrap() http.ResponseWriter method"; !strings.HasPrefix(c.Body, want) {
		t.Errorf("body = %q, want it to start with %q", c.Body, want)
	}
	if err := s.NextErr(t); !errors.Is(err, cooper.ErrHijackFailed) {
		t.Errorf("OnError got %v, want ErrHijackFailed", err)
	}
}

// TestRefusal checks that a request cooper refuses gets cooper's answer
// through chi, and that Logger logs its status.
func TestRefusal(t *testing.T) {
	logs := &testkit.LockedBuffer{}
	s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
		r.Use(logger(logs), middleware.Recoverer)
		r.Get("/ws", cooperchi.Handler(u, testkit.Echo))
	})
	c := testkit.Dial(t, s.URL+"/ws", http.Header{"Sec-Websocket-Version": {"8"}})
	if c.Resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("status = %s, want 426", c.Resp.Status)
	}
	if got := c.Resp.Header.Get("Sec-WebSocket-Version"); got != "13" {
		t.Errorf("Sec-WebSocket-Version = %q, want 13", got)
	}
	if want := `cooper: Sec-WebSocket-Version: "8" is not 13`; !strings.Contains(c.Body, want) {
		t.Errorf("body = %q, want %q", c.Body, want)
	}
	if err := s.NextErr(t); !errors.Is(err, cooper.ErrWebSocketVersion) {
		t.Errorf("OnError got %v, want ErrWebSocketVersion", err)
	}
	logs.WaitFor(t, " - 426 ")
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
		r.Get("/ws", cooperchi.Handler(u, testkit.Echo))
	})
	s.CheckHandlerPanic(t)
}

// TestThrottleCountsHandshakes holds more connections open than Throttle's
// limit: its slot is released when each connection is handed over, that
// is when the request's ServeHTTP returns, which the client may see after
// the 101; so each dial waits for the one before to have returned.
func TestThrottleCountsHandshakes(t *testing.T) {
	served := make(chan struct{}, 5)
	s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
		r.Use(func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r)
				served <- struct{}{}
			})
		})
		r.Use(middleware.ThrottleBacklog(1, 0, time.Millisecond))
		r.Get("/ws", cooperchi.Handler(u, testkit.Echo))
	})
	var clients []*testkit.Client
	for i := range 5 {
		c := testkit.Dial(t, s.URL+"/ws", nil)
		c.Echoes(t, fmt.Sprint("connection ", i))
		clients = append(clients, c)
		testkit.RecvWithin(t, served, 5*time.Second, "return of the upgrade's ServeHTTP")
	}
	for i, c := range clients {
		c.Echoes(t, fmt.Sprint("connection ", i, " again"))
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
		{"Timeout inside Logger", []func(http.Handler) http.Handler{logger(&testkit.LockedBuffer{}), middleware.Timeout(timeout)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			contexts := make(chan context.Context, 1)
			s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
				r.Use(tt.use...)
				r.Get("/ws", cooperchi.Handler(u, func(conn net.Conn, hs *cooper.Handshake) {
					time.Sleep(5 * timeout)
					contexts <- hs.Request.Context()
					testkit.Echo(conn, hs)
				}))
			})
			c := testkit.Dial(t, s.URL+"/ws", nil)
			ctx := testkit.Recv(t, contexts)
			if d, ok := ctx.Deadline(); ok {
				t.Errorf("handler's context has deadline %v", d)
			}
			if err := ctx.Err(); err != nil {
				t.Errorf("handler's context: %v", err)
			}
			c.Echoes(t, "after the timeout")
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
			r.Use(logger(&testkit.LockedBuffer{}), middleware.Timeout(time.Nanosecond))
			r.Get("/ws", cooperchi.Handler(u, testkit.Echo))
		})
		testkit.Dial(t, s.URL+"/ws", nil).Echoes(t, "the 504 went nowhere")
	})
	t.Run("alone", func(t *testing.T) {
		s := serve(t, func(r chi.Router, u *cooper.Upgrader) {
			r.Use(middleware.Timeout(time.Nanosecond))
			r.Get("/ws", cooperchi.Handler(u, testkit.Echo))
		})
		testkit.Dial(t, s.URL+"/ws", nil).Echoes(t, "the 504 went nowhere")
		s.ErrorLog.WaitFor(t, "http: response.WriteHeader on hijacked connection")
		s.ErrorLog.Take()
	})
}

func TestHandlerPanicsOnNil(t *testing.T) {
	testkit.MustPanic(t, "Handler(nil, testkit.Echo)", func() { cooperchi.Handler(nil, testkit.Echo) })
	testkit.MustPanic(t, "Handler(cooper.New(), nil)", func() { cooperchi.Handler(cooper.New(), nil) })
}
