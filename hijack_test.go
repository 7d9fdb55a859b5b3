package cooper

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/flate"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"lowbit.dev/cooper/internal/poll"
)

// TestRefusals sends one invalid request per rule and checks the status, the
// headers the RFCs ask for, the one-line reason, the error OnError gets, and
// that the connection was not taken over.
func TestRefusals(t *testing.T) {
	type header = http.Header
	swv := header{"Sec-Websocket-Version": {"13"}}
	upgradeWS := header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}
	cases := []struct {
		name   string
		opts   []Option
		edit   func(r *http.Request)
		body   string
		status int
		header http.Header // headers the response must carry
		err    error
		reason string // the response's reason, when the case is about it
	}{
		{name: "POST is refused with 405 and Allow: GET",
			edit: func(r *http.Request) { r.Method = "POST" }, status: 405, header: header{"Allow": {"GET"}}, err: ErrMethod},
		{name: "HEAD is refused with 405 and Allow: GET",
			edit: func(r *http.Request) { r.Method = "HEAD" }, status: 405, header: header{"Allow": {"GET"}}, err: ErrMethod},
		// net/http drops Connection from responses to HTTP/1.0, which closes
		// after every response anyway.
		{name: "HTTP/1.0 is refused with 426 naming the protocols",
			edit: func(r *http.Request) { r.Proto = "HTTP/1.0" }, status: 426, header: header{"Upgrade": {"websocket"}}, err: ErrHTTPVersion},
		{name: "a request with a Content-Length body is refused with 400",
			edit: func(r *http.Request) { r.Header.Set("Content-Length", "5") }, body: "hello", status: 400, err: ErrRequestBody,
			reason: `cooper: Content-Length: "5": an upgrade request has no body`},
		{name: "a request with a chunked body is refused with 400 naming Transfer-Encoding",
			edit: func(r *http.Request) { r.Header.Set("Transfer-Encoding", "chunked") }, body: "5\r\nhello\r\n0\r\n\r\n", status: 400, err: ErrRequestBody,
			reason: `cooper: Transfer-Encoding: "chunked": an upgrade request has no body`},
		{name: "a request without Connection is refused with 426",
			edit: func(r *http.Request) { r.Header.Del("Connection") }, status: 426, header: upgradeWS, err: ErrNotUpgrade},
		{name: "Connection without the upgrade token is refused with 426",
			edit: func(r *http.Request) { r.Header.Set("Connection", "keep-alive") }, status: 426, header: upgradeWS, err: ErrNotUpgrade},
		{name: "Connection: upgradex is not the upgrade token",
			edit: func(r *http.Request) { r.Header.Set("Connection", "upgradex") }, status: 426, header: upgradeWS, err: ErrNotUpgrade},
		{name: "Connection with a space inside an element is refused with 400",
			edit: func(r *http.Request) { r.Header.Set("Connection", "keep alive, Upgrade") }, status: 400, err: ErrMalformedHeader},
		{name: "Connection with an unterminated quoted string is refused with 400",
			edit: func(r *http.Request) { r.Header.Set("Connection", `Upgrade, "x`) }, status: 400, err: ErrMalformedHeader},
		{name: "a request without Upgrade is refused with 426 naming the protocols",
			edit: func(r *http.Request) { r.Header.Del("Upgrade") }, status: 426, header: upgradeWS, err: ErrNotUpgrade},
		{name: "an empty Upgrade is refused with 426",
			edit: func(r *http.Request) { r.Header.Set("Upgrade", " , ") }, status: 426, header: upgradeWS, err: ErrProtocol},
		{name: "Upgrade naming another protocol is refused with 426 naming ours",
			edit: func(r *http.Request) { r.Header.Set("Upgrade", "h2c") }, status: 426, header: upgradeWS, err: ErrProtocol},
		{name: "Upgrade with a KELVIN SIGN lookalike of websocket is refused with 400",
			edit: func(r *http.Request) { r.Header.Set("Upgrade", "websoc\u212Aet") }, status: 400, err: ErrMalformedHeader},
		{name: "Upgrade with a space inside a protocol is refused with 400",
			edit: func(r *http.Request) { r.Header.Set("Upgrade", "web socket") }, status: 400, err: ErrMalformedHeader},
		{name: "Upgrade with a valid protocol after a malformed one is refused with 400",
			edit: func(r *http.Request) { r.Header["Upgrade"] = []string{"websocket", "a/b/c"} }, status: 400, err: ErrMalformedHeader},
		{name: "a request without Sec-WebSocket-Version is refused with 426 and Sec-WebSocket-Version: 13",
			edit: func(r *http.Request) { r.Header.Del("Sec-Websocket-Version") }, status: 426, header: swv, err: ErrWebSocketVersion},
		{name: "Sec-WebSocket-Version 8 is refused with 426, Sec-WebSocket-Version: 13 and Upgrade",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Version", "8") }, status: 426,
			header: header{"Sec-Websocket-Version": {"13"}, "Upgrade": {"websocket"}}, err: ErrWebSocketVersion},
		{name: "Sec-WebSocket-Version listing 13 among others is refused with 426",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Version", "13, 8") }, status: 426, header: swv, err: ErrWebSocketVersion},
		{name: "Sec-WebSocket-Version 013 is not 13",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Version", "013") }, status: 426, header: swv, err: ErrWebSocketVersion},
		{name: "Sec-WebSocket-Version sent twice is refused with 400 and Sec-WebSocket-Version: 13",
			edit: func(r *http.Request) { r.Header["Sec-Websocket-Version"] = []string{"13", "13"} }, status: 400, header: swv, err: ErrWebSocketVersion},
		{name: "Sec-WebSocket-Version 8 and 13 on two lines is refused with 400 and Sec-WebSocket-Version: 13",
			edit: func(r *http.Request) { r.Header["Sec-Websocket-Version"] = []string{"8", "13"} }, status: 400, header: swv, err: ErrWebSocketVersion},
		{name: "a request without Sec-WebSocket-Key is refused with 400",
			edit: func(r *http.Request) { r.Header.Del("Sec-Websocket-Key") }, status: 400, err: ErrWebSocketKey},
		{name: "a key of 15 bytes is refused with 400",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Key", "AAAAAAAAAAAAAAAAAAAA") }, status: 400, err: ErrWebSocketKey},
		{name: "a key of 17 bytes is refused with 400",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA=") }, status: 400, err: ErrWebSocketKey},
		{name: "a key of 24 characters that are not base64 is refused with 400",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Key", "!!!!!!!!!!!!!!!!!!!!!!==") }, status: 400, err: ErrWebSocketKey},
		{name: "a key in URL-safe base64 is refused with 400",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Key", "________________-_____==") }, status: 400, err: ErrWebSocketKey},
		{name: "a key sent twice is refused with 400",
			edit: func(r *http.Request) { r.Header["Sec-Websocket-Key"] = []string{testKey, testKey} }, status: 400, err: ErrWebSocketKey},
		{name: "a cross-origin request is refused with 403",
			edit: func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, status: 403, err: ErrOrigin},
		{name: "Origin: null is refused with 403",
			edit: func(r *http.Request) { r.Header.Set("Origin", "null") }, status: 403, err: ErrOrigin},
		{name: "an Origin longer than 512 bytes is refused with 403 before it is parsed",
			opts:   []Option{Protocols("websocket"), OriginPatterns("*.example.com")},
			edit:   func(r *http.Request) { r.Header.Set("Origin", "https://"+strings.Repeat("a", 1000)+".example.com") },
			status: 403, err: ErrOrigin, reason: "cooper: Origin: 1020 bytes, longer than any origin (512)"},
		{name: "an Origin on another port of the same host is refused with 403",
			edit: func(r *http.Request) { r.Header.Set("Origin", "http://127.0.0.1:1") }, status: 403, err: ErrOrigin},
		{name: "an Origin with the other scheme's default port is refused with 403",
			edit: func(r *http.Request) { r.Host = "app.example"; r.Header.Set("Origin", "http://app.example:443") }, status: 403, err: ErrOrigin},
		{name: "an Origin whose host ends in the default port's digits without a colon is refused with 403",
			edit: func(r *http.Request) { r.Host = "app.example"; r.Header.Set("Origin", "http://app.example.80") }, status: 403, err: ErrOrigin},
		{name: "an Origin whose scheme has no default port keeps its port and is refused with 403",
			edit: func(r *http.Request) { r.Host = "app.example"; r.Header.Set("Origin", "ftp://app.example:80") }, status: 403, err: ErrOrigin},
		{name: "an Origin without a scheme is refused with 403",
			edit: func(r *http.Request) { r.Header.Set("Origin", r.Host) }, status: 403, err: ErrOrigin},
		{name: "an Origin whose host only starts with the Host is refused with 403",
			edit: func(r *http.Request) { r.Header.Set("Origin", "http://"+r.Host+".evil.example") }, status: 403, err: ErrOrigin},
		{name: "Origin sent twice is refused with 403",
			edit: func(r *http.Request) { r.Header["Origin"] = []string{"http://" + r.Host, "http://" + r.Host} }, status: 403, err: ErrOrigin},
		{name: "an origin the patterns do not match is refused with 403",
			opts: []Option{OriginPatterns("*.example.com")},
			edit: func(r *http.Request) { r.Header.Set("Origin", "https://example.com.evil") }, status: 403, err: ErrOrigin},
		{name: "a pattern with a scheme does not match another scheme",
			opts: []Option{OriginPatterns("https://app.example")},
			edit: func(r *http.Request) { r.Header.Set("Origin", "http://app.example") }, status: 403, err: ErrOrigin},
		{name: "a malformed Sec-WebSocket-Protocol is refused with 400",
			opts: []Option{Subprotocols("chat")},
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Protocol", "chat, super chat") }, status: 400, err: ErrMalformedHeader},
		{name: "without Protocols a request without Upgrade is refused with 400, as no protocol can be named",
			opts: []Option{},
			edit: func(r *http.Request) { r.Header.Del("Upgrade") }, status: 400, err: ErrNotUpgrade},
		{name: "a CR LF in a ResponseHeaders value fails the upgrade with 500",
			opts: []Option{fixedHeaders(http.Header{"X-Split": {"a\r\nSet-Cookie: x=y"}})}, status: 500, err: ErrResponseHeader},
		{name: "a NUL in a ResponseHeaders value fails the upgrade with 500",
			opts: []Option{fixedHeaders(http.Header{"X-Nul": {"a\x00b"}})}, status: 500, err: ErrResponseHeader},
		{name: "a ResponseHeaders name that is not a token fails the upgrade with 500",
			opts: []Option{fixedHeaders(http.Header{"X Bad": {"v"}})}, status: 500, err: ErrResponseHeader},
		{name: "a Sec-WebSocket-Protocol from ResponseHeaders fails the upgrade with 500",
			opts: []Option{fixedHeaders(http.Header{"Sec-Websocket-Protocol": {"chat"}})}, status: 500, err: ErrResponseHeader},
		{name: "a Content-Length from ResponseHeaders fails the upgrade with 500",
			opts: []Option{fixedHeaders(http.Header{"content-length": {"0"}})}, status: 500, err: ErrResponseHeader},
	}
	run(t, func(t *testing.T, m mode) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f, r := caseFixture(t, m, tc.opts, tc.edit)
				resp, body, _, _ := f.roundTrip(t, r, tc.body)
				if resp.StatusCode != tc.status {
					t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tc.status, body)
				}
				for k, v := range tc.header {
					if got := resp.Header.Values(k); strings.Join(got, ", ") != strings.Join(v, ", ") {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
				if tc.status == http.StatusUpgradeRequired && resp.Header.Get("Upgrade") == "" {
					t.Error("a 426 without Upgrade, which RFC 9110 section 15.5.22 requires")
				}
				if _, err := time.Parse(http.TimeFormat, resp.Header.Get("Date")); err != nil {
					t.Errorf("Date = %q, want an IMF-fixdate in GMT (RFC 9110 section 5.6.7)", resp.Header.Get("Date"))
				}
				if r.Method != "HEAD" {
					checkReason(t, resp, body)
				}
				if tc.reason != "" && body != tc.reason+"\n" {
					t.Errorf("reason = %q, want %q", body, tc.reason)
				}
				err := wait(t, f.errs, "error reported to OnError")
				if !errors.Is(err, tc.err) {
					t.Errorf("OnError got %v, want an error matching %v", err, tc.err)
				}
				var ue *UpgradeError
				if !errors.As(err, &ue) || ue.Status != tc.status || r.Method != "HEAD" && ue.Error()+"\n" != body {
					t.Errorf("OnError got %#v, want an *UpgradeError with status %d and reason %q", err, tc.status, body)
				}
				none(t, f.handled, "handler call")
				if n := f.hijacked.Load(); n != 0 {
					t.Errorf("%d connections were taken over, want 0", n)
				}
			})
		}
	})
}

// caseFixture starts a fixture with opts, Protocols("websocket") when nil,
// and returns it with its WebSocket request, changed by edit when not nil.
func caseFixture(t *testing.T, m mode, opts []Option, edit func(*http.Request)) (*fixture, *http.Request) {
	t.Helper()
	if opts == nil {
		opts = []Option{Protocols("websocket")}
	}
	f := newFixture(t, m, opts...)
	r := f.wsRequest()
	if edit != nil {
		edit(r)
	}
	return f, r
}

// fixedHeaders is the ResponseHeaders option of a function that returns h
// for every request.
func fixedHeaders(h http.Header) Option {
	return ResponseHeaders(func(*http.Request, string) http.Header { return h })
}

// checkReason checks that a refusal's body is one text/plain line of the
// form "cooper: <what>: <what was wrong>".
func checkReason(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type = %q, want text/plain", ct)
	}
	line, rest, _ := strings.Cut(body, "\n")
	if rest != "" || !strings.HasPrefix(line, "cooper: ") || strings.Count(line, ": ") < 2 {
		t.Errorf("body = %q, want one line \"cooper: <what>: <what was wrong>\"", body)
	}
}

// TestAccepted sends valid requests in the forms RFC 9110 and RFC 6455 allow
// and checks the 101, what the handler is told, and that the connection then
// carries bytes both ways.
func TestAccepted(t *testing.T) {
	cases := []struct {
		name        string
		opts        []Option
		edit        func(r *http.Request)
		proto       string // the agreed protocol
		subprotocol string
		extensions  string         // the Sec-WebSocket-Extensions answered
		deflate     *DeflateParams // the agreed parameters
	}{
		{name: "a browser's request is accepted",
			proto: "websocket"},
		{name: "tokens are matched ignoring ASCII case and position in the list",
			edit: func(r *http.Request) {
				r.Header.Set("Connection", "keep-alive, UPGRADE")
				r.Header.Set("Upgrade", "WebSocket")
			}, proto: "websocket"},
		{name: "every Connection and Upgrade line counts",
			edit: func(r *http.Request) {
				r.Header["Connection"] = []string{"keep-alive", "Upgrade"}
				r.Header["Upgrade"] = []string{"h2c", "websocket"}
			}, proto: "websocket"},
		{name: "empty list elements are ignored",
			edit: func(r *http.Request) { r.Header.Set("Connection", " , ,upgrade ,") }, proto: "websocket"},
		{name: "the first acceptable protocol in the client's list is agreed in the server's spelling",
			opts: []Option{Protocols("Chat/2", "websocket")},
			edit: func(r *http.Request) { r.Header.Set("Upgrade", "websocket, chat/2") }, proto: "websocket"},
		{name: "a generic protocol is agreed in the server's spelling",
			opts: []Option{Protocols("Chat/2")},
			edit: func(r *http.Request) { r.Header.Set("Upgrade", "chat/2") }, proto: "Chat/2"},
		{name: "without Protocols the client's first protocol is agreed in lower case",
			opts: []Option{},
			edit: func(r *http.Request) { r.Header.Set("Upgrade", "Chat/2, websocket") }, proto: "chat/2"},
		{name: "a key with surrounding white space is accepted and answered without it",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Key", " \t"+testKey+"\t") }, proto: "websocket"},
		{name: "a request without Origin is accepted",
			edit: func(r *http.Request) { r.Header.Del("Origin") }, proto: "websocket"},
		{name: "an Origin that spells the Host in another case is accepted",
			edit: func(r *http.Request) { r.Host = "LOCALHOST:1"; r.Header.Set("Origin", "http://localhost:1") }, proto: "websocket"},
		{name: "an Origin with the scheme's default port matches a Host without it",
			edit: func(r *http.Request) { r.Host = "app.example"; r.Header.Set("Origin", "https://app.example:443") }, proto: "websocket"},
		{name: "a Host with the default port matches an Origin without it",
			edit: func(r *http.Request) { r.Host = "app.example:80"; r.Header.Set("Origin", "http://app.example") }, proto: "websocket"},
		{name: "a wss Origin with port 443 matches a Host without it",
			edit: func(r *http.Request) { r.Host = "app.example"; r.Header.Set("Origin", "WSS://app.example:443") }, proto: "websocket"},
		{name: "a Host with port 80 matches a ws Origin without it",
			edit: func(r *http.Request) { r.Host = "APP.example:80"; r.Header.Set("Origin", "ws://app.example") }, proto: "websocket"},
		{name: "an origin matched by a pattern is accepted",
			opts: []Option{Protocols("websocket"), OriginPatterns("*.example.com")},
			edit: func(r *http.Request) { r.Header.Set("Origin", "https://App.Example.com") }, proto: "websocket"},
		{name: "an origin matched by a pattern with a scheme is accepted",
			opts: []Option{Protocols("websocket"), OriginPatterns("https://app.example")},
			edit: func(r *http.Request) { r.Header.Set("Origin", "https://app.example") }, proto: "websocket"},
		{name: "InsecureSkipOriginCheck lets any origin in",
			opts: []Option{Protocols("websocket"), InsecureSkipOriginCheck()},
			edit: func(r *http.Request) { r.Header.Set("Origin", "null") }, proto: "websocket"},
		{name: "the client's first acceptable subprotocol is agreed",
			opts:  []Option{Protocols("websocket"), Subprotocols("v1.chat", "v2.chat")},
			edit:  func(r *http.Request) { r.Header.Set("Sec-Websocket-Protocol", "v2.chat, v1.chat") },
			proto: "websocket", subprotocol: "v2.chat"},
		{name: "every Sec-WebSocket-Protocol line counts",
			opts:  []Option{Protocols("websocket"), Subprotocols("chat")},
			edit:  func(r *http.Request) { r.Header["Sec-Websocket-Protocol"] = []string{"mqtt", "chat"} },
			proto: "websocket", subprotocol: "chat"},
		{name: "subprotocols are compared byte for byte",
			opts: []Option{Protocols("websocket"), Subprotocols("chat")},
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Protocol", "Chat") }, proto: "websocket"},
		{name: "no common subprotocol upgrades without one",
			opts: []Option{Protocols("websocket"), Subprotocols("chat")},
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Protocol", "mqtt") }, proto: "websocket"},
		{name: "a client that offers no subprotocol upgrades without one",
			opts: []Option{Protocols("websocket"), Subprotocols("chat")},
			edit: func(r *http.Request) { r.Header.Del("Sec-Websocket-Protocol") }, proto: "websocket"},
		{name: "empty elements of Sec-WebSocket-Protocol are ignored",
			opts:  []Option{Protocols("websocket"), Subprotocols("chat")},
			edit:  func(r *http.Request) { r.Header.Set("Sec-Websocket-Protocol", " , ,chat ,") },
			proto: "websocket", subprotocol: "chat"},
		{name: "permessage-deflate offered without Deflate is not answered",
			edit: func(r *http.Request) {
				r.Header.Set("Sec-Websocket-Extensions", "permessage-deflate; client_max_window_bits")
			}, proto: "websocket"},
		{name: "permessage-deflate is answered with Deflate",
			opts: []Option{Protocols("websocket"), Deflate(DeflateParams{})},
			edit: func(r *http.Request) {
				r.Header.Set("Sec-Websocket-Extensions", "permessage-deflate; client_max_window_bits")
			},
			proto: "websocket", extensions: "permessage-deflate; client_max_window_bits=15",
			deflate: &DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}},
		{name: "an offer Deflate cannot honour upgrades without the extension",
			opts: []Option{Protocols("websocket"), Deflate(DeflateParams{})},
			edit: func(r *http.Request) {
				r.Header.Set("Sec-Websocket-Extensions", "permessage-deflate; server_max_window_bits=10")
			},
			proto: "websocket"},
		{name: "a subprotocol offered without server subprotocols is not answered",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Protocol", "chat") }, proto: "websocket"},
	}
	run(t, func(t *testing.T, m mode) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f, r := caseFixture(t, m, tc.opts, tc.edit)
				resp, body, c, br := f.roundTrip(t, r, "")
				if resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("status = %d, want 101 (body %q)", resp.StatusCode, body)
				}
				want := http.Header{"Upgrade": {tc.proto}, "Connection": {"Upgrade"}}
				if isWebSocket(tc.proto) {
					want["Sec-Websocket-Accept"] = []string{AcceptKey(testKey)}
				}
				if tc.subprotocol != "" {
					want["Sec-Websocket-Protocol"] = []string{tc.subprotocol}
				}
				if tc.extensions != "" {
					want["Sec-Websocket-Extensions"] = []string{tc.extensions}
				}
				checkHeader(t, resp.Header, want)
				hs := wait(t, f.handled, "handler call")
				if hs.Protocol != tc.proto || hs.Subprotocol != tc.subprotocol {
					t.Errorf("Handshake = {Protocol: %q, Subprotocol: %q}, want {%q, %q}", hs.Protocol, hs.Subprotocol, tc.proto, tc.subprotocol)
				}
				if (hs.Deflate == nil) != (tc.deflate == nil) || hs.Deflate != nil && *hs.Deflate != *tc.deflate {
					t.Errorf("Handshake.Deflate = %+v, want %+v", hs.Deflate, tc.deflate)
				}
				echo(t, c, br, "ping")
			})
		}
	})
}

