package wsclient

import (
	"context"

	coder "github.com/coder/websocket"
)

// Coder returns a Dialer of coder/websocket's client in compression mode
// mode.
func Coder(mode coder.CompressionMode) Dialer {
	return func(ctx context.Context, url string, subprotocols ...string) (Conn, error) {
		c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{Subprotocols: subprotocols, CompressionMode: mode})
		if err != nil {
			return nil, dialError(err, resp)
		}
		c.SetReadLimit(readLimit)
		return &coderConn{c: c, ext: resp.Header.Get("Sec-WebSocket-Extensions")}, nil
	}
}

type coderConn struct {
	c   *coder.Conn
	ext string
}

func (c *coderConn) Send(ctx context.Context, m Message) error {
	typ := coder.MessageText
	if m.Binary {
		typ = coder.MessageBinary
	}
	return c.c.Write(ctx, typ, m.Data)
}

func (c *coderConn) Receive(ctx context.Context) (Message, error) {
	typ, p, err := c.c.Read(ctx)
	return Message{Binary: typ == coder.MessageBinary, Data: p}, err
}

// Close relies on coder's Close, which sends the close frame, waits up to
// 5 s for the server's, skipping data messages, and fails unless it
// carries code.
func (c *coderConn) Close(ctx context.Context, code int, reason string) error {
	return c.c.Close(coder.StatusCode(code), reason)
}

func (c *coderConn) Subprotocol() string { return c.c.Subprotocol() }
func (c *coderConn) Extensions() string  { return c.ext }
