package cooperh3_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperh3"
	"lowbit.dev/cooper/internal/poll"
	"lowbit.dev/cooper/internal/testkit"
)

// A server is an http3.Server on a loopback UDP port serving
// cooperh3.Handler(h), with a certificate made for it.
type server struct {
	addr  *net.UDPAddr
	leaf  *x509.Certificate // the server's certificate
	roots *x509.CertPool    // trusts leaf
	stop  func() error      // closes the server; the error is Serve's, if not that it was closed
}

// startServer starts h behind cooperh3.Handler on a loopback UDP port, with
// a certificate made for it and quicConf for its QUIC connections if not
// nil. The server serves on a goroutine of its own until stop is called.
func startServer(h http.Handler, quicConf *quic.Config) (*server, error) {
	cert, leaf, err := makeCertificate()
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	srv := &http3.Server{
		Handler:    cooperh3.Handler(h),
		TLSConfig:  http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}),
		QUICConfig: quicConf,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(udp) }()
	s := &server{addr: udp.LocalAddr().(*net.UDPAddr), leaf: leaf, roots: x509.NewCertPool()}
	s.roots.AddCert(leaf)
	s.stop = func() error {
		srv.Close()
		err := <-served
		udp.Close()
		if errors.Is(err, http.ErrServerClosed) || errors.Is(err, quic.ErrServerClosed) {
			return nil
		}
		return err
	}
	return s, nil
}

// newServer starts h as startServer does; the test's cleanup stops it.
func newServer(t testing.TB, h http.Handler, quicConf *quic.Config) *server {
	t.Helper()
	s, err := startServer(h, quicConf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// makeCertificate makes a self-signed certificate for 127.0.0.1, valid for
// an hour.
func makeCertificate() (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cooperh3 test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, leaf, err
}

// A client is a QUIC connection to a server with quic-go's HTTP/3 client on
// it, on a UDP socket of its own.
type client struct {
	udp  *net.UDPConn
	qc   *quic.Conn
	conn *http3.ClientConn
}

// dial opens a QUIC connection to s and waits for the server's SETTINGS,
// which must announce extended CONNECT (RFC 9220, section 3). The test's
// cleanup closes it.
func (s *server) dial(t testing.TB) *client {
	t.Helper()
	return s.dialWith(t, nil)
}

// dialWith dials as dial does, with quicConf for the QUIC connection if
// not nil.
func (s *server) dialWith(t testing.TB, quicConf *quic.Config) *client {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &quic.Transport{Conn: udp}
	t.Cleanup(func() { tr.Close() })
	qc, err := tr.Dial(ctx, s.addr, &tls.Config{RootCAs: s.roots, NextProtos: []string{http3.NextProtoH3}}, quicConf)
	if err != nil {
		t.Fatalf("dialing QUIC: %v", err)
	}
	t.Cleanup(func() { qc.CloseWithError(0, "") })
	cc := (&http3.Transport{}).NewClientConn(qc)
	select {
	case <-cc.ReceivedSettings():
	case <-ctx.Done():
		t.Fatal("no SETTINGS from the server in 10 s")
	}
	if !cc.Settings().EnableExtendedConnect {
		t.Fatal("the server's SETTINGS do not enable extended CONNECT")
	}
	return &client{udp: udp, qc: qc, conn: cc}
}

// send opens a request stream and sends req's header on it, without
// waiting for the answer.
func (c *client) send(t testing.TB, req *http.Request) *http3.RequestStream {
	t.Helper()
	str := openStream(t, c.conn.OpenRequestStream)
	if err := str.SendRequestHeader(req); err != nil {
		t.Fatalf("sending the request: %v", err)
	}
	return str
}

// openStream opens a stream with open, waiting up to 10 s for the server
// to allow one more.
func openStream[S any](t testing.TB, open func(context.Context) (S, error)) S {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	str, err := open(ctx)
	if err != nil {
		t.Fatalf("opening a stream: %v", err)
	}
	return str
}

// roundTrip sends req on a stream of its own and reads the answer.
func (c *client) roundTrip(t testing.TB, req *http.Request) (*http.Response, *http3.RequestStream) {
	t.Helper()
	str := c.send(t, req)
	str.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := str.ReadResponse()
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	str.SetReadDeadline(time.Time{})
	return resp, str
}

// webSocketRequest is the extended CONNECT Chromium sends to open a
// WebSocket to path on s over HTTP/3 (RFC 9220), changed by edit if not
// nil.
func (s *server) webSocketRequest(path string, edit func(*http.Request)) *http.Request {
	req := &http.Request{
		Method: http.MethodConnect,
		Proto:  "websocket", // the :protocol, as quic-go's client takes it
		URL:    &url.URL{Scheme: "https", Host: s.addr.String(), Path: path},
		Host:   s.addr.String(),
		Header: http.Header{
			"Sec-Websocket-Version":    {"13"},
			"Origin":                   {"https://" + s.addr.String()},
			"Sec-Websocket-Protocol":   {"chat, superchat"},
			"Sec-Websocket-Extensions": {"permessage-deflate; client_max_window_bits"},
		},
	}
	if edit != nil {
		edit(req)
	}
	return req
}

// waitIdle waits up to 10 s for u to hold no connection.
func waitIdle(t *testing.T, u *cooper.Upgrader) {
	t.Helper()
	poll.Until(t, 10*time.Second, "Stats().Active to be 0", func() bool { return u.Stats().Active == 0 })
}

// recv receives from ch, waiting up to 10 s for what.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	return testkit.RecvWithin(t, ch, 10*time.Second, what)
}

// An upgraded is what a handler was given, with when its ServeHTTP had
// returned.
type upgraded struct {
	conn     net.Conn
	hs       *cooper.Handshake
	detached bool // ServeHTTP had returned when the handler read it
}

// TestWebSocketOverHTTP3 opens a WebSocket over HTTP/3 with quic-go's
// client: the Upgrader answers 200 with the agreed subprotocol and
// extension and no Sec-WebSocket-Accept (RFC 8441, section 5), the handler
// gets the stream with the QUIC connection's addresses and a Handshake
// whose request is HTTP/3 without a body, runs after ServeHTTP returned,
// and echoes 4 MiB each way; when the client ends its side, the handler's
// EOF ends the stream and the Upgrader holds nothing.
func TestWebSocketOverHTTP3(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"), cooper.Subprotocols("superchat", "chat"),
		cooper.Deflate(cooper.DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true}))
	got := make(chan upgraded, 1)
	served := make(chan struct{})
	handler := u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		select {
		case <-served:
			got <- upgraded{conn, hs, true}
		case <-time.After(10 * time.Second):
			got <- upgraded{conn, hs, false}
		}
		io.Copy(conn, conn)
	})
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.ServeHTTP(w, r)
		close(served)
	}), nil)
	c := s.dial(t)
	resp, str := c.roundTrip(t, s.webSocketRequest("/ws", nil))
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 3 {
		t.Fatalf("extended CONNECT answered %s over %s, want 200 over HTTP/3", resp.Status, resp.Proto)
	}
	for name, want := range map[string]string{
		"Sec-Websocket-Protocol":   "chat",
		"Sec-Websocket-Extensions": "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15",
		"Sec-Websocket-Accept":     "",
		"Upgrade":                  "",
		"Connection":               "",
	} {
		if v := resp.Header.Get(name); v != want {
			t.Errorf("%s: %q, want %q", name, v, want)
		}
	}

	up := recv(t, got, "handler call")
	if !up.detached {
		t.Error("the handler ran before ServeHTTP returned, want it on a goroutine of its own")
	}
	if r := up.hs.Request; r.ProtoMajor != 3 || r.Proto != "HTTP/3.0" || r.Method != http.MethodConnect || r.URL.Path != "/ws" {
		t.Errorf("Handshake.Request is %s %s %s (ProtoMajor %d), want CONNECT /ws HTTP/3.0 (3)", r.Method, r.URL.Path, r.Proto, r.ProtoMajor)
	}
	if b := up.hs.Request.Body; b != http.NoBody {
		t.Errorf("Handshake.Request.Body is %T, want http.NoBody: the stream belongs to the upgrade", b)
	}
	if up.hs.Subprotocol != "chat" || up.hs.Deflate == nil {
		t.Errorf("Handshake = %q, %+v; want chat with deflate", up.hs.Subprotocol, up.hs.Deflate)
	}
	if a := up.conn.RemoteAddr().String(); a != c.udp.LocalAddr().String() {
		t.Errorf("RemoteAddr() = %s, want the client's %s", a, c.udp.LocalAddr())
	}
	if a := up.conn.LocalAddr().String(); a != s.addr.String() {
		t.Errorf("LocalAddr() = %s, want the server's %s", a, s.addr)
	}
	if n := u.Stats().Active; n != 1 {
		t.Errorf("Stats().Active = %d while the handler runs, want 1", n)
	}

	sent := make([]byte, 4<<20)
	rand.Read(sent)
	wrote := make(chan error, 1)
	go func() {
		_, err := str.Write(sent)
		wrote <- errors.Join(err, str.Close())
	}()
	str.SetReadDeadline(time.Now().Add(20 * time.Second))
	echoed, err := io.ReadAll(str)
	if err != nil || !bytes.Equal(echoed, sent) {
		t.Errorf("echo: %d bytes (equal: %t), %v; want the 4 MiB sent and the end of the stream", len(echoed), bytes.Equal(echoed, sent), err)
	}
	if err := recv(t, wrote, "end of the write"); err != nil {
		t.Errorf("writing 4 MiB: %v", err)
	}
	waitIdle(t, u)
	if s := u.Stats(); s.Upgrades != 1 || s.Failures != 0 {
		t.Errorf("Stats() = %+v, want 1 upgrade, no failure", s)
	}
}

