package cooper

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Dial connects to the server of req.URL and upgrades the connection as
// req asks: TCP, through an HTTP proxy when one applies, TLS for the wss
// and https schemes or with [WithTLSConfig], then the upgrade request and
// the check of its answer, as [Upgrade] does them.
//
// The URL's scheme is ws, wss, http or https (none counts as http); the
// port defaults to 80, or 443 with TLS. TLS offers only HTTP/1.1 through
// ALPN, whatever the configuration offers, and sends the URL's host as SNI
// unless the configuration names a server. The proxy is the one
// [http.ProxyFromEnvironment] picks, unless [WithProxy] says otherwise; it
// is asked to CONNECT, with Basic authentication when the proxy URL
// carries a user.
//
// req's context bounds everything, dialing included, and cancelling it
// aborts whatever is under way. When the context has no deadline, Dial
// gives up after 30 seconds. req itself is not modified.
//
// The caller owns the connection returned and must close it. No deadline
// is set on it, and its first reads return the bytes the server sent after
// the 101, including any read together with the response. When there were
// none it is the socket itself (*net.TCPConn or *tls.Conn); otherwise it has
// a NetConn method that returns the socket. On error no connection is left
// open, and the error matches one of the client side's sentinels, such as
// [ErrDialFailed] or [ErrUnexpectedStatus], with [errors.Is].
func Dial(req *http.Request, opts ...DialOption) (net.Conn, error) {
	return dial(req, rand.Reader, opts)
}

// Upgrade upgrades conn, a connection to a server that the caller already
// has, as req asks: it sends req with the headers an upgrade needs and
// checks the answer. The protocol is the one in req's Upgrade header or,
// when it has none, "websocket" for a ws or wss URL.
//
// Upgrade sends req's method (GET when empty), request URI, Host (req.Host,
// or the URL's host) and headers as given, in one write and in the order of
// their names, adding what the upgrade needs: Upgrade, Connection: Upgrade
// unless Connection already has that token (a Connection without it is
// replaced), and Authorization from the URL's user when req has none.
// Header["Host"] is ignored, as net/http does; no User-Agent is sent unless
// req has one. A request with a body is refused.
//
// The answer must be 101 Switching Protocols, with Upgrade naming the
// protocol requested (ASCII case ignored) and Connection carrying the
// "upgrade" token (RFC 9110, section 7.8); interim 1xx answers before it are
// skipped. For the "websocket" protocol Upgrade also does the client's part
// of the RFC 6455 opening handshake (section 4.1): it sends a fresh
// Sec-WebSocket-Key (unless req has one) and Sec-WebSocket-Version: 13,
// checks Sec-WebSocket-Accept, and checks that any subprotocol and
// extension answered was offered ([WithSubprotocols], [WithDeflate]). The
// [WithResponseValidator] function, if any, runs last.
//
// req's context bounds the exchange: when it is cancelled or its deadline
// passes, Upgrade sets a deadline in the past on conn, which aborts the
// write or read under way. When the context has no deadline, Upgrade gives
// up after 30 seconds. Either way it clears conn's deadlines before it
// returns, whether it succeeds or not. req itself is not modified.
//
// On success the caller owns the connection returned, which first replays
// the bytes the server sent after the 101 that were read with the
// response, and is conn itself when there were none (otherwise it has a
// NetConn method that returns conn). On error conn is left open for the
// caller to close; where it stands in the HTTP exchange is unknown. The
// error matches one of the client side's sentinels with [errors.Is].
func Upgrade(conn net.Conn, req *http.Request, opts ...UpgradeOption) (net.Conn, error) {
	return upgrade(conn, req, rand.Reader, opts)
}

// clientTimeout bounds Dial and Upgrade when the request's context has no
// deadline.
const clientTimeout = 30 * time.Second

// maxResponseHead is the most a server may send before the end of its
// response's head, as [http.DefaultMaxHeaderBytes] is for a request's.
const maxResponseHead = http.DefaultMaxHeaderBytes

// max1xx is how many interim (1xx) responses are skipped before the one
// that must be 101, as net/http's Transport does.
const max1xx = 5

// A DialOption configures [Dial]. Options are applied once, in order, when
// Dial is called; a later option overrides an earlier one.
type DialOption func(*dialConfig)

// dialConfig is what the DialOptions build.
type dialConfig struct {
	protocol  string // "" unless set with WithProtocol
	tlsConfig *tls.Config
	dialer    *net.Dialer
	proxy     func(*http.Request) (*url.URL, error)
	upgrade   []UpgradeOption
}

// newDialConfig applies opts to the defaults.
func newDialConfig(opts []DialOption) *dialConfig {
	c := &dialConfig{dialer: &net.Dialer{}, proxy: http.ProxyFromEnvironment}
	for _, o := range opts {
		o(c)
	}
	return c
}

