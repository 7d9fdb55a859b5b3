// Package cooperh3 serves cooper's upgrades over HTTP/3, with
// github.com/quic-go/quic-go's http3 server: a WebSocket over HTTP/3 is an
// extended CONNECT on a stream of a QUIC connection (RFC 9220), which the
// same [cooper.Upgrader] that serves HTTP/1.1 and HTTP/2 then validates,
// negotiates, admits, answers and tracks.
//
// Wrap the HTTP/3 server's handler with [Handler]:
//
//	u := cooper.New(cooper.Protocols("websocket"))
//	mux.Handle("/ws", u.Handler(serveWebSocket))
//	h3 := &http3.Server{Handler: cooperh3.Handler(mux), TLSConfig: tlsConfig}
//
// quic-go's server always announces extended CONNECT
// (SETTINGS_ENABLE_CONNECT_PROTOCOL), so a browser that speaks RFC 9220
// opens its WebSockets to the origin over HTTP/3 once it uses HTTP/3 for it:
// every WebSocket route of the HTTP/3 server must be reached through
// Handler. Without it, cooper sees a CONNECT without :protocol and refuses
// it with 400.
package cooperh3

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"lowbit.dev/cooper"
)

// Handler returns a handler for an [http3.Server] that passes every request
// to h. An extended CONNECT (RFC 9220: CONNECT with a :protocol, which
// quic-go reports in the request's Proto) reaches h shaped as net/http's
// HTTP/2 server shapes one, so cooper validates it as RFC 8441, section 5
// asks: Header[":protocol"] holds the protocol, Proto is "HTTP/3.0",
// ProtoMajor 3, Body is empty (the stream belongs to the upgrade), and the
// context carries a [cooper.StreamTakeover] that hands the stream over once
// cooper has answered 200. Its context, like net/http's, is cancelled when
// h returns. Other requests reach h as they came.
//
// The connection cooper hands over is the request's stream as a net.Conn:
// its addresses are those of the QUIC connection; Close sends the end of
// the stream, or resets it while a Write is blocked or after one that a
// deadline cut short, and ends any Read or Write blocked on it; deadlines
// are the stream's, and a Read that one ends loses nothing; the peer's
// reset of its side of the stream fails Read, its STOP_SENDING fails
// Write, the end of the QUIC connection fails both, and a stream that ends
// inside an HTTP/3 frame fails Read with io.ErrUnexpectedEOF. Panics if h
// is nil.
func Handler(h http.Handler) http.Handler {
	if h == nil {
		panic("cooperh3: Handler: nil handler")
	}
	return &handler{h: h}
}

// A handler is the http.Handler of [Handler].
type handler struct{ h http.Handler }

