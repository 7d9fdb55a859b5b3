package interop

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/poll"
	"lowbit.dev/cooper/internal/testkit"
)

// stallingHandler is a handler that writes its stream until a Write fails,
// to a client that does not read, so the Write blocks on HTTP/2 flow
// control; once blocked it sends its connection to stalled and waits. Its
// Write's error goes to writeErrs.
func stallingHandler(stalled chan<- net.Conn, writeErrs chan<- error) func(net.Conn, *cooper.Handshake) {
	return func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		if hs.Request.URL.Path != "/stalled" {
			return
		}
		var written atomic.Int64
		errs := make(chan error, 1)
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := conn.Write(buf)
				written.Add(int64(n))
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		for last := int64(-1); ; time.Sleep(200 * time.Millisecond) {
			if n := written.Load(); n == last && n > 0 {
				break
			} else {
				last = n
			}
		}
		stalled <- conn
		start := time.Now()
		select {
		case err := <-errs:
			writeErrs <- err
		case <-time.After(20 * time.Second):
			writeErrs <- errors.New("still blocked 20 s later")
			conn.Close()
			<-errs
			return
		}
		if took := time.Since(start); took > 5*time.Second {
			writeErrs <- errors.New("the Write returned " + took.String() + " later")
		}
	}
}

// TestH2CloseEndsBlockedWrite opens extended CONNECTs whose client never
// reads, so the handler's Write blocks on flow control. Closing the
// connection, as a framing layer's idle timer would, or Shutdown's deadline
// passing, ends the Write with net.ErrClosed, the handler returns and the
// connection is no longer counted: under MaxConnections(1) the next client
// gets in, and Shutdown completes.
func TestH2CloseEndsBlockedWrite(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	t.Run("the handler's Close frees the slot", func(t *testing.T) {
		stalled, writeErrs := make(chan net.Conn, 1), make(chan error, 2)
		u := cooper.New(cooper.Protocols("websocket"), cooper.MaxConnections(1))
		s := newH2Server(t, u.Handler(stallingHandler(stalled, writeErrs)), nil)
		if st := connect(t, s, "/stalled", nil); st.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200", st.StatusCode)
		}
		conn := testkit.RecvWithin(t, stalled, 30*time.Second, "blocked Write")
		conn.Close() // an idle timer
		if err := testkit.RecvWithin(t, writeErrs, 30*time.Second, "end of the Write"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write ended by Close = %v, want net.ErrClosed", err)
		}
		poll.Until(t, 10*time.Second, "the connection to be untracked", func() bool { return u.Stats().Active == 0 })
		if st := connect(t, s, "/next", nil); st.StatusCode != http.StatusOK {
			t.Errorf("the next client under MaxConnections(1): status = %d, want 200", st.StatusCode)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := u.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v, want nil: no handler is left", err)
		}
	})
	t.Run("Shutdown's deadline ends the blocked Write", func(t *testing.T) {
		stalled, writeErrs := make(chan net.Conn, 1), make(chan error, 2)
		u := cooper.New(cooper.Protocols("websocket"))
		s := newH2Server(t, u.Handler(stallingHandler(stalled, writeErrs)), nil)
		if st := connect(t, s, "/stalled", nil); st.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200", st.StatusCode)
		}
		testkit.RecvWithin(t, stalled, 30*time.Second, "blocked Write")
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := u.Shutdown(ctx); err != context.DeadlineExceeded {
			t.Errorf("Shutdown = %v, want context.DeadlineExceeded: the handler ignores its context", err)
		}
		if err := testkit.RecvWithin(t, writeErrs, 30*time.Second, "end of the Write"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write ended by Shutdown = %v, want net.ErrClosed", err)
		}
		poll.Until(t, 10*time.Second, "the connection to be untracked", func() bool { return u.Stats().Active == 0 })
	})
}

// TestH2ShutdownDuringAnswer has Shutdown's deadline pass while an extended
// CONNECT is being answered, before its stream is held: a middleware's
// SetReadDeadline, which the Upgrader calls first, runs Shutdown with an
// expired context. The Upgrader must then reset the stream instead of
// answering 200, and start no handler.
func TestH2ShutdownDuringAnswer(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	started := make(chan struct{}, 1)
	u := cooper.New(cooper.Protocols("websocket"))
	inner := u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		started <- struct{}{}
		conn.Close()
	})
	s := newH2Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner.ServeHTTP(&deadlineFirst{ResponseWriter: w, before: func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := u.Shutdown(ctx); err != context.Canceled {
				t.Errorf("Shutdown = %v, want context.Canceled", err)
			}
		}}, r)
	}), nil)
	if st, err := tryConnect(t, s, "/ws", nil); err == nil {
		t.Errorf("extended CONNECT answered %d, want the stream reset", st.StatusCode)
	}
	select {
	case <-started:
		t.Error("the handler started after Shutdown returned")
	case <-time.After(100 * time.Millisecond):
	}
	poll.Until(t, 10*time.Second, "the stream to be untracked", func() bool { return u.Stats().Active == 0 })
}

// deadlineFirst is a middleware's ResponseWriter whose SetReadDeadline
// calls before, then sets the deadline on the writer it wraps.
type deadlineFirst struct {
	http.ResponseWriter
	before func()
}

func (w *deadlineFirst) SetReadDeadline(d time.Time) error {
	w.before()
	return http.NewResponseController(w.ResponseWriter).SetReadDeadline(d)
}

func (w *deadlineFirst) Unwrap() http.ResponseWriter { return w.ResponseWriter }
