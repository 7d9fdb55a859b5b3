// Package testkit holds the test helpers that more than one of cooper's
// modules needs: the goroutine-leak check run by TestMain, a raw loopback
// WebSocket client, and small synchronised helpers. It is a module of its
// own so that the root module stays free of test code it would ship; the
// modules whose tests use it require it and point it here with a replace.
package testkit

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"lowbit.dev/cooper"
)

// Main runs the tests and fails the run when one leaves behind a goroutine
// running cooper's or net/http's code, or code whose stack mentions one of
// also (such as "go-chi/chi"). It waits up to 5 s for such goroutines to
// end, and prints the stacks of those that did not.
func Main(m *testing.M, also ...string) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5*time.Second, also); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for goroutines running cooper's,
// net/http's or also's code to end, and returns the stacks of those that
// did not.
func leakedGoroutines(d time.Duration, also []string) string {
	marks := append([]string{"lowbit.dev/cooper", "net/http"}, also...)
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "leakedGoroutines") || strings.Contains(g, "testing.(*M).") {
				continue
			}
			for _, mark := range marks {
				if strings.Contains(g, mark) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Recv receives from ch, waiting up to 5 s; after that it fails t.
func Recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing received in 5 s")
		var zero T
		return zero
	}
}

// A LockedBuffer is a bytes.Buffer that loggers on several goroutines can
// share. Its zero value is empty and ready to use.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Take returns what b holds and empties it.
func (b *LockedBuffer) Take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// WaitFor waits up to 5 s for b to contain s and returns what it holds;
// after that it fails t.
func (b *LockedBuffer) WaitFor(t testing.TB, s string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := b.String()
		if strings.Contains(got, s) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", s, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A Client is one WebSocket opening handshake, as a raw loopback client
// sees it: the response and, after a 101, the connection, whose reads go
// through R.
type Client struct {
	net.Conn
	R    *bufio.Reader
	Resp *http.Response
	Body string // the body of a response other than 101
}

func (c *Client) Read(p []byte) (int, error) { return c.R.Read(p) }

// Dial sends a WebSocket opening handshake for url's path, with header
// added (a header it sets is not replaced), and returns the response and,
// after a 101, the connection; a 101 must carry the right
// Sec-WebSocket-Accept. The connection may be used for 10 s and is closed
// when the test ends.
func Dial(t testing.TB, url string, header http.Header) *Client {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 16)
	rand.Read(key)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	for k, v := range map[string]string{
		"Connection": "Upgrade", "Upgrade": "websocket",
		"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": base64.StdEncoding.EncodeToString(key),
	} {
		if req.Header.Get(k) == "" {
			req.Header.Set(k, v)
		}
	}
	conn, err := net.DialTimeout("tcp", req.URL.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	c := &Client{Conn: conn, R: bufio.NewReader(conn)}
	if c.Resp, err = http.ReadResponse(c.R, req); err != nil {
		t.Fatal(err)
	}
	if c.Resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(c.Resp.Body)
		c.Body = string(body)
	} else if got, want := c.Resp.Header.Get("Sec-WebSocket-Accept"), cooper.AcceptKey(req.Header.Get("Sec-WebSocket-Key")); got != want {
		t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	return c
}

// Echoes checks that the handshake was answered with 101 and that what c
// sends comes back unchanged.
func (c *Client) Echoes(t testing.TB, msg string) {
	t.Helper()
	if c.Resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %s (%q), want 101", c.Resp.Status, c.Body)
	}
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("reading the echo: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// MustPanic fails t unless f panics; call names the call f makes.
func MustPanic(t testing.TB, call string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s did not panic", call)
		}
	}()
	f()
}
