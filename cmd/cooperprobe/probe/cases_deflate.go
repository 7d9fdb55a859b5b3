package probe

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
)

// What a server is expected to do with an offer.
const (
	expectAccept  = iota // valid, plain: a server that does permessage-deflate should accept it (a decline warns)
	expectDecline        // invalid: accepting fails, refusing the handshake warns (RFC 7692, section 7, says decline)
	expectEither         // valid, but a server may decline it
)

// An offerCase sends lines of Sec-WebSocket-Extensions and checks the
// answer against RFC 7692 section 7.1, then, when honour is set and
// permessage-deflate was agreed, exchanges messages that rely on what was
// agreed.
type offerCase struct {
	id, title, rfc string
	lines          []string
	expect         int
	honour         func(p *prober, s *session) verdict
}

func (c offerCase) Case() Case {
	return Case{ID: c.id, Group: GroupDeflate, Title: c.title, RFC: c.rfc, run: func(p *prober) verdict {
		r := p.request()
		r.set("Sec-WebSocket-Extensions", c.lines...)
		offer := strings.Join(c.lines, " / ")
		return p.upgraded(r, fmt.Sprintf("offering %q", offer),
			func(resp *response) verdict { return c.refusal(offer, resp) },
			func(resp *response) verdict { return c.judge(p, offer, resp) })
	}}
}

// refusal judges a refusal of the whole handshake: a server must decline
// an offer, not the handshake.
func (c offerCase) refusal(offer string, resp *response) verdict {
	if c.expect == expectDecline {
		return warn("offering %q: the handshake was refused with %s; RFC 7692 section 7 asks to decline the offer and go on", offer, resp.Status)
	}
	return fail("offering %q, a valid offer: refused with %s", offer, resp.Status)
}

// judge judges the 101's answer to the offer and, when it agrees to one,
// honours it.
func (c offerCase) judge(p *prober, offer string, resp *response) verdict {
	a, why := judgeDeflate(c.lines, resp.lines("Sec-WebSocket-Extensions"))
	switch {
	case why != "":
		return fail("offering %q: %s", offer, why)
	case a == nil && c.expect == expectAccept && p.doesDeflate():
		return warn("offering %q: declined, though the server accepts a plain offer", offer)
	case a == nil && c.honour != nil:
		return skip("offering %q: declined, so nothing to honour", offer)
	case a == nil:
		return pass("offering %q: declined", offer)
	case c.honour == nil:
		return pass("offering %q: %q", offer, a.answer)
	}
	if v, ok := p.needEcho(); !ok {
		return skip("offering %q: %q; honouring it %s", offer, a.answer, v.detail)
	}
	v := c.honour(p, &session{resp: resp, a: a})
	v.detail = fmt.Sprintf("offering %q: %q; %s", offer, a.answer, v.detail)
	return v
}

// doesDeflate finds out once whether the server accepts a plain
// permessage-deflate offer.
func (p *prober) doesDeflate() bool {
	if !p.deflateChecked {
		p.deflateChecked = true
		r := p.request()
		r.set("Sec-WebSocket-Extensions", pmdName)
		if resp, err := p.send(r); err == nil {
			a, why := judgeDeflate([]string{pmdName}, resp.lines("Sec-WebSocket-Extensions"))
			p.deflates = resp.StatusCode == http.StatusSwitchingProtocols && why == "" && a != nil
			resp.close()
		}
	}
	return p.deflates
}

// A session exchanges messages under an agreement, keeping each
// direction's window for context takeover.
type session struct {
	resp     *response
	a        *agreement
	sent     []byte // the client's window: what it sent, uncompressed
	received []byte // the server's window: what it sent, uncompressed
}

// send sends data as one binary message, compressed, referring back into
// earlier messages when withContext (which the agreement must allow).
// It returns the compressed size.
func (s *session) send(data []byte, withContext bool) (int, error) {
	var dict []byte
	if withContext {
		dict = s.sent
	}
	c := compress(data, dict, flate.BestCompression)
	if !s.a.cnct {
		s.sent = window(s.sent, data)
	}
	return len(c), s.resp.sendMessage(opBinary, true, c)
}

// echoed is what came back for one message.
type echoed struct {
	data       []byte
	compressed bool
	size       int // on the wire
}

