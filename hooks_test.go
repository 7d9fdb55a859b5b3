package cooper

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// hookRequest is a valid same-origin WebSocket opening handshake for
// example.com, offering the subprotocols "a, b" and then "c".
func hookRequest() *http.Request {
	return &http.Request{
		Method: "GET", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "example.com",
		Header: http.Header{
			"Connection":             {"Upgrade"},
			"Upgrade":                {"websocket"},
			"Sec-Websocket-Key":      {testKey},
			"Sec-Websocket-Version":  {"13"},
			"Origin":                 {"https://example.com"},
			"Sec-Websocket-Protocol": {"a, b", "c"},
		},
	}
}

// TestCheckOrigin checks that a CheckOrigin function, when set, is the
// whole origin decision: OriginPatterns and InsecureSkipOriginCheck change
// nothing, in either order, and it is asked about requests without Origin.
func TestCheckOrigin(t *testing.T) {
	allow := CheckOrigin(func(*http.Request) bool { return true })
	deny := CheckOrigin(func(*http.Request) bool { return false })
	cross := func(r *http.Request) { r.Header.Set("Origin", "https://app.example") }
	cases := []struct {
		name   string
		opts   []Option
		edit   func(*http.Request)
		reason string // "" when allowed
	}{
		{name: "a CheckOrigin that allows lets a cross-origin request through, which the default refuses",
			opts: []Option{allow}, edit: cross},
		{name: "a CheckOrigin that refuses refuses a same-origin request, with the origin in the reason",
			opts: []Option{deny}, reason: `cooper: Origin: "https://example.com" refused by CheckOrigin`},
		{name: "a CheckOrigin is asked about a request without Origin, which the default allows",
			opts: []Option{deny}, edit: func(r *http.Request) { r.Header.Del("Origin") },
			reason: "cooper: Origin: none sent; CheckOrigin refused the request"},
		{name: "OriginPatterns that match do not allow what CheckOrigin refuses",
			opts: []Option{OriginPatterns("app.example"), deny}, edit: cross,
			reason: `cooper: Origin: "https://app.example" refused by CheckOrigin`},
		{name: "OriginPatterns given after CheckOrigin do not allow what it refuses either",
			opts: []Option{deny, OriginPatterns("app.example")}, edit: cross,
			reason: `cooper: Origin: "https://app.example" refused by CheckOrigin`},
		{name: "InsecureSkipOriginCheck does not allow what CheckOrigin refuses",
			opts:   []Option{InsecureSkipOriginCheck(), deny},
			reason: `cooper: Origin: "https://example.com" refused by CheckOrigin`},
		{name: "OriginPatterns that do not match do not refuse what CheckOrigin allows",
			opts: []Option{OriginPatterns("other.example"), allow}, edit: cross},
		{name: "CheckOrigin sees the request: an allow-list of its own",
			opts:   []Option{CheckOrigin(func(r *http.Request) bool { return r.Header.Get("Origin") == "https://app.example" })},
			edit:   func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") },
			reason: `cooper: Origin: "https://evil.example" refused by CheckOrigin`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newConfig(append([]Option{Protocols("websocket")}, tc.opts...))
			r := hookRequest()
			if tc.edit != nil {
				tc.edit(r)
			}
			_, rej := validate(r, c)
			switch {
			case tc.reason == "" && rej != nil:
				t.Fatalf("validate refused: %v", rej)
			case tc.reason == "":
			case rej == nil:
				t.Fatalf("validate allowed the request, want %q", tc.reason)
			case rej.Status != http.StatusForbidden || !errors.Is(rej, ErrOrigin) || rej.Error() != tc.reason:
				t.Fatalf("validate = %d %v, want 403 ErrOrigin %q", rej.Status, rej, tc.reason)
			}
		})
	}
}