// TestRefusalsOverHTTP3 sends requests that must be refused over HTTP/3 as
// over HTTP/2 (RFC 9220, section 3; RFC 8441, sections 4 and 5): the
// status, the header the refusal carries, no Upgrade or Connection (RFC
// 9114, section 4.2), the sentinel, no handler call, and a clean end of
// the stream; and malformed requests, which the stream's reset refuses
// before the Upgrader sees them.
func TestRefusalsOverHTTP3(t *testing.T) {
	var mu sync.Mutex
	var reported []error
	u := cooper.New(cooper.Protocols("websocket"), cooper.OnError(func(err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
	}))
	handled := make(chan struct{}, 1)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		handled <- struct{}{}
		conn.Close()
	}), nil)
	c := s.dial(t)
	for _, tc := range []struct {
		name   string
		edit   func(*http.Request)
		status int
		header string // name: value the refusal must carry, if any
		err    error
	}{
		{"GET is refused with 405 and Allow: CONNECT", func(r *http.Request) { r.Method, r.Proto = http.MethodGet, "" },
			http.StatusMethodNotAllowed, "Allow: CONNECT", cooper.ErrMethod},
		{"CONNECT without :protocol is refused with 400", func(r *http.Request) { r.Proto, r.URL = "", &url.URL{Host: r.Host} },
			http.StatusBadRequest, "", cooper.ErrNotUpgrade},
		{"version 8 is refused with 400 and Sec-WebSocket-Version: 13", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") },
			http.StatusBadRequest, "Sec-Websocket-Version: 13", cooper.ErrWebSocketVersion},
		{"no version is refused with 400 and Sec-WebSocket-Version: 13", func(r *http.Request) { r.Header.Del("Sec-WebSocket-Version") },
			http.StatusBadRequest, "Sec-Websocket-Version: 13", cooper.ErrWebSocketVersion},
		{"version 13 sent twice is refused with 400 and Sec-WebSocket-Version: 13", func(r *http.Request) { r.Header["Sec-Websocket-Version"] = []string{"13", "13"} },
			http.StatusBadRequest, "Sec-Websocket-Version: 13", cooper.ErrWebSocketVersion},
		{"a version list with 13 in it is refused with 400 and Sec-WebSocket-Version: 13", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "13, 8") },
			http.StatusBadRequest, "Sec-Websocket-Version: 13", cooper.ErrWebSocketVersion},
		{"a malformed Sec-WebSocket-Protocol is refused with 400", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Protocol", "chat, super chat") },
			http.StatusBadRequest, "", cooper.ErrMalformedHeader},
		{"another origin is refused with 403", func(r *http.Request) { r.Header.Set("Origin", "https://attacker.example") },
			http.StatusForbidden, "", cooper.ErrOrigin},
		{"a protocol not configured is refused with 400", func(r *http.Request) { r.Proto = "myproto" },
			http.StatusBadRequest, "", cooper.ErrProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			reported = nil
			mu.Unlock()
			resp, str := c.roundTrip(t, s.webSocketRequest("/ws", tc.edit))
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			str.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadAll(resp.Body); err != nil {
				t.Errorf("the refusal does not end its stream cleanly: %v", err)
			}
			if tc.header != "" {
				name, value, _ := bytes.Cut([]byte(tc.header), []byte(": "))
				if v := resp.Header.Get(string(name)); v != string(value) {
					t.Errorf("%s: %q, want %q", name, v, value)
				}
			}
			for _, name := range []string{"Upgrade", "Connection"} {
				if v, ok := resp.Header[name]; ok {
					t.Errorf("the refusal carries %s: %q, which HTTP/3 forbids", name, v)
				}
			}
			mu.Lock()
			got := reported
			mu.Unlock()
			if len(got) != 1 || !errors.Is(got[0], tc.err) {
				t.Errorf("OnError got %v, want one error matching %v", got, tc.err)
			}
			select {
			case <-handled:
				t.Error("the handler was called")
			default:
			}
		})
	}

	// Malformed requests (RFC 9114, section 4.3.1; RFC 8441, section 4),
	// written by hand as quic-go's client would not write them: quic-go's
	// server resets the stream with H3_MESSAGE_ERROR (section 4.1.2) before
	// cooper sees the request, as net/http's HTTP/2 server resets one
	// (RST_STREAM) before an Upgrader sees it.
	without := func(name string) func([]qpack.HeaderField) []qpack.HeaderField {
		return func(f []qpack.HeaderField) []qpack.HeaderField {
			return slices.DeleteFunc(f, func(f qpack.HeaderField) bool { return f.Name == name })
		}
	}
	set := func(name, value string) func([]qpack.HeaderField) []qpack.HeaderField {
		return func(f []qpack.HeaderField) []qpack.HeaderField {
			for i := range f {
				if f[i].Name == name {
					f[i].Value = value
				}
			}
			return f
		}
	}
	mu.Lock()
	reported = nil
	mu.Unlock()
	for _, tc := range []struct {
		name string
		edit func([]qpack.HeaderField) []qpack.HeaderField
	}{
		{"without :path", without(":path")},
		{"without :authority", without(":authority")},
		{"without :scheme", without(":scheme")},
		{"with an empty :protocol, a CONNECT that must not have :path", set(":protocol", "")},
		{"with a :protocol that is not a token", set(":protocol", "web socket")},
		{"with :protocol twice", func(f []qpack.HeaderField) []qpack.HeaderField {
			return slices.Insert(f, 1, qpack.HeaderField{Name: ":protocol", Value: "websocket"})
		}},
		{"with a pseudo-header after a regular field", func(f []qpack.HeaderField) []qpack.HeaderField {
			return append(without(":path")(f), qpack.HeaderField{Name: ":path", Value: "/ws"})
		}},
		{"with an upper-case field name", func(f []qpack.HeaderField) []qpack.HeaderField {
			return append(f, qpack.HeaderField{Name: "Sec-WebSocket-Key", Value: "x"})
		}},
	} {
		t.Run("an extended CONNECT "+tc.name+" is reset", func(t *testing.T) {
			str := c.openRaw(t, s.webSocketFields(tc.edit), nil)
			defer str.CancelWrite(0)
			str.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := io.ReadAll(str)
			var se *quic.StreamError
			if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(http3.ErrCodeMessageError) {
				t.Errorf("reading the answer: %v, want a reset with H3_MESSAGE_ERROR", err)
			}
		})
	}
	select {
	case <-handled:
		t.Error("the handler was called for a malformed request")
	default:
	}
	mu.Lock()
	defer mu.Unlock()
	if st := u.Stats(); len(reported) != 0 || st.Active != 0 || st.Upgrades != 0 || st.Failures != 0 {
		t.Errorf("OnError got %v, Stats() = %+v after refusals; want no upgrade, none held, malformed requests unseen", reported, st)
	}
}

