package cooper

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// This file is the client's upgrade over a connection it has: Upgrade, the
// request it sends, the exchange bounded by the request's context, and the
// client's errors. Dial (dial.go) reaches the server first; the answer is
// checked in client_verify.go.

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
// "upgrade" token (RFC 9110, section 7.8); up to five interim 1xx answers
// before it are skipped, and a sixth fails with [ErrUnexpectedStatus]. The
// heads of the answers may take 1 MiB in all ([http.DefaultMaxHeaderBytes]);
// past that the upgrade fails with [ErrReadResponse]. The 101's head ends at
// its blank line whatever Content-Length or Transfer-Encoding it has (RFC
// 9112, section 6.3). For the "websocket" protocol Upgrade also does the
// client's part of the RFC 6455 opening handshake (section 4.1): it sends a
// fresh Sec-WebSocket-Key (unless req has one) and Sec-WebSocket-Version:
// 13, checks Sec-WebSocket-Accept, and checks that any subprotocol and
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
	return upgrade(conn, req, rand.Reader, clientTimeout, opts)
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

// upgrade is Upgrade with the source of Sec-WebSocket-Key nonces and the
// bound of a context without a deadline as parameters.
func upgrade(conn net.Conn, req *http.Request, random io.Reader, timeout time.Duration, opts []UpgradeOption) (net.Conn, error) {
	if req == nil {
		return nil, fail(ErrNilRequest, "request: nil")
	}
	if conn == nil {
		return nil, fail(ErrSendRequest, "connection: nil")
	}
	r, proto, err := cloneRequest(req, "")
	if err != nil {
		return nil, err
	}
	c := newUpgradeConfig(opts)
	b, key, err := c.request(r, proto, random)
	if err != nil {
		return nil, err
	}
	ctx, cancel := handshakeContext(r.Context(), timeout)
	defer cancel()
	w := watch(ctx, conn)
	nc, err := c.exchange(ctx, conn, r, b, proto, key)
	if err = w.release(err); err != nil {
		return nil, err
	}
	return nc, nil
}

// handshakeContext returns ctx, bounded by timeout when it has no
// deadline.
func handshakeContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}

// cloneRequest returns a copy of req to send, which the upgrade may modify,
// and the protocol it asks for: the one in its Upgrade header, or the one
// impliedProtocol finds with proto, the protocol set with WithProtocol,
// which the copy's Upgrade then names. The copy has a URL, and a Host, the
// URL's when req has none; req's context stays the copy's.
func cloneRequest(req *http.Request, proto string) (*http.Request, string, error) {
	proto = impliedProtocol(req, proto)
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
	if r.URL == nil {
		return nil, "", fail(ErrInvalidHost, "URL: missing")
	}
	if r.Host == "" {
		r.Host = r.URL.Host
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
	resp, br, err := readResponse(conn, r)
	if err != nil {
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

// readResponse reads the answer to r from conn, a server's or a proxy's,
// skipping up to max1xx interim responses (RFC 9110, section 15.2) before
// it, and returns it with the reader that holds what came after its head.
// The heads may take maxResponseHead bytes in all. An error's message is
// cut to maxForeignMessage bytes.
func readResponse(conn net.Conn, r *http.Request) (*http.Response, *bufio.Reader, error) {
	lr := &io.LimitedReader{R: conn, N: maxResponseHead}
	br := bufio.NewReader(lr)
	for n := 0; ; n++ {
		resp, err := http.ReadResponse(br, r)
		if err != nil {
			if lr.N == 0 {
				err = fmt.Errorf("head longer than %d bytes", maxResponseHead)
			}
			return nil, nil, cutMessage(err)
		}
		if resp.StatusCode/100 != 1 || resp.StatusCode == http.StatusSwitchingProtocols || n == max1xx {
			return resp, br, nil
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
		h["Authorization"] = []string{string(appendBasicAuth(nil, u))}
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

// appendBasicAuth appends the Basic credentials of u to b, as an
// Authorization or Proxy-Authorization value (RFC 7617, section 2).
func appendBasicAuth(b []byte, u *url.Userinfo) []byte {
	password, _ := u.Password()
	b = append(b, "Basic "...)
	return base64.StdEncoding.AppendEncode(b, []byte(u.Username()+":"+password))
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
	// An upgrade request has fewer names than buf holds, so sorting them
	// allocates nothing (TestAppendUpgradeRequestAllocs).
	var buf [16]string
	names := buf[:0]
	for name := range r.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "Host" {
			continue
		}
		if !isToken(name) {
			return nil, fail(ErrSendRequest, "header name: %s is not a token", quote(name))
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

// maxForeignMessage is how much of a foreign error's message the client's
// error keeps: net/http quotes a malformed line of a response whole, and a
// server may send one of nearly maxResponseHead bytes.
const maxForeignMessage = 2 * maxQuoted

// cutMessage returns err, or when its message is longer than
// maxForeignMessage, err with its message cut there, at the start of a
// rune, and marked with "...".
func cutMessage(err error) error {
	msg := err.Error()
	if len(msg) <= maxForeignMessage {
		return err
	}
	i := maxForeignMessage
	for i > 0 && !utf8.RuneStart(msg[i]) {
		i--
	}
	return &cutError{msg: msg[:i] + "...", err: err}
}

// A cutError is a foreign error whose message is cut.
type cutError struct {
	msg string
	err error
}

func (e *cutError) Error() string { return e.msg }
func (e *cutError) Unwrap() error { return e.err }
