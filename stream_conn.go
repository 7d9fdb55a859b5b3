package cooper

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// This file is an HTTP/2 stream as a net.Conn, for the RFC 8441 path of
// h2.go.

// A streamConn is an HTTP/2 stream as a net.Conn: reads come from the
// request body, each write is flushed to the response at once, deadlines go
// through http.ResponseController. It keeps the net.Conn contract: Close
// ends a Read or Write under way, a Write blocked on flow control included,
// and afterwards every Read and Write fails with net.ErrClosed. Once stop
// has run (by end as ServeHTTP returns, or for Upgrader.Accept when the
// request's context is done), no method reaches the ResponseWriter, which
// net/http has then taken back.
type streamConn struct {
	body   io.ReadCloser
	w      http.ResponseWriter
	rc     *http.ResponseController
	local  net.Addr
	remote net.Addr

	closed  atomic.Bool  // set before writing is read; see resetWrite
	writing atomic.Int32 // writes under way, counted before closed is read
	wmu     sync.Mutex   // serialises writes
	mu      sync.RWMutex // read-held while w or rc is used; write-held by stop
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

// Read reads what the client sent on the stream. After Close it fails with
// net.ErrClosed, a Read that Close ended included.
func (c *streamConn) Read(p []byte) (int, error) { return useOpen(&c.closed, c.body.Read, p) }

// Write sends p on the stream and flushes it. After Close it fails with
// net.ErrClosed, a Write that Close ended included.
func (c *streamConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.RLock()
	defer c.mu.RUnlock()
	c.writing.Add(1)
	defer c.writing.Add(-1)
	if err := c.endedErr(); err != nil {
		return 0, err
	}
	return useOpen(&c.closed, c.writeFlush, p)
}

// writeFlush writes p to the response and flushes it.
func (c *streamConn) writeFlush(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err == nil {
		err = c.rc.Flush()
	}
	return n, err
}

// Close stops reading and writing at once: a Read under way returns, and
// a Write under way, even one the client's flow control holds, is ended by
// resetting the stream. Without a Write under way, the stream ends cleanly
// when ServeHTTP returns: for a handler of Hijack or Upgrader.Handler, when
// the handler returns.
func (c *streamConn) Close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	c.resetWrite()
	c.body.Close()
	return nil
}

// resetWrite ends a write under way, which may be blocked on flow control,
// with an expired write deadline: net/http's HTTP/2 server then resets the
// stream (RST_STREAM), and the write returns. It runs after closed is set;
// a write counts itself before it reads closed, so either the write sees
// closed or resetWrite sees the write.
func (c *streamConn) resetWrite() {
	if c.writing.Load() == 0 {
		return
	}
	c.mu.RLock()
	if !c.ended {
		c.rc.SetWriteDeadline(time.Now())
	}
	c.mu.RUnlock()
}

// end runs as ServeHTTP returns. A write still under way is cut short as
// by Close; with none the stream ends cleanly. No later call reaches w or
// rc.
func (c *streamConn) end() {
	c.closed.Store(true)
	c.resetWrite()
	c.stop()
	c.body.Close()
}

// stop makes sure no later call reaches w or rc, which net/http takes back
// when ServeHTTP returns. For the stream of Upgrader.Accept it runs once the
// request's context is done: ServeHTTP returned, or the client reset the
// stream or closed the connection first, which net/http does not tell
// apart. It does not close the stream: a Read still reports how the stream
// ended, and a Write fails with errStreamEnded.
func (c *streamConn) stop() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
}

// errStreamEnded fails a Write or a deadline on a stream that stop ended
// but that was not closed.
var errStreamEnded = errors.New("cooper: HTTP/2 stream: ended: ServeHTTP returned, or the client reset the stream")

// endedErr returns why the stream can no longer be written, with mu held:
// net.ErrClosed once closed, errStreamEnded once stopped, else nil.
func (c *streamConn) endedErr() error {
	switch {
	case c.closed.Load():
		return net.ErrClosed
	case c.ended:
		return errStreamEnded
	}
	return nil
}

func (c *streamConn) LocalAddr() net.Addr  { return c.local }
func (c *streamConn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines. As net/http's HTTP/2 server implements
// them, a deadline that passes ends the stream: a read deadline closes the
// request body (Read fails with an error matching os.ErrDeadlineExceeded),
// a write deadline resets the stream. After Close it fails with
// net.ErrClosed.
func (c *streamConn) SetDeadline(t time.Time) error {
	return errors.Join(c.SetReadDeadline(t), c.SetWriteDeadline(t))
}

// SetReadDeadline sets the read deadline of the stream; see SetDeadline.
func (c *streamConn) SetReadDeadline(t time.Time) error {
	return c.setDeadline(c.rc.SetReadDeadline, t)
}

// SetWriteDeadline sets the write deadline of the stream; see SetDeadline.
func (c *streamConn) SetWriteDeadline(t time.Time) error {
	return c.setDeadline(c.rc.SetWriteDeadline, t)
}

// setDeadline sets a deadline of the stream with set, a method of c.rc,
// unless the stream is closed or ended.
func (c *streamConn) setDeadline(set func(time.Time) error, t time.Time) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if err := c.endedErr(); err != nil {
		return err
	}
	return set(t)
}

var _ net.Conn = (*streamConn)(nil)

// useOpen calls op, the Read or Write of a stream connection, with p unless
// closed is set, and keeps net.Conn's rule on Close for it: once closed is
// set, the call fails with net.ErrClosed, a call that Close ended included.
func useOpen(closed *atomic.Bool, op func([]byte) (int, error), p []byte) (int, error) {
	if closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := op(p)
	if err != nil && closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

// A takenStream is a connection that a StreamTakeover handed over, with
// net.Conn's rule on Close kept here for every transport's adapter: once
// Close is called, Read and Write fail with net.ErrClosed, a call that
// Close ended included, and Close again fails with net.ErrClosed without
// reaching the stream.
type takenStream struct {
	net.Conn
	closed atomic.Bool
}

func (c *takenStream) Read(p []byte) (int, error)  { return useOpen(&c.closed, c.Conn.Read, p) }
func (c *takenStream) Write(p []byte) (int, error) { return useOpen(&c.closed, c.Conn.Write, p) }

// Close closes the stream the first time it is called.
func (c *takenStream) Close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	return c.Conn.Close()
}

// A stringAddr is a network address known only as a string.
type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

var _ net.Addr = stringAddr("")
