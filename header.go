package cooper

// This file is the grammar of header field values that every parser in
// cooper stands on (RFC 9110, section 5.6): tokens, lists, parameters and
// quoted strings. In the manner of gobwas/httphead, it scans a value where
// it lies and hands back sub-strings of it, never allocating; a value that
// breaks the grammar is reported with ok false, and the caller picks the
// status and the message.

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
	hdrXForwardedFor = "X-Forwarded-For"
	hdrForwarded     = "Forwarded"
)

// rfcName returns the RFC spelling of a canonical header key, for messages.
func rfcName(key string) string {
	switch key {
	case hdrWSKey:
		return "Sec-WebSocket-Key"
	case hdrWSVersion:
		return "Sec-WebSocket-Version"
	case hdrWSProtocol:
		return "Sec-WebSocket-Protocol"
	case hdrWSExtensions:
		return "Sec-WebSocket-Extensions"
	case hdrWSAccept:
		return "Sec-WebSocket-Accept"
	}
	return key
}

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
		// Most bytes match as they are; fold only those that do not.
		if a[i] != b[i] && lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
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

// isFieldValue reports whether v may be sent as a field value: no control
// bytes other than HTAB (RFC 9110, section 5.5), so no CR or LF.
func isFieldValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
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

// isQuoted reports whether s is one whole quoted string.
func isQuoted(s string) bool {
	end, ok := skipQuoted(s, 0)
	return s != "" && s[0] == '"' && ok && end == len(s)
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

// The bytes at which cut stops, by the separator it cuts at: the
// separator, or the '"' that opens a quoted string, which it skips. They
// are tables rather than a separator byte because scanning lists compared
// with a variable byte was measured a quarter slower than with a constant
// or a table.
//
// read-only
var (
	elementEnd = [256]bool{',': true, '"': true}
	paramEnd   = [256]bool{';': true, '"': true}
)

// cut splits s at its first separator outside a quoted string, "," with
// elementEnd, ";" with paramEnd: the part before it and the part after it,
// the first without surrounding white space. found is false, and after "",
// when s has no such separator; ok is false when a quoted string before it
// is not terminated. Lists (RFC 9110, section 5.6.1) are cut at ",", the
// parameters of an element (section 5.6.6) at ";":
//
//	#element   = [ element ] *( OWS "," OWS [ element ] )
//	parameters = *( OWS ";" OWS [ parameter ] )
func cut(s string, stops *[256]bool) (before, after string, found, ok bool) {
	for i := 0; i < len(s); i++ {
		if !stops[s[i]] {
			continue
		}
		if s[i] != '"' {
			return trimOWS(s[:i]), s[i+1:], true, true
		}
		end, ok := skipQuoted(s, i)
		if !ok {
			return "", "", false, false
		}
		i = end - 1
	}
	return trimOWS(s), "", false, true
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
			if elem, rest, _, ok = cut(rest, &elementEnd); !ok {
				return false
			}
			if elem == "" {
				// An empty element is one recipients must accept and ignore.
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

// nextParam splits the first parameter off params, the part of a list
// element after a ";", whose quoted strings are terminated: its name, its
// value (raw, a token or a quoted string) if it has one, and the
// parameters after it, with more true when there are some. An empty
// parameter, as after a trailing ";", has an empty name. White space
// around "=" is tolerated, as the implied *LWS of RFC 6455, section 9.1
// allows.
func nextParam(params string) (name, value string, hasValue bool, rest string, more bool) {
	param, rest, more, _ := cut(params, &paramEnd)
	for i := 0; i < len(param); i++ {
		if param[i] == '=' {
			return trimOWS(param[:i]), trimOWS(param[i+1:]), true, rest, more
		}
	}
	return param, "", false, rest, more
}

// isParam reports whether a parameter nextParam split off is an
// extension-param (RFC 6455, section 9.1):
//
//	extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
//
// where a quoted value must unescape to a token.
func isParam(name, value string, hasValue bool) bool {
	return isToken(name) && (!hasValue || isToken(value) || isQuotedToken(value))
}

// defaultPort returns the port a URL of scheme has when it names none: 80
// for http and ws, 443 for https and wss (RFC 9110, sections 4.2.1 and
// 4.2.2; RFC 6455, section 3), "" for any other scheme.
func defaultPort(scheme string) string {
	switch lowerToken(scheme) {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

// isAuthority reports whether s is non-empty and each of its bytes may
// stand in the host[:port] of a URL's authority as cooper reads one (RFC
// 3986, section 3.2): printable ASCII, without white space, and none of
// the bytes that end an authority ("/", "?", "#") or come before it ("@",
// and "\", which browsers read as "/"). It is the check of an Origin's
// host; a host the client sends adds one byte (see isHost).
func isAuthority(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@' || c == '\\' {
			return false
		}
	}
	return true
}
