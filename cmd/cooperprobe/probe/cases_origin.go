package probe

import (
	"net"
	"net/http"
	"strconv"
)

const rfcOrigin = "RFC 6455, section 10.2"

// originCase sends a request with Origin set to origin(p) ("" for none)
// and judges the answer: crossOrigin requests should be refused (a warn
// when accepted: RFC 6455 leaves it to the server), others accepted (a
// warn when refused).
func originCase(id, title string, crossOrigin bool, origin func(p *prober) string) Case {
	return Case{ID: id, Group: GroupOrigin, Title: title, RFC: rfcOrigin, run: func(p *prober) verdict {
		o := origin(p)
		r := p.request()
		r.set("Origin")
		if o != "" {
			r.set("Origin", o)
		}
		what := "Origin: " + o
		if o == "" {
			what = "no Origin"
		}
		resp, err := p.send(r)
		if err != nil {
			return fail("%s: %v", what, err)
		}
		defer resp.close()
		accepted := resp.StatusCode == http.StatusSwitchingProtocols
		switch {
		case crossOrigin && accepted:
			return warn("%s: accepted; a browser page from another origin can open this WebSocket with the user's cookies", what)
		case crossOrigin:
			return pass("%s: refused with %s", what, resp.Status)
		case !accepted:
			return warn("%s: refused with %s", what, resp.Status)
		}
		return pass("%s: 101", what)
	}}
}

// otherPort returns the endpoint's origin with another port.
func (p *prober) otherPort() string {
	host, port, _ := net.SplitHostPort(p.addr) // hostPort joined them
	n, _ := strconv.Atoi(port)
	scheme := "http://"
	if p.tls {
		scheme = "https://"
	}
	if n == 65535 {
		n = 1
	}
	return scheme + net.JoinHostPort(host, strconv.Itoa(n+1))
}

func originCases() []Case {
	return []Case{
		originCase("origin-absent", "a request without Origin (not from a browser) is accepted", false, func(p *prober) string { return "" }),
		originCase("origin-same", "a request from the endpoint's own origin is accepted", false, (*prober).sameOrigin),
		originCase("origin-cross", "a request from another site is refused", true, func(p *prober) string { return "https://cooperprobe.invalid" }),
		originCase("origin-null", "Origin: null (a sandboxed page, a file) is refused", true, func(p *prober) string { return "null" }),
		originCase("origin-other-port", "another port on the same host is another origin", true, (*prober).otherPort),
		originCase("origin-other-scheme", "the same host and port under another scheme is another origin", true, func(p *prober) string {
			if p.tls {
				return "http://" + p.host
			}
			return "https://" + p.host
		}),
		{ID: "origin-403", Group: GroupOrigin, Title: "a request refused for its origin gets 403", RFC: rfcServerAnswer, run: func(p *prober) verdict {
			r := p.request().set("Origin", "https://cooperprobe.invalid")
			resp, err := p.send(r)
			if err != nil {
				return fail("%v", err)
			}
			defer resp.close()
			switch resp.StatusCode {
			case http.StatusSwitchingProtocols:
				return skip("the cross-origin request was accepted")
			case http.StatusForbidden:
				return pass("403")
			}
			return warn("refused with %s; RFC 6455 section 4.2.2 names 403", resp.Status)
		}},
	}
}
