package cooperh3_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	str, err := c.conn.OpenRequestStream(ctx)
	if err != nil {
		t.Fatalf("opening a request stream: %v", err)
	}
	if err := str.SendRequestHeader(req); err != nil {
		t.Fatalf("sending the request: %v", err)
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
// the stream.
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
	if n := u.Stats().Active; n != 0 {
		t.Errorf("Stats().Active = %d after refusals, want 0", n)
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
		wrote := make(chan error, 1)
		go func() {
			chunk := make([]byte, 64<<10)
			for {
				if _, err := conn.Write(chunk); err != nil {
					wrote <- err
					return
				}
			}
		}()
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
		wrote := make(chan error, 1)
		go func() {
			chunk := make([]byte, 64<<10)
			for {
				if _, err := conn.Write(chunk); err != nil {
					wrote <- err
					return
				}
			}
		}()
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
