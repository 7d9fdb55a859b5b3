package cooper

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestValidateConnect checks extended CONNECT requests (RFC 8441) as net/http's
// HTTP/2 server hands them over: the same validation as HTTP/1.1 where
// RFC 8441, section 5 keeps it, and refusals without the Upgrade and
// Connection headers RFC 9113, section 8.2.2 forbids. The exchange over
// real streams is tested in the interop module, whose HTTP/2 client can
// send extended CONNECT.
func TestValidateConnect(t *testing.T) {
	valid := func() *http.Request {
		return &http.Request{Method: "CONNECT", Proto: "HTTP/2.0", ProtoMajor: 2, Host: "example.com", ContentLength: -1,
			Header: http.Header{
				":protocol":              {"websocket"},
				"Sec-Websocket-Version":  {"13"},
				"Origin":                 {"https://example.com"},
				"Sec-Websocket-Protocol": {"chat"},
			}}
	}
	cases := []struct {
		name   string
		opts   []Option
		edit   func(r *http.Request)
		proto  string // when accepted
		status int    // when refused
		header http.Header
		err    error
	}{
		{name: "an extended CONNECT for websocket is accepted without key, Upgrade or Connection", proto: "websocket"},
		{name: "the protocol is agreed in the server's spelling",
			opts: []Option{Protocols("WebSocket")}, proto: "WebSocket"},
		{name: "without Protocols any protocol is agreed, in lower case",
			opts: []Option{}, edit: func(r *http.Request) { r.Header.Set(":protocol", "Lines/1") }, proto: "lines/1"},
		{name: "an extended CONNECT over HTTP/3 is accepted as over HTTP/2 (RFC 9220)",
			edit: func(r *http.Request) { r.Proto, r.ProtoMajor = "HTTP/3.0", 3 }, proto: "websocket"},
		{name: "a GET over HTTP/3 is refused with 405 and Allow: CONNECT",
			edit: func(r *http.Request) { r.Method, r.Proto, r.ProtoMajor = "GET", "HTTP/3.0", 3 }, status: 405,
			header: http.Header{"Allow": {"CONNECT"}}, err: ErrMethod},
		{name: "a GET over HTTP/2 is refused with 405 and Allow: CONNECT",
			edit: func(r *http.Request) { r.Method = "GET" }, status: 405, header: http.Header{"Allow": {"CONNECT"}}, err: ErrMethod},
		{name: "a CONNECT without :protocol is refused with 400",
			edit: func(r *http.Request) { delete(r.Header, ":protocol") }, status: 400, err: ErrNotUpgrade},
		{name: "a :protocol that is not a token is refused with 400",
			edit: func(r *http.Request) { r.Header.Set(":protocol", "web socket") }, status: 400, err: ErrMalformedHeader},
		{name: "a :protocol not accepted is refused with 400, as a 426 could not name ours",
			edit: func(r *http.Request) { r.Header.Set(":protocol", "chat") }, status: 400, err: ErrProtocol},
		{name: "a version other than 13 is refused with 400 and Sec-WebSocket-Version: 13",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Version", "8") }, status: 400,
			header: http.Header{"Sec-Websocket-Version": {"13"}}, err: ErrWebSocketVersion},
		{name: "a missing version is refused with 400",
			edit: func(r *http.Request) { r.Header.Del("Sec-Websocket-Version") }, status: 400, err: ErrWebSocketVersion},
		{name: "a cross-origin request is refused with 403",
			edit: func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, status: 403, err: ErrOrigin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			if opts == nil {
				opts = []Option{Protocols("websocket")}
			}
			c := newConfig(opts)
			r := valid()
			if tc.edit != nil {
				tc.edit(r)
			}
			proto, rej := validate(r, c)
			if tc.status == 0 {
				if rej != nil || proto != tc.proto {
					t.Fatalf("validate = %q, %v, want %q accepted", proto, rej, tc.proto)
				}
				if _, rej := negotiate(r, c, proto); rej != nil {
					t.Fatalf("negotiate refused: %v", rej)
				}
				return
			}
			if rej == nil || rej.Status != tc.status || !errors.Is(rej, tc.err) {
				t.Fatalf("validate = %q, %v, want a %d refusal matching %v", proto, rej, tc.status, tc.err)
			}
			for k, v := range tc.header {
				if got := rej.Header[k]; strings.Join(got, ",") != strings.Join(v, ",") {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for _, k := range []string{"Upgrade", "Connection"} {
				if v, ok := rej.Header[k]; ok {
					t.Errorf("an HTTP/2 refusal carries %s: %q", k, v)
				}
			}
		})
	}
}

// TestHTTP2ServerServesBoth runs one TLS server with HTTP/2 on: a GET over
// HTTP/2 is refused as RFC 8441 asks, and an HTTP/1.1 client is upgraded
// as usual on the same server.
func TestHTTP2ServerServesBoth(t *testing.T) {
	f := newFixture(t, h2, Protocols("websocket"))
	resp, err := f.Client().Get(f.URL + "/ws")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "CONNECT" {
		t.Fatalf("GET over %s: status %d, Allow %q, want HTTP/2, 405 and CONNECT", resp.Proto, resp.StatusCode, resp.Header.Get("Allow"))
	}
	if v := resp.Header.Values("Upgrade"); len(v) > 0 {
		t.Errorf("an HTTP/2 refusal carries Upgrade: %q", v)
	}
	checkReason(t, resp, string(body))
	wait(t, f.errs, "refusal")

	f.mode = h1TLS // ALPN http/1.1 on the same server
	resp, _, c, br := f.roundTrip(t, f.wsRequest(), "")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("HTTP/1.1 on the HTTP/2 server: status = %d, want 101", resp.StatusCode)
	}
	if hs := wait(t, f.handled, "handler call"); hs.Request.ProtoMajor != 1 {
		t.Errorf("Handshake.Request over HTTP/%d, want 1", hs.Request.ProtoMajor)
	}
	echo(t, c, br, "over HTTP/1.1")
}

func TestWithStreamTakeoverPanicsOnNil(t *testing.T) {
	defer func() {
		if v := recover(); v != "cooper: WithStreamTakeover: nil StreamTakeover" {
			t.Errorf("recover() = %v, want the nil StreamTakeover panic", v)
		}
	}()
	WithStreamTakeover(&http.Request{}, nil)
}
