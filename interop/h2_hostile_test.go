package interop

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/leakcheck"
	"lowbit.dev/cooper/internal/poll"
	"lowbit.dev/cooper/internal/testkit"
)

// This file tests cooper's HTTP/2 path (RFC 8441) the way a hostile or
// broken client would, with raw frames on a loopback connection to
// net/http's server, which net/http's and golang.org/x/net's clients do
// not send: requests that break RFC 8441, data before the answer, a stream
// ended, reset or abandoned while its handler runs, a window overrun, and
// many streams on one connection against the Upgrader's limits.

// A rawH2 is the client's side of one HTTP/2 connection, written frame by
// frame. A goroutine of its own reads the server's frames, acknowledges
// SETTINGS and PING, and queues the rest by stream as h2Events.
type rawH2 struct {
	t    *testing.T
	conn net.Conn
	host string

	wmu sync.Mutex // serialises fr's writes and enc
	fr  *http2.Framer
	enc *hpack.Encoder
	buf bytes.Buffer // enc's output

	mu      sync.Mutex
	streams map[uint32]chan h2Event // by stream ID; 0 for the connection; guarded by mu

	done chan struct{} // closed when the reader stops
	err  error         // why the reader stopped; set before done is closed
}

// An h2Event is one frame the server sent, its payload copied.
type h2Event struct {
	typ       http2.FrameType
	endStream bool
	header    http.Header // of HEADERS, with the pseudo-headers under their names (":status")
	data      []byte      // of DATA
	code      http2.ErrCode
}

// dialH2 opens an HTTP/2 connection to s with the given SETTINGS and waits
// for the server's, which must offer extended CONNECT (RFC 8441, section
// 3). The test's cleanup closes it.
func dialH2(t *testing.T, s *httptest.Server, settings ...http2.Setting) *rawH2 {
	t.Helper()
	cfg := s.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	conn, err := d.Dial("tcp", s.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := &rawH2{t: t, conn: conn, host: s.Listener.Addr().String(),
		streams: map[uint32]chan h2Event{}, done: make(chan struct{})}
	c.fr = http2.NewFramer(conn, conn)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.enc = hpack.NewEncoder(&c.buf)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	c.write(func() error { return c.fr.WriteSettings(settings...) })
	// The reader starts after the preface, which must come first; the
	// cleanup, which waits for the reader, after the reader.
	go c.read()
	t.Cleanup(func() {
		conn.Close()
		<-c.done
	})
	ev := c.next(0)
	if ev.typ != http2.FrameSettings || ev.code != 1 {
		t.Fatalf("the server's first frame: %v, ENABLE_CONNECT_PROTOCOL %d; want SETTINGS with 1", ev.typ, ev.code)
	}
	return c
}

// read reads the server's frames until the connection ends, or until a
// stream has more frames queued than its queue holds: it never blocks on
// a queue, so closing the connection always stops it.
func (c *rawH2) read() {
	defer close(c.done)
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.err = err
			return
		}
		ev := h2Event{typ: f.Header().Type, endStream: f.Header().Flags.Has(http2.FlagDataEndStream)}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			v, _ := f.Value(http2.SettingEnableConnectProtocol)
			ev.code = http2.ErrCode(v)
			c.write(c.fr.WriteSettingsAck)
		case *http2.PingFrame:
			if !f.IsAck() {
				c.write(func() error { return c.fr.WritePing(true, f.Data) })
			}
			continue
		case *http2.WindowUpdateFrame, *http2.PriorityFrame:
			continue
		case *http2.MetaHeadersFrame:
			ev.header = http.Header{}
			for _, hf := range f.Fields {
				ev.header.Add(hf.Name, hf.Value)
			}
		case *http2.DataFrame:
			ev.data = bytes.Clone(f.Data())
		case *http2.RSTStreamFrame:
			ev.code = f.ErrCode
		case *http2.GoAwayFrame:
			ev.code = f.ErrCode
		}
		select {
		case c.queue(f.Header().StreamID) <- ev:
		default:
			c.err = fmt.Errorf("stream %d: more than %d frames unread", f.Header().StreamID, queueLen)
			return
		}
	}
}

// queueLen is how many frames a stream's queue holds.
const queueLen = 1024