// TestBadExtensionOffersOverHTTP3 offers permessage-deflate in ways RFC
// 7692 does not allow: as over HTTP/1.1 and HTTP/2, the upgrade goes on
// without the extension (RFC 7692, section 5: a server declines an offer
// it cannot accept), with no Sec-WebSocket-Extensions in the 200 and no
// Deflate in the Handshake.
func TestBadExtensionOffersOverHTTP3(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"), cooper.Deflate(cooper.DeflateParams{}))
	deflate := make(chan *cooper.DeflateParams, 1)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		deflate <- hs.Deflate
		conn.Close()
	}), nil)
	c := s.dial(t)
	for _, tc := range []struct {
		offer  string
		agreed bool
	}{
		{"permessage-deflate", true}, // the offer the others spoil
		{"permessage-deflate; client_max_window_bits=99", false},
		{"permessage-deflate; server_no_context_takeover; server_no_context_takeover", false},
		{"permessage-deflate, a b", false},
		{`permessage-deflate; server_max_window_bits="1`, false},
	} {
		t.Run(tc.offer, func(t *testing.T) {
			resp, _ := c.roundTrip(t, s.webSocketRequest("/ws", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Extensions", tc.offer) }))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("answered %s, want 200", resp.Status)
			}
			_, answered := resp.Header["Sec-Websocket-Extensions"]
			d := recv(t, deflate, "handler call")
			if answered != tc.agreed || (d != nil) != tc.agreed {
				t.Errorf("Sec-WebSocket-Extensions %q, Handshake.Deflate %+v; want the extension agreed: %t", resp.Header.Get("Sec-WebSocket-Extensions"), d, tc.agreed)
			}
		})
	}
}

func TestHandlerPanicsOnNil(t *testing.T) {
	testkit.MustPanic(t, "Handler(nil)", func() { cooperh3.Handler(nil) })
}

// TestPlainRequestsPassThrough checks that Handler leaves requests other
// than an extended CONNECT as they came.
func TestPlainRequestsPassThrough(t *testing.T) {
	seen := make(chan *http.Request, 1)
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r
		io.WriteString(w, "page")
	}), nil)
	resp, _ := s.dial(t).roundTrip(t, &http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "https", Host: s.addr.String(), Path: "/"}, Header: http.Header{}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET / answered %s", resp.Status)
	}
	if r := recv(t, seen, "request"); r.Proto != "HTTP/3.0" || r.Header[":protocol"] != nil {
		t.Errorf("the handler got %s with :protocol %q, want HTTP/3.0 without", r.Proto, r.Header[":protocol"])
	}
}

