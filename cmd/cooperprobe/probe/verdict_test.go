package probe

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestJudgeDeflate: an answer that breaks one rule of RFC 7692 section 7
// is judged with a reason naming it, and one that keeps them all agrees.
func TestJudgeDeflate(t *testing.T) {
	for _, tt := range []struct {
		name          string
		offer, answer []string
		why           string // a part of the reason; "" for a valid answer
		agreed        bool
	}{
		{"a plain answer to a plain offer agrees", []string{pmdName}, []string{pmdName}, "", true},
		{"no answer declines", []string{pmdName}, nil, "", false},
		{"a quoted value is the value", []string{pmdName + `; server_max_window_bits="10"`}, []string{pmdName + `; server_max_window_bits="10"`}, "", true},
		{"a valueless client_max_window_bits may be answered with a value", []string{pmdName + "; client_max_window_bits"}, []string{pmdName + "; client_max_window_bits=10"}, "", true},
		{"a later valid offer may be accepted", []string{pmdName + "; cooperprobe=1, " + pmdName}, []string{pmdName}, "", true},
		{"server_no_context_takeover offered must be answered", []string{pmdName + "; server_no_context_takeover"}, []string{pmdName}, "server_no_context_takeover was offered", false},
		{"server_max_window_bits offered must be answered", []string{pmdName + "; server_max_window_bits=10"}, []string{pmdName}, "server_max_window_bits=10 was offered", false},
		{"a server window over the offer", []string{pmdName + "; server_max_window_bits=10"}, []string{pmdName + "; server_max_window_bits=12"}, "more than the 10 offered", false},
		{"client_max_window_bits answered though not offered", []string{pmdName}, []string{pmdName + "; client_max_window_bits=10"}, "the offer had no client_max_window_bits", false},
		{"a client window over the offer", []string{pmdName + "; client_max_window_bits=10"}, []string{pmdName + "; client_max_window_bits=12"}, "more than the 10 offered", false},
		{"a valueless client_max_window_bits in the answer", []string{pmdName + "; client_max_window_bits"}, []string{pmdName + "; client_max_window_bits"}, "is not 8 to 15", false},
		{"an extension not offered", []string{pmdName}, []string{"x-cooperprobe"}, "which was not offered", false},
		{"permessage-deflate accepted twice", []string{pmdName}, []string{pmdName, pmdName}, "accepts permessage-deflate twice", false},
		{"a parameter twice in the answer", []string{pmdName + "; server_no_context_takeover"}, []string{pmdName + "; server_no_context_takeover; server_no_context_takeover"}, "appears twice", false},
		{"an answer that does not parse", []string{pmdName}, []string{pmdName + ";"}, "does not parse", false},
		{"accepting a window with a leading zero", []string{pmdName + "; server_max_window_bits=010"}, []string{pmdName + "; server_max_window_bits=10"}, "must be declined", false},
		{"accepting a parameter given twice", []string{pmdName + "; server_no_context_takeover; server_no_context_takeover"}, []string{pmdName + "; server_no_context_takeover"}, "must be declined", false},
		{"accepting server_no_context_takeover with a value", []string{pmdName + "; server_no_context_takeover=1"}, []string{pmdName + "; server_no_context_takeover"}, "must be declined", false},
		{"accepting an unknown parameter", []string{pmdName + "; cooperprobe=1"}, []string{pmdName}, "must be declined", false},
	} {
		a, why := judgeDeflate(tt.offer, tt.answer)
		switch {
		case tt.why == "" && why != "":
			t.Errorf("%s: %q", tt.name, why)
		case tt.why != "" && !strings.Contains(why, tt.why):
			t.Errorf("%s: reason %q, want one with %q", tt.name, why, tt.why)
		case (a != nil) != tt.agreed:
			t.Errorf("%s: agreement %v, want agreed = %v", tt.name, a, tt.agreed)
		}
	}
}

// TestWindowBits: a window is a decimal from 8 to 15, without sign or
// leading zero (RFC 7692, section 7.1.2.1).
func TestWindowBits(t *testing.T) {
	for v, want := range map[string]int{"8": 8, "15": 15, "7": 0, "16": 0, "010": 0, "+10": 0, "": 0, " 10": 0, "1e1": 0} {
		if n, ok := windowBits(v); n != want || ok != (want != 0) {
			t.Errorf("windowBits(%q) = %d, %v; want %d", v, n, ok, want)
		}
	}
}

// startCanned starts a server on loopback that answers every request with
// head, ACCEPT in it replaced by the request key's Sec-WebSocket-Accept,
// then reads until the client goes away. With head "" nothing listens at
// the URL returned: every connection is refused.
func startCanned(t *testing.T, head string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	url := "ws://" + ln.Addr().String() + "/ws"
	if head == "" {
		ln.Close()
		return url
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				sum := sha1.Sum([]byte(strings.TrimSpace(req.Header.Get("Sec-Websocket-Key")) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
				io.WriteString(c, strings.ReplaceAll(head, "ACCEPT", base64.StdEncoding.EncodeToString(sum[:])))
				io.Copy(io.Discard, br)
			}()
		}
	}()
	return url
}

