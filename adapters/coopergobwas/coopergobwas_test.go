package coopergobwas_test

import (
	"bytes"
	"cmp"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	coder "github.com/coder/websocket"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
	gorilla "github.com/gorilla/websocket"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergobwas"
	"lowbit.dev/cooper/internal/testkit"
	"lowbit.dev/cooper/internal/testkit/wsclient"
)

// TestMain fails the run when a test leaves a goroutine of cooper's,
// coopergobwas's or net/http's behind.
func TestMain(m *testing.M) { testkit.Main(m) }

// An outcome is how a connection ended on the server: what was agreed
// and the error its handler returned.
type outcome struct {
	hs  *cooper.Handshake
	err error
}

// A server is a cooper endpoint whose handler runs fn on a Conn.
type server struct {
	url      string
	outcomes chan outcome
}

// serve starts fn on every upgrade of a loopback server that negotiates
// permessage-deflate under policy (none when nil); see testkit.Serve for
// what the test's cleanup checks.
func serve(t testing.TB, policy *cooper.DeflateParams, fn func(*coopergobwas.Conn) error) *server {
	t.Helper()
	var opts []cooper.Option
	if policy != nil {
		opts = append(opts, cooper.Deflate(*policy))
	}
	s := &server{outcomes: make(chan outcome, 8)}
	ts := testkit.Serve(t, opts, func(u *cooper.Upgrader) http.Handler {
		return u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			c := coopergobwas.NewConn(conn, hs)
			defer c.Close()
			s.outcomes <- outcome{hs, fn(c)}
		})
	})
	s.url = "ws" + strings.TrimPrefix(ts.URL, "http")
	return s
}

// outcome waits for the next connection to end on the server.
func (s *server) outcome(t testing.TB) outcome {
	t.Helper()
	return testkit.RecvWithin(t, s.outcomes, 10*time.Second, "connection ending on the server")
}

// dialGorilla connects gorilla/websocket's client to s, offering
// compression if compress, with 10 s for the handshake and 10 s to read;
// the connection is closed when the test ends.
func (s *server) dialGorilla(t testing.TB, compress bool) *gorilla.Conn {
	t.Helper()
	g, _, err := (&gorilla.Dialer{HandshakeTimeout: 10 * time.Second, EnableCompression: compress}).Dial(s.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	g.SetReadDeadline(time.Now().Add(10 * time.Second))
	return g
}

// echo sends every message back until reading ends, and returns why.
func echo(c *coopergobwas.Conn) error {
	c.SetReadLimit(8 << 20)
	for {
		op, p, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if err := c.WriteMessage(op, p); err != nil {
			return err
		}
	}
}

var policy = coopergobwas.Deflate()

// random returns n bytes deflate cannot shrink, the same every run.
func random(n int) []byte {
	p := make([]byte, n)
	var x uint32 = 2463534242
	for i := range p {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
	return p
}

const phrase = "a text message that compresses well, ✓. "

// exchange is what the clients send: text and binary, small and over
// 1 MiB, compressible and not. The last repeats the one before, so a
// compressor keeping its context refers back into it.
func exchange() []wsclient.Message {
	return []wsclient.Message{
		{Name: "small text", Data: []byte("hello, cooper ✓")},
		{Name: "small binary", Binary: true, Data: []byte{0, 1, 0xfe, 0xff}},
		{Name: "empty text"},
		{Name: "1 MiB and more of random binary", Binary: true, Data: random(1<<20 + 3)},
		{Name: "1 MiB and more of text", Data: []byte(strings.Repeat(phrase, 1<<20/len(phrase)+1))},
		{Name: "4 KiB of random text", Data: []byte(fmt.Sprintf("%x", random(2048)))},
		{Name: "the same 4 KiB again", Data: []byte(fmt.Sprintf("%x", random(2048)))},
	}
}

// TestEcho has real clients exchange every message of exchange with an
// echo on Conn, compressed in each way they offer, and close with 1000.
func TestEcho(t *testing.T) {
	const both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	agreedBoth := &cooper.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
	for _, c := range []struct {
		name       string
		dial       wsclient.Dialer
		extensions string
		deflate    *cooper.DeflateParams // what Handshake.Deflate must be
	}{
		{"gorilla without compression", wsclient.Gorilla(false), "", nil},
		{"gorilla with compression", wsclient.Gorilla(true), both, agreedBoth},
		{"coder without compression", wsclient.Coder(coder.CompressionDisabled), "", nil},
		{"coder without context takeover", wsclient.Coder(coder.CompressionNoContextTakeover), both, agreedBoth},
		{"coder with context takeover both ways", wsclient.Coder(coder.CompressionContextTakeover), "permessage-deflate",
			&cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"gobwas without compression", wsclient.Gobwas(false), "", nil},
		{"gobwas with compression", wsclient.Gobwas(true), both, agreedBoth},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := serve(t, &policy, echo)
			conversation := wsclient.Conversation{Extensions: c.extensions, Messages: exchange(), Code: 1000, Reason: "done"}
			conversation.Have(t, c.dial, s.url)
			o := s.outcome(t)
			var closed wsutil.ClosedError
			if !errors.As(o.err, &closed) || closed.Code != 1000 || closed.Reason != "done" {
				t.Errorf("the server's ReadMessage ended with %v, want the client's close frame, 1000 \"done\"", o.err)
			}
			if (o.hs.Deflate == nil) != (c.deflate == nil) || c.deflate != nil && *o.hs.Deflate != *c.deflate {
				t.Errorf("Handshake.Deflate = %+v, want %+v", o.hs.Deflate, c.deflate)
			}
		})
	}
}

// A raw is a gobwas/ws client connection that sends and reads frames as
// they are, so the tests can see and break the framing.
type raw struct {
	conn      net.Conn
	r         io.Reader
	hs        ws.Handshake
	sentClose bool // the client sent a close frame
	eof       bool // after the close frames, the server closed the connection
}

// dialRaw connects to url, offering the extensions given.
func dialRaw(ctx context.Context, url string, offer ...httphead.Option) (*raw, error) {
	conn, br, hs, err := ws.Dialer{Extensions: offer}.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	r := &raw{conn: conn, r: conn, hs: hs}
	if br != nil {
		r.r = io.MultiReader(br, conn)
	}
	return r, nil
}

// send masks f, as a client must, and writes it.
func (r *raw) send(f ws.Frame) error {
	r.sentClose = r.sentClose || f.Header.OpCode == ws.OpClose
	return ws.WriteFrame(r.conn, ws.MaskFrameInPlace(f))
}

// readFrame reads the server's next frame.
func (r *raw) readFrame() (ws.Frame, error) { return ws.ReadFrame(r.r) }

func (r *raw) extensions() string { return wsclient.Extensions(r.hs.Extensions) }

