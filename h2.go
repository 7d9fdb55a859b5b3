package cooper

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// hdrProtocol is the key under which net/http's HTTP/2 server puts an
// extended CONNECT's :protocol pseudo-header (RFC 8441, section 4).
const hdrProtocol = ":protocol"

// validateConnect checks r, an HTTP/2 request, as an extended CONNECT
// (RFC 8441, section 4) and picks its protocol. HTTP/2 forbids Upgrade and
// Connection (RFC 9113, section 8.2.2), so no refusal here is a 426: there
// would be no way to name the protocols.
func validateConnect(r *http.Request, c *config) (string, *UpgradeError) {
	if r.Method != http.MethodConnect {
		return "", refusal(http.StatusMethodNotAllowed, ErrMethod, http.Header{"Allow": {"CONNECT"}},
			"method: %s is not CONNECT, which opens an upgrade over HTTP/2 and HTTP/3 (RFC 8441, RFC 9220)", quote(r.Method))
	}
	values := r.Header[hdrProtocol]
	switch {
	case len(values) == 0:
		return "", refusal(http.StatusBadRequest, ErrNotUpgrade, nil, ":protocol: missing; a CONNECT without it is a tunnel (RFC 8441, section 4)")
	case len(values) > 1 || !isProtocol(values[0]):
		return "", malformed(hdrProtocol, values)
	}
	if proto := acceptProtocol(values[0], c.protocols); proto != "" {
		return proto, nil
	}
	return "", refusal(http.StatusBadRequest, ErrProtocol, nil, ":protocol: %s is none of %s", quote(values[0]), quote(c.upgradeList))
}

// A StreamTakeover takes the stream of an extended CONNECT over from the
// server that carries it, for a transport net/http does not serve: cooper's
// HTTP/3 adapter (lowbit.dev/cooper/adapters/cooperh3, RFC 9220) is one. A
// transport's adapter attaches one to each extended CONNECT with
// [WithStreamTakeover] before the request reaches an [Upgrader].
//
// The Upgrader calls it once it has agreed to the request, set the answer's
// headers on the ResponseWriter and called WriteHeader(200), in place of
// answering through the ResponseWriter as over HTTP/2. It must send that
// answer and return the stream as a net.Conn that outlives ServeHTTP: Read
// and Write carry the stream's data, Close ends the stream and any Read or
// Write blocked on it, deadlines work as net.Conn documents, and LocalAddr
// and RemoteAddr are those of the connection that carries the stream. The
// rest of net.Conn's rule on Close is the Upgrader's to keep: it calls the
// stream's Close at most once, and after it fails every Read and Write
// with net.ErrClosed itself, one that Close ended included; so the handler
// gets the stream wrapped, with net.Conn's methods only (Shutdown closes it
// with Close, never the connection that carries it). The write
// deadline set through the ResponseWriter to bound the answer
// ([HandshakeTimeout]) may still be set on it; the Upgrader clears it. On
// error the stream is not handed over and stays the server's to end; the
// upgrade fails, as a failed 101 write does, and is reported to [OnError].
//
// With a StreamTakeover, the handler runs as over HTTP/1.1 (see the
// package documentation, Handlers), and [Upgrader.Accept]'s caller may keep
// the connection after ServeHTTP returns.
type StreamTakeover func() (net.Conn, error)

// streamTakeoverKey is the context key of a request's StreamTakeover.
type streamTakeoverKey struct{}

// WithStreamTakeover returns a shallow copy of r whose context carries take,
// with which an [Upgrader] takes the stream of r over (see
// [StreamTakeover]). It is for the adapter of a transport, which calls it on
// each extended CONNECT whose request it has shaped as net/http's HTTP/2
// server does: Method CONNECT, the :protocol pseudo-header in
// Header[":protocol"], ProtoMajor the HTTP version (2 or more). Requests
// without one, over HTTP/2, are answered through the ResponseWriter.
// Panics if take is nil.
func WithStreamTakeover(r *http.Request, take StreamTakeover) *http.Request {
	if take == nil {
		panic("cooper: WithStreamTakeover: nil StreamTakeover")
	}
	return r.WithContext(context.WithValue(r.Context(), streamTakeoverKey{}, take))
}

// switchStream answers an extended CONNECT (RFC 8441, section 5; RFC 9220,
// section 3) and returns the stream as a connection. It first clears the
// deadlines net/http set from ReadTimeout and WriteTimeout, refusing with
// 500 through w when the ResponseWriter chain cannot; then, the connection
// held by t, it sends 200 with the agreed headers, flushed at once, within
// the handshake timeout: through w, or through the request's
// StreamTakeover, which hands the stream over. The connection is then
// t's.
func (u *Upgrader) switchStream(w http.ResponseWriter, r *http.Request, d *decision, extra http.Header, t *tracked) error {
	rc := http.NewResponseController(w)
	err := rc.SetReadDeadline(time.Time{})
	if err == nil {
		err = rc.SetWriteDeadline(time.Now().Add(u.cfg.handshakeTimeout))
	}
	if err != nil {
		rej := hijackFailed(err, "HTTP/2 stream: "+err.Error())
		u.cfg.writeRefusal(w, r, rej)
		return rej
	}
	h := w.Header()
	for name, values := range extra {
		if !isOwnHeader(name) {
			h[name] = values
		}
	}
	if d.subprotocol != "" {
		h[hdrWSProtocol] = []string{d.subprotocol}
	}
	if d.deflateOK {
		// allocates: net/http's headers are strings.
		h[hdrWSExtensions] = []string{string(appendDeflate(nil, &d.deflate))}
	}
	if take, ok := r.Context().Value(streamTakeoverKey{}).(StreamTakeover); ok {
		w.WriteHeader(http.StatusOK)
		conn, err := takeStream(take)
		if err == nil && !u.hold(t, conn) {
			closeNow(conn)
			return errClosedByShutdown
		}
		return err
	}
	conn := newStreamConn(w, r, rc)
	// The answer counts as a write, so a Close meanwhile (Shutdown's) ends
	// it as it would a blocked Write.
	conn.writing.Add(1)
	if !u.hold(t, conn) {
		conn.Close()
		conn.writing.Add(-1)
		conn.end()
		return errClosedByShutdown
	}
	w.WriteHeader(http.StatusOK)
	err = rc.Flush()
	if err == nil {
		err = rc.SetWriteDeadline(time.Time{})
	}
	conn.writing.Add(-1)
	if err != nil {
		conn.end()
		return fail(ErrWriteResponse, "write 200: %w", err)
	}
	return nil
}

// takeStream hands the answered stream over through take, clears the
// write deadline that bounded the answer, and returns the stream as a
// takenStream, which keeps net.Conn's rule on Close for it.
func takeStream(take StreamTakeover) (net.Conn, error) {
	conn, err := take()
	if err == nil && conn == nil {
		err = errors.New("the StreamTakeover returned no connection")
	}
	if err == nil {
		if err = conn.SetWriteDeadline(time.Time{}); err != nil {
			conn.Close()
		}
	}
	if err != nil {
		return nil, fail(ErrWriteResponse, "write 200: %w", err)
	}
	// allocates: the wrapper keeps net.Conn's rule on Close, so that no
	// adapter has to.
	return &takenStream{Conn: conn}, nil
}
