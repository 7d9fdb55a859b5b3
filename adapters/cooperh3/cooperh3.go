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
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

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
// the stream, or resets it while a Write is blocked, and ends any Read or
// Write blocked on it; deadlines are the stream's; a stream the peer resets
// or a QUIC connection that ends fails Read and Write. Panics if h is nil.
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
		return &conn{s: s, local: local, remote: remote}, nil
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
	codeNoError       = quic.StreamErrorCode(http3.ErrCodeNoError)
	codeRequestCancel = quic.StreamErrorCode(http3.ErrCodeRequestCanceled)
)

// A conn is an HTTP/3 request stream as a net.Conn. quic-go's streams may
// be read and written at once, but their Close must not run during a
// Write, so writes and the end of the stream are serialised by wmu, and a
// Close that finds a Write under way resets the stream instead, which ends
// the Write (RFC 9220, section 4: an abnormal close is
// H3_REQUEST_CANCELLED). cooper keeps the rest of net.Conn's rule on Close
// (see [cooper.StreamTakeover]).
type conn struct {
	s      *http3.Stream
	local  net.Addr
	remote net.Addr

	wmu sync.Mutex // held by Write, and by Close while it ends the stream
}

// Read reads what the peer sent on the stream, without the HTTP/3 framing.
func (c *conn) Read(p []byte) (int, error) { return c.s.Read(p) }

// Write sends p on the stream, in an HTTP/3 DATA frame.
func (c *conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.s.Write(p)
}

// Close ends the stream: it stops reading, and sends the end of the stream
// after what was written, or, while a Write is blocked, resets the stream,
// which ends that Write.
func (c *conn) Close() error {
	c.s.CancelRead(codeNoError)
	if c.wmu.TryLock() {
		defer c.wmu.Unlock()
		return c.s.Close()
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