// receive reads the echo of a message and inflates it: with the server's
// window unless server_no_context_takeover was agreed, or without any
// when fresh.
func (s *session) receive(fresh bool) (echoed, error) {
	m, err := s.resp.readMessage()
	if err != nil {
		return echoed{}, err
	}
	if m.masked {
		return echoed{}, fmt.Errorf("the server masked its frame")
	}
	e := echoed{data: m.payload, compressed: m.compressed, size: len(m.payload)}
	if m.compressed {
		var dict []byte
		if !fresh && !s.a.snct {
			dict = s.received
		}
		if e.data, err = decompress(m.payload, dict); err != nil {
			return e, fmt.Errorf("the echo does not inflate: %v", err)
		}
	}
	if !s.a.snct {
		s.received = window(s.received, e.data)
	}
	return e, nil
}

// randomBytes returns n random bytes: incompressible on their own.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// roundTrips sends each message and checks its echo; it returns the echoes.
func (s *session) roundTrips(msgs [][]byte, withContext, fresh bool) ([]echoed, error) {
	var out []echoed
	for i, m := range msgs {
		if _, err := s.send(m, withContext); err != nil {
			return out, fmt.Errorf("sending message %d: %v", i+1, err)
		}
		e, err := s.receive(fresh)
		if err != nil {
			return out, fmt.Errorf("message %d: %v", i+1, err)
		}
		if !bytes.Equal(e.data, m) {
			return out, fmt.Errorf("message %d came back as %d different bytes", i+1, len(e.data))
		}
		out = append(out, e)
	}
	return out, nil
}

// honourExchange sends three identical messages, compressed, and checks
// the echoes inflate under the agreed context: the second and third may
// refer back into the first unless server_no_context_takeover was agreed.
func honourExchange(p *prober, s *session) verdict {
	m := append(randomBytes(400), bytes.Repeat([]byte("cooperprobe "), 40)...)
	echoes, err := s.roundTrips([][]byte{m, m, m}, false, false)
	if err != nil {
		return fail("%v", err)
	}
	compressed := 0
	for _, e := range echoes {
		if e.compressed {
			compressed++
		}
	}
	if compressed == 0 {
		return warn("three compressible messages echoed, none compressed: permessage-deflate agreed and not used")
	}
	return pass("three messages echoed, %d compressed, sizes %d, %d, %d", compressed, echoes[0].size, echoes[1].size, echoes[2].size)
}

// honourClientContext sends a message, then the same one compressed as a
// reference back into the first, which the server must keep unless
// client_no_context_takeover was agreed (RFC 7692, section 7.1.1.2).
func honourClientContext(p *prober, s *session) verdict {
	if s.a.cnct {
		return skip("the server answered client_no_context_takeover, so the client keeps no context")
	}
	m := randomBytes(1000)
	if _, err := s.roundTrips([][]byte{m}, true, false); err != nil {
		return fail("%v", err)
	}
	size, err := s.send(m, true)
	if err != nil {
		return fail("sending the second message: %v", err)
	}
	if size > 100 {
		return skip("the second message compressed to %d bytes, not a reference back", size)
	}
	e, err := s.receive(false)
	switch {
	case err != nil:
		return fail("a message of %d bytes referring back into the previous one: %v", size, err)
	case !bytes.Equal(e.data, m):
		return fail("a message of %d bytes referring back into the previous one came back as %d different bytes", size, len(e.data))
	}
	return pass("a message of %d bytes referring back into the previous one echoed whole", size)
}

// honourNoServerContext checks that echoes inflate on their own when
// server_no_context_takeover was agreed (RFC 7692, section 7.1.1.1); it
// was, the offer having it: judgeDeflate fails an answer without it.
func honourNoServerContext(p *prober, s *session) verdict {
	m := randomBytes(600)
	echoes, err := s.roundTrips([][]byte{m, m, m}, false, true)
	if err != nil {
		return fail("inflating each echo on its own: %v", err)
	}
	return pass("three identical messages, each echo inflating on its own (sizes %d, %d, %d)", echoes[0].size, echoes[1].size, echoes[2].size)
}

