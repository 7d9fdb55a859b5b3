package testkit

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"lowbit.dev/cooper"
)

// A Client is one WebSocket opening handshake, as a raw loopback client
// sees it: the response and, after a 101, the connection, whose reads
// start with what the server sent after its answer.
type Client struct {
	net.Conn
	r    *bufio.Reader // the reader the response was read with
	Resp *http.Response
	Body string // the body of a response other than 101
}

// Read reads from the connection, starting with what the server sent after
// its answer and Dial had already read.
func (c *Client) Read(p []byte) (int, error) { return c.r.Read(p) }

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
	c := &Client{Conn: conn, r: bufio.NewReader(conn)}
	if c.Resp, err = http.ReadResponse(c.r, req); err != nil {
		t.Fatal(err)
	}
	if c.Resp.StatusCode != http.StatusSwitchingProtocols {
		body, err := io.ReadAll(c.Resp.Body)
		if err != nil {
			t.Fatalf("reading the body of %s: %v", c.Resp.Status, err)
		}
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
