package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"lowbit.dev/cooper/examples/internal/wstest"
	"lowbit.dev/cooper/internal/testkit"
	"lowbit.dev/cooper/internal/testkit/wsclient"
)

func TestMain(m *testing.M) { wstest.Main(m) }

// join connects a gorilla client to the room, as wsclient.JoinChat does,
// and checks that permessage-deflate was agreed when it offered it.
func join(t *testing.T, e *wstest.Example, name string, compress bool) *wsclient.Chatter {
	t.Helper()
	c := wsclient.JoinChat(t, e.WS("/ws"), name, compress)
	if ext := c.Resp.Header.Get("Sec-WebSocket-Extensions"); compress != strings.HasPrefix(ext, "permessage-deflate") {
		t.Errorf("%s: Sec-WebSocket-Extensions %q with compression %v", name, ext, compress)
	}
	return c
}

// TestChat has several gorilla clients, with and without compression,
// chat: what each says reaches everyone, itself included, a line at a
// time; a client that breaks the rules is told so and the room goes on.
func TestChat(t *testing.T) {
	e := wstest.Start(t, run)
	var room []*wsclient.Chatter
	for i := range 4 {
		room = append(room, join(t, e, fmt.Sprintf("gorilla %d", i), i%2 == 1))
	}

	for i, c := range room {
		c.Say(t, fmt.Sprintf("  hello from %d\n", i))
	}
	room[0].Say(t, "two\nlines")
	for _, c := range room {
		for i := range room {
			c.Hear(t, fmt.Sprintf("hello from %d", i)) // trimmed
		}
		c.Hear(t, "two lines") // one line: a message is never split
	}

	t.Run("a message over 512 bytes ends its sender's connection with 1009", func(t *testing.T) {
		loud := room[3]
		loud.Say(t, strings.Repeat("a", maxMessageSize+1))
		if err := testkit.Recv(t, loud.Ended); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
			t.Errorf("the sender read %v, want close 1009", err)
		}
		room[0].Say(t, "still here")
		for _, c := range room[:3] {
			c.Hear(t, "still here")
		}
	})
	for _, c := range room {
		c.Conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
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
	others := []*wsclient.Chatter{join(t, e, "first", false), join(t, e, "second", true)}
	wstest.CheckShutdown(t, e, e.WS("/ws"))
	for _, c := range others {
		if err := testkit.Recv(t, c.Ended); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Errorf("a client in the room read %v, want close 1001", err)
		}
	}
}
