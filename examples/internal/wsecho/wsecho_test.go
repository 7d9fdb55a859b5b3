package wsecho_test

import (
	"bytes"
	"compress/flate"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/wsecho"
	"lowbit.dev/cooper/examples/internal/wstest"
	"lowbit.dev/cooper/internal/testkit"
)

func TestMain(m *testing.M) { wstest.Main(m) }

// An endpoint is Serve behind cooper on a loopback server.
type endpoint struct {
	url    string
	u      *cooper.Upgrader
	served chan error // what Serve returned, once per connection
}

// serve starts Serve on a loopback server with testkit.Serve, whose
// Upgrader negotiates permessage-deflate under policy; the server and the
// Upgrader are shut down when the test ends.
func serve(t *testing.T, policy cooper.DeflateParams, prefix string) *endpoint {
	t.Helper()
	e := &endpoint{served: make(chan error, 8)}
	srv := testkit.Serve(t, []cooper.Option{cooper.Deflate(policy)}, func(u *cooper.Upgrader) http.Handler {
		return u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			e.served <- wsecho.Serve(conn, hs, prefix)
		})
	})
	e.url, e.u = "ws"+strings.TrimPrefix(srv.URL, "http"), srv.U
	return e
}

// A client is a gobwas/ws client that writes and reads raw frames.
type client struct {
	conn      net.Conn
	r         io.Reader
	hs        ws.Handshake
	sentClose bool
}

// dial connects to url, offering permessage-deflate without context
// takeover when deflate is set.
func dial(t *testing.T, url string, deflate bool) *client {
	t.Helper()
	d := ws.Dialer{Timeout: 5 * time.Second}
	if deflate {
		d.Extensions = []httphead.Option{wsflate.DefaultParameters.Option()}
	}
	conn, br, hs, err := d.Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &client{conn: conn, r: conn, hs: hs}
	if br != nil {
		c.r = br
	}
	return c
}

// send writes f, masked, as a client must.
func (c *client) send(t *testing.T, f ws.Frame) {
	t.Helper()
	c.sentClose = c.sentClose || f.Header.OpCode == ws.OpClose
	if err := ws.WriteFrame(c.conn, ws.MaskFrameInPlace(f)); err != nil {
		t.Fatal(err)
	}
}

// read reads the next frame from the server.
func (c *client) read(t *testing.T) ws.Frame {
	t.Helper()
	f, err := ws.ReadFrame(c.r)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// closed reads frames until a close frame, answers it unless it answers
// the client's, and closes the connection, as a client ends the closing
// handshake; it returns the server's close code.
func (c *client) closed(t *testing.T) ws.StatusCode {
	t.Helper()
	for {
		f := c.read(t)
		if f.Header.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			if !c.sentClose {
				c.send(t, ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
			}
			c.conn.Close()
			return code
		}
	}
}

// compressed returns p compressed as one permessage-deflate message.
func compressed(t *testing.T, p []byte) []byte {
	t.Helper()
	f, err := wsflate.CompressFrame(ws.NewBinaryFrame(p))
	if err != nil {
		t.Fatal(err)
	}
	return f.Payload
}

func TestFragmentedMessageWithPing(t *testing.T) {
	e := serve(t, wsecho.Deflate, "> ")
	c := dial(t, e.url, false)
	c.send(t, ws.NewFrame(ws.OpText, false, []byte("hel")))
	c.send(t, ws.NewPingFrame([]byte("are you there")))
	c.send(t, ws.NewFrame(ws.OpContinuation, true, []byte("lo")))

	if f := c.read(t); f.Header.OpCode != ws.OpPong || string(f.Payload) != "are you there" {
		t.Errorf("first frame = %v %q, want the pong", f.Header.OpCode, f.Payload)
	}
	if f := c.read(t); f.Header.OpCode != ws.OpText || string(f.Payload) != "> hello" || f.Header.Rsv1() {
		t.Errorf("second frame = %v %q, RSV1 %t; want the echo, uncompressed", f.Header.OpCode, f.Payload, f.Header.Rsv1())
	}
}

func TestDeflate(t *testing.T) {
	e := serve(t, wsecho.Deflate, "> ")
	c := dial(t, e.url, true)
	if len(c.hs.Extensions) != 1 || string(c.hs.Extensions[0].Name) != "permessage-deflate" {
		t.Fatalf("agreed extensions %v, want permessage-deflate", c.hs.Extensions)
	}
	msg := bytes.Repeat([]byte("compress me "), 100)
	for _, compress := range []bool{true, false, true} {
		f := ws.NewBinaryFrame(bytes.Clone(msg))
		if compress {
			f = ws.NewBinaryFrame(compressed(t, msg))
			f.Header.Rsv = ws.Rsv(true, false, false)
		}
		c.send(t, f)
		got := c.read(t)
		if !got.Header.Rsv1() {
			t.Fatal("the echo has RSV1 clear; want it compressed")
		}
		if len(got.Payload) >= len(msg) {
			t.Errorf("the compressed echo has %d bytes for a %d-byte message", len(got.Payload), len(msg))
		}
		got, err := wsflate.DecompressFrame(got)
		if err != nil {
			t.Fatal(err)
		}
		if want := "> " + string(msg); string(got.Payload) != want {
			t.Fatalf("echo = %.40q…, want %.40q…", got.Payload, want)
		}
	}
}

func TestClose(t *testing.T) {
	tests := []struct {
		name    string
		deflate bool
		frame   func(t *testing.T) ws.Frame
		want    ws.StatusCode
		clean   bool // Serve returns nil
	}{
		{"the client's close is answered", false, func(*testing.T) ws.Frame {
			return ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"))
		}, ws.StatusNormalClosure, true},
		{"text that is not UTF-8 gets 1007", false, func(*testing.T) ws.Frame {
			return ws.NewTextFrame([]byte{'a', 0xff})
		}, ws.StatusInvalidFramePayloadData, false},
		{"RSV1 without deflate gets 1002", false, func(*testing.T) ws.Frame {
			f := ws.NewTextFrame([]byte("x"))
			f.Header.Rsv = ws.Rsv(true, false, false)
			return f
		}, ws.StatusProtocolError, false},
		{"a message over the limit gets 1009", false, func(*testing.T) ws.Frame {
			return ws.NewBinaryFrame(make([]byte, wsecho.MaxMessageSize+1))
		}, ws.StatusMessageTooBig, false},
		{"a message over the limit once decompressed gets 1009", true, func(t *testing.T) ws.Frame {
			f := ws.NewBinaryFrame(compressed(t, make([]byte, wsecho.MaxMessageSize+1)))
			f.Header.Rsv = ws.Rsv(true, false, false)
			return f
		}, ws.StatusMessageTooBig, false},
		{"a corrupt compressed message gets 1007", true, func(t *testing.T) ws.Frame {
			f := ws.NewBinaryFrame([]byte{0xff, 0xff, 0xff, 0xff})
			f.Header.Rsv = ws.Rsv(true, false, false)
			return f
		}, ws.StatusInvalidFramePayloadData, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := serve(t, wsecho.Deflate, "")
			c := dial(t, e.url, tt.deflate)
			c.send(t, tt.frame(t))
			if got := c.closed(t); got != tt.want {
				t.Errorf("close code = %d, want %d", got, tt.want)
			}
			if err := testkit.Recv(t, e.served); (err == nil) != tt.clean {
				t.Errorf("Serve returned %v", err)
			}
		})
	}
}

