package cooper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestValidateConnect checks extended CONNECT requests (RFC 8441) as net/http's
// HTTP/2 server hands them over: the same validation as HTTP/1.1 where
// RFC 8441, section 5 keeps it, and refusals without the Upgrade and
// Connection headers RFC 9113, section 8.2.2 forbids. The stream as a
// connection is tested below (TestStreamConn); whole exchanges over
// extended CONNECT in the interop module, whose HTTP/2 client can send it.
func TestValidateConnect(t *testing.T) {
	valid := func() *http.Request {
		return &http.Request{Method: "CONNECT", Proto: "HTTP/2.0", ProtoMajor: 2, Host: "example.com", ContentLength: -1,
			Header: http.Header{
				":protocol":              {"websocket"},
				"Sec-Websocket-Version":  {"13"},
				"Origin":                 {"https://example.com"},
				"Sec-Websocket-Protocol": {"chat"},
			}}
	}
	cases := []struct {
		name   string
		opts   []Option
		edit   func(r *http.Request)
		proto  string // when accepted
		status int    // when refused
		header http.Header
		err    error
	}{
		{name: "an extended CONNECT for websocket is accepted without key, Upgrade or Connection", proto: "websocket"},
		{name: "the protocol is agreed in the server's spelling",
			opts: []Option{Protocols("WebSocket")}, proto: "WebSocket"},
		{name: "without Protocols any protocol is agreed, in lower case",
			opts: []Option{}, edit: func(r *http.Request) { r.Header.Set(":protocol", "Lines/1") }, proto: "lines/1"},
		{name: "an extended CONNECT over HTTP/3 is accepted as over HTTP/2 (RFC 9220)",
			edit: func(r *http.Request) { r.Proto, r.ProtoMajor = "HTTP/3.0", 3 }, proto: "websocket"},
		{name: "a GET over HTTP/3 is refused with 405 and Allow: CONNECT",
			edit: func(r *http.Request) { r.Method, r.Proto, r.ProtoMajor = "GET", "HTTP/3.0", 3 }, status: 405,
			header: http.Header{"Allow": {"CONNECT"}}, err: ErrMethod},
		{name: "a GET over HTTP/2 is refused with 405 and Allow: CONNECT",
			edit: func(r *http.Request) { r.Method = "GET" }, status: 405, header: http.Header{"Allow": {"CONNECT"}}, err: ErrMethod},
		{name: "a CONNECT without :protocol is refused with 400",
			edit: func(r *http.Request) { delete(r.Header, ":protocol") }, status: 400, err: ErrNotUpgrade},
		{name: "a :protocol that is not a token is refused with 400",
			edit: func(r *http.Request) { r.Header.Set(":protocol", "web socket") }, status: 400, err: ErrMalformedHeader},
		{name: "a :protocol not accepted is refused with 400, as a 426 could not name ours",
			edit: func(r *http.Request) { r.Header.Set(":protocol", "chat") }, status: 400, err: ErrProtocol},
		{name: "a version other than 13 is refused with 400 and Sec-WebSocket-Version: 13",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Version", "8") }, status: 400,
			header: http.Header{"Sec-Websocket-Version": {"13"}}, err: ErrWebSocketVersion},
		{name: "a missing version is refused with 400",
			edit: func(r *http.Request) { r.Header.Del("Sec-Websocket-Version") }, status: 400, err: ErrWebSocketVersion},
		{name: "a cross-origin request is refused with 403",
			edit: func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, status: 403, err: ErrOrigin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if opts == nil {
				opts = []Option{Protocols("websocket")}
			}
			c := newConfig(opts)
			r := valid()
			if tc.edit != nil {
				tc.edit(r)
			}
			d, rej := validate(r, c)
			if tc.status == 0 {
				if rej != nil || d.protocol != tc.proto {
					t.Fatalf("validate = %q, %v, want %q accepted", d.protocol, rej, tc.proto)
				}
				if _, rej := negotiate(r, c, d); rej != nil {
					t.Fatalf("negotiate refused: %v", rej)
				}
				return
			}
			if rej == nil || rej.Status != tc.status || !errors.Is(rej, tc.err) {
				t.Fatalf("validate = %q, %v, want a %d refusal matching %v", d.protocol, rej, tc.status, tc.err)
			}
			for k, v := range tc.header {
				if got := rej.Header[k]; strings.Join(got, ",") != strings.Join(v, ",") {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for _, k := range []string{"Upgrade", "Connection"} {
				if v, ok := rej.Header[k]; ok {
					t.Errorf("an HTTP/2 refusal carries %s: %q", k, v)
				}
			}
		})
	}
}

// TestHTTP2ServerServesBoth runs one TLS server with HTTP/2 on: a GET over
// HTTP/2 is refused as RFC 8441 asks, and an HTTP/1.1 client is upgraded
// as usual on the same server.
func TestHTTP2ServerServesBoth(t *testing.T) {
	f := newFixture(t, h2, Protocols("websocket"))
	resp, err := f.Client().Get(f.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "CONNECT" {
		t.Fatalf("GET over %s: status %d, Allow %q, want HTTP/2, 405 and CONNECT", resp.Proto, resp.StatusCode, resp.Header.Get("Allow"))
	}
	if v := resp.Header.Values("Upgrade"); len(v) > 0 {
		t.Errorf("an HTTP/2 refusal carries Upgrade: %q", v)
	}
	checkReason(t, resp, string(body))
	wait(t, f.errs, "refusal")

	f.mode = h1TLS // ALPN http/1.1 on the same server
	resp, _, c, br := f.roundTrip(t, f.wsRequest(), "")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("HTTP/1.1 on the HTTP/2 server: status = %d, want 101", resp.StatusCode)
	}
	if hs := wait(t, f.handled, "handler call"); hs.Request.ProtoMajor != 1 {
		t.Errorf("Handshake.Request over HTTP/%d, want 1", hs.Request.ProtoMajor)
	}
	echo(t, c, br, "over HTTP/1.1")
}

func TestWithStreamTakeoverPanicsOnNil(t *testing.T) {
	defer func() {
		if v := recover(); v != "cooper: WithStreamTakeover: nil StreamTakeover" {
			t.Errorf("recover() = %v, want the nil StreamTakeover panic", v)
		}
	}()
	WithStreamTakeover(&http.Request{}, nil)
}

// TestStreamTakeover upgrades through a StreamTakeover, as a transport's
// adapter does: a middleware on a real server shapes the request as an
// extended CONNECT over HTTP/3 and hands over one end of a pipe as its
// stream. The answer carries the application's headers but not those
// cooper owns; the handler gets the stream without the write deadline that
// bounded the answer, bytes pass both ways, and the Upgrader keeps
// net.Conn's rule on Close, which a pipe does not: the stream is closed
// once however often Close is called, and a Read that Close ended, and
// every call after it, fail with net.ErrClosed.
func TestStreamTakeover(t *testing.T) {
	peer, stream := net.Pipe()
	defer peer.Close()
	counted := &closeCounter{Conn: stream, reads: make(chan struct{}, 8)}
	results := make(chan []error, 1)
	u := New(Protocols("websocket"), ResponseHeaders(func(*http.Request, string) http.Header {
		return http.Header{"X-App": {"1"}, "Sec-Websocket-Accept": {"not sent: no key over a stream"}}
	}))
	h := u.Handler(func(conn net.Conn, hs *Handshake) {
		buf := make([]byte, 4)
		_, err := io.ReadFull(conn, buf)
		if err == nil {
			_, err = conn.Write(buf)
		}
		for len(counted.reads) > 0 {
			<-counted.reads
		}
		blocked := make(chan error, 1)
		go func() { _, err := conn.Read(buf); blocked <- err }()
		<-counted.reads // the Read is past the Upgrader's check, on the stream
		errs := []error{err, conn.Close(), <-blocked, conn.Close()}
		_, err = conn.Read(buf)
		errs = append(errs, err)
		_, err = conn.Write(buf)
		results <- append(errs, err)
	})
	s := takeoverServer(t, h, func() (net.Conn, error) {
		// The write deadline that bounded the answer, left on the stream
		// as StreamTakeover allows, and passed by now.
		counted.SetWriteDeadline(time.Now())
		return counted, nil
	})
	type answer struct {
		status string // or the request's error
		header http.Header
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Get(s.URL + "/ws")
		if err != nil {
			answered <- answer{status: err.Error()}
			return
		}
		resp.Body.Close()
		answered <- answer{resp.Status, resp.Header}
	}()
	if _, err := peer.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo over the stream: %q, %v", buf, err)
	}
	errs := wait(t, results, "the handler's calls")
	want := []error{nil, nil, net.ErrClosed, net.ErrClosed, net.ErrClosed, net.ErrClosed}
	names := []string{"echo", "Close", "Read that Close ended", "second Close", "Read after Close", "Write after Close"}
	for i, err := range errs {
		if !errors.Is(err, want[i]) || (want[i] == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", names[i], err, want[i])
		}
	}
	if n := counted.closes.Load(); n != 1 {
		t.Errorf("the stream was closed %d times, want once", n)
	}
	if st := u.Stats(); st.Upgrades != 1 {
		t.Errorf("Stats().Upgrades = %d, want 1", st.Upgrades)
	}
	got := wait(t, answered, "answer to the request")
	if got.status != "200 OK" {
		t.Errorf("the request was answered %s, want 200 OK, the Upgrader's WriteHeader before the takeover", got.status)
	}
	if got.header.Get("X-App") != "1" || got.header["Sec-Websocket-Accept"] != nil {
		t.Errorf("answer's headers = %v, want ResponseHeaders' X-App and not its Sec-WebSocket-Accept", got.header)
	}
}

