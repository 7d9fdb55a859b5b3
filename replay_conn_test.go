package cooper

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// pipeConn returns a replayConn over one end of a loopback TCP connection
// whose pending bytes are replay, and the other end.
func pipeConn(t *testing.T, replay string) (*replayConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	br := bufio.NewReader(strings.NewReader(replay))
	br.Peek(len(replay))
	rc, ok := handOver(c, br).(*replayConn)
	if !ok {
		t.Fatal("handOver with buffered bytes did not wrap the connection")
	}
	return rc, peer
}

func TestHandOverWithNothingBuffered(t *testing.T) {
	c, peer := net.Pipe()
	defer c.Close()
	defer peer.Close()
	if got := handOver(c, bufio.NewReader(c)); got != c {
		t.Errorf("handOver with nothing buffered = %T, want the connection itself", got)
	}
	if got := handOver(c, nil); got != c {
		t.Errorf("handOver with no reader = %T, want the connection itself", got)
	}
}

func TestReplayConnReadsBufferedBytesFirstAndOnce(t *testing.T) {
	rc, peer := pipeConn(t, "early")
	if _, err := peer.Write([]byte("-late")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, 16)
	buf := make([]byte, 2) // smaller than the replay, so it takes several reads
	for len(got) < len("early-late") {
		n, err := rc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if string(got) != "early-late" {
		t.Errorf("read %q, want %q", got, "early-late")
	}
	if _, ok := rc.NetConn().(*net.TCPConn); !ok {
		t.Errorf("NetConn() = %T, want *net.TCPConn", rc.NetConn())
	}
}

// TestReplayConnWriteTo copies from the connection with io.Copy, which
// takes its WriteTo (there for the socket's splice): the replayed bytes
// come first, then the socket's.
func TestReplayConnWriteTo(t *testing.T) {
	rc, peer := pipeConn(t, "early")
	if _, ok := any(rc).(io.WriterTo); !ok {
		t.Fatal("replayConn has no WriteTo, so io.Copy from it cannot reach the socket's")
	}
	peer.Write([]byte("-late"))
	peer.(*net.TCPConn).CloseWrite()
	var out bytes.Buffer
	n, err := io.Copy(&out, rc)
	if err != nil || out.String() != "early-late" || n != int64(out.Len()) {
		t.Errorf("io.Copy = %d, %v, %q; want %q", n, err, out.String(), "early-late")
	}
}

// TestReplayConnReadFrom copies into the connection from a source without
// a WriteTo method, so io.Copy takes the connection's ReadFrom, which must
// be there (for the socket's sendfile and splice) and deliver every byte.
func TestReplayConnReadFrom(t *testing.T) {
	rc, peer := pipeConn(t, "not read here")
	if _, ok := any(rc).(io.ReaderFrom); !ok {
		t.Fatal("replayConn has no ReadFrom, so io.Copy into it cannot reach the socket's")
	}
	src := struct{ io.Reader }{strings.NewReader("to the peer")} // hides strings.Reader's WriteTo
	n, err := io.Copy(rc, src)
	rc.Close()
	got, _ := io.ReadAll(peer)
	if err != nil || n != 11 || string(got) != "to the peer" {
		t.Errorf("io.Copy into the conn = %d, %v; peer read %q", n, err, got)
	}
}

// TestReplayConnReadDeadline lets a read deadline pass once the replayed
// bytes are read: that Read fails with os.ErrDeadlineExceeded and the
// connection stays open, so once the deadline is cleared the socket's bytes
// come through (a deadline that closes the connection is coder/websocket
// issue 228).
func TestReplayConnReadDeadline(t *testing.T) {
	rc, peer := pipeConn(t, "early")
	buf := make([]byte, 16)
	if n, err := rc.Read(buf); err != nil || string(buf[:n]) != "early" {
		t.Fatalf("Read = %q, %v, want the replayed bytes", buf[:n], err)
	}
	rc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := rc.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read past the deadline = %v, want os.ErrDeadlineExceeded", err)
	}
	rc.SetReadDeadline(time.Time{})
	if _, err := peer.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	if n, err := rc.Read(buf); err != nil || string(buf[:n]) != "late" {
		t.Errorf("Read after the deadline was cleared = %q, %v, want %q", buf[:n], err, "late")
	}
}

// TestReplayConnReadAfterClose closes a connection with bytes still to
// replay: every Read afterwards fails with net.ErrClosed, as on the socket,
// and so does io.Copy from it.
func TestReplayConnReadAfterClose(t *testing.T) {
	rc, peer := pipeConn(t, "early")
	peer.Write([]byte("-late"))
	if err := rc.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for i := range 2 {
		if n, err := rc.Read(make([]byte, 16)); n != 0 || !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read %d after Close = %d, %v; want 0, net.ErrClosed", i+1, n, err)
		}
	}
	var out bytes.Buffer
	if n, err := io.Copy(&out, rc); n != 0 || !errors.Is(err, net.ErrClosed) {
		t.Errorf("io.Copy from the conn after Close = %d, %v (%q); want 0, net.ErrClosed", n, err, out.String())
	}
}

// TestReplayConnConcurrentReads reads from several goroutines at once, as
// net.Conn allows: every byte arrives exactly once (run with -race).
func TestReplayConnConcurrentReads(t *testing.T) {
	replay := strings.Repeat("r", 1000)
	rc, peer := pipeConn(t, replay)
	peer.Write([]byte(strings.Repeat("s", 1000)))
	peer.(*net.TCPConn).CloseWrite()
	var mu sync.Mutex
	total := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			buf := make([]byte, 7)
			for {
				n, err := rc.Read(buf)
				mu.Lock()
				total += n
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if total != 2000 {
		t.Errorf("read %d bytes in all, want 2000", total)
	}
}