// checkHeader checks that h holds exactly want.
func checkHeader(t *testing.T, h, want http.Header) {
	t.Helper()
	for k, v := range want {
		if got := h[k]; strings.Join(got, "\n") != strings.Join(v, "\n") {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for k, v := range h {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected header %s: %q", k, v)
		}
	}
}

// TestAnswerBytes checks the exact bytes of a 101: status line, cooper's
// headers in a fixed order, the application's headers sorted, nothing that
// net/http would add (Date, Content-Length), all in one piece.
func TestAnswerBytes(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"), Subprotocols("chat"),
			ResponseHeaders(func(r *http.Request, proto string) http.Header {
				h := http.Header{}
				h.Set("X-Proto", proto)
				h.Add("Set-Cookie", "a=1")
				h.Add("Set-Cookie", "b=2")
				h.Set("Upgrade", "h2c")           // not sent: cooper writes its own
				h.Set("Sec-WebSocket-Accept", "") // likewise
				return h
			}))
		r := f.wsRequest()
		r.Header.Set("Sec-Websocket-Protocol", "chat")
		c := f.dial(t)
		if _, err := c.Write(appendRequest(nil, r, "")); err != nil {
			t.Fatal(err)
		}
		want := "HTTP/1.1 101 Switching Protocols\r\n" +
			"Upgrade: websocket\r\n" +
			"Connection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" +
			"Sec-WebSocket-Protocol: chat\r\n" +
			"Set-Cookie: a=1\r\n" +
			"Set-Cookie: b=2\r\n" +
			"X-Proto: websocket\r\n" +
			"\r\n"
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("reading the 101: %v (got %q)", err, got)
		}
		if string(got) != want {
			t.Fatalf("101 =\n%s\nwant\n%s", got, want)
		}
		echo(t, c, bufio.NewReader(c), "after")
	})
}

