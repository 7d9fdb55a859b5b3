package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"lowbit.dev/cooper/examples/internal/wstest"
)

func TestMain(m *testing.M) { wstest.Main(m) }

// A chatter is a gorilla/websocket client in the room, with every line it
// has received so far.
type chatter struct {
	conn  *websocket.Conn
	lines chan string
	ended chan error      // what ended its reading
	heard map[string]bool // lines taken from lines, for hear
}

// join connects a gorilla client to the room, reading on a goroutine of
// its own, and waits until it hears its own greeting: from then on it is
// in the room and hears everything said there.
func join(t *testing.T, e *wstest.Example, name string, compress bool) *chatter {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, EnableCompression: compress}
	conn, resp, err := d.Dial(e.WS("/ws"), nil)
	if err != nil {
		t.Fatalf("%s: dial: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); compress != strings.HasPrefix(ext, "permessage-deflate") {
		t.Errorf("%s: Sec-WebSocket-Extensions %q with compression %v", name, ext, compress)
	}
	c := &chatter{conn: conn, lines: make(chan string, 100), ended: make(chan error, 1), heard: map[string]bool{}}
	go func() {
		for {
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, msg, err := conn.ReadMessage()
			if err != nil {
				c.ended <- err
				close(c.lines)
				return
			}
			for line := range strings.SplitSeq(string(msg), "\n") {
				c.lines <- line
			}
		}
	}()
	c.say(t, name+" joined")
	c.hear(t, name+" joined")
	return c
}

func (c *chatter) say(t *testing.T, msg string) {
	t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// hear waits until c has received want, in any order with other lines.
func (c *chatter) hear(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for !c.heard[want] {
		select {
		case line, ok := <-c.lines:
			if !ok {
				t.Fatalf("the connection ended (%v) before %q arrived", <-c.ended, want)
			}
			c.heard[line] = true
		case <-deadline:
			t.Fatalf("%q did not arrive within 5 s", want)
		}
	}
}

// TestChat has several gorilla clients, with and without compression,
// chat: what each says reaches everyone, itself included, a line at a
// time; a client that breaks the rules is told so and the room goes on.
func TestChat(t *testing.T) {
	e := wstest.Start(t, run)
	var room []*chatter
	for i := range 4 {
		room = append(room, join(t, e, fmt.Sprintf("gorilla %d", i), i%2 == 1))
	}

	for i, c := range room {
		c.say(t, fmt.Sprintf("  hello from %d\n", i))
	}
	room[0].say(t, "two\nlines")
	for _, c := range room {
		for i := range room {
			c.hear(t, fmt.Sprintf("hello from %d", i)) // trimmed
		}
		c.hear(t, "two lines") // one line: a message is never split
	}

	t.Run("a message over 512 bytes ends its sender's connection with 1009", func(t *testing.T) {
		loud := room[3]
		loud.say(t, strings.Repeat("a", maxMessageSize+1))
		if err := wstest.Recv(t, loud.ended); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Errorf("the sender read %v, want close 1009", err)
		}
		room[0].say(t, "still here")
		for _, c := range room[:3] {
			c.hear(t, "still here")
		}
	})
	for _, c := range room {
		c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	}
}

// TestPage checks that / serves the chat page, which opens its WebSocket
// on its own origin.
func TestPage(t *testing.T) {
	wstest.CheckPage(t, wstest.Start(t, run), `id="status"`, `id="log"`, `id="msg"`, `id="form"`, `location.host + "/ws"`)
}

// TestShutdown checks that everyone in the room is told goodbye (1001) on
// shutdown, and that run then returns nil.
func TestShutdown(t *testing.T) {
	e := wstest.Start(t, run)
	others := []*chatter{join(t, e, "first", false), join(t, e, "second", true)}
	wstest.CheckShutdown(t, e, e.WS("/ws"))
	for _, c := range others {
		if err := wstest.Recv(t, c.ended); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("a client in the room read %v, want close 1001", err)
		}
	}
}
