package interop

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/testkit"
)

// installFirefox says how to get the browser.
const installFirefox = "install it with: apt-get install -y firefox-esr"

// A firefox is a headless Firefox the test started, driven by
// interop/node/firefox.mjs: puppeteer-core over WebDriver BiDi.
type firefox struct {
	driver string // where the driver takes expressions to evaluate
}

// startFirefox starts Debian's headless Firefox with a fresh profile in a
// temporary folder, through the driver, which loads url in its page. The
// test's cleanup stops the driver and then kills Firefox's process group,
// whatever state either is in, and fails the test if Firefox tried to
// reach anything but loopback.
func startFirefox(t *testing.T, url string) *firefox {
	t.Helper()
	ff := program(t, "firefox-esr", installFirefox)
	node := program(t, "node", installNode)
	if _, err := os.Stat(filepath.Join("node", "node_modules", "puppeteer-core", "package.json")); err != nil {
		missing(t, "the npm package puppeteer-core", installNodePackages)
	}
	p := start(t, node, filepath.Join("node", "firefox.mjs"), ff, t.TempDir(), url)
	t.Cleanup(func() {
		// This runs after the cleanup below has stopped Firefox, which the
		// driver runs with non-local connections disabled: Firefox says so
		// in its output when anything in it tried one, and crashes.
		if strings.Contains(p.output.String(), "Non-local network connections are disabled") {
			t.Errorf("Firefox tried to connect to an address other than loopback")
		}
		if t.Failed() {
			t.Logf("the Firefox driver printed:\n%s", p.output)
		}
	})

	// puppeteer starts Firefox in a process group of its own, which a
	// signal to the driver's group does not reach: once the driver has
	// said which it is, the cleanup ends it too.
	killed := false
	var fx *firefox
	// The driver's own bounds: 60 s to start Firefox, 30 s to load url.
	if err := p.await(90*time.Second, func() bool {
		for line := range strings.Lines(p.output.String()) {
			var msg struct {
				Version, Driver, Error string
				PID                    int
			}
			if json.Unmarshal([]byte(line), &msg) != nil {
				continue
			}
			if msg.PID != 0 && !killed {
				killed = true
				t.Cleanup(func() {
					p.stop()
					syscall.Kill(-msg.PID, syscall.SIGKILL)
				})
				t.Logf("driving %s (Debian's firefox-esr) with puppeteer-core over WebDriver BiDi", msg.Version)
			}
			if msg.Error != "" {
				t.Fatalf("the Firefox driver: %s\n%s", msg.Error, p.output)
			}
			if msg.Driver != "" {
				fx = &firefox{driver: msg.Driver}
			}
		}
		return fx != nil
	}); err != nil {
		t.Fatalf("Firefox did not load %s (the driver: %v)", url, err)
	}
	return fx
}

// openFirefox is startFirefox for runPage and useEchoPage, keeping the
// Firefox it started in *fx.
func openFirefox(fx **firefox) func(t *testing.T, url string) page {
	return func(t *testing.T, url string) page {
		*fx = startFirefox(t, url)
		return *fx
	}
}

