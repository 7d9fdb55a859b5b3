package probe

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// An extension is one element of a Sec-WebSocket-Extensions list
// (RFC 6455, section 9.1): a name and its parameters in order.
type extension struct {
	name   string
	params []param
}

// A param is an extension parameter; quoted values are unescaped.
type param struct {
	name, value string
	hasValue    bool
}

// parseExtensions parses the lines of a Sec-WebSocket-Extensions header
// as one list (RFC 9110, section 5.3), with RFC 6455 section 9.1's
// grammar: token *( ";" token [ "=" ( token / quoted-string ) ] ), empty
// list elements ignored (RFC 9110, section 5.6.1). ok is false when the
// header does not follow the grammar.
func parseExtensions(lines []string) (exts []extension, ok bool) {
	s := strings.Join(lines, ",")
	i := 0
	skipOWS := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	token := func() string {
		start := i
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		return s[start:i]
	}
	for {
		skipOWS()
		if i == len(s) {
			return exts, true
		}
		if s[i] == ',' {
			i++
			continue
		}
		e := extension{name: token()}
		if e.name == "" {
			return nil, false
		}
		for {
			skipOWS()
			if i == len(s) || s[i] == ',' {
				break
			}
			if s[i] != ';' {
				return nil, false
			}
			i++
			skipOWS()
			p := param{name: token()}
			if p.name == "" {
				return nil, false
			}
			skipOWS()
			if i < len(s) && s[i] == '=' {
				i++
				skipOWS()
				p.hasValue = true
				if i < len(s) && s[i] == '"' {
					i++
					var v strings.Builder
					closed := false
					for i < len(s) {
						c := s[i]
						i++
						if c == '\\' && i < len(s) {
							v.WriteByte(s[i])
							i++
							continue
						}
						if c == '"' {
							closed = true
							break
						}
						v.WriteByte(c)
					}
					if !closed {
						return nil, false
					}
					p.value = v.String()
				} else if p.value = token(); p.value == "" {
					return nil, false
				}
			}
			e.params = append(e.params, p)
		}
		exts = append(exts, e)
	}
}

// isToken reports whether s is a token: one or more tchars (RFC 9110,
// section 5.6.2).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return s != ""
}

// isTokenChar reports whether c is a tchar (RFC 9110, section 5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// Parameter names of permessage-deflate (RFC 7692, section 7.1).
const (
	pmdName = "permessage-deflate"
	snct    = "server_no_context_takeover"
	cnct    = "client_no_context_takeover"
	smwb    = "server_max_window_bits"
	cmwb    = "client_max_window_bits"
)

// windowBits parses a window-bits value: a decimal integer without
// leading zeros from 8 to 15 (RFC 7692, sections 7.1.2.1 and 7.1.2.2).
func windowBits(v string) (int, bool) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 8 || n > 15 || strconv.Itoa(n) != v { // "010" and "+10" are not 10
		return 0, false
	}
	return n, true
}

// deflateParams are the parameters of one permessage-deflate offer or
// answer. A window of 0 means the parameter is absent; cmwbPresent with
// cmwb 0 is a client_max_window_bits with no value (allowed in an offer
// only).
type deflateParams struct {
	snct, cnct  bool
	smwb, cmwb  int
	cmwbPresent bool
}

// parseDeflate checks e's parameters as an offer (offer true) or an
// answer, and returns why they are invalid, or "" (RFC 7692, section 7).
func parseDeflate(e extension, offer bool) (deflateParams, string) {
	var d deflateParams
	seen := map[string]bool{}
	for _, p := range e.params {
		name := strings.ToLower(p.name)
		if seen[name] {
			return d, fmt.Sprintf("%s appears twice", p.name)
		}
		seen[name] = true
		switch name {
		case snct, cnct:
			if p.hasValue {
				return d, fmt.Sprintf("%s has a value", p.name)
			}
			if name == snct {
				d.snct = true
			} else {
				d.cnct = true
			}
		case smwb:
			n, ok := windowBits(p.value)
			if !ok {
				return d, fmt.Sprintf("%s=%q is not 8 to 15", p.name, p.value)
			}
			d.smwb = n
		case cmwb:
			d.cmwbPresent = true
			if !p.hasValue && offer {
				continue
			}
			n, ok := windowBits(p.value)
			if !ok {
				return d, fmt.Sprintf("%s=%q is not 8 to 15", p.name, p.value)
			}
			d.cmwb = n
		default:
			return d, fmt.Sprintf("unknown parameter %s", p.name)
		}
	}
	return d, ""
}