// TestEarlyBytesReplayed sends the request and the first protocol bytes in
// one write: net/http has read them into its buffer, and the handler must
// read them first, exactly once, then what follows.
func TestEarlyBytesReplayed(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"))
		early := strings.Repeat("early-bytes ", 100)
		resp, _, c, br := f.roundTrip(t, f.wsRequest(), early)
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
		got := make([]byte, len(early))
		if _, err := io.ReadFull(br, got); err != nil {
			t.Fatalf("reading the echo of the early bytes: %v", err)
		}
		if string(got) != early {
			t.Fatalf("echo of the early bytes = %q, want %q", got, early)
		}
		echo(t, c, br, "later bytes")
		conn := wait(t, f.conns, "handler's connection")
		nc, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			t.Fatalf("handler's connection is %T, want one with NetConn", conn)
		}
		checkSocket(t, m, nc.NetConn())
	})
}

// TestSocketHandedOver checks that with nothing buffered the handler gets
// the socket itself, so type assertions and io.Copy fast paths work.
func TestSocketHandedOver(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"))
		resp, _, c, br := f.roundTrip(t, f.wsRequest(), "")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
		checkSocket(t, m, wait(t, f.conns, "handler's connection"))
		echo(t, c, br, "ping")
	})
}

// checkSocket checks that conn is the socket of mode m.
func checkSocket(t *testing.T, m mode, conn net.Conn) {
	t.Helper()
	switch conn.(type) {
	case *net.TCPConn:
		if m == h1 {
			return
		}
	case *tls.Conn:
		if m == h1TLS {
			return
		}
	}
	t.Errorf("handler's connection is %T, want the socket of %s", conn, m)
}