// honourServerWindow sends A, B, A with B as long as the agreed server
// window, so that the second A is further back than the window from the
// first: a server that honours the window cannot refer back to it and its
// echo cannot be much smaller than the message (RFC 7692, section
// 7.1.2.1). The bytes are random, so only a reference back can shrink it.
// The window agreed is at most the offer's 10 bits: judgeDeflate fails an
// answer without server_max_window_bits or with a larger one.
func honourServerWindow(p *prober, s *session) verdict {
	bits := s.a.serverWindow()
	a := randomBytes(512)
	m := append(append(append([]byte{}, a...), randomBytes(1<<bits)...), a...)
	echoes, err := s.roundTrips([][]byte{m}, false, false)
	if err != nil {
		return fail("%v", err)
	}
	e := echoes[0]
	if !e.compressed {
		return pass("the echo of %d bytes came uncompressed", len(m))
	}
	if e.size < len(m)-len(a)/2 {
		return fail("the echo of %d random bytes compressed to %d: it refers back %d bytes, past the %d-byte window agreed", len(m), e.size, len(a)+1<<bits, 1<<bits)
	}
	return pass("the echo of %d random bytes compressed to %d, within a %d-byte window", len(m), e.size, 1<<bits)
}

// declinedNoRSV1 checks the server sends no compressed frame after
// declining (RFC 6455, section 5.2: RSV1 only with an extension agreed).
func (p *prober) declinedNoRSV1() verdict {
	if v, ok := p.needEcho(); !ok {
		return v
	}
	const offer = "permessage-deflate; cooperprobe=1"
	r := p.request()
	r.set("Sec-WebSocket-Extensions", offer)
	refusal := func(resp *response) verdict { return skip("the offer was refused with %s", resp.Status) }
	return p.upgraded(r, fmt.Sprintf("offering %q", offer), refusal, func(resp *response) verdict {
		if len(resp.lines("Sec-WebSocket-Extensions")) > 0 {
			return skip("the invalid offer was accepted (pmd-unknown-param fails)")
		}
		msg := bytes.Repeat([]byte("cooperprobe "), 100)
		if err := resp.sendMessage(opText, false, msg); err != nil {
			return fail("%v", err)
		}
		m, err := resp.readMessage()
		switch {
		case err != nil:
			return fail("the echo: %v", err)
		case m.compressed:
			return fail("the echo has RSV1 set: compressed though permessage-deflate was declined")
		case !bytes.Equal(m.payload, msg):
			return fail("the echo differs from the message")
		}
		return pass("a compressible message echoed uncompressed")
	})
}

