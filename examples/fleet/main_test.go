package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"lowbit.dev/cooper/examples/internal/wstest"
	"lowbit.dev/cooper/internal/testkit"
)

func TestMain(m *testing.M) { wstest.Main(m) }

// start runs the example in-process with a drain of d.
func start(t *testing.T, d time.Duration) *wstest.Example {
	return wstest.Start(t, (&options{drain: d, grace: 5 * time.Second}).run)
}

// dial opens a WebSocket as client id, with gorilla/websocket.
func dial(t *testing.T, e *wstest.Example, id string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{Subprotocol}}
	conn, resp, err := d.Dial(e.WS("/ws?client="+id), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if resp.Header.Get("Sec-WebSocket-Protocol") != Subprotocol {
		t.Fatalf("subprotocol %q, want %q", resp.Header.Get("Sec-WebSocket-Protocol"), Subprotocol)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	return conn
}

// exchange sends the numbers from first to last and checks that each is
// acknowledged.
func exchange(t *testing.T, conn *websocket.Conn, first, last int) {
	t.Helper()
	for n := first; n <= last; n++ {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(strconv.Itoa(n))); err != nil {
			t.Fatal(err)
		}
		typ, msg, err := conn.ReadMessage()
		if err != nil || typ != websocket.TextMessage || string(msg) != strconv.Itoa(n) {
			t.Fatalf("acknowledgement of %d: %d %q %v", n, typ, msg, err)
		}
	}
}

func health(t *testing.T, e *wstest.Example) int {
	t.Helper()
	resp, err := http.Get(e.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDrain checks what a rolling deploy relies on: a ready process
// acknowledges numbered messages, and on shutdown reports itself not
// ready, refuses upgrades, and ends every connection with close code 1012,
// spread over the drain, logging what each acknowledged.
func TestDrain(t *testing.T) {
	const drain = time.Second
	e := start(t, drain)
	if got := health(t, e); got != http.StatusOK {
		t.Fatalf("GET /healthz = %d before the shutdown, want 200", got)
	}
	conns := make([]*websocket.Conn, 4)
	for i := range conns {
		conns[i] = dial(t, e, fmt.Sprint("c", i))
		defer conns[i].Close()
		exchange(t, conns[i], 1+i, 3+i) // a reconnecting client starts where it stopped
	}

	began := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- e.Stop() }()
	e.Out.WaitFor(t, `(?m)^draining 4 connections over 1s$`)
	if got := health(t, e); got != http.StatusServiceUnavailable {
		t.Errorf("GET /healthz = %d while draining, want 503", got)
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{Subprotocol}}
	if _, resp, err := d.Dial(e.WS("/ws"), nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("upgrade while draining: %v; want 503 with Retry-After", err)
	}
	var last time.Duration
	for i, c := range conns {
		_, _, err := c.ReadMessage()
		if !websocket.IsCloseError(err, 1012) {
			t.Errorf("c%d: %v, want close 1012 (service restart)", i, err)
		}
		last = max(last, time.Since(began))
	}
	// Four connections spread over 1 s: the last ends after the first
	// three quarters of it, not at once.
	if last < drain/2 {
		t.Errorf("the last connection ended %v after the shutdown began, want the ends spread over %v", last, drain)
	}
	for _, c := range conns {
		c.Close()
	}
	if err := testkit.Recv(t, stopped); err != nil {
		t.Errorf("run returned %v", err)
	}
	for i := range conns {
		want := fmt.Sprintf("conn client=c%d acked=%d-%d n=3 end=server closed 1012\n", i, 1+i, 3+i)
		if !strings.Contains(e.Out.String(), want) {
			t.Errorf("no log line %q in:\n%s", want, e.Out.String())
		}
	}
	if !strings.Contains(e.Out.String(), "\ndrained\n") {
		t.Errorf("no drained line in:\n%s", e.Out.String())
	}
}

// TestProtocolViolation checks that a number out of sequence ends the
// connection with 1002 and is not acknowledged.
func TestProtocolViolation(t *testing.T) {
	e := start(t, 0)
	conn := dial(t, e, "skipper")
	defer conn.Close()
	exchange(t, conn, 7, 8)
	conn.WriteMessage(websocket.TextMessage, []byte("10"))
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseProtocolError) {
		t.Errorf("after a skipped number: %v, want close 1002", err)
	}
	conn.Close()
	e.Out.WaitFor(t, `(?m)^conn client=skipper acked=7-8 n=2 end=message "10" after 8 is not the next number$`)
}