// TestNoDeadlineLeft runs a server whose timeouts, and cooper's handshake
// timeout, are far shorter than the time the handler waits before it reads
// and writes: no deadline may be left on the connection it gets. (The
// server's timeouts also bound the TLS handshake, so they cannot be much
// shorter than that takes on a loaded machine.)
func TestNoDeadlineLeft(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		const short = 250 * time.Millisecond
		u := New(Protocols("websocket"), HandshakeTimeout(short))
		s := newServerConfig(t, m, u.Handler(func(conn net.Conn, hs *Handshake) {
			defer conn.Close()
			time.Sleep(3 * short)
			io.Copy(conn, conn)
		}), func(s *http.Server) {
			s.ReadTimeout, s.WriteTimeout, s.ReadHeaderTimeout, s.IdleTimeout = short, short, short, short
		})
		t.Cleanup(func() { u.Shutdown(context.Background()) })
		resp, _, c, br := s.roundTrip(t, s.wsRequest(), "")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
		time.Sleep(4 * short)
		echo(t, c, br, "still open")
	})
}

// TestMiddlewareWrappedWriter upgrades through a ResponseWriter wrapper that
// offers only Unwrap, as logging and metrics middleware do.
func TestMiddlewareWrappedWriter(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		u := New(Protocols("websocket"))
		upgraded := make(chan net.Conn, 1)
		inner := u.Handler(func(conn net.Conn, hs *Handshake) {
			defer conn.Close()
			upgraded <- conn
			io.Copy(conn, conn)
		})
		s := newServer(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inner.ServeHTTP(&unwrapOnly{ResponseWriter: w}, r)
		}))
		t.Cleanup(func() { u.Shutdown(context.Background()) })
		resp, _, c, br := s.roundTrip(t, s.wsRequest(), "")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
		checkSocket(t, m, wait(t, upgraded, "handler call"))
		echo(t, c, br, "through the wrapper")
	})
}

// unwrapOnly is a middleware's ResponseWriter that hides every optional
// interface but Unwrap.
type unwrapOnly struct{ http.ResponseWriter }

func (w *unwrapOnly) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// opaqueWriter is a middleware's ResponseWriter that can be neither hijacked
// nor unwrapped.
type opaqueWriter struct{ http.ResponseWriter }

// TestUnhijackableWriter checks that a writer that cannot be hijacked gets a
// 500 with a reason, OnError gets ErrHijackFailed, and nothing panics.
func TestUnhijackableWriter(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		errs := make(chan error, 1)
		called := make(chan struct{}, 1)
		u := New(Protocols("websocket"), OnError(func(err error) { errs <- err }))
		inner := u.Handler(func(conn net.Conn, hs *Handshake) { called <- struct{}{}; conn.Close() })
		s := newServer(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inner.ServeHTTP(opaqueWriter{w}, r)
		}))
		resp, body, _, _ := s.roundTrip(t, s.wsRequest(), "")
		if resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("status = %d, want 500", resp.StatusCode)
		}
		checkReason(t, resp, body)
		err := wait(t, errs, "error reported to OnError")
		if !errors.Is(err, ErrHijackFailed) || !errors.Is(err, http.ErrNotSupported) {
			t.Errorf("OnError got %v, want an error matching ErrHijackFailed and http.ErrNotSupported", err)
		}
		none(t, called, "handler call")
		if n := s.hijacked.Load(); n != 0 {
			t.Errorf("%d connections were taken over, want 0", n)
		}
		// Answered through w, so counted as a refusal, not a failure.
		if st := u.Stats(); st.Refusals[ErrHijackFailed] != 1 || st.Failures != 0 {
			t.Errorf("Stats = %+v, want 1 ErrHijackFailed refusal and no failure", st)
		}
	})
}

