// Package wstest runs the examples in-process, as their main functions do,
// and checks them over loopback with clients cooper did not write:
// gorilla/websocket and gobwas/ws.
package wstest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gorilla/websocket"
	"lowbit.dev/cooper/examples/internal/serve"
	"lowbit.dev/cooper/examples/internal/tlsserve"
	"lowbit.dev/cooper/internal/testkit"
)

// Subprotocol is the subprotocol the examples speak and the clients offer.
const Subprotocol = "echo.v1"

// Main runs the tests and fails the run when one leaves a goroutine of
// cooper's, an example's, or net/http's behind.
func Main(m *testing.M) { testkit.Main(m, "main.") }

// MainExtendedConnect is Main for an example served over HTTPS: it runs
// the tests in a process started with GODEBUG=http2xconnect=1, as the
// example's main does, starting the test binary again with it when needed
// (see tlsserve.ExtendedConnect).
func MainExtendedConnect(m *testing.M) {
	tlsserve.ExtendedConnect()
	Main(m)
}

// An Example is an example's run function, running in-process.
type Example struct {
	URL   string         // http://127.0.0.1:port or https://, from the "listening on" line
	Addr  string         // 127.0.0.1:port
	Out   *Output        // what run wrote to its out
	Roots *x509.CertPool // with StartTLS, what trusts the example's certificate
	stop  func() error
}

// Start calls run as the example's main does, but on a free loopback port,
// and waits for the line it prints first, when ready, "listening on
// http://ADDR". The example is stopped when the test ends.
func Start(t *testing.T, run serve.Run) *Example {
	t.Helper()
	return start(t, run, "http", true)
}

// StartTLS is Start for an example served over HTTPS, which main passes a
// certificate: run gets a self-signed one, which e.Roots trusts, and may
// print other lines before "listening on https://ADDR".
func StartTLS(t *testing.T, run tlsserve.Run) *Example {
	t.Helper()
	cert, err := tlsserve.SelfSigned("cooper example under test")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, func(ctx context.Context, addr string, out io.Writer) error {
		return run(ctx, addr, cert, out)
	}, "https", false)
	e.Roots = x509.NewCertPool()
	e.Roots.AddCert(leaf)
	return e
}

// start runs the example and waits up to 5 s for its line "listening on
// SCHEME://ADDR", the first line it prints if first is set.
func start(t *testing.T, run serve.Run, scheme string, first bool) *Example {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e := &Example{Out: &Output{}}
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", e.Out) }()
	e.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("run did not return within 10 s of its context's end")
		}
	})
	// Last: the connections the tests' http.Get calls left idle.
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})

	listening := regexp.MustCompile(`(?m)^listening on (` + scheme + `://(127\.0\.0\.1:[1-9][0-9]*))$`)
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := e.Out.String()
		if line, _, ok := strings.Cut(out, "\n"); ok && first && !listening.MatchString(line) {
			t.Fatalf("first line %q, want listening on %s://127.0.0.1:PORT", line, scheme)
		}
		if m := listening.FindStringSubmatch(out); m != nil {
			e.URL, e.Addr = m[1], m[2]
			return e
		}
		select {
		case err := <-done:
			t.Fatalf("run returned %v before it was ready", err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no listening line from run in 5 s; it wrote %q", out)
		}
	}
}

// WS returns the ws:// (or wss://) URL of path on the example.
func (e *Example) WS(path string) string {
	return "ws" + strings.TrimPrefix(e.URL, "http") + path
}

// Stop ends run's context and returns what run returned, waiting 10 s at
// most. Calling it more than once is safe.
func (e *Example) Stop() error { return e.stop() }

// An Output is what an example writes, safe to read while it writes.
type Output struct{ buf testkit.LockedBuffer }

func (o *Output) Write(p []byte) (int, error) { return o.buf.Write(p) }

func (o *Output) String() string { return o.buf.String() }