func deflateCases() []Case {
	const (
		s5   = "RFC 7692, section 5"
		s7   = "RFC 7692, section 7"
		s711 = "RFC 7692, section 7.1.1.1"
		s712 = "RFC 7692, section 7.1.1.2"
		s721 = "RFC 7692, section 7.1.2.1"
		s722 = "RFC 7692, section 7.1.2.2"
	)
	offers := []offerCase{
		{"pmd-plain", "a plain offer is answered as RFC 7692 section 7.1 allows", s7, []string{"permessage-deflate"}, expectAccept, nil},
		{"pmd-exchange", "agreed compression: compressed messages echo, and the echoes inflate under the agreed context", "RFC 7692, section 7.2", []string{"permessage-deflate"}, expectAccept, honourExchange},
		{"pmd-client-context", "with client context takeover, a message referring back into the previous one is understood", s712, []string{"permessage-deflate"}, expectAccept, honourClientContext},
		{"pmd-snct", "server_no_context_takeover offered is answered", s711, []string{"permessage-deflate; server_no_context_takeover"}, expectEither, nil},
		{"pmd-snct-honoured", "with server_no_context_takeover each echo inflates on its own", s711, []string{"permessage-deflate; server_no_context_takeover"}, expectEither, honourNoServerContext},
		{"pmd-cnct", "client_no_context_takeover offered is answered validly", s712, []string{"permessage-deflate; client_no_context_takeover"}, expectAccept, nil},
		{"pmd-smwb-10", "server_max_window_bits=10 is answered with 10 or less, or declined", s721, []string{"permessage-deflate; server_max_window_bits=10"}, expectEither, nil},
		{"pmd-smwb-10-honoured", "an agreed server window of 10 bits or less is honoured", s721, []string{"permessage-deflate; server_max_window_bits=10"}, expectEither, honourServerWindow},
		{"pmd-smwb-8", "server_max_window_bits=8 is answered with 8, or declined", s721, []string{"permessage-deflate; server_max_window_bits=8"}, expectEither, nil},
		{"pmd-smwb-15", "server_max_window_bits=15 accepted is answered", s721, []string{"permessage-deflate; server_max_window_bits=15"}, expectEither, nil},
		{"pmd-smwb-quoted", "a quoted value is the value: server_max_window_bits=\"10\"", "RFC 6455, section 9.1", []string{`permessage-deflate; server_max_window_bits="10"`}, expectEither, nil},
		{"pmd-cmwb-valueless", "a client_max_window_bits without value may be answered with a value", s722, []string{"permessage-deflate; client_max_window_bits"}, expectAccept, nil},
		{"pmd-cmwb-10", "client_max_window_bits=10 is answered with 10 or less, or left out", s722, []string{"permessage-deflate; client_max_window_bits=10"}, expectAccept, nil},
		{"pmd-all-params", "an offer with all four parameters is answered validly", s7, []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits"}, expectEither, nil},
		{"pmd-smwb-7", "server_max_window_bits=7 is declined", s721, []string{"permessage-deflate; server_max_window_bits=7"}, expectDecline, nil},
		{"pmd-smwb-16", "server_max_window_bits=16 is declined", s721, []string{"permessage-deflate; server_max_window_bits=16"}, expectDecline, nil},
		{"pmd-smwb-leading-zero", "server_max_window_bits=010 is declined", s721, []string{"permessage-deflate; server_max_window_bits=010"}, expectDecline, nil},
		{"pmd-smwb-valueless", "server_max_window_bits without a value is declined", s721, []string{"permessage-deflate; server_max_window_bits"}, expectDecline, nil},
		{"pmd-cmwb-16", "client_max_window_bits=16 is declined", s722, []string{"permessage-deflate; client_max_window_bits=16"}, expectDecline, nil},
		{"pmd-snct-value", "server_no_context_takeover with a value is declined", s711, []string{"permessage-deflate; server_no_context_takeover=1"}, expectDecline, nil},
		{"pmd-unknown-param", "an unknown parameter is declined", s7, []string{"permessage-deflate; cooperprobe=1"}, expectDecline, nil},
		{"pmd-duplicate-param", "a parameter given twice is declined", s7, []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, expectDecline, nil},
		{"pmd-fallback", "after an offer it must decline, the next plain one is accepted", s5, []string{"permessage-deflate; cooperprobe=1, permessage-deflate"}, expectAccept, nil},
		{"pmd-fallback-window", "of an offer with server window 8 and a plain one, one is accepted as offered", s5, []string{"permessage-deflate; server_max_window_bits=8, permessage-deflate"}, expectAccept, nil},
		{"pmd-lines", "an offer on a second Sec-WebSocket-Extensions line is seen", "RFC 9110, section 5.3", []string{"x-cooperprobe-unknown", "permessage-deflate"}, expectAccept, nil},
		{"pmd-after-unknown", "after an unknown extension, permessage-deflate is accepted and the unknown one not answered", "RFC 6455, section 9.1", []string{"x-cooperprobe-unknown; a=1, permessage-deflate"}, expectAccept, nil},
		{"pmd-name-substring", "an extension whose name contains permessage-deflate is not it", "RFC 6455, section 4.1", []string{"x-permessage-deflate-cooperprobe"}, expectEither, nil},
		{"pmd-unknown-only", "offered an unknown extension alone, the server answers no extension it was not offered", "RFC 6455, section 4.1", []string{"x-webkit-deflate-frame"}, expectEither, nil},
	}
	cases := make([]Case, 0, len(offers)+1)
	for _, o := range offers {
		cases = append(cases, o.Case())
	}
	cases = append(cases, Case{ID: "pmd-declined-uncompressed", Group: GroupDeflate,
		Title: "after a decline the server's frames are not compressed", RFC: "RFC 6455, section 5.2",
		run: func(p *prober) verdict { return p.declinedNoRSV1() }})
	return cases
}
