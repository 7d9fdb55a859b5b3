package wsclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// Gorilla returns a Dialer of gorilla/websocket's client, which offers
// permessage-deflate if compress: no context takeover both ways, the only
// offer it makes, and it refuses an answer without both.
func Gorilla(compress bool) Dialer {
	return func(ctx context.Context, url string, subprotocols ...string) (Conn, error) {
		d := gorilla.Dialer{Subprotocols: subprotocols, EnableCompression: compress, HandshakeTimeout: 10 * time.Second}
		c, resp, err := d.DialContext(ctx, url, nil)
		if err != nil {
			return nil, dialError(err, resp)
		}
		c.SetReadLimit(readLimit)
		return &gorillaConn{c: c, ext: resp.Header.Get("Sec-WebSocket-Extensions")}, nil
	}
}

type gorillaConn struct {
	c   *gorilla.Conn
	ext string
}

func (g *gorillaConn) Send(ctx context.Context, m Message) error {
	g.c.SetWriteDeadline(deadline(ctx))
	typ := gorilla.TextMessage
	if m.Binary {
		typ = gorilla.BinaryMessage
	}
	return g.c.WriteMessage(typ, m.Data)
}

func (g *gorillaConn) Receive(ctx context.Context) (Message, error) {
	g.c.SetReadDeadline(deadline(ctx))
	typ, p, err := g.c.ReadMessage()
	return Message{Binary: typ == gorilla.BinaryMessage, Data: p}, err
}

func (g *gorillaConn) Close(ctx context.Context, code int, reason string) error {
	defer g.c.Close()
	if err := g.c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(code, reason), deadline(ctx)); err != nil {
		return err
	}
	g.c.SetReadDeadline(deadline(ctx))
	_, _, err := g.c.ReadMessage() // answers control frames on the way
	var ce *gorilla.CloseError
	switch {
	case err == nil:
		return errors.New("a data message came before the server's close frame")
	case !errors.As(err, &ce) || ce.Code != code:
		return fmt.Errorf("waiting for the server's close frame of %d: %w", code, err)
	}
	return nil
}

func (g *gorillaConn) Subprotocol() string { return g.c.Subprotocol() }
func (g *gorillaConn) Extensions() string  { return g.ext }
