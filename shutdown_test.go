package cooper

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"lowbit.dev/cooper/internal/poll"
)

// TestShutdownStalledTLSClients shuts down with TLS clients that stopped
// reading, whose handlers ignore their context and, their last write timed
// out with the send buffers full, wait on a read. A *tls.Conn's Close tries
// to send close_notify for up to 5 s to such a peer; Shutdown must not wait
// for that: it returns within a small margin of its deadline, every
// connection closed.
func TestShutdownStalledTLSClients(t *testing.T) {
	const clients = 2
	stalled := make(chan struct{}, clients)
	u := New(Protocols("websocket"))
	s := newServer(t, h1TLS, u.Handler(func(conn net.Conn, hs *Handshake) {
		defer conn.Close()
		fillSendBuffer(conn.(*tls.Conn).NetConn())
		stalled <- struct{}{}
		conn.Read(make([]byte, 1)) // ignores its context: returns when the connection is closed
	}))
	for range clients {
		resp, _, _, _ := s.roundTrip(t, s.wsRequest(), "") // and never reads again
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
	}
	for range clients {
		wait(t, stalled, "a handler's write to time out on a full send buffer")
	}
	const grace = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	err := u.Shutdown(ctx)
	took := time.Since(start)
	t.Logf("Shutdown returned after %v", took)
	if err != context.DeadlineExceeded || took > grace+2*time.Second {
		t.Fatalf("Shutdown = %v after %v, want context.DeadlineExceeded within 2 s of its %v deadline", err, took, grace)
	}
	poll.Until(t, 10*time.Second, "every handler to return", func() bool { return u.Stats().Active == 0 })
}

// fillSendBuffer writes to c, whose peer does not read, until not one more
// byte fits in the socket's send buffer: in ever smaller writes, each ended
// by a short write deadline, down to single bytes, since the kernel takes
// small writes into space a large one left.
func fillSendBuffer(c net.Conn) {
	buf := make([]byte, 64<<10)
	for size := len(buf); size > 0; size /= 16 {
		for {
			c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := c.Write(buf[:size]); err != nil {
				break
			}
		}
	}
	c.SetWriteDeadline(time.Time{})
}

// TestShutdownDuringAnswer shuts down while an upgrade is still writing its
// 101 to a client that does not read (the answer carries 16 MiB of
// application headers): at its deadline Shutdown closes that connection
// too, so the client never gets the whole 101, and the handler never
// starts, not even after Shutdown returned.
func TestShutdownDuringAnswer(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		const headers, size = 16, 1 << 20
		big := strings.Repeat("v", size)
		started := make(chan struct{}, 1)
		var failures atomic.Int32
		u := New(Protocols("websocket"), HandshakeTimeout(time.Minute),
			OnError(func(err error) {
				if errors.Is(err, ErrShutdown) {
					failures.Add(1)
				}
			}),
			ResponseHeaders(func(*http.Request, string) http.Header {
				h := http.Header{}
				for i := range headers {
					h.Set(fmt.Sprintf("X-Big-%d", i), big)
				}
				return h
			}))
		s := newServer(t, m, u.Handler(func(conn net.Conn, hs *Handshake) {
			started <- struct{}{}
			conn.Close()
		}))
		c := s.dial(t)
		if _, err := c.Write(appendRequest(nil, s.wsRequest(), "")); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 10*time.Second, "the connection to be taken over", func() bool { return s.hijacked.Load() == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := u.Shutdown(ctx); err != context.DeadlineExceeded {
			t.Fatalf("Shutdown with an upgrade writing its 101 = %v, want context.DeadlineExceeded", err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if errors.Is(err, os.ErrDeadlineExceeded) || n >= headers*size {
			t.Errorf("after Shutdown the client read %d bytes, then %v; want the connection closed before the 101's %d MiB", n, err, headers*size>>20)
		}
		none(t, started, "handler start after Shutdown returned")
		poll.Until(t, 10*time.Second, "the upgrade to be untracked", func() bool { return u.Stats().Active == 0 })
		if s := u.Stats(); s.Upgrades != 0 || s.Failures != 1 || failures.Load() != 1 {
			t.Errorf("Stats = %+v, %d ErrShutdown reported; want no upgrade, one failure, reported as ErrShutdown", s, failures.Load())
		}
	})
}

// TestNoHandlerAfterShutdownClosed starts a handler's goroutine after
// Shutdown closed every connection, as the scheduler may: the handler is
// not called, its connection is closed and it is no longer tracked.
func TestNoHandlerAfterShutdownClosed(t *testing.T) {
	called := false
	h := Hijack(func(net.Conn, string) { called = true }).(*handler)
	u := h.u
	server, client := net.Pipe()
	defer client.Close()
	tr := &tracked{h: h, hs: &Handshake{Protocol: "websocket"}}
	if rej := u.track(tr, &http.Request{}, ownState{}); rej != nil {
		t.Fatal(rej)
	}
	u.hold(tr, server)
	u.closed.Store(true)
	u.closeAll() // Shutdown's deadline passed
	tr.run()
	if called {
		t.Error("the handler started after Shutdown closed its connection")
	}
	if _, err := server.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("write on the connection = %v, want io.ErrClosedPipe", err)
	}
	if a := u.Stats().Active; a != 0 {
		t.Errorf("Active = %d, want 0", a)
	}
}