// WithProtocol sets the protocol to upgrade to, such as "websocket" or
// "myproto/2", for a request without an Upgrade header. A request whose
// Upgrade names another protocol fails with [ErrProtocolConflict]; one that
// names the same protocol, ignoring ASCII case, is sent as it is.
//
// Default: the protocol is the one in the request's Upgrade header, which
// must then name exactly one; without one, "websocket" for a ws or wss
// URL.
//
// Panics if proto is not a protocol (token ["/" token]).
func WithProtocol(proto string) DialOption {
	if !isProtocol(proto) {
		panic("cooper: WithProtocol: " + quote(proto) + " is not a protocol name")
	}
	return func(c *dialConfig) { c.protocol = proto }
}

// WithTLSConfig sets the TLS configuration and turns TLS on, whatever the
// URL's scheme. Dial uses a copy whose NextProtos is only "http/1.1", so a
// configuration shared with an HTTP/2 client cannot make the server choose
// HTTP/2, and whose ServerName, when empty, is the URL's host.
//
// Default: TLS only for the wss and https schemes, with the zero
// configuration: the system's roots, the URL's host as the server name.
// A nil cfg restores the default.
func WithTLSConfig(cfg *tls.Config) DialOption {
	return func(c *dialConfig) { c.tlsConfig = cfg }
}

// WithDialer sets the dialer of the TCP connection to the server or proxy,
// for instance to set its local address or keep-alive. Its Timeout and
// Deadline apply in addition to the request's context.
//
// Default: the zero net.Dialer. A nil d restores the default.
func WithDialer(d *net.Dialer) DialOption {
	if d == nil {
		d = &net.Dialer{}
	}
	return func(c *dialConfig) { c.dialer = d }
}

// WithProxy sets the function that picks the HTTP proxy for a request, as
// [http.Transport.Proxy] does: it is given the request with its URL's ws
// or wss scheme spelled http or https, and returns the proxy's URL, or nil
// for none. The proxy URL's scheme must be http (or empty); Dial asks it to
// CONNECT to the server, with Basic Proxy-Authorization when the URL has a
// user, and fails with [ErrDialFailed] unless it answers 200.
//
// Default: [http.ProxyFromEnvironment], which reads HTTP_PROXY, HTTPS_PROXY
// and NO_PROXY, and never proxies a loopback address. A nil fn dials
// directly.
func WithProxy(fn func(*http.Request) (*url.URL, error)) DialOption {
	return func(c *dialConfig) { c.proxy = fn }
}

// WithUpgradeOptions adds opts to those Dial applies to its upgrade, after
// any given before.
//
// Default: none.
func WithUpgradeOptions(opts ...UpgradeOption) DialOption {
	opts = slices.Clone(opts)
	return func(c *dialConfig) { c.upgrade = append(c.upgrade, opts...) }
}

// An UpgradeOption configures the upgrade that [Upgrade] and [Dial] do.
// Options are applied once, in order, when the call starts; a later option
// overrides an earlier one.
type UpgradeOption func(*upgradeConfig)

// upgradeConfig is what the UpgradeOptions build.
type upgradeConfig struct {
	validator    func(*http.Request, *http.Response) error
	subprotocols string     // offered Sec-WebSocket-Protocol value; "" for none
	deflate      string     // offered Sec-WebSocket-Extensions value; "" for none
	agreed       *Handshake // filled on success; see WithHandshake
}

// newUpgradeConfig applies opts to the defaults.
func newUpgradeConfig(opts []UpgradeOption) *upgradeConfig {
	c := &upgradeConfig{}
	for _, o := range opts {
		o(c)
	}
	return c
}

// WithResponseValidator sets a function that checks the server's answer
// after cooper's own checks passed, for instance a header the application
// expects. It runs on the caller's goroutine with the request as sent and
// the 101 response; an error it returns fails the upgrade, wrapped so that
// it matches both [ErrResponseValidator] and the error itself.
//
// Default: nil, no check beyond cooper's.
func WithResponseValidator(fn func(req *http.Request, resp *http.Response) error) UpgradeOption {
	return func(c *upgradeConfig) { c.validator = fn }
}

// ResponseValidator is the older spelling of [WithResponseValidator], kept
// so that code written for it compiles and works unchanged; the client's
// options are all spelled With… now.
func ResponseValidator(fn func(req *http.Request, resp *http.Response) error) UpgradeOption {
	return WithResponseValidator(fn)
}

// WithSubprotocols offers WebSocket subprotocols, in order of preference
// (RFC 6455, section 11.3.4), on a line of Sec-WebSocket-Protocol after any
// the request has. An answer naming a subprotocol the request did not
// offer, byte for byte, fails with [ErrSubprotocolMismatch]; a server may
// also answer none. It applies only to the "websocket" protocol.
//
// Default: none but those the request carries.
//
// Panics if a name is not a token.
func WithSubprotocols(names ...string) UpgradeOption {
	var b []byte
	for i, n := range names {
		if !isToken(n) {
			panic("cooper: WithSubprotocols: " + quote(n) + " is not a token")
		}
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, n...)
	}
	list := string(b)
	return func(c *upgradeConfig) { c.subprotocols = list }
}