// TestCheckOriginAfterValidation checks that CheckOrigin is asked only
// about a valid upgrade request, as its doc says: a request refused by an
// earlier check keeps that refusal, and the function never sees it.
func TestCheckOriginAfterValidation(t *testing.T) {
	called := false
	c := newConfig([]Option{Protocols("websocket"), CheckOrigin(func(*http.Request) bool { called = true; return false })})
	r := hookRequest()
	r.Header.Set("Sec-Websocket-Version", "8")
	_, rej := validate(r, c)
	if rej == nil || !errors.Is(rej, ErrWebSocketVersion) {
		t.Errorf("validate = %v, want the ErrWebSocketVersion refusal", rej)
	}
	if called {
		t.Error("CheckOrigin was called for a request that is not a valid upgrade")
	}
}

// TestSelectSubprotocol checks that a SelectSubprotocol function gets every
// offered subprotocol in the client's order, that its choice is agreed, and
// that a choice the client did not offer is refused with 500 rather than
// sent.
func TestSelectSubprotocol(t *testing.T) {
	cases := []struct {
		name    string
		opts    []Option
		edit    func(*http.Request)
		choose  string   // what the function returns
		offered []string // what it must be given; nil: it must not be called
		sub     string   // agreed
		status  int      // when refused
		err     error
		reason  string
	}{
		{name: "the function's choice among the offers is agreed, not the client's first",
			choose: "c", offered: []string{"a", "b", "c"}, sub: "c"},
		{name: "an empty choice agrees on no subprotocol",
			choose: "", offered: []string{"a", "b", "c"}},
		{name: "Subprotocols has no effect once a function is set",
			opts: []Option{Subprotocols("a")}, choose: "", offered: []string{"a", "b", "c"}},
		{name: "a request that offers none is asked about, with nothing offered",
			edit: func(r *http.Request) { r.Header.Del("Sec-Websocket-Protocol") }, choose: "", offered: []string{}},
		{name: "a choice the client did not offer is refused with 500, never sent",
			choose: "d", offered: []string{"a", "b", "c"}, status: 500, err: ErrResponseHeader,
			reason: `cooper: Sec-WebSocket-Protocol: SelectSubprotocol chose "d", which the client did not offer ("a, b, c")`},
		{name: "an offer is matched byte for byte: another case was not offered",
			choose: "A", offered: []string{"a", "b", "c"}, status: 500, err: ErrResponseHeader,
			reason: `cooper: Sec-WebSocket-Protocol: SelectSubprotocol chose "A", which the client did not offer ("a, b, c")`},
		{name: "a malformed offer is refused with 400 before the function is asked",
			edit: func(r *http.Request) { r.Header.Set("Sec-Websocket-Protocol", "a b") }, status: 400, err: ErrMalformedHeader,
			reason: `cooper: Sec-WebSocket-Protocol: "a b" is not a valid list`},
		{name: "a protocol other than websocket has no subprotocol to choose",
			opts: []Option{Protocols("websocket", "lines/1")},
			edit: func(r *http.Request) { r.Header.Set("Upgrade", "lines/1") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			called := false
			opts := append([]Option{Protocols("websocket")}, tc.opts...)
			c := newConfig(append(opts, SelectSubprotocol(func(r *http.Request, offered []string) string {
				called, got = true, offered
				return tc.choose
			})))
			r := hookRequest()
			if tc.edit != nil {
				tc.edit(r)
			}
			d, rej := validate(r, c)
			if rej != nil {
				t.Fatalf("validate refused: %v", rej)
			}
			d, rej = negotiate(r, c, d)
			if called != (tc.offered != nil) || called && !slices.Equal(got, tc.offered) {
				t.Errorf("the function was called %v with %q, want called %v with %q", called, got, tc.offered != nil, tc.offered)
			}
			if tc.status == 0 {
				if rej != nil || d.subprotocol != tc.sub {
					t.Fatalf("negotiate = %q, %v, want %q agreed", d.subprotocol, rej, tc.sub)
				}
				return
			}
			if rej == nil || rej.Status != tc.status || !errors.Is(rej, tc.err) || rej.Error() != tc.reason {
				t.Fatalf("negotiate = %q, %v, want %d %v %q", d.subprotocol, rej, tc.status, tc.err, tc.reason)
			}
		})
	}
}