// TestConnContract checks the handler's connection keeps the net.Conn
// contract: a deadline that passes fails a blocked Read with a timeout;
// SetDeadline sets both deadlines; Close ends a Read and a Write blocked on
// flow control, with net.ErrClosed, the Write by resetting the stream.
func TestConnContract(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	conns := make(chan net.Conn, 1)
	release := make(chan struct{})
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		conns <- conn
		<-release
	}), nil)
	t.Cleanup(func() { close(release) })

	t.Run("a read deadline that passes fails Read with a timeout", func(t *testing.T) {
		c := s.dial(t)
		c.roundTrip(t, s.webSocketRequest("/ws", nil))
		conn := recv(t, conns, "handler call")
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := conn.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read past the deadline: %v, want a timeout", err)
		}
	})

	t.Run("Close ends a blocked Read", func(t *testing.T) {
		c := s.dial(t)
		c.roundTrip(t, s.webSocketRequest("/ws", nil))
		conn := recv(t, conns, "handler call")
		read := make(chan error, 1)
		go func() {
			_, err := conn.Read(make([]byte, 1))
			read <- err
		}()
		time.Sleep(20 * time.Millisecond) // most often, Read is blocked by now
		conn.Close()
		if err := recv(t, read, "end of the Read"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Read blocked during Close: %v, want net.ErrClosed", err)
		}
	})

	t.Run("Close ends a Write blocked on flow control", func(t *testing.T) {
		c := s.dial(t)
		_, str := c.roundTrip(t, s.webSocketRequest("/ws", nil)) // the client reads only once the handler's Write is blocked
		conn := recv(t, conns, "handler call")
		wrote := writeAway(conn)
		select {
		case err := <-wrote:
			t.Fatalf("Write failed before Close: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
		conn.Close()
		if err := recv(t, wrote, "end of the Write"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write blocked during Close: %v, want net.ErrClosed", err)
		}
		str.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, str)
		var he *http3.Error
		if !errors.As(err, &he) || he.ErrorCode != http3.ErrCodeRequestCanceled || !he.Remote {
			t.Errorf("the client's read after Close: %v, want the server's reset with H3_REQUEST_CANCELLED (RFC 9220, section 4)", err)
		}
	})

	t.Run("SetDeadline sets the read and the write deadline", func(t *testing.T) {
		c := s.dial(t)
		c.roundTrip(t, s.webSocketRequest("/ws", nil)) // the client neither sends nor reads
		conn := recv(t, conns, "handler call")
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("Read past the deadline: %v, want a timeout", err)
		}
		wrote := writeAway(conn)
		select {
		case err := <-wrote:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("Write past the deadline: %v, want a timeout", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Write still blocked on flow control 10 s past the deadline")
			conn.Close()
			<-wrote
		}
	})
}

// TestPeerGoesAway makes the client reset its stream, close its QUIC
// connection, or vanish without a word (the server's idle timeout then
// ends the connection), during the handshake and during the exchange: the
// Upgrader must end up holding nothing.
func TestPeerGoesAway(t *testing.T) {
	for _, when := range []string{"during the handshake", "during the exchange"} {
		for _, how := range []struct {
			name string
			act  func(c *client, str *http3.RequestStream)
		}{
			{"resets the stream", func(c *client, str *http3.RequestStream) {
				str.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
				str.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
			}},
			{"closes the QUIC connection", func(c *client, str *http3.RequestStream) {
				c.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "bye")
			}},
			{"vanishes", func(c *client, str *http3.RequestStream) { c.udp.Close() }},
		} {
			t.Run("a client that "+how.name+" "+when, func(t *testing.T) {
				u := cooper.New(cooper.Protocols("websocket"))
				handler := u.Handler(testkit.Echo)
				inHandshake := make(chan int, 1) // Stats().Active there
				served := make(chan struct{})
				s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					defer close(served)
					if when == "during the handshake" {
						w = &stallingWriter{ResponseWriter: w, r: r, u: u, reached: inHandshake}
					}
					handler.ServeHTTP(w, r)
				}), &quic.Config{MaxIdleTimeout: time.Second})
				c := s.dial(t)
				str := c.send(t, s.webSocketRequest("/ws", nil))
				if when == "during the handshake" {
					if n := recv(t, inHandshake, "handshake"); n != 1 {
						t.Errorf("Stats().Active = %d during the handshake, want 1", n)
					}
					how.act(c, str)
				} else {
					str.SetReadDeadline(time.Now().Add(10 * time.Second))
					if resp, err := str.ReadResponse(); err != nil || resp.StatusCode != http.StatusOK {
						t.Fatalf("answer: %v, %v; want 200", resp, err)
					}
					str.Write([]byte("ping"))
					if _, err := io.ReadFull(str, make([]byte, 4)); err != nil {
						t.Fatalf("reading the echo: %v", err)
					}
					how.act(c, str)
				}
				recv(t, served, "return of ServeHTTP")
				waitIdle(t, u)
				if st := u.Stats(); st.Upgrades+st.Failures != 1 {
					t.Errorf("Stats() = %+v, want the upgrade counted as done or failed", st)
				}
			})
		}
	}
}

// A stallingWriter holds the 200 back, in the middle of the handshake,
// until the server has seen the client go away: then the Upgrader has
// taken the request in and answers a dead stream.
type stallingWriter struct {
	http.ResponseWriter
	r       *http.Request
	u       *cooper.Upgrader
	reached chan<- int
}

func (w *stallingWriter) WriteHeader(status int) {
	w.reached <- w.u.Stats().Active
	select {
	case <-w.r.Context().Done():
	case <-time.After(10 * time.Second):
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *stallingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestAcceptOverHTTP3 upgrades with Accept and keeps the stream after
// ServeHTTP returns, as over HTTP/1.1: it still echoes, and the Upgrader
// stops tracking it when ServeHTTP returns.
func TestAcceptOverHTTP3(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	returned := make(chan struct{})
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, hs, err := u.Accept(w, r)
		if err != nil {
			t.Errorf("Accept: %v", err)
			return
		}
		if hs.Request.ProtoMajor != 3 {
			t.Errorf("Handshake.Request over HTTP/%d, want 3", hs.Request.ProtoMajor)
		}
		go func() {
			defer conn.Close()
			<-returned
			io.Copy(conn, conn)
		}()
	}), nil)
	resp, str := s.dial(t).roundTrip(t, s.webSocketRequest("/ws", nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("extended CONNECT answered %s, want 200", resp.Status)
	}
	waitIdle(t, u)
	close(returned)
	str.SetDeadline(time.Now().Add(10 * time.Second))
	str.Write([]byte("after ServeHTTP"))
	str.Close()
	if got, err := io.ReadAll(str); string(got) != "after ServeHTTP" || err != nil {
		t.Errorf("echo after ServeHTTP returned: %q, %v", got, err)
	}
}

// A holdingWriter keeps WriteHeader to itself, as middleware that writes
// the status only with the first byte of the body does.
type holdingWriter struct {
	http.ResponseWriter
	status int
}

func (w *holdingWriter) WriteHeader(status int)      { w.status = status }
func (w *holdingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestMiddlewareHoldingTheAnswer checks that the 200 goes out when
// middleware between Handler and the Upgrader holds WriteHeader back: the
// stream is never handed over unanswered.
func TestMiddlewareHoldingTheAnswer(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	handler := u.Handler(testkit.Echo)
	s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.ServeHTTP(&holdingWriter{ResponseWriter: w}, r)
	}), nil)
	resp, str := s.dial(t).roundTrip(t, s.webSocketRequest("/ws", nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("extended CONNECT answered %s, want 200", resp.Status)
	}
	str.SetDeadline(time.Now().Add(10 * time.Second))
	str.Write([]byte("answered"))
	str.Close()
	if got, err := io.ReadAll(str); string(got) != "answered" || err != nil {
		t.Errorf("echo: %q, %v", got, err)
	}
}