// queue returns the queue of stream id's events.
func (c *rawH2) queue(id uint32) chan h2Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	q, ok := c.streams[id]
	if !ok {
		q = make(chan h2Event, queueLen)
		c.streams[id] = q
	}
	return q
}

// next returns the next event of stream id, failing the test when none
// comes within 10 s or the connection ended without one.
func (c *rawH2) next(id uint32) h2Event {
	c.t.Helper()
	ev, ok := c.nextWithin(id, 10*time.Second)
	if !ok {
		select {
		case <-c.done:
			c.t.Fatalf("stream %d: no frame before the client stopped reading: %v", id, c.err)
		default:
			c.t.Fatalf("stream %d: no frame within 10 s", id)
		}
	}
	return ev
}

// nextWithin returns the next event of stream id, or false when none
// comes within d or the connection ended without one.
func (c *rawH2) nextWithin(id uint32, d time.Duration) (h2Event, bool) {
	q := c.queue(id)
	select {
	case ev := <-q:
		return ev, true
	case <-c.done:
		select {
		case ev := <-q:
			return ev, true
		default:
			return h2Event{}, false
		}
	case <-time.After(d):
		return h2Event{}, false
	}
}

// write runs op, a write of c.fr, failing the test on error.
func (c *rawH2) write(op func() error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := op(); err != nil {
		c.t.Errorf("writing a frame: %v", err)
	}
}

// headers sends a HEADERS frame on stream id with fields, pairs of name
// and value, ending the client's side of the stream when end.
func (c *rawH2) headers(id uint32, end bool, fields ...string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.buf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.buf.Bytes(), EndStream: end, EndHeaders: true})
	if err != nil {
		c.t.Errorf("writing HEADERS: %v", err)
	}
}

// connect sends an extended CONNECT for websocket on stream id to /ws as a
// same-origin browser does, changed by edits, pairs of name and value: the
// first pair of a name the request has replaces its field in place, or
// drops it when the value is "", and any other pair is sent after the
// request's fields.
func (c *rawH2) connect(id uint32, end bool, edits ...string) {
	fields := []string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/ws",
		":authority", c.host, "sec-websocket-version", "13", "origin", "https://" + c.host}
	edited := map[string]bool{}
	for i := 0; i+1 < len(edits); i += 2 {
		name, value := edits[i], edits[i+1]
		at := slices.Index(fields, name)
		switch {
		case at < 0 || at%2 == 1 || edited[name]:
			fields = append(fields, name, value)
		case value == "":
			fields = slices.Delete(fields, at, at+2)
		default:
			fields[at+1] = value
		}
		edited[name] = true
	}
	c.headers(id, end, fields...)
}

// data sends p on stream id in DATA frames of at most 16 KiB, the last
// ending the client's side when end.
func (c *rawH2) data(id uint32, end bool, p []byte) {
	for {
		n := min(len(p), 16<<10)
		last := n == len(p)
		c.write(func() error { return c.fr.WriteData(id, end && last, p[:n]) })
		if last {
			return
		}
		p = p[n:]
	}
}

// response reads the answer on stream id: its status and headers, then
// its body (see rest).
func (c *rawH2) response(id uint32) (header http.Header, body string, reset http2.ErrCode, ended bool) {
	c.t.Helper()
	ev := c.next(id)
	if ev.typ != http2.FrameHeaders {
		c.t.Fatalf("stream %d: %v before the answer's HEADERS", id, ev.typ)
	}
	if ev.endStream {
		return ev.header, "", 0, true
	}
	body, reset, ended = c.rest(id)
	return ev.header, body, reset, ended
}

// rest reads the DATA of stream id up to the end of the stream. reset is
// the code of an RST_STREAM that ended it; ended is false when it did not
// end within 10 s.
func (c *rawH2) rest(id uint32) (body string, reset http2.ErrCode, ended bool) {
	var b strings.Builder
	for {
		ev, ok := c.nextWithin(id, 10*time.Second)
		switch {
		case !ok:
			return b.String(), 0, false
		case ev.typ == http2.FrameRSTStream:
			return b.String(), ev.code, true
		}
		b.Write(ev.data)
		if ev.endStream {
			return b.String(), 0, true
		}
	}
}

