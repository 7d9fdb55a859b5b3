// Package wsecho is the WebSocket echo the examples share: after cooper's
// handshake, coopergobwas frames the messages on the connection, with
// permessage-deflate when the handshake agreed it.
package wsecho

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergobwas"
)

// Deflate is the permessage-deflate policy Serve honours, for
// [cooper.Deflate]: coopergobwas's, context takeover included. Read-only.
var Deflate = coopergobwas.Deflate()

// Options are the options of the echo's Upgrader, as examples/echo sets
// them, followed by more: WebSocket with the subprotocol echo.v1,
// permessage-deflate under the Deflate policy, and the reason for every
// refusal logged.
func Options(more ...cooper.Option) []cooper.Option {
	return append([]cooper.Option{
		cooper.Protocols("websocket"),
		cooper.Subprotocols("echo.v1"),
		cooper.Deflate(Deflate),
		cooper.OnError(func(err error) { log.Print(err) }),
	}, more...)
}

// MaxMessageSize bounds a message, as sent and after decompression; a
// larger one ends the connection with close code 1009.
const MaxMessageSize = 1 << 20

// Serve echoes every text and binary message the client sends on conn
// back to it, after prefix, until the client closes the connection or
// hs.Request's context is done (the Upgrader shuts down), when it says
// goodbye with close code 1001. coopergobwas answers pings and the closing
// handshake, and gives a client that breaks the protocol the close code
// RFC 6455 names. Serve closes conn, and returns nil after a closing
// handshake, a shutdown, or a client that went away between messages.
func Serve(conn net.Conn, hs *cooper.Handshake, prefix string) error {
	c := coopergobwas.NewConn(conn, hs)
	defer c.Close()
	c.SetReadLimit(MaxMessageSize)
	ctx, said := hs.Request.Context(), make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(said)
		c.CloseWith(ws.StatusGoingAway, "server shutting down") // ends ReadMessage below
	})
	defer func() {
		if !stop() {
			<-said
		}
	}()
	for {
		op, msg, err := c.ReadMessage()
		if err == nil {
			err = c.WriteMessage(op, append([]byte(prefix), msg...))
		}
		switch {
		case err == nil:
		case errors.As(err, new(wsutil.ClosedError)), errors.Is(err, io.EOF), ctx.Err() != nil:
			return nil // a closing handshake, a client gone between messages, a shutdown
		default:
			return err
		}
	}
}

// Announced returns a handler for [cooper.Upgrader.Handler] that prints to
// out how each WebSocket came, from hs.Request: its HTTP version, and
// whether as an upgrade (HTTP/1.1) or an extended CONNECT (HTTP/2, RFC
// 8441, and HTTP/3, RFC 9220), for instance
//
//	websocket over HTTP/2.0 (extended CONNECT) from 127.0.0.1:53012
//
// then serves it with Serve, and logs the error that ended it, if any.
func Announced(out io.Writer) func(conn net.Conn, hs *cooper.Handshake) {
	var mu sync.Mutex // the handlers print from their goroutines
	return func(conn net.Conn, hs *cooper.Handshake) {
		how := "upgrade"
		if hs.Request.ProtoMajor >= 2 {
			how = "extended CONNECT"
		}
		mu.Lock()
		fmt.Fprintf(out, "websocket over %s (%s) from %s\n", hs.Request.Proto, how, conn.RemoteAddr())
		mu.Unlock()
		if err := Serve(conn, hs, ""); err != nil {
			log.Printf("%s: %v", conn.RemoteAddr(), err)
		}
	}
}