// takeoverServer starts a server whose middleware shapes each request as
// a transport's adapter shapes an extended CONNECT over HTTP/3, attaches
// take to it, and passes it to h.
func takeoverServer(t *testing.T, h http.Handler, take StreamTakeover) *testServer {
	t.Helper()
	return newServer(t, h1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = WithStreamTakeover(r, take)
		r.Method, r.Proto, r.ProtoMajor, r.ProtoMinor = http.MethodConnect, "HTTP/3.0", 3, 0
		r.Header = http.Header{":protocol": {"websocket"}, "Sec-Websocket-Version": {"13"}}
		h.ServeHTTP(w, r)
	}))
}

// TestStreamTakeoverFails has a StreamTakeover fail, or Shutdown's
// deadline pass while it runs: the upgrade fails and is reported to
// OnError and counted in Stats, the handler does not run, and a stream
// handed over is closed once, while one that was not is left to the
// server, as StreamTakeover's documentation says.
func TestStreamTakeoverFails(t *testing.T) {
	cases := []struct {
		name   string
		take   func(u *Upgrader, stream net.Conn) (net.Conn, error)
		want   string // in the error OnError gets
		is     error  // matched by that error, when set
		closes int32  // how often the Upgrader closes the stream
	}{
		{name: "an error: the stream stays the server's",
			take: func(_ *Upgrader, stream net.Conn) (net.Conn, error) { return stream, errors.New("no stream") },
			want: "cooper: write 200: no stream", is: ErrWriteResponse},
		{name: "no connection",
			take: func(*Upgrader, net.Conn) (net.Conn, error) { return nil, nil },
			want: "cooper: write 200: the StreamTakeover returned no connection", is: ErrWriteResponse},
		{name: "a stream whose write deadline cannot be cleared is closed",
			take: func(_ *Upgrader, stream net.Conn) (net.Conn, error) { return noDeadline{stream}, nil },
			want: "cooper: write 200: no deadlines here", closes: 1, is: ErrWriteResponse},
		{name: "Shutdown's deadline passed meanwhile: the stream is closed",
			take: func(u *Upgrader, stream net.Conn) (net.Conn, error) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				u.Shutdown(ctx)
				return stream, nil
			},
			is: ErrShutdown, closes: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			peer, stream := net.Pipe()
			defer peer.Close()
			counted := &closeCounter{Conn: stream, reads: make(chan struct{}, 1)}
			errs := make(chan error, 1)
			u := New(Protocols("websocket"), OnError(func(err error) { errs <- err }))
			h := u.Handler(func(conn net.Conn, hs *Handshake) {
				t.Error("the handler ran")
				conn.Close()
			})
			s := takeoverServer(t, h, func() (net.Conn, error) { return tc.take(u, counted) })
			resp, err := s.Client().Get(s.URL + "/ws")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			err = wait(t, errs, "OnError")
			if !strings.Contains(fmt.Sprint(err), tc.want) || tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("OnError got %v, want %q (matching %v)", err, tc.want, tc.is)
			}
			if st := u.Stats(); st.Failures != 1 || st.Upgrades != 0 || st.Active != 0 {
				t.Errorf("Stats = %+v, want one failure, nothing upgraded or active", st)
			}
			if n := counted.closes.Load(); n != tc.closes {
				t.Errorf("the stream was closed %d times, want %d", n, tc.closes)
			}
		})
	}
}

