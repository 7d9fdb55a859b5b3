package probe

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// answerCase makes a case that sends a valid request and judges the 101.
func answerCase(id, title, rfc string, judge func(p *prober, resp *response) verdict) Case {
	refusal := func(resp *response) verdict {
		return skip("a valid request was refused with %s (req-valid fails)", resp.Status)
	}
	return Case{ID: id, Group: GroupAnswer, Title: title, RFC: rfc, run: func(p *prober) verdict {
		return p.upgraded(p.request(), "a valid request", refusal, func(resp *response) verdict { return judge(p, resp) })
	}}
}

func answerCases() []Case {
	return []Case{
		answerCase("ans-status-line", "the 101 is an HTTP/1.1 status line", rfcServerAnswer, func(p *prober, resp *response) verdict {
			line, _, _ := strings.Cut(string(resp.raw), "\n")
			line = strings.TrimRight(line, "\r")
			if !strings.HasPrefix(line, "HTTP/1.1 101") {
				return fail("status line %q", line)
			}
			return pass("%q", line)
		}),
		answerCase("ans-upgrade", "the 101's Upgrade is websocket", rfcServerAnswer, func(p *prober, resp *response) verdict {
			up := resp.lines("Upgrade")
			if len(up) != 1 || !asciiEqualFold(up[0], "websocket") {
				return fail("Upgrade %q, want websocket", up)
			}
			return pass("Upgrade: %s", up[0])
		}),
		answerCase("ans-connection", "the 101's Connection has the upgrade token", rfcServerAnswer, func(p *prober, resp *response) verdict {
			if c := resp.lines("Connection"); !hasToken(c, "upgrade") {
				return fail("Connection %q has no upgrade token", c)
			}
			return pass("Connection: %s", strings.Join(resp.lines("Connection"), ", "))
		}),
		answerCase("ans-accept", "Sec-WebSocket-Accept is the key's SHA-1 with the GUID, in base64", rfcServerAnswer, func(p *prober, resp *response) verdict {
			got := resp.lines("Sec-WebSocket-Accept")
			if want := acceptKey(resp.key); len(got) == 0 || got[0] != want {
				return fail("Sec-WebSocket-Accept %q for key %q, want %q", got, resp.key, want)
			}
			return pass("Sec-WebSocket-Accept: %s", got[0])
		}),
		answerCase("ans-accept-once", "the 101 has one Sec-WebSocket-Accept", "RFC 6455, section 11.3.3", func(p *prober, resp *response) verdict {
			if got := resp.lines("Sec-WebSocket-Accept"); len(got) != 1 {
				return fail("%d Sec-WebSocket-Accept lines", len(got))
			}
			return pass("one line")
		}),
		{ID: "ans-accept-sample", Group: GroupAnswer, Title: "the RFC's sample key gets the RFC's sample accept", RFC: rfcServerAnswer,
			run: func(p *prober) verdict {
				r := p.request().setKey("dGhlIHNhbXBsZSBub25jZQ==")
				v := p.accepted(r, "key dGhlIHNhbXBsZSBub25jZQ==")
				if v.result == Pass {
					v.detail = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
				}
				return v
			}},
		answerCase("ans-no-content-length", "the 101 has no Content-Length", "RFC 9110, section 8.6", func(p *prober, resp *response) verdict {
			if cl := resp.lines("Content-Length"); len(cl) > 0 {
				return fail("Content-Length: %s on a 101", cl[0])
			}
			return pass("")
		}),
		answerCase("ans-no-transfer-encoding", "the 101 has no Transfer-Encoding", "RFC 9112, section 6.1", func(p *prober, resp *response) verdict {
			if te := resp.lines("Transfer-Encoding"); len(te) > 0 {
				return fail("Transfer-Encoding: %s on a 101", te[0])
			}
			return pass("")
		}),
		answerCase("ans-no-extension-unasked", "without an offer the 101 names no extension", "RFC 6455, section 4.1", func(p *prober, resp *response) verdict {
			if e := resp.lines("Sec-WebSocket-Extensions"); len(e) > 0 {
				return fail("Sec-WebSocket-Extensions: %s, though none was offered", strings.Join(e, ", "))
			}
			return pass("")
		}),
		answerCase("ans-no-body", "nothing but frames follows the 101", "RFC 9110, section 15.2", func(p *prober, resp *response) verdict {
			// What a server sends before the client speaks must be frames
			// (it may ping or greet); a body after a 101 is not one.
			resp.conn.SetReadDeadline(time.Now().Add(min(p.timeout/4, 300*time.Millisecond)))
			b, err := resp.br.Peek(1)
			if len(b) == 0 {
				if isTimeout(err) {
					return pass("nothing before the client spoke")
				}
				return fail("the connection ended after the 101: %v", err)
			}
			f, err := readFrame(resp.br)
			if err != nil || f.op > opPong || (f.op > opBinary && f.op < opClose) || f.masked {
				return fail("bytes after the 101 are not a server frame: %v", err)
			}
			return pass("a frame with opcode %d before the client spoke", f.op)
		}),
		{ID: "ans-frames", Group: GroupAnswer, Title: "the server's frames are unmasked, RSV bits clear without extensions", RFC: "RFC 6455, section 5.1",
			run: func(p *prober) verdict {
				if v, ok := p.needEcho(); !ok {
					return v
				}
				return p.echoVerdict
			}},
	}
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// needEcho finds out once whether the endpoint echoes messages, which the
// cases that exchange messages need; when it does not, it returns the
// verdict those cases report: a skip, or the failure of a valid request
// that got no answer.
func (p *prober) needEcho() (verdict, bool) {
	if !p.echoChecked {
		p.echoChecked = true
		p.echoes, p.echoVerdict = p.checkEcho()
	}
	if !p.echoes {
		return p.echoVerdict, false
	}
	return verdict{}, true
}

// checkEcho upgrades with a valid request, sends a text and a binary
// message, and expects them back as the server's frames must be: unmasked
// (RFC 6455, section 5.1) and without RSV bits, no extension being agreed
// (RFC 6455, section 5.2). When it finds no echo, its verdict is what the
// cases that need one report.
func (p *prober) checkEcho() (bool, verdict) {
	noEcho := func(format string, args ...any) verdict {
		return skip("needs an endpoint that echoes: "+format, args...)
	}
	resp, err := p.send(p.request())
	if err != nil {
		return false, fail("a valid request: %v", err)
	}
	defer resp.close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return false, noEcho("a valid request was refused with %s", resp.Status)
	}
	for _, m := range []struct {
		op   byte
		data []byte
	}{{opText, []byte("cooperprobe: echo")}, {opBinary, []byte{0, 1, 2, 0xff, 0xfe}}} {
		if err := resp.sendMessage(m.op, false, m.data); err != nil {
			return false, noEcho("sending a message: %v", err)
		}
		got, err := resp.readMessage()
		switch {
		case err != nil && isTimeout(err):
			return false, noEcho("no echo within %v", p.timeout)
		case err != nil:
			return false, noEcho("no echo: %v", err)
		case got.masked:
			return true, fail("the server masked its frame")
		case got.compressed || got.rsv23:
			return true, fail("RSV bits set on the server's frame, no extension being agreed")
		case got.op != m.op || !bytes.Equal(got.payload, m.data):
			return false, noEcho("the answer to %q was opcode %d %s, not its echo", m.data, got.op, clip(got.payload))
		}
	}
	return true, pass("a text and a binary message echoed")
}