// answered reads the response head on stream id, failing the test unless
// it is 200.
func (c *rawH2) answered(id uint32) http.Header {
	c.t.Helper()
	ev := c.next(id)
	if ev.typ != http2.FrameHeaders || ev.header.Get(":status") != "200" || ev.endStream {
		c.t.Fatalf("stream %d: %v %v, end %v; want HEADERS with 200 that leave the stream open", id, ev.typ, ev.header, ev.endStream)
	}
	return ev.header
}

// readN reads n bytes of DATA from stream id.
func (c *rawH2) readN(id uint32, n int) string {
	c.t.Helper()
	var b strings.Builder
	for b.Len() < n {
		ev := c.next(id)
		if ev.typ != http2.FrameData {
			c.t.Fatalf("stream %d: %v after %q, want DATA", id, ev.typ, b.String())
		}
		b.Write(ev.data)
	}
	return b.String()
}

// hostileServer starts an HTTP/2 server for the Upgrader u, configured by
// opts after an OnError that sends to errs, whose handler runs fn. The test's
// cleanup shuts u down, which must succeed, and then checks that no
// goroutine of cooper's or of net/http's is left.
func hostileServer(t *testing.T, errs chan error, fn func(conn net.Conn, hs *cooper.Handshake), configure func(*http.Server), opts ...cooper.Option) (*httptest.Server, *cooper.Upgrader) {
	t.Helper()
	return hostileServerOf(t, errs, func(u *cooper.Upgrader) http.Handler { return u.Handler(fn) }, configure, opts...)
}

// hostileServerOf is hostileServer for the handler that handler makes of
// u, such as one that calls u.Accept.
func hostileServerOf(t *testing.T, errs chan error, handler func(u *cooper.Upgrader) http.Handler, configure func(*http.Server), opts ...cooper.Option) (*httptest.Server, *cooper.Upgrader) {
	t.Helper()
	t.Cleanup(func() { // runs last
		if leaked := leakcheck.Leaked(10*time.Second, "lowbit.dev/cooper.", "net/http."); leaked != "" {
			t.Errorf("goroutines left running:\n%s", leaked)
		}
	})
	opts = append([]cooper.Option{cooper.Protocols("websocket"), cooper.OnError(func(err error) {
		select {
		case errs <- err:
		default:
		}
	})}, opts...)
	u := cooper.New(opts...)
	s := newH2Server(t, handler(u), configure)
	t.Cleanup(func() { // runs first: before the server closes
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := u.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v, want nil: a handler is left", err)
		}
	})
	return s, u
}

