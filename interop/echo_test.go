package interop

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergobwas"
	"lowbit.dev/cooper/internal/testkit"
	"lowbit.dev/cooper/internal/testkit/wsclient"
)

// Server policies for permessage-deflate: what the echo's framing layer,
// coopergobwas, does. contextTakeover is the policy it exports: both sides
// keep their windows across messages unless the client asks otherwise;
// noContextTakeover makes every message stand alone both ways;
// noServerContextTakeover and noClientContextTakeover, one way only.
var (
	contextTakeover         = coopergobwas.Deflate()
	noContextTakeover       = cooper.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true}
	noServerContextTakeover = cooper.DeflateParams{ServerNoContextTakeover: true}
	noClientContextTakeover = cooper.DeflateParams{ClientNoContextTakeover: true}
)

// maxMessage bounds the messages the echo accepts, so a client that goes
// wrong cannot make it buffer without end.
const maxMessage = 8 << 20

// An echoServer is a cooper WebSocket endpoint. Its handler echoes every
// message, framed by coopergobwas and compressed as the Handshake's Deflate
// says, and reports what it saw on reports when the connection ends.
type echoServer struct {
	*httptest.Server // set by startEcho
	handler          http.Handler
	u                *cooper.Upgrader
	reports          chan *echoReport
}

// An echoReport is what the echo saw on one connection. The counts of
// compressed messages, and the messages received and sent, come from the
// frames on the wire, not from the framing layer.
type echoReport struct {
	hs             *cooper.Handshake
	replayed       bool          // the connection replayed bytes the client sent with its request
	messages       int           // data messages echoed
	compressed     int           // messages that came with RSV1 set: compressed
	sentCompressed int           // messages the echo sent with RSV1 set
	received, sent []wireMessage // the data messages each way, in order
	closeCode      ws.StatusCode // the code of the client's close frame (1005: none); 0 if none came
	err            error         // why the connection ended, when not by a close frame
}

// newEcho returns an echo endpoint upgraded by a cooper.Upgrader accepting
// "websocket" and configured further by opts. The test's cleanup shuts the
// Upgrader down.
func newEcho(t *testing.T, opts ...cooper.Option) *echoServer {
	t.Helper()
	u := cooper.New(append([]cooper.Option{cooper.Protocols("websocket")}, opts...)...)
	e := &echoServer{u: u, reports: make(chan *echoReport, 16)}
	e.handler = u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		e.reports <- echo(conn, hs)
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := u.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return e
}

// startEcho starts newEcho's endpoint at every path of a fresh loopback
// server, which the test's cleanup closes.
func startEcho(t *testing.T, opts ...cooper.Option) *echoServer {
	t.Helper()
	e := newEcho(t, opts...)
	e.Server = httptest.NewUnstartedServer(e.handler)
	e.Config.ReadHeaderTimeout = 10 * time.Second
	e.Start()
	t.Cleanup(e.Close)
	return e
}

// wsURL returns the server's URL with the ws scheme and path.
func (e *echoServer) wsURL(path string) string {
	return "ws" + strings.TrimPrefix(e.URL, "http") + path
}

// report waits for the report of the next connection that ends.
func (e *echoServer) report(t *testing.T) *echoReport {
	t.Helper()
	return testkit.RecvWithin(t, e.reports, 10*time.Second, "connection ended on the server")
}

// echo runs a WebSocket echo on conn, framed by coopergobwas as hs says,
// until the client closes it or breaks the protocol: it echoes each message
// with its type, and coopergobwas answers a close frame with the same
// code. A tap on conn follows the messages each way on the wire.
func echo(conn net.Conn, hs *cooper.Handshake) *echoReport {
	_, replayed := conn.(interface{ NetConn() net.Conn })
	r := &echoReport{hs: hs, replayed: replayed}
	tap := &tap{Conn: conn}
	c := coopergobwas.NewConn(tap, hs)
	defer c.Close()
	c.SetReadLimit(maxMessage)
	for {
		op, data, err := c.ReadMessage()
		if err == nil {
			if err = c.WriteMessage(op, data); err == nil {
				r.messages++
				continue
			}
		}
		var closed wsutil.ClosedError
		if errors.As(err, &closed) {
			r.closeCode = closed.Code
		} else {
			r.err = err
		}
		r.received, r.sent = tap.in.messages, tap.out.messages
		r.compressed, r.sentCompressed = tap.in.compressed(), tap.out.compressed()
		return r
	}
}

