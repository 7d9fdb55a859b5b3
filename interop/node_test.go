package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"lowbit.dev/cooper"
)

// installNode says how to get Node.js; the built-in WebSocket needs 20.10
// or later (behind --experimental-websocket before 22).
const installNode = "install Node.js 20.10 or later, from your distribution or nodejs.org, so that node is on PATH"

// installNodePackages says how to get the npm packages of the node folder.
const installNodePackages = "install it with: cd interop/node && npm ci"

// A nodeResult is what interop/node/client.mjs prints.
type nodeResult struct {
	Error            string
	Client, Node     string
	Protocol         string
	Extensions       string // the client's own view: WebSocket.extensions
	ExtensionsHeader string // the ws package's: the answer's header
	exchanged
}

// exchanged is what interop/node/exchange.mjs reports of an exchange, in a
// browser or in Node: which messages came back, and the close event.
type exchanged struct {
	Messages []struct {
		Name   string
		Echoed bool
	}
	Close struct {
		Code     int
		WasClean bool
	}
}

// runNode runs client.mjs with node and flags against url, bounded by
// 60 s, and returns what it printed.
func runNode(t *testing.T, node string, flags []string, impl, url string, options any) nodeResult {
	t.Helper()
	opts, err := json.Marshal(options)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append(append([]string(nil), flags...), "client.mjs", impl, url, string(opts))
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = "node"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var res nodeResult
	if jerr := json.Unmarshal(lastLine(out), &res); jerr != nil || err != nil || res.Error != "" {
		t.Fatalf("node %v: %v; printed %s%s", args, err, out, stderr.Bytes())
	}
	return res
}

// lastLine returns the last non-empty line of b.
func lastLine(b []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return lines[len(lines)-1]
}

// checkNode checks a Node client's result: the subprotocol, every message
// echoed, and a clean close with 1000.
func checkNode(t *testing.T, res nodeResult) {
	t.Helper()
	if res.Protocol != "v1.echo" {
		t.Errorf("the client's protocol = %q, want v1.echo (its first choice)", res.Protocol)
	}
	if want := len(exchange()); len(res.Messages) != want {
		t.Errorf("the client exchanged %d messages, want %d", len(res.Messages), want)
	}
	for _, m := range res.Messages {
		if !m.Echoed {
			t.Errorf("the echo of %s is not what the client sent", m.Name)
		}
	}
	if res.Close.Code != 1000 || !res.Close.WasClean {
		t.Errorf("the client's close event: code %d, clean %v; want 1000, clean", res.Close.Code, res.Close.WasClean)
	}
}