// TestH2HostileRefusals sends extended CONNECTs that break RFC 8441 or
// the Upgrader's rules, as raw frames net/http's client would not send, to
// net/http's server: each refusal carries the status, the headers and the
// one-line reason the Upgrader's documentation promises, no Upgrade or
// Connection (RFC 9113, section 8.2.2), and ends its stream; OnError is
// told, and the handler does not run.
func TestH2HostileRefusals(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	cases := []struct {
		name   string
		edits  []string // changes to the valid request, as connect takes them
		fields []string // instead of the valid request, when set; "" is the server's address
		status string
		header string // a header the refusal must carry, as "name: value"
		err    error
	}{
		{name: "a :protocol on a GET is refused with 405 and Allow: CONNECT",
			fields: []string{":method", "GET", ":protocol", "websocket", ":scheme", "https", ":path", "/ws", ":authority", "",
				"sec-websocket-version", "13"},
			status: "405", header: "allow: CONNECT", err: cooper.ErrMethod},
		{name: "a CONNECT without :protocol, a tunnel, is refused with 400",
			fields: []string{":method", "CONNECT", ":authority", ""}, status: "400", err: cooper.ErrNotUpgrade},
		{name: "a :protocol not served is refused with 400",
			edits: []string{":protocol", "chat"}, status: "400", err: cooper.ErrProtocol},
		{name: "a missing Sec-WebSocket-Version is refused with 400 and Sec-WebSocket-Version: 13",
			edits: []string{"sec-websocket-version", ""}, status: "400", header: "sec-websocket-version: 13", err: cooper.ErrWebSocketVersion},
		{name: "a Sec-WebSocket-Version other than 13 is refused with 400 and Sec-WebSocket-Version: 13",
			edits: []string{"sec-websocket-version", "8"}, status: "400", header: "sec-websocket-version: 13", err: cooper.ErrWebSocketVersion},
		{name: "a Sec-WebSocket-Version sent twice is refused with 400 and Sec-WebSocket-Version: 13",
			edits: []string{"sec-websocket-version", "13", "sec-websocket-version", "13"}, status: "400", header: "sec-websocket-version: 13", err: cooper.ErrWebSocketVersion},
		{name: "an Origin refused is refused with 403",
			edits: []string{"origin", "https://evil.example"}, status: "403", err: cooper.ErrOrigin},
		{name: "a malformed Sec-WebSocket-Protocol is refused with 400",
			edits: []string{"sec-websocket-protocol", "chat,,\"x\""}, status: "400", err: cooper.ErrMalformedHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := make(chan error, 4)
			s, u := hostileServer(t, errs, func(conn net.Conn, hs *cooper.Handshake) {
				t.Error("the handler ran for a refused request")
				conn.Close()
			}, nil)
			c := dialH2(t, s)
			if tc.fields != nil {
				fields := slices.Clone(tc.fields)
				fields[slices.Index(fields, "")] = c.host
				c.headers(1, false, fields...)
			} else {
				c.connect(1, false, tc.edits...)
			}
			header, body, reset, ended := c.response(1)
			if got := header.Get(":status"); got != tc.status || !ended || reset != 0 {
				t.Fatalf("status %s, ended %v, reset %v; want %s and the end of the stream", got, ended, reset, tc.status)
			}
			if name, value, ok := strings.Cut(tc.header, ": "); ok && header.Get(name) != value {
				t.Errorf("%s = %q, want %q", name, header.Get(name), value)
			}
			for _, name := range []string{"upgrade", "connection"} {
				if v := header.Values(name); len(v) > 0 {
					t.Errorf("the refusal carries %s: %q", name, v)
				}
			}
			line, rest, _ := strings.Cut(body, "\n")
			if rest != "" || !strings.HasPrefix(line, "cooper: ") || strings.Count(line, ": ") < 2 {
				t.Errorf("body = %q, want one line \"cooper: <what>: <what was wrong>\"", body)
			}
			if err := testkit.RecvWithin(t, errs, 5*time.Second, "OnError"); !errors.Is(err, tc.err) {
				t.Errorf("OnError got %v, want %v", err, tc.err)
			}
			if st := u.Stats(); st.Active != 0 || st.Upgrades != 0 {
				t.Errorf("Stats = %+v, want nothing active or upgraded", st)
			}
		})
	}
}

// TestH2HostileOffers sends extended CONNECTs that are odd but that the
// Upgrader accepts: a Sec-WebSocket-Key, which RFC 8441, section 5 does
// not use, is ignored and not answered with Sec-WebSocket-Accept; a
// malformed permessage-deflate offer is declined, and the upgrade goes on
// without it.
func TestH2HostileOffers(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	s, _ := hostileServer(t, make(chan error, 4), func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		if hs.Deflate != nil {
			t.Errorf("Handshake.Deflate = %+v for a malformed offer, want nil", hs.Deflate)
		}
	}, nil, cooper.Deflate(cooper.DeflateParams{}))
	c := dialH2(t, s)
	for i, edits := range [][]string{
		{"sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="},
		{"sec-websocket-extensions", "permessage-deflate; server_max_window_bits=99"},
	} {
		id := uint32(2*i + 1)
		c.connect(id, false, edits...)
		header, _, reset, ended := c.response(id)
		if header.Get(":status") != "200" || !ended || reset != 0 {
			t.Errorf("%q: status %s, ended %v, reset %v; want 200 and the stream ended with the handler", edits, header.Get(":status"), ended, reset)
		}
		for _, name := range []string{"sec-websocket-accept", "sec-websocket-extensions"} {
			if v := header.Values(name); len(v) > 0 {
				t.Errorf("%q: the answer carries %s: %q", edits, name, v)
			}
		}
	}
}

// writeAll writes conn until a Write fails and returns the error.
func writeAll(conn net.Conn) error {
	buf := make([]byte, 4<<10)
	for {
		if _, err := conn.Write(buf); err != nil {
			return err
		}
	}
}