// WithDeflate offers permessage-deflate (RFC 7692), on a line of
// Sec-WebSocket-Extensions after any the request has: ServerNoContextTakeover
// and ClientNoContextTakeover offer server_no_context_takeover and
// client_no_context_takeover; a non-zero ServerMaxWindowBits offers
// server_max_window_bits with that value; client_max_window_bits is always
// offered, so the server may limit the client's window, with
// ClientMaxWindowBits as its value when that is not zero.
//
// The answer is checked against RFC 7692, section 7 and fails with
// [ErrExtensionMismatch] when it does not answer an offer: an extension not
// offered, a parameter unknown, given twice or with a bad value,
// server_no_context_takeover or server_max_window_bits missing when offered,
// client_max_window_bits when not offered, a window larger than offered.
// [WithHandshake] reports what was agreed; a server may also decline. It
// applies only to the "websocket" protocol.
//
// Default: off, no offer but those the request carries.
//
// Panics if a window size is neither 0 nor 8 to 15.
func WithDeflate(offer DeflateParams) UpgradeOption {
	offer.checkWindowBits("WithDeflate")
	e := deflateElement{
		serverNoContext: offer.ServerNoContextTakeover,
		clientNoContext: offer.ClientNoContextTakeover,
		serverBits:      offer.ServerMaxWindowBits,
		clientBits:      -1, // always offered, so the server may limit the client's window
	}
	if offer.ClientMaxWindowBits != 0 {
		e.clientBits = offer.ClientMaxWindowBits
	}
	line := string(appendDeflateElement(nil, &e))
	return func(c *upgradeConfig) { c.deflate = line }
}

// WithHandshake has a successful upgrade fill *hs with what was agreed: the
// protocol as requested, the subprotocol answered, the permessage-deflate
// parameters answered (window bits filled in: 15 when the answer does not
// limit them; nil when not agreed), and the request as sent, with its
// context. On error *hs is left as it was. A call fills only its own hs, so
// concurrent calls need one each.
//
// Default: nothing is reported.
//
// Panics if hs is nil.
func WithHandshake(hs *Handshake) UpgradeOption {
	if hs == nil {
		panic("cooper: WithHandshake: nil Handshake")
	}
	return func(c *upgradeConfig) { c.agreed = hs }
}

// dial is Dial with the source of Sec-WebSocket-Key nonces as a parameter.
func dial(req *http.Request, random io.Reader, opts []DialOption) (net.Conn, error) {
	if req == nil {
		return nil, fail(ErrNilRequest, "request: nil")
	}
	c := newDialConfig(opts)
	r, proto, err := cloneRequest(req, impliedProtocol(req, c.protocol))
	if err != nil {
		return nil, err
	}
	t, err := dialTarget(r, c.tlsConfig != nil)
	if err != nil {
		return nil, err
	}
	uc := newUpgradeConfig(c.upgrade)
	b, key, err := uc.request(r, proto, random)
	if err != nil {
		return nil, err
	}
	ctx, cancel := handshakeContext(r.Context())
	defer cancel()
	raw, conn, w, err := c.connect(ctx, r, t)
	if err != nil {
		return nil, err
	}
	conn, err = uc.exchange(ctx, conn, r, b, proto, key)
	if err = w.release(err); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// upgrade is Upgrade with the source of Sec-WebSocket-Key nonces as a
// parameter.
func upgrade(conn net.Conn, req *http.Request, random io.Reader, opts []UpgradeOption) (net.Conn, error) {
	if req == nil {
		return nil, fail(ErrNilRequest, "request: nil")
	}
	if conn == nil {
		return nil, fail(ErrSendRequest, "connection: nil")
	}
	r, proto, err := cloneRequest(req, impliedProtocol(req, ""))
	if err != nil {
		return nil, err
	}
	if r.URL == nil {
		return nil, fail(ErrInvalidHost, "URL: missing")
	}
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	c := newUpgradeConfig(opts)
	b, key, err := c.request(r, proto, random)
	if err != nil {
		return nil, err
	}
	ctx, cancel := handshakeContext(r.Context())
	defer cancel()
	w := watch(ctx, conn)
	nc, err := c.exchange(ctx, conn, r, b, proto, key)
	if err = w.release(err); err != nil {
		return nil, err
	}
	return nc, nil
}

// handshakeContext returns ctx, bounded by clientTimeout when it has no
// deadline.
func handshakeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, clientTimeout)
}

// cloneRequest returns a copy of req to send, which the upgrade may modify,
// and the protocol it asks for: the one in its Upgrade header, or proto,
// which the copy's Upgrade then names. req's context stays the copy's.
func cloneRequest(req *http.Request, proto string) (*http.Request, string, error) {
	if req.Body != nil && req.Body != http.NoBody || req.ContentLength != 0 {
		return nil, "", fail(ErrSendRequest, "request body: an upgrade request has none")
	}
	r := req.Clone(req.Context())
	if r.Header == nil {
		r.Header = http.Header{}
	}
	lines := r.Header[hdrUpgrade]
	var asked string
	n := 0
	ok := scanList(lines, isProtocol, func(elem string) bool {
		asked = elem
		n++
		return true
	})
	switch {
	case !ok:
		return nil, "", fail(ErrMissingUpgradeHeader, "Upgrade: %s is not a valid protocol list", quoteLines(lines))
	case n > 1:
		return nil, "", fail(ErrProtocolConflict, "Upgrade: %s names more than one protocol", quoteLines(lines))
	case n == 1 && proto != "" && !tokenEqual(asked, proto):
		return nil, "", fail(ErrProtocolConflict, "Upgrade: %s conflicts with WithProtocol(%s)", quoteLines(lines), quote(proto))
	case n == 0 && proto == "":
		return nil, "", fail(ErrMissingUpgradeHeader, "Upgrade: missing from the request, and neither WithProtocol nor a ws or wss URL")
	case n == 0:
		r.Header[hdrUpgrade] = []string{proto}
		asked = proto
	}
	return r, asked, nil
}