// HTTP/3 frame types (RFC 9114, section 7.2).
const (
	frameData    = 0x0
	frameHeaders = 0x1
)

// appendFrame appends an HTTP/3 frame of type typ with payload p to b.
func appendFrame(b []byte, typ uint64, p []byte) []byte {
	b = quicvarint.Append(b, typ)
	b = quicvarint.Append(b, uint64(len(p)))
	return append(b, p...)
}

// webSocketFields is the header section of the extended CONNECT that
// opens a WebSocket to /ws on s (RFC 9220, section 3), field by field as a
// client encodes it, changed by edit if not nil.
func (s *server) webSocketFields(edit func([]qpack.HeaderField) []qpack.HeaderField) []qpack.HeaderField {
	fields := []qpack.HeaderField{
		{Name: ":method", Value: http.MethodConnect}, {Name: ":protocol", Value: "websocket"},
		{Name: ":scheme", Value: "https"}, {Name: ":authority", Value: s.addr.String()}, {Name: ":path", Value: "/ws"},
		{Name: "sec-websocket-version", Value: "13"}, {Name: "origin", Value: "https://" + s.addr.String()},
	}
	if edit != nil {
		fields = edit(fields)
	}
	return fields
}

// openRaw opens a request stream on c's QUIC connection behind quic-go's
// HTTP/3 client, and sends on it, written by hand, a HEADERS frame with
// fields and then the bytes of more, so that a test can frame the stream
// as quic-go's client never would. The answer is left unread.
func (c *client) openRaw(t *testing.T, fields []qpack.HeaderField, more []byte) *quic.Stream {
	t.Helper()
	str := openStream(t, c.qc.OpenStreamSync)
	var block bytes.Buffer
	enc := qpack.NewEncoder(&block)
	for _, f := range fields {
		enc.WriteField(f)
	}
	if _, err := str.Write(append(appendFrame(nil, frameHeaders, block.Bytes()), more...)); err != nil {
		t.Fatalf("sending the request: %v", err)
	}
	return str
}

// TestReadDeadlineInAFrame makes a read deadline pass while the handler's
// Read is inside a frame's header or inside a frame it skips: the timeout
// must lose nothing, so that once the deadline is lifted Read returns the
// next DATA frame's payload, as net.Conn's rule on deadlines asks.
func TestReadDeadlineInAFrame(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	conns := make(chan net.Conn, 1)
	release := make(chan struct{})
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		conns <- conn
		<-release
	}), nil)
	defer close(release)
	c := s.dial(t)
	for _, tc := range []struct {
		name         string
		before, rest []byte // sent before and after the deadline passes
	}{
		{"in a DATA frame's header", []byte{frameData}, []byte{5, 'w', 'o', 'r', 'l', 'd'}},
		{"in the two-byte length of a DATA frame's header", []byte{frameData, 0x40}, append([]byte{5}, "world"...)},
		{"in an unknown frame's payload", []byte{0x21, 4, 'x', 'x'}, appendFrame([]byte("xx"), frameData, []byte("world"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A first frame, then what the deadline is to find, in the
			// same write: the server has the one once it has the other.
			str := c.openRaw(t, s.webSocketFields(nil), append(appendFrame(nil, frameData, []byte("hello")), tc.before...))
			defer str.CancelRead(0)
			defer str.CancelWrite(0)
			conn := recv(t, conns, "handler call")
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := make([]byte, 5)
			if _, err := io.ReadFull(conn, got); err != nil || string(got) != "hello" {
				t.Fatalf("first frame: %q, %v", got, err)
			}
			conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, err := conn.Read(got); !isTimeout(err) {
				t.Fatalf("Read past the deadline: %d, %v; want a timeout", n, err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := str.Write(tc.rest); err != nil {
				t.Fatal(err)
			}
			clear(got)
			if _, err := io.ReadFull(conn, got); err != nil || string(got) != "world" {
				t.Errorf("the frame after the deadline: %q, %v; want \"world\"", got, err)
			}
		})
	}
}

// TestFraming sends a stream framed as quic-go's client never frames one
// (RFC 9114, section 7): the handler reads the payload of the DATA frames
// and nothing else, up to a clean end of the stream, with a buffer of any
// size, one byte included, and fails on a stream cut inside a frame or a
// frame that has no place on a request stream.
func TestFraming(t *testing.T) {
	type result struct {
		data []byte
		err  error
	}
	u := cooper.New(cooper.Protocols("websocket"))
	results := make(chan result, 1)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := io.Reader(conn)
		if hs.Request.URL.Path == "/byte" {
			r = iotest.OneByteReader(conn)
		}
		data, err := io.ReadAll(r)
		results <- result{data, err}
	}), nil)
	c := s.dial(t)
	data := func(p string) []byte { return appendFrame(nil, frameData, []byte(p)) }
	// sized is a DATA frame with p, its length in size bytes (RFC 9000,
	// section 16: a length need not take the fewest).
	sized := func(p string, size int) []byte {
		return append(quicvarint.AppendWithLen([]byte{frameData}, uint64(len(p)), size), p...)
	}
	// at sends the request to path; on "/byte" the handler reads one byte
	// at a time.
	at := func(path string) func([]qpack.HeaderField) []qpack.HeaderField {
		return func(f []qpack.HeaderField) []qpack.HeaderField {
			for i := range f {
				if f[i].Name == ":path" {
					f[i].Value = path
				}
			}
			return f
		}
	}
	for _, tc := range []struct {
		name   string
		frames []byte
		want   string
		err    error // nil: a clean end of the stream
	}{
		{"DATA frames are read in order", slices.Concat(data("one "), data("two")), "one two", nil},
		{"empty DATA frames are skipped", slices.Concat(data(""), data("one"), data("")), "one", nil},
		{"frames of unknown types are skipped (RFC 9114, section 9)",
			slices.Concat(appendFrame(nil, 0x21, []byte("grease")), data("one"), appendFrame(nil, 0x1f*7+0x21, nil), data(" two")), "one two", nil},
		{"a frame type in two bytes is read whole", slices.Concat(appendFrame(nil, 0x40, []byte("xx")), data("one")), "one", nil},
		{"a frame type in eight bytes is read whole", slices.Concat(appendFrame(nil, 0x1f*0x2aaaaaaaaaa+0x21, []byte("xx")), data("one")), "one", nil},
		{"lengths in two, four and eight bytes are read whole", slices.Concat(sized("one ", 2), sized("two ", 4), sized("three", 8)), "one two three", nil},
		{"trailers are skipped", slices.Concat(data("one"), appendFrame(nil, frameHeaders, []byte{0, 0})), "one", nil},
		{"a stream cut inside a DATA frame fails with io.ErrUnexpectedEOF", data("one")[:4], "on", io.ErrUnexpectedEOF},
		{"a stream cut inside a frame header fails with io.ErrUnexpectedEOF", append(data("one"), frameData), "one", io.ErrUnexpectedEOF},
		{"a stream cut inside a skipped frame fails with io.ErrUnexpectedEOF", append(data("one"), 0x21, 3, 'x'), "one", io.ErrUnexpectedEOF},
	} {
		for _, path := range []string{"/ws", "/byte"} {
			name := tc.name
			if path == "/byte" {
				name += ", one byte at a time"
			}
			t.Run(name, func(t *testing.T) {
				str := c.openRaw(t, s.webSocketFields(at(path)), tc.frames)
				defer str.CancelRead(0)
				str.Close()
				r := recv(t, results, "handler's read")
				if string(r.data) != tc.want || !errors.Is(r.err, tc.err) || (tc.err == nil) != (r.err == nil) {
					t.Errorf("read %q, %v; want %q, %v", r.data, r.err, tc.want, tc.err)
				}
			})
		}
	}
	type misplaced struct {
		name  string
		frame []byte // sent after a DATA frame "one"
	}
	trailers := appendFrame(nil, frameHeaders, []byte{0, 0})
	cases := []misplaced{
		{"DATA after the trailers", slices.Concat(trailers, data("two"))},
		{"DATA after the trailers and a frame of unknown type", slices.Concat(trailers, appendFrame(nil, 0x21, nil), data("two"))},
		{"HEADERS after the trailers", slices.Concat(trailers, trailers)},
	}
	// HTTP/2's frame types (section 7.2.8), those of the control stream
	// (sections 7.2.3 to 7.2.7) and PRIORITY_UPDATE (RFC 9218, section 7.1).
	for _, typ := range []uint64{0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0x9, 0xd, 0xf0700, 0xf0701} {
		cases = append(cases, misplaced{fmt.Sprintf("a frame of type %#x", typ), slices.Concat(appendFrame(nil, typ, []byte{0}), data("two"))})
	}
	for _, tc := range cases {
		t.Run(tc.name+" fails Read and stops the reading", func(t *testing.T) {
			str := c.openRaw(t, s.webSocketFields(nil), slices.Concat(data("one"), tc.frame))
			defer str.CancelRead(0)
			r := recv(t, results, "handler's read")
			if string(r.data) != "one" || r.err == nil {
				t.Errorf("read %q, %v; want \"one\" and an error", r.data, r.err)
			}
			// The server's STOP_SENDING fails a Write once it arrives.
			_, err := str.Write(data("more"))
			for deadline := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
				_, err = str.Write(data("more"))
			}
			var se *quic.StreamError
			if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(http3.ErrCodeFrameUnexpected) {
				t.Errorf("writing after the frame: %v, want the server's STOP_SENDING with H3_FRAME_UNEXPECTED", err)
			}
		})
	}
}

