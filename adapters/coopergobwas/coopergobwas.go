// Package coopergobwas frames a connection cooper upgraded to WebSocket
// with github.com/gobwas/ws in one call, [NewConn], and honours every
// permessage-deflate parameter (RFC 7692) agreed under the policy [Deflate].
package coopergobwas

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"lowbit.dev/cooper"
)

// Deflate returns the permessage-deflate policy a [Conn] honours, for
// [cooper.Deflate]: context takeover both ways unless the client asks
// otherwise, and a server window of 15 bits, the only one compress/flate
// keeps, so offers asking for less are declined. Client windows: any.
func Deflate() cooper.DeflateParams {
	return cooper.DeflateParams{ServerMaxWindowBits: 15}
}

const (
	// DefaultReadLimit is the largest message, in bytes, a [Conn] reads without [Conn.SetReadLimit].
	DefaultReadLimit = 1 << 20
	closeTimeout     = 5 * time.Second                        // the wait for the peer's close frame after ours
	maxWindow        = 1 << 15                                // the largest LZ77 window (RFC 7692, section 7.1.2)
	tail             = "\x00\x00\xff\xff\x01\x00\x00\xff\xff" // RFC 7692, section 7.2.2's, and a final block to stop at
)

// Errors a [Conn] returns, wrapped with details. A read that returns one of
// the first three has sent the close code named and closed the connection.
var (
	ErrProtocol    = errors.New("coopergobwas: protocol error")                     // 1002
	ErrInvalidData = errors.New("coopergobwas: invalid data")                       // 1007: text or a close reason not UTF-8, bad compressed data
	ErrReadLimit   = errors.New("coopergobwas: message larger than the read limit") // 1009
	ErrCloseSent   = errors.New("coopergobwas: close frame already sent")           // a write after a close frame
)

// A Conn is the server's end of a WebSocket connection. ReadMessage and its
// setters belong to one goroutine at a time; the other methods, to any.
type Conn struct {
	conn        net.Conn
	br          *bufio.Reader
	deflate     *cooper.DeflateParams // nil: permessage-deflate not agreed
	rmu         sync.Mutex            // held by ReadMessage
	rerr        error                 // what ended reading, returned from then on
	limit, skip int64                 // skip: payload bytes of a refused frame, unread
	onPong      func(string) error
	msg, window []byte        // a compressed message; with client context takeover, the last 32 KiB decompressed
	inf         io.ReadCloser // the decompressor
	wmu         sync.Mutex
	closeSent   bool
	def         *flate.Writer // the compressor
	zbuf, out   bytes.Buffer
}

// NewConn returns conn framed as the server's end of a WebSocket, with
// permessage-deflate as hs.Deflate agreed it (hs may be nil: none). Were a
// server window below 15 bits agreed, which [Deflate] never does, messages
// would go out uncompressed, as RFC 7692 allows. The Conn owns conn.
func NewConn(conn net.Conn, hs *cooper.Handshake) *Conn {
	c := &Conn{conn: conn, br: bufio.NewReader(conn), limit: DefaultReadLimit}
	if hs != nil {
		c.deflate = hs.Deflate
	}
	return c
}

// SetReadLimit sets the largest message ReadMessage reads, in bytes as sent
// and decompressed; a larger one fails the connection with 1009 and
// [ErrReadLimit]. n <= 0 removes the limit. Default: [DefaultReadLimit].
func (c *Conn) SetReadLimit(n int64) { c.limit = n }

// SetPongHandler sets a function ReadMessage calls with each pong's payload
// (to extend a read deadline, say); its error ends reading. Default: none.
func (c *Conn) SetPongHandler(h func(appData string) error) { c.onPong = h }

// closeCodes are the close codes of the errors that fail a connection; read-only.
var closeCodes = map[error]ws.StatusCode{ErrProtocol: ws.StatusProtocolError, ErrInvalidData: ws.StatusInvalidFramePayloadData, ErrReadLimit: ws.StatusMessageTooBig}

// ReadMessage returns the next text or binary message, whole and
// decompressed, for the caller to keep. It answers pings, and a close frame
// with the same code, then closes conn and returns a [wsutil.ClosedError]
// with the peer's code (1005 for none) and reason. A peer that breaks the
// protocol, sends text that is not UTF-8 or a message over the read limit
// gets close code 1002, 1007 or 1009, its close frame is awaited for up to
// 5 s, conn closed, and [ErrProtocol], [ErrInvalidData] or [ErrReadLimit]
// returned. An error of conn's (a deadline; io.EOF, or io.ErrUnexpectedEOF
// if conn ends within a message) leaves it open, for CloseWith. After an error
// every call returns that error.
func (c *Conn) ReadMessage() (ws.OpCode, []byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return 0, nil, c.rerr
	}
	op, p, err := c.read()
	for sentinel, code := range closeCodes {
		if errors.Is(err, sentinel) {
			c.fail(code, err)
		}
	}
	c.rerr = err
	return op, p, err
}