// impliedProtocol returns proto, the protocol set with WithProtocol, or
// when there is none and req has no Upgrade header, "websocket" for a URL
// whose scheme is ws or wss, which can only mean that protocol.
func impliedProtocol(req *http.Request, proto string) string {
	if proto != "" || req.URL == nil || len(req.Header[hdrUpgrade]) > 0 {
		return proto
	}
	switch lowerToken(req.URL.Scheme) {
	case "ws", "wss":
		return "websocket"
	}
	return proto
}

// A target is where Dial connects: the server's address, and how.
type target struct {
	addr       string // host:port of the server
	useTLS     bool
	serverName string // the URL's host, for SNI
}

// dialTarget works out the server's address from r's URL, and sets r's
// scheme to http or https, as proxies and the request line know them, and
// r's Host when it has none.
func dialTarget(r *http.Request, forceTLS bool) (target, error) {
	u := r.URL
	if u == nil {
		return target{}, fail(ErrInvalidHost, "URL: missing")
	}
	var t target
	switch lowerToken(u.Scheme) {
	case "", "http", "ws":
		t.useTLS = forceTLS
	case "https", "wss":
		t.useTLS = true
	default:
		return target{}, fail(ErrInvalidHost, "URL: scheme %s is not ws, wss, http or https", quote(u.Scheme))
	}
	host := u.Hostname()
	if host == "" || !isHost(host) {
		return target{}, fail(ErrInvalidHost, "URL: %s has no valid host", quote(u.Redacted()))
	}
	u.Scheme = "http"
	port := "80"
	if t.useTLS {
		u.Scheme, port = "https", "443"
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return target{}, fail(ErrInvalidHost, "URL: port %s is not 1 to 65535", quote(p))
		}
		port = p
	}
	t.addr = net.JoinHostPort(host, port)
	t.serverName = host
	if r.Host == "" {
		r.Host = u.Host
	}
	return t, nil
}

// isHost reports whether s can be sent as a Host value or a host to
// connect to: an authority as isAuthority has it, and without '"', which no
// host name has (RFC 3986, section 3.2.2). The client writes the host into
// its request and a proxy's CONNECT, so it refuses that byte too; an
// Origin's host is only compared, never sent, so parseOrigin does not.
func isHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			return false
		}
	}
	return isAuthority(s)
}

// connect opens the connection the upgrade request goes on, conn: TCP to
// the server or through its proxy, then TLS if t asks for it. raw is the
// TCP connection beneath, which w watches with ctx from when it is open and
// which the caller closes on a later failure.
func (c *dialConfig) connect(ctx context.Context, r *http.Request, t target) (raw, conn net.Conn, w *connWatch, err error) {
	addr := t.addr
	var proxy *url.URL
	if c.proxy != nil {
		if proxy, err = c.proxy(r); err != nil {
			return nil, nil, nil, fail(ErrDialFailed, "proxy: %w", err)
		}
	}
	if proxy != nil {
		if addr, err = proxyAddr(proxy); err != nil {
			return nil, nil, nil, err
		}
	}
	raw, err = c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, nil, fail(ErrDialFailed, "dial: %w", ctxCause(ctx, err))
	}
	w = watch(ctx, raw)
	conn = raw
	if proxy != nil {
		conn, err = tunnel(ctx, conn, proxy, t.addr)
	}
	if err == nil && t.useTLS {
		conn, err = c.startTLS(ctx, conn, t.serverName)
	}
	if err != nil {
		w.release(nil)
		raw.Close()
		return nil, nil, nil, err
	}
	return raw, conn, w, nil
}

// proxyAddr returns the host:port to dial for the proxy u.
func proxyAddr(u *url.URL) (string, error) {
	if s := lowerToken(u.Scheme); s != "" && s != "http" {
		return "", fail(ErrDialFailed, "proxy: scheme %s is not http", quote(u.Scheme))
	}
	host := u.Hostname()
	if !isHost(host) {
		return "", fail(ErrDialFailed, "proxy: %s has no valid host", quote(u.Redacted()))
	}
	port := u.Port()
	if port == "" {
		port = "80"
	}
	return net.JoinHostPort(host, port), nil
}