// TestWriteDeadlineInAFrame makes a write deadline pass while the
// handler's Write is blocked on flow control in the middle of a DATA
// frame: the Write fails with a timeout; once the deadline is lifted the
// next Writes finish the frame and the client reads every byte in order,
// up to a clean end; a Close with the frame unfinished resets the stream
// (H3_REQUEST_CANCELLED) instead of ending it inside the frame, which RFC
// 9114, section 7.1 makes an error of the whole QUIC connection.
func TestWriteDeadlineInAFrame(t *testing.T) {
	for _, goOn := range []bool{true, false} {
		name := "Close with the frame unfinished resets the stream"
		if goOn {
			name = "Writes after the deadline is lifted finish the frame"
		}
		t.Run(name, func(t *testing.T) {
			u := cooper.New(cooper.Protocols("websocket"))
			timedOut := make(chan error, 1)
			wrote := make(chan int, 1) // the bytes written in all, if goOn
			s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
				pos, err := writePattern(conn, 0, math.MaxInt)
				timedOut <- err
				if goOn {
					// 1000 bytes a Write, which the unfinished frame does
					// not lack: the Write that finishes it goes on in a
					// frame of its own.
					conn.SetWriteDeadline(time.Time{})
					for end := pos + 128<<10; pos < end; {
						if pos, err = writePattern(conn, pos, min(pos+1000, end)); err != nil {
							break
						}
					}
					wrote <- pos
				}
			}), nil)
			str := s.dial(t).openRaw(t, s.webSocketFields(nil), nil) // the client reads nothing yet
			defer str.CancelRead(0)
			str.Close()
			if err := recv(t, timedOut, "end of the Write"); !isTimeout(err) {
				t.Fatalf("Write past the deadline: %v, want a timeout", err)
			}
			str.SetReadDeadline(time.Now().Add(10 * time.Second))
			status, data, err := readAnswer(str)
			if status != "200" {
				t.Fatalf("status %q, want 200", status)
			}
			for i, b := range data {
				if b != byte(i%251) {
					t.Fatalf("byte %d of %d read is %d, want %d: the stream lost or repeated bytes", i, len(data), b, i%251)
				}
			}
			var se *quic.StreamError
			if goOn && err != nil {
				t.Errorf("reading the stream after %d bytes: %v, want a clean end", len(data), err)
			} else if !goOn && (!errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(http3.ErrCodeRequestCanceled)) {
				t.Errorf("reading the stream after %d bytes: %v, want a reset with H3_REQUEST_CANCELLED", len(data), err)
			}
			if goOn {
				if n := recv(t, wrote, "end of the Writes"); len(data) != n {
					t.Errorf("the client read %d bytes, want the %d written", len(data), n)
				}
			}
		})
	}
}

// TestWriteDeadlineBeforeAFrame makes a Write fail on a write deadline
// already passed, before it writes a byte: it opens no frame, so Close
// then ends the stream cleanly after what was written before, rather than
// resetting it, which would let the client drop those bytes (RFC 9000,
// section 3.2).
func TestWriteDeadlineBeforeAFrame(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	failed := make(chan error, 1)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		if _, err := conn.Write([]byte("hello")); err != nil {
			failed <- err
			return
		}
		conn.SetWriteDeadline(time.Now().Add(-time.Second))
		n, err := conn.Write([]byte("lost"))
		if n != 0 || !isTimeout(err) {
			err = fmt.Errorf("wrote %d, %v; want 0 and a timeout", n, err)
		} else {
			err = nil
		}
		failed <- err
	}), nil)
	str := s.dial(t).openRaw(t, s.webSocketFields(nil), nil)
	defer str.CancelRead(0)
	str.Close()
	if err := recv(t, failed, "the Write past the deadline"); err != nil {
		t.Fatal(err)
	}
	str.SetReadDeadline(time.Now().Add(10 * time.Second))
	status, data, err := readAnswer(str)
	if status != "200" || string(data) != "hello" || err != nil {
		t.Errorf("the client read status %q, %q, %v; want 200, \"hello\" and a clean end", status, data, err)
	}
	waitIdle(t, u)
}