// TestHookAllocs checks the allocation budget of the hooks: a CheckOrigin
// function costs validate and negotiate nothing, and neither does a
// SelectSubprotocol option that is not set (TestNegotiateAllocs); one that
// is set costs one allocation, the offered slice it is given.
func TestHookAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	c := newConfig([]Option{Protocols("websocket"), Subprotocols("c"), CheckOrigin(func(r *http.Request) bool { return true })})
	r := hookRequest()
	n := testing.AllocsPerRun(100, func() {
		d, rej := validate(r, c)
		if n, rej2 := negotiate(r, c, d); rej != nil || rej2 != nil || n.subprotocol != "c" {
			t.Fatal("the request was refused or the subprotocol not agreed")
		}
	})
	if n != 0 {
		t.Errorf("validate and negotiate with CheckOrigin allocate %v times, want 0", n)
	}

	c = newConfig([]Option{Protocols("websocket"), SelectSubprotocol(func(r *http.Request, offered []string) string {
		return offered[len(offered)-1]
	})})
	n = testing.AllocsPerRun(100, func() {
		d, rej := validate(r, c)
		if n, rej2 := negotiate(r, c, d); rej != nil || rej2 != nil || n.subprotocol != "c" {
			t.Fatal("the request was refused or the subprotocol not agreed")
		}
	})
	if n != 1 {
		t.Errorf("validate and negotiate with SelectSubprotocol allocate %v times, want 1: the offered slice", n)
	}
}

