package probe

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

const rfcSubprotocol = "RFC 6455, section 4.2.2"

// Subprotocols no server speaks.
const (
	unknownSub1 = "cooperprobe-unknown-1"
	unknownSub2 = "cooperprobe-unknown-2"
)

// subprotocolCase makes a case that offers lines of Sec-WebSocket-Protocol
// (none when lines is nil) and judges the answer. A 101 may name one
// subprotocol, one of those offered, on one line (RFC 6455, sections 4.1
// and 11.3.4); judge decides the rest from what was chosen ("" for none)
// or from the refusal (resp.StatusCode != 101).
func subprotocolCase(id, title, rfc string, needSpoken bool, offer func(p *prober) []string,
	judge func(p *prober, resp *response, chosen string) verdict) Case {
	return Case{ID: id, Group: GroupSubprotocol, Title: title, RFC: rfc, run: func(p *prober) verdict {
		if needSpoken && p.cfg.Subprotocol == "" {
			return skip("needs -subprotocol: a subprotocol the endpoint speaks")
		}
		r := p.request()
		lines := offer(p)
		r.set("Sec-WebSocket-Protocol", lines...)
		refusal := func(resp *response) verdict { return judge(p, resp, "") }
		return p.upgraded(r, fmt.Sprintf("offering %q", lines), refusal, func(resp *response) verdict {
			answer := resp.lines("Sec-WebSocket-Protocol")
			if len(answer) > 1 {
				return fail("%d Sec-WebSocket-Protocol lines in the 101 (RFC 6455, section 11.3.4)", len(answer))
			}
			offered := tokens(lines)
			chosen := ""
			if len(answer) == 1 {
				chosen = answer[0]
				if !slices.Contains(offered, chosen) {
					return fail("the 101 names subprotocol %q; offered %q (RFC 6455, section 4.1)", chosen, offered)
				}
				if strings.ContainsAny(chosen, ", \t") {
					return fail("the 101 names %q, not one subprotocol", chosen)
				}
			}
			return judge(p, resp, chosen)
		})
	}}
}

func subprotocolCases() []Case {
	spoken := func(p *prober) string { return p.cfg.Subprotocol }
	// theSpoken passes when the spoken subprotocol was chosen, warns when
	// none was, and warns on a refusal: the server need not read the list
	// as the probe wrote it, but a server that speaks a subprotocol
	// offered should choose it.
	theSpoken := func(p *prober, resp *response, chosen string) verdict {
		switch {
		case resp.StatusCode != http.StatusSwitchingProtocols:
			return warn("refused with %s, though %s, which it speaks, was offered", resp.Status, spoken(p))
		case chosen == "":
			return warn("no subprotocol chosen, though %s, which it speaks, was offered", spoken(p))
		case chosen != spoken(p):
			return warn("%s chosen, not %s", chosen, spoken(p))
		}
		return pass("%s chosen", chosen)
	}
	return []Case{
		subprotocolCase("sub-none-offered", "without an offer the 101 names no subprotocol", "RFC 6455, section 4.1", false,
			func(p *prober) []string { return nil },
			func(p *prober, resp *response, chosen string) verdict {
				// A 101 naming one fails before judge: none was offered.
				if resp.StatusCode != http.StatusSwitchingProtocols {
					return skip("refused with %s without a subprotocol", resp.Status)
				}
				return pass("none named")
			}),
		subprotocolCase("sub-unknown", "of subprotocols it does not speak, none is chosen", rfcSubprotocol, false,
			func(p *prober) []string { return []string{unknownSub1 + ", " + unknownSub2} },
			func(p *prober, resp *response, chosen string) verdict {
				switch {
				case resp.StatusCode != http.StatusSwitchingProtocols:
					return pass("refused with %s", resp.Status)
				case chosen != "":
					return warn("%s chosen: does the server speak it?", chosen)
				}
				return pass("101 naming none")
			}),
		subprotocolCase("sub-chosen", "a subprotocol it speaks is chosen from a list", rfcSubprotocol, true,
			func(p *prober) []string { return []string{unknownSub1 + ", " + spoken(p)} }, theSpoken),
		subprotocolCase("sub-lines", "a subprotocol offered on a second line is chosen", "RFC 9110, section 5.3", true,
			func(p *prober) []string { return []string{unknownSub1, spoken(p)} }, theSpoken),
		subprotocolCase("sub-empty-elements", "empty elements of the list are ignored", "RFC 9110, section 5.6.1", true,
			func(p *prober) []string { return []string{", " + spoken(p) + " ,,"} },
			func(p *prober, resp *response, chosen string) verdict {
				if resp.StatusCode != http.StatusSwitchingProtocols {
					return fail("refused with %s; a recipient must ignore empty list elements", resp.Status)
				}
				return theSpoken(p, resp, chosen)
			}),
		subprotocolCase("sub-one", "of two it speaks, one is named", "RFC 6455, section 11.3.4", true,
			func(p *prober) []string { return []string{spoken(p) + ", " + spoken(p)} },
			func(p *prober, resp *response, chosen string) verdict {
				if resp.StatusCode != http.StatusSwitchingProtocols {
					return warn("refused with %s", resp.Status)
				}
				return pass("the 101 names %q", chosen)
			}),
		subprotocolCase("sub-invalid-element", "an element that is not a token is never chosen", "RFC 6455, section 4.1", true,
			func(p *prober) []string { return []string{"cooperprobe/1, " + spoken(p)} },
			func(p *prober, resp *response, chosen string) verdict {
				switch {
				case resp.StatusCode != http.StatusSwitchingProtocols:
					return pass("refused with %s", resp.Status)
				case chosen == "cooperprobe/1":
					return fail("chose cooperprobe/1, which is not a token")
				}
				return pass("101 naming %q", chosen)
			}),
		subprotocolCase("sub-case", "subprotocols are compared as sent: a case-changed name is another one", "RFC 6455, section 4.1", true,
			func(p *prober) []string { return []string{swapCase(spoken(p))} },
			func(p *prober, resp *response, chosen string) verdict {
				switch {
				case swapCase(spoken(p)) == spoken(p):
					return skip("%s has no letters", spoken(p))
				case resp.StatusCode != http.StatusSwitchingProtocols:
					return pass("refused with %s", resp.Status)
				case chosen == "":
					return pass("101 naming none")
				}
				return warn("chose %q for %s: subprotocol names are not compared ignoring case", chosen, spoken(p))
			}),
	}
}

// swapCase swaps the case of ASCII letters.
func swapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}
