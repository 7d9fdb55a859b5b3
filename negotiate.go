package cooper

import (
	"net/http"
	"strconv"
)

// negotiateProtocol picks the Upgrade protocol (RFC 9110, section 7.8) from
// the request's Upgrade lines: the first protocol the client lists that is
// in accept, in the server's spelling, or, when accept is empty, the
// client's first protocol in lower case. ok is false when the lines are
// malformed.
func negotiateProtocol(lines, accept []string) (proto string, ok bool) {
	ok = scanList(lines, isProtocol, func(elem string) bool {
		proto = acceptProtocol(elem, accept)
		return proto == ""
	})
	if !ok {
		return "", false
	}
	return proto, true
}

// acceptProtocol returns the protocol the client's offer agrees to: the one
// of accept that is offer, ignoring ASCII case, in the server's spelling,
// or, when accept is empty, offer in lower case. It returns "" when offer
// is none of accept.
func acceptProtocol(offer string, accept []string) string {
	if len(accept) == 0 {
		return lowerToken(offer)
	}
	for _, a := range accept {
		if tokenEqual(offer, a) {
			return a
		}
	}
	return ""
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

// isWindowBits reports whether bits is a window size permessage-deflate
// allows, 8 to 15 (RFC 7692, section 7.1.2.1).
func isWindowBits(bits int) bool { return 8 <= bits && bits <= maxWindowBits }

// checkWindowBits panics, with a message naming option, unless each window
// size of p is 0 or one isWindowBits allows.
func (p *DeflateParams) checkWindowBits(option string) {
	for _, bits := range [...]int{p.ServerMaxWindowBits, p.ClientMaxWindowBits} {
		if bits != 0 && !isWindowBits(bits) {
			panic("cooper: " + option + ": window bits " + strconv.Itoa(bits) + " are not 8 to 15")
		}
	}
}

// windowBits returns bits, or 15 for 0.
func windowBits(bits int) int {
	if bits == 0 {
		return maxWindowBits
	}
	return bits
}

// A deflateAnswer is the server's permessage-deflate answer: the agreed
// parameters and which window parameters the answer carries.
type deflateAnswer struct {
	params     DeflateParams
	serverBits bool // answer server_max_window_bits: the offer carried it
	clientBits bool // answer client_max_window_bits: the offer carried it
}

// A deflateElement is what the parameters of one permessage-deflate
// element say, an offer's or an answer's (RFC 7692, section 7.1).
type deflateElement struct {
	serverNoContext, clientNoContext bool
	serverBits, clientBits           int // 0: absent; -1: without a value, which only an offer's client_max_window_bits may be
}

// The parameter names of permessage-deflate (RFC 7692, section 7.1).
const (
	paramServerNoContext = "server_no_context_takeover"
	paramClientNoContext = "client_no_context_takeover"
	paramServerBits      = "server_max_window_bits"
	paramClientBits      = "client_max_window_bits"
)

// A deflateFault is why the parameters of a permessage-deflate element
// are not valid: the kind, which declines an offer, and the parameter, which
// the client's message about an answer names.
type deflateFault struct {
	kind  deflateFaultKind
	name  string // the parameter: in its RFC spelling, or as sent when unknown
	value string // its value as sent
}

// A deflateFaultKind is why the parameters of a permessage-deflate element
// are not valid: the server declines such an offer, the client fails on
// such an answer.
type deflateFaultKind uint8

const (
	faultNone      deflateFaultKind = iota
	faultMalformed                  // a parameter breaks the extension grammar: the whole header is malformed
	faultUnknown                    // a parameter RFC 7692 does not define
	faultTwice                      // a parameter given twice
	faultValue                      // a *_no_context_takeover with a value
	faultNoValue                    // a *_max_window_bits without one, where it needs one
	faultBits                       // a window that is not 8 to 15
)

// parseDeflate parses the parameters of a permessage-deflate element whose
// quoted strings are terminated, in one pass (RFC 7692, section 7.1):
// params and more are what cut(elem, &paramEnd) returns after its name.
// Each parameter must be known and given once, the *_no_context_takeover
// ones without a value, the *_max_window_bits ones with a window from 8 to
// 15, except that an offer (answer false) may carry client_max_window_bits
// without one. The fault is the first parameter that is not valid, kind
// faultNone when there is none; but when any parameter breaks the
// extension grammar (see isParam) it is faultMalformed, whatever came
// before.
func parseDeflate(params string, more, answer bool) (e deflateElement, fault deflateFault) {
	for more {
		var name, value string
		var hasValue bool
		name, value, hasValue, params, more = nextParam(params)
		if !isParam(name, value, hasValue) {
			return e, deflateFault{kind: faultMalformed}
		}
		if fault.kind != faultNone {
			continue // keep checking the grammar
		}
		var kind deflateFaultKind
		switch {
		case tokenEqual(name, paramServerNoContext):
			name, kind = paramServerNoContext, setFlag(&e.serverNoContext, hasValue)
		case tokenEqual(name, paramClientNoContext):
			name, kind = paramClientNoContext, setFlag(&e.clientNoContext, hasValue)
		case tokenEqual(name, paramServerBits):
			name, kind = paramServerBits, setBits(&e.serverBits, value, hasValue, true)
		case tokenEqual(name, paramClientBits):
			// RFC 7692, sections 7.1.2.1 and 7.1.2.2: only an offer's
			// client_max_window_bits may leave its value out.
			name, kind = paramClientBits, setBits(&e.clientBits, value, hasValue, answer)
		default:
			kind = faultUnknown
		}
		if kind != faultNone {
			fault = deflateFault{kind: kind, name: name, value: value}
		}
	}
	return e, fault
}

// setFlag sets a *_no_context_takeover parameter, which must come once and
// without a value.
func setFlag(flag *bool, hasValue bool) deflateFaultKind {
	switch {
	case *flag:
		return faultTwice
	case hasValue:
		return faultValue
	}
	*flag = true
	return faultNone
}

// setBits sets a *_max_window_bits parameter, which must come once, with a
// window from 8 to 15 or, unless needValue, without a value (-1).
func setBits(bits *int, value string, hasValue, needValue bool) deflateFaultKind {
	switch {
	case *bits != 0:
		return faultTwice
	case !hasValue && needValue:
		return faultNoValue
	case !hasValue:
		*bits = -1
	default:
		if *bits = parseWindowBits(value); *bits == 0 {
			return faultBits
		}
	}
	return faultNone
}

// negotiateDeflate picks the first permessage-deflate offer in the
// Sec-WebSocket-Extensions lines that is valid and that policy can honour
// (RFC 7692, sections 5 and 7). Other extensions are ignored. ok is false
// when there is no such offer or the lines are malformed; the upgrade then
// goes on without the extension.
func negotiateDeflate(lines []string, policy *DeflateParams) (a deflateAnswer, ok bool) {
	wellFormed := scanExtensions(lines, false, func(x extension) bool {
		if x.deflate && x.fault.kind == faultNone {
			a, ok = acceptDeflate(&x.params, policy)
		}
		return !ok
	})
	return a, ok && wellFormed
}

// An extension is one element of a Sec-WebSocket-Extensions list, as
// scanExtensions hands it over.
type extension struct {
	name    string
	deflate bool           // it is permessage-deflate, and params and fault are set
	params  deflateElement // what its valid parameters say
	fault   deflateFault   // its first parameter that is not valid; kind faultNone when none
}

// scanExtensions calls fn with every extension in the
// Sec-WebSocket-Extensions lines, in order, until fn returns false, the
// parameters of permessage-deflate parsed by parseDeflate as an offer's
// or, when answer is true, an answer's. It reports false when the lines
// are not a valid extension list (RFC 6455, section 9.1), the extensions
// after the one fn stopped at included.
func scanExtensions(lines []string, answer bool, fn func(x extension) bool) bool {
	more, malformed := true, false
	wellFormed := scanList(lines, anyElement, func(elem string) bool {
		name, params, hasParams, _ := cut(elem, &paramEnd)
		x := extension{name: name, deflate: tokenEqual(name, "permessage-deflate")}
		if x.deflate {
			x.params, x.fault = parseDeflate(params, hasParams, answer)
			malformed = x.fault.kind == faultMalformed
		} else {
			malformed = !isExtension(name, params, hasParams)
		}
		if malformed {
			return false
		}
		if more {
			more = fn(x)
		}
		return true
	})
	return wellFormed && !malformed
}

// anyElement is scanExtensions' valid function: scanExtensions checks each
// element's grammar itself as it parses it, so that its name is cut off
// once; the parameters of permessage-deflate are checked by parseDeflate,
// those of any other extension by isExtension.
func anyElement(string) bool { return true }

// acceptDeflate answers a valid offer o under policy, or declines it.
func acceptDeflate(o *deflateElement, policy *DeflateParams) (deflateAnswer, bool) {
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
	if !isWindowBits(n) {
		return 0
	}
	return n
}

// isExtension reports whether an element that cut(elem, &paramEnd) split
// into name, params and more is an extension (RFC 6455, section 9.1):
//
//	extension = extension-token *( OWS ";" OWS extension-param )
//
// with each extension-param as isParam has it.
func isExtension(name, params string, more bool) bool {
	if !isToken(name) {
		return false
	}
	for more {
		var pname, value string
		var hasValue bool
		pname, value, hasValue, params, more = nextParam(params)
		if !isParam(pname, value, hasValue) {
			return false
		}
	}
	return true
}

// appendDeflate appends the server's permessage-deflate answer a to b: the
// agreed parameters, each once, in a fixed order.
func appendDeflate(b []byte, a *deflateAnswer) []byte {
	e := deflateElement{
		serverNoContext: a.params.ServerNoContextTakeover,
		clientNoContext: a.params.ClientNoContextTakeover,
	}
	if a.serverBits {
		e.serverBits = a.params.ServerMaxWindowBits
	}
	if a.clientBits {
		e.clientBits = a.params.ClientMaxWindowBits
	}
	return appendDeflateElement(b, &e)
}

// appendDeflateElement appends the permessage-deflate element e, an offer
// or an answer, to b: its parameters, each once, in a fixed order.
func appendDeflateElement(b []byte, e *deflateElement) []byte {
	b = append(b, "permessage-deflate"...)
	if e.serverNoContext {
		b = append(b, "; "+paramServerNoContext...)
	}
	if e.clientNoContext {
		b = append(b, "; "+paramClientNoContext...)
	}
	if e.serverBits > 0 {
		b = append(b, "; "+paramServerBits+"="...)
		b = appendBits(b, e.serverBits)
	}
	if e.clientBits != 0 {
		b = append(b, "; "+paramClientBits...)
	}
	if e.clientBits > 0 {
		b = append(b, '=')
		b = appendBits(b, e.clientBits)
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