// tunnel asks the proxy at the other end of conn to CONNECT to addr (RFC
// 9110, section 9.3.6) and returns the tunnel. Bytes read past the
// proxy's answer are the server's and are replayed.
func tunnel(ctx context.Context, conn net.Conn, proxy *url.URL, addr string) (net.Conn, error) {
	b := make([]byte, 0, 128)
	b = append(b, "CONNECT "...)
	b = append(b, addr...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, addr...)
	b = append(b, "\r\n"...)
	if u := proxy.User; u != nil {
		password, _ := u.Password()
		b = append(b, "Proxy-Authorization: Basic "...)
		b = base64.StdEncoding.AppendEncode(b, []byte(u.Username()+":"+password))
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	if _, err := conn.Write(b); err != nil {
		return nil, fail(ErrDialFailed, "proxy: write CONNECT: %w", ctxCause(ctx, err))
	}
	lr := &io.LimitedReader{R: conn, N: maxResponseHead}
	br := bufio.NewReader(lr)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		if lr.N == 0 {
			return nil, fail(ErrDialFailed, "proxy: answer to CONNECT: head longer than %d bytes", maxResponseHead)
		}
		return nil, fail(ErrDialFailed, "proxy: read answer to CONNECT: %w", ctxCause(ctx, err))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fail(ErrDialFailed, "proxy: CONNECT %s answered %s, not 200", addr, quote(resp.Status))
	}
	return handOver(conn, br), nil
}

// startTLS runs the TLS handshake on conn with a copy of the configured
// TLS configuration whose ALPN offers only HTTP/1.1, and serverName as SNI
// unless the configuration names a server.
func (c *dialConfig) startTLS(ctx context.Context, conn net.Conn, serverName string) (net.Conn, error) {
	cfg := c.tlsConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	// An upgrade is HTTP/1.1 (RFC 9113, section 8.6): a configuration shared
	// with an HTTP/2 client must not let the server pick h2.
	cfg.NextProtos = []string{"http/1.1"}
	if cfg.ServerName == "" {
		cfg.ServerName = serverName
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fail(ErrTLSHandshakeFailed, "TLS handshake: %w", ctxCause(ctx, err))
	}
	return tc, nil
}

// request adds to r the headers the upgrade to proto needs and returns r
// as it is to be sent, with the Sec-WebSocket-Key in it, "" unless proto is
// WebSocket.
func (c *upgradeConfig) request(r *http.Request, proto string, random io.Reader) (b []byte, key string, err error) {
	if key, err = c.prepare(r, proto, random); err != nil {
		return nil, "", err
	}
	if b, err = appendUpgradeRequest(make([]byte, 0, 512), r); err != nil {
		return nil, "", err
	}
	return b, key, nil
}

// exchange sends b, the upgrade request r for proto, on conn in one write,
// reads and checks the answer, and returns the connection to hand over.
func (c *upgradeConfig) exchange(ctx context.Context, conn net.Conn, r *http.Request, b []byte, proto, key string) (net.Conn, error) {
	if _, err := conn.Write(b); err != nil {
		return nil, fail(ErrSendRequest, "write request: %w", ctxCause(ctx, err))
	}
	lr := &io.LimitedReader{R: conn, N: maxResponseHead}
	br := bufio.NewReader(lr)
	resp, err := readResponse(br, r)
	if err != nil {
		if lr.N == 0 {
			return nil, fail(ErrReadResponse, "read response: head longer than %d bytes", maxResponseHead)
		}
		return nil, fail(ErrReadResponse, "read response: %w", ctxCause(ctx, err))
	}
	hs, err := verifyResponse(r, resp, br, proto, key)
	if err != nil {
		return nil, err
	}
	if c.validator != nil {
		if err := c.validator(r, resp); err != nil {
			return nil, fail(ErrResponseValidator, "response validator: %w", err)
		}
	}
	if c.agreed != nil {
		*c.agreed = hs
	}
	return handOver(conn, br), nil
}

// readResponse reads the answer to r, skipping up to max1xx interim
// responses (RFC 9110, section 15.2) before it.
func readResponse(br *bufio.Reader, r *http.Request) (*http.Response, error) {
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(br, r)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 != 1 || resp.StatusCode == http.StatusSwitchingProtocols || n == max1xx {
			return resp, nil
		}
	}
}

// prepare adds to r the headers the upgrade to proto needs and returns the
// Sec-WebSocket-Key sent, or "" when proto is not WebSocket.
func (c *upgradeConfig) prepare(r *http.Request, proto string, random io.Reader) (key string, err error) {
	h := r.Header
	if found, _ := hasToken(h[hdrConnection], "upgrade"); !found {
		// Any other connection option means nothing on a connection that
		// stops being HTTP.
		h[hdrConnection] = []string{"Upgrade"}
	}
	if u := r.URL.User; u != nil && len(h["Authorization"]) == 0 {
		password, _ := u.Password()
		h["Authorization"] = []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+password))}
	}
	if !isWebSocket(proto) {
		return "", nil
	}
	switch k := h[hdrWSKey]; {
	case len(k) == 0:
		var nonce [16]byte
		if _, err := io.ReadFull(random, nonce[:]); err != nil {
			return "", fail(ErrSendRequest, "Sec-WebSocket-Key: %w", err)
		}
		key = base64.StdEncoding.EncodeToString(nonce[:])
		h[hdrWSKey] = []string{key}
	case len(k) > 1:
		return "", fail(ErrSendRequest, "Sec-WebSocket-Key: set %d times", len(k))
	case !isValidKey(k[0]):
		return "", fail(ErrSendRequest, "Sec-WebSocket-Key: %s does not decode to 16 bytes", quote(k[0]))
	default:
		key = trimOWS(k[0])
	}
	h[hdrWSVersion] = []string{"13"}
	if c.subprotocols != "" {
		h[hdrWSProtocol] = append(h[hdrWSProtocol], c.subprotocols)
	}
	if c.deflate != "" {
		h[hdrWSExtensions] = append(h[hdrWSExtensions], c.deflate)
	}
	return key, nil
}