// fits reports why answer a cannot accept offer o, or "" when it can
// (RFC 7692, sections 7.1.1 and 7.1.2).
func fits(o, a deflateParams) string {
	switch {
	case o.snct && !a.snct:
		return "server_no_context_takeover was offered and is missing from the answer (RFC 7692, section 7.1.1.1)"
	case o.smwb != 0 && a.smwb == 0:
		return fmt.Sprintf("server_max_window_bits=%d was offered and is missing from the answer (RFC 7692, section 7.1.2.1)", o.smwb)
	case o.smwb != 0 && a.smwb > o.smwb:
		return fmt.Sprintf("server_max_window_bits=%d answered, more than the %d offered (RFC 7692, section 7.1.2.1)", a.smwb, o.smwb)
	case a.cmwbPresent && !o.cmwbPresent:
		return fmt.Sprintf("client_max_window_bits=%d answered, though the offer had no client_max_window_bits (RFC 7692, section 7.1.2.2)", a.cmwb)
	case a.cmwbPresent && o.cmwb != 0 && a.cmwb > o.cmwb:
		return fmt.Sprintf("client_max_window_bits=%d answered, more than the %d offered (RFC 7692, section 7.1.2.2)", a.cmwb, o.cmwb)
	}
	return ""
}

// An agreement is what a handshake's Sec-WebSocket-Extensions answer
// agreed, when it agreed permessage-deflate.
type agreement struct {
	deflateParams
	answer string // the header as received
}

// serverWindow returns the window the server compresses within, in bits.
func (a *agreement) serverWindow() int {
	if a.smwb == 0 {
		return 15
	}
	return a.smwb
}

// judgeDeflate checks the extensions the server answered, the lines of its
// Sec-WebSocket-Extensions, against the offers the request made, lines of
// Sec-WebSocket-Extensions as sent. It returns the agreement (nil when
// permessage-deflate was not agreed) and why the answer breaks the RFCs,
// or "".
func judgeDeflate(offerLines, lines []string) (*agreement, string) {
	answer := strings.Join(lines, ", ")
	exts, ok := parseExtensions(lines)
	if !ok {
		return nil, fmt.Sprintf("Sec-WebSocket-Extensions %q does not parse (RFC 6455, section 9.1)", answer)
	}
	offered, _ := parseExtensions(offerLines)
	var a *agreement
	for _, e := range exts {
		known := false
		for _, o := range offered {
			known = known || asciiEqualFold(o.name, e.name)
		}
		if !known {
			return nil, fmt.Sprintf("the answer %q names %s, which was not offered (RFC 6455, section 4.1)", answer, e.name)
		}
		if !asciiEqualFold(e.name, pmdName) {
			continue
		}
		if a != nil {
			return nil, fmt.Sprintf("the answer %q accepts permessage-deflate twice (RFC 7692, section 5.1)", answer)
		}
		d, why := parseDeflate(e, false)
		if why != "" {
			return nil, fmt.Sprintf("the answer %q: %s (RFC 7692, section 7.1)", answer, why)
		}
		// The answer must accept one valid offer as RFC 7692 section 7
		// says; an invalid offer must have been declined.
		var misfit string
		for _, o := range offered {
			if !asciiEqualFold(o.name, pmdName) {
				continue
			}
			od, invalid := parseDeflate(o, true)
			if invalid != "" {
				if misfit == "" {
					misfit = fmt.Sprintf("an offer with %s must be declined (RFC 7692, section 7)", invalid)
				}
				continue
			}
			if why := fits(od, d); why != "" {
				misfit = why
				continue
			}
			misfit = ""
			break
		}
		if misfit != "" {
			return nil, fmt.Sprintf("the answer %q accepts no valid offer as sent: %s", answer, misfit)
		}
		a = &agreement{deflateParams: d, answer: answer}
	}
	return a, ""
}

// compress compresses a message as permessage-deflate does (RFC 7692,
// section 7.2.1): a raw DEFLATE stream flushed and stripped of its final
// 00 00 ff ff. dict is the window the compressor may refer back into: the
// previous messages, under context takeover.
func compress(p, dict []byte, level int) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriterDict(&b, level, dict) // a valid level: never an error
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// decompress inflates a compressed message (RFC 7692, section 7.2.2), with
// dict as the window of earlier messages under context takeover, nil
// otherwise.
func decompress(p, dict []byte) ([]byte, error) {
	in := append(append(p[:len(p):len(p)], 0, 0, 0xff, 0xff), 0x01, 0, 0, 0xff, 0xff)
	r := flate.NewReaderDict(bytes.NewReader(in), dict)
	out, err := io.ReadAll(io.LimitReader(r, maxPayload+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxPayload {
		return nil, fmt.Errorf("a message inflating past %d bytes", maxPayload)
	}
	return out, nil
}

// window keeps the last 32 KiB of what was sent or received, the most a
// DEFLATE stream can refer back to.
func window(prev, next []byte) []byte {
	w := append(prev, next...)
	if len(w) > 32<<10 {
		w = w[len(w)-32<<10:]
	}
	return w
}
