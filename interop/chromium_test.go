package interop

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/testkit"
)

// installChromium says how to get the browser.
const installChromium = "install it with: apt-get install -y chromium"

// A browser is a headless Chromium the test started, driven through the
// DevTools protocol on the WebSocket of its one page.
type browser struct {
	c      *gorilla.Conn
	id     int
	events []string // the methods of the events seen so far
}

// A page is a page a browser the test started has loaded.
type page interface {
	// evaluate runs expression in the page, awaits it if it is a promise,
	// and decodes its value, which must be JSON, into v.
	evaluate(t *testing.T, expression string, v any)
}

// startChromium starts headless Chromium with a fresh profile in a
// temporary folder, connects to its page's DevTools endpoint and loads url
// there. The test's cleanup stops the browser.
func startChromium(t *testing.T, url string) page {
	t.Helper()
	return launchChromium(t, url)
}

// chromiumWith returns a function that starts Chromium as startChromium
// does, with the extra flags.
func chromiumWith(extra ...string) func(t *testing.T, url string) page {
	return func(t *testing.T, url string) page {
		t.Helper()
		return launchChromium(t, url, extra...)
	}
}

// launchChromium is startChromium with extra flags. QUIC is off unless they
// have --enable-quic.
func launchChromium(t *testing.T, url string, extra ...string) page {
	t.Helper()
	chromium := program(t, "chromium", installChromium)
	profile := t.TempDir()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--ignore-certificate-errors", // the test servers' certificates are made up
		// Every host name but the tests' 127.0.0.1 resolves to nothing, so no
		// DNS question leaves the machine: with the flags above, Chromium
		// still looks up accounts.google.com (sign-in),
		// content-autofill.googleapis.com (autofill), and update.googleapis.com
		// and clients2.google.com (component and extension updates). What is
		// left is its IPv6 probe, a connect of a UDP socket to
		// 2001:4860:4860::8888, which asks the kernel for a route and sends
		// nothing.
		"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
		"--user-data-dir=" + profile, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0"}
	if !slices.Contains(extra, "--enable-quic") {
		args = append(args, "--disable-quic")
	}
	args = append(append(args, extra...), "about:blank")
	p := start(t, chromium, args...)
	// Chromium writes the port it chose to the profile.
	var port int
	if err := p.await(60*time.Second, func() bool {
		if b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			port, _ = strconv.Atoi(line)
		}
		return port != 0
	}); err != nil {
		t.Fatalf("chromium did not open its DevTools port: %v", err)
	}
	devtools := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var b *browser
	for deadline := time.Now().Add(10 * time.Second); b == nil; time.Sleep(50 * time.Millisecond) {
		var pages []struct{ Type, WebSocketDebuggerURL string }
		if resp, err := http.Get(devtools + "/json/list"); err == nil {
			json.NewDecoder(resp.Body).Decode(&pages)
			resp.Body.Close()
		}
		for _, pg := range pages {
			if pg.Type == "page" {
				c, _, err := gorilla.DefaultDialer.Dial(pg.WebSocketDebuggerURL, nil)
				if err != nil {
					t.Fatalf("connecting to the page's DevTools: %v", err)
				}
				t.Cleanup(func() { c.Close() })
				b = &browser{c: c}
				break
			}
		}
		if b == nil && time.Now().After(deadline) {
			t.Fatalf("chromium has no page after 10 s:\n%s", p.output)
		}
	}
	b.call(t, "Page.enable", nil, nil)
	b.call(t, "Page.navigate", map[string]any{"url": url}, nil)
	b.waitEvent(t, "Page.loadEventFired")
	return b
}

// call calls a DevTools method with params and decodes its result into
// result, unless nil; events that come meanwhile are recorded.
func (b *browser) call(t *testing.T, method string, params map[string]any, result any) {
	t.Helper()
	b.id++
	deadline := time.Now().Add(60 * time.Second)
	b.c.SetWriteDeadline(deadline)
	if err := b.c.WriteJSON(map[string]any{"id": b.id, "method": method, "params": params}); err != nil {
		t.Fatal(err)
	}
	b.c.SetReadDeadline(deadline)
	for {
		var msg struct {
			ID     int
			Method string
			Error  json.RawMessage
			Result json.RawMessage
		}
		if err := b.c.ReadJSON(&msg); err != nil {
			t.Fatalf("reading from DevTools: %v", err)
		}
		if msg.ID != b.id {
			b.events = append(b.events, msg.Method)
			continue
		}
		if msg.Error != nil {
			t.Fatalf("%s: %s", method, msg.Error)
		}
		if result != nil {
			if err := json.Unmarshal(msg.Result, result); err != nil {
				t.Fatalf("%s: %v (%s)", method, err, msg.Result)
			}
		}
		return
	}
}