func TestShutdownSaysGoodbye(t *testing.T) {
	e := serve(t, wsecho.Deflate, "")
	c := dial(t, e.url, false)
	c.send(t, ws.NewTextFrame([]byte("hi")))
	c.read(t)
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shutdown <- e.u.Shutdown(ctx)
	}()
	if got := c.closed(t); got != ws.StatusGoingAway {
		t.Errorf("close code = %d, want 1001", got)
	}
	if err := testkit.Recv(t, e.served); err != nil {
		t.Errorf("Serve returned %v", err)
	}
	if err := testkit.Recv(t, shutdown); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestContextTakeover checks that Serve keeps its compression context
// across messages both ways when the client asks for it: the client's
// second message refers back into its first, and the echo does too.
func TestContextTakeover(t *testing.T) {
	e := serve(t, wsecho.Deflate, "")
	d := ws.Dialer{Timeout: 5 * time.Second, Extensions: []httphead.Option{wsflate.Parameters{}.Option()}}
	conn, br, _, err := d.Dial(context.Background(), e.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &client{conn: conn, r: conn}
	if br != nil {
		c.r = br
	}
	const tail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff" // RFC 7692, section 7.2.2, and a final block
	var out bytes.Buffer
	fw, _ := flate.NewWriter(&out, flate.BestSpeed)
	msg := bytes.Repeat([]byte("keep the context, "), 100)
	var window []byte
	for i := range 2 {
		out.Reset()
		fw.Write(msg)
		fw.Flush()
		f := ws.NewBinaryFrame(bytes.Clone(bytes.TrimSuffix(out.Bytes(), []byte(tail[:4]))))
		f.Header.Rsv = ws.Rsv(true, false, false)
		c.send(t, f)
		got := c.read(t)
		if _, err := io.ReadAll(flate.NewReader(io.MultiReader(bytes.NewReader(got.Payload), strings.NewReader(tail)))); i == 1 && err == nil {
			t.Errorf("the second echo decompresses on its own; want it to refer back into the first")
		}
		p, err := io.ReadAll(flate.NewReaderDict(io.MultiReader(bytes.NewReader(got.Payload), strings.NewReader(tail)), window))
		if err != nil || !bytes.Equal(p, msg) {
			t.Fatalf("echo %d decompresses to %d bytes, %v; want the %d sent", i, len(p), err, len(msg))
		}
		window = append(window, p...)
	}
}

// TestClientGoesAway checks that a client that closes the connection
// between messages, without a closing handshake, ends Serve without an
// error.
func TestClientGoesAway(t *testing.T) {
	e := serve(t, wsecho.Deflate, "")
	c := dial(t, e.url, false)
	c.send(t, ws.NewTextFrame([]byte("bye")))
	c.read(t)
	c.conn.Close()
	if err := testkit.Recv(t, e.served); err != nil {
		t.Errorf("Serve returned %v", err)
	}
}