// noDeadline is a stream whose deadlines cannot be set.
type noDeadline struct{ net.Conn }

func (noDeadline) SetWriteDeadline(time.Time) error { return errors.New("no deadlines here") }

// A closeCounter counts its Close calls, and says on reads (if there is
// room) each time a Read reaches it.
type closeCounter struct {
	net.Conn
	closes atomic.Int32
	reads  chan struct{}
}

func (c *closeCounter) Read(p []byte) (int, error) {
	select {
	case c.reads <- struct{}{}:
	default:
	}
	return c.Conn.Read(p)
}

func (c *closeCounter) Close() error {
	c.closes.Add(1)
	return c.Conn.Close()
}

// streamServer starts an HTTP/2 server whose handler answers a request
// with 200, makes its stream a streamConn as switchStream does, and runs fn
// with it; ServeHTTP returns when fn does, and then done is closed.
func streamServer(t *testing.T, fn func(c *streamConn)) (s *testServer, done <-chan struct{}) {
	t.Helper()
	closed := make(chan struct{})
	return newServer(t, h2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(closed)
		rc := http.NewResponseController(w)
		w.WriteHeader(http.StatusOK)
		if err := rc.Flush(); err != nil {
			t.Errorf("flushing the 200: %v", err)
			return
		}
		c := newStreamConn(w, r, rc)
		defer c.end()
		fn(c)
	})), closed
}