// waitEvent waits up to 30 s for an event named method, or returns at once
// if one came already.
func (b *browser) waitEvent(t *testing.T, method string) {
	t.Helper()
	for _, m := range b.events {
		if m == method {
			return
		}
	}
	b.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var msg struct{ Method string }
		if err := b.c.ReadJSON(&msg); err != nil {
			t.Fatalf("waiting for %s: %v", method, err)
		}
		if msg.Method == method {
			return
		}
	}
}

// evaluate runs expression in the page, awaits it if it is a promise, and
// decodes its value, which must be JSON, into v.
func (b *browser) evaluate(t *testing.T, expression string, v any) {
	t.Helper()
	var res struct {
		Result           struct{ Value json.RawMessage }
		ExceptionDetails json.RawMessage
	}
	b.call(t, "Runtime.evaluate", map[string]any{
		"expression": expression, "awaitPromise": true, "returnByValue": true, "timeout": 50000,
	}, &res)
	if res.ExceptionDetails != nil {
		t.Fatalf("evaluating %q: %s", expression, res.ExceptionDetails)
	}
	if err := json.Unmarshal(res.Result.Value, v); err != nil {
		t.Fatalf("the value of %q: %v (%s)", expression, err, res.Result.Value)
	}
}

// exchangePage is a page that runs the exchange of interop/node/exchange.mjs
// against /ws on its own origin, offering clientSubprotocols, and keeps the
// promise of its result in window.result.
const exchangePage = `<!doctype html>
<meta charset="utf-8">
<title>cooper interop</title>
<script type="module">
import { runExchange } from '/exchange.mjs';
const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
window.result = runExchange(new WebSocket(scheme + location.host + '/ws', ['v1.echo', 'v2.echo']))
  .catch((err) => ({ error: String(err) }));
</script>
`

// servePage serves pageAndEcho(t, e) on loopback over HTTP/1.1 and
// returns its URL; the test's cleanup stops it.
func servePage(t *testing.T, e *echoServer) string {
	t.Helper()
	s := httptest.NewUnstartedServer(pageAndEcho(t, e))
	s.Config.ReadHeaderTimeout = 10 * time.Second
	s.Start()
	t.Cleanup(s.Close)
	return s.URL
}

// pageAndEcho serves exchangePage at /, interop/node/exchange.mjs, and e's
// endpoint at /ws.
func pageAndEcho(t *testing.T, e *echoServer) http.Handler {
	t.Helper()
	script, err := os.ReadFile(filepath.Join("node", "exchange.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, exchangePage)
	})
	mux.HandleFunc("GET /exchange.mjs", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Write(script)
	})
	mux.Handle("/ws", e.handler)
	return mux
}

// A pageResult is what the page's exchange resolves to.
type pageResult struct {
	Error      string
	Protocol   string
	Extensions string
	exchanged
}

// awaitResult waits for the page's script to set window.result, then
// for the result.
const awaitResult = `new Promise((resolve) => {
	const poll = () => (window.result ? resolve(window.result) : setTimeout(poll, 20));
	poll();
})`

// runPage opens url in a browser started by open, waits for the page's
// exchange and checks it, and returns the server's report of the
// connection.
func runPage(t *testing.T, open func(t *testing.T, url string) page, e *echoServer, url string) (pageResult, *echoReport) {
	t.Helper()
	b := open(t, url)
	var res pageResult
	b.evaluate(t, awaitResult, &res)
	if res.Error != "" {
		t.Fatalf("the page's exchange failed: %s", res.Error)
	}
	checkNode(t, nodeResult{Protocol: res.Protocol, exchanged: res.exchanged})
	return res, e.report(t)
}

// chromiumDeflate is what Chromium's offer, "permessage-deflate;
// client_max_window_bits", agrees on with the contextTakeover policy.
var chromiumDeflate = &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}