// TestHandlerPanic checks that a handler's panic closes its connection,
// reaches OnError as ErrHandlerPanic with the value and stack, and leaves
// the server serving.
func TestHandlerPanic(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		errs := make(chan error, 2)
		u := New(Protocols("websocket"), OnError(func(err error) { errs <- err }))
		s := newServer(t, m, u.Handler(func(conn net.Conn, hs *Handshake) {
			if hs.Request.URL.Path == "/panic" {
				panic("boom")
			}
			defer conn.Close()
			io.Copy(conn, conn)
		}))
		t.Cleanup(func() { u.Shutdown(context.Background()) })
		r := s.wsRequest()
		r.URL.Path = "/panic"
		resp, _, _, br := s.roundTrip(t, r, "")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
		if n, err := br.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read after the handler panicked = %d, %v, want EOF", n, err)
		}
		err := wait(t, errs, "error reported to OnError")
		var pe *PanicError
		if !errors.Is(err, ErrHandlerPanic) || !errors.As(err, &pe) || pe.Value != "boom" || !strings.Contains(string(pe.Stack), "TestHandlerPanic") {
			t.Errorf("OnError got %v, want a *PanicError with value \"boom\" and the handler's stack", err)
		}
		resp, _, c, br := s.roundTrip(t, s.wsRequest(), "")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("after a panic: status = %d, want 101", resp.StatusCode)
		}
		echo(t, c, br, "still serving")
	})
}

// TestHandlerAbort checks that a handler's panic with http.ErrAbortHandler,
// net/http's way to abort a handler quietly, closes its connection and is
// counted, but is not reported to OnError.
func TestHandlerAbort(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		errs := make(chan error, 1)
		u := New(Protocols("websocket"), OnError(func(err error) { errs <- err }))
		s := newServer(t, m, u.Handler(func(net.Conn, *Handshake) { panic(http.ErrAbortHandler) }))
		t.Cleanup(func() { u.Shutdown(context.Background()) })
		resp, _, _, br := s.roundTrip(t, s.wsRequest(), "")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
		if n, err := br.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read after the handler aborted = %d, %v, want EOF", n, err)
		}
		poll.Until(t, 10*time.Second, "the aborted handler to be counted", func() bool { return u.Stats().Panics == 1 && u.Stats().Active == 0 })
		select {
		case err := <-errs:
			t.Errorf("OnError got %v, want nothing for http.ErrAbortHandler", err)
		default:
		}
	}, h1)
}

// TestHandlerContext checks the context of Handshake.Request: it keeps the
// values middleware put in the request's context, outlives ServeHTTP, and
// is cancelled by Shutdown.
func TestHandlerContext(t *testing.T) {
	type key struct{}
	run(t, func(t *testing.T, m mode) {
		u := New(Protocols("websocket"))
		requestCtx := make(chan context.Context, 1)
		handlerCtx := make(chan context.Context, 1)
		inner := u.Handler(func(conn net.Conn, hs *Handshake) {
			defer conn.Close()
			handlerCtx <- hs.Request.Context()
			<-hs.Request.Context().Done()
		})
		s := newServer(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r = r.WithContext(context.WithValue(r.Context(), key{}, "from middleware"))
			requestCtx <- r.Context()
			inner.ServeHTTP(w, r)
		}))
		resp, _, _, _ := s.roundTrip(t, s.wsRequest(), "")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
		rctx, hctx := wait(t, requestCtx, "request context"), wait(t, handlerCtx, "handler context")
		wait(t, rctx.Done(), "end of the request's context when ServeHTTP returns")
		if v := hctx.Value(key{}); v != "from middleware" {
			t.Errorf("handler context value = %v, want the middleware's", v)
		}
		if err := hctx.Err(); err != nil || context.Cause(hctx) != nil {
			t.Fatalf("handler context after ServeHTTP returned: Err = %v, Cause = %v, want nil", err, context.Cause(hctx))
		}
		derived, cancel := context.WithCancel(hctx)
		defer cancel()
		// Deriving from it costs no goroutine, as deriving from a child of
		// context.WithCancel does not.
		goroutines := runtime.NumGoroutine()
		for range 100 {
			_, cancel := context.WithCancel(hctx)
			defer cancel()
		}
		if n := runtime.NumGoroutine() - goroutines; n > 10 {
			t.Errorf("deriving 100 contexts from the handler's started %d goroutines", n)
		}
		ctx, cancelShutdown := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancelShutdown()
		if err := u.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown = %v, want nil: the handler returns once its context is cancelled", err)
		}
		// A derived context is cancelled with the handler's, at once, as a
		// child of context.WithCancel is; the cause says why.
		if hctx.Err() != context.Canceled || derived.Err() != context.Canceled ||
			context.Cause(hctx) != ErrShutdown || context.Cause(derived) != ErrShutdown {
			t.Errorf("after Shutdown: handler context Err = %v, Cause = %v, derived Err = %v, Cause = %v, want context.Canceled, ErrShutdown",
				hctx.Err(), context.Cause(hctx), derived.Err(), context.Cause(derived))
		}
	})
}

// TestHandshakeTimeout has a client that never reads while the 101 is too
// large for the socket buffers: the write must fail at the handshake
// timeout, the handler must not run, and the connection must be closed.
func TestHandshakeTimeout(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		big := strings.Repeat("x", 32<<20)
		f := newFixture(t, m, Protocols("websocket"), HandshakeTimeout(200*time.Millisecond),
			ResponseHeaders(func(*http.Request, string) http.Header { return http.Header{"X-Big": {big}} }))
		c := f.dial(t)
		if _, err := c.Write(appendRequest(nil, f.wsRequest(), "")); err != nil {
			t.Fatal(err)
		}
		err := wait(t, f.errs, "error reported to OnError")
		if !errors.Is(err, ErrWriteResponse) || !errors.Is(err, os.ErrDeadlineExceeded) || !strings.HasPrefix(err.Error(), "cooper: write 101: ") {
			t.Errorf("OnError got %v, want a write 101 error matching ErrWriteResponse and os.ErrDeadlineExceeded", err)
		}
		none(t, f.handled, "handler call")
		u := f.Config.Handler.(*handler).u
		if s := u.Stats(); s.Active != 0 || s.Failures != 1 || s.Upgrades != 0 {
			t.Errorf("Stats = %+v, want no active connection, one failure, no upgrade", s)
		}
		// The server closes the connection. TLS cannot send close_notify
		// after a failed write, so there the end is an unexpected EOF.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("reading until the server closes: %v, want EOF", err)
		}
	})
}

// TestShutdown checks Shutdown with a handler that ignores its context: new
// requests get 503 with Retry-After at once, Shutdown returns ctx's error at
// its deadline after closing the connection, and a second call is safe.
func TestShutdown(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"))
		resp, _, _, br := f.roundTrip(t, f.wsRequest(), "")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
		wait(t, f.handled, "handler call")
		u := f.Config.Handler.(*handler).u
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := u.Shutdown(ctx); err != context.DeadlineExceeded {
			t.Fatalf("Shutdown with a handler still running = %v, want context.DeadlineExceeded", err)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("read after Shutdown = %v, want EOF: Shutdown closes what is left", err)
		}
		if err := u.Shutdown(context.Background()); err != nil {
			t.Errorf("second Shutdown = %v, want nil", err)
		}
		resp, body, _, _ := f.roundTrip(t, f.wsRequest(), "")
		f.checkRetryRefusal(t, resp, body, http.StatusServiceUnavailable, ErrShutdown)
	})
}

