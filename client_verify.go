package cooper

import (
	"bufio"
	"net/http"
	"slices"
)

// This file is the client's check of the server's answer (RFC 9110,
// section 7.8; RFC 6455, section 4.1; RFC 7692, section 7): the status,
// Upgrade and Connection, Sec-WebSocket-Accept, the subprotocol and the
// extensions against what was offered.

// verifyResponse checks resp, the answer to the upgrade request r for
// proto (RFC 9110, section 7.8; for WebSocket, RFC 6455, section 4.1, with
// key the Sec-WebSocket-Key sent), and returns what was agreed. br is
// where resp was read from, for the start of a refusal's body.
func verifyResponse(r *http.Request, resp *http.Response, br *bufio.Reader, proto, key string) (Handshake, error) {
	hs := Handshake{Protocol: proto, Request: r}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return hs, unexpectedStatus(resp, br)
	}
	if resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
		// RFC 9110, section 7.8: Upgrade is HTTP/1.1's; no other version
		// switches protocols with a 101.
		return hs, fail(ErrReadResponse, "read response: version %s of the 101 is not HTTP/1.1", quote(resp.Proto))
	}
	switch up := resp.Header[hdrUpgrade]; {
	case len(up) == 0:
		return hs, fail(ErrMissingUpgradeHeader, "Upgrade: missing from the 101")
	case !namesOnly(up, proto):
		return hs, fail(ErrProtocolMismatch, "Upgrade: %s is not the %s requested", quoteLines(up), quote(proto))
	}
	conn := resp.Header[hdrConnection]
	switch found, ok := hasToken(conn, "upgrade"); {
	case len(conn) == 0:
		return hs, fail(ErrMissingConnectionHeader, "Connection: missing from the 101")
	case !ok:
		return hs, fail(ErrMissingConnectionHeader, "Connection: %s is not a valid list", quoteLines(conn))
	case !found:
		return hs, fail(ErrMissingConnectionHeader, "Connection: %s has no \"upgrade\" token", quoteLines(conn))
	}
	if key == "" {
		return hs, nil
	}
	if err := verifyAccept(resp.Header[hdrWSAccept], key); err != nil {
		return hs, err
	}
	var err error
	if hs.Subprotocol, err = verifySubprotocol(r.Header[hdrWSProtocol], resp.Header[hdrWSProtocol]); err != nil {
		return hs, err
	}
	if hs.Deflate, err = verifyExtensions(r.Header[hdrWSExtensions], resp.Header[hdrWSExtensions]); err != nil {
		return hs, err
	}
	return hs, nil
}

// namesOnly reports whether the Upgrade lines of a 101 list proto and no
// other protocol, ignoring ASCII case and the empty list elements a
// recipient must accept (RFC 9110, section 5.6.1).
func namesOnly(lines []string, proto string) bool {
	n, match := 0, false
	ok := scanList(lines, isProtocol, func(elem string) bool {
		n++
		match = tokenEqual(elem, proto)
		return true
	})
	return ok && n == 1 && match
}

// unexpectedStatus returns the error for an answer other than 101, with
// the start of its body when it arrived with the head.
func unexpectedStatus(resp *http.Response, br *bufio.Reader) error {
	if resp.ContentLength > 0 && br.Buffered() > 0 {
		n := min(resp.ContentLength, int64(br.Buffered()), maxQuoted+1)
		body, _ := br.Peek(int(n))
		return fail(ErrUnexpectedStatus, "status: %s is not 101 Switching Protocols; body %s",
			quote(resp.Status), quote(string(trimTrailingSpace(body))))
	}
	return fail(ErrUnexpectedStatus, "status: %s is not 101 Switching Protocols", quote(resp.Status))
}