// TestShutdownDuringTakeOver has Shutdown's deadline pass while an upgrade
// is being taken over, before its connection is held: a middleware's
// Hijack runs Shutdown with an expired context first. The upgrade must see
// that Shutdown closed everything: it writes no 101, closes the
// connection and starts no handler.
func TestShutdownDuringTakeOver(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		started := make(chan struct{}, 1)
		var reported atomic.Int32
		u := New(Protocols("websocket"), OnError(func(err error) {
			if errors.Is(err, ErrShutdown) {
				reported.Add(1)
			}
		}))
		inner := u.Handler(func(conn net.Conn, hs *Handshake) {
			started <- struct{}{}
			conn.Close()
		})
		s := newServer(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inner.ServeHTTP(&hijackFirst{ResponseWriter: w, before: func() {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if err := u.Shutdown(ctx); err != context.Canceled {
					t.Errorf("Shutdown = %v, want context.Canceled", err)
				}
			}}, r)
		}))
		c := s.dial(t)
		if _, err := c.Write(appendRequest(nil, s.wsRequest(), "")); err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(c); len(got) > 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("the client read %q, then %v; want the connection closed with nothing written", got, err)
		}
		none(t, started, "handler start after Shutdown returned")
		poll.Until(t, 10*time.Second, "the upgrade to be untracked", func() bool { return u.Stats().Active == 0 })
		if n := reported.Load(); n != 1 {
			t.Errorf("%d errors matching ErrShutdown reported, want 1", n)
		}
	})
}

// hijackFirst is a middleware's ResponseWriter whose Hijack calls before,
// then hijacks the writer it wraps.
type hijackFirst struct {
	http.ResponseWriter
	before func()
}

func (w *hijackFirst) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.before()
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// TestDrainCutShort has Shutdown's context end early in a long drain: the
// contexts of the handlers whose turn has not come are cancelled then, with
// ErrShutdown, and not only their connections closed. The connections here
// ignore Close, so only the cancellation ends the handlers.
func TestDrainCutShort(t *testing.T) {
	const n = 3
	u := New(Protocols("websocket"), DrainTime(time.Hour))
	causes := make(chan error, n)
	h := u.Handler(func(conn net.Conn, hs *Handshake) {
		<-hs.Request.Context().Done()
		causes <- context.Cause(hs.Request.Context())
	})
	for range n {
		h.ServeHTTP(newFakeWriter(), realRequest(""))
	}
	poll.Until(t, 10*time.Second, "the handlers to start", func() bool { return u.Stats().Active == n })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := u.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want context.DeadlineExceeded: the drain takes an hour", err)
	}
	for i := range n {
		if cause := wait(t, causes, "a handler's context to end"); cause != ErrShutdown {
			t.Errorf("handler %d: Cause = %v, want ErrShutdown", i, cause)
		}
	}
}
