package interop

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"golang.org/x/net/http2"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/poll"
	"lowbit.dev/cooper/internal/testkit"
)

// newH2Server starts h on loopback with TLS and HTTP/2, configured by
// configure if not nil; the test's cleanup stops it.
func newH2Server(t *testing.T, h http.Handler, configure func(*http.Server)) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.EnableHTTP2 = true
	if configure != nil {
		configure(s.Config)
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// A stream is the client's side of an extended CONNECT: it reads the
// response body and writes the request body.
type stream struct {
	*http.Response
	w *io.PipeWriter
}

func (s *stream) Read(p []byte) (int, error)  { return s.Body.Read(p) }
func (s *stream) Write(p []byte) (int, error) { return s.w.Write(p) }
func (s *stream) Close() error {
	s.w.Close()
	return s.Body.Close()
}

// connect opens an extended CONNECT (RFC 8441) to path on s with
// golang.org/x/net/http2's Transport and the headers Chromium sends,
// changed by edit. A refusal comes back as a stream whose StatusCode is not
// 200; a reset stream fails the test.
func connect(t *testing.T, s *httptest.Server, path string, edit func(h http.Header)) *stream {
	t.Helper()
	st, err := tryConnect(t, s, path, edit)
	if err != nil {
		t.Fatalf("extended CONNECT: %v", err)
	}
	return st
}

// tryConnect is connect for a test that expects the stream to be reset: it
// returns the Transport's error instead of failing the test.
func tryConnect(t *testing.T, s *httptest.Server, path string, edit func(h http.Header)) (*stream, error) {
	t.Helper()
	tr := &http2.Transport{TLSClientConfig: s.Client().Transport.(*http.Transport).TLSClientConfig}
	t.Cleanup(tr.CloseIdleConnections)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, s.URL+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Origin", s.URL)
	if edit != nil {
		edit(req.Header)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		pw.Close()
		return nil, err
	}
	st := &stream{Response: resp, w: pw}
	t.Cleanup(func() { st.Close() })
	return st, nil
}

// roundTripMessage sends one masked message on rw, compressed when
// compress, and returns the server's answer, decompressed, with whether it
// came compressed.
func roundTripMessage(t *testing.T, rw io.ReadWriter, br *bufio.Reader, op ws.OpCode, msg []byte, compress bool) ([]byte, bool) {
	t.Helper()
	f := ws.NewFrame(op, true, append([]byte(nil), msg...))
	var err error
	if compress {
		if f, err = wsflate.CompressFrame(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.WriteFrame(rw, ws.MaskFrameInPlace(f)); err != nil {
		t.Fatalf("writing a frame: %v", err)
	}
	got, err := ws.ReadFrame(br)
	if err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	compressed, _ := wsflate.IsCompressed(got.Header)
	if compressed {
		if got, err = wsflate.DecompressFrame(got); err != nil {
			t.Fatalf("decompressing the echo: %v", err)
		}
	}
	if got.Header.OpCode != op {
		t.Fatalf("echo opcode %v, want %v", got.Header.OpCode, op)
	}
	return got.Payload, compressed
}

// TestH2 opens WebSockets over HTTP/2 streams (RFC 8441) with
// golang.org/x/net/http2's client against net/http's server: the Upgrader
// answers extended CONNECTs with 200, the stream is the handler's
// connection, and refusals follow RFC 9113's rules for headers.
func TestH2(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	policy := cooper.Deflate(cooper.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true})

	t.Run("handshake, subprotocol, deflate and echo of text and binary both ways", func(t *testing.T) {
		handled := make(chan *cooper.Handshake, 1)
		conns := make(chan net.Conn, 1)
		u := cooper.New(cooper.Protocols("websocket"), cooper.Subprotocols("chat"), policy)
		s := newH2Server(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			handled <- hs
			conns <- conn
			echo(conn, hs)
		}), nil)
		st := connect(t, s, "/ws", func(h http.Header) {
			h.Set("Sec-WebSocket-Protocol", "mqtt, chat")
			h.Set("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")
		})
		if st.StatusCode != http.StatusOK || st.Header.Get("Sec-WebSocket-Protocol") != "chat" ||
			st.Header.Get("Sec-WebSocket-Extensions") != "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15" {
			t.Fatalf("status %d, headers %v", st.StatusCode, st.Header)
		}
		for _, h := range []string{"Upgrade", "Connection", "Sec-Websocket-Accept"} {
			if v := st.Header.Values(h); len(v) > 0 {
				t.Errorf("HTTP/2 answer has %s: %q", h, v)
			}
		}
		hs := <-handled
		if hs.Protocol != "websocket" || hs.Subprotocol != "chat" || hs.Deflate == nil || hs.Request.ProtoMajor != 2 {
			t.Errorf("Handshake = {%q, %q, %+v, HTTP/%d}, want websocket, chat, deflate over HTTP/2", hs.Protocol, hs.Subprotocol, hs.Deflate, hs.Request.ProtoMajor)
		}
		conn := <-conns
		if ra, ok := conn.RemoteAddr().(*net.TCPAddr); !ok || !ra.IP.IsLoopback() || conn.LocalAddr().String() != s.Listener.Addr().String() {
			t.Errorf("addresses %v -> %v, want a loopback TCP address -> %s", conn.RemoteAddr(), conn.LocalAddr(), s.Listener.Addr())
		}
		br := bufio.NewReader(st)
		for _, m := range []struct {
			op  ws.OpCode
			msg []byte
		}{
			{ws.OpText, []byte("text over a stream")},
			{ws.OpBinary, []byte{0, 1, 0xfe, 0xff}},
			{ws.OpBinary, bytes.Repeat([]byte("large binary message "), 1<<20/21+1)},
		} {
			got, compressed := roundTripMessage(t, st, br, m.op, m.msg, true)
			if !bytes.Equal(got, m.msg) || !compressed {
				t.Fatalf("echo of %d bytes: %d bytes back, compressed %v; want the same bytes, compressed", len(m.msg), len(got), compressed)
			}
		}
	})

	t.Run("the client closing ends the handler", func(t *testing.T) {
		u := cooper.New(cooper.Protocols("websocket"))
		done := make(chan error, 1)
		s := newH2Server(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			_, err := io.Copy(io.Discard, conn)
			done <- err
		}), nil)
		st := connect(t, s, "/ws", nil)
		st.Write([]byte("bye"))
		st.w.Close()
		if err := testkit.RecvWithin(t, done, 5*time.Second, "end of the stream in the handler"); err != nil {
			t.Errorf("handler read %v, want EOF", err)
		}
	})

	t.Run("the server closing ends the client's stream", func(t *testing.T) {
		u := cooper.New(cooper.Protocols("websocket"))
		s := newH2Server(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			conn.Write([]byte("goodbye"))
			conn.Close()
		}), nil)
		st := connect(t, s, "/ws", nil)
		if got, err := io.ReadAll(st); string(got) != "goodbye" || err != nil {
			t.Errorf("client read %q, %v, want goodbye and EOF", got, err)
		}
	})

	t.Run("deadlines work and the server's timeouts are cleared", func(t *testing.T) {
		const short = 50 * time.Millisecond
		u := cooper.New(cooper.Protocols("websocket"), cooper.HandshakeTimeout(short))
		readErr := make(chan error, 1)
		s := newH2Server(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			defer conn.Close()
			time.Sleep(6 * short) // past ReadTimeout, WriteTimeout and the handshake timeout
			buf := make([]byte, 4)
			if _, err := io.ReadFull(conn, buf); err != nil {
				readErr <- err
				return
			}
			if _, err := conn.Write(buf); err != nil {
				readErr <- err
				return
			}
			conn.SetReadDeadline(time.Now().Add(short))
			_, err := conn.Read(buf)
			readErr <- err
		}), func(s *http.Server) { s.ReadTimeout, s.WriteTimeout = short, short })
		st := connect(t, s, "/ws", nil)
		time.Sleep(2 * short)
		st.Write([]byte("late"))
		got := make([]byte, 4)
		if _, err := io.ReadFull(st, got); err != nil || string(got) != "late" {
			t.Fatalf("echo after the server's timeouts = %q, %v", got, err)
		}
		if err := <-readErr; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read past its deadline = %v, want os.ErrDeadlineExceeded", err)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		cases := []struct {
			name   string
			edit   func(h http.Header)
			status int
			header string // a header the refusal must carry, as "Name: value"
			err    error
		}{
			{"a version other than 13 is refused with 400 and Sec-WebSocket-Version: 13",
				func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }, 400, "Sec-Websocket-Version: 13", cooper.ErrWebSocketVersion},
			{"a cross-origin request is refused with 403",
				func(h http.Header) { h.Set("Origin", "https://evil.example") }, 403, "", cooper.ErrOrigin},
			{"a protocol not accepted is refused with 400",
				func(h http.Header) { h.Set(":protocol", "chat") }, 400, "", cooper.ErrProtocol},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				errs := make(chan error, 1)
				u := cooper.New(cooper.Protocols("websocket"), cooper.OnError(func(err error) { errs <- err }))
				s := newH2Server(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
					t.Error("the handler ran for a refused request")
					conn.Close()
				}), nil)
				st := connect(t, s, "/ws", tc.edit)
				body, _ := io.ReadAll(st)
				if st.StatusCode != tc.status || !strings.HasPrefix(string(body), "cooper: ") {
					t.Fatalf("status %d, body %q, want %d and a reason", st.StatusCode, body, tc.status)
				}
				if name, value, ok := strings.Cut(tc.header, ": "); ok && st.Header.Get(name) != value {
					t.Errorf("%s = %q, want %q", name, st.Header.Get(name), value)
				}
				for _, h := range []string{"Upgrade", "Connection"} {
					if v := st.Header.Values(h); len(v) > 0 {
						t.Errorf("HTTP/2 refusal has %s: %q", h, v)
					}
				}
				if err := <-errs; !errors.Is(err, tc.err) {
					t.Errorf("OnError got %v, want %v", err, tc.err)
				}
			})
		}
	})

	t.Run("a handler's panic ends its stream and the server keeps serving", func(t *testing.T) {
		errs := make(chan error, 1)
		u := cooper.New(cooper.Protocols("websocket"), cooper.OnError(func(err error) { errs <- err }))
		s := newH2Server(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			if hs.Request.URL.Path == "/panic" {
				panic("boom")
			}
			echo(conn, hs)
		}), nil)
		st := connect(t, s, "/panic", nil)
		if _, err := io.ReadAll(st); err != nil {
			t.Errorf("reading the stream of a handler that panicked: %v, want EOF", err)
		}
		if err := <-errs; !errors.Is(err, cooper.ErrHandlerPanic) {
			t.Errorf("OnError got %v, want ErrHandlerPanic", err)
		}
		st = connect(t, s, "/ws", nil)
		if got, _ := roundTripMessage(t, st, bufio.NewReader(st), ws.OpText, []byte("still serving"), false); string(got) != "still serving" {
			t.Errorf("echo = %q", got)
		}
	})

	t.Run("Shutdown ends running streams", func(t *testing.T) {
		u := cooper.New(cooper.Protocols("websocket"))
		s := newH2Server(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			defer conn.Close()
			io.Copy(io.Discard, conn) // ignores its context
		}), nil)
		st := connect(t, s, "/ws", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := u.Shutdown(ctx); err != context.DeadlineExceeded {
			t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
		}
		if _, err := io.ReadAll(st); err != nil {
			t.Errorf("reading after Shutdown: %v, want EOF", err)
		}
		poll.Until(t, 5*time.Second, "the handler to return after Shutdown", func() bool { return u.Stats().Active == 0 })
	})

	t.Run("Accept works inside ServeHTTP", func(t *testing.T) {
		u := cooper.New(cooper.Protocols("websocket"))
		s := newH2Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, hs, err := u.Accept(w, r)
			if err != nil {
				return
			}
			defer conn.Close()
			io.WriteString(conn, hs.Protocol)
		}), nil)
		st := connect(t, s, "/ws", nil)
		if got, err := io.ReadAll(st); string(got) != "websocket" || err != nil {
			t.Errorf("read %q, %v, want websocket", got, err)
		}
	})
}
