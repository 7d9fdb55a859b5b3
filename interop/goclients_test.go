package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// A wsClient is one WebSocket library's client connection, seen through
// what the tests need.
type wsClient interface {
	send(ctx context.Context, m message) error
	receive(ctx context.Context) (message, error)
	// closeNormally sends a close frame with code 1000 and waits for the
	// server's, which must carry 1000 too.
	closeNormally(ctx context.Context) error
	// subprotocol and extensions are the Sec-WebSocket-Protocol and
	// Sec-WebSocket-Extensions the client agreed to.
	subprotocol() string
	extensions() string
}

// A dialer opens a client connection to url offering subprotocols.
type dialer func(ctx context.Context, url string, subprotocols []string) (wsClient, error)

// A clientCase is one client configuration against a server policy, with
// what they must agree on.
type clientCase struct {
	name       string
	dial       dialer
	policy     *cooper.DeflateParams // the server's Deflate option; nil: none
	extensions string                // the answer the client must get
	deflate    *cooper.DeflateParams // what Handshake.Deflate must be
}

// Subprotocols: the server speaks two, and clients offer them in the other
// order, so the client's order must win.
var (
	serverSubprotocols = []string{"v2.echo", "v1.echo"}
	clientSubprotocols = []string{"v1.echo", "v2.echo"}
)

const bothNoContext = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// agreedBoth is what an offer of no context takeover both ways agrees on.
var agreedBoth = &cooper.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}

// runClients runs each case as a subtest, then checks with plain, a
// dialer that does not compress, that a subprotocol the server does not
// speak is not agreed: every Go client's test.
func runClients(t *testing.T, plain dialer, cases []clientCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runClient(t, c) })
	}
	t.Run("a subprotocol the server does not speak is not agreed", func(t *testing.T) {
		runUnknownSubprotocol(t, plain)
	})
}

// runClient dials a fresh echo server as c says and runs runClientAt.
func runClient(t *testing.T, c clientCase) {
	t.Helper()
	opts := []cooper.Option{cooper.Subprotocols(serverSubprotocols...)}
	if c.policy != nil {
		opts = append(opts, cooper.Deflate(*c.policy))
	}
	e := startEcho(t, opts...)
	runClientAt(t, e, e.wsURL("/echo"), c)
}

// runClientAt dials url, which leads to e, with c's dialer, checks what
// the client agreed to, exchanges every message of exchange both ways,
// closes, and checks what e saw.
func runClientAt(t *testing.T, e *echoServer, url string, c clientCase) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := c.dial(ctx, url, clientSubprotocols)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := cl.subprotocol(); got != "v1.echo" {
		t.Errorf("the client's subprotocol = %q, want v1.echo (its first choice)", got)
	}
	if got := cl.extensions(); got != c.extensions {
		t.Errorf("the client's Sec-WebSocket-Extensions = %q, want %q", got, c.extensions)
	}
	for _, m := range exchange() {
		if err := cl.send(ctx, m); err != nil {
			t.Fatalf("sending %s: %v", m.name, err)
		}
		got, err := cl.receive(ctx)
		if err != nil {
			t.Fatalf("receiving the echo of %s: %v", m.name, err)
		}
		if got.binary != m.binary || !bytes.Equal(got.data, m.data) {
			t.Fatalf("echo of %s: binary %v, %d bytes; want binary %v, the %d bytes sent", m.name, got.binary, len(got.data), m.binary, len(m.data))
		}
	}
	if err := cl.closeNormally(ctx); err != nil {
		t.Errorf("closing: %v", err)
	}
	r := e.report(t)
	checkReport(t, r, "v1.echo", c.deflate)
	if c.deflate != nil && r.compressed == 0 {
		t.Errorf("the client sent no message compressed, with permessage-deflate agreed")
	}
}

