package interop

import (
	"testing"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/testkit/wsclient"
)

// A clientCase is one client configuration against a server policy, with
// what they must agree on.
type clientCase struct {
	name       string
	dial       wsclient.Dialer
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

// agreedBoth is what an offer of no context takeover both ways agrees on;
// agreedNoServerContext and agreedNoClientContext, an offer that allows it
// both ways, with the server or the client refusing it one way (as
// noServerContextTakeover or noClientContextTakeover does).
var (
	agreedBoth            = &cooper.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
	agreedNoServerContext = &cooper.DeflateParams{ServerNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
	agreedNoClientContext = &cooper.DeflateParams{ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
)

// runClients runs each case as a subtest, then checks with plain, a
// dialer that does not compress, that a subprotocol the server does not
// speak is not agreed: every Go client's test.
func runClients(t *testing.T, plain wsclient.Dialer, cases []clientCase) {
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
// closes, and checks what e saw. The Go clients keep their compression
// context whenever they may, so the wire shows the client's context
// takeover as agreed, as well as the server's.
func runClientAt(t *testing.T, e *echoServer, url string, c clientCase) {
	t.Helper()
	wsclient.Conversation{
		Offer:       clientSubprotocols,
		Subprotocol: "v1.echo", // the client's first choice
		Extensions:  c.extensions,
		Messages:    exchange(),
		Code:        1000,
	}.Have(t, c.dial, url)
	r := e.report(t)
	checkReport(t, r, "v1.echo", c.deflate)
	if c.deflate != nil {
		checkTakeover(t, "client", r.received, r.hs.Deflate)
	}
}

// runUnknownSubprotocol checks that a client offering only a subprotocol
// the server does not speak is upgraded without one, and can talk.
func runUnknownSubprotocol(t *testing.T, dial wsclient.Dialer) {
	t.Helper()
	e := startEcho(t, cooper.Subprotocols(serverSubprotocols...))
	wsclient.Conversation{Offer: []string{"mqtt"}, Messages: exchange()[:1], Code: 1000}.Have(t, dial, e.wsURL("/echo"))
	if r := e.report(t); r.hs.Subprotocol != "" || r.closeCode != ws.StatusNormalClosure {
		t.Errorf("the server agreed subprotocol %q and got close code %d, want none and 1000", r.hs.Subprotocol, r.closeCode)
	}
}

// noContextTakeoverCases are the cases of a client that compresses or not,
// as dial's argument says, and when it does offers no context takeover
// both ways only (gorilla, and gobwas with wsflate's defaults): off, on
// against a server that could keep its context, which must still answer
// no context takeover both ways, and on against a server without Deflate.
func noContextTakeoverCases(dial func(compress bool) wsclient.Dialer) []clientCase {
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
	runClients(t, wsclient.Gorilla(false), noContextTakeoverCases(wsclient.Gorilla))
}

// TestCoderClient runs coder/websocket's client against cooper in each of
// its compression modes.
func TestCoderClient(t *testing.T) {
	runClients(t, wsclient.Coder(coder.CompressionDisabled), []clientCase{
		{name: "compression disabled", dial: wsclient.Coder(coder.CompressionDisabled), policy: &contextTakeover},
		{name: "no context takeover", dial: wsclient.Coder(coder.CompressionNoContextTakeover), policy: &contextTakeover,
			extensions: bothNoContext, deflate: agreedBoth},
		{name: "context takeover, agreed", dial: wsclient.Coder(coder.CompressionContextTakeover), policy: &contextTakeover,
			extensions: "permessage-deflate", deflate: &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{name: "context takeover, against a server that refuses it both ways", dial: wsclient.Coder(coder.CompressionContextTakeover), policy: &noContextTakeover,
			extensions: bothNoContext, deflate: agreedBoth},
		{name: "context takeover, against a server that refuses its own only", dial: wsclient.Coder(coder.CompressionContextTakeover),
			policy: &noServerContextTakeover, extensions: "permessage-deflate; server_no_context_takeover", deflate: agreedNoServerContext},
		{name: "context takeover, against a server that refuses the client's only", dial: wsclient.Coder(coder.CompressionContextTakeover),
			policy: &noClientContextTakeover, extensions: "permessage-deflate; client_no_context_takeover", deflate: agreedNoClientContext},
		{name: "context takeover offered to a server without Deflate", dial: wsclient.Coder(coder.CompressionContextTakeover)},
	})
}

// TestGobwasClient runs gobwas/ws's client against cooper with
// compression off and with wsflate's default parameters (no context
// takeover both ways).
func TestGobwasClient(t *testing.T) {
	runClients(t, wsclient.Gobwas(false), noContextTakeoverCases(wsclient.Gobwas))
}
