package probe

import (
	"fmt"
	"net/http"
	"strings"
)

// RFC sections the request cases cite.
const (
	rfcClientHandshake = "RFC 6455, section 4.2.1"
	rfcServerAnswer    = "RFC 6455, section 4.2.2"
)

// refused sends r, which a server must refuse, and judges the answer: any
// error status passes; a 101, a 2xx, or no answer at all fails (RFC 6455,
// section 4.2.1: the server MUST stop processing the handshake and answer
// with an error code).
func (p *prober) refused(r *request, what string) verdict {
	resp, err := p.send(r)
	if err != nil {
		return fail("%s: %v; the server must answer with an error status", what, err)
	}
	defer resp.close()
	switch {
	case resp.StatusCode == http.StatusSwitchingProtocols:
		return fail("%s: switched protocols (101)", what)
	case resp.StatusCode < 300:
		return fail("%s: %s, not an error status", what, resp.Status)
	}
	return pass("%s: %s", what, resp.Status)
}

// accepted sends r, a valid request, and judges the answer: a 101 with the
// right Sec-WebSocket-Accept passes.
func (p *prober) accepted(r *request, what string) verdict {
	return p.upgraded(r, what, nil, func(resp *response) verdict {
		if got := resp.lines("Sec-WebSocket-Accept"); len(got) != 1 || got[0] != acceptKey(strings.Trim(r.key, " \t")) {
			return fail("%s: 101 with Sec-WebSocket-Accept %q, want %q", what, got, acceptKey(strings.Trim(r.key, " \t")))
		}
		return pass("%s: 101", what)
	})
}

// upgraded sends r, a request the server should upgrade, and returns
// judge's verdict on the 101; the connection is closed after it. A request
// that gets no answer fails, with what and the error; any other answer gets
// refusal's verdict or, when refusal is nil, fails as refused.
func (p *prober) upgraded(r *request, what string, refusal, judge func(resp *response) verdict) verdict {
	resp, err := p.send(r)
	if err != nil {
		return fail("%s: %v", what, err)
	}
	defer resp.close()
	switch {
	case resp.StatusCode == http.StatusSwitchingProtocols:
		return judge(resp)
	case refusal != nil:
		return refusal(resp)
	}
	return fail("%s: refused with %s", what, resp.Status)
}

// mustRefuse and mustAccept make cases that edit a valid request and judge
// the answer with refused and accepted.
func mustRefuse(id, title, rfc string, edit func(p *prober, r *request), what string) Case {
	return Case{ID: id, Group: GroupRequest, Title: title, RFC: rfc, run: func(p *prober) verdict {
		r := p.request()
		edit(p, r)
		return p.refused(r, what)
	}}
}

func mustAccept(id, title, rfc string, edit func(p *prober, r *request), what string) Case {
	return Case{ID: id, Group: GroupRequest, Title: title, RFC: rfc, run: func(p *prober) verdict {
		r := p.request()
		edit(p, r)
		return p.accepted(r, what)
	}}
}

// keyOf returns the base64 of n zero bytes.
func keyOf(n int) string {
	return strings.Repeat("AAAA", n/3) + map[int]string{0: "", 1: "AA==", 2: "AAA="}[n%3]
}