// TestShutdownServer checks that ShutdownServer returns only once the
// server and the Upgrader have both stopped: a handler that says goodbye
// when its context ends has said it by then; one that does not return is
// closed at ctx's deadline, and the error says so.
func TestShutdownServer(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		for _, tc := range []struct {
			name    string
			goodbye bool // the handler says goodbye and returns when its context ends
			alone   bool // ShutdownServer is given no server
			want    error
		}{
			{name: "a handler that says goodbye has said it when ShutdownServer returns nil", goodbye: true},
			{name: "a handler that does not return is closed at the deadline, with its error", want: context.DeadlineExceeded},
			{name: "without a server the Upgrader shuts down alone and the server still answers", goodbye: true, alone: true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u := New(Protocols("websocket"))
				release := make(chan struct{})
				defer close(release)
				s := newServer(t, m, u.Handler(func(conn net.Conn, hs *Handshake) {
					defer conn.Close()
					io.WriteString(conn, "ready\n")
					if tc.goodbye {
						<-hs.Request.Context().Done()
						time.Sleep(50 * time.Millisecond) // a goodbye that takes a while
						io.WriteString(conn, "goodbye\n")
						return
					}
					<-release
				}))
				resp, _, _, br := s.roundTrip(t, s.wsRequest(), "")
				if resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("status = %d, want 101", resp.StatusCode)
				}
				if line, err := br.ReadString('\n'); line != "ready\n" {
					t.Fatalf("first line = %q, %v", line, err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				srv := s.Config
				if tc.alone {
					srv = nil
				}
				err := u.ShutdownServer(ctx, srv)
				if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
					t.Fatalf("ShutdownServer = %v, want %v", err, tc.want)
				}
				if n := u.Stats().Active; tc.goodbye && n != 0 {
					t.Errorf("after ShutdownServer, %d connections are active, want 0", n)
				}
				rest, _ := io.ReadAll(br)
				if want := map[bool]string{true: "goodbye\n"}[tc.goodbye]; string(rest) != want {
					t.Errorf("after ShutdownServer returned, the client read %q, want %q", rest, want)
				}
				if resp, err := s.Client().Get(s.URL); err == nil {
					resp.Body.Close()
					if !tc.alone {
						t.Error("the server still answers after ShutdownServer")
					}
				} else if tc.alone {
					t.Errorf("the server no longer answers after ShutdownServer(ctx, nil): %v", err)
				}
			})
		}
	})
}

// TestShutdownServerClosesWhatIsLeft checks that a connection srv still
// counts as busy at ctx's end, here one on which no request has come, is
// closed, and the error says the server did not stop in time.
func TestShutdownServerClosesWhatIsLeft(t *testing.T) {
	u := New(Protocols("websocket"))
	s := newServer(t, h1, u.Handler(func(conn net.Conn, hs *Handshake) { conn.Close() }))
	c := s.dial(t) // a browser's connection opened ahead of need: no request yet
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := u.ShutdownServer(ctx, s.Config); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ShutdownServer = %v, want context.DeadlineExceeded", err)
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read on the unused connection after ShutdownServer = %v, want EOF: it is closed", err)
	}
}

// TestAccept covers Upgrader.Accept: a refusal has been answered when it
// returns; an accepted connection is the caller's, with what was agreed.
func TestAccept(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		u := New(Protocols("websocket"), Subprotocols("chat"))
		results := make(chan error, 1)
		s := newServer(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, hs, err := u.Accept(w, r)
			results <- err
			if err != nil {
				return
			}
			defer conn.Close()
			// A second upgrade of the same request fails without a byte
			// written or a connection left counted; the first goes on.
			if _, _, err := u.Accept(w, r); !errors.Is(err, ErrHijackFailed) || u.Stats().Active != 1 {
				fmt.Fprintf(conn, "second Accept: %v, %d active", err, u.Stats().Active)
				return
			}
			if hs.Subprotocol != "chat" || hs.Request.Context().Err() != nil {
				conn.Write([]byte("bad handshake"))
				return
			}
			io.Copy(conn, conn)
		}))
		shutdownAtEnd(t, u)

		r := s.wsRequest()
		r.Header.Set("Sec-Websocket-Version", "12")
		resp, _, _, _ := s.roundTrip(t, r, "")
		err := wait(t, results, "Accept's result")
		if resp.StatusCode != http.StatusUpgradeRequired || !errors.Is(err, ErrWebSocketVersion) {
			t.Fatalf("bad version: status %d, Accept error %v, want 426 and ErrWebSocketVersion", resp.StatusCode, err)
		}

		r = s.wsRequest()
		r.Header.Set("Sec-Websocket-Protocol", "chat")
		resp, _, c, br := s.roundTrip(t, r, "early")
		if err := wait(t, results, "Accept's result"); resp.StatusCode != http.StatusSwitchingProtocols || err != nil {
			t.Fatalf("status %d, Accept error %v, want 101 and nil", resp.StatusCode, err)
		}
		got := make([]byte, len("early"))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != "early" {
			t.Fatalf("echo = %q, %v, want the early bytes", got, err)
		}
		echo(t, c, br, "ping")
	})
}

// TestSeedExample runs the lowbit.dev/websockets README's handler unchanged:
// it sets Sec-WebSocket-Accept itself, which must be sent once, with the
// right value.
func TestSeedExample(t *testing.T) {
	calculateAcceptKey := AcceptKey
	run(t, func(t *testing.T, m mode) {
		h := Hijack(func(netConn net.Conn, proto string) {
			defer netConn.Close()
			io.Copy(netConn, netConn)
		}, Protocols("websocket"),
			ResponseHeaders(func(r *http.Request, proto string) http.Header {
				h := http.Header{}
				h.Set("Sec-WebSocket-Accept", calculateAcceptKey(r.Header.Get("Sec-WebSocket-Key")))
				return h
			}))
		s := newServer(t, m, h)
		t.Cleanup(func() { h.(*handler).u.Shutdown(context.Background()) })
		resp, _, c, br := s.roundTrip(t, s.wsRequest(), "")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status = %d, want 101", resp.StatusCode)
		}
		if got := resp.Header.Values("Sec-Websocket-Accept"); len(got) != 1 || got[0] != AcceptKey(testKey) {
			t.Errorf("Sec-WebSocket-Accept = %q, want once %q", got, AcceptKey(testKey))
		}
		echo(t, c, br, "ping")
	})
}

// TestDeflateEndToEnd upgrades with permessage-deflate and exchanges
// compressed messages (RFC 7692, section 7.2) with compress/flate on both
// sides, each driven only by the agreed parameters: the server by
// Handshake.Deflate, the client by the 101's Sec-WebSocket-Extensions.
// With context takeover a repeated message compresses to a back-reference;
// without it, it compresses the same as the first time.
func TestDeflateEndToEnd(t *testing.T) {
	cases := []struct {
		name     string
		policy   DeflateParams
		offer    string
		takeover bool // the client's compressor keeps its context
	}{
		{"context takeover both ways", DeflateParams{}, "permessage-deflate; client_max_window_bits", true},
		{"no context takeover by the server's policy", DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true}, "permessage-deflate", false},
		{"no context takeover for the server, asked by the client", DeflateParams{}, "permessage-deflate; server_no_context_takeover", true},
	}
	run(t, func(t *testing.T, m mode) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				u := New(Protocols("websocket"), Deflate(tc.policy))
				s := newServer(t, m, u.Handler(func(conn net.Conn, hs *Handshake) {
					defer conn.Close()
					if hs.Deflate == nil {
						return
					}
					own := newDeflater(hs.Deflate.ServerNoContextTakeover)
					peer := newInflater(hs.Deflate.ClientNoContextTakeover)
					for {
						msg, err := readMessage(conn, peer)
						if err != nil {
							return
						}
						if err := writeMessage(conn, own, msg); err != nil {
							return
						}
					}
				}))
				t.Cleanup(func() { u.Shutdown(context.Background()) })
				r := s.wsRequest()
				r.Header.Set("Sec-Websocket-Extensions", tc.offer)
				resp, _, c, br := s.roundTrip(t, r, "")
				if resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("status = %d, want 101", resp.StatusCode)
				}
				elems, ok := refParseExtensions(resp.Header.Get("Sec-Websocket-Extensions"))
				if !ok || len(elems) != 1 {
					t.Fatalf("Sec-WebSocket-Extensions = %q, want one permessage-deflate", resp.Header.Get("Sec-Websocket-Extensions"))
				}
				var serverNoContext, clientNoContext bool
				for _, p := range elems[0].params {
					serverNoContext = serverNoContext || p.name == "server_no_context_takeover"
					clientNoContext = clientNoContext || p.name == "client_no_context_takeover"
				}
				if clientNoContext == tc.takeover {
					t.Fatalf("client_no_context_takeover answered = %v, want %v", clientNoContext, !tc.takeover)
				}
				own, peer := newDeflater(clientNoContext), newInflater(serverNoContext)
				msg := []byte(strings.Repeat("permessage-deflate over cooper; ", 40))
				var sizes []int
				for i := range 3 {
					before := own.out.Len()
					if err := writeMessage(c, own, msg); err != nil {
						t.Fatal(err)
					}
					sizes = append(sizes, own.out.Len()-before)
					got, err := readMessage(br, peer)
					if err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("echo %d = %q, %v, want the message back", i, got, err)
					}
				}
				if tc.takeover != (sizes[1] < sizes[0]) {
					t.Errorf("compressed sizes %v: a repeated message must shrink exactly when the context is kept", sizes)
				}
			})
		}
	})
}

