package cooper

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
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
		return "", refuse(http.StatusMethodNotAllowed, ErrMethod, http.Header{"Allow": {"CONNECT"}},
			"method: %s is not CONNECT, which opens an upgrade over HTTP/2 (RFC 8441)", quote(r.Method))
	}
	values := r.Header[hdrProtocol]
	switch {
	case len(values) == 0:
		return "", refuse(http.StatusBadRequest, ErrNotUpgrade, nil, ":protocol: missing; a CONNECT without it is a tunnel (RFC 8441, section 4)")
	case len(values) > 1 || !isProtocol(values[0]):
		return "", malformed(hdrProtocol, values)
	}
	if len(c.protocols) == 0 {
		return lowerToken(values[0]), nil
	}
	for _, p := range c.protocols {
		if tokenEqual(values[0], p) {
			return p, nil
		}
	}
	return "", refuse(http.StatusBadRequest, ErrProtocol, nil, ":protocol: %s is none of %s", quote(values[0]), quote(c.upgradeList))
}

// switchStream answers an extended CONNECT (RFC 8441, section 5) and returns
// the stream as a connection. It first clears the deadlines net/http set
// from ReadTimeout and WriteTimeout, refusing with 500 through w when the
// ResponseWriter chain cannot; then, the connection held by t, it sends 200
// with the agreed headers, flushed at once, within the handshake timeout.
func (u *Upgrader) switchStream(w http.ResponseWriter, r *http.Request, d *decision, extra http.Header, t *tracked) (net.Conn, error) {
	rc := http.NewResponseController(w)
	err := rc.SetReadDeadline(time.Time{})
	if err == nil {
		err = rc.SetWriteDeadline(time.Now().Add(u.cfg.handshakeTimeout))
	}
	if err != nil {
		rej := &UpgradeError{Status: http.StatusInternalServerError, err: fmt.Errorf("%w: HTTP/2 stream: %w", ErrHijackFailed, err)}
		rej.reason = rej.err.Error()
		rej.write(w)
		return nil, rej
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
	conn := newStreamConn(w, r, rc)
	if !u.hold(t, conn) {
		conn.Close()
		conn.end()
		return nil, errClosedByShutdown
	}
	w.WriteHeader(http.StatusOK)
	err = rc.Flush()
	if err == nil {
		err = rc.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		conn.end()
		return nil, fmt.Errorf("cooper: write 200: %w", err)
	}
	return conn, nil
}

// A streamConn is an HTTP/2 stream as a net.Conn: reads come from the
// request body, each write is flushed to the response at once, deadlines go
// through http.ResponseController. Once end has run (when ServeHTTP
// returns), every method fails with net.ErrClosed instead of reaching the
// ResponseWriter, which net/http has then taken back.
type streamConn struct {
	body   io.ReadCloser
	w      http.ResponseWriter
	rc     *http.ResponseController
	local  net.Addr
	remote net.Addr

	closed  atomic.Bool
	writing atomic.Int32 // writes under way
	wmu     sync.Mutex   // serialises writes
	mu      sync.RWMutex // read-held while w or rc is used; write-held by end
	ended   bool         // guarded by mu
}

func newStreamConn(w http.ResponseWriter, r *http.Request, rc *http.ResponseController) *streamConn {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if local == nil {
		local = stringAddr("")
	}
	var remote net.Addr = stringAddr(r.RemoteAddr)
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		remote = net.TCPAddrFromAddrPort(ap)
	}
	return &streamConn{body: r.Body, w: w, rc: rc, local: local, remote: remote}
}

// Read reads what the client sent on the stream.
func (c *streamConn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	return c.body.Read(p)
}

// Write sends p on the stream and flushes it.
func (c *streamConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.RLock()
	defer c.mu.RUnlock()
	c.writing.Add(1)
	defer c.writing.Add(-1)
	if c.ended || c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.w.Write(p)
	if err == nil {
		err = c.rc.Flush()
	}
	return n, err
}

// Close stops reading and writing. The stream ends when ServeHTTP returns:
// for a handler of Hijack or Upgrader.Handler, when the handler returns.
func (c *streamConn) Close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	return c.body.Close()
}

// end runs as ServeHTTP returns. A write still blocked on flow control is
// cut short by an expired write deadline, which resets the stream; with
// none under way the stream ends cleanly. No later call reaches w or rc.
func (c *streamConn) end() {
	c.closed.Store(true)
	if c.writing.Load() > 0 {
		c.mu.RLock()
		if !c.ended {
			c.rc.SetWriteDeadline(time.Now())
		}
		c.mu.RUnlock()
	}
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	c.body.Close()
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines. As net/http's HTTP/2 server implements
// them, a deadline that passes ends the stream: a read deadline closes the
// request body, a write deadline resets the stream.
func (c *streamConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline of the stream; see SetDeadline.
func (c *streamConn) SetReadDeadline(t time.Time) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ended {
		return net.ErrClosed
	}
	return c.rc.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline of the stream; see SetDeadline.
func (c *streamConn) SetWriteDeadline(t time.Time) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.ended {
		return net.ErrClosed
	}
	return c.rc.SetWriteDeadline(t)
}

// A stringAddr is a network address known only as a string.
type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }
