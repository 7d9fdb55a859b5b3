package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	gorilla "github.com/gorilla/websocket"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/testkit/wsclient"
)

// cooperClient is cooper's client (Dial) with a gobwas/ws framing layer
// that honours what the Handshake reports was agreed.
type cooperClient struct {
	p   *peer
	tap *tap // beneath p: the messages each way on the wire
	hs  cooper.Handshake
	ext string
}

// dialCooper dials with cooper.Dial, offering permessage-deflate as offer
// says when it is not nil.
func dialCooper(offer *cooper.DeflateParams) wsclient.Dialer {
	return func(ctx context.Context, url string, subprotocols ...string) (wsclient.Conn, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		c := &cooperClient{}
		up := []cooper.UpgradeOption{
			cooper.WithSubprotocols(subprotocols...),
			cooper.WithHandshake(&c.hs),
			cooper.WithResponseValidator(func(req *http.Request, resp *http.Response) error {
				c.ext = resp.Header.Get("Sec-WebSocket-Extensions")
				return nil
			}),
		}
		if offer != nil {
			up = append(up, cooper.WithDeflate(*offer))
		}
		conn, err := cooper.Dial(req, cooper.WithProtocol("websocket"), cooper.WithUpgradeOptions(up...))
		if err != nil {
			return nil, err
		}
		c.tap = &tap{Conn: conn}
		c.p = newPeer(c.tap, c.hs.Deflate)
		return c, nil
	}
}

func (c *cooperClient) Send(ctx context.Context, m wsclient.Message) error {
	c.p.conn.SetWriteDeadline(deadline(ctx))
	op := ws.OpText
	if m.Binary {
		op = ws.OpBinary
	}
	return c.p.write(op, m.Data)
}

func (c *cooperClient) Receive(ctx context.Context) (wsclient.Message, error) {
	c.p.conn.SetReadDeadline(deadline(ctx))
	op, data, err := c.p.read()
	if err == nil && op == ws.OpClose {
		code, reason := ws.ParseCloseFrameData(data)
		err = fmt.Errorf("the server closed with %d %q", code, reason)
	}
	return wsclient.Message{Binary: op == ws.OpBinary, Data: data}, err
}

func (c *cooperClient) Close(ctx context.Context, code int, reason string) error {
	defer c.p.conn.Close()
	c.p.conn.SetDeadline(deadline(ctx))
	if err := c.p.writeClose(ws.StatusCode(code), reason); err != nil {
		return err
	}
	op, data, err := c.p.read() // answers pings on the way
	switch {
	case err != nil:
		return fmt.Errorf("waiting for the server's close frame: %w", err)
	case op != ws.OpClose:
		return errors.New("a data message came before the server's close frame")
	}
	if got, _ := ws.ParseCloseFrameData(data); got != ws.StatusCode(code) {
		return fmt.Errorf("the server's close code is %d, want %d", got, code)
	}
	return nil
}

func (c *cooperClient) Subprotocol() string { return c.hs.Subprotocol }
func (c *cooperClient) Extensions() string  { return c.ext }

// deadline returns ctx's deadline, which the tests always set.
func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// Offers of cooper's client.
var (
	offerContext   = &cooper.DeflateParams{}
	offerNoContext = &noContextTakeover
	offerWindow10  = &cooper.DeflateParams{ServerMaxWindowBits: 10}
)

// A foreignServer is a WebSocket echo server written with another
// library, speaking serverSubprotocols, on a fresh loopback server.
type foreignServer struct {
	start func(t *testing.T) (url string)
	// picks is the subprotocol it agrees to when the client offers
	// clientSubprotocols, whose order is the reverse of its own.
	picks string
}

// runAgainst dials server with cooper's client offering offer, checks what
// the Handshake reports was agreed and the answer's extensions, exchanges
// every message both ways, checks the client's context takeover on the
// wire, closes, and returns the client.
func runAgainst(t *testing.T, server foreignServer, offer, agreed *cooper.DeflateParams, extensions string) *cooperClient {
	t.Helper()
	url := server.start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := dialCooper(offer)(ctx, url, clientSubprotocols...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := cl.(*cooperClient)
	if c.hs.Protocol != "websocket" || c.hs.Subprotocol != server.picks {
		t.Errorf("Handshake: protocol %q, subprotocol %q; want websocket, %s", c.hs.Protocol, c.hs.Subprotocol, server.picks)
	}
	checkDeflate(t, c.hs.Deflate, agreed)
	if c.ext != extensions {
		t.Errorf("Sec-WebSocket-Extensions = %q, want %q", c.ext, extensions)
	}
	if err := wsclient.Exchange(ctx, cl, exchange()); err != nil {
		t.Fatal(err)
	}
	if c.hs.Deflate != nil {
		checkTakeover(t, "client", c.tap.out.messages, c.hs.Deflate)
	}
	if err := cl.Close(ctx, 1000, ""); err != nil {
		t.Errorf("closing: %v", err)
	}
	return c
}

// TestCooperClient runs cooper's client against WebSocket servers written
// with gorilla/websocket, coder/websocket, gobwas/ws and the npm ws
// package, offering no compression, compression with context takeover and
// without, and a server window of 10 bits, and against ws servers that
// refuse context takeover one way only. gorilla and coder agree to their
// own first subprotocol, not the client's; each server spells and orders
// its answer its own way, which the client must accept. The wire shows the
// client's context takeover as agreed, and ws's too.
func TestCooperClient(t *testing.T) {
	both := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	coderBoth := "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
	gobwasBoth := "permessage-deflate;server_no_context_takeover;client_no_context_takeover"
	noWindow := &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
	cases := []struct {
		name       string
		server     foreignServer
		offer      *cooper.DeflateParams
		agreed     *cooper.DeflateParams
		extensions string
	}{
		{"gorilla, no offer", gorillaServer(true), nil, nil, ""},
		{"gorilla, context takeover offered: gorilla answers none both ways", gorillaServer(true), offerContext, agreedBoth, both},
		{"gorilla, no context takeover", gorillaServer(true), offerNoContext, agreedBoth, both},
		{"gorilla without compression", gorillaServer(false), offerContext, nil, ""},

		{"coder, no offer", coderServer(coder.CompressionContextTakeover), nil, nil, ""},
		{"coder, context takeover", coderServer(coder.CompressionContextTakeover), offerContext, noWindow, "permessage-deflate"},
		{"coder, no context takeover", coderServer(coder.CompressionContextTakeover), offerNoContext, agreedBoth, coderBoth},
		{"coder in no-context-takeover mode, context takeover offered", coderServer(coder.CompressionNoContextTakeover), offerContext, agreedBoth, coderBoth},
		{"coder, server window 10 declined", coderServer(coder.CompressionContextTakeover), offerWindow10, nil, ""},

		{"gobwas, no offer", gobwasServer, nil, nil, ""},
		{"gobwas, context takeover offered: wsflate's defaults answer none both ways", gobwasServer, offerContext, agreedBoth, gobwasBoth},
		{"gobwas, no context takeover", gobwasServer, offerNoContext, agreedBoth, gobwasBoth},

		{"ws, no offer", nodeServer(map[string]any{"perMessageDeflate": true}), nil, nil, ""},
		{"ws, server window 10 honoured", nodeServer(map[string]any{"perMessageDeflate": true}), offerWindow10,
			&cooper.DeflateParams{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}, "permessage-deflate; server_max_window_bits=10"},
		{"ws without compression", nodeServer(map[string]any{"perMessageDeflate": false}), offerContext, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runAgainst(t, c.server, c.offer, c.agreed, c.extensions) })
	}

	// ws keeps its compression context whenever it may, so the wire shows
	// the server's context takeover as agreed, as well as the client's.
	for _, c := range []struct {
		name       string
		ws         any // the server's perMessageDeflate option
		offer      *cooper.DeflateParams
		agreed     *cooper.DeflateParams
		extensions string
	}{
		{"ws, context takeover", true, offerContext, noWindow, "permessage-deflate"},
		{"ws, no context takeover", true, offerNoContext, agreedBoth,
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
		{"ws refusing its own context takeover only", map[string]any{"serverNoContextTakeover": true}, offerContext,
			agreedNoServerContext, "permessage-deflate; server_no_context_takeover"},
		{"ws refusing the client's context takeover only", map[string]any{"clientNoContextTakeover": true}, offerContext,
			agreedNoClientContext, "permessage-deflate; client_no_context_takeover"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := runAgainst(t, nodeServer(map[string]any{"perMessageDeflate": c.ws}), c.offer, c.agreed, c.extensions)
			checkTakeover(t, "server", cl.tap.in.messages, c.agreed)
		})
	}

	t.Run("gorilla ignores server_max_window_bits and answers without it, which cooper's client refuses", func(t *testing.T) {
		url := gorillaServer(true).start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := dialCooper(offerWindow10)(ctx, url, clientSubprotocols...)
		if !errors.Is(err, cooper.ErrExtensionMismatch) {
			t.Fatalf("dial = %v, want ErrExtensionMismatch", err)
		}
	})
}

// startForeign starts h on a fresh loopback server and returns its ws URL.
func startForeign(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewUnstartedServer(h)
	s.Config.ReadHeaderTimeout = 10 * time.Second
	s.Start()
	t.Cleanup(s.Close)
	return "ws" + strings.TrimPrefix(s.URL, "http") + "/echo"
}

// gorillaServer is a gorilla/websocket echo server, with compression when
// compress.
func gorillaServer(compress bool) foreignServer {
	return foreignServer{picks: "v2.echo", start: func(t *testing.T) string {
		u := gorilla.Upgrader{Subprotocols: serverSubprotocols, EnableCompression: compress}
		return startForeign(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := u.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetReadLimit(maxMessage)
			for {
				typ, p, err := c.ReadMessage()
				if err != nil || c.WriteMessage(typ, p) != nil {
					return
				}
			}
		}))
	}}
}

// coderServer is a coder/websocket echo server in compression mode mode.
func coderServer(mode coder.CompressionMode) foreignServer {
	return foreignServer{picks: "v2.echo", start: func(t *testing.T) string {
		return startForeign(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := coder.Accept(w, r, &coder.AcceptOptions{Subprotocols: serverSubprotocols, CompressionMode: mode})
			if err != nil {
				return
			}
			defer c.CloseNow()
			c.SetReadLimit(maxMessage)
			for {
				typ, p, err := c.Read(r.Context())
				if err != nil || c.Write(r.Context(), typ, p) != nil {
					return
				}
			}
		}))
	}}
}

// gobwasServer is a gobwas/ws echo server that negotiates permessage-deflate
// with wsflate's default parameters and frames as the echo does. Its
// Protocol callback sees the client's subprotocols in order, so the
// client's order wins.
//
// wsflate's Extension answers any offer it accepts with its own
// parameters, but its Accepted method returns the offer's, so what was
// agreed is taken from the answer: its default parameters.
var gobwasServer = foreignServer{picks: "v1.echo", start: func(t *testing.T) string {
	return startForeign(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ext := wsflate.Extension{Parameters: wsflate.DefaultParameters}
		u := ws.HTTPUpgrader{
			Protocol:  func(p string) bool { return p == serverSubprotocols[0] || p == serverSubprotocols[1] },
			Negotiate: func(o httphead.Option) (httphead.Option, error) { return ext.Negotiate(o) },
		}
		conn, _, _, err := u.Upgrade(r, w)
		if err != nil {
			return
		}
		hs := &cooper.Handshake{}
		if _, ok := ext.Accepted(); ok {
			hs.Deflate = &cooper.DeflateParams{
				ServerNoContextTakeover: wsflate.DefaultParameters.ServerNoContextTakeover,
				ClientNoContextTakeover: wsflate.DefaultParameters.ClientNoContextTakeover,
			}
		}
		echo(conn, hs)
	}))
}}

// nodeServer is an echo server of the npm ws package, run by
// interop/node/server.mjs with the given options.
func nodeServer(options map[string]any) foreignServer {
	return foreignServer{picks: "v1.echo", start: func(t *testing.T) string {
		node := program(t, "node", installNode)
		if _, err := os.Stat(filepath.Join("node", "node_modules", "ws", "package.json")); err != nil {
			missing(t, "the npm package ws", installNodePackages)
		}
		opts, err := json.Marshal(map[string]any{"protocols": serverSubprotocols, "ws": options})
		if err != nil {
			t.Fatal(err)
		}
		script, err := filepath.Abs(filepath.Join("node", "server.mjs"))
		if err != nil {
			t.Fatal(err)
		}
		p := start(t, node, script, string(opts))
		var ready struct{ Port int }
		if err := p.await(10*time.Second, func() bool {
			return json.Unmarshal(firstLine(p.output.Bytes()), &ready) == nil && ready.Port != 0
		}); err != nil {
			t.Fatalf("server.mjs did not say its port: %v", err)
		}
		return "ws://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ready.Port)) + "/echo"
	}}
}

// firstLine returns the first line of b, without its newline.
func firstLine(b []byte) []byte {
	line, _, _ := strings.Cut(string(b), "\n")
	return []byte(line)
}