// TestChromium opens a page in headless Chromium that runs the exchange
// over a WebSocket to the server the page came from, with compression and
// without (the server declining Chromium's offer), and checks the page's
// and the server's view; TestChromiumHTTP2 does it over HTTPS with HTTP/2,
// where the WebSocket must come over an extended CONNECT.
func TestChromium(t *testing.T) {
	t.Run("HTTP/1.1", func(t *testing.T) {
		program(t, "chromium", installChromium)
		e := newEcho(t, cooper.Subprotocols(serverSubprotocols...), cooper.Deflate(contextTakeover))
		url := servePage(t, e)
		res, r := runPage(t, startChromium, e, url+"/")
		if res.Extensions != "permessage-deflate; client_max_window_bits=15" {
			t.Errorf("WebSocket.extensions = %q", res.Extensions)
		}
		checkReport(t, r, "v1.echo", chromiumDeflate)
		if r.compressed == 0 || r.hs.Request.ProtoMajor != 1 {
			t.Errorf("the browser sent %d messages compressed over HTTP/%d, want some over HTTP/1.1", r.compressed, r.hs.Request.ProtoMajor)
		}
	})
	t.Run("HTTP/1.1, a server without Deflate", func(t *testing.T) {
		program(t, "chromium", installChromium)
		e := newEcho(t, cooper.Subprotocols(serverSubprotocols...))
		url := servePage(t, e)
		res, r := runPage(t, startChromium, e, url+"/")
		if res.Extensions != "" {
			t.Errorf("WebSocket.extensions = %q, want none", res.Extensions)
		}
		checkReport(t, r, "v1.echo", nil) // nothing compressed either way
	})
}

// TestChromiumHTTP2 loads the page over HTTPS with HTTP/2 from a server
// that announces extended CONNECT (RFC 8441), so Chromium must open the
// WebSocket as a stream of the page's connection, and the server checks it
// did.
func TestChromiumHTTP2(t *testing.T) {
	program(t, "chromium", installChromium)
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	e := newEcho(t, cooper.Subprotocols(serverSubprotocols...), cooper.Deflate(contextTakeover))
	s := newH2Server(t, pageAndEcho(t, e), func(s *http.Server) { s.ReadHeaderTimeout = 10 * time.Second })
	res, r := runPage(t, startChromium, e, s.URL+"/")
	if res.Extensions != "permessage-deflate; client_max_window_bits=15" {
		t.Errorf("WebSocket.extensions = %q", res.Extensions)
	}
	checkReport(t, r, "v1.echo", chromiumDeflate)
	if r.hs.Request.ProtoMajor != 2 || r.hs.Request.Method != http.MethodConnect {
		t.Errorf("the WebSocket came as %s over HTTP/%d, want an extended CONNECT over HTTP/2", r.hs.Request.Method, r.hs.Request.ProtoMajor)
	}
	if r.compressed == 0 {
		t.Errorf("the browser sent no message compressed")
	}
}

// echoPageState reads the echo example page's fields once cond, a
// JavaScript expression over them (status, echo, protocol, extensions),
// holds.
func echoPageState(cond string) string {
	return `new Promise((resolve) => {
	const poll = () => {
		const [status, echo, protocol, extensions] = ["status", "echo", "protocol", "extensions"].map((id) => document.getElementById(id).textContent);
		if (` + cond + `) resolve({ status, echo, protocol, extensions });
		else setTimeout(poll, 20);
	};
	poll();
})`
}

// An echoPage is what echoPageState reads.
type echoPage struct{ Status, Echo, Protocol, Extensions string }

// TestChromiumEchoExample runs examples/echo as its own process and uses
// its page in Chromium over HTTP/1.1.
func TestChromiumEchoExample(t *testing.T) {
	program(t, "chromium", installChromium)
	url, _ := startExample(t, "echo")
	useEchoPage(t, startChromium, url, chromiumEchoExtensions)
}

// TestChromiumH2Example runs examples/h2 as its own process and uses its
// page in Chromium over HTTPS with HTTP/2; the example prints how each
// WebSocket came, which must be an extended CONNECT on an HTTP/2 stream.
func TestChromiumH2Example(t *testing.T) {
	program(t, "chromium", installChromium)
	url, p := startExample(t, "h2")
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("examples/h2 listens on %s, want an https URL", url)
	}
	useEchoPage(t, startChromium, url, chromiumEchoExtensions)
	out := p.output.String()
	if n := strings.Count(out, "websocket over "); n != 1 || !strings.Contains(out, "websocket over HTTP/2.0 (extended CONNECT) from 127.0.0.1:") {
		t.Errorf("examples/h2 printed %d WebSockets, want one over HTTP/2.0 (extended CONNECT):\n%s", n, out)
	}
}

