package cooper

import "net/http"

// Header keys in canonical form: http.Header is keyed by
// textproto.CanonicalMIMEHeaderKey, so indexing with the RFC spelling
// ("Sec-WebSocket-Key") would miss.
const (
	hdrConnection    = "Connection"
	hdrUpgrade       = "Upgrade"
	hdrOrigin        = "Origin"
	hdrWSKey         = "Sec-Websocket-Key"
	hdrWSVersion     = "Sec-Websocket-Version"
	hdrWSProtocol    = "Sec-Websocket-Protocol"
	hdrWSExtensions  = "Sec-Websocket-Extensions"
	hdrWSAccept      = "Sec-Websocket-Accept"
	hdrContentLength = "Content-Length"
)

// tokenChars marks the bytes allowed in a token (RFC 9110, section 5.6.2):
//
//	token = 1*tchar
//	tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
//	        "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
//
// read-only
var tokenChars = [256]bool{
	'!': true, '#': true, '$': true, '%': true, '&': true, '\'': true, '*': true,
	'+': true, '-': true, '.': true, '^': true, '_': true, '`': true, '|': true, '~': true,
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'A': true, 'B': true, 'C': true, 'D': true, 'E': true, 'F': true, 'G': true, 'H': true, 'I': true,
	'J': true, 'K': true, 'L': true, 'M': true, 'N': true, 'O': true, 'P': true, 'Q': true, 'R': true,
	'S': true, 'T': true, 'U': true, 'V': true, 'W': true, 'X': true, 'Y': true, 'Z': true,
	'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true, 'g': true, 'h': true, 'i': true,
	'j': true, 'k': true, 'l': true, 'm': true, 'n': true, 'o': true, 'p': true, 'q': true, 'r': true,
	's': true, 't': true, 'u': true, 'v': true, 'w': true, 'x': true, 'y': true, 'z': true,
}

// isToken reports whether s is a token (RFC 9110, section 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return true
}

// isProtocol reports whether s is an Upgrade protocol (RFC 9110, section 7.8):
//
//	protocol = protocol-name ["/" protocol-version]
//
// where both parts are tokens.
func isProtocol(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return isToken(s[:i]) && isToken(s[i+1:])
		}
	}
	return isToken(s)
}

// lowerASCII returns b in lower case if it is an ASCII upper-case letter.
func lowerASCII(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}

// tokenEqual reports whether a and b are equal ignoring ASCII case. Unlike
// strings.EqualFold it folds nothing outside ASCII, so "websoc\u212Aet"
// (KELVIN SIGN) is not "websocket".
func tokenEqual(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// isOWS reports whether b is optional white space (RFC 9110, section 5.6.3).
func isOWS(b byte) bool { return b == ' ' || b == '\t' }

// trimOWS removes optional white space from both ends of s.
func trimOWS(s string) string {
	for s != "" && isOWS(s[0]) {
		s = s[1:]
	}
	for s != "" && isOWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// nextElement splits the first element off the comma-separated list s
// (RFC 9110, section 5.6.1) and returns it without surrounding white space,
// with the rest of the list. A comma inside a quoted string does not split.
// elem is "" for an empty element, which recipients must accept and ignore.
// ok is false when a quoted string in the element is not terminated.
func nextElement(s string) (elem, rest string, ok bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ',':
			return trimOWS(s[:i]), s[i+1:], true
		case '"':
			end, ok := skipQuoted(s, i)
			if !ok {
				return "", "", false
			}
			i = end - 1
		}
	}
	return trimOWS(s), "", true
}

// skipQuoted returns the index just past the quoted string that starts at
// s[i] (RFC 9110, section 5.6.4):
//
//	quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
//	qdtext        = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
//	quoted-pair   = "\" ( HTAB / SP / VCHAR / obs-text )
//
// ok is false when the string is not terminated or holds a control byte.
func skipQuoted(s string, i int) (end int, ok bool) {
	for i++; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			i++
			if i == len(s) || !isQuotedText(s[i]) && s[i] != '"' && s[i] != '\\' {
				return 0, false
			}
		case !isQuotedText(c):
			return 0, false
		}
	}
	return 0, false
}

// isQuotedText reports whether c may stand unescaped in a quoted string.
func isQuotedText(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || 0x23 <= c && c <= 0x5b || 0x5d <= c && c <= 0x7e || c >= 0x80
}

// scanList calls fn with every non-empty element of the comma lists in
// lines, in order, until fn returns false. It reports false when any element
// of the lists, before or after the one fn stopped at, does not satisfy
// valid or holds an unterminated quoted string: a header is well-formed as a
// whole or not at all.
func scanList(lines []string, valid func(string) bool, fn func(elem string) bool) bool {
	more := true
	for _, line := range lines {
		for rest := line; rest != ""; {
			var elem string
			var ok bool
			if elem, rest, ok = nextElement(rest); !ok {
				return false
			}
			if elem == "" {
				continue
			}
			if !valid(elem) {
				return false
			}
			if more {
				more = fn(elem)
			}
		}
	}
	return true
}

// hasToken reports whether the token lists in lines hold token, compared
// ignoring ASCII case; ok is false when the lists are malformed.
func hasToken(lines []string, token string) (found, ok bool) {
	ok = scanList(lines, isToken, func(elem string) bool {
		found = tokenEqual(elem, token)
		return !found
	})
	return found && ok, ok
}

// negotiateProtocol picks the Upgrade protocol (RFC 9110, section 7.8): the
// first protocol the client lists that is in accept, in the server's
// spelling, or, when accept is empty, the client's first protocol in lower
// case. ok is false when the Upgrade lists are malformed.
func negotiateProtocol(h http.Header, accept []string) (proto string, ok bool) {
	ok = scanList(h[hdrUpgrade], isProtocol, func(elem string) bool {
		if len(accept) == 0 {
			proto = lowerToken(elem)
			return false
		}
		for _, a := range accept {
			if tokenEqual(elem, a) {
				proto = a
				return false
			}
		}
		return true
	})
	if !ok {
		return "", false
	}
	return proto, true
}

// lowerToken returns s in ASCII lower case; it allocates only when s has an
// upper-case letter.
func lowerToken(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = lowerASCII(b[j])
			}
			return string(b)
		}
	}
	return s
}

// negotiateSubprotocol picks the subprotocol (RFC 6455, section 4.2.2): the
// first one in the client's Sec-WebSocket-Protocol lists that is in accept,
// compared byte for byte. It returns "" when none matches. ok is false when
// the lists are malformed.
//
// The client's order wins: RFC 6455, section 11.3.4 says the client lists
// subprotocols in order of preference, the rule RFC 9110, section 7.8 also
// gives for Upgrade, and a server steers the choice by what it accepts.
func negotiateSubprotocol(h http.Header, accept []string) (sub string, ok bool) {
	ok = scanList(h[hdrWSProtocol], isToken, func(elem string) bool {
		for _, a := range accept {
			if elem == a {
				sub = a
				return false
			}
		}
		return true
	})
	if !ok {
		return "", false
	}
	return sub, true
}
