package cooper

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// This file is Dial and how it reaches the server: the target the URL
// names, an HTTP proxy's CONNECT, TLS.

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
	return dial(req, rand.Reader, clientTimeout, opts)
}

// dial is Dial with the source of Sec-WebSocket-Key nonces and the bound
// of a context without a deadline as parameters.
func dial(req *http.Request, random io.Reader, timeout time.Duration, opts []DialOption) (net.Conn, error) {
	if req == nil {
		return nil, fail(ErrNilRequest, "request: nil")
	}
	c := newDialConfig(opts)
	r, proto, err := cloneRequest(req, c.protocol)
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
	ctx, cancel := handshakeContext(r.Context(), timeout)
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

// A target is where Dial connects: the server's address, and how.
type target struct {
	addr       string // host:port of the server
	useTLS     bool
	serverName string // the URL's host, for SNI
}

// dialTarget works out the server's address from r's URL, and sets r's
// scheme to http or https, as proxies and the request line know them.
func dialTarget(r *http.Request, forceTLS bool) (target, error) {
	u := r.URL
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
	if t.useTLS {
		u.Scheme = "https"
	}
	port := defaultPort(u.Scheme)
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || p[0] == '0' {
			return target{}, fail(ErrInvalidHost, "URL: port %s is not 1 to 65535", quote(p))
		}
		port = p
	}
	t.addr = net.JoinHostPort(host, port)
	t.serverName = host
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
		port = defaultPort("http")
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
		b = append(b, "Proxy-Authorization: "...)
		b = appendBasicAuth(b, u)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	if _, err := conn.Write(b); err != nil {
		return nil, fail(ErrDialFailed, "proxy: write CONNECT: %w", ctxCause(ctx, err))
	}
	resp, br, err := readResponse(conn, &http.Request{Method: http.MethodConnect})
	if err != nil {
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