// ServeHTTP prepares an extended CONNECT for cooper and passes every
// request on.
func (a *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	streamer, ok := w.(http3.HTTPStreamer)
	if !ok || !isExtendedConnect(r) {
		a.h.ServeHTTP(w, r)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	local, _ := ctx.Value(http.LocalAddrContextKey).(net.Addr)
	remote, _ := ctx.Value(http3.RemoteAddrContextKey).(net.Addr)
	take := func() (net.Conn, error) {
		// cooper has called WriteHeader(200), maybe through middleware that
		// holds it back; quic-go sends a header only once, and HTTPStream
		// without one would hand the stream over unanswered.
		w.WriteHeader(http.StatusOK)
		s, err := streamer.HTTPStream()
		if err != nil {
			return nil, err
		}
		return &conn{s: s, q: s.QUICStream(), local: local, remote: remote}, nil
	}
	// allocates: the request is the server's; cooper reads the copy.
	r2 := cooper.WithStreamTakeover(r.WithContext(ctx), take)
	r2.Header = maps.Clone(r.Header)
	r2.Header[":protocol"] = []string{r.Proto}
	r2.Proto, r2.ProtoMajor, r2.ProtoMinor = "HTTP/3.0", 3, 0
	r2.Body = http.NoBody
	a.h.ServeHTTP(w, r2)
}

// isExtendedConnect reports whether r, from quic-go's HTTP/3 server, is an
// extended CONNECT: quic-go puts the :protocol in Proto, which is otherwise
// "HTTP/3.0", a value :protocol cannot take (RFC 8441, section 4: a token).
func isExtendedConnect(r *http.Request) bool {
	return r.Method == http.MethodConnect && r.ProtoMajor == 3 && r.Proto != "" && r.Proto != "HTTP/3.0"
}

// Stream error codes (RFC 9114, section 8.1).
const (
	codeNoError         = quic.StreamErrorCode(http3.ErrCodeNoError)
	codeRequestCancel   = quic.StreamErrorCode(http3.ErrCodeRequestCanceled)
	codeFrameUnexpected = quic.StreamErrorCode(http3.ErrCodeFrameUnexpected)
)

// Frame types (RFC 9114, section 7.2).
const (
	frameData    = 0x0
	frameHeaders = 0x1
)

// A conn is an HTTP/3 request stream as a net.Conn, which frames the data
// of the QUIC stream beneath itself. quic-go's streams may be read and
// written at once, but their Close must not run during a Write, so writes
// and the end of the stream are serialised by wmu, and a Close that finds
// a Write under way resets the stream instead, which ends the Write (RFC
// 9220, section 4: an abnormal close is H3_REQUEST_CANCELLED). cooper
// keeps the rest of net.Conn's rule on Close (see [cooper.StreamTakeover]).
type conn struct {
	s      *http3.Stream
	q      *quic.Stream // s's QUIC stream, which Read and Write frame
	local  net.Addr
	remote net.Addr

	wmu   sync.Mutex // held by Write, and by Close while it ends the stream
	wleft uint64     // payload bytes the last frame written still lacks
	whdr  []byte     // the part of its header not yet written, in wbuf
	wbuf  [9]byte

	// Read's place in the framing, kept across a Read that fails, guarded
	// by rmu: net.Conn allows Reads at once.
	rmu  sync.Mutex
	hdr  [16]byte // the start of the next frame's header: hdr[:nhdr]
	nhdr int
	left uint64 // bytes of the current frame not yet read
	data bool   // the current frame is a DATA frame
	tail bool   // the trailers came: no frame may follow but unknown ones
}

// Read reads what the peer sent in the stream's DATA frames. It parses the
// frames itself, from the QUIC stream: quic-go's Stream.Read loses the part
// of a frame header it read when a deadline passes, and the stream then
// reads as garbage; net.Conn's deadlines lose nothing. Other frames are
// skipped: trailers, and types unknown (RFC 9114, section 9); a frame that
// has no place on a request stream, or none after the trailers, stops the
// reading (sections 4.1 and 7.2.8). A stream that ends inside a frame
// fails Read with io.ErrUnexpectedEOF (section 7.1).
func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for c.left == 0 || !c.data {
		var err error
		if c.left > 0 { // p is scratch space until a DATA frame comes
			var n int
			n, err = c.q.Read(p[:min(uint64(len(p)), c.left)])
			c.left -= uint64(n)
		} else {
			err = c.readHeader()
		}
		if err != nil {
			return 0, c.cut(err)
		}
	}
	n, err := c.q.Read(p[:min(uint64(len(p)), c.left)])
	c.left -= uint64(n)
	return n, c.cut(err)
}