// WaitFor waits up to 5 s for the output to match the regular expression.
func (o *Output) WaitFor(t *testing.T, expr string) {
	t.Helper()
	re := regexp.MustCompile(expr)
	deadline := time.Now().Add(5 * time.Second)
	for !re.MatchString(o.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("output does not match %s:\n%s", expr, o.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// messages are what the checks send: text and binary, empty, small and
// larger than a frame buffer, compressible and not.
func messages(t *testing.T) []struct {
	typ  int
	data []byte
} {
	t.Helper()
	random := make([]byte, 100<<10)
	rand.Read(random)
	return []struct {
		typ  int
		data []byte
	}{
		{websocket.TextMessage, []byte("hello, cooper")},
		{websocket.TextMessage, []byte("héllo, wörld ✓")},
		{websocket.TextMessage, nil},
		{websocket.BinaryMessage, []byte{0, 1, 2, 0xfe, 0xff}},
		{websocket.TextMessage, bytes.Repeat([]byte("a larger, compressible message "), 2000)},
		{websocket.BinaryMessage, random},
	}
}

// CheckEcho connects to url with gorilla/websocket's Dialer, with or
// without permessage-deflate, and checks the handshake, that every message
// comes back after prefix with its type, and the closing handshake.
func CheckEcho(t *testing.T, url string, compress bool, prefix string) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, EnableCompression: compress, Subprotocols: []string{Subprotocol}}
	conn, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if conn.Subprotocol() != Subprotocol {
		t.Errorf("subprotocol %q, want %q", conn.Subprotocol(), Subprotocol)
	}
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	if want := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"; compress && ext != want {
		t.Errorf("Sec-WebSocket-Extensions: %q, want %q", ext, want)
	} else if !compress && ext != "" {
		t.Errorf("Sec-WebSocket-Extensions: %q, want none", ext)
	}

	for _, m := range messages(t) {
		if err := conn.WriteMessage(m.typ, m.data); err != nil {
			t.Fatal(err)
		}
		typ, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("reading the echo of %.20q: %v", m.data, err)
		}
		if want := append([]byte(prefix), m.data...); typ != m.typ || !bytes.Equal(got, want) {
			t.Errorf("echo = type %d %.40q (%d bytes), want type %d %.40q (%d bytes)", typ, got, len(got), m.typ, want, len(want))
		}
	}

	err = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		t.Errorf("after the client's close, read = %v; want the server's close 1000", err)
	}
}

// CheckClients runs CheckEcho, without and with compression, and
// CheckCompressed, as subtests, against e's WebSocket at /ws; with rooms
// set, each against a room of its own at /rooms/ROOM/ws, where the echo
// comes after "ROOM: ".
func CheckClients(t *testing.T, e *Example, rooms bool) {
	t.Helper()
	for _, c := range []struct {
		name, room string
		check      func(t *testing.T, url, prefix string)
	}{
		{"gorilla without compression", "lobby", func(t *testing.T, url, prefix string) { CheckEcho(t, url, false, prefix) }},
		{"gorilla with compression", "kitchen", func(t *testing.T, url, prefix string) { CheckEcho(t, url, true, prefix) }},
		{"gobwas sees compressed frames", "attic", CheckCompressed},
	} {
		url, prefix := e.WS("/ws"), ""
		if rooms {
			url, prefix = e.WS("/rooms/"+c.room+"/ws"), c.room+": "
		}
		t.Run(c.name, func(t *testing.T) { c.check(t, url, prefix) })
	}
}

// OnlyListening matches the output of an example that wrote nothing but
// its "listening on" line, for [CheckEchoExample].
const OnlyListening = `\Alistening on http://\S+\n\z`

// CheckEchoExample runs the checks every example that serves the echo at
// /ws passes, each as a subtest on an example of its own started with
// Start: "echo", CheckClients at /ws, after which what run wrote must match
// the regular expression out; with rooms set, "rooms", CheckClients at
// /rooms/ROOM/ws; and "shutdown", CheckShutdown, at /rooms/lobby/ws with
// rooms set and /ws without.
func CheckEchoExample(t *testing.T, run serve.Run, rooms bool, out string) {
	t.Helper()
	t.Run("echo", func(t *testing.T) {
		e := Start(t, run)
		CheckClients(t, e, false)
		e.Out.WaitFor(t, out)
	})
	path := "/ws"
	if rooms {
		t.Run("rooms", func(t *testing.T) { CheckClients(t, Start(t, run), true) })
		path = "/rooms/lobby/ws"
	}
	t.Run("shutdown", func(t *testing.T) {
		e := Start(t, run)
		CheckShutdown(t, e, e.WS(path))
	})
}

