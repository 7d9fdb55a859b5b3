package cooper

import (
	"net/http"
	"path"
	"strings"
)

// This file is the origin policy of the validate step, against cross-site
// WebSocket hijacking (RFC 6455, section 10.2): the request's Origin
// against its Host, OriginPatterns, or a CheckOrigin function.

// validateOrigin applies the origin policy against cross-site WebSocket
// hijacking (RFC 6455, section 10.2): a browser's request, which carries
// Origin, must come from the request's own host[:port] or from an origin
// OriginPatterns allows. The scheme is not compared: behind a proxy that
// ends TLS the request's own scheme is unknown. A default port (80 for
// http, 443 for https) is the same as none. A CheckOrigin function, when
// set, decides alone.
func validateOrigin(r *http.Request, c *config) *UpgradeError {
	origins := r.Header[hdrOrigin]
	switch {
	case c.checkOrigin != nil:
		return checkOrigin(r, c.checkOrigin)
	case c.skipOriginCheck || len(origins) == 0:
		return nil
	case len(origins) > 1:
		return refusal(http.StatusForbidden, ErrOrigin, nil, "Origin: sent %d times", len(origins))
	case len(origins[0]) > maxOrigin:
		// Before any parsing: no real origin is this long, and a long one
		// would cost its length in work and memory.
		return refusal(http.StatusForbidden, ErrOrigin, nil, "Origin: %d bytes, longer than any origin (%d)", len(origins[0]), maxOrigin)
	}
	scheme, host, ok := parseOrigin(origins[0])
	if !ok {
		return refusal(http.StatusForbidden, ErrOrigin, nil, "Origin: %s is not scheme://host[:port]", quote(origins[0]))
	}
	if sameHost(scheme, host, r.Host) || matchOrigin(c.originPatterns, scheme, host) {
		return nil
	}
	return refusal(http.StatusForbidden, ErrOrigin, nil, "Origin: %s does not match Host %s", quote(origins[0]), quote(r.Host))
}

// checkOrigin asks fn, the CheckOrigin function, whether r may be upgraded.
func checkOrigin(r *http.Request, fn func(*http.Request) bool) *UpgradeError {
	if fn(r) {
		return nil
	}
	if origins := r.Header[hdrOrigin]; len(origins) > 0 {
		return refusal(http.StatusForbidden, ErrOrigin, nil, "Origin: %s refused by CheckOrigin", quoteLines(origins))
	}
	return refusal(http.StatusForbidden, ErrOrigin, nil, "Origin: none sent; CheckOrigin refused the request")
}

// maxOrigin bounds the length of an Origin header. A serialized origin
// (RFC 6454, section 6.2) is a scheme, "://", a host and a port: a host
// name has at most 253 bytes (RFC 1035, section 2.3.4; browsers send
// internationalised names in their ASCII form) and a port at most 6 with
// its colon, which with "https://" makes 267. 512 leaves room for a
// longer scheme, such as a browser extension's.
const maxOrigin = 512

// parseOrigin splits a serialized origin (RFC 6454, section 6.2), such as
// "https://example.com:8443", into scheme and host[:port]. ok is false for
// "null" and for anything else that is not scheme://host[:port].
func parseOrigin(s string) (scheme, host string, ok bool) {
	i := strings.Index(s, "://")
	if i <= 0 || i+3 == len(s) {
		return "", "", false
	}
	scheme, host = s[:i], s[i+3:]
	for j := 0; j < len(scheme); j++ {
		c := scheme[j]
		if !('a' <= lowerASCII(c) && lowerASCII(c) <= 'z' || j > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", "", false
		}
	}
	if !isAuthority(host) {
		return "", "", false
	}
	return scheme, host, true
}

// sameHost reports whether the origin's host[:port] is the request's Host,
// ignoring ASCII case and the scheme's default port on either side.
func sameHost(scheme, host, reqHost string) bool {
	port := defaultPort(scheme)
	return tokenEqual(stripPort(host, port), stripPort(reqHost, port))
}

// stripPort returns the host[:port] s without ":"+port, if it ends with it
// after a host.
func stripPort(s, port string) string {
	if n := len(s) - len(port) - 1; port != "" && n > 0 && s[n] == ':' && s[n+1:] == port {
		return s[:n]
	}
	return s
}

// matchOrigin reports whether one of the lower-case patterns matches host,
// or scheme://host for a pattern with "://".
func matchOrigin(patterns []string, scheme, host string) bool {
	if len(patterns) == 0 {
		return false
	}
	// allocates: only for cross-origin requests.
	host = lowerToken(host)
	full := lowerToken(scheme) + "://" + host
	for _, p := range patterns {
		target := host
		if strings.Contains(p, "://") {
			target = full
		}
		if ok, _ := path.Match(p, target); ok {
			return true
		}
	}
	return false
}

// hasLiteralHost reports whether the host name in the origin pattern p
// (what follows "://", or all of p, up to its last ":", which starts the
// port) has a character other than "." that path.Match must find in the
// host as it is: one outside "*", "?" and a "[...]" class, escaped with a
// backslash or not. The port does not count: a site can use any. p is a
// valid pattern.
func hasLiteralHost(p string) bool {
	if i := strings.Index(p, "://"); i >= 0 {
		p = p[i+3:]
	}
	literal, beforePort, port := false, false, false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '*', '?':
			continue
		case '[':
			// A class matches one character of several: skip to the "]"
			// that ends it, which is never its first member.
			if i++; i < len(p) && p[i] == '^' {
				i++
			}
			for first := true; i < len(p) && (first || p[i] != ']'); first = false {
				if p[i] == '\\' {
					i++
				}
				i++
			}
			continue
		case '\\':
			if i++; i < len(p) {
				c = p[i]
			}
		}
		switch c {
		case ':':
			literal, beforePort, port = false, beforePort || literal, true
		case '.':
		default:
			literal = true
		}
	}
	if port {
		return beforePort
	}
	return literal
}
