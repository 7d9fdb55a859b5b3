package cooper

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestHostileRequests sends requests built to hurt a parser: huge values,
// thousands of list elements, control and non-ASCII bytes, duplicates and
// absurd numbers. Each gets its expected status, a refusal is never taken
// over, and its reason stays one short line.
func TestHostileRequests(t *testing.T) {
	many := func(elem string, n int) string { return strings.TrimSuffix(strings.Repeat(elem+", ", n), ", ") }
	cases := []struct {
		name   string
		edit   func(r *http.Request)
		status int
	}{
		{"ten thousand Connection elements before upgrade are read",
			func(r *http.Request) { r.Header.Set("Connection", many("keep-alive", 10000)+", upgrade") }, 101},
		{"ten thousand empty list elements are ignored",
			func(r *http.Request) { r.Header.Set("Upgrade", strings.Repeat(",", 10000)+"websocket") }, 101},
		{"ten thousand subprotocols without a match upgrade without one",
			func(r *http.Request) { r.Header.Set("Sec-Websocket-Protocol", many("x", 10000)) }, 101},
		{"ten thousand extension offers are each declined or ignored",
			func(r *http.Request) {
				r.Header.Set("Sec-Websocket-Extensions", many("permessage-deflate; server_max_window_bits=8", 5000)+", "+many("foo; bar=1", 5000))
			}, 101},
		{"a 500 KB Upgrade value is refused with 426",
			func(r *http.Request) { r.Header.Set("Upgrade", strings.Repeat("x", 500<<10)) }, 426},
		{"a 500 KB Origin is refused with 403",
			func(r *http.Request) { r.Header.Set("Origin", "https://"+strings.Repeat("a", 500<<10)) }, 403},
		{"a 500 KB key is refused with 400",
			func(r *http.Request) { r.Header.Set("Sec-Websocket-Key", strings.Repeat("A", 500<<10)) }, 400},
		{"a key padded with 100 KB of spaces is trimmed and accepted",
			func(r *http.Request) { r.Header.Set("Sec-Websocket-Key", strings.Repeat(" ", 100<<10)+testKey) }, 101},
		{"an absurd window value declines the offer and upgrades without it",
			func(r *http.Request) {
				r.Header.Set("Sec-Websocket-Extensions", "permessage-deflate; client_max_window_bits=99999999999999999999999")
			}, 101},
		{"a negative window value declines the offer",
			func(r *http.Request) {
				r.Header.Set("Sec-Websocket-Extensions", "permessage-deflate; client_max_window_bits=-15")
			}, 101},
		{"a KELVIN SIGN in Upgrade is refused with 400",
			func(r *http.Request) { r.Header.Set("Upgrade", "websoc\u212Aet") }, 400},
		{"a KELVIN SIGN in Connection is refused with 400",
			func(r *http.Request) { r.Header.Set("Connection", "upgrad\u212A") }, 400},
		{"non-ASCII bytes in a subprotocol are refused with 400",
			func(r *http.Request) { r.Header.Set("Sec-Websocket-Protocol", "ch\xffat") }, 400},
		{"a control byte in Upgrade is refused",
			func(r *http.Request) { r.Header.Set("Upgrade", "web\x01socket") }, 400},
		{"a NUL in the key is refused",
			func(r *http.Request) { r.Header.Set("Sec-Websocket-Key", "dGhlIHNhbXBsZSBub25j\x00Q==") }, 400},
		{"Upgrade on three lines, websocket on the last, is accepted",
			func(r *http.Request) { r.Header["Upgrade"] = []string{"a", "b", "websocket"} }, 101},
		{"fifty Sec-WebSocket-Key lines are refused with 400",
			func(r *http.Request) { r.Header["Sec-Websocket-Key"] = slicesRepeat(testKey, 50) }, 400},
		{"fifty Origin lines are refused with 403",
			func(r *http.Request) { r.Header["Origin"] = slicesRepeat(r.Header.Get("Origin"), 50) }, 403},
		{"a version of a thousand digits is refused with 426",
			func(r *http.Request) { r.Header.Set("Sec-Websocket-Version", strings.Repeat("1", 1000)) }, 426},
		{"an HTTP/1.1 request without Host is refused with 400",
			func(r *http.Request) { r.Host = "" }, 400},
		{"two Host lines are refused with 400",
			func(r *http.Request) { r.Header["Host"] = []string{r.Host} }, 400},
	}
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"), Subprotocols("chat"), Deflate(DeflateParams{}))
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := f.hijacked.Load()
				r := f.wsRequest()
				tc.edit(r)
				resp, body, c, br := f.roundTrip(t, r, "")
				if resp.StatusCode != tc.status {
					t.Fatalf("status = %d, want %d (body %.200q)", resp.StatusCode, tc.status, body)
				}
				if tc.status == http.StatusSwitchingProtocols {
					wait(t, f.handled, "handler call")
					echo(t, c, br, "still a connection")
					return
				}
				if len(body) > 300 || strings.Count(body, "\n") > 1 {
					t.Errorf("reason of %d bytes on %d lines, want one short line", len(body), strings.Count(body, "\n"))
				}
				if f.hijacked.Load() != before {
					t.Error("a refused connection was taken over")
				}
				none(t, f.handled, "handler call")
				// net/http refuses some of these before cooper sees them.
				select {
				case <-f.errs:
				default:
				}
			})
		}
	})
}