// waitDone waits for the stream's handler to return, failing the test
// after 30 s.
func waitDone(t *testing.T, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the stream's handler still runs 30 s later")
	}
}

// openStream sends a POST to s over HTTP/2 with net/http's client, its body
// written through the returned pipe, and returns once the response head
// arrived: a stream both sides read and write at once.
func openStream(t *testing.T, s *testServer) (*io.PipeWriter, *http.Response) {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pw.Close()
		resp.Body.Close()
	})
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("response %s %d, want HTTP/2 and 200", resp.Proto, resp.StatusCode)
	}
	return pw, resp
}

// stallWrite starts writing c on a goroutine of its own until a Write
// fails, and waits until the writer is blocked (see waitStalled). The
// Write's error comes on errs; written counts the bytes written. ok is
// false, the test failed, when the writer does not stall.
func stallWrite(t *testing.T, c net.Conn) (errs <-chan error, written *atomic.Int64, ok bool) {
	t.Helper()
	written = new(atomic.Int64)
	ch := make(chan error, 1)
	go func() { ch <- writeUntilError(c, written) }()
	return ch, written, waitStalled(t, written)
}

// writeUntilError writes c until a Write fails, counting in written the
// bytes written, and returns the error.
func writeUntilError(c net.Conn, written *atomic.Int64) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Write(buf)
		written.Add(int64(n))
		if err != nil {
			return err
		}
	}
}

