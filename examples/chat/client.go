package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergobwas"
)

const (
	writeWait      = 10 * time.Second       // for one message to be written
	pongWait       = 60 * time.Second       // for anything, a pong at least, from the client
	pingPeriod     = pongWait * 9 / 10      // between pings, shorter than pongWait
	maxMessageSize = 512                    // the longest message a client may send
	queueSize      = 256                    // messages waiting for a client before it is dropped
	goodbye        = "server shutting down" // the reason of the close frame on shutdown
)

// A client is someone in the room: a WebSocket connection, and the queue of
// messages on their way to it.
type client struct {
	hub  *hub
	raw  net.Conn
	conn *coopergobwas.Conn
	send chan []byte // closed by the hub when the client leaves the room
}

// serve is the Upgrader's handler: it runs on a goroutine of its own for
// each connection, as its reader, with one more goroutine as its writer, and
// returns once both are done.
func (h *hub) serve(conn net.Conn, hs *cooper.Handshake) {
	c := &client{hub: h, raw: conn, conn: coopergobwas.NewConn(conn, hs), send: make(chan []byte, queueSize)}
	if !h.enter(c) {
		c.conn.CloseWith(ws.StatusGoingAway, goodbye)
		return
	}
	written := make(chan struct{})
	go c.write(hs.Request.Context(), written)
	c.read()
	h.leave(c)
	<-written
}

// read passes every message the client sends to the room, one line of
// text each, until the connection ends.
func (c *client) read() {
	c.conn.SetReadLimit(maxMessageSize)
	c.raw.SetReadDeadline(time.Now().Add(pongWait))
	c.conn.SetPongHandler(func(string) error { return c.raw.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			var closed wsutil.ClosedError
			if !errors.As(err, &closed) && !errors.Is(err, net.ErrClosed) && err != io.EOF {
				log.Printf("%s: %v", c.raw.RemoteAddr(), err)
			}
			return
		}
		c.hub.say(bytes.TrimSpace(bytes.ReplaceAll(msg, []byte{'\n'}, []byte{' '})))
	}
}

// write sends the room's messages to the client, those queued together in
// one WebSocket message, a line each, and pings it, until the hub closes
// its queue or ctx, the request's, ends: then it says goodbye with 1001.
func (c *client) write(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	ping := time.NewTicker(pingPeriod)
	defer ping.Stop()
	var buf bytes.Buffer
	for {
		select {
		case msg, ok := <-c.send:
			if !ok { // out of the room: the reader has ended, or the client is too slow
				c.conn.Close()
				return
			}
			buf.Reset()
			buf.Write(msg)
			for range len(c.send) {
				if msg, ok := <-c.send; ok {
					buf.WriteByte('\n')
					buf.Write(msg)
				}
			}
			c.raw.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(ws.OpText, buf.Bytes()); err != nil {
				c.conn.Close()
				return
			}
		case <-ping.C:
			c.raw.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.conn.WriteMessage(ws.OpPing, nil); err != nil {
				c.conn.Close()
				return
			}
		case <-ctx.Done(): // the Upgrader is shutting down
			c.raw.SetWriteDeadline(time.Now().Add(writeWait))
			c.conn.CloseWith(ws.StatusGoingAway, goodbye)
			return
		}
	}
}