// A tap is a connection that follows the frames read and written through
// it (RFC 6455, section 5.2).
type tap struct {
	net.Conn
	in, out frameCounter
}

func (t *tap) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	t.in.scan(p[:n])
	return n, err
}

func (t *tap) Write(p []byte) (int, error) {
	n, err := t.Conn.Write(p)
	t.out.scan(p[:n])
	return n, err
}

// A frameCounter follows a stream of frames and notes each data message.
type frameCounter struct {
	header   []byte // the frame header read so far
	skip     int64  // payload bytes of the frame still to come
	messages []wireMessage
}

// A wireMessage is a data message as it went over the wire.
type wireMessage struct {
	length     int64 // payload bytes, over all its frames
	compressed bool  // RSV1 on its first frame (RFC 7692, section 6)
}

// compressed returns how many of the messages came compressed.
func (f *frameCounter) compressed() int {
	n := 0
	for _, m := range f.messages {
		if m.compressed {
			n++
		}
	}
	return n
}

func (f *frameCounter) scan(p []byte) {
	for len(p) > 0 {
		if f.skip > 0 {
			n := min(f.skip, int64(len(p)))
			f.skip, p = f.skip-n, p[n:]
			continue
		}
		f.header, p = append(f.header, p[0]), p[1:]
		if len(f.header) < 2 || len(f.header) < headerSize(f.header) {
			continue
		}
		h, _ := ws.ReadHeader(bytes.NewReader(f.header)) // complete: no error
		f.header, f.skip = f.header[:0], h.Length
		switch {
		case h.OpCode == ws.OpText || h.OpCode == ws.OpBinary:
			f.messages = append(f.messages, wireMessage{length: h.Length, compressed: h.Rsv1()})
		case h.OpCode == ws.OpContinuation && len(f.messages) > 0:
			f.messages[len(f.messages)-1].length += h.Length
		}
	}
}

// headerSize returns the size of the frame header that starts with b[:2].
func headerSize(b []byte) int {
	n := map[byte]int{126: 4, 127: 10}[b[1]&0x7f]
	if n == 0 {
		n = 2
	}
	if b[1]&0x80 != 0 {
		n += 4 // the mask
	}
	return n
}

// A peer is the client's end of a WebSocket connection (RFC 6455, section
// 5), framed with gobwas/ws: it masks the frames it sends, and those it
// receives must not be masked. With permessage-deflate agreed it
// compresses and decompresses as the agreed parameters say (RFC 7692,
// section 7): a side's window carries over between messages unless no
// context takeover was agreed for it.
type peer struct {
	conn   net.Conn
	r      *bufio.Reader
	in     inflater
	out    deflater
	agreed bool // permessage-deflate was agreed
}

// newPeer returns the client's peer on conn, compressing as deflate says,
// or not at all when it is nil.
func newPeer(conn net.Conn, deflate *cooper.DeflateParams) *peer {
	p := &peer{conn: conn, r: bufio.NewReader(conn), agreed: deflate != nil}
	if deflate != nil {
		p.out.takeover, p.in.takeover = !deflate.ClientNoContextTakeover, !deflate.ServerNoContextTakeover
	}
	return p
}

