package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"lowbit.dev/cooper"
)

// BenchmarkServeHTTP measures each server's own path for one upgrade, in
// process: its ServeHTTP on the harness's Chromium request, already parsed,
// with a writer whose Hijack hands over a connection that reads the
// harness's one masked frame and discards writes, so neither net/http's
// parsing nor a socket is in it.
// The difference between a server's figure and the floor's is that
// server's cost per handshake beyond the floor's, the part of the
// harness's CPU ratio the server is answerable for.
func BenchmarkServeHTTP(b *testing.B) {
	raw := fmt.Sprintf(requestFormat, "127.0.0.1:8080", "dGhlIHNhbXBsZSBub25jZQ==")
	servers := []struct {
		name string
		h    func(st *serverState) http.Handler
	}{
		{"floor", func(st *serverState) http.Handler { return floorHandler{st: st} }},
		{"cooper", func(st *serverState) http.Handler {
			return cooper.Hijack(func(c net.Conn, _ string) { echo(c, st) }, cooperOptions()...)
		}},
		{"cooper-handler", func(st *serverState) http.Handler {
			return cooper.New(cooperOptions()...).Handler(func(c net.Conn, _ *cooper.Handshake) { echo(c, st) })
		}},
	}
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			h := s.h(&serverState{})
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
			if err != nil {
				b.Fatal(err)
			}
			w := &hijackWriter{}
			for b.Loop() {
				w.reset()
				h.ServeHTTP(w, r)
				if head := w.conn.head(); !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
					b.Fatalf("no 101: %q", head)
				}
			}
		})
	}
}

// A hijackWriter is a ResponseWriter whose Hijack hands over a discarding
// connection with a reused bufio.ReadWriter, as net/http's own is reused
// from a pool.
type hijackWriter struct {
	header http.Header
	conn   *discardConn // a new one for each upgrade, as the echo may still read the last
	brw    *bufio.ReadWriter
}

func (w *hijackWriter) reset() {
	if w.brw == nil {
		w.brw = bufio.NewReadWriter(bufio.NewReaderSize(strings.NewReader(""), 4096), bufio.NewWriterSize(io.Discard, 4096))
	}
	w.header = http.Header{}
	w.conn = &discardConn{unread: maskedFrame}
}

func (w *hijackWriter) Header() http.Header         { return w.header }
func (w *hijackWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackWriter) WriteHeader(int)             {}
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, w.brw, nil
}

// A discardConn keeps the first bytes written to it, and reads unread and
// then nothing.
type discardConn struct {
	net.TCPConn
	mu      sync.Mutex
	written []byte
	unread  []byte
}

func (c *discardConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.written) == 0 {
		c.written = append(c.written, p...)
	}
	return len(p), nil
}

// head returns the first bytes written.
func (c *discardConn) head() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.written
}
func (c *discardConn) Read(p []byte) (int, error) {
	if len(c.unread) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.unread)
	c.unread = c.unread[n:]
	return n, nil
}
func (c *discardConn) Close() error                     { return nil }
func (c *discardConn) SetDeadline(time.Time) error      { return nil }
func (c *discardConn) SetReadDeadline(time.Time) error  { return nil }
func (c *discardConn) SetWriteDeadline(time.Time) error { return nil }