// driverClient bounds each request to the driver, and keeps no connection
// to it open between requests.
var driverClient = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// evaluate runs expression in the page, through the driver, awaits it if
// it is a promise, and decodes its value, which must be JSON, into v.
func (fx *firefox) evaluate(t *testing.T, expression string, v any) {
	t.Helper()
	resp, err := driverClient.Post(fx.driver, "text/javascript", strings.NewReader(expression))
	if err != nil {
		t.Fatalf("evaluating %q: %v", expression, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("evaluating %q: %v", expression, err)
	}
	var answer struct {
		Value json.RawMessage
		Error string
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatalf("evaluating %q: the driver answered %s", expression, body)
	}
	if answer.Error != "" {
		t.Fatalf("evaluating %q: %s", expression, answer.Error)
	}
	if err := json.Unmarshal(answer.Value, v); err != nil {
		t.Fatalf("the value of %q: %v (%s)", expression, err, answer.Value)
	}
}

// A handshake is a WebSocket handshake as Firefox saw it on the network:
// the response's status, and the Sec-WebSocket-Extensions of its request
// (Firefox's offer) and of the response (the server's answer).
type handshake struct {
	URL           string
	Status        int
	Offer, Answer string
}

// handshake returns the one WebSocket handshake the page made, waiting up
// to 10 s for Firefox to tell it.
func (fx *firefox) handshake(t *testing.T) handshake {
	t.Helper()
	return fx.handshakes(t, 1)[0]
}

// handshakes returns the n WebSocket handshakes the page made, waiting up
// to 10 s for Firefox to tell them all.
func (fx *firefox) handshakes(t *testing.T, n int) []handshake {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := driverClient.Get(fx.driver + "handshakes")
		if err != nil {
			t.Fatalf("asking the driver for the handshakes: %v", err)
		}
		var hs []handshake
		err = json.NewDecoder(resp.Body).Decode(&hs)
		resp.Body.Close()
		switch {
		case err != nil:
			t.Fatalf("the driver's handshakes: %v", err)
		case len(hs) > n:
			t.Fatalf("the page made %d WebSocket handshakes, want %d: %+v", len(hs), n, hs)
		case len(hs) == n:
			return hs
		case time.Now().After(deadline):
			t.Fatalf("Firefox told of %d WebSocket handshakes within 10 s, want %d", len(hs), n)
		}
	}
}

// firefoxOffer is the permessage-deflate offer Firefox sends: no
// parameter, so the answer may not carry client_max_window_bits (RFC 7692,
// section 7.1.2.2) and cannot limit Firefox's window.
const firefoxOffer = "permessage-deflate"

// checkFirefoxHandshake checks the WebSocket handshake h as Firefox saw it,
// and the request r the server received: Firefox offered firefoxOffer (and
// the server received just that), the response had status (101 over
// HTTP/1.1, 200 to an extended CONNECT), and cooper answered wantAnswer,
// which is within what Firefox accepts (see firefoxAccepts). r is nil when
// the server is another process.
func checkFirefoxHandshake(t *testing.T, h handshake, r *http.Request, status int, wantAnswer string) {
	t.Helper()
	t.Logf("Firefox offered Sec-WebSocket-Extensions: %q; cooper answered %d with %q", h.Offer, h.Status, h.Answer)
	if h.Offer != firefoxOffer {
		t.Errorf("Firefox offered Sec-WebSocket-Extensions: %q, want %q", h.Offer, firefoxOffer)
	}
	if r != nil {
		if got := strings.Join(r.Header.Values("Sec-Websocket-Extensions"), ", "); got != h.Offer {
			t.Errorf("the server received Sec-WebSocket-Extensions: %q, Firefox says it sent %q", got, h.Offer)
		}
	}
	if h.Status != status {
		t.Errorf("Firefox got status %d to its WebSocket request, want %d", h.Status, status)
	}
	if h.Answer != wantAnswer {
		t.Errorf("cooper answered Sec-WebSocket-Extensions: %q, want %q", h.Answer, wantAnswer)
	}
	if err := firefoxAccepts(h.Offer, h.Answer); err != nil {
		t.Errorf("cooper answered %q to %q, which Firefox does not accept: %v", h.Answer, h.Offer, err)
	}
}