// read returns the next data message, reassembled from its fragments and
// decompressed, or the payload of a close frame with op ws.OpClose. It
// answers pings on the way.
func (p *peer) read() (op ws.OpCode, data []byte, err error) {
	var msg []byte
	var compressed bool
	for {
		h, err := ws.ReadHeader(p.r)
		if err != nil {
			return 0, nil, err
		}
		if h.Masked {
			return 0, nil, errors.New("a masked frame from the server")
		}
		if h.Length > maxMessage-int64(len(msg)) {
			return 0, nil, fmt.Errorf("a message of more than %d bytes", maxMessage)
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(p.r, payload); err != nil {
			return 0, nil, err
		}
		switch h.OpCode {
		case ws.OpPing:
			if err := p.writeFrame(ws.OpPong, false, payload); err != nil {
				return 0, nil, err
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			return ws.OpClose, payload, nil
		case ws.OpText, ws.OpBinary:
			if msg != nil {
				return 0, nil, errors.New("a new message began before the last one ended")
			}
			op, msg = h.OpCode, payload
			compressed = h.Rsv1()
			if compressed && !p.agreed {
				return 0, nil, errors.New("a compressed message without permessage-deflate")
			}
		case ws.OpContinuation:
			if msg == nil {
				return 0, nil, errors.New("a continuation frame without a message")
			}
			msg = append(msg, payload...)
		default:
			return 0, nil, fmt.Errorf("unknown opcode %v", h.OpCode)
		}
		if !h.Fin {
			continue
		}
		if compressed {
			if msg, err = p.in.decompress(msg); err != nil {
				return 0, nil, err
			}
		}
		if op == ws.OpText && !utf8.Valid(msg) {
			return 0, nil, errors.New("a text message that is not UTF-8")
		}
		return op, msg, nil
	}
}

// write sends data as one message of type op, compressed when
// permessage-deflate was agreed.
func (p *peer) write(op ws.OpCode, data []byte) error {
	if p.agreed {
		var err error
		if data, err = p.out.compress(data); err != nil {
			return err
		}
	}
	return p.writeFrame(op, p.agreed, data)
}

// writeClose sends a close frame with code and reason.
func (p *peer) writeClose(code ws.StatusCode, reason string) error {
	return p.writeFrame(ws.OpClose, false, ws.NewCloseFrameBody(code, reason))
}

// writeFrame writes one final frame, masked, with RSV1 set when
// compressed.
func (p *peer) writeFrame(op ws.OpCode, compressed bool, payload []byte) error {
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload)), Masked: true, Mask: ws.NewMask()}
	if compressed {
		h.Rsv = ws.Rsv(true, false, false)
	}
	payload = bytes.Clone(payload)
	ws.Cipher(payload, h.Mask, 0)
	if err := ws.WriteHeader(p.conn, h); err != nil {
		return err
	}
	_, err := p.conn.Write(payload)
	return err
}

// deflateTail ends every compressed message before RFC 7692, section 7.2.1
// strips it; inflateTail is put back to read one message, followed by an
// empty final block so the reader stops there.
const (
	deflateTail = "\x00\x00\xff\xff"
	inflateTail = deflateTail + "\x01\x00\x00\xff\xff"
)

// A deflater compresses messages; with takeover its window carries over
// from one message to the next.
type deflater struct {
	takeover bool
	w        *flate.Writer
	buf      bytes.Buffer
}

// compress returns the compressed form of p as one message.
func (d *deflater) compress(p []byte) ([]byte, error) {
	d.buf.Reset()
	switch {
	case d.w == nil:
		w, err := flate.NewWriter(&d.buf, flate.BestSpeed)
		if err != nil {
			return nil, err
		}
		d.w = w
	case !d.takeover:
		d.w.Reset(&d.buf)
	}
	if _, err := d.w.Write(p); err != nil {
		return nil, err
	}
	if err := d.w.Flush(); err != nil {
		return nil, err
	}
	b, ok := bytes.CutSuffix(d.buf.Bytes(), []byte(deflateTail))
	if !ok {
		return nil, errors.New("a sync flush that does not end in 00 00 ff ff")
	}
	return bytes.Clone(b), nil
}

// An inflater decompresses messages; with takeover, the window the next
// message may refer back to is the end of the ones before it.
type inflater struct {
	takeover bool
	window   []byte
}

// decompress returns the message p decompresses to.
func (f *inflater) decompress(p []byte) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(p), strings.NewReader(inflateTail))
	r := flate.NewReaderDict(src, f.window)
	out, err := io.ReadAll(io.LimitReader(r, maxMessage+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing a message: %w", err)
	}
	if len(out) > maxMessage {
		return nil, fmt.Errorf("a message decompresses to more than %d bytes", maxMessage)
	}
	if f.takeover {
		const window = 1 << 15
		f.window = append(f.window, out...)
		if len(f.window) > window {
			f.window = append(f.window[:0], f.window[len(f.window)-window:]...)
		}
	}
	return out, nil
}