// CheckPage gets / from e and checks that it is an HTML page that holds
// every string in want.
func CheckPage(t *testing.T, e *Example, want ...string) {
	t.Helper()
	resp, err := http.Get(e.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET / = %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, w := range want {
		if !strings.Contains(string(body), w) {
			t.Errorf("the page has no %s", w)
		}
	}
}

// CheckCompressed connects to url with gobwas/ws, agrees on
// permessage-deflate, sends compressed text and binary messages and checks
// that each comes back after prefix, compressed: its frame has RSV1 set.
func CheckCompressed(t *testing.T, url, prefix string) {
	t.Helper()
	d := ws.Dialer{
		Timeout:    5 * time.Second,
		Protocols:  []string{Subprotocol},
		Extensions: []httphead.Option{wsflate.DefaultParameters.Option()},
	}
	conn, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	var r io.Reader = conn
	if br != nil {
		r = br
	}
	if hs.Protocol != Subprotocol {
		t.Errorf("subprotocol %q, want %q", hs.Protocol, Subprotocol)
	}
	var agreed wsflate.Parameters
	if len(hs.Extensions) != 1 || agreed.Parse(hs.Extensions[0]) != nil || agreed != wsflate.DefaultParameters {
		t.Fatalf("extensions %v, want permessage-deflate without context takeover", hs.Extensions)
	}

	msg := []byte(strings.Repeat("compressible ", 500))
	for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary} {
		f, err := wsflate.CompressFrame(ws.NewFrame(op, true, msg))
		if err != nil {
			t.Fatal(err)
		}
		if err := ws.WriteFrame(conn, ws.MaskFrameInPlace(f)); err != nil {
			t.Fatal(err)
		}
		got, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Header.Rsv1() || got.Header.OpCode != op || !got.Header.Fin {
			t.Fatalf("echo frame: RSV1 %t, op %v, fin %t; want a whole compressed %v message", got.Header.Rsv1(), got.Header.OpCode, got.Header.Fin, op)
		}
		if got, err = wsflate.DecompressFrame(got); err != nil {
			t.Fatal(err)
		}
		if want := prefix + string(msg); string(got.Payload) != want {
			t.Errorf("echo = %.40q…, want %.40q…", got.Payload, want)
		}
	}

	closing := ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	if err := ws.WriteFrame(conn, ws.MaskFrameInPlace(closing)); err != nil {
		t.Fatal(err)
	}
	if got, err := ws.ReadFrame(r); err != nil || got.Header.OpCode != ws.OpClose {
		t.Errorf("after the client's close, read %v, %v; want the server's close", got.Header.OpCode, err)
	}
}

// CheckShutdown connects to url with gorilla/websocket, stops the example,
// and checks that the connection is told goodbye with close code 1001 and
// that run returns nil.
func CheckShutdown(t *testing.T, e *Example, url string) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{Subprotocol}}
	conn, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte("before the shutdown")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := conn.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- e.Stop() }()
	if _, _, err := conn.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("read during the shutdown = %v; want close 1001", err)
	}
	conn.Close() // gorilla has answered the close; the handshake is over
	if err := testkit.Recv(t, stopped); err != nil {
		t.Errorf("run returned %v after the shutdown", err)
	}
}

// ConnectH2 opens a WebSocket to /ws on an example started with StartTLS
// as an extended CONNECT over HTTP/2 (RFC 8441), with
// golang.org/x/net/http2's client, as Chromium does against a server that
// announces it, with header's fields besides :protocol and
// Sec-WebSocket-Version. It returns the response and the stream, which the
// test's cleanup closes; it fails the test when the request fails.
func (e *Example) ConnectH2(t *testing.T, header http.Header) (*http.Response, io.ReadWriter) {
	t.Helper()
	return testkit.ConnectH2(t, &tls.Config{RootCAs: e.Roots}, e.URL+"/ws", header)
}

// CheckStreamShutdown stops the example while stream, a WebSocket over
// HTTP/2 or HTTP/3, is open, and checks that the client is told goodbye
// (1001) and that, once it has answered the close as a browser does, run
// returns nil.
func CheckStreamShutdown(t *testing.T, e *Example, stream io.ReadWriter) {
	t.Helper()
	stopped := make(chan error, 1)
	go func() { stopped <- e.Stop() }()
	f, err := ws.ReadFrame(bufio.NewReader(stream))
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("during the shutdown: %v, %v; want a close frame", f.Header.OpCode, err)
	}
	if code, _ := ws.ParseCloseFrameData(f.Payload); code != ws.StatusGoingAway {
		t.Errorf("close code %d, want 1001", code)
	}
	ws.WriteFrame(stream, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, ""))))
	if err := testkit.Recv(t, stopped); err != nil {
		t.Errorf("run returned %v", err)
	}
}