// firefoxAccepts says what is wrong with answer as the permessage-deflate
// answer to Firefox's offer, or returns nil. Firefox fails the connection
// on an answer other than permessage-deflate alone, an unknown parameter, a
// parameter given twice, or window bits outside 8 to 15. It takes
// client_max_window_bits in an answer to an offer without it, which RFC
// 7692, section 7.1.2.2 forbids, so that is refused here too.
func firefoxAccepts(offer, answer string) error {
	name, params, _ := strings.Cut(answer, ";")
	if strings.TrimSpace(name) != "permessage-deflate" || strings.Contains(params, ",") {
		return errors.New("an answer other than one permessage-deflate")
	}
	seen := map[string]bool{}
	for p := range strings.SplitSeq(params, ";") {
		if params == "" {
			break
		}
		key, value, hasValue := strings.Cut(p, "=")
		key, value = strings.TrimSpace(key), strings.Trim(strings.TrimSpace(value), `"`)
		if seen[key] {
			return fmt.Errorf("%s twice", key)
		}
		seen[key] = true
		switch key {
		case "server_no_context_takeover", "client_no_context_takeover":
			if hasValue {
				return fmt.Errorf("%s with a value", key)
			}
		case "server_max_window_bits", "client_max_window_bits":
			if key == "client_max_window_bits" && !strings.Contains(offer, key) {
				return errors.New("client_max_window_bits, which the offer did not have")
			}
			if bits, err := strconv.Atoi(value); err != nil || bits < 8 || bits > 15 {
				return fmt.Errorf("%s=%q, not from 8 to 15", key, value)
			}
		default:
			return fmt.Errorf("the unknown parameter %q", key)
		}
	}
	return nil
}

// TestFirefox opens a page in headless Firefox that runs the exchange over
// a WebSocket, over HTTP/1.1, to the server the page came from, with
// compression, and checks the page's and the server's view, and Firefox's
// offer and cooper's answer, under three policies: context takeover; no
// context takeover, which cooper must ask of Firefox unasked; and a limit
// on the client's window, which cooper must not answer, since Firefox did
// not offer client_max_window_bits. Then with several WebSockets at once.
func TestFirefox(t *testing.T) {
	program(t, "firefox-esr", installFirefox)
	for _, c := range []struct {
		name    string
		policy  cooper.DeflateParams
		answer  string
		deflate cooper.DeflateParams
	}{
		{"context takeover", contextTakeover, "permessage-deflate",
			cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"no context takeover", noContextTakeover, "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
			cooper.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{"a client window limit Firefox's offer does not allow", cooper.DeflateParams{ClientMaxWindowBits: 10}, "permessage-deflate",
			cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEcho(t, cooper.Subprotocols(serverSubprotocols...), cooper.Deflate(c.policy))
			url := servePage(t, e)
			var fx *firefox
			res, r := runPage(t, openFirefox(&fx), e, url+"/")
			// Firefox's WebSocket.extensions names the extensions agreed, without
			// their parameters.
			if res.Extensions != "permessage-deflate" {
				t.Errorf("WebSocket.extensions = %q, want permessage-deflate", res.Extensions)
			}
			checkFirefoxHandshake(t, fx.handshake(t), r.hs.Request, http.StatusSwitchingProtocols, c.answer)
			checkReport(t, r, "v1.echo", &c.deflate)
			if r.compressed == 0 || r.hs.Request.ProtoMajor != 1 {
				t.Errorf("the browser sent %d messages compressed over HTTP/%d, want some over HTTP/1.1", r.compressed, r.hs.Request.ProtoMajor)
			}
		})
	}
	// Firefox lets one WebSocket handshake be in progress per server
	// address and queues the others behind it (RFC 6455, section 4.1): a
	// handshake the server left unanswered would hold up every WebSocket
	// the page opens after it. Besides its own, the page opens three at once,
	// and all four must run the exchange.
	t.Run("three more WebSockets opened at once", func(t *testing.T) {
		e := newEcho(t, cooper.Subprotocols(serverSubprotocols...), cooper.Deflate(contextTakeover))
		url := servePage(t, e)
		fx := startFirefox(t, url+"/")
		var results []pageResult
		fx.evaluate(t, `import("/exchange.mjs").then(({ runExchange }) => Promise.all([1, 2, 3].map(() =>
	runExchange(new WebSocket("ws://" + location.host + "/ws", ["v1.echo", "v2.echo"])).catch((err) => ({ error: String(err) })))))`, &results)
		var pageExchange pageResult
		fx.evaluate(t, awaitResult, &pageExchange)
		for _, res := range append(results, pageExchange) {
			if res.Error != "" {
				t.Fatalf("an exchange failed: %s", res.Error)
			}
			checkNode(t, nodeResult{Protocol: res.Protocol, exchanged: res.exchanged})
		}
		for range 4 {
			checkReport(t, e.report(t), "v1.echo", &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15})
		}
		for _, h := range fx.handshakes(t, 4) {
			checkFirefoxHandshake(t, h, nil, http.StatusSwitchingProtocols, "permessage-deflate")
		}
	})
}

