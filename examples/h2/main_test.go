package main

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gorilla/websocket"
	"lowbit.dev/cooper/examples/internal/wstest"
)

func TestMain(m *testing.M) { wstest.MainExtendedConnect(m) }

// connect opens a WebSocket to /ws over HTTP/2, as Chromium does against a
// server that announces extended CONNECT, offering the subprotocol and
// permessage-deflate.
func connect(t *testing.T, e *wstest.Example) (*http.Response, io.ReadWriter) {
	return e.ConnectH2(t, http.Header{
		"Origin":                 {e.URL},
		"Sec-Websocket-Protocol": {wstest.Subprotocol},
		// wsflate's frame helpers compress and decompress every message on
		// its own, so the client asks both sides not to keep context.
		"Sec-Websocket-Extensions": {"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits"},
	})
}

func TestWebSocketOverHTTP2(t *testing.T) {
	e := wstest.StartTLS(t, run)
	resp, stream := connect(t, e)
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("extended CONNECT answered %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != wstest.Subprotocol {
		t.Errorf("Sec-WebSocket-Protocol: %q, want %q", p, wstest.Subprotocol)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15" {
		t.Errorf("Sec-WebSocket-Extensions: %q", ext)
	}
	e.Out.WaitFor(t, `websocket over HTTP/2\.0 \(extended CONNECT\) from 127\.0\.0\.1:`)

	br := bufio.NewReader(stream)
	for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary} {
		msg := []byte("over one stream of the connection the page came on")
		f, _ := wsflate.CompressFrame(ws.NewFrame(op, true, append([]byte(nil), msg...)))
		if err := ws.WriteFrame(stream, ws.MaskFrameInPlace(f)); err != nil {
			t.Fatal(err)
		}
		got, err := ws.ReadFrame(br)
		if err != nil {
			t.Fatalf("reading the echo: %v", err)
		}
		if compressed, _ := wsflate.IsCompressed(got.Header); !compressed {
			t.Error("the echo is not compressed, although permessage-deflate was agreed")
		}
		if got, err = wsflate.DecompressFrame(got); err != nil || got.Header.OpCode != op || string(got.Payload) != string(msg) {
			t.Fatalf("echo = %v %q, %v; want %v %q", got.Header.OpCode, got.Payload, err, op, msg)
		}
	}

	closing := ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "done"))
	ws.WriteFrame(stream, ws.MaskFrameInPlace(closing))
	if f, err := ws.ReadFrame(br); err != nil || f.Header.OpCode != ws.OpClose {
		t.Errorf("after the client's close: %v, %v; want the server's close", f.Header.OpCode, err)
	}
}

// TestWebSocketOverHTTP1 checks the fallback a browser takes to a server
// that does not announce extended CONNECT, here with gorilla/websocket,
// which speaks only HTTP/1.1.
func TestWebSocketOverHTTP1(t *testing.T) {
	e := wstest.StartTLS(t, run)
	d := websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		TLSClientConfig:  &tls.Config{RootCAs: e.Roots},
		Subprotocols:     []string{wstest.Subprotocol},
	}
	conn, _, err := d.Dial(e.WS("/ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteMessage(websocket.TextMessage, []byte("over HTTP/1.1")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := conn.ReadMessage(); err != nil || string(got) != "over HTTP/1.1" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	e.Out.WaitFor(t, `websocket over HTTP/1\.1 \(upgrade\) from 127\.0\.0\.1:`)
}

// TestShutdown stops the example with a WebSocket open over HTTP/2: the
// client is told goodbye (1001), answers it as a browser does, and run
// returns nil.
func TestShutdown(t *testing.T) {
	e := wstest.StartTLS(t, run)
	_, stream := connect(t, e)
	e.Out.WaitFor(t, `extended CONNECT`)
	wstest.CheckStreamShutdown(t, e, stream)
}