// A deflater compresses messages as RFC 7692, section 7.2.1 says: a
// flushed DEFLATE stream without its final 00 00 ff ff, reset after every
// message when noContext.
type deflater struct {
	w         *flate.Writer
	out       bytes.Buffer // every compressed byte so far
	noContext bool
}

func newDeflater(noContext bool) *deflater {
	d := &deflater{noContext: noContext}
	d.w, _ = flate.NewWriter(&d.out, flate.BestCompression)
	return d
}

func (d *deflater) compress(msg []byte) []byte {
	start := d.out.Len()
	if d.noContext {
		d.w.Reset(&d.out)
	}
	d.w.Write(msg)
	d.w.Flush()
	b := d.out.Bytes()[start:]
	return b[:len(b)-4]
}

// An inflater decompresses messages as RFC 7692, section 7.2.2 says,
// keeping the last 32 KiB as the window for the next message unless
// noContext.
type inflater struct {
	window    []byte
	noContext bool
}

func newInflater(noContext bool) *inflater { return &inflater{noContext: noContext} }

func (f *inflater) decompress(payload []byte) ([]byte, error) {
	if f.noContext {
		f.window = nil
	}
	src := io.MultiReader(bytes.NewReader(payload), bytes.NewReader([]byte{0, 0, 0xff, 0xff}))
	msg, err := io.ReadAll(flate.NewReaderDict(src, f.window))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	f.window = append(f.window, msg...)
	f.window = f.window[max(0, len(f.window)-32<<10):]
	return msg, nil
}

// writeMessage sends msg compressed, framed by its compressed length.
func writeMessage(w io.Writer, d *deflater, msg []byte) error {
	payload := d.compress(msg)
	_, err := w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(payload))))
	if err == nil {
		_, err = w.Write(payload)
	}
	return err
}

// readMessage reads one message that writeMessage sent.
func readMessage(r io.Reader, f *inflater) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	payload := make([]byte, binary.BigEndian.Uint32(n[:]))
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, err
	}
	return f.decompress(payload)
}

// panickyWriter is a middleware's ResponseWriter whose Hijack panics.
type panickyWriter struct{ http.ResponseWriter }

func (panickyWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { panic("hijack broke") }

// TestHijackPanics checks that a Hijack that panics, in a middleware's
// writer, leaves nothing tracked: the panic is net/http's to handle, and
// Shutdown does not wait for a connection that was never handed over.
func TestHijackPanics(t *testing.T) {
	u := New(Protocols("websocket"))
	inner := u.Handler(func(conn net.Conn, hs *Handshake) { conn.Close() })
	s := newServer(t, h1, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { recover() }()
		inner.ServeHTTP(panickyWriter{w}, r)
	}))
	s.roundTrip(t, s.wsRequest(), "") // the recovered handler wrote nothing: an empty 200
	if a := u.Stats().Active; a != 0 {
		t.Errorf("Active = %d after a Hijack panicked, want 0", a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := u.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v, want nil: nothing was handed over", err)
	}
}

// TestDrainSchedule runs Shutdown with DrainTime on a virtual clock: the
// contexts of the handlers still running when it starts are cancelled one
// by one, with ErrShutdown as the cause, at evenly spaced times over
// DrainTime, in an order that is not the order of the upgrades; handlers
// that returned before Shutdown, or during the drain before their turn, are
// skipped and keep their turn's time empty.
func TestDrainSchedule(t *testing.T) {
	const n, early, during = 40, 5, 5
	const d = 40 * time.Second
	u := New(Protocols("websocket"), DrainTime(d))
	type running struct {
		ctx   context.Context
		leave chan struct{}
	}
	started := make(chan running, 1)
	h := u.Handler(func(conn net.Conn, hs *Handshake) {
		r := running{hs.Request.Context(), make(chan struct{})}
		started <- r
		select {
		case <-r.ctx.Done():
		case <-r.leave:
		}
	})
	conns := make([]running, n) // in the order of their upgrades
	for i := range conns {
		h.ServeHTTP(newFakeWriter(), realRequest(""))
		conns[i] = wait(t, started, "handler call")
	}
	for _, c := range conns[:early] {
		close(c.leave)
	}
	poll.Until(t, 10*time.Second, "the early handlers to return", func() bool { return u.Stats().Active == n-early })

	// The clock moves only when the drain sleeps; each sleep first notes
	// the time of the cancellations since the last.
	var clock time.Duration
	cancelled := map[int]time.Duration{}
	note := func() {
		for i, c := range conns {
			if _, ok := cancelled[i]; !ok && c.ctx.Err() != nil {
				cancelled[i] = clock
				if cause := context.Cause(c.ctx); cause != ErrShutdown {
					t.Errorf("connection %d: Cause = %v, want ErrShutdown", i, cause)
				}
			}
		}
	}
	left := map[int]bool{}
	second := make(chan error, 1)
	u.now = func() time.Duration { return clock }
	u.sleep = func(ctx context.Context, wait time.Duration) error {
		note()
		if clock == 0 {
			// Another Shutdown while this one drains waits for it: it must
			// not end every context at once.
			go func() { second <- u.Shutdown(context.Background()) }()
			time.Sleep(20 * time.Millisecond)
		}
		if !u.Stats().Draining {
			t.Error("Stats().Draining = false during the drain")
		}
		if clock < d/3 && clock+wait >= d/3 {
			// A third of the way, some handlers still waiting for their
			// turn return by themselves.
			for i := early; len(left) < during; i++ {
				if _, ok := cancelled[i]; !ok {
					left[i] = true
					close(conns[i].leave)
				}
			}
			poll.Until(t, 10*time.Second, "handlers to return during the drain", func() bool {
				return u.Stats().Active == n-early-during-len(cancelled) || u.Stats().Active < n-early-during-len(cancelled)
			})
		}
		clock += wait
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := u.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v, want nil", err)
	}
	note()
	if err := wait(t, second, "the second Shutdown to return"); err != nil {
		t.Errorf("second Shutdown = %v, want nil", err)
	}

	m := n - early // tracked when the drain started
	if len(cancelled) != m-during {
		t.Fatalf("%d contexts cancelled, want %d: those running at their turn", len(cancelled), m-during)
	}
	turns := map[int]bool{}
	var byTime []int // connection indexes, in the order of cancellation
	for i, at := range cancelled {
		if i < early || left[i] {
			t.Errorf("connection %d, whose handler had returned, was cancelled at %v", i, at)
		}
		turn := int((at*time.Duration(m) + d/2) / d)
		if at != d*time.Duration(turn)/time.Duration(m) || turn < 0 || turn >= m || turns[turn] {
			t.Errorf("connection %d cancelled at %v, not at a turn of its own among %v*k/%d", i, at, d, m)
		}
		turns[turn] = true
		byTime = append(byTime, i)
	}
	slices.SortFunc(byTime, func(a, b int) int { return cmp.Compare(cancelled[a], cancelled[b]) })
	if slices.IsSorted(byTime) || slices.IsSortedFunc(byTime, func(a, b int) int { return b - a }) {
		t.Errorf("cancellation order %v follows the order of the upgrades; want it random", byTime)
	}
	if s := u.Stats(); s.Draining || !s.ShuttingDown {
		t.Errorf("after Shutdown: Draining = %v, ShuttingDown = %v, want false, true", s.Draining, s.ShuttingDown)
	}
}

