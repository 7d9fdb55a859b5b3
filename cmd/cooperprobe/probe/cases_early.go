package probe

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

const rfcEarly = "RFC 6455, section 4.2.2"

// earlyCase sends a valid request followed by the bytes of frames in the
// same write, before reading the 101, and then judges what comes back.
func earlyCase(id, title, rfc string, frames func() ([]byte, []byte), judge func(resp *response) verdict) Case {
	return Case{ID: id, Group: GroupEarlyData, Title: title, RFC: rfc, run: func(p *prober) verdict {
		if v, ok := p.needEcho(); !ok {
			return v
		}
		r := p.request()
		early, later := frames()
		r.after = early
		what := fmt.Sprintf("the request with %d bytes of frames in one write", len(early))
		return p.upgraded(r, what, nil, func(resp *response) verdict {
			if len(later) > 0 {
				if _, err := resp.conn.Write(later); err != nil {
					return fail("writing the rest of the frame after the 101: %v", err)
				}
			}
			return judge(resp)
		})
	}}
}

// expectEcho reads the echoes of msgs, in order.
func expectEcho(msgs ...[]byte) func(resp *response) verdict {
	return func(resp *response) verdict {
		for i, m := range msgs {
			got, err := resp.readMessage()
			if err != nil {
				return fail("message %d sent with the request: %v (lost?)", i+1, err)
			}
			if !bytes.Equal(got.payload, m) {
				return fail("message %d sent with the request came back as %s, want %s", i+1, clip(got.payload), clip(m))
			}
		}
		return pass("%d message(s) sent with the request echoed", len(msgs))
	}
}

func earlyCases() []Case {
	one := []byte("cooperprobe: sent with the request")
	two := []byte("cooperprobe: second")
	return []Case{
		earlyCase("early-frame", "a frame sent with the request is not lost", rfcEarly,
			func() ([]byte, []byte) { return frameBytes(true, false, opText, one), nil }, expectEcho(one)),
		earlyCase("early-two-frames", "two frames sent with the request arrive in order", rfcEarly,
			func() ([]byte, []byte) {
				return append(frameBytes(true, false, opText, one), frameBytes(true, false, opText, two)...), nil
			}, expectEcho(one, two)),
		earlyCase("early-split-frame", "half a frame sent with the request is completed by the rest", rfcEarly,
			func() ([]byte, []byte) {
				f := frameBytes(true, false, opText, one)
				return f[:len(f)/2], f[len(f)/2:]
			}, expectEcho(one)),
		earlyCase("early-ping", "a ping sent with the request is answered with a pong", "RFC 6455, section 5.5.2",
			func() ([]byte, []byte) { return frameBytes(true, false, opPing, []byte("cooperprobe")), nil },
			func(resp *response) verdict {
				f, err := readFrameOf(resp.br, opPong, opClose)
				switch {
				case err != nil:
					return fail("waiting for the pong: %v", err)
				case f.op == opClose:
					return fail("closed with %x instead of a pong", f.payload)
				case string(f.payload) != "cooperprobe":
					return fail("pong with %q, want the ping's cooperprobe", f.payload)
				}
				return pass("pong")
			}),
		earlyCase("early-close", "a close frame sent with the request is answered with a close frame", "RFC 6455, section 5.5.1",
			func() ([]byte, []byte) {
				return frameBytes(true, false, opClose, binary.BigEndian.AppendUint16(nil, 1000)), nil
			},
			func(resp *response) verdict {
				f, err := readFrameOf(resp.br, opClose)
				if err != nil {
					return fail("waiting for the close frame: %v", err)
				}
				return pass("close frame %x", f.payload)
			}),
	}
}