// runUnknownSubprotocol checks that a client offering only a subprotocol
// the server does not speak is upgraded without one, and can talk.
func runUnknownSubprotocol(t *testing.T, dial dialer) {
	t.Helper()
	e := startEcho(t, cooper.Subprotocols(serverSubprotocols...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := dial(ctx, e.wsURL("/echo"), []string{"mqtt"})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := cl.subprotocol(); got != "" {
		t.Errorf("the client's subprotocol = %q, want none", got)
	}
	m := exchange()[0]
	if err := cl.send(ctx, m); err != nil {
		t.Fatal(err)
	}
	if got, err := cl.receive(ctx); err != nil || !bytes.Equal(got.data, m.data) {
		t.Fatalf("echo = %q, %v; want %q", got.data, err, m.data)
	}
	if err := cl.closeNormally(ctx); err != nil {
		t.Errorf("closing: %v", err)
	}
	if r := e.report(t); r.hs.Subprotocol != "" || r.closeCode != ws.StatusNormalClosure {
		t.Errorf("the server agreed subprotocol %q and got close code %d, want none and 1000", r.hs.Subprotocol, r.closeCode)
	}
}

// noContextTakeoverCases are the cases of a client that compresses or not,
// as dial's argument says, and when it does offers no context takeover
// both ways only (gorilla, and gobwas with wsflate's defaults): off, on
// against a server that could keep its context, which must still answer
// no context takeover both ways, and on against a server without Deflate.
func noContextTakeoverCases(dial func(compress bool) dialer) []clientCase {
	return []clientCase{
		{name: "compression off", dial: dial(false), policy: &contextTakeover},
		{name: "compression on, against a server that could keep context", dial: dial(true), policy: &contextTakeover,
			extensions: bothNoContext, deflate: agreedBoth},
		{name: "compression offered to a server without Deflate", dial: dial(true)},
	}
}

// TestGorillaClient runs gorilla/websocket's client against cooper with
// compression off and on. gorilla offers only no context takeover both
// ways and refuses an answer without both.
func TestGorillaClient(t *testing.T) {
	runClients(t, dialGorilla(false), noContextTakeoverCases(dialGorilla))
}

// TestCoderClient runs coder/websocket's client against cooper in each of
// its compression modes.
func TestCoderClient(t *testing.T) {
	runClients(t, dialCoder(coder.CompressionDisabled), []clientCase{
		{name: "compression disabled", dial: dialCoder(coder.CompressionDisabled), policy: &contextTakeover},
		{name: "no context takeover", dial: dialCoder(coder.CompressionNoContextTakeover), policy: &contextTakeover,
			extensions: bothNoContext, deflate: agreedBoth},
		{name: "context takeover, agreed", dial: dialCoder(coder.CompressionContextTakeover), policy: &contextTakeover,
			extensions: "permessage-deflate", deflate: &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{name: "context takeover, against a server that refuses it both ways", dial: dialCoder(coder.CompressionContextTakeover), policy: &noContextTakeover,
			extensions: bothNoContext, deflate: agreedBoth},
		{name: "context takeover offered to a server without Deflate", dial: dialCoder(coder.CompressionContextTakeover)},
	})
}

// TestGobwasClient runs gobwas/ws's client against cooper with
// compression off and with wsflate's default parameters (no context
// takeover both ways).
func TestGobwasClient(t *testing.T) {
	runClients(t, dialGobwas(false), noContextTakeoverCases(dialGobwas))
}

// gorilla/websocket

type gorillaClient struct {
	c   *gorilla.Conn
	ext string
}

func dialGorilla(compress bool) dialer {
	return func(ctx context.Context, url string, subprotocols []string) (wsClient, error) {
		d := gorilla.Dialer{Subprotocols: subprotocols, EnableCompression: compress, HandshakeTimeout: 10 * time.Second}
		c, resp, err := d.DialContext(ctx, url, nil)
		if err != nil {
			return nil, dialError(err, resp)
		}
		c.SetReadLimit(maxMessage)
		return &gorillaClient{c: c, ext: resp.Header.Get("Sec-WebSocket-Extensions")}, nil
	}
}

func (g *gorillaClient) send(ctx context.Context, m message) error {
	g.c.SetWriteDeadline(deadline(ctx))
	typ := gorilla.TextMessage
	if m.binary {
		typ = gorilla.BinaryMessage
	}
	return g.c.WriteMessage(typ, m.data)
}

func (g *gorillaClient) receive(ctx context.Context) (message, error) {
	g.c.SetReadDeadline(deadline(ctx))
	typ, p, err := g.c.ReadMessage()
	return message{binary: typ == gorilla.BinaryMessage, data: p}, err
}

func (g *gorillaClient) closeNormally(ctx context.Context) error {
	defer g.c.Close()
	if err := g.c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""), deadline(ctx)); err != nil {
		return err
	}
	g.c.SetReadDeadline(deadline(ctx))
	for {
		_, _, err := g.c.ReadMessage()
		var ce *gorilla.CloseError
		switch {
		case errors.As(err, &ce) && ce.Code == gorilla.CloseNormalClosure:
			return nil
		case err != nil:
			return fmt.Errorf("waiting for the server's close frame: %w", err)
		}
	}
}

func (g *gorillaClient) subprotocol() string { return g.c.Subprotocol() }
func (g *gorillaClient) extensions() string  { return g.ext }

// coder/websocket

type coderClient struct {
	c   *coder.Conn
	ext string
}

func dialCoder(mode coder.CompressionMode) dialer {
	return func(ctx context.Context, url string, subprotocols []string) (wsClient, error) {
		c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{Subprotocols: subprotocols, CompressionMode: mode})
		if err != nil {
			return nil, dialError(err, resp)
		}
		c.SetReadLimit(maxMessage)
		return &coderClient{c: c, ext: resp.Header.Get("Sec-WebSocket-Extensions")}, nil
	}
}