func requestCases() []Case {
	line := func(l string) func(p *prober, r *request) {
		return func(p *prober, r *request) { r.line = strings.ReplaceAll(l, "TARGET", p.target) }
	}
	set := func(name string, values ...string) func(p *prober, r *request) {
		return func(p *prober, r *request) { r.set(name, values...) }
	}
	return []Case{
		mustAccept("req-valid", "a valid opening handshake is accepted with 101", rfcServerAnswer,
			func(p *prober, r *request) {}, "the request of RFC 6455 section 4.1"),
		mustRefuse("req-method-post", "a POST is not an opening handshake", rfcClientHandshake,
			line("POST TARGET HTTP/1.1"), "POST"),
		mustRefuse("req-method-head", "a HEAD is not an opening handshake", rfcClientHandshake,
			line("HEAD TARGET HTTP/1.1"), "HEAD"),
		{ID: "req-method-405-allow", Group: GroupRequest, Title: "a 405 for another method carries Allow", RFC: "RFC 9110, section 15.5.6",
			run: func(p *prober) verdict {
				r := p.request()
				r.line = "PUT " + p.target + " HTTP/1.1"
				resp, err := p.send(r)
				if err != nil {
					return skip("PUT: %v", err)
				}
				defer resp.close()
				if resp.StatusCode != http.StatusMethodNotAllowed {
					return skip("PUT was answered %s, not 405", resp.Status)
				}
				if len(resp.lines("Allow")) == 0 {
					return fail("PUT: 405 without Allow")
				}
				return pass("PUT: 405 with Allow: %s", strings.Join(resp.lines("Allow"), ", "))
			}},
		mustRefuse("req-http10", "an HTTP/1.0 request is not upgraded", "RFC 9110, section 7.8",
			line("GET TARGET HTTP/1.0"), "HTTP/1.0"),
		mustRefuse("req-host-missing", "an HTTP/1.1 request without Host is refused", "RFC 9112, section 3.2",
			set("Host"), "no Host"),
		mustRefuse("req-host-twice", "two Host lines are refused", "RFC 9112, section 3.2",
			func(p *prober, r *request) { r.add("Host", p.host) }, "Host twice"),
		mustRefuse("req-upgrade-missing", "a request without Upgrade is not upgraded", rfcClientHandshake,
			set("Upgrade"), "no Upgrade"),
		mustRefuse("req-upgrade-other", "Upgrade naming another protocol is not upgraded to WebSocket", rfcClientHandshake,
			set("Upgrade", "h2c"), "Upgrade: h2c"),
		mustAccept("req-upgrade-case", "the Upgrade token is matched ignoring ASCII case", rfcClientHandshake,
			set("Upgrade", "WebSocket"), "Upgrade: WebSocket"),
		{ID: "req-upgrade-list", Group: GroupRequest, Title: "websocket is found in an Upgrade list, and only it is answered", RFC: "RFC 9110, section 7.8",
			run: func(p *prober) verdict { return p.upgradeList([]string{"cooperprobe/1, websocket"}) }},
		{ID: "req-upgrade-lines", Group: GroupRequest, Title: "websocket is found on a second Upgrade line", RFC: "RFC 9110, section 5.3",
			run: func(p *prober) verdict { return p.upgradeList([]string{"cooperprobe/1", "websocket"}) }},
		mustRefuse("req-connection-missing", "a request without Connection is not upgraded", rfcClientHandshake,
			set("Connection"), "no Connection"),
		mustRefuse("req-connection-close", "Connection without the upgrade token is not upgraded", rfcClientHandshake,
			set("Connection", "close"), "Connection: close"),
		mustRefuse("req-connection-substring", "the upgrade token is a whole list element, not a substring", "RFC 9110, section 5.6.1",
			set("Connection", "upgradex"), "Connection: upgradex"),
		mustAccept("req-connection-list", "the upgrade token is found in a Connection list", rfcClientHandshake,
			set("Connection", "keep-alive, Upgrade"), "Connection: keep-alive, Upgrade"),
		mustAccept("req-connection-lines", "the upgrade token is found on a second Connection line", "RFC 9110, section 5.3",
			set("Connection", "keep-alive", "Upgrade"), "Connection on two lines"),
		mustAccept("req-connection-case", "the upgrade token is matched ignoring ASCII case", rfcClientHandshake,
			set("Connection", "UPGRADE"), "Connection: UPGRADE"),
		mustAccept("req-connection-empty-elements", "empty elements of the Connection list are ignored", "RFC 9110, section 5.6.1",
			set("Connection", ", keep-alive, , Upgrade,"), "Connection: , keep-alive, , Upgrade,"),
		mustRefuse("req-key-missing", "a request without Sec-WebSocket-Key is refused", rfcClientHandshake,
			set("Sec-WebSocket-Key"), "no key"),
		mustRefuse("req-key-15-bytes", "a key of 15 bytes is refused", rfcClientHandshake,
			set("Sec-WebSocket-Key", keyOf(15)), "a key decoding to 15 bytes"),
		mustRefuse("req-key-17-bytes", "a key of 17 bytes is refused", rfcClientHandshake,
			set("Sec-WebSocket-Key", keyOf(17)), "a key decoding to 17 bytes"),
		mustRefuse("req-key-not-base64", "a key of 24 characters that is not base64 is refused", rfcClientHandshake,
			set("Sec-WebSocket-Key", "!!!!!!!!!!!!!!!!!!!!!!=="), "Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!=="),
		mustRefuse("req-key-twice", "two Sec-WebSocket-Key lines are refused", "RFC 6455, section 11.3.1",
			func(p *prober, r *request) { r.add("Sec-WebSocket-Key", newKey()) }, "two keys"),
		mustAccept("req-key-whitespace", "whitespace around the key is not part of it", "RFC 9110, section 5.5",
			func(p *prober, r *request) { r.set("Sec-WebSocket-Key", "  "+r.key+"\t") }, "the key between spaces"),
		mustRefuse("req-version-missing", "a request without Sec-WebSocket-Version is refused", rfcClientHandshake,
			set("Sec-WebSocket-Version"), "no version"),
		mustRefuse("req-version-8", "version 8 is refused", rfcServerAnswer,
			set("Sec-WebSocket-Version", "8"), "Sec-WebSocket-Version: 8"),
		mustRefuse("req-version-leading-zero", "version 013 is not 13", rfcClientHandshake,
			set("Sec-WebSocket-Version", "013"), "Sec-WebSocket-Version: 013"),
		mustRefuse("req-version-two-lines", "versions 8 and 13 on two lines are refused", "RFC 6455, section 11.3.5",
			set("Sec-WebSocket-Version", "8", "13"), "Sec-WebSocket-Version on two lines"),
		{ID: "req-version-header", Group: GroupRequest, Title: "a version refusal names the versions the server speaks", RFC: rfcServerAnswer,
			run: func(p *prober) verdict {
				r := p.request()
				r.set("Sec-WebSocket-Version", "8")
				resp, err := p.send(r)
				if err != nil {
					return fail("version 8: %v", err)
				}
				defer resp.close()
				if resp.StatusCode == http.StatusSwitchingProtocols {
					return skip("version 8 was accepted (req-version-8 fails)")
				}
				if !hasToken(resp.lines("Sec-WebSocket-Version"), "13") {
					return fail("version 8: %s without Sec-WebSocket-Version: 13", resp.Status)
				}
				return pass("version 8: %s with Sec-WebSocket-Version: %s", resp.Status, strings.Join(resp.lines("Sec-WebSocket-Version"), ", "))
			}},
		{ID: "req-426-upgrade", Group: GroupRequest, Title: "every 426 carries Upgrade", RFC: "RFC 9110, section 15.5.22",
			run: func(p *prober) verdict {
				edits := []struct {
					what string
					edit func(r *request)
				}{
					{"version 8", func(r *request) { r.set("Sec-WebSocket-Version", "8") }},
					{"no version", func(r *request) { r.del("Sec-WebSocket-Version") }},
					{"no Upgrade", func(r *request) { r.del("Upgrade") }},
					{"Upgrade: h2c", func(r *request) { r.set("Upgrade", "h2c") }},
					{"Connection: close", func(r *request) { r.set("Connection", "close") }},
					{"HTTP/1.0", func(r *request) { r.line = "GET " + p.target + " HTTP/1.0" }},
				}
				var seen []string
				for _, e := range edits {
					r := p.request()
					e.edit(r)
					resp, err := p.send(r)
					if err != nil {
						continue
					}
					resp.close()
					if resp.StatusCode != http.StatusUpgradeRequired {
						continue
					}
					if len(resp.lines("Upgrade")) == 0 {
						return fail("%s: 426 without Upgrade", e.what)
					}
					seen = append(seen, e.what)
				}
				if len(seen) == 0 {
					return skip("no request was answered 426")
				}
				return pass("426 with Upgrade for %s", strings.Join(seen, ", "))
			}},
	}
}

// upgradeList sends Upgrade as lines, websocket among other protocols. A
// server may refuse (a warn: it need not read lists), but once it
// switches, its Upgrade must name websocket alone (RFC 6455, section 4.1:
// the client fails any other value).
func (p *prober) upgradeList(lines []string) verdict {
	r := p.request()
	r.set("Upgrade", lines...)
	what := fmt.Sprintf("Upgrade: %s", strings.Join(lines, " / "))
	refusal := func(resp *response) verdict {
		return warn("%s: %s; websocket was among the protocols offered", what, resp.Status)
	}
	return p.upgraded(r, what, refusal, func(resp *response) verdict {
		up := resp.lines("Upgrade")
		if len(up) != 1 || !asciiEqualFold(up[0], "websocket") {
			return fail("%s: 101 with Upgrade %q, want websocket alone", what, up)
		}
		return pass("%s: 101 with Upgrade: %s", what, up[0])
	})
}
