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

// DeflateParams are permessage-deflate parameters (RFC 7692, section 7.1).
// As a [Deflate] policy they say what the server's framing layer does and
// wants; in [Handshake].Deflate they are what was agreed, which the framing
// layer must honour, with window bits filled in (15 when unlimited).
type DeflateParams struct {
	// ServerNoContextTakeover: the server resets its compressor after each
	// message. In a policy, true answers server_no_context_takeover always;
	// false answers it only when the client asks, which then binds.
	ServerNoContextTakeover bool
	// ClientNoContextTakeover: the client resets its compressor after each
	// message. In a policy, true asks the client to (answered always); it is
	// also answered when the client offered it.
	ClientNoContextTakeover bool
	// ServerMaxWindowBits is the base-2 logarithm of the server
	// compressor's window, 8 to 15; 0 means 15. In a policy it is the window
	// the compressor really keeps (Go's compress/flate always keeps 15): an
	// offer asking for a smaller one is declined, and an offer that carries
	// server_max_window_bits is answered with this value.
	ServerMaxWindowBits int
	// ClientMaxWindowBits is the base-2 logarithm of the client
	// compressor's window, 8 to 15; 0 means 15. In a policy it limits the
	// client's window when the offer allows it (client_max_window_bits,
	// with or without a value): the answer is the smaller of the two. An
	// offer without it cannot be limited and is agreed at 15.
	ClientMaxWindowBits int
}

// maxWindowBits is the largest LZ77 window permessage-deflate allows, and
// the one assumed when none is given.
const maxWindowBits = 15

// A deflateAnswer is the negotiated permessage-deflate response: the
// agreed parameters and which window parameters the answer carries.
type deflateAnswer struct {
	params     DeflateParams
	serverBits bool // answer server_max_window_bits: the offer carried it
	clientBits bool // answer client_max_window_bits: the offer carried it
}

// A deflateOffer is one permessage-deflate offer's parameters.
type deflateOffer struct {
	serverNoContext, clientNoContext bool
	serverBits, clientBits           int // 0: not offered; -1: offered without a value
}

// negotiateDeflate picks the first permessage-deflate offer in the
// Sec-WebSocket-Extensions lines that is valid and that policy can honour
// (RFC 7692, sections 5 and 7). Other extensions are ignored. ok is false
// when there is no such offer or the lines are malformed; the upgrade then
// goes on without the extension.
func negotiateDeflate(lines []string, policy *DeflateParams) (a deflateAnswer, ok bool) {
	malformed := false
	wellFormed := scanList(lines, isOtherExtension, func(elem string) bool {
		name, params := cutParam(elem)
		if !tokenEqual(name, "permessage-deflate") {
			return true
		}
		o, valid, wellFormed := parseDeflateOffer(params)
		if !wellFormed {
			malformed = true
			return false
		}
		if !valid {
			return true
		}
		a, ok = acceptDeflate(&o, policy)
		return !ok
	})
	return a, ok && wellFormed && !malformed
}

// isOtherExtension reports whether elem is a well-formed extension, or a
// permessage-deflate offer, which parseDeflateOffer checks as it parses it.
func isOtherExtension(elem string) bool {
	name, _ := cutParam(elem)
	return tokenEqual(name, "permessage-deflate") || isExtension(elem)
}

// acceptDeflate answers a valid offer o under policy, or declines it.
func acceptDeflate(o *deflateOffer, policy *DeflateParams) (deflateAnswer, bool) {
	serverBits := windowBits(policy.ServerMaxWindowBits)
	if o.serverBits > 0 && o.serverBits < serverBits {
		// RFC 7692, section 7.1.2.1: the answer may not exceed the offer,
		// and the compressor cannot keep a smaller window than it does.
		return deflateAnswer{}, false
	}
	a := deflateAnswer{
		params: DeflateParams{
			ServerNoContextTakeover: policy.ServerNoContextTakeover || o.serverNoContext,
			ClientNoContextTakeover: policy.ClientNoContextTakeover || o.clientNoContext,
			ServerMaxWindowBits:     serverBits,
			ClientMaxWindowBits:     maxWindowBits,
		},
		serverBits: o.serverBits != 0,
		clientBits: o.clientBits != 0,
	}
	if o.clientBits != 0 {
		// RFC 7692, section 7.1.2.2: only an offer with the parameter may be
		// answered with it, and with no more than its value.
		a.params.ClientMaxWindowBits = windowBits(policy.ClientMaxWindowBits)
		if o.clientBits > 0 {
			a.params.ClientMaxWindowBits = min(a.params.ClientMaxWindowBits, o.clientBits)
		}
	}
	return a, true
}

// windowBits returns bits, or 15 for 0.
func windowBits(bits int) int {
	if bits == 0 {
		return maxWindowBits
	}
	return bits
}