// waitStalled waits until written stops growing for 200 ms: the writer is
// blocked, here on the flow control of a client that does not read. It
// reports false, failing the test, when that takes more than 10 s.
func waitStalled(t *testing.T, written *atomic.Int64) bool {
	t.Helper()
	last := int64(-1)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		n := written.Load()
		if n == last && n > 0 {
			return true
		}
		if time.Now().After(deadline) {
			t.Errorf("the writer did not stall within 10 s (%d bytes written)", n)
			return false
		}
		last = n
	}
}

// waitErr returns the error from errs, failing the test if none comes
// within 5 s; it says how long it waited.
func waitErr(t *testing.T, errs <-chan error, what string) (error, time.Duration) {
	t.Helper()
	start := time.Now()
	select {
	case err := <-errs:
		return err, time.Since(start)
	case <-time.After(5 * time.Second):
		t.Errorf("%s still blocked 5 s later", what)
		return nil, time.Since(start)
	}
}

// TestStreamConn checks that an HTTP/2 stream keeps the net.Conn contract:
// bytes go both ways, Writes from many goroutines at once each arrive
// whole, Close ends a Read and a Write under way, a Write
// held by the client's flow control included, every call after Close fails
// with net.ErrClosed, deadlines end the stream's Read and Write (SetDeadline
// both), the stream ends when the handler returns, cutting short a Write
// that outlived it, and one stopped but not closed (Accept's, by a client's
// reset) fails Write without net.ErrClosed until Close.
func TestStreamConn(t *testing.T) {
	t.Run("bytes go both ways and the stream ends when the handler returns", func(t *testing.T) {
		s, done := streamServer(t, func(c *streamConn) {
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); err != nil {
				t.Errorf("Read: %v", err)
				return
			}
			if _, err := c.Write(buf); err != nil {
				t.Errorf("Write: %v", err)
			}
		})
		pw, resp := openStream(t, s)
		if _, err := pw.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		if string(got) != "ping" || err != nil {
			t.Errorf("client read %q, %v; want \"ping\" and the end of the stream", got, err)
		}
		waitDone(t, done)
	})
	t.Run("Writes from many goroutines at once each arrive whole", func(t *testing.T) {
		const writers, size = 8, 1000
		s, done := streamServer(t, func(c *streamConn) {
			var wg sync.WaitGroup
			for i := range writers {
				wg.Go(func() {
					if _, err := c.Write(bytes.Repeat([]byte{'a' + byte(i)}, size)); err != nil {
						t.Errorf("Write: %v", err)
					}
				})
			}
			wg.Wait()
		})
		_, resp := openStream(t, s)
		got, err := io.ReadAll(resp.Body)
		if len(got) != writers*size || err != nil {
			t.Fatalf("client read %d bytes, %v; want %d and the end of the stream", len(got), err, writers*size)
		}
		for i := 0; i < len(got); i += size {
			if piece := got[i : i+size]; bytes.Count(piece, piece[:1]) != size {
				t.Fatalf("bytes %d to %d mix Writes: %q", i, i+size, piece)
			}
		}
		waitDone(t, done)
	})
	// What Accept's context watcher does when the client resets the stream
	// while ServeHTTP runs: the caller, who did not close, must not be told
	// it did.
	t.Run("after stop, Write and SetDeadline fail with errStreamEnded, not net.ErrClosed, until Close", func(t *testing.T) {
		s, done := streamServer(t, func(c *streamConn) {
			c.stop()
			if _, err := c.Write([]byte("x")); err != errStreamEnded {
				t.Errorf("Write after stop = %v, want errStreamEnded", err)
			}
			if err := c.SetDeadline(time.Now().Add(time.Second)); !errors.Is(err, errStreamEnded) || errors.Is(err, net.ErrClosed) {
				t.Errorf("SetDeadline after stop = %v, want errStreamEnded", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("the first Close after stop = %v, want nil", err)
			}
			if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after stop and Close = %v, want net.ErrClosed", err)
			}
		})
		_, resp := openStream(t, s)
		io.Copy(io.Discard, resp.Body) // until the handler returns
		waitDone(t, done)
	})
	t.Run("Close ends a Read under way, and every call afterwards fails with net.ErrClosed", func(t *testing.T) {
		s, done := streamServer(t, func(c *streamConn) {
			errs := make(chan error, 1)
			go func() {
				_, err := c.Read(make([]byte, 1))
				errs <- err
			}()
			time.Sleep(50 * time.Millisecond) // the Read waits for the client
			if err := c.Close(); err != nil {
				t.Errorf("Close = %v, want nil", err)
			}
			if err, _ := waitErr(t, errs, "Read after Close"); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read ended by Close = %v, want net.ErrClosed", err)
			}
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read after Close = %v, want net.ErrClosed", err)
			}
			if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write after Close = %v, want net.ErrClosed", err)
			}
			if err := c.SetDeadline(time.Now().Add(time.Second)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("SetDeadline after Close = %v, want net.ErrClosed", err)
			}
			if err := c.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("second Close = %v, want net.ErrClosed", err)
			}
		})
		_, resp := openStream(t, s)
		io.Copy(io.Discard, resp.Body) // until the handler returns
		waitDone(t, done)
	})
	for _, tc := range []struct {
		name string
		set  func(c *streamConn, d time.Time) error // sets the read deadline d
	}{
		{"a read deadline that passes ends a Read with os.ErrDeadlineExceeded", (*streamConn).SetReadDeadline},
		// The write deadline would reset the stream, ending the Read too;
		// cleared, only SetDeadline's read deadline is left.
		{"SetDeadline sets the read deadline", func(c *streamConn, d time.Time) error {
			return errors.Join(c.SetDeadline(d), c.SetWriteDeadline(time.Time{}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, done := streamServer(t, func(c *streamConn) {
				if err := tc.set(c, time.Now().Add(50*time.Millisecond)); err != nil {
					t.Fatalf("setting the deadline: %v", err)
				}
				// Without the deadline, Close ends the Read, and the test fails.
				watchdog := time.AfterFunc(5*time.Second, func() { c.Close() })
				defer watchdog.Stop()
				if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("Read past the deadline = %v, want os.ErrDeadlineExceeded", err)
				}
			})
			_, resp := openStream(t, s)
			io.Copy(io.Discard, resp.Body)
			waitDone(t, done)
		})
	}
	// A Write held by the flow control of a client that does not read ends
	// when the stream is closed or when its write deadline passes.
	for _, tc := range []struct {
		name string
		what string                    // what ends the Write, for messages
		end  func(c *streamConn) error // ends the Write
		want error                     // what the Write returns; nil: any error
	}{
		{name: "Close ends a Write blocked on the flow control of a client that does not read",
			what: "Close", end: (*streamConn).Close, want: net.ErrClosed},
		{name: "a write deadline that passes ends a blocked Write",
			what: "SetWriteDeadline", end: func(c *streamConn) error { return c.SetWriteDeadline(time.Now()) }},
		{name: "SetDeadline sets the write deadline",
			what: "SetDeadline", end: func(c *streamConn) error { return c.SetDeadline(time.Now()) }},
		{name: "the end of ServeHTTP ends a blocked Write that outlived the handler",
			what: "end", end: func(c *streamConn) error { c.end(); return nil }, want: net.ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, done := streamServer(t, func(c *streamConn) {
				errs, written, ok := stallWrite(t, c)
				if !ok {
					return
				}
				if err := tc.end(c); err != nil {
					t.Errorf("%s = %v, want nil", tc.what, err)
				}
				err, took := waitErr(t, errs, "Write after "+tc.what)
				t.Logf("a Write blocked after %d bytes returned %v after %s", written.Load(), took, tc.what)
				switch {
				case tc.want != nil && !errors.Is(err, tc.want):
					t.Errorf("Write ended by %s = %v, want %v", tc.what, err, tc.want)
				case err == nil:
					t.Errorf("Write ended by %s returned no error", tc.what)
				}
			})
			openStream(t, s) // and never read
			waitDone(t, done)
		})
	}
}