// closed reads frames up to the server's close frame and, as a browser
// does, answers it unless it answers the client's, then waits for the
// server to close the connection (RFC 6455, section 7.1.1), sets r.eof if
// it did, and returns the close frame's code: 1005 without one, 0 if none
// came.
func (r *raw) closed() ws.StatusCode {
	defer r.conn.Close()
	for {
		f, err := r.readFrame()
		if err != nil {
			return 0
		}
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		code, _ := ws.ParseCloseFrameData(f.Payload)
		if len(f.Payload) < 2 {
			code = ws.StatusNoStatusRcvd
		}
		if !r.sentClose {
			r.send(ws.NewCloseFrame(bytes.Clone(f.Payload[:min(len(f.Payload), 2)])))
		}
		_, err = r.readFrame()
		r.eof = err == io.EOF
		return code
	}
}

// rawTest connects a raw client to a fresh server running fn, offering
// the extensions given.
func rawTest(t *testing.T, policy *cooper.DeflateParams, fn func(*coopergobwas.Conn) error, offer ...httphead.Option) (*server, *raw) {
	t.Helper()
	s := serve(t, policy, fn)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	r, err := dialRaw(ctx, s.url, offer...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.conn.Close() })
	return s, r
}

// tail completes a compressed message for compress/flate (RFC 7692,
// section 7.2.2), with an empty final block so that the reader stops.
const tail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// inflater decompresses one message's payload with dict as the window.
func inflater(p, dict []byte) io.Reader {
	return flate.NewReaderDict(io.MultiReader(bytes.NewReader(p), strings.NewReader(tail)), dict)
}

// inflate returns one message's payload decompressed with dict as the window.
func inflate(p, dict []byte) ([]byte, error) { return io.ReadAll(inflater(p, dict)) }

// A deflater compresses a client's messages, keeping its window across
// them unless reset.
type deflater struct {
	buf bytes.Buffer
	w   *flate.Writer
}

func newDeflater() *deflater {
	d := &deflater{}
	d.w, _ = flate.NewWriter(&d.buf, flate.BestSpeed)
	return d
}

// compress returns p compressed as one message, after what it compressed
// before.
func (d *deflater) compress(p []byte) []byte {
	d.buf.Reset()
	d.w.Write(p)
	d.w.Flush()
	return bytes.Clone(bytes.TrimSuffix(d.buf.Bytes(), []byte(tail[:4])))
}

// TestContextTakeover checks every parameter of permessage-deflate's
// context takeover on the wire, both ways: a side keeps its window across
// messages unless no context takeover was agreed for it.
func TestContextTakeover(t *testing.T) {
	msg := []byte(fmt.Sprintf("%x", random(4096))) // 8 KiB that compress only against themselves

	t.Run("the server's second message refers back into its first", func(t *testing.T) {
		s, r := rawTest(t, &policy, echo, wsflate.Parameters{}.Option())
		sizes, window := []int{}, []byte(nil)
		for range 2 {
			r.send(ws.NewTextFrame(bytes.Clone(msg)))
			f, err := r.readFrame()
			if err != nil || !f.Header.Rsv1() {
				t.Fatalf("the echo: %v, RSV1 %v; want a compressed message", err, f.Header.Rsv1())
			}
			if _, err := inflate(f.Payload, nil); len(sizes) == 1 && err == nil {
				t.Errorf("the second message decompresses without the first: it does not refer back")
			}
			got, err := inflate(f.Payload, window)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("the echo decompresses after the messages before it to %d bytes, %v; want the %d sent", len(got), err, len(msg))
			}
			window = append(window, got...)
			sizes = append(sizes, len(f.Payload))
		}
		if sizes[1] >= sizes[0] {
			t.Errorf("compressed sizes %v: the second gains nothing from the first", sizes)
		}
		r.send(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "")))
		r.closed()
		if o := s.outcome(t); o.hs.Deflate.ServerNoContextTakeover || o.hs.Deflate.ClientNoContextTakeover {
			t.Errorf("agreed %+v, want context takeover both ways", *o.hs.Deflate)
		}
	})

	t.Run("with server_no_context_takeover each of the server's messages stands alone", func(t *testing.T) {
		_, r := rawTest(t, &policy, echo, wsflate.Parameters{ServerNoContextTakeover: true}.Option())
		for i := range 2 {
			r.send(ws.NewTextFrame(bytes.Clone(msg)))
			f, err := r.readFrame()
			if err != nil || !f.Header.Rsv1() {
				t.Fatalf("echo %d: %v, RSV1 %v; want a compressed message", i, err, f.Header.Rsv1())
			}
			if got, err := inflate(f.Payload, nil); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo %d decompresses on its own to %d bytes, %v; want the %d sent", i, len(got), err, len(msg))
			}
		}
	})

	t.Run("the server reads a client message that refers back into the one before", func(t *testing.T) {
		s, r := rawTest(t, &policy, echo, wsflate.Parameters{ServerNoContextTakeover: true}.Option())
		d := newDeflater()
		for i := range 3 {
			p := d.compress(msg)
			if _, err := inflate(p, nil); i > 0 && err == nil {
				t.Fatalf("the client's message %d does not refer back", i)
			}
			f := ws.NewTextFrame(p)
			f.Header.Rsv = ws.Rsv(true, false, false)
			r.send(f)
			got, err := r.readFrame()
			if err != nil {
				t.Fatalf("echo %d: %v (the server read %v)", i, err, s.outcome(t).err)
			}
			if got, err := inflate(got.Payload, nil); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo %d decompresses to %d bytes, %v; want the %d sent", i, len(got), err, len(msg))
			}
		}
	})

	t.Run("with client_no_context_takeover the client's messages are read alone", func(t *testing.T) {
		// A client that keeps its window anyway breaks the agreement; the
		// server, having reset its window, cannot read the reference back.
		s, r := rawTest(t, &policy, echo, wsflate.Parameters{ClientNoContextTakeover: true}.Option())
		d := newDeflater()
		for range 2 {
			f := ws.NewTextFrame(d.compress(msg))
			f.Header.Rsv = ws.Rsv(true, false, false)
			r.send(f)
		}
		if f, err := r.readFrame(); err != nil || f.Header.OpCode != ws.OpText {
			t.Fatalf("the first echo: %v, %v", f.Header, err)
		}
		if code := r.closed(); code != ws.StatusInvalidFramePayloadData {
			t.Errorf("close code %d, want 1007", code)
		}
		if err := s.outcome(t).err; !errors.Is(err, coopergobwas.ErrInvalidData) {
			t.Errorf("the server's ReadMessage ended with %v, want ErrInvalidData", err)
		}
	})
}