// cut returns err, a failed read of the QUIC stream, or
// io.ErrUnexpectedEOF for an end of the stream inside a frame.
func (c *conn) cut(err error) error {
	if err == io.EOF && (c.left > 0 || c.nhdr > 0) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readHeader reads the next frame's header, its type and length (RFC
// 9114, section 7.1), into hdr and not a byte past it, and sets left and
// data from it.
func (c *conn) readHeader() error {
	for need := headerLen(c.hdr[:c.nhdr]); c.nhdr < need; need = headerLen(c.hdr[:c.nhdr]) {
		n, err := c.q.Read(c.hdr[c.nhdr:need])
		c.nhdr += n
		if err != nil && (err != io.EOF || c.nhdr < need) {
			return err // an EOF after a whole header comes again, after the frame
		}
	}
	typ, n, _ := quicvarint.Parse(c.hdr[:c.nhdr])
	c.left, _, _ = quicvarint.Parse(c.hdr[n:c.nhdr])
	c.nhdr, c.data = 0, typ == frameData
	if !isInPlace(typ, c.tail) {
		c.s.CancelRead(codeFrameUnexpected)
		return fmt.Errorf("cooperh3: frame: type %#x has no place here on a request stream (RFC 9114, sections 4.1 and 7.2)", typ)
	}
	c.tail = c.tail || typ == frameHeaders
	return nil
}

// isInPlace reports whether a frame of type typ may follow a request's
// HEADERS, after the trailers if tail: DATA and HEADERS (the trailers)
// only before them, unknown types anywhere, HTTP/2's and the control
// stream's nowhere (RFC 9114, sections 4.1 and 7.2; RFC 9218, section 7.1).
func isInPlace(typ uint64, tail bool) bool {
	switch typ {
	case frameData, frameHeaders:
		return !tail
	case 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0x9, 0xd, 0xf0700, 0xf0701:
		return false
	}
	return true
}

// headerLen returns the length of the frame header that begins with h:
// two variable-length integers, each of which gives its length in the
// two high bits of its first byte (RFC 9000, section 16). While h is too
// short to tell, it counts the first byte it lacks, which tells the rest.
func headerLen(h []byte) int {
	if len(h) == 0 {
		return 1
	}
	t := 1 << (h[0] >> 6)
	if len(h) <= t {
		return t + 1
	}
	return t + 1<<(h[t]>>6)
}

// Write sends p on the stream in a DATA frame (RFC 9114, section 7.2.1),
// which it writes itself, to know whether the last frame is whole. A Write
// that fails partway, as when a deadline passes, leaves its frame
// unfinished: the next Write's bytes finish it first. One that fails
// before the first byte of its frame's header opens no frame.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := 0
	for n < len(p) {
		fresh := c.wleft == 0
		if fresh {
			c.wleft = uint64(len(p) - n)
			c.whdr = quicvarint.Append(append(c.wbuf[:0], frameData), c.wleft)
		}
		if len(c.whdr) > 0 {
			m, err := c.q.Write(c.whdr)
			c.whdr = c.whdr[m:]
			if err != nil {
				if fresh && m == 0 {
					c.wleft = 0 // nothing of the frame is on the stream
				}
				return n, err
			}
		}
		m, err := c.q.Write(p[n : n+int(min(uint64(len(p)-n), c.wleft))])
		n += m
		c.wleft -= uint64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Close ends the stream: it stops reading, and sends the end of the stream
// after what was written. While a Write is blocked, or when one left its
// frame unfinished, it resets the stream instead, which ends that Write: an
// end of the stream would cut the frame short (RFC 9114, section 7.1).
func (c *conn) Close() error {
	c.s.CancelRead(codeNoError)
	if c.wmu.TryLock() {
		defer c.wmu.Unlock()
		if c.wleft == 0 {
			return c.s.Close()
		}
	}
	c.s.CancelWrite(codeRequestCancel)
	return nil
}

// LocalAddr returns the local address of the QUIC connection.
func (c *conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr returns the peer's address on the QUIC connection.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets the stream's read and write deadlines.
func (c *conn) SetDeadline(t time.Time) error { return c.s.SetDeadline(t) }

// SetReadDeadline sets the stream's read deadline.
func (c *conn) SetReadDeadline(t time.Time) error { return c.s.SetReadDeadline(t) }

// SetWriteDeadline sets the stream's write deadline.
func (c *conn) SetWriteDeadline(t time.Time) error { return c.s.SetWriteDeadline(t) }