// TestResponseHeadersReasons checks that a header ResponseHeaders may not
// set is refused with a reason naming what to use instead.
func TestResponseHeadersReasons(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
		reason string
	}{
		{"Sec-WebSocket-Protocol points to SelectSubprotocol and Subprotocols",
			http.Header{"Sec-Websocket-Protocol": {"chat"}},
			`cooper: ResponseHeaders: "Sec-Websocket-Protocol" is negotiated by cooper: choose it with SelectSubprotocol or Subprotocols`},
		{"Sec-WebSocket-Extensions points to Deflate",
			http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}},
			`cooper: ResponseHeaders: "Sec-Websocket-Extensions" is negotiated by cooper: turn permessage-deflate on with Deflate`},
		{"Content-Length says a 101 has no body",
			http.Header{"content-length": {"0"}},
			`cooper: ResponseHeaders: "content-length" cannot be sent in a 101, which has no body (RFC 9110, section 8.6)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := New(Protocols("websocket"), ResponseHeaders(func(*http.Request, string) http.Header { return tc.header }))
			_, rej := u.responseHeaders(hookRequest(), "websocket")
			if rej == nil || rej.Status != 500 || !errors.Is(rej, ErrResponseHeader) || rej.Error() != tc.reason {
				t.Fatalf("responseHeaders = %v, want 500 ErrResponseHeader %q", rej, tc.reason)
			}
		})
	}
}

// hijackRefuser is a middleware's ResponseWriter whose Hijack says it
// cannot.
type hijackRefuser struct{ http.ResponseWriter }

func (hijackRefuser) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}

// A delegatingWriter, as an adapter's, hijacks through the chain beneath
// it, which it can also unwrap.
type delegatingWriter struct{ http.ResponseWriter }

func (w delegatingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w delegatingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// TestUnhijackableReasons checks that the 500 for a ResponseWriter chain
// that cannot be hijacked names the writer that stopped it and the fix,
// with real servers and real middleware.
func TestUnhijackableReasons(t *testing.T) {
	const fix = " cannot be hijacked: give it an Unwrap() http.ResponseWriter method that returns the writer it wraps, or a Hijack method"
	for _, tc := range []struct {
		name   string
		wrap   func(http.Handler) http.Handler
		reason string
	}{
		{"a middleware writer without Unwrap is named, with the fix",
			func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(opaqueWriter{w}, r) })
			},
			"cooper: hijack: cooper.opaqueWriter" + fix},
		{"the writer that ends a chain of Unwrap methods is named",
			func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					h.ServeHTTP(&unwrapOnly{&opaqueWriter{w}}, r)
				})
			},
			"cooper: hijack: *cooper.opaqueWriter" + fix},
		{"a writer that hijacks through the chain beneath it, as an adapter's, is looked past",
			func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					h.ServeHTTP(delegatingWriter{&unwrapOnly{&opaqueWriter{w}}}, r)
				})
			},
			"cooper: hijack: *cooper.opaqueWriter" + fix},
		{"http.TimeoutHandler is named, with the way around it",
			func(h http.Handler) http.Handler { return http.TimeoutHandler(h, time.Minute, "timeout") },
			"cooper: hijack: *http.timeoutWriter of http.TimeoutHandler cannot be hijacked: serve the upgrade route outside http.TimeoutHandler, and bound the connection with deadlines or the handler's context"},
		{"a writer whose Hijack refuses is named with its error",
			func(h http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					h.ServeHTTP(&unwrapOnly{hijackRefuser{w}}, r)
				})
			},
			"cooper: hijack: cooper.hijackRefuser.Hijack: feature not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := make(chan error, 1)
			u := New(Protocols("websocket"), OnError(func(err error) { errs <- err }))
			s := newServer(t, h1, tc.wrap(u.Handler(func(conn net.Conn, hs *Handshake) { conn.Close() })))
			resp, body, _, _ := s.roundTrip(t, s.wsRequest(), "")
			if resp.StatusCode != http.StatusInternalServerError || body != tc.reason+"\n" {
				t.Fatalf("answer: %d %q, want 500 %q", resp.StatusCode, body, tc.reason)
			}
			err := wait(t, errs, "error reported to OnError")
			if !errors.Is(err, ErrHijackFailed) || !errors.Is(err, http.ErrNotSupported) || err.Error() != tc.reason {
				t.Errorf("OnError got %v, want %q matching ErrHijackFailed and http.ErrNotSupported", err, tc.reason)
			}
		})
	}
}

// TestRefusalHandler checks that a RefusalHandler writes every kind of
// refusal, finding the headers the RFCs require already set, that the
// status is the refusal's, that OnError is still told, and that nothing is
// taken over.
func TestRefusalHandler(t *testing.T) {
	type seen struct {
		header http.Header
		status int
		err    error
	}
	cases := []struct {
		name   string
		wrap   bool // serve through a writer that cannot be hijacked
		edit   func(*http.Request)
		status int
		header http.Header // required on the refusal
		err    error
	}{
		{name: "a version refusal gets Sec-WebSocket-Version, Upgrade and Connection before the handler writes",
			edit:   func(r *http.Request) { r.Header.Set("Sec-Websocket-Version", "8") },
			status: 426, header: http.Header{"Sec-Websocket-Version": {"13"}, "Upgrade": {"websocket"}, "Connection": {"Upgrade"}}, err: ErrWebSocketVersion},
		{name: "a method refusal gets Allow before the handler writes",
			edit: func(r *http.Request) { r.Method = "POST" }, status: 405, header: http.Header{"Allow": {"GET"}}, err: ErrMethod},
		{name: "a cross-origin refusal is written by the handler",
			edit: func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") }, status: 403, err: ErrOrigin},
		{name: "a writer that cannot be hijacked is refused through the handler too",
			wrap: true, status: 500, err: ErrHijackFailed},
	}
	run(t, func(t *testing.T, m mode) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				seenc := make(chan seen, 1)
				errs := make(chan error, 1)
				u := New(Protocols("websocket"), OnError(func(err error) { errs <- err }),
					RefusalHandler(func(w http.ResponseWriter, r *http.Request, err *UpgradeError) {
						seenc <- seen{w.Header().Clone(), err.Status, err}
						w.Header().Set("Content-Type", "application/json")
						w.WriteHeader(err.Status)
						json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
					}))
				var h http.Handler = u.Handler(func(conn net.Conn, hs *Handshake) { conn.Close() })
				if tc.wrap {
					inner := h
					h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { inner.ServeHTTP(opaqueWriter{w}, r) })
				}
				s := newServer(t, m, h)
				r := s.wsRequest()
				if tc.edit != nil {
					tc.edit(r)
				}
				resp, body, _, _ := s.roundTrip(t, r, "")
				got := wait(t, seenc, "RefusalHandler call")
				if got.status != tc.status || !errors.Is(got.err, tc.err) {
					t.Errorf("RefusalHandler got %d %v, want %d matching %v", got.status, got.err, tc.status, tc.err)
				}
				checkHeader(t, got.header, tc.header)
				var answer struct{ Error string }
				if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" ||
					json.Unmarshal([]byte(body), &answer) != nil || answer.Error != got.err.Error() {
					t.Errorf("answer: %d %s %q, want %d with the handler's JSON", resp.StatusCode, resp.Header.Get("Content-Type"), body, tc.status)
				}
				for k, v := range tc.header {
					if g := resp.Header.Values(k); strings.Join(g, ", ") != strings.Join(v, ", ") {
						t.Errorf("answer's %s = %q, want %q", k, g, v)
					}
				}
				if err := wait(t, errs, "error reported to OnError"); err != got.err {
					t.Errorf("OnError got %v, want the refusal the handler got", err)
				}
				if n := s.hijacked.Load(); n != 0 {
					t.Errorf("%d connections were taken over, want 0", n)
				}
			})
		}
	})
}

// TestHooksEndToEnd runs the three hooks on a real server: a request that
// CheckOrigin allows and whose subprotocol SelectSubprotocol picks is
// upgraded with that subprotocol.
func TestHooksEndToEnd(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		u := New(Protocols("websocket"),
			CheckOrigin(func(r *http.Request) bool { return r.Header.Get("Origin") == "https://app.example" }),
			SelectSubprotocol(func(r *http.Request, offered []string) string { return offered[len(offered)-1] }),
			RefusalHandler(func(w http.ResponseWriter, r *http.Request, err *UpgradeError) {
				http.Error(w, "refused", err.Status)
			}))
		handled := make(chan *Handshake, 1)
		s := newServer(t, m, u.Handler(func(conn net.Conn, hs *Handshake) {
			defer conn.Close()
			handled <- hs
			io.Copy(conn, conn)
		}))
		t.Cleanup(func() { u.Shutdown(context.Background()) })
		r := s.wsRequest()
		r.Header.Set("Origin", "https://app.example")
		r.Header.Set("Sec-Websocket-Protocol", "v1, v2")
		resp, _, c, br := s.roundTrip(t, r, "")
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-Websocket-Protocol") != "v2" {
			t.Fatalf("answer %d with Sec-WebSocket-Protocol %q, want 101 with v2", resp.StatusCode, resp.Header.Get("Sec-Websocket-Protocol"))
		}
		if hs := wait(t, handled, "handler call"); hs.Subprotocol != "v2" {
			t.Errorf("Handshake.Subprotocol = %q, want v2", hs.Subprotocol)
		}
		echo(t, c, br, "hooked")
		c.Close()

		r = s.wsRequest() // same-origin, which the function does not allow
		resp, body, _, _ := s.roundTrip(t, r, "")
		if resp.StatusCode != http.StatusForbidden || body != "refused\n" {
			t.Errorf("a same-origin request: %d %q, want 403 \"refused\"", resp.StatusCode, body)
		}
	})
}