// TestWindowBits checks that Deflate and NewConn agree on window sizes: a
// server window below 15 bits is declined, a client window of any size is
// agreed, and a Handshake that agreed a server window compress/flate does
// not keep gets uncompressed messages.
func TestWindowBits(t *testing.T) {
	t.Run("an offer of a server window below 15 bits is declined", func(t *testing.T) {
		s, r := rawTest(t, &policy, echo, wsflate.Parameters{ServerMaxWindowBits: 10}.Option())
		if ext := r.extensions(); ext != "" {
			t.Errorf("Sec-WebSocket-Extensions = %q, want none", ext)
		}
		r.send(ws.NewCloseFrame(nil))
		r.closed()
		if o := s.outcome(t); o.hs.Deflate != nil {
			t.Errorf("Handshake.Deflate = %+v, want nil", *o.hs.Deflate)
		}
	})
	t.Run("a client window of 9 bits is agreed and read", func(t *testing.T) {
		_, r := rawTest(t, &policy, echo, wsflate.Parameters{ClientMaxWindowBits: 9}.Option())
		if ext := r.extensions(); ext != "permessage-deflate; client_max_window_bits=9" {
			t.Fatalf("Sec-WebSocket-Extensions = %q", ext)
		}
		msg := []byte(strings.Repeat("ab", 200)) // refers back no more than 2 bytes
		f := ws.NewTextFrame(newDeflater().compress(msg))
		f.Header.Rsv = ws.Rsv(true, false, false)
		r.send(f)
		got, err := r.readFrame()
		if err != nil {
			t.Fatal(err)
		}
		if p, err := inflate(got.Payload, nil); err != nil || !bytes.Equal(p, msg) {
			t.Errorf("echo = %q, %v", p, err)
		}
	})
	t.Run("a server window below 15 bits sends messages uncompressed", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		c := coopergobwas.NewConn(b, &cooper.Handshake{Deflate: &cooper.DeflateParams{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}})
		defer c.Close()
		go c.WriteMessage(ws.OpText, []byte(strings.Repeat("x", 1000)))
		f, err := ws.ReadFrame(a)
		if err != nil || f.Header.Rsv1() || len(f.Payload) != 1000 {
			t.Errorf("frame %+v, %v; want 1000 bytes, RSV1 unset", f.Header, err)
		}
	})
}

// TestFraming checks fragments, control frames and the closing handshake
// with raw frames from a gobwas/ws client.
func TestFraming(t *testing.T) {
	frag := func(op ws.OpCode, fin bool, p string) ws.Frame { return ws.NewFrame(op, fin, []byte(p)) }
	for _, c := range []struct {
		name   string
		send   []ws.Frame
		expect []ws.Frame // what comes back before the server's close frame
	}{
		{"a fragmented text message, a character split between fragments, is read whole",
			[]ws.Frame{frag(ws.OpText, false, "caf\xc3"), frag(ws.OpContinuation, false, "\xa9 "), frag(ws.OpContinuation, true, "au lait")},
			[]ws.Frame{frag(ws.OpText, true, "café au lait")}},
		{"a ping between fragments is answered and the message read whole",
			[]ws.Frame{frag(ws.OpBinary, false, "one "), ws.NewPingFrame([]byte("between")), frag(ws.OpContinuation, true, "two")},
			[]ws.Frame{ws.NewPongFrame([]byte("between")), frag(ws.OpBinary, true, "one two")}},
		{"a ping is answered with a pong of its payload",
			[]ws.Frame{ws.NewPingFrame([]byte("are you there?"))}, []ws.Frame{ws.NewPongFrame([]byte("are you there?"))}},
		{"a pong is not answered", []ws.Frame{ws.NewPongFrame([]byte("unasked"))}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, r := rawTest(t, nil, echo)
			for _, f := range c.send {
				if err := r.send(f); err != nil {
					t.Fatal(err)
				}
			}
			for _, want := range c.expect {
				f, err := r.readFrame()
				if err != nil || f.Header.OpCode != want.Header.OpCode || !f.Header.Fin || !bytes.Equal(f.Payload, want.Payload) {
					t.Fatalf("got opcode %d %q, %v; want opcode %d %q", f.Header.OpCode, f.Payload, err, want.Header.OpCode, want.Payload)
				}
			}
			r.send(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))
			if got := r.closed(); got != ws.StatusNormalClosure || !r.eof {
				t.Errorf("the server's close code = %d, then closed the connection: %v; want 1000, true", got, r.eof)
			}
			s.outcome(t)
		})
	}
}

// TestFailures sends what breaks the protocol and checks the close code
// that comes back and the error ReadMessage returns.
func TestFailures(t *testing.T) {
	compressed := func(f ws.Frame) ws.Frame { f.Header.Rsv = ws.Rsv(true, false, false); return f }
	withRsv := func(f ws.Frame, rsv byte) ws.Frame { f.Header.Rsv = rsv; return f }
	text := func(p string) ws.Frame { return ws.NewTextFrame([]byte(p)) }
	for _, c := range []struct {
		name     string
		deflate  bool
		limit    int64
		send     []ws.Frame
		unmasked bool // the client sends its frames unmasked
		code     ws.StatusCode
		err      error
	}{
		{name: "a text message that is not UTF-8 gets 1007", send: []ws.Frame{text("caf\xc3")}, code: 1007, err: coopergobwas.ErrInvalidData},
		{name: "a message over the read limit gets 1009", limit: 1000, send: []ws.Frame{text(strings.Repeat("x", 1001))}, code: 1009, err: coopergobwas.ErrReadLimit},
		{name: "a message over DefaultReadLimit gets 1009 without SetReadLimit",
			send: []ws.Frame{text(strings.Repeat("x", coopergobwas.DefaultReadLimit+1))}, code: 1009, err: coopergobwas.ErrReadLimit},
		{name: "fragments adding up to over the read limit get 1009", limit: 1000,
			send: []ws.Frame{ws.NewFrame(ws.OpText, false, make([]byte, 600)), ws.NewFrame(ws.OpContinuation, true, make([]byte, 600))}, code: 1009, err: coopergobwas.ErrReadLimit},
		{name: "a compressed message decompressing to over the read limit gets 1009", deflate: true, limit: 1000,
			send: []ws.Frame{compressed(ws.NewTextFrame(newDeflater().compress(make([]byte, 1001))))}, code: 1009, err: coopergobwas.ErrReadLimit},
		{name: "compressed data that does not decompress gets 1007", deflate: true,
			send: []ws.Frame{compressed(text("\xff\xff\xff\xff"))}, code: 1007, err: coopergobwas.ErrInvalidData},
		{name: "an unmasked frame gets 1002", send: []ws.Frame{text("hello")}, unmasked: true, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "RSV1 without permessage-deflate gets 1002", send: []ws.Frame{compressed(text("hello"))}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "RSV2 gets 1002", deflate: true, send: []ws.Frame{withRsv(text("hello"), 2)}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "RSV1 on a continuation frame gets 1002", deflate: true,
			send: []ws.Frame{ws.NewFrame(ws.OpText, false, []byte("a")), compressed(ws.NewFrame(ws.OpContinuation, true, []byte("b")))}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "RSV1 on a ping gets 1002", deflate: true, send: []ws.Frame{compressed(ws.NewPingFrame(nil))}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "a continuation frame without a message gets 1002", send: []ws.Frame{ws.NewFrame(ws.OpContinuation, true, []byte("a"))}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "a new message inside a fragmented one gets 1002",
			send: []ws.Frame{ws.NewFrame(ws.OpText, false, []byte("a")), text("b")}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "a reserved opcode gets 1002", send: []ws.Frame{ws.NewFrame(3, true, nil)}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "a fragmented ping gets 1002", send: []ws.Frame{ws.NewFrame(ws.OpPing, false, nil)}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "a ping of 126 bytes gets 1002", send: []ws.Frame{ws.NewPingFrame(make([]byte, 126))}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "a close frame of 1 byte gets 1002", send: []ws.Frame{ws.NewCloseFrame([]byte{3})}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "a close frame with code 1005 gets 1002", send: []ws.Frame{ws.NewCloseFrame(ws.NewCloseFrameBody(1005, ""))}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "a close frame with code 0 gets 1002", send: []ws.Frame{ws.NewCloseFrame([]byte{0, 0})}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "a close frame with code 5000 gets 1002", send: []ws.Frame{ws.NewCloseFrame(ws.NewCloseFrameBody(5000, ""))}, code: 1002, err: coopergobwas.ErrProtocol},
		{name: "a close reason that is not UTF-8 gets 1007", send: []ws.Frame{ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "\xff"))}, code: 1007, err: coopergobwas.ErrInvalidData},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p *cooper.DeflateParams
			var offer []httphead.Option
			if c.deflate {
				p, offer = &policy, []httphead.Option{wsflate.DefaultParameters.Option()}
			}
			s, r := rawTest(t, p, func(conn *coopergobwas.Conn) error {
				if c.limit > 0 {
					conn.SetReadLimit(c.limit)
				}
				_, _, err := conn.ReadMessage()
				return err
			}, offer...)
			for _, f := range c.send {
				if c.unmasked {
					ws.WriteFrame(r.conn, f)
				} else {
					r.send(f)
				}
			}
			start := time.Now()
			if got := r.closed(); got != c.code || !r.eof {
				t.Errorf("the server's close code = %d, then closed the connection: %v; want %d, true", got, r.eof, c.code)
			}
			o := s.outcome(t)
			if !errors.Is(o.err, c.err) {
				t.Errorf("ReadMessage returned %v, want %v", o.err, c.err)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("the server took %v to close the connection", d)
			}
		})
	}
}

