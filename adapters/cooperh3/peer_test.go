package cooperh3_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/poll"
)

// codeCancel is the stream error code of a client that aborts a request
// (RFC 9114, section 4.1.2).
const codeCancel = quic.StreamErrorCode(http3.ErrCodeRequestCanceled)

// TestDataBeforeTheAnswer makes the client send data right after its
// request, before the server has answered, and end its side of the
// stream: the handler reads every byte of it, then the end of the stream,
// and can still answer on its own side.
func TestDataBeforeTheAnswer(t *testing.T) {
	for _, early := range []string{"", "sent before the 200"} {
		t.Run("data "+quoteOrNone(early), func(t *testing.T) {
			u := cooper.New(cooper.Protocols("websocket"))
			gate := make(chan struct{})
			handler := u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				got, err := io.ReadAll(conn)
				if err != nil {
					t.Errorf("reading the client's side: %v", err)
				}
				conn.Write(append([]byte("read: "), got...))
			})
			s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-gate // until the client has sent all it sends
				handler.ServeHTTP(w, r)
			}), nil)
			str := s.dial(t).send(t, s.webSocketRequest("/ws", nil))
			if early != "" {
				if _, err := str.Write([]byte(early)); err != nil {
					t.Fatal(err)
				}
			}
			str.Close()
			close(gate)
			str.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := str.ReadResponse()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("answer: %v, %v; want 200", resp, err)
			}
			got, err := io.ReadAll(str)
			if want := "read: " + early; string(got) != want || err != nil {
				t.Errorf("the handler's answer: %q, %v; want %q and a clean end", got, err, want)
			}
			waitIdle(t, u)
		})
	}
}

// quoteOrNone names the data of a test case.
func quoteOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// TestPeerEndsTheStream makes the client abort its side of a running
// WebSocket's stream, or both, or the whole QUIC connection: what the
// client stopped fails the handler's Read or Write, neither hangs, what it
// did not stop goes on (QUIC streams end one direction at a time: RFC
// 9000, section 3), and once the handler returns the Upgrader holds
// nothing and shuts down at once.
func TestPeerEndsTheStream(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		act                   func(c *client, str *http3.RequestStream)
		readFails, writeFails bool
	}{
		{"a client that resets its side (RESET_STREAM) fails Read, and Write goes on",
			func(c *client, str *http3.RequestStream) { str.CancelWrite(codeCancel) }, true, false},
		{"a client that stops reading (STOP_SENDING) fails Write",
			func(c *client, str *http3.RequestStream) { str.CancelRead(codeCancel) }, false, true},
		{"a client that resets the stream both ways fails Read and Write",
			func(c *client, str *http3.RequestStream) { str.CancelWrite(codeCancel); str.CancelRead(codeCancel) }, true, true},
		{"a client that closes the QUIC connection fails Read and Write",
			func(c *client, str *http3.RequestStream) {
				c.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "bye")
			}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type outcome struct{ read, write error }
			u := cooper.New(cooper.Protocols("websocket"))
			acted := make(chan struct{})
			outcomes := make(chan outcome, 1)
			s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				<-acted
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				var o outcome
				if tc.readFails {
					_, o.read = conn.Read(make([]byte, 1))
				}
				if tc.writeFails {
					// The client's STOP_SENDING, or the end of the
					// connection, fails a Write once it arrives.
					for o.write == nil {
						_, o.write = conn.Write([]byte("x"))
						time.Sleep(5 * time.Millisecond)
					}
				} else {
					_, o.write = conn.Write([]byte("still here"))
				}
				outcomes <- o
			}), nil)
			c := s.dial(t)
			resp, str := c.roundTrip(t, s.webSocketRequest("/ws", nil))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("answer %s, want 200", resp.Status)
			}
			tc.act(c, str)
			close(acted)
			o := recv(t, outcomes, "the handler's Read and Write")
			if tc.readFails && (o.read == nil || o.read == io.EOF || isTimeout(o.read)) {
				t.Errorf("Read: %v, want the client's reset or the end of the connection", o.read)
			}
			if tc.writeFails && isTimeout(o.write) {
				t.Errorf("Write: %v, want the client's STOP_SENDING or the end of the connection", o.write)
			}
			if !tc.writeFails {
				if o.write != nil {
					t.Errorf("Write: %v, want it to go on", o.write)
				}
				str.SetReadDeadline(time.Now().Add(10 * time.Second))
				if got, err := io.ReadAll(str); string(got) != "still here" || err != nil {
					t.Errorf("the client read %q, %v; want \"still here\" and a clean end", got, err)
				}
			}
			waitIdle(t, u)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := u.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v, want nil at once: no connection is left", err)
			}
		})
	}
}

