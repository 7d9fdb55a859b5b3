package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/wstest"
	"lowbit.dev/cooper/internal/testkit"
)

func TestMain(m *testing.M) { wstest.Main(m) }

// dial asks for protocol on the example's /lines with the standard
// library's client and returns the response; after a 101 its Body is the
// connection, closed after 10 s at most.
func dial(t *testing.T, e *wstest.Example, protocol string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/lines", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", protocol)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(10*time.Second, func() { resp.Body.Close() }) // bounds every read
	t.Cleanup(func() {
		timer.Stop()
		resp.Body.Close()
	})
	return resp
}

func TestLines(t *testing.T) {
	e := wstest.Start(t, run)
	resp := dial(t, e, "lines/1")
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "lines/1" {
		t.Fatalf("response %s, Upgrade: %q; want 101 and lines/1", resp.Status, resp.Header.Get("Upgrade"))
	}
	conn := resp.Body.(io.ReadWriteCloser)
	answers := bufio.NewReader(conn)
	for _, line := range []string{"hello", "Grüße aus Köln", "", "MiXeD 123"} {
		if _, err := io.WriteString(conn, line+"\n"); err != nil {
			t.Fatal(err)
		}
		got, err := answers.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.ToUpper(line) + "\n"; got != want {
			t.Errorf("answer to %q = %q, want %q", line, got, want)
		}
	}
}

func TestOtherProtocolsAreRefused(t *testing.T) {
	e := wstest.Start(t, run)
	resp := dial(t, e, "websocket")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") != "lines/1" {
		t.Errorf("response %s, Upgrade: %q; want 426 and lines/1", resp.Status, resp.Header.Get("Upgrade"))
	}
	if want := `cooper: Upgrade: "websocket" has none of "lines/1"`; !strings.Contains(string(body), want) {
		t.Errorf("body %q, want %q", body, want)
	}
}

// TestShutdown checks that stopping the example ends an open lines/1
// connection and that run returns nil.
func TestShutdown(t *testing.T) {
	e := wstest.Start(t, run)
	conn := dial(t, e, "lines/1").Body.(io.ReadWriteCloser)
	io.WriteString(conn, "still here\n")
	answers := bufio.NewReader(conn)
	if got, err := answers.ReadString('\n'); got != "STILL HERE\n" {
		t.Fatalf("answer %q, %v", got, err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- e.Stop() }()
	if _, err := answers.ReadByte(); err != io.EOF {
		t.Errorf("read during the shutdown = %v, want io.EOF", err)
	}
	if err := testkit.Recv(t, stopped); err != nil {
		t.Errorf("run returned %v", err)
	}
}

// TestConnect runs the example's own client, which upgrades with
// cooper.Dial, against its server.
func TestConnect(t *testing.T) {
	e := wstest.Start(t, run)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out strings.Builder
	if err := connect(ctx, e.URL+"/lines", strings.NewReader("hello\nworld\n"), &out); err != nil {
		t.Fatalf("connect: %v", err)
	}
	if got := out.String(); got != "HELLO\nWORLD\n" {
		t.Errorf("answers %q, want HELLO and WORLD", got)
	}
	err := connect(ctx, e.URL+"/elsewhere", strings.NewReader("x\n"), &out)
	if !errors.Is(err, cooper.ErrUnexpectedStatus) {
		t.Errorf("connect to a path that does not upgrade = %v, want cooper.ErrUnexpectedStatus", err)
	}
}

// TestRawClients speaks to the example as clients that write their own
// bytes do: the request's Upgrade in another case, over several lines or
// with WebSocket's headers, and lines sent in the same write as the
// request. The 101 names lines/1 alone, and the early lines are answered
// first, in order.
func TestRawClients(t *testing.T) {
	e := wstest.Start(t, run)
	for _, tt := range []struct {
		name    string
		headers string
	}{
		{"the protocol in upper case", "Upgrade: LINES/1\r\n"},
		{"the protocol after another, on a second line", "Upgrade: chat/2\r\nUpgrade: websocket, lines/1\r\n"},
		{"with WebSocket's headers, which are ignored",
			"Upgrade: lines/1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", e.Addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			request := "GET /lines HTTP/1.1\r\nHost: " + e.Addr + "\r\nConnection: Upgrade\r\n" + tt.headers + "\r\n"
			if _, err := io.WriteString(conn, request+"sent with the request\nand another\n"); err != nil {
				t.Fatal(err)
			}
			const want = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: lines/1\r\nConnection: Upgrade\r\n\r\n" +
				"SENT WITH THE REQUEST\nAND ANOTHER\n"
			got := make([]byte, len(want))
			if _, err := io.ReadFull(conn, got); err != nil || string(got) != want {
				t.Fatalf("read %q, %v; want %q", got, err, want)
			}
		})
	}
}