// TestReadLimit checks that the read limit lets a message of its size
// through, and that SetReadLimit with n <= 0 removes it; TestFailures
// checks what a larger message gets.
func TestReadLimit(t *testing.T) {
	for _, c := range []struct {
		name  string
		limit int64 // given to SetReadLimit unless 1
		size  int
	}{
		{"without SetReadLimit a message of DefaultReadLimit bytes is read", 1, coopergobwas.DefaultReadLimit},
		{"SetReadLimit(0) lets a message over DefaultReadLimit through", 0, coopergobwas.DefaultReadLimit + 1},
		{"SetReadLimit(-1) lets a message over DefaultReadLimit through", -1, coopergobwas.DefaultReadLimit + 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, r := rawTest(t, nil, func(conn *coopergobwas.Conn) error {
				if c.limit != 1 {
					conn.SetReadLimit(c.limit)
				}
				_, p, err := conn.ReadMessage()
				if err == nil && len(p) != c.size {
					err = fmt.Errorf("read %d bytes, want %d", len(p), c.size)
				}
				return err
			})
			r.send(ws.NewBinaryFrame(make([]byte, c.size)))
			if err := s.outcome(t).err; err != nil {
				t.Errorf("ReadMessage = %v, want the message", err)
			}
		})
	}
}

// TestPongHandlerError checks that the pong handler's error ends reading.
func TestPongHandlerError(t *testing.T) {
	stop := errors.New("stop")
	s, r := rawTest(t, nil, func(c *coopergobwas.Conn) error {
		c.SetPongHandler(func(string) error { return stop })
		_, _, err := c.ReadMessage()
		return err
	})
	r.send(ws.NewPongFrame([]byte("unasked")))
	r.send(ws.NewTextFrame([]byte("not read")))
	if err := s.outcome(t).err; !errors.Is(err, stop) {
		t.Errorf("ReadMessage = %v, want the pong handler's error", err)
	}
}

// TestClose checks the closing handshake both ways.
func TestClose(t *testing.T) {
	t.Run("the client's close code and reason reach ReadMessage, and its code comes back", func(t *testing.T) {
		s, r := rawTest(t, nil, echo)
		r.send(ws.NewCloseFrame(ws.NewCloseFrameBody(4001, "bye ✓")))
		if got := r.closed(); got != 4001 {
			t.Errorf("the server's close code = %d, want 4001", got)
		}
		var closed wsutil.ClosedError
		if err := s.outcome(t).err; !errors.As(err, &closed) || closed.Code != 4001 || closed.Reason != "bye ✓" {
			t.Errorf("ReadMessage returned %v, want a ClosedError of 4001 \"bye ✓\"", err)
		}
	})
	t.Run("a close frame without a code is answered without one and read as 1005", func(t *testing.T) {
		s, r := rawTest(t, nil, echo)
		r.send(ws.NewCloseFrame(nil))
		if got := r.closed(); got != ws.StatusNoStatusRcvd {
			t.Errorf("the server's close code = %d, want none", got)
		}
		var closed wsutil.ClosedError
		if err := s.outcome(t).err; !errors.As(err, &closed) || closed.Code != 1005 {
			t.Errorf("ReadMessage returned %v, want a ClosedError of 1005", err)
		}
	})
	t.Run("CloseWith sends its code and reason and waits for the client's close frame", func(t *testing.T) {
		s := serve(t, nil, func(c *coopergobwas.Conn) error {
			if err := c.CloseWith(4002, "done here"); err != nil {
				return err
			}
			if err := c.WriteMessage(ws.OpText, []byte("late")); !errors.Is(err, coopergobwas.ErrCloseSent) {
				return fmt.Errorf("WriteMessage after CloseWith = %v, want ErrCloseSent", err)
			}
			if err := c.CloseWith(ws.StatusNormalClosure, ""); !errors.Is(err, coopergobwas.ErrCloseSent) {
				return fmt.Errorf("a second CloseWith = %v, want ErrCloseSent", err)
			}
			_, _, err := c.ReadMessage()
			return err
		})
		g := s.dialGorilla(t, false)
		_, _, err := g.ReadMessage() // gorilla answers the close frame with the same code
		if ce := (*gorilla.CloseError)(nil); !errors.As(err, &ce) || ce.Code != 4002 || ce.Text != "done here" {
			t.Errorf("gorilla read %v, want a close frame of 4002 \"done here\"", err)
		}
		var closed wsutil.ClosedError
		if err := s.outcome(t).err; !errors.As(err, &closed) || closed.Code != 4002 {
			t.Errorf("the server ended with %v, want the client's answer, 4002", err)
		}
	})
	t.Run("CloseWith while ReadMessage waits elsewhere ends that ReadMessage with the answer", func(t *testing.T) {
		closeErr := make(chan error, 1)
		s := serve(t, nil, func(c *coopergobwas.Conn) error {
			go func() {
				time.Sleep(50 * time.Millisecond) // ReadMessage below is waiting by then, or soon after
				closeErr <- c.CloseWith(ws.StatusGoingAway, "shutting down")
			}()
			_, _, err := c.ReadMessage()
			return err
		})
		g := s.dialGorilla(t, false)
		if _, _, err := g.ReadMessage(); !gorilla.IsCloseError(err, 1001) {
			t.Errorf("gorilla read %v, want a close frame of 1001", err)
		}
		var closed wsutil.ClosedError
		if err := s.outcome(t).err; !errors.As(err, &closed) || closed.Code != 1001 {
			t.Errorf("ReadMessage ended with %v, want the client's answer, 1001", err)
		}
		if err := <-closeErr; err != nil {
			t.Errorf("CloseWith = %v", err)
		}
	})
	t.Run("CloseWith refuses a code that may not be sent, and a long reason", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		c := coopergobwas.NewConn(b, nil)
		defer c.Close()
		for _, bad := range []struct {
			code   ws.StatusCode
			reason string
		}{{1005, ""}, {1006, ""}, {999, ""}, {5000, ""}, {1000, strings.Repeat("x", 124)}} {
			if err := c.CloseWith(bad.code, bad.reason); err == nil {
				t.Errorf("CloseWith(%d, %d bytes) = nil, want an error", bad.code, len(bad.reason))
			}
		}
	})
}