// TestShutdownEndsBlockedHandlers runs handlers that mind neither their
// context nor the time, one blocked in Read, one in a Write the client's
// flow control holds: when Shutdown's deadline passes it closes their
// streams, which ends both calls; the reader's client sees a clean end of
// the stream, the writer's a reset (H3_REQUEST_CANCELLED), and the
// Upgrader then holds nothing.
func TestShutdownEndsBlockedHandlers(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	ended := make(chan error, 2)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		var err error
		if hs.Request.URL.Path == "/read" {
			_, err = conn.Read(make([]byte, 1))
		} else {
			_, err = writePattern(conn, 0, 1<<30)
		}
		ended <- err
	}), nil)
	c := s.dial(t)
	_, reader := c.roundTrip(t, s.webSocketRequest("/read", nil))
	_, writer := c.roundTrip(t, s.webSocketRequest("/write", nil))
	poll.Until(t, 10*time.Second, "both handlers to run", func() bool { return u.Stats().Active == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := u.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want its deadline passed", err)
	}
	for range 2 {
		if err := recv(t, ended, "end of a blocked call"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("a call Shutdown ended: %v, want net.ErrClosed", err)
		}
	}
	reader.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(reader); err != nil {
		t.Errorf("the reader's client: %v, want a clean end of the stream", err)
	}
	writer.SetReadDeadline(time.Now().Add(10 * time.Second))
	var he *http3.Error
	if _, err := io.Copy(io.Discard, writer); !errors.As(err, &he) || he.ErrorCode != http3.ErrCodeRequestCanceled {
		t.Errorf("the writer's client: %v, want a reset with H3_REQUEST_CANCELLED", err)
	}
	waitIdle(t, u)
}

// TestManyStreamsOnOneConnection opens 50 WebSockets on one QUIC
// connection to an Upgrader with a connection limit: each stream is one
// upgrade, so the first ones up to the limit are upgraded and the others
// refused with the limit's status and Retry-After, each refusal ending its
// stream; once the handlers return, every upgraded stream ends cleanly
// and the Upgrader holds nothing.
func TestManyStreamsOnOneConnection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opt    cooper.Option
		limit  int
		status int
		err    error
	}{
		{"MaxConnections(10) refuses the 11th stream on with 503", cooper.MaxConnections(10), 10, http.StatusServiceUnavailable, cooper.ErrTooManyConnections},
		{"MaxConnectionsPerClient(5) refuses the 6th stream on with 429", cooper.MaxConnectionsPerClient(5), 5, http.StatusTooManyRequests, cooper.ErrTooManyClientConnections},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var refusals atomic.Int32
			u := cooper.New(cooper.Protocols("websocket"), tc.opt, cooper.OnError(func(err error) {
				if errors.Is(err, tc.err) {
					refusals.Add(1)
				}
			}))
			release := make(chan struct{})
			s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				<-release
			}), nil)
			releaseAll := sync.OnceFunc(func() { close(release) })
			defer releaseAll()
			c := s.dial(t)
			const streams = 50
			var upgraded []*http3.RequestStream
			for i := range streams {
				resp, str := c.roundTrip(t, s.webSocketRequest("/ws", nil))
				str.SetReadDeadline(time.Now().Add(10 * time.Second))
				if i < tc.limit {
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("stream %d: %s, want 200", i, resp.Status)
					}
					upgraded = append(upgraded, str)
					continue
				}
				if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") == "" {
					t.Fatalf("stream %d: %s, Retry-After %q; want %d with Retry-After", i, resp.Status, resp.Header.Get("Retry-After"), tc.status)
				}
				if _, err := io.ReadAll(resp.Body); err != nil {
					t.Errorf("stream %d: the refusal does not end cleanly: %v", i, err)
				}
			}
			if st := u.Stats(); st.Active != tc.limit || st.Upgrades != uint64(tc.limit) {
				t.Errorf("Stats() = %+v, want %d active and upgraded", st, tc.limit)
			}
			if n := refusals.Load(); n != streams-int32(tc.limit) {
				t.Errorf("OnError got %d refusals matching %v, want %d", n, tc.err, streams-tc.limit)
			}
			releaseAll()
			for i, str := range upgraded {
				if _, err := io.ReadAll(str); err != nil {
					t.Errorf("upgraded stream %d: %v, want a clean end once its handler returned", i, err)
				}
			}
			waitIdle(t, u)
		})
	}
}

// TestAnswerHeldByFlowControl gives the server no room to send the 200
// (the client's stream flow control window is far smaller than the
// answer, which carries 16 KiB of the application's headers; quic-go
// takes a small answer in whole whatever the window): the handshake
// timeout ends the answer, the upgrade fails and is reported, the handler
// is not called, and the Upgrader holds nothing and shuts down at once.
func TestAnswerHeldByFlowControl(t *testing.T) {
	reported := make(chan error, 1)
	pad := http.Header{"X-Pad": {strings.Repeat("a", 16<<10)}}
	u := cooper.New(cooper.Protocols("websocket"), cooper.HandshakeTimeout(200*time.Millisecond),
		cooper.ResponseHeaders(func(*http.Request, string) http.Header { return pad }),
		cooper.OnError(func(err error) { reported <- err }))
	handled := make(chan struct{}, 1)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		handled <- struct{}{}
		conn.Close()
	}), nil)
	c := s.dialWith(t, &quic.Config{InitialStreamReceiveWindow: 32, MaxStreamReceiveWindow: 32})
	str := c.send(t, s.webSocketRequest("/ws", nil))
	defer str.CancelRead(0)
	if err := recv(t, reported, "the failed upgrade"); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("OnError got %v, want the answer's deadline passed", err)
	}
	waitIdle(t, u)
	if st := u.Stats(); st.Failures != 1 || st.Upgrades != 0 {
		t.Errorf("Stats() = %+v, want one failure", st)
	}
	select {
	case <-handled:
		t.Error("the handler was called")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := u.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v, want nil at once", err)
	}
}