func slicesRepeat(s string, n int) []string {
	v := make([]string, n)
	for i := range v {
		v[i] = s
	}
	return v
}

// FuzzUpgradeRequest feeds arbitrary bytes to a real server as a request:
// nothing panics, every response is a 101 with valid headers or a 4xx/5xx,
// and a connection is taken over exactly when a 101 is answered.
func FuzzUpgradeRequest(f *testing.F) {
	valid := "GET /ws HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, s := range []string{
		valid + "\r\n",
		valid + "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\nearly",
		valid + "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, permessage-deflate\r\n\r\n",
		valid + "Content-Length: 3\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + valid + "\r\n",
		"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
		"POST /ws HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websoc\u212Aet\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
		"\x00\xff garbage",
	} {
		f.Add([]byte(s))
	}
	s := &testServer{mode: h1}
	var handled = make(chan struct{}, 1024)
	u := New(Protocols("websocket"), Subprotocols("chat"), Deflate(DeflateParams{}))
	var panics atomic.Int32
	s.Server = newFuzzServer(f, s, u.Handler(func(conn net.Conn, hs *Handshake) {
		conn.Close()
		select {
		case handled <- struct{}{}:
		default:
		}
	}), &panics)
	f.Fuzz(func(t *testing.T, raw []byte) {
		before := s.hijacked.Load()
		c, err := net.DialTimeout("tcp", s.host(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(raw)
		c.(*net.TCPConn).CloseWrite()
		// The requests net/http will read, to know each one's key.
		reqs := bufio.NewReader(bytes.NewReader(raw))
		br := bufio.NewReader(c)
		upgraded := int32(0)
		for upgraded == 0 {
			req, _ := http.ReadRequest(reqs)
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("the server neither answered nor closed within 5 s")
				}
				break // the server closed the connection
			}
			switch {
			case resp.StatusCode == http.StatusSwitchingProtocols:
				upgraded = 1
				checkAnswer(t, req, resp)
			case resp.StatusCode >= 400:
				io.Copy(io.Discard, resp.Body)
			default:
				t.Fatalf("status %d, want 101 or an error status", resp.StatusCode)
			}
		}
		if upgraded == 1 {
			<-handled
		}
		if got := s.hijacked.Load() - before; got != upgraded {
			t.Fatalf("%d connections taken over after %d 101s", got, upgraded)
		}
		if panics.Load() > 0 {
			t.Fatal("the server panicked")
		}
	})
}

// checkAnswer checks a 101 that answered req.
func checkAnswer(t *testing.T, req *http.Request, resp *http.Response) {
	t.Helper()
	if req == nil {
		t.Fatal("a 101 answered bytes that are not a request")
	}
	if !tokenEqual(resp.Header.Get("Upgrade"), "websocket") || resp.Header.Get("Connection") != "Upgrade" {
		t.Fatalf("101 with Upgrade %q, Connection %q", resp.Header.Get("Upgrade"), resp.Header.Get("Connection"))
	}
	if got, want := resp.Header.Get("Sec-Websocket-Accept"), AcceptKey(req.Header.Get("Sec-Websocket-Key")); got != want {
		t.Fatalf("Sec-WebSocket-Accept = %q, want %q", got, want)
	}
	if p := resp.Header.Values("Sec-Websocket-Protocol"); len(p) > 1 || len(p) == 1 && p[0] != "chat" {
		t.Fatalf("Sec-WebSocket-Protocol = %q, want nothing or chat", p)
	}
	if e := resp.Header.Get("Sec-Websocket-Extensions"); e != "" {
		if elems, ok := refParseExtensions(e); !ok || len(elems) != 1 || elems[0].name != "permessage-deflate" {
			t.Fatalf("Sec-WebSocket-Extensions = %q, want one permessage-deflate", e)
		}
	}
}

// newFuzzServer starts h for a fuzz target, counting take-overs in s and
// panics net/http recovered in panics, and stops it when the target ends.
func newFuzzServer(f *testing.F, s *testServer, h http.Handler, panics *atomic.Int32) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateHijacked {
			s.hijacked.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(panicWatch{panics}, "", 0)
	srv.Start()
	f.Cleanup(srv.Close)
	return srv
}

// panicWatch counts the log lines of net/http that report a panic.
type panicWatch struct{ n *atomic.Int32 }

func (w panicWatch) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("panic")) {
		w.n.Add(1)
	}
	return len(p), nil
}

// Reference grammar for FuzzOrigin: RFC 6454's serialized origin, scheme
// "://" host [":" port], with nothing after the host.
var refOrigin = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#@\\\x00-\x20\x7f-\x{10FFFF}\x{FFFD}]+)$`)

// FuzzOrigin checks the Origin parser against the reference grammar, and
// that an origin always matches its own host.
func FuzzOrigin(f *testing.F) {
	for _, s := range []string{"https://example.com", "http://127.0.0.1:8080", "null", "localhost:13000", "https://a@b", "https://[::1]:443", "HTTPS://X", "https://", "://x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		scheme, host, ok := parseOrigin(s)
		m := refOrigin.FindStringSubmatch(s)
		if ok != (m != nil) || ok && (scheme != m[1] || host != m[2]) {
			t.Fatalf("parseOrigin(%q) = %q, %q, %v; reference says %q", s, scheme, host, ok, m)
		}
		if ok && !sameHost(scheme, host, host) {
			t.Fatalf("origin %q does not match its own host", s)
		}
	})
}