// TestWriteMessage checks the server's own pings and what WriteMessage
// refuses, and that pongs reach the pong handler.
func TestWriteMessage(t *testing.T) {
	pongs := make(chan string, 1)
	s := serve(t, nil, func(c *coopergobwas.Conn) error {
		for _, bad := range []struct {
			op ws.OpCode
			p  []byte
		}{{ws.OpClose, nil}, {ws.OpContinuation, nil}, {ws.OpPing, make([]byte, 126)}} {
			if err := c.WriteMessage(bad.op, bad.p); err == nil {
				return fmt.Errorf("WriteMessage(%d, %d bytes) = nil, want an error", bad.op, len(bad.p))
			}
		}
		c.SetPongHandler(func(p string) error { pongs <- p; return nil })
		if err := c.WriteMessage(ws.OpPing, []byte("ping?")); err != nil {
			return err
		}
		_, _, err := c.ReadMessage()
		return err
	})
	g := s.dialGorilla(t, false)
	pinged := make(chan string, 1)
	g.SetPingHandler(func(p string) error {
		pinged <- p
		return g.WriteControl(gorilla.PongMessage, []byte(p), time.Now().Add(5*time.Second))
	})
	go g.ReadMessage() // runs the ping handler; ends when the connection does
	if p := testkit.RecvWithin(t, pinged, 10*time.Second, "ping"); p != "ping?" {
		t.Errorf("gorilla was pinged with %q, want \"ping?\"", p)
	}
	if p := testkit.RecvWithin(t, pongs, 10*time.Second, "pong handler call"); p != "ping?" {
		t.Errorf("the pong handler got %q, want \"ping?\"", p)
	}
	g.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, ""), time.Now().Add(5*time.Second))
	if err := s.outcome(t).err; !errors.As(err, new(wsutil.ClosedError)) {
		t.Errorf("ReadMessage ended with %v, want the client's close", err)
	}
}

// TestReadAfterError checks that an error ends reading for good.
func TestReadAfterError(t *testing.T) {
	s, r := rawTest(t, nil, func(c *coopergobwas.Conn) error {
		_, _, first := c.ReadMessage()
		if _, _, again := c.ReadMessage(); again != first {
			return fmt.Errorf("a second ReadMessage returned %v after %v", again, first)
		}
		return first
	})
	r.send(ws.NewTextFrame([]byte("\xff")))
	r.closed()
	if err := s.outcome(t).err; !errors.Is(err, coopergobwas.ErrInvalidData) {
		t.Errorf("ReadMessage = %v, want ErrInvalidData", err)
	}
}