// read reads a message's frames (RFC 6455, section 5.4), and control frames.
func (c *Conn) read() (ws.OpCode, []byte, error) {
	op, compressed := ws.OpCode(0), false // the message's, once its first frame is read
	msg := c.msg[:0]
	for {
		if _, err := c.br.Peek(1); err != nil && op == 0 { // io.EOF between messages
			return 0, nil, err
		}
		h, err := ws.ReadHeader(c.br)
		if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
			return 0, nil, fmt.Errorf("%w: %w", ErrProtocol, err)
		} else if err == io.EOF { // the connection ended within a message
			return 0, nil, io.ErrUnexpectedEOF
		} else if err != nil {
			return 0, nil, err
		}
		c.skip = h.Length
		state := ws.StateServerSide | ws.StateExtended // RSV bits are checked below
		if op != 0 {
			state |= ws.StateFragmented
		}
		if err := ws.CheckHeader(h, state); err != nil {
			return 0, nil, fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if h.Rsv&^ws.Rsv(true, false, false) != 0 || h.Rsv1() && (c.deflate == nil || h.OpCode.IsControl() || h.OpCode == ws.OpContinuation) { // RSV1: RFC 7692, section 6
			return 0, nil, fmt.Errorf("%w: RSV bits %03b on a frame of opcode %d", ErrProtocol, h.Rsv, h.OpCode)
		}
		if !h.OpCode.IsControl() && c.limit > 0 && h.Length > c.limit-int64(len(msg)) {
			return 0, nil, fmt.Errorf("%w of %d bytes", ErrReadLimit, c.limit)
		}
		n, buf := len(msg), bytes.NewBuffer(msg)                             // grown as bytes come, not as the header says: first by those here
		buf.Grow(int(min(h.Length, int64(c.br.Buffered()))) + bytes.MinRead) // and ReadFrom's MinRead: one allocation for a message in one read
		if k, err := buf.ReadFrom(io.LimitReader(c.br, h.Length)); err != nil || k < h.Length {
			return 0, nil, cmp.Or(err, io.ErrUnexpectedEOF)
		}
		msg, c.skip = buf.Bytes(), 0
		ws.Cipher(msg[n:], h.Mask, 0)
		if h.OpCode.IsControl() {
			if err := c.control(h.OpCode, msg[n:]); err != nil {
				return 0, nil, err
			}
			msg = msg[:n]
			continue
		}
		if op, compressed = cmp.Or(op, h.OpCode), compressed || h.Rsv1(); h.Fin {
			break
		}
	}
	p, err := msg, error(nil)
	if c.msg = nil; compressed {
		c.msg = append(msg, tail...)  // kept for the next compressed message; p is new
		src := bytes.NewReader(c.msg) // an io.ByteReader: compress/flate adds no bufio.Reader
		if c.inf == nil {             // c.window is empty without client context takeover
			c.inf = flate.NewReaderDict(src, c.window)
		} else {
			c.inf.(flate.Resetter).Reset(src, c.window) // compress/flate's reader is a Resetter
		}
		var r io.Reader = c.inf
		if c.limit > 0 {
			r = io.LimitReader(r, c.limit+1)
		}
		if p, err = io.ReadAll(r); err != nil {
			return 0, nil, fmt.Errorf("%w: %w", ErrInvalidData, err)
		} else if c.limit > 0 && int64(len(p)) > c.limit {
			return 0, nil, fmt.Errorf("%w of %d bytes", ErrReadLimit, c.limit)
		}
		if !c.deflate.ClientNoContextTakeover { // RFC 7692, section 7.2.3.3: the next may refer back
			c.window = append(c.window, p[max(0, len(p)-maxWindow):]...)
			c.window = c.window[max(0, len(c.window)-maxWindow):]
		}
	}
	if op == ws.OpText && !utf8.Valid(p) {
		return 0, nil, fmt.Errorf("%w: a text message that is not UTF-8", ErrInvalidData)
	}
	return op, p, nil
}

// control answers a control frame (RFC 6455, section 5.5).
func (c *Conn) control(op ws.OpCode, p []byte) error {
	switch {
	case op == ws.OpPing:
		if err := c.send(ws.OpPong, p); err != ErrCloseSent {
			return err
		}
		return nil
	case op == ws.OpPong && c.onPong != nil:
		return c.onPong(string(p))
	case op == ws.OpPong:
		return nil
	}
	c.skip = -1                               // for fail: the peer's close frame came, await no other
	code, reason := ws.ParseCloseFrameData(p) // 0, "" for less than 2 bytes
	switch {
	case len(p) == 1 || len(p) > 1 && !isCloseCode(code):
		return fmt.Errorf("%w: a close frame of %d bytes, code %d", ErrProtocol, len(p), code)
	case !utf8.ValidString(reason):
		return fmt.Errorf("%w: a close reason that is not UTF-8", ErrInvalidData)
	}
	c.send(ws.OpClose, p[:min(len(p), 2)]) // RFC 6455, section 5.5.1: answer with the same code
	c.conn.Close()                         // RFC 6455, section 7.1.1: the server closes the TCP connection first
	return wsutil.ClosedError{Code: cmp.Or(code, ws.StatusNoStatusRcvd), Reason: reason}
}