// writeAway writes to conn, on a goroutine of its own, until a Write
// fails, and sends that Write's error on the channel it returns.
func writeAway(conn net.Conn) <-chan error {
	wrote := make(chan error, 1)
	go func() {
		_, err := writePattern(conn, 0, math.MaxInt)
		wrote <- err
	}()
	return wrote
}

// writePattern writes to conn, 64 KiB at a time, the bytes of a stream
// whose byte i is i%251, from position from until to or an error, and
// returns the position it reached.
func writePattern(conn net.Conn, from, to int) (int, error) {
	chunk := make([]byte, 64<<10)
	for from < to {
		p := chunk[:min(len(chunk), to-from)]
		for i := range p {
			p[i] = byte((from + i) % 251)
		}
		n, err := conn.Write(p)
		from += n
		if err != nil {
			return from, err
		}
	}
	return from, nil
}

// readAnswer reads str, a raw request stream, to its end, frame by frame:
// the status of the answer's HEADERS frame, and the payload of the DATA
// frames after it. err is nil at a clean end, io.ErrUnexpectedEOF when the
// stream ends inside a frame, or the error that ended the reading.
func readAnswer(str io.Reader) (status string, data []byte, err error) {
	r := bufio.NewReader(str)
	for {
		typ, err := quicvarint.Read(r)
		if err == io.EOF {
			return status, data, nil
		} else if err != nil {
			return status, data, err
		}
		n, err := quicvarint.Read(r)
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return status, data, err
		}
		// Not make([]byte, n): n comes from the stream.
		payload, err := io.ReadAll(io.LimitReader(r, int64(n)))
		if err == nil && uint64(len(payload)) < n {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return status, data, err
		}
		switch typ {
		case frameHeaders:
			for dec := qpack.NewDecoder().Decode(payload); ; {
				f, err := dec()
				if err != nil {
					break
				}
				if f.Name == ":status" {
					status = f.Value
				}
			}
		case frameData:
			data = append(data, payload...)
		}
	}
}

// isTimeout reports whether err is a net.Error that timed out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestReadsAtOnce reads a stream of many small DATA frames from two
// goroutines at once, as net.Conn allows: between them they read every
// byte once (run with -race, which also watches the framing state they
// share).
func TestReadsAtOnce(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	counted := make(chan int, 2)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				n, _ := io.Copy(io.Discard, conn)
				counted <- int(n)
			})
		}
		wg.Wait()
	}), nil)
	var frames []byte
	for range 2000 {
		frames = appendFrame(frames, frameData, []byte("0123456789"))
	}
	str := s.dial(t).openRaw(t, s.webSocketFields(nil), frames)
	defer str.CancelRead(0)
	str.Close()
	if n := recv(t, counted, "end of a Read loop") + recv(t, counted, "end of the other"); n != 20000 {
		t.Errorf("read %d bytes between the two, want the 20000 sent", n)
	}
}

// codeCancel is the stream error code of a client that aborts a request
// (RFC 9114, section 4.1.2).
const codeCancel = quic.StreamErrorCode(http3.ErrCodeRequestCanceled)

// TestDataBeforeTheAnswer makes the client send data right after its
// request, before the server has answered, and end its side of the
// stream: the handler reads every byte of it, then the end of the stream,
// and can still answer on its own side.
func TestDataBeforeTheAnswer(t *testing.T) {
	for _, early := range []string{"", "sent before the 200"} {
		t.Run("data "+quoteOrNone(early), func(t *testing.T) {
			u := cooper.New(cooper.Protocols("websocket"))
			gate := make(chan struct{})
			handler := u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				got, err := io.ReadAll(conn)
				if err != nil {
					t.Errorf("reading the client's side: %v", err)
				}
				conn.Write(append([]byte("read: "), got...))
			})
			s := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				<-gate // until the client has sent all it sends
				handler.ServeHTTP(w, r)
			}), nil)
			str := s.dial(t).send(t, s.webSocketRequest("/ws", nil))
			if early != "" {
				if _, err := str.Write([]byte(early)); err != nil {
					t.Fatal(err)
				}
			}
			str.Close()
			close(gate)
			str.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := str.ReadResponse()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("answer: %v, %v; want 200", resp, err)
			}
			got, err := io.ReadAll(str)
			if want := "read: " + early; string(got) != want || err != nil {
				t.Errorf("the handler's answer: %q, %v; want %q and a clean end", got, err, want)
			}
			waitIdle(t, u)
		})
	}
}

// quoteOrNone names the data of a test case.
func quoteOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// TestPeerEndsTheStream makes the client abort its side of a running
// WebSocket's stream, or both, or the whole QUIC connection: what the
// client stopped fails the handler's Read or Write, neither hangs, what it
// did not stop goes on (QUIC streams end one direction at a time: RFC
// 9000, section 3), and once the handler returns the Upgrader holds
// nothing and shuts down at once.
func TestPeerEndsTheStream(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		act                   func(c *client, str *http3.RequestStream)
		readFails, writeFails bool
	}{
		{"a client that resets its side (RESET_STREAM) fails Read, and Write goes on",
			func(c *client, str *http3.RequestStream) { str.CancelWrite(codeCancel) }, true, false},
		{"a client that stops reading (STOP_SENDING) fails Write",
			func(c *client, str *http3.RequestStream) { str.CancelRead(codeCancel) }, false, true},
		{"a client that resets the stream both ways fails Read and Write",
			func(c *client, str *http3.RequestStream) { str.CancelWrite(codeCancel); str.CancelRead(codeCancel) }, true, true},
		{"a client that closes the QUIC connection fails Read and Write",
			func(c *client, str *http3.RequestStream) {
				c.qc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "bye")
			}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type outcome struct{ read, write error }
			u := cooper.New(cooper.Protocols("websocket"))
			acted := make(chan struct{})
			outcomes := make(chan outcome, 1)
			s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				<-acted
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				var o outcome
				if tc.readFails {
					_, o.read = conn.Read(make([]byte, 1))
				}
				if tc.writeFails {
					// The client's STOP_SENDING, or the end of the
					// connection, fails a Write once it arrives.
					for o.write == nil {
						_, o.write = conn.Write([]byte("x"))
						time.Sleep(5 * time.Millisecond)
					}
				} else {
					_, o.write = conn.Write([]byte("still here"))
				}
				outcomes <- o
			}), nil)
			c := s.dial(t)
			resp, str := c.roundTrip(t, s.webSocketRequest("/ws", nil))
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("answer %s, want 200", resp.Status)
			}
			tc.act(c, str)
			close(acted)
			o := recv(t, outcomes, "the handler's Read and Write")
			if tc.readFails && (o.read == nil || o.read == io.EOF || isTimeout(o.read)) {
				t.Errorf("Read: %v, want the client's reset or the end of the connection", o.read)
			}
			if tc.writeFails && isTimeout(o.write) {
				t.Errorf("Write: %v, want the client's STOP_SENDING or the end of the connection", o.write)
			}
			if !tc.writeFails {
				if o.write != nil {
					t.Errorf("Write: %v, want it to go on", o.write)
				}
				str.SetReadDeadline(time.Now().Add(10 * time.Second))
				if got, err := io.ReadAll(str); string(got) != "still here" || err != nil {
					t.Errorf("the client read %q, %v; want \"still here\" and a clean end", got, err)
				}
			}
			waitIdle(t, u)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := u.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v, want nil at once: no connection is left", err)
			}
		})
	}
}