// TestNodeWS runs the npm ws package's client against cooper, with its
// default options and with each permessage-deflate option set explicitly,
// and against servers that refuse context takeover one way only. ws keeps
// its compression context whenever it may, so the wire shows each side's
// context takeover as agreed (checkTakeover).
func TestNodeWS(t *testing.T) {
	node := program(t, "node", installNode)
	if _, err := os.Stat(filepath.Join("node", "node_modules", "ws", "package.json")); err != nil {
		missing(t, "the npm package ws", installNodePackages)
	}
	limitClient := cooper.DeflateParams{ClientMaxWindowBits: 12}
	for _, c := range []struct {
		name       string
		ws         map[string]any // the ws package's options
		policy     *cooper.DeflateParams
		extensions string
		deflate    *cooper.DeflateParams
	}{
		{name: "default options: compression with client_max_window_bits offered",
			policy: &contextTakeover, extensions: "permessage-deflate; client_max_window_bits=15",
			deflate: &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{name: "default options against a server that refuses context takeover",
			policy: &noContextTakeover, extensions: "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15",
			deflate: agreedBoth},
		{name: "default options against a server that refuses its own context takeover only",
			policy: &noServerContextTakeover, extensions: "permessage-deflate; server_no_context_takeover; client_max_window_bits=15",
			deflate: agreedNoServerContext},
		{name: "default options against a server that refuses the client's context takeover only",
			policy: &noClientContextTakeover, extensions: "permessage-deflate; client_no_context_takeover; client_max_window_bits=15",
			deflate: agreedNoClientContext},
		{name: "compression off", ws: map[string]any{"perMessageDeflate": false}, policy: &contextTakeover},
		{name: "serverNoContextTakeover", ws: map[string]any{"perMessageDeflate": map[string]any{"serverNoContextTakeover": true}},
			policy: &contextTakeover, extensions: "permessage-deflate; server_no_context_takeover; client_max_window_bits=15",
			deflate: agreedNoServerContext},
		{name: "clientNoContextTakeover", ws: map[string]any{"perMessageDeflate": map[string]any{"clientNoContextTakeover": true}},
			policy: &contextTakeover, extensions: "permessage-deflate; client_no_context_takeover; client_max_window_bits=15",
			deflate: agreedNoClientContext},
		{name: "serverMaxWindowBits 10 is declined: Go's compressor keeps 15 bits",
			ws: map[string]any{"perMessageDeflate": map[string]any{"serverMaxWindowBits": 10}}, policy: &contextTakeover},
		{name: "serverMaxWindowBits 15 is honoured",
			ws:     map[string]any{"perMessageDeflate": map[string]any{"serverMaxWindowBits": 15}},
			policy: &contextTakeover, extensions: "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
			deflate: &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{name: "clientMaxWindowBits true, limited by the server to 12",
			ws:     map[string]any{"perMessageDeflate": map[string]any{"clientMaxWindowBits": true}},
			policy: &limitClient, extensions: "permessage-deflate; client_max_window_bits=12",
			deflate: &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 12}},
		{name: "clientMaxWindowBits 11",
			ws:     map[string]any{"perMessageDeflate": map[string]any{"clientMaxWindowBits": 11}},
			policy: &contextTakeover, extensions: "permessage-deflate; client_max_window_bits=11",
			deflate: &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 11}},
		{name: "clientMaxWindowBits 11 against a server that limits it to 12",
			ws:     map[string]any{"perMessageDeflate": map[string]any{"clientMaxWindowBits": 11}},
			policy: &limitClient, extensions: "permessage-deflate; client_max_window_bits=11",
			deflate: &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 11}},
		{name: "compression offered to a server without Deflate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := []cooper.Option{cooper.Subprotocols(serverSubprotocols...)}
			if c.policy != nil {
				opts = append(opts, cooper.Deflate(*c.policy))
			}
			e := startEcho(t, opts...)
			res := runNode(t, node, nil, "ws", e.wsURL("/echo"), map[string]any{"protocols": clientSubprotocols, "ws": c.ws})
			checkNode(t, res)
			if res.ExtensionsHeader != c.extensions {
				t.Errorf("Sec-WebSocket-Extensions = %q, want %q", res.ExtensionsHeader, c.extensions)
			}
			r := e.report(t)
			checkReport(t, r, "v1.echo", c.deflate)
			if c.deflate != nil {
				checkTakeover(t, "client", r.received, r.hs.Deflate)
			}
		})
	}
}

// TestNodeBuiltinWebSocket runs Node's own WebSocket (undici) against
// cooper, with the flag it needs on Node 20. It offers permessage-deflate
// with client_max_window_bits and must decompress what it receives; whether
// it compresses what it sends is its choice, which the test logs.
func TestNodeBuiltinWebSocket(t *testing.T) {
	node := program(t, "node", installNode)
	var flags []string
	for _, try := range [][]string{nil, {"--experimental-websocket"}} {
		probe := exec.Command(node, append(try, "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)")...)
		if probe.Run() == nil {
			flags = append(try, "--no-warnings")
			break
		}
	}
	if flags == nil {
		missing(t, "a Node.js with a built-in WebSocket", installNode)
	}
	for _, c := range []struct {
		name       string
		policy     *cooper.DeflateParams
		extensions string
		deflate    *cooper.DeflateParams
	}{
		{"compression with context takeover", &contextTakeover, "permessage-deflate; client_max_window_bits=15",
			&cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"compression without context takeover", &noContextTakeover,
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15", agreedBoth},
		{"a server without Deflate", nil, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := []cooper.Option{cooper.Subprotocols(serverSubprotocols...)}
			if c.policy != nil {
				opts = append(opts, cooper.Deflate(*c.policy))
			}
			e := startEcho(t, opts...)
			res := runNode(t, node, flags, "builtin", e.wsURL("/echo"), map[string]any{"protocols": clientSubprotocols})
			checkNode(t, res)
			if res.Extensions != c.extensions {
				t.Errorf("WebSocket.extensions = %q, want %q", res.Extensions, c.extensions)
			}
			r := e.report(t)
			checkReport(t, r, "v1.echo", c.deflate)
			t.Logf("Node %s's WebSocket sent %d of %d messages compressed", res.Node, r.compressed, r.messages)
		})
	}
}