// trimTrailingSpace returns b without trailing white space and line ends.
func trimTrailingSpace(b []byte) []byte {
	for len(b) > 0 && (isOWS(b[len(b)-1]) || b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

// verifyAccept checks the Sec-WebSocket-Accept lines of a 101 against the
// key sent (RFC 6455, section 4.1, item 4 of the checks).
func verifyAccept(lines []string, key string) error {
	switch {
	case len(lines) == 0:
		return fail(ErrAcceptMismatch, "Sec-WebSocket-Accept: missing from the 101")
	case len(lines) > 1:
		return fail(ErrAcceptMismatch, "Sec-WebSocket-Accept: sent %d times", len(lines))
	}
	var buf [acceptKeyLen]byte
	if want := AppendAcceptKey(buf[:0], key); trimOWS(lines[0]) != string(want) {
		return fail(ErrAcceptMismatch, "Sec-WebSocket-Accept: %s does not match the key", quote(lines[0]))
	}
	return nil
}

// verifySubprotocol checks the Sec-WebSocket-Protocol lines of a 101
// against those of the request (RFC 6455, section 4.1, item 6 of the
// checks): at most one value, which the request offered, byte for byte. It
// returns the subprotocol agreed, or "" when the answer names none (an
// empty value also counts as none).
func verifySubprotocol(offer, answer []string) (string, error) {
	switch {
	case len(answer) == 0:
		return "", nil
	case len(answer) > 1:
		return "", fail(ErrSubprotocolMismatch, "Sec-WebSocket-Protocol: sent %d times", len(answer))
	}
	sub := trimOWS(answer[0])
	if sub == "" {
		return "", nil
	}
	offered, found := false, false
	if !scanList(offer, isToken, func(elem string) bool {
		offered = true
		found = elem == sub
		return !found
	}) {
		offered, found = false, false
	}
	switch {
	case !offered:
		return "", fail(ErrSubprotocolMismatch, "Sec-WebSocket-Protocol: %s answered, but none was offered", quote(sub))
	case !isToken(sub):
		return "", fail(ErrSubprotocolMismatch, "Sec-WebSocket-Protocol: %s is not one subprotocol", quote(sub))
	case !found:
		return "", fail(ErrSubprotocolMismatch, "Sec-WebSocket-Protocol: %s was not offered", quote(sub))
	}
	return sub, nil
}

// verifyExtensions checks the Sec-WebSocket-Extensions lines of a 101
// against those of the request (RFC 6455, section 4.1, item 5 of the
// checks; RFC 7692, section 7) and returns the permessage-deflate
// parameters agreed, nil when none. Every extension answered must have
// been offered and be answered once. permessage-deflate must answer one of
// the offers: its parameters known, each given once, with a valid value,
// as section 7.1 allows in an answer to that offer. Any other extension is
// one the caller offered itself, and it is the caller's to check. A list
// that is not well-formed is reported before any other fault.
func verifyExtensions(offer, answer []string) (*DeflateParams, error) {
	var (
		agreed *DeflateParams
		seen   []string
		err    error
		offers = deflateOffers(offer)
	)
	wellFormed := scanExtensions(answer, true, func(x extension) bool {
		switch {
		case slices.ContainsFunc(seen, func(s string) bool { return tokenEqual(s, x.name) }):
			err = fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: %s is answered twice", quote(x.name))
		case x.deflate && len(offers) == 0, !x.deflate && !offersExtension(offer, x.name):
			err = fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: %s was not offered", quote(x.name))
		case x.fault.kind != faultNone:
			err = answerFault(x.fault)
		case x.deflate:
			if err = answersOneOf(&x.params, offers); err == nil {
				agreed = &DeflateParams{
					ServerNoContextTakeover: x.params.serverNoContext,
					ClientNoContextTakeover: x.params.clientNoContext,
					ServerMaxWindowBits:     windowBits(x.params.serverBits),
					ClientMaxWindowBits:     windowBits(x.params.clientBits),
				}
			}
		}
		seen = append(seen, x.name)
		return err == nil
	})
	if !wellFormed {
		return nil, fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: %s is not a valid extension list", quoteLines(answer))
	}
	if err != nil {
		return nil, err
	}
	return agreed, nil
}

// deflateOffers returns the valid permessage-deflate offers in the
// Sec-WebSocket-Extensions lines of a request, none when the lines are not
// a valid list.
func deflateOffers(lines []string) []deflateElement {
	var offers []deflateElement
	if !scanExtensions(lines, false, func(x extension) bool {
		if x.deflate && x.fault.kind == faultNone {
			offers = append(offers, x.params)
		}
		return true
	}) {
		return nil
	}
	return offers
}

// offersExtension reports whether the Sec-WebSocket-Extensions lines of a
// request, a valid list, offer the extension name.
func offersExtension(lines []string, name string) bool {
	found := false
	ok := scanExtensions(lines, false, func(x extension) bool {
		found = tokenEqual(x.name, name)
		return !found
	})
	return ok && found
}

// answerFault returns the error for a permessage-deflate answer whose
// parameters are not valid, as parseDeflate found them (RFC 7692, section
// 7.1).
func answerFault(f deflateFault) error {
	const prefix = "Sec-WebSocket-Extensions: permessage-deflate has "
	switch f.kind {
	case faultUnknown:
		return fail(ErrExtensionMismatch, prefix+"an unknown parameter %s", quote(f.name))
	case faultTwice:
		return fail(ErrExtensionMismatch, prefix+"%s twice", f.name)
	case faultValue:
		return fail(ErrExtensionMismatch, prefix+"%s with a value, %s", f.name, quote(f.value))
	case faultNoValue:
		return fail(ErrExtensionMismatch, prefix+"%s without a value", f.name)
	}
	return fail(ErrExtensionMismatch, prefix+"%s=%s, not 8 to 15", f.name, quote(f.value))
}

// answersOneOf returns nil when the permessage-deflate answer a answers
// one of offers, as it must (RFC 7692, section 5), or else the error for
// the first offer.
func answersOneOf(a *deflateElement, offers []deflateElement) error {
	var first error
	for i := range offers {
		err := checkDeflateAnswer(a, &offers[i])
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// checkDeflateAnswer checks the answer a against the offer o (RFC 7692,
// sections 7.1.1.1, 7.1.2.1 and 7.1.2.2): an offered
// server_no_context_takeover is accepted only by answering it, an offered
// server_max_window_bits only by answering no more; client_max_window_bits
// is answered only when offered, and no more than an offered value. The
// server may add server_no_context_takeover, client_no_context_takeover
// and server_max_window_bits unasked.
func checkDeflateAnswer(a, o *deflateElement) error {
	switch {
	case o.serverNoContext && !a.serverNoContext:
		return fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: permessage-deflate lacks server_no_context_takeover, which was offered")
	case o.serverBits > 0 && a.serverBits == 0 && o.serverBits < maxWindowBits:
		return fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: permessage-deflate lacks server_max_window_bits, offered as %d", o.serverBits)
	case o.serverBits > 0 && a.serverBits > o.serverBits:
		return fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: permessage-deflate has server_max_window_bits=%d, more than the %d offered", a.serverBits, o.serverBits)
	case a.clientBits != 0 && o.clientBits == 0:
		return fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: permessage-deflate has client_max_window_bits, which was not offered")
	case o.clientBits > 0 && a.clientBits > o.clientBits:
		return fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: permessage-deflate has client_max_window_bits=%d, more than the %d offered", a.clientBits, o.clientBits)
	}
	return nil
}