// exchange is what every client sends and expects back: text and binary,
// small and large (1 MiB and more), compressible and not, so a compressed
// connection sends some messages compressed whatever its threshold. The
// last message repeats the one before it, text that deflate shrinks only
// against itself: with context takeover its compressed form refers back
// into that message, which a peer that reset its window where it should
// not cannot decompress, and is a fraction of its size; without, the two
// are compressed alike (checkTakeover). At 1200 bytes they are over the
// 1024 below which the npm ws package does not compress, and within the
// 1786 bytes an 11-bit zlib window reaches back.
func exchange() []wsclient.Message {
	random := make([]byte, 1<<20+3)
	var x uint32 = 2463534242 // xorshift: the same bytes every run, which deflate cannot shrink
	for i := range random {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		random[i] = byte(x)
	}
	const phrase = "a large text message that compresses well. "
	text := hex.EncodeToString(random[:600])
	return []wsclient.Message{
		{Name: "small text", Data: []byte("hello, cooper ✓")},
		{Name: "small binary", Binary: true, Data: []byte{0, 1, 0xfe, 0xff}},
		{Name: "1 MiB of random binary", Binary: true, Data: random},
		{Name: "1 MiB of text", Data: []byte(strings.Repeat(phrase, 1<<20/len(phrase)+1))},
		{Name: "1200 bytes of random hex", Data: []byte(text)},
		{Name: "the same 1200 bytes again", Data: []byte(text)},
	}
}

// checkReport checks what the server saw on a connection a client closed
// cleanly after an exchange: every message echoed, the close code 1000, the
// agreed subprotocol and compression, and no message compressed by the
// client unless compression was agreed. (Whether a client compresses when
// it may is its own choice; the caller checks it where the client does.)
func checkReport(t *testing.T, r *echoReport, subprotocol string, deflate *cooper.DeflateParams) {
	t.Helper()
	if r.err != nil {
		t.Errorf("the server's connection ended with %v, want a close frame", r.err)
	}
	if want := len(exchange()); r.messages != want {
		t.Errorf("the server echoed %d messages, want %d", r.messages, want)
	}
	if r.closeCode != ws.StatusNormalClosure {
		t.Errorf("the client's close code = %d, want 1000", r.closeCode)
	}
	if r.hs.Subprotocol != subprotocol {
		t.Errorf("Handshake.Subprotocol = %q, want %q", r.hs.Subprotocol, subprotocol)
	}
	checkDeflate(t, r.hs.Deflate, deflate)
	if r.hs.Deflate != nil {
		checkTakeover(t, "server", r.sent, r.hs.Deflate)
	}
	if deflate == nil && r.compressed != 0 {
		t.Errorf("the client sent %d messages compressed, without permessage-deflate", r.compressed)
	}
	// The echo compresses every message when compression was agreed.
	if want := map[bool]int{false: 0, true: r.messages}[deflate != nil]; r.sentCompressed != want {
		t.Errorf("the server sent %d of %d messages compressed, want %d", r.sentCompressed, r.messages, want)
	}
}

// checkDeflate checks that got, a Handshake's Deflate, holds the
// permessage-deflate parameters want, or is nil, no compression, when want
// is.
func checkDeflate(t *testing.T, got, want *cooper.DeflateParams) {
	t.Helper()
	switch {
	case want == nil && got != nil:
		t.Errorf("Handshake.Deflate = %+v, want none", *got)
	case want != nil && got == nil:
		t.Errorf("Handshake.Deflate = nil, want %+v", *want)
	case want != nil && *got != *want:
		t.Errorf("Handshake.Deflate = %+v, want %+v", *got, *want)
	}
}

// checkTakeover checks how side, "server" or "client", sent the exchange's
// last two messages, the same text twice, on the wire (sent: its data
// messages, in order) under the agreed parameters d: with context takeover
// the second refers back into the first and is a fraction of its size; with
// side_no_context_takeover agreed the two are compressed alike (RFC 7692,
// section 7.1.1). A sender may forgo a context takeover it was allowed;
// cooper's never does, and the tests check a foreign sender only where it
// does not either.
func checkTakeover(t *testing.T, side string, sent []wireMessage, d *cooper.DeflateParams) {
	t.Helper()
	if len(sent) < 2 || !sent[len(sent)-2].compressed || !sent[len(sent)-1].compressed {
		t.Errorf("the %s sent the last two messages uncompressed (%+v), want them compressed", side, sent[max(0, len(sent)-2):])
		return
	}
	noTakeover := d.ClientNoContextTakeover
	if side == "server" {
		noTakeover = d.ServerNoContextTakeover
	}
	first, second := sent[len(sent)-2].length, sent[len(sent)-1].length
	switch {
	case noTakeover && second != first:
		t.Errorf("the %s sent the same message compressed to %d, then %d bytes, with %s_no_context_takeover agreed; want the same size twice", side, first, second, side)
	case !noTakeover && second*4 > first:
		t.Errorf("the %s sent the same message compressed to %d, then %d bytes, with context takeover agreed; want the second a quarter of the first or less", side, first, second)
	}
}