// TestReadDeadline checks that a read deadline passing ends ReadMessage
// but leaves the connection open, so that CloseWith still sends its close
// frame.
func TestReadDeadline(t *testing.T) {
	ended := make(chan error, 1)
	ts := testkit.Serve(t, nil, func(u *cooper.Upgrader) http.Handler {
		return u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			c := coopergobwas.NewConn(conn, hs)
			defer c.Close()
			conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, _, err := c.ReadMessage(); !errors.Is(err, os.ErrDeadlineExceeded) {
				ended <- fmt.Errorf("ReadMessage = %v, want the deadline", err)
				return
			}
			ended <- c.CloseWith(ws.StatusGoingAway, "idle")
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := dialRaw(ctx, "ws"+strings.TrimPrefix(ts.URL, "http"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.closed(); got != ws.StatusGoingAway {
		t.Errorf("the server's close code = %d, want 1001", got)
	}
	if err := testkit.RecvWithin(t, ended, 10*time.Second, "end of the handler"); err != nil {
		t.Error(err)
	}
}

// TestConcurrentWrites has several goroutines write while the handler
// reads and answers the client's pings: every message arrives whole, and
// the race detector sees the Conn's locking.
func TestConcurrentWrites(t *testing.T) {
	const writers, each = 4, 50
	s := serve(t, &policy, func(c *coopergobwas.Conn) error {
		errs := make(chan error, writers)
		for w := range writers {
			go func() {
				for i := range each {
					msg := fmt.Sprintf("writer %d, message %d, %s", w, i, strings.Repeat("x", i*100))
					if err := c.WriteMessage(ws.OpText, []byte(msg)); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		_, _, err := c.ReadMessage() // answers pings until the client closes
		for range writers {
			if werr := <-errs; werr != nil {
				return werr
			}
		}
		return err
	})
	g := s.dialGorilla(t, true)
	g.SetReadDeadline(time.Now().Add(20 * time.Second))
	pongs := 0
	g.SetPongHandler(func(string) error { pongs++; return nil })
	next := make([]int, writers)
	for range writers * each {
		g.WriteControl(gorilla.PingMessage, []byte("ping"), time.Now().Add(5*time.Second))
		_, p, err := g.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var w, i int
		if _, err := fmt.Sscanf(string(p), "writer %d, message %d,", &w, &i); err != nil || i != next[w] || len(p) != len(fmt.Sprintf("writer %d, message %d, ", w, i))+i*100 {
			t.Fatalf("got %.40q… (%d bytes), want writer %d's message %d", p, len(p), w, next[w])
		}
		next[w]++
	}
	g.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(1000, ""), time.Now().Add(5*time.Second))
	for {
		if _, _, err := g.ReadMessage(); err != nil {
			break // the pongs for the last pings, then the close
		}
	}
	if pongs == 0 {
		t.Error("no ping was answered")
	}
	if err := s.outcome(t).err; !errors.As(err, new(wsutil.ClosedError)) {
		t.Errorf("the handler ended with %v, want the client's close", err)
	}
}

// A wire is a connection in memory: reads return in's bytes, then io.EOF, so
// that no read waits and reading always ends; writes go to out. After Close
// both fail with net.ErrClosed. Deadlines change nothing, as nothing waits.
type wire struct {
	in     bytes.Reader
	out    bytes.Buffer
	closed bool
}

func (w *wire) Read(p []byte) (int, error) {
	if w.closed {
		return 0, net.ErrClosed
	}
	return w.in.Read(p)
}

func (w *wire) Write(p []byte) (int, error) {
	if w.closed {
		return 0, net.ErrClosed
	}
	return w.out.Write(p)
}

func (w *wire) Close() error                     { w.closed = true; return nil }
func (w *wire) LocalAddr() net.Addr              { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (w *wire) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }
func (w *wire) SetDeadline(time.Time) error      { return nil }
func (w *wire) SetReadDeadline(time.Time) error  { return nil }
func (w *wire) SetWriteDeadline(time.Time) error { return nil }

// A message is one ReadMessage returned.
type message struct {
	op ws.OpCode
	p  []byte
}

// A reading is what reading a client's bytes came to: the messages, the
// payloads of the pings and the pongs, and the error that ended it.
type reading struct {
	msgs         []message
	pings, pongs [][]byte
	err          error
}

// sendable are the close codes below 3000 a close frame may carry: RFC
// 6455, section 7.4.1, and IANA's registry (1012-1014); read-only.
var sendable = []ws.StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}

// reference reads in as RFC 6455 (sections 5.2 to 5.5 and 7.4) and RFC 7692
// (sections 6 and 7.2) say a server must, slowly and plainly: frame by frame
// from the start of a byte slice, a frame's header checked before its
// length is held against limit (> 0), and each compressed message
// decompressed after all the ones before it unless the client takes no
// context over.
func reference(in []byte, deflate *cooper.DeflateParams, limit int64) (r reading) {
	var window, msg []byte
	op, compressed := ws.OpCode(0), false // the message's, from its first frame
	for {
		if len(in) == 0 {
			r.err = io.EOF
			if op != 0 { // within a message, whose last frame never came
				r.err = io.ErrUnexpectedEOF
			}
			return r
		}
		header, length := 2, uint64(0)
		if len(in) >= 2 {
			length = uint64(in[1] & 0x7f)
			header += map[uint64]int{126: 2, 127: 8}[length] + 4*int(in[1]>>7)
		}
		if len(in) < header {
			r.err = io.ErrUnexpectedEOF
			return r
		}
		fin, rsv1, rsv23, opcode, masked := in[0]&0x80 != 0, in[0]&0x40 != 0, in[0]&0x30 != 0, ws.OpCode(in[0]&0x0f), in[1]&0x80 != 0
		switch length {
		case 126:
			length = uint64(binary.BigEndian.Uint16(in[2:]))
		case 127:
			length = binary.BigEndian.Uint64(in[2:])
		}
		control := opcode >= 8
		switch {
		case length >= 1<<63, 3 <= opcode && opcode <= 7, opcode >= 11, control && (length > 125 || !fin), !masked,
			op != 0 && !control && opcode != 0, op == 0 && opcode == 0, rsv23, rsv1 && (deflate == nil || control || opcode == 0):
			r.err = coopergobwas.ErrProtocol
			return r
		case !control && uint64(len(msg))+length > uint64(limit):
			r.err = coopergobwas.ErrReadLimit
			return r
		case uint64(len(in)-header) < length:
			r.err = io.ErrUnexpectedEOF
			return r
		}
		payload, key := make([]byte, length), in[header-4:header]
		for i := range payload {
			payload[i] = in[header+i] ^ key[i%4]
		}
		in = in[header+len(payload):]
		switch opcode {
		case ws.OpPing:
			r.pings = append(r.pings, payload)
			continue
		case ws.OpPong:
			r.pongs = append(r.pongs, payload)
			continue
		case ws.OpClose:
			r.err = closing(payload)
			return r
		}
		if op == 0 {
			op, compressed = opcode, rsv1
		}
		if msg = append(msg, payload...); !fin {
			continue
		}
		p := msg
		if compressed {
			var err error
			if p, err = io.ReadAll(io.LimitReader(inflater(msg, window), limit+1)); err != nil {
				r.err = coopergobwas.ErrInvalidData
				return r
			} else if int64(len(p)) > limit {
				r.err = coopergobwas.ErrReadLimit
				return r
			}
			if !deflate.ClientNoContextTakeover {
				window = append(window, p...) // compress/flate keeps the last 32 KiB
			}
		}
		if op == ws.OpText && !utf8.Valid(p) {
			r.err = coopergobwas.ErrInvalidData
			return r
		}
		r.msgs = append(r.msgs, message{op, p})
		op, compressed, msg = 0, false, nil
	}
}

// closing returns the error a close frame with payload p ends reading
// with (RFC 6455, sections 5.5.1 and 7.4).
func closing(p []byte) error {
	if len(p) == 0 {
		return wsutil.ClosedError{Code: ws.StatusNoStatusRcvd}
	} else if len(p) == 1 {
		return coopergobwas.ErrProtocol
	}
	code, reason := ws.StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])
	switch {
	case !slices.Contains(sendable, code) && (code < 3000 || code > 4999):
		return coopergobwas.ErrProtocol
	case !utf8.ValidString(reason):
		return coopergobwas.ErrInvalidData
	}
	return wsutil.ClosedError{Code: code, Reason: reason}
}

// ending is how ReadMessage's doc says reading ends with err: with the
// close code the Conn sends (0: it sends none) and whether it closes the
// connection; documented is false for an error the doc does not name.
func ending(err error) (code ws.StatusCode, closes, documented bool) {
	var closed wsutil.ClosedError
	switch {
	case errors.Is(err, coopergobwas.ErrProtocol):
		return ws.StatusProtocolError, true, true
	case errors.Is(err, coopergobwas.ErrInvalidData):
		return ws.StatusInvalidFramePayloadData, true, true
	case errors.Is(err, coopergobwas.ErrReadLimit):
		return ws.StatusMessageTooBig, true, true
	case errors.As(err, &closed):
		return closed.Code, true, true
	case err == io.EOF || err == io.ErrUnexpectedEOF: // the connection's, which the wire ends with
		return 0, false, true
	}
	return 0, false, false
}

// sameEnd reports whether ReadMessage's error is the reference's.
func sameEnd(got, want error) bool {
	var closed wsutil.ClosedError
	if errors.As(want, &closed) {
		return errors.As(got, &closed) && closed == want
	}
	return errors.Is(got, want) && (want != io.EOF && want != io.ErrUnexpectedEOF || got == want)
}

// readAll reads in as a client's bytes through a Conn configured with
// deflate and limit (0: the default) until ReadMessage fails, checks what
// the doc promises of every message, of the error and of the frames the
// Conn sent, and compares all with reference.
func readAll(t *testing.T, in []byte, deflate *cooper.DeflateParams, limit int64) {
	w := &wire{}
	w.in.Reset(in)
	c := coopergobwas.NewConn(w, &cooper.Handshake{Deflate: deflate})
	if limit != 0 {
		c.SetReadLimit(limit)
	}
	limit = cmp.Or(limit, coopergobwas.DefaultReadLimit)
	var got reading
	c.SetPongHandler(func(p string) error { got.pongs = append(got.pongs, []byte(p)); return nil })
	for {
		op, p, err := c.ReadMessage()
		if err != nil {
			got.err = err
			break
		}
		if len(got.msgs) == len(in)/6 { // a message takes a masked frame's header at least: 6 bytes
			t.Fatalf("ReadMessage returned more messages than %d bytes hold", len(in))
		}
		if op != ws.OpText && op != ws.OpBinary || int64(len(p)) > limit || op == ws.OpText && !utf8.Valid(p) {
			t.Errorf("ReadMessage returned opcode %d with %d bytes (UTF-8: %v); want text in UTF-8 or binary, %d bytes at most", op, len(p), utf8.Valid(p), limit)
		}
		got.msgs = append(got.msgs, message{op, p})
	}
	if op, p, err := c.ReadMessage(); op != 0 || p != nil || err != got.err {
		t.Errorf("after %v, ReadMessage = %d, %q, %v; want the same error", got.err, op, p, err)
	}
	code, closes, documented := ending(got.err)
	if !documented {
		t.Errorf("ReadMessage returned %v, which its doc does not name", got.err)
	}
	if w.closed != closes {
		t.Errorf("after %v the connection was closed: %v, want %v", got.err, w.closed, closes)
	}
	sent := bytes.NewReader(w.out.Bytes())
	var pongs [][]byte
	for sent.Len() > 0 {
		f, err := ws.ReadFrame(sent)
		if h := f.Header; err != nil || h.Masked || !h.Fin || h.Rsv != 0 || h.Length > 125 || h.OpCode != ws.OpPong && h.OpCode != ws.OpClose {
			t.Fatalf("the Conn sent %+v, %v; want a pong or close frame, final, unmasked, without RSV bits, of 125 bytes at most", h, err)
		}
		if f.Header.OpCode == ws.OpPong {
			pongs = append(pongs, f.Payload)
			continue
		}
		sentCode, reason := ws.StatusNoStatusRcvd, ""
		if len(f.Payload) > 0 {
			sentCode, reason = ws.ParseCloseFrameData(f.Payload)
		}
		var closed wsutil.ClosedError
		if sentCode != code || len(f.Payload) == 1 || sent.Len() > 0 || !utf8.ValidString(reason) || errors.As(got.err, &closed) && reason != "" {
			t.Errorf("after %v the Conn sent a close frame %q with %d bytes after it; want code %d, a reason in UTF-8 (none for the peer's close) and nothing after it", got.err, f.Payload, sent.Len(), code)
		}
		code = 0
	}
	if code != 0 {
		t.Errorf("after %v the Conn sent no close frame, want code %d", got.err, code)
	}

	want := reference(in, deflate, limit)
	if !sameEnd(got.err, want.err) {
		t.Errorf("ReadMessage ended with %v, want %v", got.err, want.err)
	}
	for i := range max(len(got.msgs), len(want.msgs)) {
		if i >= len(got.msgs) || i >= len(want.msgs) || got.msgs[i].op != want.msgs[i].op || !bytes.Equal(got.msgs[i].p, want.msgs[i].p) {
			t.Fatalf("ReadMessage returned %d messages, want %d; message %d: %+.100q, want %+.100q", len(got.msgs), len(want.msgs), i, got.msgs[i:min(i+1, len(got.msgs))], want.msgs[i:min(i+1, len(want.msgs))])
		}
	}
	if !slices.EqualFunc(pongs, want.pings, bytes.Equal) || !slices.EqualFunc(got.pongs, want.pongs, bytes.Equal) {
		t.Errorf("the Conn answered with pongs %q and passed on pongs %q; the client sent pings %q and pongs %q", pongs, got.pongs, want.pings, want.pongs)
	}
}

// clientFrame returns a frame as a client sends it: masked with key, with
// RSV1 if compressed.
func clientFrame(op ws.OpCode, fin, compressed bool, p string, key [4]byte) []byte {
	f := ws.NewFrame(op, fin, []byte(p))
	f.Header.Rsv = ws.Rsv(compressed, false, false)
	b, _ := ws.CompileFrame(ws.MaskFrameInPlaceWith(f, key)) // a valid header: never an error
	return b
}

// FuzzReadMessage feeds arbitrary bytes as what a client sent to a Conn
// without permessage-deflate, with it, and with client_no_context_takeover,
// each under a read limit of 64 bytes, which short inputs cross, and the
// default, and checks what ReadMessage's doc promises and that a plain
// reading of the RFCs agrees on the messages, the pongs, and the error.
func FuzzReadMessage(f *testing.F) {
	// A key of zeros leaves payloads as they are, for the mutator to change
	// codes and lengths in; one message is masked with another key.
	part := func(op ws.OpCode, fin, compressed bool, p string) []byte {
		return clientFrame(op, fin, compressed, p, [4]byte{})
	}
	frame := func(op ws.OpCode, p string) []byte { return part(op, true, false, p) }
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	bye := frame(ws.OpClose, string(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye ✓")))
	// Unlike newDeflater's BestSpeed, DefaultCompression refers back in
	// messages under 128 bytes, such as phrase: the second to the first.
	d := &deflater{}
	d.w, _ = flate.NewWriter(&d.buf, flate.DefaultCompression)
	kept := join(part(ws.OpText, true, true, string(d.compress([]byte(phrase)))), part(ws.OpText, true, true, string(d.compress([]byte(phrase)))))
	alone := part(ws.OpBinary, true, true, string(newDeflater().compress([]byte(phrase))))
	split := string(newDeflater().compress([]byte(phrase)))
	for _, seed := range [][]byte{
		nil,
		join(frame(ws.OpText, "hello, cooper ✓"), frame(ws.OpBinary, "\x00\x01\xfe\xff"), frame(ws.OpText, ""), bye),
		join(clientFrame(ws.OpText, false, false, "caf\xc3", key), clientFrame(ws.OpPing, true, false, "between", key),
			clientFrame(ws.OpContinuation, false, false, "\xa9 ", key), clientFrame(ws.OpContinuation, true, false, "au lait", key), frame(ws.OpClose, "")),
		join(frame(ws.OpPing, "are you there?"), frame(ws.OpPong, "unasked"), frame(ws.OpClose, string(ws.NewCloseFrameBody(4001, "")))),
		join(kept, bye),
		join(alone, alone, bye),
		join(part(ws.OpText, false, true, split[:10]), frame(ws.OpPing, ""), part(ws.OpContinuation, true, false, split[10:]), bye),
		part(ws.OpBinary, true, true, string(newDeflater().compress(make([]byte, 2000)))), // over 64 bytes once decompressed, and 1 KiB
		frame(ws.OpBinary, string(make([]byte, 1025))),                                    // over 64 bytes as sent, and 1 KiB
		join(frame(ws.OpText, "hello"), frame(ws.OpText, "\xff")),
		frame(ws.OpText, "hello")[:8],
		frame(ws.OpText, "hello")[:1],
		part(ws.OpText, false, false, "a message whose last frame never comes"),
		join(part(ws.OpBinary, false, false, string(random(30))), part(ws.OpContinuation, false, false, string(random(30))),
			part(ws.OpContinuation, true, false, string(random(30)))), // fragments under 64 bytes, over it together
		frame(ws.OpClose, "\x03"),
		frame(ws.OpClose, string(ws.NewCloseFrameBody(1004, ""))), // reserved
		frame(ws.OpClose, string(ws.NewCloseFrameBody(ws.StatusNoStatusRcvd, ""))),
		frame(ws.OpClose, string(ws.NewCloseFrameBody(ws.StatusNormalClosure, "\xff"))),
		frame(3, ""),
		part(ws.OpText, true, true, "\xff\xff\xff\xff"),
		{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, // a length with its most significant bit set
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},               // unmasked
	} {
		f.Add(seed)
	}
	deflates := []struct {
		name   string
		params *cooper.DeflateParams
	}{
		{"without permessage-deflate", nil},
		{"with context takeover", &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"with client_no_context_takeover", &cooper.DeflateParams{ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, d := range deflates {
			for _, limit := range []int64{64, 0} {
				t.Run(fmt.Sprintf("%s, read limit %d", d.name, limit), func(t *testing.T) { readAll(t, in, d.params, limit) })
			}
		}
	})
}

// loopback returns the two ends of a TCP connection on the loopback
// interface, closed when the test ends.
func loopback(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	if server, err = ln.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}

// TestReadMessageAllocs holds ReadMessage to its allocations for a small
// message in one frame: gobwas/ws's header, the reader of the payload,
// and the message, which the caller keeps.
func TestReadMessageAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under coverage or the race detector")
	}
	const runs, budget = 100, 3
	server, client := loopback(t)
	var frames bytes.Buffer // runs+1 frames: AllocsPerRun reads one more first
	for range runs + 1 {
		ws.WriteFrame(&frames, ws.MaskFrameInPlace(ws.NewBinaryFrame(random(128))))
	}
	if _, err := client.Write(frames.Bytes()); err != nil { // a few KiB: the socket's buffers hold them
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	c := coopergobwas.NewConn(server, nil)
	allocs := testing.AllocsPerRun(runs, func() {
		if _, p, err := c.ReadMessage(); err != nil || len(p) != 128 {
			t.Fatalf("ReadMessage: %d bytes, %v; want 128", len(p), err)
		}
	})
	if allocs > budget {
		t.Errorf("ReadMessage of 128 bytes: %.0f allocations, want at most %d", allocs, budget)
	}
}

// TestReadMessageLyingLength checks that a frame header announcing more
// than comes does not make ReadMessage allocate what it announces, under
// the default limit or with none, in a message's first frame or in a
// continuation: the message grows as bytes come.
func TestReadMessageLyingLength(t *testing.T) {
	first := ws.Header{OpCode: ws.OpBinary, Length: 10, Masked: true, Mask: [4]byte{1, 2, 3, 4}}
	for _, tc := range []struct {
		name  string
		limit int64
		heads []ws.Header // each followed by ten bytes
	}{
		{"a frame announcing DefaultReadLimit", coopergobwas.DefaultReadLimit,
			[]ws.Header{{Fin: true, OpCode: ws.OpBinary, Length: coopergobwas.DefaultReadLimit, Masked: true}}},
		{"a frame announcing 2^62 bytes with no limit", 0,
			[]ws.Header{{Fin: true, OpCode: ws.OpBinary, Length: 1 << 62, Masked: true}}},
		{"a continuation announcing 2^62 bytes with no limit", 0,
			[]ws.Header{first, {Fin: true, OpCode: ws.OpContinuation, Length: 1 << 62, Masked: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, client := loopback(t)
			for _, h := range tc.heads {
				if err := ws.WriteHeader(client, h); err != nil {
					t.Fatal(err)
				}
				if _, err := client.Write([]byte("ten bytes.")); err != nil {
					t.Fatal(err)
				}
			}
			server.SetReadDeadline(time.Now().Add(500 * time.Millisecond)) // ends the read the missing bytes would
			c := coopergobwas.NewConn(server, nil)
			c.SetReadLimit(tc.limit)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, err := c.ReadMessage()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("ReadMessage: %v, want the read deadline's error", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
				t.Errorf("ReadMessage allocated %d bytes for a frame announcing %d of which 10 came; want at most 64 KiB", n, tc.heads[len(tc.heads)-1].Length)
			}
		})
	}
}

// BenchmarkEcho measures a message's round trip through an echo on Conn
// over loopback, from a raw client: small and 64 KiB, with and without
// compression (the server compresses; the client sends uncompressed, or,
// in the -both cases, compressed with context takeover).
func BenchmarkEcho(b *testing.B) {
	for _, c := range []struct {
		name          string
		deflate, both bool
		size          int
	}{
		{"128B", false, false, 128}, {"128B-deflate", true, false, 128}, {"128B-deflate-both", true, true, 128},
		{"64KiB", false, false, 64 << 10}, {"64KiB-deflate", true, false, 64 << 10}, {"64KiB-deflate-both", true, true, 64 << 10},
	} {
		b.Run(c.name, func(b *testing.B) {
			var p *cooper.DeflateParams
			var offer []httphead.Option
			if c.deflate {
				p, offer = &policy, []httphead.Option{wsflate.Parameters{}.Option()}
			}
			s := serve(b, p, echo)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			r, err := dialRaw(ctx, s.url, offer...)
			if err != nil {
				b.Fatal(err)
			}
			defer r.conn.Close()
			msg := []byte(strings.Repeat(phrase, c.size/len(phrase)+1)[:c.size])
			d := newDeflater()
			b.SetBytes(int64(c.size))
			b.ReportAllocs()
			for b.Loop() {
				f := ws.NewBinaryFrame(bytes.Clone(msg))
				if c.both {
					f = ws.NewBinaryFrame(d.compress(msg))
					f.Header.Rsv = ws.Rsv(true, false, false)
				}
				if err := r.send(f); err != nil {
					b.Fatal(err)
				}
				if _, err := r.readFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