// TestH2HostileStreams has a client do to an upgraded stream what a broken
// or hostile one does: send data before the answer, end its side with the
// request, reset the stream or close the connection while the handler
// reads or while its Write is held by flow control, send GOAWAY, overrun
// the stream's window. The handler's Read or Write fails rather than hang,
// and not with net.ErrClosed, since the handler did not close the stream;
// the Upgrader lets the stream go, and Shutdown returns with no goroutine
// left (hostileServer's cleanup).
func TestH2HostileStreams(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	// The client's stream window: a handler's Write stalls past it.
	const window = 1 << 10
	echoes := func(conn net.Conn, _ <-chan struct{}) error {
		_, err := io.Copy(conn, conn)
		return err
	}
	writes := func(conn net.Conn, _ <-chan struct{}) error { return writeAll(conn) }
	// opened opens stream 1 and reads its 200; stalled then reads what the
	// window lets the handler write.
	opened := func(c *rawH2) {
		c.connect(1, false)
		c.answered(1)
	}
	stalled := func(c *rawH2) {
		opened(c)
		c.readN(1, window)
	}
	cases := []struct {
		name      string
		configure func(*http.Server)
		handler   func(conn net.Conn, release <-chan struct{}) error // the error its Read or Write ended with
		client    func(t *testing.T, c *rawH2, release chan<- struct{})
		want      error // what the handler's error must match; nil: any error
		noErr     bool  // the handler must return no error
	}{
		{name: "data sent before the 200 reaches the handler, then the rest, in order",
			handler: echoes,
			client: func(t *testing.T, c *rawH2, _ chan<- struct{}) {
				c.connect(1, false)
				c.data(1, false, []byte("early"))
				c.answered(1)
				if got := c.readN(1, 5); got != "early" {
					t.Errorf("echo of the data sent before the 200 = %q", got)
				}
				c.data(1, true, []byte("late"))
				if body, reset, ended := c.rest(1); !ended || reset != 0 || body != "late" {
					t.Errorf("after the client's END_STREAM: %q, ended %v, reset %v; want \"late\" and the end", body, ended, reset)
				}
			},
			noErr: true},
		{name: "a client that ends its side with the request: Read gets io.EOF and Write still works",
			handler: func(conn net.Conn, _ <-chan struct{}) error {
				if n, err := conn.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					return fmt.Errorf("Read = %d, %v, want io.EOF", n, err)
				}
				_, err := io.WriteString(conn, "bye")
				return err
			},
			client: func(t *testing.T, c *rawH2, _ chan<- struct{}) {
				c.connect(1, true)
				header, body, reset, ended := c.response(1)
				if header.Get(":status") != "200" || body != "bye" || !ended || reset != 0 {
					t.Errorf("status %s, %q, ended %v, reset %v; want 200, \"bye\" and the end", header.Get(":status"), body, ended, reset)
				}
			},
			noErr: true},
		{name: "RST_STREAM while the handler reads ends its Read",
			handler: func(conn net.Conn, _ <-chan struct{}) error {
				_, err := conn.Read(make([]byte, 1))
				return err
			},
			client: func(t *testing.T, c *rawH2, _ chan<- struct{}) {
				opened(c)
				c.write(func() error { return c.fr.WriteRSTStream(1, http2.ErrCodeCancel) })
			}},
		{name: "RST_STREAM while the handler's Write is held by flow control ends its Write",
			handler: writes,
			client: func(t *testing.T, c *rawH2, _ chan<- struct{}) {
				stalled(c)
				c.write(func() error { return c.fr.WriteRSTStream(1, http2.ErrCodeCancel) })
			}},
		{name: "GOAWAY leaves the stream open; closing the connection then ends the handler's Read",
			handler: echoes,
			client: func(t *testing.T, c *rawH2, _ chan<- struct{}) {
				opened(c)
				c.write(func() error { return c.fr.WriteGoAway(1, http2.ErrCodeNo, nil) })
				c.data(1, false, []byte("after GOAWAY"))
				if got := c.readN(1, 12); got != "after GOAWAY" {
					t.Errorf("echo after GOAWAY = %q", got)
				}
				c.conn.Close()
			}},
		{name: "closing the connection while the handler's Write is held by flow control ends its Write",
			handler: writes,
			client: func(t *testing.T, c *rawH2, _ chan<- struct{}) {
				stalled(c)
				c.conn.Close()
			}},
		{name: "a write deadline ends a Write held by flow control",
			handler: func(conn net.Conn, _ <-chan struct{}) error {
				conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
				return writeAll(conn)
			},
			client: func(t *testing.T, c *rawH2, _ chan<- struct{}) {
				stalled(c)
			},
			want: os.ErrDeadlineExceeded},
		{name: "a client that sends more than the stream's window is reset, and the handler's Read fails",
			configure: func(s *http.Server) { s.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10} },
			handler: func(conn net.Conn, release <-chan struct{}) error {
				<-release
				_, err := io.Copy(io.Discard, conn)
				if err == nil {
					err = errors.New("the stream ended cleanly")
				}
				return err
			},
			client: func(t *testing.T, c *rawH2, release chan<- struct{}) {
				defer close(release)
				opened(c)
				c.data(1, false, make([]byte, 64<<10+1))
				if ev := c.next(1); ev.typ != http2.FrameRSTStream || ev.code != http2.ErrCodeFlowControl {
					t.Errorf("after the overrun: %v %v, want RST_STREAM with FLOW_CONTROL_ERROR", ev.typ, ev.code)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			results := make(chan error, 1)
			release := make(chan struct{})
			s, u := hostileServer(t, make(chan error, 4), func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				results <- tc.handler(conn, release)
			}, tc.configure)
			c := dialH2(t, s, http2.Setting{ID: http2.SettingInitialWindowSize, Val: window})
			tc.client(t, c, release)
			err := testkit.RecvWithin(t, results, 10*time.Second, "the handler's return")
			switch {
			case tc.noErr && err != nil:
				t.Errorf("the handler's Read or Write failed: %v", err)
			case !tc.noErr && err == nil:
				t.Error("the handler's Read or Write returned no error")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("the handler's Read or Write = %v, want %v", err, tc.want)
			case errors.Is(err, net.ErrClosed):
				t.Errorf("the handler's Read or Write = %v, which only its own Close may cause", err)
			}
			t.Logf("the handler's Read or Write returned %v", err)
			poll.Until(t, 10*time.Second, "the stream to be released", func() bool { return u.Stats().Active == 0 })
		})
	}
}