// TestDrainEndToEnd drains real connections over loopback on the real
// clock: an Upgrader.Handler handler says goodbye with its context's cause
// when its turn comes, a Hijack handler, which has no context, has its
// connection closed at its turn, and Shutdown returns nil once all are
// gone, before its deadline.
func TestDrainEndToEnd(t *testing.T) {
	const d = 300 * time.Millisecond
	u := New(Protocols("websocket"), DrainTime(d))
	handshake := u.Handler(func(conn net.Conn, hs *Handshake) {
		defer conn.Close()
		<-hs.Request.Context().Done()
		fmt.Fprintf(conn, "bye: %v\n", context.Cause(hs.Request.Context()))
	})
	hijack := Hijack(func(conn net.Conn, _ string) {
		defer conn.Close()
		io.Copy(conn, conn)
	}, Protocols("websocket"), DrainTime(d))
	mux := http.NewServeMux()
	mux.Handle("/handler", handshake)
	mux.Handle("/hijack", hijack)
	s := newServer(t, h1, mux)
	var readers []*bufio.Reader
	for _, path := range []string{"/handler", "/handler", "/handler", "/hijack", "/hijack"} {
		r := s.wsRequest()
		r.URL.Path = path
		resp, _, _, br := s.roundTrip(t, r, "")
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("%s: status = %d, want 101", path, resp.StatusCode)
		}
		readers = append(readers, br)
	}
	hu := hijack.(*handler).u
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- u.Shutdown(ctx) }()
	go func() { errs <- hu.Shutdown(ctx) }()
	for i, br := range readers {
		line, err := br.ReadString('\n')
		switch {
		case i < 3 && line != "bye: "+ErrShutdown.Error()+"\n":
			t.Errorf("Handler connection %d: read %q, %v; want the goodbye with ErrShutdown", i, line, err)
		case i >= 3 && (line != "" || err != io.EOF):
			t.Errorf("Hijack connection %d: read %q, %v; want EOF", i, line, err)
		}
	}
	for range 2 {
		if err := wait(t, errs, "Shutdown to return"); err != nil {
			t.Errorf("Shutdown = %v, want nil", err)
		}
	}
}

// TestGenericUpgradeBytes upgrades to a protocol other than WebSocket with
// raw requests and reads the raw answer: a 101 names exactly the one
// protocol agreed, in the server's spelling, and nothing of WebSocket's
// even when the request carries WebSocket's headers and the server is set
// up for subprotocols and permessage-deflate; the bytes sent with the
// request reach the handler first; a version the server lacks is refused
// with 426 naming every one it has (RFC 9110, section 15.5.22).
func TestGenericUpgradeBytes(t *testing.T) {
	const switched = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n"
	wsHeaders := http.Header{
		"Sec-Websocket-Key": {"not a key"}, "Sec-Websocket-Version": {"8"},
		"Sec-Websocket-Protocol": {"chat"}, "Sec-Websocket-Extensions": {"permessage-deflate"},
	}
	cases := []struct {
		name    string
		upgrade []string
		header  http.Header
		want    string // the answer's head, for a 101
		status  int    // otherwise
		err     error  // which the refusal matches
	}{
		{name: "the protocol asked for is answered alone",
			upgrade: []string{"myproto/1"}, want: fmt.Sprintf(switched, "myproto/1")},
		{name: "the client's first acceptable protocol across lines wins, in the server's spelling",
			upgrade: []string{"other/1, MYPROTO/2", "myproto/1"}, want: fmt.Sprintf(switched, "myproto/2")},
		{name: "WebSocket's headers on a generic upgrade are neither checked nor answered",
			upgrade: []string{"myproto/1"}, header: wsHeaders, want: fmt.Sprintf(switched, "myproto/1")},
		{name: "a version the server lacks is refused with 426 naming those it has",
			upgrade: []string{"myproto/3"}, status: http.StatusUpgradeRequired, err: ErrProtocol},
		{name: "a protocol with a bare slash is refused with 400",
			upgrade: []string{"myproto/"}, status: http.StatusBadRequest, err: ErrMalformedHeader},
		{name: "a protocol with a second slash is refused with 400",
			upgrade: []string{"myproto/1/2"}, status: http.StatusBadRequest, err: ErrMalformedHeader},
		{name: "a quoted protocol is refused with 400",
			upgrade: []string{`"myproto/1"`}, status: http.StatusBadRequest, err: ErrMalformedHeader},
		{name: "a protocol with a byte beyond ASCII is refused with 400, even after an acceptable one",
			upgrade: []string{"myproto/1, myprot\xc3\xb6/1"}, status: http.StatusBadRequest, err: ErrMalformedHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, h1, Protocols("myproto/1", "myproto/2"), Subprotocols("chat"), Deflate(DeflateParams{}))
			r := f.wsRequest()
			delete(r.Header, "Sec-Websocket-Key")
			delete(r.Header, "Sec-Websocket-Version")
			r.Header["Upgrade"] = tc.upgrade
			for k, v := range tc.header {
				r.Header[k] = v
			}
			const early = "first bytes of the protocol"
			if tc.want == "" {
				resp, body, _, _ := f.roundTrip(t, r, "")
				if resp.StatusCode != tc.status {
					t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
				}
				if got := resp.Header.Values("Upgrade"); tc.status == http.StatusUpgradeRequired && (len(got) != 1 || got[0] != "myproto/1, myproto/2") {
					t.Errorf("Upgrade = %q, want \"myproto/1, myproto/2\"", got)
				}
				checkReason(t, resp, body)
				if err := wait(t, f.errs, "OnError"); !errors.Is(err, tc.err) {
					t.Errorf("OnError got %v, want %v", err, tc.err)
				}
				none(t, f.handled, "handler call")
				return
			}
			c := f.dial(t)
			if _, err := c.Write(appendRequest(nil, r, early)); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(tc.want)+len(early))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("reading the 101 and the echo: %v (got %q)", err, got)
			}
			if want := tc.want + early; string(got) != want {
				t.Fatalf("answer = %q, want %q", got, want)
			}
			if hs := wait(t, f.handled, "handler call"); hs.Subprotocol != "" || hs.Deflate != nil {
				t.Errorf("Handshake = %+v, want no subprotocol and no deflate", hs)
			}
		})
	}
}
