// Package wsclient holds the test helpers built on other libraries'
// WebSocket clients (gorilla/websocket, coder/websocket, gobwas/ws) that
// more than one of cooper's modules needs: a [Conn] of each library's
// client behind one interface ([Gorilla], [Coder], [Gobwas]), and a chat
// client ([JoinChat]). It is apart from testkit so that the modules that
// need only testkit do not depend on those libraries.
package wsclient

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A Chatter is a gorilla/websocket client in the room of the chat example
// (examples/chat), which sends every line it hears to everyone in the
// room, itself included.
type Chatter struct {
	Conn  *websocket.Conn
	Resp  *http.Response // the handshake's answer
	Ended chan error     // what ended its reading, once it has ended
	lines chan string
	heard map[string]bool // lines taken from lines, for Hear
}

// JoinChat connects a gorilla client to the room at url, with or without
// compression, reading on a goroutine of its own (each read may wait
// 30 s), and waits until it hears its own greeting, name+" joined": from
// then on it is in the room and hears everything said there. The
// connection is closed when the test ends.
func JoinChat(t testing.TB, url, name string, compress bool) *Chatter {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, EnableCompression: compress}
	conn, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &Chatter{Conn: conn, Resp: resp, Ended: make(chan error, 1), lines: make(chan string, 100), heard: map[string]bool{}}
	go func() {
		for {
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, msg, err := conn.ReadMessage()
			if err != nil {
				c.Ended <- err
				close(c.lines)
				return
			}
			for line := range strings.SplitSeq(string(msg), "\n") {
				c.lines <- line
			}
		}
	}()
	c.Say(t, name+" joined")
	c.Hear(t, name+" joined")
	return c
}

// Say sends msg to the room as one text message.
func (c *Chatter) Say(t testing.TB, msg string) {
	t.Helper()
	if err := c.Conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// Hear waits up to 10 s until c has received the line want, in any order
// with other lines.
func (c *Chatter) Hear(t testing.TB, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !c.heard[want] {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("the connection ended (%v) before %q arrived", <-c.Ended, want)
			}
			c.heard[line] = true
		case <-deadline:
			t.Fatalf("%q did not arrive within 10 s", want)
		}
	}
}
