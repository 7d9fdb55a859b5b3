package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gorilla/websocket"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"lowbit.dev/cooper/examples/internal/wsecho"
	"lowbit.dev/cooper/examples/internal/wstest"
)

func TestMain(m *testing.M) { wstest.MainExtendedConnect(m) }

// connectH3 opens a WebSocket to /ws over HTTP/3 with quic-go's client, as
// Chromium does with EnableWebsocketsOverHttp3 (RFC 9220), offering
// permessage-deflate when deflate is set. It returns the answer and the
// stream; the test's cleanup closes the QUIC connection.
func connectH3(t *testing.T, e *wstest.Example, deflate bool) (*http.Response, *http3.RequestStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	qc, err := quic.DialAddr(ctx, e.Addr, &tls.Config{RootCAs: e.Roots, NextProtos: []string{http3.NextProtoH3}}, nil)
	if err != nil {
		t.Fatalf("dialing QUIC: %v", err)
	}
	t.Cleanup(func() { qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "") })
	cc := (&http3.Transport{}).NewClientConn(qc)
	select {
	case <-cc.ReceivedSettings():
	case <-ctx.Done():
		t.Fatal("no SETTINGS in 10 s")
	}
	str, err := cc.OpenRequestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &http.Request{
		Method: http.MethodConnect,
		Proto:  "websocket",
		URL:    &url.URL{Scheme: "https", Host: e.Addr, Path: "/ws"},
		Host:   e.Addr,
		Header: http.Header{
			"Sec-Websocket-Version":  {"13"},
			"Origin":                 {e.URL},
			"Sec-Websocket-Protocol": {wstest.Subprotocol},
		},
	}
	if deflate {
		// wsflate's frame helpers compress and decompress every message on
		// its own, so the client asks both sides not to keep context.
		req.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits")
	}
	if err := str.SendRequestHeader(req); err != nil {
		t.Fatal(err)
	}
	str.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := str.ReadResponse()
	if err != nil {
		t.Fatalf("extended CONNECT over HTTP/3: %v", err)
	}
	str.SetDeadline(time.Now().Add(30 * time.Second))
	return resp, str
}

// TestWebSocketOverHTTP3 opens WebSockets over HTTP/3, with and without
// permessage-deflate, and exchanges text and binary messages of a few
// bytes and of 1 MiB (the echo's limit), then closes with 1000.
func TestWebSocketOverHTTP3(t *testing.T) {
	e := wstest.StartTLS(t, run)
	for _, deflate := range []bool{true, false} {
		name := "without permessage-deflate"
		if deflate {
			name = "with permessage-deflate"
		}
		t.Run(name, func(t *testing.T) {
			resp, str := connectH3(t, e, deflate)
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 {
				t.Fatalf("extended CONNECT answered %s over %s, want 200 over HTTP/3", resp.Status, resp.Proto)
			}
			if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != wstest.Subprotocol {
				t.Errorf("Sec-WebSocket-Protocol: %q, want %q", p, wstest.Subprotocol)
			}
			wantExt := ""
			if deflate {
				wantExt = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15"
			}
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != wantExt {
				t.Errorf("Sec-WebSocket-Extensions: %q, want %q", ext, wantExt)
			}

			br := bufio.NewReader(str)
			large := bytes.Repeat([]byte("over one stream of a QUIC connection. "), wsecho.MaxMessageSize/38)
			large = append(large, bytes.Repeat([]byte("!"), wsecho.MaxMessageSize-len(large))...)
			for _, op := range []ws.OpCode{ws.OpText, ws.OpBinary} {
				for _, msg := range [][]byte{[]byte("héllo over HTTP/3"), large} {
					f := ws.NewFrame(op, true, bytes.Clone(msg))
					if deflate {
						f, _ = wsflate.CompressFrame(f)
					}
					if err := ws.WriteFrame(str, ws.MaskFrameInPlace(f)); err != nil {
						t.Fatal(err)
					}
					gotOp, got, compressed, err := readMessage(br)
					if err != nil {
						t.Fatalf("reading the echo of %d bytes: %v", len(msg), err)
					}
					if compressed != deflate {
						t.Errorf("the echo is compressed: %t, want %t", compressed, deflate)
					}
					if gotOp != op || !bytes.Equal(got, msg) {
						t.Fatalf("echo of %d bytes = %v, %d bytes; want %v and the same bytes", len(msg), gotOp, len(got), op)
					}
				}
			}

			closing := ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "done"))
			ws.WriteFrame(str, ws.MaskFrameInPlace(closing))
			f, err := ws.ReadFrame(br)
			if err != nil || f.Header.OpCode != ws.OpClose {
				t.Fatalf("after the client's close: %v, %v; want the server's close", f.Header.OpCode, err)
			}
			if code, _ := ws.ParseCloseFrameData(f.Payload); code != ws.StatusNormalClosure {
				t.Errorf("close code %d, want 1000", code)
			}
			if _, err := br.ReadByte(); err != io.EOF {
				t.Errorf("after the closing handshake: %v, want the end of the stream", err)
			}
		})
	}
	if n := strings.Count(e.Out.String(), "websocket over HTTP/3.0 (extended CONNECT) from 127.0.0.1:"); n != 2 {
		t.Errorf("the example printed %d WebSockets over HTTP/3, want 2:\n%s", n, e.Out)
	}
}

