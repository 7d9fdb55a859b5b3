package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"

	"lowbit.dev/cooper/examples/internal/wstest"
)

// TestMain runs the tests in a process started with GODEBUG=http2xconnect=1,
// as main does, starting the test binary again with it when needed.
func TestMain(m *testing.M) {
	if extendedConnectOn() {
		wstest.Main(m)
		return
	}
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), "GODEBUG="+os.Getenv("GODEBUG")+",http2xconnect=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.ExitCode())
	case err != nil:
		panic(err)
	}
}

// server is the example running in this process with its own certificate.
type server struct {
	url   string // https://127.0.0.1:port
	out   *wstest.Output
	roots *x509.CertPool
	stop  func() error
}

// start runs the example on a free loopback port, as main does with a
// self-signed certificate, until the test ends.
func start(t *testing.T) *server {
	t.Helper()
	cert, err := selfSigned()
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	s := &server{out: &wstest.Output{}, roots: x509.NewCertPool()}
	s.roots.AddCert(leaf)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, "127.0.0.1:0", cert, s.out) }()
	s.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("run did not return within 10 s of its context's end")
		}
	})
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	s.out.WaitFor(t, `(?m)^listening on https://127\.0\.0\.1:[1-9][0-9]*$`)
	s.url = regexp.MustCompile(`https://\S+`).FindString(s.out.String())
	return s
}

// connect opens a WebSocket to /ws over HTTP/2, as Chromium does against a
// server that announces extended CONNECT, with golang.org/x/net/http2's
// client. It returns the response and the stream.
func (s *server) connect(t *testing.T) (*http.Response, io.ReadWriter) {
	t.Helper()
	tr := &http2.Transport{TLSClientConfig: &tls.Config{RootCAs: s.roots}}
	t.Cleanup(tr.CloseIdleConnections)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodConnect, s.url+"/ws", pr)
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Origin", s.url)
	req.Header.Set("Sec-WebSocket-Protocol", wstest.Subprotocol)
	// wsflate's frame helpers compress and decompress every message on its
	// own, so the client asks both sides not to keep context.
	req.Header.Set("Sec-WebSocket-Extensions", "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("extended CONNECT: %v", err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, struct {
		io.Reader
		io.Writer
	}{resp.Body, pw}
}

func TestWebSocketOverHTTP2(t *testing.T) {
	s := start(t)
	resp, stream := s.connect(t)
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("extended CONNECT answered %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != wstest.Subprotocol {
		t.Errorf("Sec-WebSocket-Protocol: %q, want %q", p, wstest.Subprotocol)
	}
	if e := resp.Header.Get("Sec-WebSocket-Extensions"); e != "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15" {
		t.Errorf("Sec-WebSocket-Extensions: %q", e)
	}
	s.out.WaitFor(t, `websocket over HTTP/2\.0 \(extended CONNECT\) from 127\.0\.0\.1:`)

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
	s := start(t)
	d := websocket.Dialer{
		HandshakeTimeout: 5 * time.Second,
		TLSClientConfig:  &tls.Config{RootCAs: s.roots},
		Subprotocols:     []string{wstest.Subprotocol},
	}
	conn, _, err := d.Dial("wss"+s.url[len("https"):]+"/ws", nil)
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
	s.out.WaitFor(t, `websocket over HTTP/1\.1 \(upgrade\) from 127\.0\.0\.1:`)
}

// TestShutdown stops the example with a WebSocket open over HTTP/2: the
// client is told goodbye (1001), answers it as a browser does, and run
// returns nil.
func TestShutdown(t *testing.T) {
	s := start(t)
	_, stream := s.connect(t)
	s.out.WaitFor(t, `extended CONNECT`)
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	f, err := ws.ReadFrame(bufio.NewReader(stream))
	if err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("during the shutdown: %v, %v; want a close frame", f.Header.OpCode, err)
	}
	if code, _ := ws.ParseCloseFrameData(f.Payload); code != ws.StatusGoingAway {
		t.Errorf("close code %d, want 1001", code)
	}
	ws.WriteFrame(stream, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, ""))))
	if err := wstest.Recv(t, stopped); err != nil {
		t.Errorf("run returned %v", err)
	}
}