// isCloseCode reports whether a close frame may carry code (RFC 6455, 7.4; IANA adds 1012-1014).
func isCloseCode(code ws.StatusCode) bool {
	return 1000 <= code && code <= 1003 || 1007 <= code && code <= 1014 || 3000 <= code && code <= 4999
}

// fail sends a close frame with code and err, awaits the peer's unless it came
// (c.skip < 0), skipping frames, and closes conn (RFC 6455, section 7.1.7).
func (c *Conn) fail(code ws.StatusCode, err error) {
	if c.send(ws.OpClose, ws.NewCloseFrameBody(code, strings.TrimPrefix(err.Error(), "coopergobwas: "))) == nil {
		c.conn.SetReadDeadline(time.Now().Add(closeTimeout))
		var h ws.Header
		for err := error(nil); err == nil && h.OpCode != ws.OpClose; c.skip = h.Length {
			if _, err = c.br.Discard(int(c.skip)); err == nil {
				h, err = ws.ReadHeader(c.br)
			}
		}
		c.br.Discard(int(h.Length)) // the close frame's payload: closing with it unread would reset
	}
	c.conn.Close()
}

// WriteMessage sends p as one frame of type op: text or binary, compressed if
// agreed, or a ping or pong of 125 bytes at most; after a close, [ErrCloseSent].
func (c *Conn) WriteMessage(op ws.OpCode, p []byte) error {
	if op != ws.OpText && op != ws.OpBinary && op != ws.OpPing && op != ws.OpPong || op.IsControl() && len(p) > 125 {
		return fmt.Errorf("coopergobwas: WriteMessage: opcode %d with %d bytes is not text, binary, or a ping or pong of 125 at most (close with CloseWith)", op, len(p))
	}
	return c.send(op, p)
}

// send writes p as one frame of type op, compressing data if it may.
func (c *Conn) send(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return ErrCloseSent
	}
	c.closeSent = op == ws.OpClose // it was false
	rsv := byte(0)
	if c.deflate != nil && c.deflate.ServerMaxWindowBits%15 == 0 && op.IsData() { // 15, or 0 for 15: compress/flate's
		c.zbuf.Reset()
		if c.def == nil {
			c.def, _ = flate.NewWriter(&c.zbuf, flate.BestSpeed) // a valid level: never an error
		} else if c.deflate.ServerNoContextTakeover {
			c.def.Reset(&c.zbuf)
		}
		c.def.Write(p) // into a bytes.Buffer, which cannot fail
		c.def.Flush()
		p, rsv = bytes.TrimSuffix(c.zbuf.Bytes(), []byte(tail[:4])), ws.Rsv(true, false, false)
	}
	c.out.Reset()
	ws.WriteFrame(&c.out, ws.Frame{Header: ws.Header{Fin: true, Rsv: rsv, OpCode: op, Length: int64(len(p))}, Payload: p}) // as above
	_, err := c.conn.Write(c.out.Bytes())
	return err
}

// CloseWith sends a close frame with code and reason, awaits the peer's for
// up to 5 s, dropping messages unless a ReadMessage in progress returns
// them (and then the peer's [wsutil.ClosedError]), and closes conn (RFC 6455,
// section 7); after ReadMessage returned an error it closes at once. It
// returns the error of sending, [ErrCloseSent] if a close frame was sent
// before (then it closes at once), or, doing nothing, an error for a code
// that may not be sent or a reason over 123 bytes.
func (c *Conn) CloseWith(code ws.StatusCode, reason string) error {
	if !isCloseCode(code) || len(reason) > 123 {
		return fmt.Errorf("coopergobwas: CloseWith: close code %d with a reason of %d bytes may not be sent", code, len(reason))
	}
	err := c.send(ws.OpClose, ws.NewCloseFrameBody(code, reason))
	if err == nil {
		c.conn.SetReadDeadline(time.Now().Add(closeTimeout))
		for _, _, rerr := c.ReadMessage(); rerr == nil; _, _, rerr = c.ReadMessage() {
		}
	}
	c.conn.Close()
	return err
}

// Close closes conn at once, without the closing handshake of CloseWith.
func (c *Conn) Close() error { return c.conn.Close() }
