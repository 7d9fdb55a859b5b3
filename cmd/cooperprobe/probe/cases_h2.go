package probe

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
)

// h2Case makes an HTTP/2 case: it runs only with -h2 on a wss:// URL
// whose server announces extended CONNECT.
func h2Case(id, title, rfc string, run func(p *prober) verdict) Case {
	return Case{ID: id, Group: GroupHTTP2, Title: title, RFC: rfc, run: func(p *prober) verdict {
		switch {
		case !p.cfg.H2:
			return skip("needs -h2")
		case !p.tls:
			return skip("HTTP/2 needs a wss:// URL")
		}
		if !p.h2Checked {
			p.h2Checked = true
			s, err := p.connect("websocket", nil)
			if err != nil {
				p.h2Err = err
			} else {
				s.close()
			}
		}
		if errors.Is(p.h2Err, errNoH2) {
			return skip("%v", p.h2Err)
		}
		return run(p)
	}}
}

// h2Refused sends an extended CONNECT the server must refuse.
func (p *prober) h2Refused(protocol string, edit func(h http.Header), what string) verdict {
	s, err := p.connect(protocol, edit)
	if err != nil {
		return pass("%s: %v", what, err)
	}
	defer s.close()
	if s.resp.StatusCode/100 == 2 {
		return fail("%s: %s", what, s.resp.Status)
	}
	return pass("%s: %s", what, s.resp.Status)
}

func h2Cases() []Case {
	accepted := func(p *prober, edit func(h http.Header), judge func(s *h2Stream) verdict) verdict {
		s, err := p.connect("websocket", edit)
		if err != nil {
			return fail("extended CONNECT: %v", err)
		}
		defer s.close()
		if s.resp.StatusCode/100 != 2 {
			return fail("extended CONNECT refused with %s", s.resp.Status)
		}
		return judge(s)
	}
	return []Case{
		h2Case("h2-settings", "the server announces SETTINGS_ENABLE_CONNECT_PROTOCOL", "RFC 8441, section 3", func(p *prober) verdict {
			return pass("announced")
		}),
		h2Case("h2-connect", "an extended CONNECT for websocket gets a 2xx", "RFC 8441, section 5", func(p *prober) verdict {
			return accepted(p, nil, func(s *h2Stream) verdict { return pass("%s", s.resp.Status) })
		}),
		h2Case("h2-no-accept", "the 2xx carries no Sec-WebSocket-Accept, which HTTP/2 does not use", "RFC 8441, section 5", func(p *prober) verdict {
			return accepted(p, nil, func(s *h2Stream) verdict {
				if a := s.resp.Header.Values("Sec-WebSocket-Accept"); len(a) > 0 {
					return warn("Sec-WebSocket-Accept: %s", a[0])
				}
				return pass("")
			})
		}),
		h2Case("h2-echo", "the stream carries WebSocket frames both ways", "RFC 8441, section 5", func(p *prober) verdict {
			// An endpoint that echoes over HTTP/1.1 must over HTTP/2 too;
			// one that serves only HTTP/2 is judged by its stream alone.
			_, echoes := p.needEcho()
			return accepted(p, nil, func(s *h2Stream) verdict {
				msg := []byte("cooperprobe over HTTP/2")
				go s.w.Write(frameBytes(true, false, opText, msg))
				f, err := readFrame(s.br)
				switch {
				case err != nil && !echoes:
					return skip("no echo (%v): needs an endpoint that echoes", err)
				case err != nil:
					return fail("no echo, though the endpoint echoes over HTTP/1.1: %v", err)
				case f.masked:
					return fail("the server masked its frame")
				case f.op != opText || !bytes.Equal(f.payload, msg):
					return fail("the echo is opcode %d %s", f.op, clip(f.payload))
				}
				return pass("echoed")
			})
		}),
		h2Case("h2-version-8", "an extended CONNECT with version 8 is refused", "RFC 8441, section 5", func(p *prober) verdict {
			return p.h2Refused("websocket", func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }, "version 8")
		}),
		h2Case("h2-unknown-protocol", "an extended CONNECT for a protocol the server does not speak is refused", "RFC 8441, section 4", func(p *prober) verdict {
			return p.h2Refused("cooperprobe-unknown", nil, ":protocol cooperprobe-unknown")
		}),
		h2Case("h2-subprotocol", "the subprotocol answered was offered", "RFC 8441, section 5", func(p *prober) verdict {
			offered := []string{unknownSub1, p.cfg.Subprotocol}
			if p.cfg.Subprotocol == "" {
				offered = offered[:1]
			}
			return accepted(p, func(h http.Header) { h.Set("Sec-WebSocket-Protocol", strings.Join(offered, ", ")) }, func(s *h2Stream) verdict {
				got := s.resp.Header.Values("Sec-WebSocket-Protocol")
				switch {
				case len(got) > 1:
					return fail("%d Sec-WebSocket-Protocol fields", len(got))
				case len(got) == 1 && got[0] != p.cfg.Subprotocol:
					return fail("answered %q; offered %q", got[0], offered)
				}
				return pass("answered %q", got)
			})
		}),
		h2Case("h2-deflate", "a permessage-deflate offer is answered as over HTTP/1.1", "RFC 8441, section 5", func(p *prober) verdict {
			offer := "permessage-deflate; server_max_window_bits=10"
			return accepted(p, func(h http.Header) { h.Set("Sec-WebSocket-Extensions", offer) }, func(s *h2Stream) verdict {
				a, why := judgeDeflate([]string{offer}, s.resp.Header.Values("Sec-WebSocket-Extensions"))
				switch {
				case why != "":
					return fail("offering %q: %s", offer, why)
				case a == nil:
					return pass("offering %q: declined", offer)
				}
				return pass("offering %q: %q", offer, a.answer)
			})
		}),
		h2Case("h2-cross-origin", "an extended CONNECT from another site is refused", rfcOrigin, func(p *prober) verdict {
			s, err := p.connect("websocket", func(h http.Header) { h.Set("Origin", "https://cooperprobe.invalid") })
			if err != nil {
				return fail("%v", err)
			}
			defer s.close()
			if s.resp.StatusCode/100 == 2 {
				return warn("Origin: https://cooperprobe.invalid: accepted with %s", s.resp.Status)
			}
			return pass("Origin: https://cooperprobe.invalid: refused with %s", s.resp.Status)
		}),
	}
}
