// Package wsecho is the WebSocket echo the examples share: after cooper's
// handshake, github.com/gobwas/ws frames the messages on the connection,
// and permessage-deflate compresses them when the handshake agreed it.
package wsecho

import (
	"bytes"
	"compress/flate"
	"context"
	"errors"
	"io"
	"net"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
	"lowbit.dev/cooper"
)

// Deflate is the permessage-deflate policy Serve honours, for
// [cooper.Deflate]. wsflate starts every message with a fresh compressor
// and decompressor, so neither side may keep its compression context from
// one message to the next. Read-only.
var Deflate = cooper.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

// MaxMessageSize bounds a message, after decompression; a larger one ends
// the connection with close code 1009.
const MaxMessageSize = 1 << 20

// Serve echoes every text and binary message the client sends on conn
// back to it, after prefix, and answers pings and the closing handshake,
// until the client closes the connection or hs.Request's context is done
// (the Upgrader shuts down), when it says goodbye with close code 1001.
// When hs.Deflate is set, incoming compressed messages are decompressed
// and every outgoing message is compressed. A client that breaks the
// protocol gets the close code RFC 6455 names. Serve closes conn, and
// returns nil after a closing handshake, a shutdown, or a client that
// went away between messages.
func Serve(conn net.Conn, hs *cooper.Handshake, prefix string) error {
	defer conn.Close()
	if d := hs.Deflate; d != nil && !(d.ServerNoContextTakeover && d.ClientNoContextTakeover) {
		return errors.New("wsecho: permessage-deflate was agreed with context takeover, which wsecho does not keep; use wsecho.Deflate as the policy")
	}
	ctx := hs.Request.Context()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	e := newEcho(conn, hs.Deflate != nil)
	for {
		err := e.message(prefix)
		var closed wsutil.ClosedError
		var proto ws.ProtocolError
		switch {
		case err == nil:
			continue
		case errors.As(err, &closed):
			return nil // the control handler has answered the close
		case err == io.EOF:
			return nil // the client went away between messages, without a close
		case ctx.Err() != nil:
			e.close(ws.StatusGoingAway, "server shutting down")
			return nil
		case errors.As(err, &proto):
			e.close(ws.StatusProtocolError, string(proto))
		case errors.Is(err, wsutil.ErrMessageTooLarge), errors.Is(err, errTooLarge):
			e.close(ws.StatusMessageTooBig, "message too big")
		case errors.Is(err, errNotUTF8), isCorrupt(err):
			e.close(ws.StatusInvalidFramePayloadData, err.Error())
		}
		return err
	}
}

var (
	errTooLarge = errors.New("wsecho: message too big")
	errNotUTF8  = errors.New("wsecho: text message is not UTF-8")
)

// isCorrupt reports whether err says a compressed message did not
// decompress.
func isCorrupt(err error) bool {
	var corrupt flate.CorruptInputError
	return errors.As(err, &corrupt)
}

// An echo is the state of one connection: a frame reader and writer and,
// with permessage-deflate, a decompressor and compressor.
type echo struct {
	conn net.Conn
	rd   *wsutil.Reader
	wr   *wsutil.Writer
	in   wsflate.MessageState // whether the message being read is compressed
	out  wsflate.MessageState // whether messages sent are: always, with deflate
	fr   *wsflate.Reader      // nil without deflate
	fw   *wsflate.Writer      // nil without deflate
	msg  bytes.Buffer
}

func newEcho(conn net.Conn, deflate bool) *echo {
	state := ws.StateServerSide
	if deflate {
		state |= ws.StateExtended // RSV1 marks a compressed message
	}
	e := &echo{conn: conn}
	e.rd = &wsutil.Reader{
		Source:         conn,
		State:          state,
		MaxMessageSize: MaxMessageSize,
		OnIntermediate: wsutil.ControlFrameHandler(conn, ws.StateServerSide),
	}
	e.wr = wsutil.NewWriter(conn, state, ws.OpText)
	if deflate {
		e.rd.Extensions = []wsutil.RecvExtension{&e.in}
		e.out.SetCompressed(true)
		e.wr.SetExtensions(&e.out)
		e.fr = wsflate.NewReader(nil, func(r io.Reader) wsflate.Decompressor {
			return inflater{flate.NewReader(r)}
		})
		e.fw = wsflate.NewWriter(nil, func(w io.Writer) wsflate.Compressor {
			f, _ := flate.NewWriter(w, flate.BestSpeed) // a valid level: never an error
			return f
		})
	}
	return e
}

// message reads the next frame: it answers a control frame, or reads a
// whole message and sends it back after prefix.
func (e *echo) message(prefix string) error {
	hdr, err := e.rd.NextFrame()
	if err != nil {
		return err
	}
	if hdr.OpCode.IsControl() {
		return wsutil.ControlFrameHandler(e.conn, ws.StateServerSide)(hdr, e.rd)
	}
	var src io.Reader = e.rd
	if e.in.IsCompressed() {
		e.fr.Reset(e.rd)
		src = e.fr
	}
	e.msg.Reset()
	if _, err := e.msg.ReadFrom(io.LimitReader(src, MaxMessageSize+1)); err != nil {
		return err
	}
	switch {
	case e.msg.Len() > MaxMessageSize:
		return errTooLarge
	case hdr.OpCode == ws.OpText && !utf8.Valid(e.msg.Bytes()):
		return errNotUTF8
	}

	e.wr.ResetOp(hdr.OpCode)
	var dst io.Writer = e.wr
	if e.fw != nil {
		e.fw.Reset(e.wr)
		dst = e.fw
	}
	io.WriteString(dst, prefix)
	dst.Write(e.msg.Bytes())
	if e.fw != nil {
		if err := e.fw.Close(); err != nil {
			return err
		}
	}
	return e.wr.Flush()
}

// An inflater is a compress/flate decompressor that wsflate can reset for
// the next message instead of allocating a new one.
type inflater struct{ io.ReadCloser }

func (f inflater) Reset(r io.Reader) { f.ReadCloser.(flate.Resetter).Reset(r, nil) }

// close starts the closing handshake with code and an ASCII reason of 123
// bytes at most, then discards what the client still sends until it closes
// the connection, a second at most, so that it reads the close frame
// rather than a reset.
func (e *echo) close(code ws.StatusCode, reason string) {
	e.conn.SetDeadline(time.Now().Add(time.Second))
	if ws.WriteFrame(e.conn, ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason))) == nil {
		io.Copy(io.Discard, e.conn)
	}
}
