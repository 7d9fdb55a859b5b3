package coopergobwas_test

import (
	"bytes"
	"cmp"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergobwas"
)

// A wire is a connection in memory: reads serve in, then io.EOF, so that
// no read waits and reading always ends; writes go to out. After Close both
// fail with net.ErrClosed. Deadlines change nothing, as nothing waits.
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
