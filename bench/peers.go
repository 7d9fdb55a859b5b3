package main

import (
	"context"
	"net"
	"net/http"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"

	"lowbit.dev/cooper"
)

// The servers compared. Each upgrades with the browser's offer (subprotocol
// "chat", permessage-deflate), echoes one message through its own read and
// write API, then waits for the client to go away. Every one hands the
// connection to a goroutine of its own and returns from ServeHTTP, as
// cooper does, so none keeps net/http's per-connection state while idle.

// cooperOptions are cooper's options in both of its rows.
func cooperOptions() []cooper.Option {
	return []cooper.Option{
		cooper.Protocols("websocket"),
		cooper.Subprotocols("chat"),
		cooper.Deflate(cooper.DeflateParams{}),
	}
}

// cooperServer serves cooper.Hijack, whose handler gets the connection and
// the protocol, with the shared echo.
func cooperServer(ln net.Listener, st *serverState) error {
	return serveHTTP(ln, cooper.Hijack(func(c net.Conn, _ string) { echo(c, st) }, cooperOptions()...))
}

// cooperHandlerServer serves cooper's Upgrader.Handler, whose handler also
// gets the Handshake (subprotocol, deflate parameters, the request with a
// context that outlives ServeHTTP), with the shared echo.
func cooperHandlerServer(ln net.Listener, st *serverState) error {
	u := cooper.New(cooperOptions()...)
	return serveHTTP(ln, u.Handler(func(c net.Conn, _ *cooper.Handshake) { echo(c, st) }))
}

// gorillaServer serves gorilla's Upgrader with compression negotiated and
// write compression turned off on each connection.
func gorillaServer(ln net.Listener, st *serverState) error {
	up := gorilla.Upgrader{Subprotocols: []string{"chat"}, EnableCompression: true}
	return serveHTTP(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			st.fail(err)
			return
		}
		c.EnableWriteCompression(false)
		go func() {
			defer c.Close()
			echoOnce(st, c.ReadMessage, c.WriteMessage)
		}()
	}))
}

// coderServer serves coder/websocket's Accept with context takeover; it
// compresses only messages of 512 bytes or more, so never the echo.
func coderServer(ln net.Listener, st *serverState) error {
	opts := &websocket.AcceptOptions{
		Subprotocols:    []string{"chat"},
		CompressionMode: websocket.CompressionContextTakeover,
	}
	return serveHTTP(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			st.fail(err)
			return
		}
		go func() {
			defer c.CloseNow()
			// r's context ends with ServeHTTP; the connection outlives it.
			ctx := context.Background()
			echoOnce(st,
				func() (websocket.MessageType, []byte, error) { return c.Read(ctx) },
				func(typ websocket.MessageType, p []byte) error { return c.Write(ctx, typ, p) })
		}()
	}))
}

// gobwasServer serves gobwas/ws's HTTPUpgrader with wsflate negotiation
// (its default parameters: no context takeover) and echoes with wsutil,
// which never compresses.
func gobwasServer(ln net.Listener, st *serverState) error {
	return serveHTTP(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ext := wsflate.Extension{Parameters: wsflate.DefaultParameters}
		up := ws.HTTPUpgrader{Protocol: isChat, Negotiate: ext.Negotiate}
		c, rw, _, err := up.Upgrade(r, w)
		if err != nil {
			st.fail(err)
			return
		}
		if rw.Reader.Buffered() > 0 {
			c.Close()
			st.fail(errEarlyData)
			return
		}
		go gobwasEcho(c, st)
	}))
}

// gobwasRawServer accepts connections itself and upgrades them with
// gobwas/ws's Upgrader, which reads the request off the connection without
// net/http: an outside reference for what net/http costs.
func gobwasRawServer(ln net.Listener, st *serverState) error {
	return serveConns(ln, func(c net.Conn) {
		ext := wsflate.Extension{Parameters: wsflate.DefaultParameters}
		up := ws.Upgrader{Protocol: func(p []byte) bool { return string(p) == "chat" }, Negotiate: ext.Negotiate}
		if _, err := up.Upgrade(c); err != nil {
			c.Close()
			st.fail(err)
			return
		}
		gobwasEcho(c, st)
	})
}

// isChat reports whether a subprotocol is "chat", the one the servers speak.
func isChat(p string) bool { return p == "chat" }

// gobwasEcho echoes one message on c with wsutil, then waits for the client
// to go away.
func gobwasEcho(c net.Conn, st *serverState) {
	defer c.Close()
	echoOnce(st,
		func() (ws.OpCode, []byte, error) {
			p, op, err := wsutil.ReadClientData(c)
			return op, p, err
		},
		func(op ws.OpCode, p []byte) error { return wsutil.WriteServerMessage(c, op, p) })
}

// echoOnce is the echo of the servers built on a library's message API:
// it reads one message with read and sends it back with write, counts the
// echo, or the error, in st, then reads again, which returns when the
// client goes away. T is the library's message type.
func echoOnce[T any](st *serverState, read func() (T, []byte, error), write func(T, []byte) error) {
	typ, p, err := read()
	if err == nil {
		err = write(typ, p)
	}
	if err != nil {
		st.fail(err)
		return
	}
	st.echoes.Add(1)
	read()
}

// gwsServer serves gws's Upgrader with permessage-deflate on (no context
// takeover, so messages under 512 bytes go out uncompressed) and echoes
// from its OnMessage event.
func gwsServer(ln net.Listener, st *serverState) error {
	up := gws.NewUpgrader(gwsEcho{st: st}, &gws.ServerOption{
		PermessageDeflate: gws.PermessageDeflate{Enabled: true},
		SubProtocols:      []string{"chat"},
	})
	return serveHTTP(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			st.fail(err)
			return
		}
		go c.ReadLoop()
	}))
}

// gwsEcho is gws's event handler: it echoes every message.
type gwsEcho struct {
	gws.BuiltinEventHandler
	st *serverState
}

func (e gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	if err := c.WriteMessage(m.Opcode, m.Bytes()); err != nil {
		e.st.fail(err)
		return
	}
	e.st.echoes.Add(1)
}

// bareServer accepts TCP connections and parks a goroutine in Read on each,
// the least an idle connection can cost a Go server. It first writes one
// byte, so that a client knows it was accepted and does not outrun the
// listen queue.
func bareServer(ln net.Listener, st *serverState) error {
	return serveConns(ln, func(c net.Conn) {
		defer c.Close()
		if _, err := c.Write(bareGreeting); err != nil {
			st.fail(err)
			return
		}
		st.echoes.Add(1)
		waitClose(c)
	})
}

// bareGreeting is what bareServer writes on each connection it accepts.
// read-only
var bareGreeting = []byte{0}
