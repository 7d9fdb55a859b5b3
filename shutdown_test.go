package cooper

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestShutdownStalledTLSClients shuts down with TLS clients that stopped
// reading, whose handlers ignore their context and, their last write timed
// out with the send buffers full, wait on a read. A *tls.Conn's Close tries
// to send close_notify for up to 5 s to such a peer; Shutdown must not wait
// for that: it returns within a small margin of its deadline, every
// connection closed.
func TestShutdownStalledTLSClients(t *testing.T) {
	const clients = 2
	stalled := make(chan struct{}, clients)
	u := New(Protocols("websocket"))
	s := newServer(t, h1TLS, u.Handler(func(conn net.Conn, hs *Handshake) {
		defer conn.Close()
		fillSendBuffer(conn.(*tls.Conn).NetConn())
		stalled <- struct{}{}
		conn.Read(make([]byte, 1)) // ignores its context: returns when the connection is closed
	}))
	for range clients {
		resp, _, _, _ := s.roundTrip(t, s.wsRequest(), "") // and never reads again
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
	}
	for range clients {
		wait(t, stalled, "a handler's write to time out on a full send buffer")
	}
	const grace = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	err := u.Shutdown(ctx)
	took := time.Since(start)
	t.Logf("Shutdown returned after %v", took)
	if err != context.DeadlineExceeded || took > grace+2*time.Second {
		t.Fatalf("Shutdown = %v after %v, want context.DeadlineExceeded within 2 s of its %v deadline", err, took, grace)
	}
	waitFor(t, "every handler to return", func() bool { return u.Stats().Active == 0 })
}

// fillSendBuffer writes to c, whose peer does not read, until not one more
// byte fits in the socket's send buffer: in ever smaller writes, each ended
// by a short write deadline, down to single bytes, since the kernel takes
// small writes into space a large one left.
func fillSendBuffer(c net.Conn) {
	buf := make([]byte, 64<<10)
	for size := len(buf); size > 0; size /= 16 {
		for {
			c.SetWriteDeadline(time.Now().Add(20 * time.Millisecond))
			if _, err := c.Write(buf[:size]); err != nil {
				break
			}
		}
	}
	c.SetWriteDeadline(time.Time{})
}