// TestCannedAnswers: an answer that breaks the rule of a case, sent to
// every request, gets that case's verdict; so does an answer that leaves
// a case nothing to judge.
func TestCannedAnswers(t *testing.T) {
	const (
		ok      = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\n"
		refused = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
	)
	for _, tt := range []struct {
		name, head string
		flags      []string          // after -subprotocol echo.v1 -timeout 1s
		want       map[string]string // case id: verdict
	}{
		{"a 200 to a POST", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", nil, map[string]string{"req-method-post": Fail}},
		{"a 405 without Allow", "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n", nil, map[string]string{"req-method-405-allow": Fail}},
		{"a 426 without Sec-WebSocket-Version", "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\nContent-Length: 0\r\n\r\n", nil, map[string]string{"req-version-header": Fail}},
		{"an Upgrade list answered as sent", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: cooperprobe/1, websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\n\r\n", nil,
			map[string]string{"req-upgrade-list": Fail}},
		{"an Upgrade with two protocols", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket, h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ACCEPT\r\n\r\n", nil,
			map[string]string{"ans-upgrade": Fail}},
		{"an HTTP/1.0 status line", strings.Replace(ok, "HTTP/1.1", "HTTP/1.0", 1) + "\r\n", nil, map[string]string{"ans-status-line": Fail}},
		{"two Sec-WebSocket-Accept lines", ok + "Sec-WebSocket-Accept: ACCEPT\r\n\r\n", nil, map[string]string{"ans-accept-once": Fail}},
		{"a Content-Length", ok + "Content-Length: 0\r\n\r\n", nil, map[string]string{"ans-no-content-length": Fail}},
		{"a Transfer-Encoding", ok + "Transfer-Encoding: chunked\r\n\r\n", nil, map[string]string{"ans-no-transfer-encoding": Fail}},
		{"an extension not offered", ok + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", nil,
			map[string]string{"ans-no-extension-unasked": Fail, "pmd-exchange": Skip}},
		{"a body after the 101", ok + "\r\nhello", nil, map[string]string{"ans-no-body": Fail}},
		{"a frame before the client spoke, not an echo", ok + "\r\n" + string(serverFrame(opText, false, []byte("x"))), nil,
			map[string]string{"ans-no-body": Pass, "ans-frames": Skip}},
		{"a masked frame", ok + "\r\n" + string(frameBytes(true, false, opText, []byte("x"))), nil,
			map[string]string{"ans-no-body": Fail, "ans-frames": Fail}},
		{"a frame with RSV2 set", ok + "\r\n\xa1\x00", nil, map[string]string{"ans-frames": Fail}},
		{"a close frame before any echo", ok + "\r\n" + string(serverFrame(opClose, false, []byte{0x03, 0xe8})), nil,
			map[string]string{"ans-frames": Skip, "early-frame": Skip}},
		{"a subprotocol not offered", ok + "Sec-WebSocket-Protocol: chat\r\n\r\n", nil, map[string]string{"sub-none-offered": Fail}},
		{"two subprotocols", ok + "Sec-WebSocket-Protocol: " + unknownSub1 + "\r\nSec-WebSocket-Protocol: " + unknownSub2 + "\r\n\r\n", nil,
			map[string]string{"sub-unknown": Fail}},
		{"a subprotocol it does not speak chosen", ok + "Sec-WebSocket-Protocol: " + unknownSub1 + "\r\n\r\n", nil,
			map[string]string{"sub-unknown": Warn, "sub-chosen": Warn}},
		{"an element that is not a token chosen", ok + "Sec-WebSocket-Protocol: cooperprobe/1\r\n\r\n", nil,
			map[string]string{"sub-invalid-element": Fail}},
		{"a subprotocol with a space chosen", ok + "Sec-WebSocket-Protocol: a b\r\n\r\n", []string{"-subprotocol", "a b"}, map[string]string{"sub-chosen": Fail}},
		{"a case-changed subprotocol chosen", ok + "Sec-WebSocket-Protocol: ECHO.V1\r\n\r\n", nil, map[string]string{"sub-case": Warn}},
		{"a 101 that names nothing and sends nothing", ok + "\r\n", nil, map[string]string{
			"req-version-header": Skip, "ans-frames": Skip, "sub-none-offered": Pass, "sub-chosen": Warn, "sub-invalid-element": Pass, "pmd-plain": Pass, "pmd-exchange": Skip,
			"origin-cross": Warn, "origin-403": Skip, "early-frame": Skip}},
		{"HTTP/2 asked of a ws:// URL", ok + "\r\n", []string{"-h2"}, map[string]string{"h2-settings": Skip}},
		{"a subprotocol without letters", ok + "\r\n", []string{"-subprotocol", "13"}, map[string]string{"sub-case": Skip}},
		{"every request refused", refused, nil, map[string]string{
			"req-method-405-allow": Skip, "req-426-upgrade": Skip, "req-upgrade-list": Warn, "ans-status-line": Skip, "ans-frames": Skip,
			"sub-none-offered": Skip, "sub-unknown": Pass, "sub-chosen": Warn, "sub-one": Warn, "sub-empty-elements": Fail,
			"sub-invalid-element": Pass, "sub-case": Pass, "pmd-plain": Fail, "pmd-unknown-param": Warn, "origin-same": Warn, "origin-403": Warn}},
		{"nothing listening", "", []string{"-subprotocol", ""}, map[string]string{
			"req-valid": Fail, "req-method-post": Fail, "req-method-405-allow": Skip, "req-version-header": Fail, "ans-frames": Fail,
			"early-frame": Fail, "sub-chosen": Skip, "origin-cross": Fail, "origin-403": Fail}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ids := slices.Sorted(maps.Keys(tt.want))
			flags := append([]string{"-subprotocol", "echo.v1", "-timeout", "1s", "-run", "^(" + strings.Join(ids, "|") + ")$"}, tt.flags...)
			results, _, _ := probe(t, startCanned(t, tt.head), flags...)
			checkVerdicts(t, results, tt.want)
		})
	}
}