func (c *coderClient) send(ctx context.Context, m message) error {
	typ := coder.MessageText
	if m.binary {
		typ = coder.MessageBinary
	}
	return c.c.Write(ctx, typ, m.data)
}

func (c *coderClient) receive(ctx context.Context) (message, error) {
	typ, p, err := c.c.Read(ctx)
	return message{binary: typ == coder.MessageBinary, data: p}, err
}

// closeNormally relies on coder's Close, which sends the close frame and
// waits for the server's.
func (c *coderClient) closeNormally(ctx context.Context) error {
	return c.c.Close(coder.StatusNormalClosure, "")
}

func (c *coderClient) subprotocol() string { return c.c.Subprotocol() }
func (c *coderClient) extensions() string  { return c.ext }

// gobwas/ws, whose client leaves framing and compression to the caller.

type gobwasClient struct {
	conn     net.Conn
	r        io.Reader
	protocol string
	ext      string
	compress bool
}

func dialGobwas(compress bool) dialer {
	return func(ctx context.Context, url string, subprotocols []string) (wsClient, error) {
		d := ws.Dialer{Protocols: subprotocols, Timeout: 10 * time.Second}
		if compress {
			d.Extensions = []httphead.Option{wsflate.DefaultParameters.Option()}
		}
		conn, br, hs, err := d.Dial(ctx, url)
		if err != nil {
			return nil, err
		}
		g := &gobwasClient{conn: conn, r: conn, protocol: hs.Protocol}
		if br != nil {
			g.r = io.MultiReader(br, conn)
		}
		for _, opt := range hs.Extensions {
			var p wsflate.Parameters
			g.compress = g.compress || p.Parse(opt) == nil
		}
		// gobwas hands over the answer parsed; it is put back together.
		g.ext = wsclient.Extensions(hs.Extensions)
		return g, nil
	}
}

func (g *gobwasClient) send(ctx context.Context, m message) error {
	g.conn.SetWriteDeadline(deadline(ctx))
	op := ws.OpText
	if m.binary {
		op = ws.OpBinary
	}
	f := ws.NewFrame(op, true, bytes.Clone(m.data))
	if g.compress {
		var err error
		if f, err = wsflate.CompressFrame(f); err != nil {
			return err
		}
	}
	return ws.WriteFrame(g.conn, ws.MaskFrameInPlace(f))
}

// readFrame reads the next frame, decompressed when it came compressed.
func (g *gobwasClient) readFrame(ctx context.Context) (ws.Frame, error) {
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

func (g *gobwasClient) receive(ctx context.Context) (message, error) {
	f, err := g.readFrame(ctx)
	if err != nil {
		return message{}, err
	}
	if !f.Header.Fin || f.Header.OpCode != ws.OpText && f.Header.OpCode != ws.OpBinary {
		return message{}, fmt.Errorf("frame %+v, want a whole data message", f.Header)
	}
	return message{binary: f.Header.OpCode == ws.OpBinary, data: f.Payload}, nil
}

func (g *gobwasClient) closeNormally(ctx context.Context) error {
	defer g.conn.Close()
	g.conn.SetWriteDeadline(deadline(ctx))
	if err := ws.WriteFrame(g.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))); err != nil {
		return err
	}
	for {
		f, err := g.readFrame(ctx)
		if err != nil {
			return fmt.Errorf("waiting for the server's close frame: %w", err)
		}
		if f.Header.OpCode == ws.OpClose {
			if code, _ := ws.ParseCloseFrameData(f.Payload); code != ws.StatusNormalClosure {
				return fmt.Errorf("the server's close code = %d, want 1000", code)
			}
			return nil
		}
	}
}

func (g *gobwasClient) subprotocol() string { return g.protocol }
func (g *gobwasClient) extensions() string  { return g.ext }

// deadline returns ctx's deadline, which the tests always set.
func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// dialError adds a refused handshake's status and body to err.
func dialError(err error, resp *http.Response) error {
	if resp == nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%w (status %d, body %q)", err, resp.StatusCode, body)
}