// TestH2HostileManyStreams opens 50 extended CONNECTs at once on one
// connection against an Upgrader's limits, which hold per stream: as many
// streams as the limit are upgraded, every other one is refused with its
// status and Retry-After and ends; once the client resets the upgraded
// ones, the Upgrader lets them go and the next stream is upgraded.
func TestH2HostileManyStreams(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	const streams = 50
	for _, tc := range []struct {
		name   string
		limit  int
		opt    cooper.Option
		status string
		err    error
	}{
		{"MaxConnections", 10, cooper.MaxConnections(10), "503", cooper.ErrTooManyConnections},
		{"MaxConnectionsPerClient", 5, cooper.MaxConnectionsPerClient(5), "429", cooper.ErrTooManyClientConnections},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := make(chan error, streams)
			s, u := hostileServer(t, errs, func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				io.Copy(io.Discard, conn) // until the client resets the stream
			}, nil, tc.opt)
			c := dialH2(t, s)
			for i := range streams {
				c.connect(uint32(2*i+1), false)
			}
			var upgraded []uint32
			for i := range streams {
				id := uint32(2*i + 1)
				ev := c.next(id)
				if ev.typ == http2.FrameHeaders && ev.header.Get(":status") == "200" && !ev.endStream {
					upgraded = append(upgraded, id)
					continue
				}
				if ev.typ != http2.FrameHeaders || ev.header.Get(":status") != tc.status || ev.header.Get("retry-after") == "" {
					t.Fatalf("stream %d: %v %v, want 200 or %s with Retry-After", id, ev.typ, ev.header, tc.status)
				}
				if _, _, ended := c.rest(id); !ended {
					t.Errorf("refused stream %d did not end", id)
				}
				if err := testkit.RecvWithin(t, errs, 5*time.Second, "OnError"); !errors.Is(err, tc.err) {
					t.Errorf("OnError got %v, want %v", err, tc.err)
				}
			}
			if len(upgraded) != tc.limit || u.Stats().Active != tc.limit {
				t.Fatalf("%d streams upgraded, Stats().Active = %d; want %d, the limit", len(upgraded), u.Stats().Active, tc.limit)
			}
			for _, id := range upgraded {
				c.write(func() error { return c.fr.WriteRSTStream(id, http2.ErrCodeCancel) })
			}
			poll.Until(t, 10*time.Second, "the reset streams to be released", func() bool { return u.Stats().Active == 0 })
			c.connect(2*streams+1, false)
			c.answered(2*streams + 1)
		})
	}
}