// readMessage reads the frames of one message from the server and returns
// its opcode and payload, decompressed when its first frame says it is
// compressed (RFC 7692, section 6).
func readMessage(br *bufio.Reader) (ws.OpCode, []byte, bool, error) {
	first, err := ws.ReadFrame(br)
	if err != nil {
		return 0, nil, false, err
	}
	msg := first
	for f := first; !f.Header.Fin; {
		if f, err = ws.ReadFrame(br); err != nil {
			return 0, nil, false, err
		}
		msg.Payload = append(msg.Payload, f.Payload...)
	}
	msg.Header.Fin, msg.Header.Length = true, int64(len(msg.Payload))
	compressed, _ := wsflate.IsCompressed(first.Header)
	if compressed {
		if msg, err = wsflate.DecompressFrame(msg); err != nil {
			return 0, nil, true, err
		}
	}
	return first.Header.OpCode, msg.Payload, compressed, nil
}

// TestAltSvc checks that a page loaded over TCP announces HTTP/3 on the
// same port (RFC 7838), as a browser needs to switch to it.
func TestAltSvc(t *testing.T) {
	e := wstest.StartTLS(t, run)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.Roots}, ForceAttemptHTTP2: true}}
	defer c.CloseIdleConnections()
	resp, err := c.Get(e.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(e.Addr)
	if a := resp.Header.Get("Alt-Svc"); resp.StatusCode != http.StatusOK || a != `h3=":`+port+`"; ma=86400` {
		t.Errorf("GET / over %s: %s, Alt-Svc %q; want 200 with h3 on port %s", resp.Proto, resp.Status, a, port)
	}
}

// TestWebSocketOverTCP checks the two other ways in on the same port:
// HTTP/2 with extended CONNECT (golang.org/x/net/http2's client) and
// HTTP/1.1 (gorilla/websocket).
func TestWebSocketOverTCP(t *testing.T) {
	e := wstest.StartTLS(t, run)
	t.Run("HTTP/2", func(t *testing.T) {
		resp, stream := e.ConnectH2(t, nil)
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
			t.Fatalf("extended CONNECT answered %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
		}
		ws.WriteFrame(stream, ws.MaskFrameInPlace(ws.NewTextFrame([]byte("over HTTP/2"))))
		if f, err := ws.ReadFrame(stream); err != nil || string(f.Payload) != "over HTTP/2" {
			t.Fatalf("echo = %q, %v", f.Payload, err)
		}
		e.Out.WaitFor(t, `websocket over HTTP/2\.0 \(extended CONNECT\) from 127\.0\.0\.1:`)
	})
	t.Run("HTTP/1.1", func(t *testing.T) {
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: e.Roots}}
		conn, _, err := d.Dial("wss://"+e.Addr+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		conn.WriteMessage(websocket.TextMessage, []byte("over HTTP/1.1"))
		if _, got, err := conn.ReadMessage(); err != nil || string(got) != "over HTTP/1.1" {
			t.Fatalf("echo = %q, %v", got, err)
		}
		e.Out.WaitFor(t, `websocket over HTTP/1\.1 \(upgrade\) from 127\.0\.0\.1:`)
	})
}

// TestShutdown stops the example with a WebSocket open over HTTP/3: the
// client is told goodbye (1001), answers it as a browser does, and run
// returns nil.
func TestShutdown(t *testing.T) {
	e := wstest.StartTLS(t, run)
	_, str := connectH3(t, e, false)
	e.Out.WaitFor(t, `HTTP/3\.0 \(extended CONNECT\)`)
	wstest.CheckStreamShutdown(t, e, str)
}

// TestSPKIPin checks the pin the example prints is the base64 SHA-256 of
// its certificate's public key, which Chromium's
// --ignore-certificate-errors-spki-list takes.
func TestSPKIPin(t *testing.T) {
	e := wstest.StartTLS(t, run)
	m := regexp.MustCompile(`(?m)^certificate SPKI pin: ([A-Za-z0-9+/]{43}=)$`).FindStringSubmatch(e.Out.String())
	if m == nil {
		t.Fatalf("no pin line in:\n%s", e.Out)
	}
	conn, err := tls.Dial("tcp", e.Addr, &tls.Config{RootCAs: e.Roots})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	if pin := base64.StdEncoding.EncodeToString(sum[:]); pin != m[1] {
		t.Errorf("printed pin %s, the served certificate's is %s", m[1], pin)
	}
	if !strings.Contains(e.Out.String(), "--ignore-certificate-errors-spki-list="+m[1]) {
		t.Errorf("the Chromium command does not carry the pin:\n%s", e.Out)
	}
}