// firefoxEchoAnswer is what the echo examples answer Firefox's offer: they
// frame with coopergobwas, whose policy keeps context both ways, so the
// offer is agreed as it stands.
const firefoxEchoAnswer = "permessage-deflate"

// TestFirefoxEchoExample runs examples/echo as its own process and uses
// its page in Firefox over HTTP/1.1.
func TestFirefoxEchoExample(t *testing.T) {
	program(t, "firefox-esr", installFirefox)
	url, _ := startExample(t, "echo")
	var fx *firefox
	useEchoPage(t, openFirefox(&fx), url, "permessage-deflate")
	checkFirefoxHandshake(t, fx.handshake(t), nil, http.StatusSwitchingProtocols, firefoxEchoAnswer)
}

// TestFirefoxHTTP2 loads pages over HTTPS with HTTP/2 from servers that
// announce extended CONNECT (RFC 8441), so Firefox must open the WebSocket
// as a stream of the page's connection: the exchange page, where the
// server checks how the WebSocket came, and examples/h2's page, which
// prints how it came.
func TestFirefoxHTTP2(t *testing.T) {
	program(t, "firefox-esr", installFirefox)
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	t.Run("exchange", func(t *testing.T) {
		e := newEcho(t, cooper.Subprotocols(serverSubprotocols...), cooper.Deflate(contextTakeover))
		s := newH2Server(t, pageAndEcho(t, e), func(s *http.Server) { s.ReadHeaderTimeout = 10 * time.Second })
		var fx *firefox
		res, r := runPage(t, openFirefox(&fx), e, s.URL+"/")
		if res.Extensions != "permessage-deflate" {
			t.Errorf("WebSocket.extensions = %q, want permessage-deflate", res.Extensions)
		}
		checkFirefoxHandshake(t, fx.handshake(t), r.hs.Request, http.StatusOK, "permessage-deflate")
		checkReport(t, r, "v1.echo", &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15})
		if r.hs.Request.ProtoMajor != 2 || r.hs.Request.Method != http.MethodConnect {
			t.Errorf("the WebSocket came as %s over HTTP/%d, want an extended CONNECT over HTTP/2", r.hs.Request.Method, r.hs.Request.ProtoMajor)
		}
		if r.compressed == 0 {
			t.Errorf("the browser sent no message compressed")
		}
	})
	t.Run("examples/h2", func(t *testing.T) {
		url, p := startExample(t, "h2")
		if !strings.HasPrefix(url, "https://") {
			t.Fatalf("examples/h2 listens on %s, want an https URL", url)
		}
		var fx *firefox
		useEchoPage(t, openFirefox(&fx), url, "permessage-deflate")
		checkFirefoxHandshake(t, fx.handshake(t), nil, http.StatusOK, firefoxEchoAnswer)
		out := p.output.String()
		if n := strings.Count(out, "websocket over "); n != 1 || !strings.Contains(out, "websocket over HTTP/2.0 (extended CONNECT) from 127.0.0.1:") {
			t.Errorf("examples/h2 printed %d WebSockets, want one over HTTP/2.0 (extended CONNECT):\n%s", n, out)
		}
	})
}