// TestH2HostileAccept resets the stream of an upgrade that Upgrader.Accept
// handed over while the caller reads it inside its ServeHTTP. The caller
// did not close the connection, so nothing it does fails with
// net.ErrClosed: its Read reports the reset, a Write fails otherwise, and
// its Close, the first, succeeds. The Upgrader stops tracking the stream,
// which is gone, though ServeHTTP still runs. A caller that uses the
// connection after ServeHTTP returned, which Accept forbids, gets errors,
// not a panic.
func TestH2HostileAccept(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	type result struct {
		read, write, deadline, close error
	}
	// serve starts a server whose handler accepts, reads unless late, waits
	// for the test to open proceed, then calls the connection's methods and
	// sends their results; after ServeHTTP returned when late.
	serve := func(t *testing.T, late bool) (*rawH2, *cooper.Upgrader, *testkit.Gate, chan result) {
		results, proceed := make(chan result, 1), testkit.NewGate()
		s, u := hostileServerOf(t, make(chan error, 4), func(u *cooper.Upgrader) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := u.Accept(w, r)
				if err != nil {
					t.Errorf("Accept: %v", err)
					return
				}
				calls := func() {
					var res result
					if !late {
						_, res.read = conn.Read(make([]byte, 1))
					}
					proceed.Wait()
					_, res.write = conn.Write([]byte("x"))
					res.deadline = conn.SetDeadline(time.Now().Add(time.Second))
					res.close = conn.Close()
					results <- res
				}
				if late {
					go calls()
					return
				}
				calls()
			})
		}, nil)
		t.Cleanup(proceed.Open) // after the server's: lets the handler end when the test failed early
		return dialH2(t, s), u, proceed, results
	}
	check := func(t *testing.T, res result, read bool) {
		t.Helper()
		if read && (res.read == nil || errors.Is(res.read, net.ErrClosed)) {
			t.Errorf("Read ended by the reset = %v, want the stream's error, not net.ErrClosed", res.read)
		}
		if res.write == nil || errors.Is(res.write, net.ErrClosed) {
			t.Errorf("Write = %v, want an error other than net.ErrClosed", res.write)
		}
		if res.deadline == nil || errors.Is(res.deadline, net.ErrClosed) {
			t.Errorf("SetDeadline = %v, want an error other than net.ErrClosed", res.deadline)
		}
		if res.close != nil {
			t.Errorf("the caller's first Close = %v, want nil", res.close)
		}
	}
	t.Run("a reset while ServeHTTP runs", func(t *testing.T) {
		c, u, proceed, results := serve(t, false)
		c.connect(1, false)
		c.answered(1)
		c.write(func() error { return c.fr.WriteRSTStream(1, http2.ErrCodeCancel) })
		poll.Until(t, 10*time.Second, "the reset stream to be released", func() bool { return u.Stats().Active == 0 })
		proceed.Open() // ServeHTTP still runs
		check(t, testkit.RecvWithin(t, results, 10*time.Second, "the caller's calls"), true)
	})
	t.Run("calls after ServeHTTP returned", func(t *testing.T) {
		c, u, proceed, results := serve(t, true)
		c.connect(1, false)
		c.answered(1)
		if _, reset, ended := c.rest(1); !ended || reset != 0 {
			t.Errorf("the stream ended %v, reset %v; want it ended cleanly with ServeHTTP", ended, reset)
		}
		poll.Until(t, 10*time.Second, "the ended stream to be released", func() bool { return u.Stats().Active == 0 })
		proceed.Open() // net/http has taken the ResponseWriter back
		check(t, testkit.RecvWithin(t, results, 10*time.Second, "the caller's calls"), false)
	})
}
