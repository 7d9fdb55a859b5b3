package cooper

import (
	"bufio"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// handOver returns the connection the handler gets: conn itself when br holds
// nothing, so a framing layer's type assertions (*net.TCPConn, *tls.Conn) and
// io.Copy fast paths keep working; otherwise a connection that first replays
// a copy of the bytes br had buffered. br itself, and its buffer, are not
// kept.
func handOver(conn net.Conn, br *bufio.Reader) net.Conn {
	if br == nil || br.Buffered() == 0 {
		return conn
	}
	b, _ := br.Peek(br.Buffered())
	// allocates: the wrapper and the copied bytes outlive the request.
	return &replayConn{Conn: conn, pending: append([]byte(nil), b...)}
}

// A replayConn is a connection whose first reads return bytes that were
// read from it before the hand-over, exactly once, and then read the
// connection itself. It is safe for concurrent use, as every net.Conn is.
type replayConn struct {
	net.Conn // the connection beneath; Write, addresses and deadlines go to it

	drained atomic.Bool // pending is empty and will stay so
	mu      sync.Mutex  // guards pending while it is not drained
	pending []byte
}

// NetConn returns the connection beneath, for callers that need its concrete
// type. Reading from it directly skips the bytes not yet replayed.
func (c *replayConn) NetConn() net.Conn { return c.Conn }

// Read returns replayed bytes while there are some, then reads the
// connection.
func (c *replayConn) Read(p []byte) (int, error) {
	if c.drained.Load() {
		return c.Conn.Read(p)
	}
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		return c.Conn.Read(p)
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
		c.drained.Store(true)
	}
	c.mu.Unlock()
	return n, nil
}

// WriteTo writes the bytes not yet replayed to w, then copies the
// connection to w with io.Copy, so a copy to a socket can still use splice.
func (c *replayConn) WriteTo(w io.Writer) (int64, error) {
	c.mu.Lock()
	p := c.pending
	c.pending = nil
	c.drained.Store(true)
	c.mu.Unlock()
	var n int64
	if len(p) > 0 {
		m, err := w.Write(p)
		n = int64(m)
		if err != nil {
			return n, err
		}
	}
	m, err := io.Copy(w, c.Conn)
	return n + m, err
}

// ReadFrom copies r to the connection with io.Copy, so a copy from a file or
// socket can still use sendfile or splice.
func (c *replayConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(c.Conn, r)
}

// Close closes the connection and drops the bytes not yet replayed, so
// every Read afterwards fails, as it does on the socket, with an error
// matching net.ErrClosed.
func (c *replayConn) Close() error {
	c.mu.Lock()
	c.pending = nil
	c.drained.Store(true)
	c.mu.Unlock()
	return c.Conn.Close()
}

var (
	_ net.Conn      = (*replayConn)(nil)
	_ io.WriterTo   = (*replayConn)(nil)
	_ io.ReaderFrom = (*replayConn)(nil)
)