// appendUpgradeRequest appends r, an upgrade request without a body, to b: the
// request line, Host, then r's headers in the order of their names. It
// refuses what would not be a valid request or could split it: a method
// that is not a token, a request target or Host with white space or
// control bytes, a header name that is not a token, a value with a control
// byte.
func appendUpgradeRequest(b []byte, r *http.Request) ([]byte, error) {
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	if !isToken(method) {
		return nil, fail(ErrSendRequest, "method: %s is not a token", quote(method))
	}
	uri := r.URL.RequestURI()
	if !isRequestTarget(uri) {
		return nil, fail(ErrSendRequest, "request target: %s has white space or a control byte", quote(uri))
	}
	if !isHost(r.Host) {
		return nil, fail(ErrInvalidHost, "Host: %s is not a valid host", quote(r.Host))
	}
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, uri...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	for _, name := range slices.Sorted(maps.Keys(r.Header)) {
		if name == "Host" {
			continue
		}
		if !isToken(name) {
			return nil, fail(ErrSendRequest, "header name %s is not a token", quote(name))
		}
		for _, v := range r.Header[name] {
			if !isFieldValue(v) {
				return nil, fail(ErrSendRequest, "%s: value has a control byte: %s", rfcName(name), quote(v))
			}
			b = append(b, rfcName(name)...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...), nil
}

// isRequestTarget reports whether s can stand as the request target of a
// request line: printable ASCII, no white space.
func isRequestTarget(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// verifyResponse checks resp, the answer to the upgrade request r for
// proto (RFC 9110, section 7.8; for WebSocket, RFC 6455, section 4.1, with
// key the Sec-WebSocket-Key sent), and returns what was agreed. br is
// where resp was read from, for the start of a refusal's body.
func verifyResponse(r *http.Request, resp *http.Response, br *bufio.Reader, proto, key string) (Handshake, error) {
	hs := Handshake{Protocol: proto, Request: r}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return hs, unexpectedStatus(resp, br)
	}
	if resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
		// RFC 9110, section 7.8: Upgrade is HTTP/1.1's; no other version
		// switches protocols with a 101.
		return hs, fail(ErrReadResponse, "read response: version %s of the 101 is not HTTP/1.1", quote(resp.Proto))
	}
	switch up := resp.Header[hdrUpgrade]; {
	case len(up) == 0:
		return hs, fail(ErrMissingUpgradeHeader, "Upgrade: missing from the 101")
	case len(up) > 1 || !tokenEqual(trimOWS(up[0]), proto):
		return hs, fail(ErrProtocolMismatch, "Upgrade: %s is not the %s requested", quoteLines(up), quote(proto))
	}
	conn := resp.Header[hdrConnection]
	switch found, ok := hasToken(conn, "upgrade"); {
	case len(conn) == 0:
		return hs, fail(ErrMissingConnectionHeader, "Connection: missing from the 101")
	case !ok:
		return hs, fail(ErrMissingConnectionHeader, "Connection: %s is not a valid list", quoteLines(conn))
	case !found:
		return hs, fail(ErrMissingConnectionHeader, "Connection: %s has no \"upgrade\" token", quoteLines(conn))
	}
	if key == "" {
		return hs, nil
	}
	if err := verifyAccept(resp.Header[hdrWSAccept], key); err != nil {
		return hs, err
	}
	var err error
	if hs.Subprotocol, err = verifySubprotocol(r.Header[hdrWSProtocol], resp.Header[hdrWSProtocol]); err != nil {
		return hs, err
	}
	if hs.Deflate, err = verifyExtensions(r.Header[hdrWSExtensions], resp.Header[hdrWSExtensions]); err != nil {
		return hs, err
	}
	return hs, nil
}

// unexpectedStatus returns the error for an answer other than 101, with
// the start of its body when it arrived with the head.
func unexpectedStatus(resp *http.Response, br *bufio.Reader) error {
	if resp.ContentLength > 0 && br.Buffered() > 0 {
		n := min(resp.ContentLength, int64(br.Buffered()), maxQuoted+1)
		body, _ := br.Peek(int(n))
		return fail(ErrUnexpectedStatus, "status: %s is not 101 Switching Protocols; body %s",
			quote(resp.Status), quote(string(trimTrailingSpace(body))))
	}
	return fail(ErrUnexpectedStatus, "status: %s is not 101 Switching Protocols", quote(resp.Status))
}

// trimTrailingSpace returns b without trailing white space and line ends.
func trimTrailingSpace(b []byte) []byte {
	for len(b) > 0 && (isOWS(b[len(b)-1]) || b[len(b)-1] == '\r' || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

// verifyAccept checks the Sec-WebSocket-Accept lines of a 101 against the
// key sent (RFC 6455, section 4.1, item 4 of the checks).
func verifyAccept(lines []string, key string) error {
	switch {
	case len(lines) == 0:
		return fail(ErrAcceptMismatch, "Sec-WebSocket-Accept: missing from the 101")
	case len(lines) > 1:
		return fail(ErrAcceptMismatch, "Sec-WebSocket-Accept: sent %d times", len(lines))
	}
	var buf [acceptKeyLen]byte
	if want := AppendAcceptKey(buf[:0], key); trimOWS(lines[0]) != string(want) {
		return fail(ErrAcceptMismatch, "Sec-WebSocket-Accept: %s does not match the key", quote(lines[0]))
	}
	return nil
}

// verifySubprotocol checks the Sec-WebSocket-Protocol lines of a 101
// against those of the request (RFC 6455, section 4.1, item 6 of the
// checks): at most one value, which the request offered, byte for byte. It
// returns the subprotocol agreed, or "" when the answer names none (an
// empty value also counts as none).
func verifySubprotocol(offer, answer []string) (string, error) {
	switch {
	case len(answer) == 0:
		return "", nil
	case len(answer) > 1:
		return "", fail(ErrSubprotocolMismatch, "Sec-WebSocket-Protocol: sent %d times", len(answer))
	}
	sub := trimOWS(answer[0])
	if sub == "" {
		return "", nil
	}
	offered, found := false, false
	if !scanList(offer, isToken, func(elem string) bool {
		offered = true
		found = elem == sub
		return !found
	}) {
		offered, found = false, false
	}
	switch {
	case !offered:
		return "", fail(ErrSubprotocolMismatch, "Sec-WebSocket-Protocol: %s answered, but none was offered", quote(sub))
	case !isToken(sub):
		return "", fail(ErrSubprotocolMismatch, "Sec-WebSocket-Protocol: %s is not one subprotocol", quote(sub))
	case !found:
		return "", fail(ErrSubprotocolMismatch, "Sec-WebSocket-Protocol: %s was not offered", quote(sub))
	}
	return sub, nil
}

// verifyExtensions checks the Sec-WebSocket-Extensions lines of a 101
// against those of the request (RFC 6455, section 4.1, item 5 of the
// checks; RFC 7692, section 7) and returns the permessage-deflate
// parameters agreed, nil when none. Every extension answered must have
// been offered and be answered once. permessage-deflate must answer one of
// the offers: its parameters known, each given once, with a valid value,
// as section 7.1 allows in an answer to that offer. Any other extension is
// one the caller offered itself, and it is the caller's to check.
func verifyExtensions(offer, answer []string) (*DeflateParams, error) {
	var (
		agreed *DeflateParams
		seen   []string
		err    error
		offers = deflateOffers(offer)
	)
	wellFormed := scanList(answer, isExtension, func(elem string) bool {
		name, params := cutParams(elem)
		for _, s := range seen {
			if tokenEqual(s, name) {
				err = fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: %s is answered twice", quote(name))
				return false
			}
		}
		seen = append(seen, name)
		if !tokenEqual(name, "permessage-deflate") {
			if !offersExtension(offer, name) {
				err = fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: %s was not offered", quote(name))
			}
			return err == nil
		}
		if len(offers) == 0 {
			err = fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: %s was not offered", quote(name))
			return false
		}
		a, fault := parseDeflate(params, true)
		if fault.kind != faultNone {
			err = answerFault(fault)
			return false
		}
		if err = answersOneOf(&a, offers); err != nil {
			return false
		}
		agreed = &DeflateParams{
			ServerNoContextTakeover: a.serverNoContext,
			ClientNoContextTakeover: a.clientNoContext,
			ServerMaxWindowBits:     windowBits(a.serverBits),
			ClientMaxWindowBits:     windowBits(a.clientBits),
		}
		return true
	})
	if !wellFormed {
		return nil, fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: %s is not a valid extension list", quoteLines(answer))
	}
	if err != nil {
		return nil, err
	}
	return agreed, nil
}

// deflateOffers returns the valid permessage-deflate offers in the
// Sec-WebSocket-Extensions lines of a request, none when the lines are not
// a valid list.
func deflateOffers(lines []string) []deflateElement {
	var offers []deflateElement
	if !scanList(lines, isExtension, func(elem string) bool {
		name, params := cutParams(elem)
		if tokenEqual(name, "permessage-deflate") {
			if o, fault := parseDeflate(params, false); fault.kind == faultNone {
				offers = append(offers, o)
			}
		}
		return true
	}) {
		return nil
	}
	return offers
}

// offersExtension reports whether the Sec-WebSocket-Extensions lines of a
// request, a valid list, offer the extension name.
func offersExtension(lines []string, name string) bool {
	found := false
	ok := scanList(lines, isExtension, func(elem string) bool {
		n, _ := cutParams(elem)
		found = tokenEqual(n, name)
		return !found
	})
	return ok && found
}

// answerFault returns the error for a permessage-deflate answer whose
// parameters are not valid, as parseDeflate found them (RFC 7692, section
// 7.1).
func answerFault(f deflateFault) error {
	const prefix = "Sec-WebSocket-Extensions: permessage-deflate has "
	switch f.kind {
	case faultUnknown:
		return fail(ErrExtensionMismatch, prefix+"an unknown parameter %s", quote(f.name))
	case faultTwice:
		return fail(ErrExtensionMismatch, prefix+"%s twice", f.name)
	case faultValue:
		return fail(ErrExtensionMismatch, prefix+"%s with a value, %s", f.name, quote(f.value))
	case faultNoValue:
		return fail(ErrExtensionMismatch, prefix+"%s without a value", f.name)
	}
	return fail(ErrExtensionMismatch, prefix+"%s=%s, not 8 to 15", f.name, quote(f.value))
}

// answersOneOf returns nil when the permessage-deflate answer a answers
// one of offers, as it must (RFC 7692, section 5), or else the error for
// the first offer.
func answersOneOf(a *deflateElement, offers []deflateElement) error {
	var first error
	for i := range offers {
		err := checkDeflateAnswer(a, &offers[i])
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// checkDeflateAnswer checks the answer a against the offer o (RFC 7692,
// sections 7.1.1.1, 7.1.2.1 and 7.1.2.2): an offered
// server_no_context_takeover is accepted only by answering it, an offered
// server_max_window_bits only by answering no more; client_max_window_bits
// is answered only when offered, and no more than an offered value. The
// server may add server_no_context_takeover, client_no_context_takeover
// and server_max_window_bits unasked.
func checkDeflateAnswer(a, o *deflateElement) error {
	switch {
	case o.serverNoContext && !a.serverNoContext:
		return fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: permessage-deflate lacks server_no_context_takeover, which was offered")
	case o.serverBits > 0 && a.serverBits == 0 && o.serverBits < maxWindowBits:
		return fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: permessage-deflate lacks server_max_window_bits, offered as %d", o.serverBits)
	case o.serverBits > 0 && a.serverBits > o.serverBits:
		return fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: permessage-deflate has server_max_window_bits=%d, more than the %d offered", a.serverBits, o.serverBits)
	case a.clientBits != 0 && o.clientBits == 0:
		return fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: permessage-deflate has client_max_window_bits, which was not offered")
	case o.clientBits > 0 && a.clientBits > o.clientBits:
		return fail(ErrExtensionMismatch, "Sec-WebSocket-Extensions: permessage-deflate has client_max_window_bits=%d, more than the %d offered", a.clientBits, o.clientBits)
	}
	return nil
}

// A connWatch bounds the I/O of a handshake on conn by a context: the
// context's end, by cancellation or deadline, sets a deadline in the past
// on conn, which fails the read or write under way. The context is the only
// source of deadlines, so a failed read or write is the context's doing
// exactly when the context has ended. It runs no goroutine until the
// context ends.
type connWatch struct {
	conn net.Conn
	stop func() bool

	mu       sync.Mutex // orders interrupt and release
	released bool
}

// aLongTimeAgo is a deadline that has passed.
var aLongTimeAgo = time.Unix(1, 0) // read-only

// watch starts watching conn with ctx.
func watch(ctx context.Context, conn net.Conn) *connWatch {
	w := &connWatch{conn: conn}
	w.stop = context.AfterFunc(ctx, w.interrupt)
	return w
}

// interrupt fails the I/O under way, unless the watch has been released.
func (w *connWatch) interrupt() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.released {
		w.conn.SetDeadline(aLongTimeAgo)
	}
}

// release stops the watch and clears the connection's deadlines, so that
// none is left once it returns. It returns err, or the error clearing them
// when err is nil.
func (w *connWatch) release(err error) error {
	w.stop()
	w.mu.Lock()
	w.released = true
	w.mu.Unlock()
	if e := w.conn.SetDeadline(time.Time{}); e != nil && err == nil {
		return fail(ErrReadResponse, "clear deadline: %w", e)
	}
	return err
}

// ctxCause returns the cause of ctx's end when it has ended, which is
// then why err happened, or else err.
func ctxCause(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// A clientError is an error of Dial or Upgrade: a one-line message that
// names what was wrong, wrapping the foreign error that caused it if any,
// and the client-side sentinel it matches.
type clientError struct {
	sentinel error
	err      error
}

func (e *clientError) Error() string   { return e.err.Error() }
func (e *clientError) Unwrap() []error { return []error{e.sentinel, e.err} }

var _ error = (*clientError)(nil)

// fail returns a clientError matching sentinel, with the message "cooper: "
// followed by format's result; a %w verb in format wraps a foreign cause.
func fail(sentinel error, format string, args ...any) error {
	return &clientError{sentinel: sentinel, err: fmt.Errorf("cooper: "+format, args...)}
}
