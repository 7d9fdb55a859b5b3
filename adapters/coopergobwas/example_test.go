package coopergobwas_test

import (
	"fmt"
	"net"
	"net/http/httptest"
	"strings"

	"github.com/gorilla/websocket"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergobwas"
)

// An echo server with permessage-deflate, framed by coopergobwas after
// cooper's hand-over, and a gorilla/websocket client that talks to it.
func ExampleNewConn() {
	u := cooper.New(cooper.Protocols("websocket"), cooper.Deflate(coopergobwas.Deflate()))
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		c := coopergobwas.NewConn(conn, hs)
		defer c.Close()
		for {
			op, msg, err := c.ReadMessage() // until the client closes
			if err != nil {
				return
			}
			c.WriteMessage(op, append([]byte("echo: "), msg...))
		}
	}))
	defer srv.Close()

	d := websocket.Dialer{EnableCompression: true}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	ws.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, msg, _ := ws.ReadMessage()
	fmt.Println(resp.Header.Get("Sec-WebSocket-Extensions"))
	fmt.Println(string(msg))
	// Output:
	// permessage-deflate; server_no_context_takeover; client_no_context_takeover
	// echo: hello
}