// TestChromiumH3Example runs examples/h3 as its own process and uses its
// page in Chromium over HTTP/3, with the flags the example prints: QUIC
// forced on for its origin, its certificate's key pinned (Chromium does
// not take a self-signed certificate over QUIC otherwise), and WebSockets
// over HTTP/3 (RFC 9220) turned on. The example prints how each WebSocket
// came, which must be an extended CONNECT on an HTTP/3 stream.
func TestChromiumH3Example(t *testing.T) {
	program(t, "chromium", installChromium)
	url, p := startExample(t, "h3")
	pin := regexp.MustCompile(`(?m)^certificate SPKI pin: (\S+)$`).FindStringSubmatch(p.output.String())
	if !strings.HasPrefix(url, "https://") || pin == nil {
		t.Fatalf("examples/h3 listens on %s with no pin, want an https URL and the pin:\n%s", url, p.output)
	}
	chromium := chromiumWith("--enable-quic", "--origin-to-force-quic-on="+strings.TrimPrefix(url, "https://"),
		"--ignore-certificate-errors-spki-list="+pin[1], "--enable-features=EnableWebsocketsOverHttp3")
	useEchoPage(t, chromium, url, chromiumEchoExtensions)
	out := p.output.String()
	line := regexp.MustCompile(`(?m)^websocket over HTTP/3\.0 \(extended CONNECT\) from 127\.0\.0\.1:[0-9]+$`).FindString(out)
	if n := strings.Count(out, "websocket over "); n != 1 || line == "" {
		t.Fatalf("examples/h3 printed %d WebSockets, want one over HTTP/3.0 (extended CONNECT):\n%s", n, out)
	}
	t.Logf("examples/h3: %s", line)
}

// chromiumEchoExtensions is what the echo examples answer Chromium's offer,
// "permessage-deflate; client_max_window_bits": they frame with
// coopergobwas, whose policy keeps context both ways, so the offer is
// agreed as it stands, with the client's window bits.
const chromiumEchoExtensions = "permessage-deflate; client_max_window_bits=15"

// useEchoPage uses the echo examples' page at url, in a browser started by
// open, as a person would: the page sends its message when it opens; then
// a 1 MiB message and one beyond ASCII are typed and sent, and the
// WebSocket is closed with 1000. It reads only what the page shows, where
// the WebSocket's extensions must be extensions.
func useEchoPage(t *testing.T, open func(t *testing.T, url string) page, url, extensions string) {
	t.Helper()
	b := open(t, url+"/")

	var pg echoPage
	b.evaluate(t, echoPageState(`status !== "connecting" && (echo !== "" || status !== "open")`), &pg)
	want := echoPage{"open", "hello, cooper", "echo.v1", extensions}
	if pg != want {
		t.Fatalf("the page shows %+v, want %+v", pg, want)
	}

	large := strings.Repeat("a large text message that compresses well. ", 1<<20/43) + strings.Repeat("!", 1<<20%43)
	for _, msg := range []string{large, "héllo, coöper ✓"} {
		var sent bool
		b.evaluate(t, `(() => {
	document.getElementById("echo").textContent = "";
	document.getElementById("message").value = `+strconv.Quote(msg)+`;
	document.getElementById("send").click();
	return true;
})()`, &sent)
		b.evaluate(t, echoPageState(`echo !== "" || status !== "open"`), &pg)
		if pg.Status != "open" || pg.Echo != msg {
			t.Fatalf("after sending %d bytes the page shows status %q and an echo of %d bytes", len(msg), pg.Status, len(pg.Echo))
		}
	}

	var closed bool
	b.evaluate(t, `(() => { ws.close(1000); return true; })()`, &closed)
	b.evaluate(t, echoPageState(`status.startsWith("closed")`), &pg)
	if pg.Status != "closed (1000)" {
		t.Errorf("after closing, the page shows status %q, want closed (1000)", pg.Status)
	}
}