// parseDeflateOffer parses the parameters of a permessage-deflate offer,
// the part of the element after its name, in one pass. wellFormed is false
// when a parameter breaks the extension grammar (see isExtension), which
// makes the whole header malformed. valid is false, declining the offer
// alone, for an unknown parameter, a parameter given twice, a
// *_no_context_takeover with a value, server_max_window_bits without one,
// or a window that is not 8 to 15 (RFC 7692, section 7.1).
func parseDeflateOffer(params string) (o deflateOffer, valid, wellFormed bool) {
	valid = true
	for params != "" {
		var name, value string
		var hasValue bool
		name, value, hasValue, params = nextParam(params)
		if !isToken(name) || hasValue && !isToken(value) && !isQuotedToken(value) {
			return o, false, false
		}
		if !valid {
			continue // keep checking the grammar
		}
		switch {
		case tokenEqual(name, "server_no_context_takeover"):
			valid = !o.serverNoContext && !hasValue
			o.serverNoContext = true
		case tokenEqual(name, "client_no_context_takeover"):
			valid = !o.clientNoContext && !hasValue
			o.clientNoContext = true
		case tokenEqual(name, "server_max_window_bits"):
			valid = o.serverBits == 0 && hasValue
			o.serverBits = parseWindowBits(value)
			valid = valid && o.serverBits != 0
		case tokenEqual(name, "client_max_window_bits"):
			valid = o.clientBits == 0
			o.clientBits = -1
			if hasValue {
				o.clientBits = parseWindowBits(value)
				valid = valid && o.clientBits != 0
			}
		default:
			valid = false
		}
	}
	return o, valid, true
}

// parseWindowBits returns the window size in value, a token or a quoted
// string, or 0 when it is not a decimal integer from 8 to 15 without
// leading zeros (RFC 7692, section 7.1.2.1). It unquotes without
// allocating: a quoted value must unescape to a token, here digits.
func parseWindowBits(value string) int {
	if len(value) >= 2 && value[0] == '"' {
		value = value[1 : len(value)-1]
	}
	n, digits := 0, 0
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c == '\\' && i+1 < len(value) {
			i++
			c = value[i]
		}
		if c < '0' || c > '9' || digits == 0 && c == '0' || digits == 2 {
			return 0
		}
		n = 10*n + int(c-'0')
		digits++
	}
	if n < 8 || n > maxWindowBits {
		return 0
	}
	return n
}

// isExtension reports whether elem is an extension element (RFC 6455,
// section 9.1):
//
//	extension       = extension-token *( OWS ";" OWS extension-param )
//	extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
//
// White space around "=" is tolerated, as the RFC's implied *LWS allows.
func isExtension(elem string) bool {
	name, params := cutParam(elem)
	if !isToken(name) {
		return false
	}
	for params != "" {
		var pname, value string
		var hasValue bool
		pname, value, hasValue, params = nextParam(params)
		if !isToken(pname) || hasValue && !isToken(value) && !isQuotedToken(value) {
			return false
		}
	}
	return true
}

// isQuotedToken reports whether s is a quoted string that unescapes to a
// token, as RFC 6455, section 9.1 requires of quoted extension values.
func isQuotedToken(s string) bool {
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s)-1 {
			i++
			c = s[i]
		}
		if !tokenChars[c] {
			return false
		}
	}
	return true
}

// cutParam splits elem at its first ";" outside a quoted string: the part
// before it, without trailing white space, and the rest from that ";" on,
// or "" when there is none.
func cutParam(elem string) (before, rest string) {
	for i := 0; i < len(elem); i++ {
		switch elem[i] {
		case ';':
			return trimOWS(elem[:i]), elem[i:]
		case '"':
			end, ok := skipQuoted(elem, i)
			if !ok {
				return elem, ""
			}
			i = end - 1
		}
	}
	return trimOWS(elem), ""
}

// nextParam splits the first parameter off params, which starts with the
// ";" before it: its name, its value (raw, a token or a quoted string) if it
// has one, and the parameters after it. An empty parameter, as in a
// trailing ";", has an empty name.
func nextParam(params string) (name, value string, hasValue bool, rest string) {
	param, rest := cutParam(params[1:])
	param = trimOWS(param)
	for i := 0; i < len(param); i++ {
		if param[i] == '=' {
			return trimOWS(param[:i]), trimOWS(param[i+1:]), true, rest
		}
	}
	return param, "", false, rest
}

// appendDeflate appends the permessage-deflate answer a to b: the agreed
// parameters, each once, in a fixed order.
func appendDeflate(b []byte, a *deflateAnswer) []byte {
	b = append(b, "permessage-deflate"...)
	if a.params.ServerNoContextTakeover {
		b = append(b, "; server_no_context_takeover"...)
	}
	if a.params.ClientNoContextTakeover {
		b = append(b, "; client_no_context_takeover"...)
	}
	if a.serverBits {
		b = append(b, "; server_max_window_bits="...)
		b = appendBits(b, a.params.ServerMaxWindowBits)
	}
	if a.clientBits {
		b = append(b, "; client_max_window_bits="...)
		b = appendBits(b, a.params.ClientMaxWindowBits)
	}
	return b
}

// appendBits appends a window size, 8 to 15, in decimal.
func appendBits(b []byte, bits int) []byte {
	if bits >= 10 {
		return append(b, '1', byte('0'+bits-10))
	}
	return append(b, byte('0'+bits))
}
