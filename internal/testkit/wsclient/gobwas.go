package wsclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// Gobwas returns a Dialer of gobwas/ws's client, which leaves framing and
// compression to its caller: this one frames each message as one frame
// and, if compress, offers permessage-deflate with wsflate's default
// parameters (no context takeover both ways) and compresses every message
// once it is agreed.
func Gobwas(compress bool) Dialer {
	return func(ctx context.Context, url string, subprotocols ...string) (Conn, error) {
		d := ws.Dialer{Protocols: subprotocols, Timeout: 10 * time.Second}
		if compress {
			d.Extensions = []httphead.Option{wsflate.DefaultParameters.Option()}
		}
		conn, br, hs, err := d.Dial(ctx, url)
		if err != nil {
			return nil, err
		}
		g := &gobwasConn{conn: conn, r: conn, protocol: hs.Protocol}
		if br != nil {
			g.r = io.MultiReader(br, conn)
		}
		for _, opt := range hs.Extensions {
			var p wsflate.Parameters
			g.compress = g.compress || p.Parse(opt) == nil
		}
		// gobwas hands over the answer parsed; it is put back together.
		g.ext = Extensions(hs.Extensions)
		return g, nil
	}
}

type gobwasConn struct {
	conn     net.Conn
	r        io.Reader
	protocol string
	ext      string
	compress bool // permessage-deflate was agreed
}

func (g *gobwasConn) Send(ctx context.Context, m Message) error {
	g.conn.SetWriteDeadline(deadline(ctx))
	op := ws.OpText
	if m.Binary {
		op = ws.OpBinary
	}
	f := ws.NewFrame(op, true, bytes.Clone(m.Data))
	if g.compress {
		var err error
		if f, err = wsflate.CompressFrame(f); err != nil {
			return err
		}
	}
	return ws.WriteFrame(g.conn, ws.MaskFrameInPlace(f))
}

// readFrame reads the next frame, decompressed when it came compressed.
func (g *gobwasConn) readFrame(ctx context.Context) (ws.Frame, error) {
	g.conn.SetReadDeadline(deadline(ctx))
	f, err := ws.ReadFrame(g.r)
	if err != nil {
		return f, err
	}
	if f.Header.Rsv1() {
		if !g.compress {
			return f, errors.New("a compressed frame without permessage-deflate")
		}
		return wsflate.DecompressFrame(f)
	}
	return f, nil
}

func (g *gobwasConn) Receive(ctx context.Context) (Message, error) {
	f, err := g.readFrame(ctx)
	if err != nil {
		return Message{}, err
	}
	if !f.Header.Fin || f.Header.OpCode != ws.OpText && f.Header.OpCode != ws.OpBinary {
		return Message{}, fmt.Errorf("frame %+v, want a whole data message", f.Header)
	}
	return Message{Binary: f.Header.OpCode == ws.OpBinary, Data: f.Payload}, nil
}

func (g *gobwasConn) Close(ctx context.Context, code int, reason string) error {
	defer g.conn.Close()
	g.conn.SetWriteDeadline(deadline(ctx))
	if err := ws.WriteFrame(g.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))); err != nil {
		return err
	}
	for {
		f, err := g.readFrame(ctx)
		if err != nil {
			return fmt.Errorf("waiting for the server's close frame: %w", err)
		}
		switch f.Header.OpCode {
		case ws.OpPing, ws.OpPong:
			continue
		case ws.OpClose:
			if got, _ := ws.ParseCloseFrameData(f.Payload); got != ws.StatusCode(code) {
				return fmt.Errorf("the server's close code = %d, want %d", got, code)
			}
			return nil
		}
		return errors.New("a data frame came before the server's close frame")
	}
}

func (g *gobwasConn) Subprotocol() string { return g.protocol }
func (g *gobwasConn) Extensions() string  { return g.ext }