// TestShutdownEndsBlockedHandlers runs handlers that mind neither their
// context nor the time, one blocked in Read, one in a Write the client's
// flow control holds: when Shutdown's deadline passes it closes their
// streams, which ends both calls; the reader's client sees a clean end of
// the stream, the writer's a reset (H3_REQUEST_CANCELLED), and the
// Upgrader then holds nothing.
func TestShutdownEndsBlockedHandlers(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	ended := make(chan error, 2)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		var err error
		if hs.Request.URL.Path == "/read" {
			_, err = conn.Read(make([]byte, 1))
		} else {
			err = <-writeAway(conn)
		}
		ended <- err
	}), nil)
	c := s.dial(t)
	_, reader := c.roundTrip(t, s.webSocketRequest("/read", nil))
	_, writer := c.roundTrip(t, s.webSocketRequest("/write", nil))
	poll.Until(t, 10*time.Second, "both handlers to run", func() bool { return u.Stats().Active == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := u.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want its deadline passed", err)
	}
	for range 2 {
		if err := recv(t, ended, "end of a blocked call"); !errors.Is(err, net.ErrClosed) {
			t.Errorf("a call Shutdown ended: %v, want net.ErrClosed", err)
		}
	}
	reader.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(reader); err != nil {
		t.Errorf("the reader's client: %v, want a clean end of the stream", err)
	}
	writer.SetReadDeadline(time.Now().Add(10 * time.Second))
	var he *http3.Error
	if _, err := io.Copy(io.Discard, writer); !errors.As(err, &he) || he.ErrorCode != http3.ErrCodeRequestCanceled {
		t.Errorf("the writer's client: %v, want a reset with H3_REQUEST_CANCELLED", err)
	}
	waitIdle(t, u)
}

// TestManyStreamsOnOneConnection opens 50 WebSockets on one QUIC
// connection to an Upgrader with a connection limit: each stream is one
// upgrade, so the first ones up to the limit are upgraded and the others
// refused with the limit's status and Retry-After, each refusal ending its
// stream; once the handlers return, every upgraded stream ends cleanly
// and the Upgrader holds nothing.
func TestManyStreamsOnOneConnection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opt    cooper.Option
		limit  int
		status int
		err    error
	}{
		{"MaxConnections(10) refuses the 11th stream on with 503", cooper.MaxConnections(10), 10, http.StatusServiceUnavailable, cooper.ErrTooManyConnections},
		{"MaxConnectionsPerClient(5) refuses the 6th stream on with 429", cooper.MaxConnectionsPerClient(5), 5, http.StatusTooManyRequests, cooper.ErrTooManyClientConnections},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var refusals atomic.Int32
			u := cooper.New(cooper.Protocols("websocket"), tc.opt, cooper.OnError(func(err error) {
				if errors.Is(err, tc.err) {
					refusals.Add(1)
				}
			}))
			release := make(chan struct{})
			s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				<-release
			}), nil)
			releaseAll := sync.OnceFunc(func() { close(release) })
			defer releaseAll()
			c := s.dial(t)
			const streams = 50
			var upgraded []*http3.RequestStream
			for i := range streams {
				resp, str := c.roundTrip(t, s.webSocketRequest("/ws", nil))
				str.SetReadDeadline(time.Now().Add(10 * time.Second))
				if i < tc.limit {
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("stream %d: %s, want 200", i, resp.Status)
					}
					upgraded = append(upgraded, str)
					continue
				}
				if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") == "" {
					t.Fatalf("stream %d: %s, Retry-After %q; want %d with Retry-After", i, resp.Status, resp.Header.Get("Retry-After"), tc.status)
				}
				if _, err := io.ReadAll(resp.Body); err != nil {
					t.Errorf("stream %d: the refusal does not end cleanly: %v", i, err)
				}
			}
			if st := u.Stats(); st.Active != tc.limit || st.Upgrades != uint64(tc.limit) {
				t.Errorf("Stats() = %+v, want %d active and upgraded", st, tc.limit)
			}
			if n := refusals.Load(); n != streams-int32(tc.limit) {
				t.Errorf("OnError got %d refusals matching %v, want %d", n, tc.err, streams-tc.limit)
			}
			releaseAll()
			for i, str := range upgraded {
				if _, err := io.ReadAll(str); err != nil {
					t.Errorf("upgraded stream %d: %v, want a clean end once its handler returned", i, err)
				}
			}
			waitIdle(t, u)
		})
	}
}

// TestAnswerHeldByFlowControl gives the server no room to send the 200
// (the client's stream flow control window is far smaller than the
// answer, which carries 16 KiB of the application's headers; quic-go
// takes a small answer in whole whatever the window): the handshake
// timeout ends the answer, the upgrade fails and is reported, the handler
// is not called, and the Upgrader holds nothing and shuts down at once.
func TestAnswerHeldByFlowControl(t *testing.T) {
	reported := make(chan error, 1)
	pad := http.Header{"X-Pad": {strings.Repeat("a", 16<<10)}}
	u := cooper.New(cooper.Protocols("websocket"), cooper.HandshakeTimeout(200*time.Millisecond),
		cooper.ResponseHeaders(func(*http.Request, string) http.Header { return pad }),
		cooper.OnError(func(err error) { reported <- err }))
	handled := make(chan struct{}, 1)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		handled <- struct{}{}
		conn.Close()
	}), nil)
	c := s.dialWith(t, &quic.Config{InitialStreamReceiveWindow: 32, MaxStreamReceiveWindow: 32})
	str := c.send(t, s.webSocketRequest("/ws", nil))
	defer str.CancelRead(0)
	if err := recv(t, reported, "the failed upgrade"); !errors.Is(err, cooper.ErrWriteResponse) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("OnError got %v, want ErrWriteResponse: the answer's deadline passed", err)
	}
	waitIdle(t, u)
	if st := u.Stats(); st.Failures != 1 || st.Upgrades != 0 {
		t.Errorf("Stats() = %+v, want one failure", st)
	}
	select {
	case <-handled:
		t.Error("the handler was called")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := u.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v, want nil at once", err)
	}
}
