package cooper

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Hijack returns a handler that upgrades requests to one of the protocols
// set with [Protocols] and calls h with the connection and the agreed
// protocol. A request that cannot be upgraded gets an error response with a
// one-line reason; h is not called. h owns conn and must close it; where
// and when h runs, and what happens when it panics, is the handler's
// contract in the package documentation (Handlers).
//
// Hijack(h, opts...) is [New](opts...) with a handler that is given the
// protocol; use [Upgrader.Handler] for the subprotocol, the request and
// graceful shutdown. Panics if h is nil.
func Hijack(h func(conn net.Conn, proto string), opts ...Option) http.Handler {
	if h == nil {
		panic("cooper: Hijack: nil handler")
	}
	return &handler{u: New(opts...), proto: h}
}

// An Upgrader takes HTTP requests over to another protocol: it validates
// each request, negotiates the protocol, subprotocol and extensions, takes
// the connection over, answers 101 and hands the connection over. Its
// configuration is fixed by [New]; it is safe for concurrent use.
//
// Refusals are answered through the ResponseWriter with the status and
// headers RFC 6455 and RFC 9110 ask for and never take the connection over:
//
//   - a method other than GET: 405 with Allow: GET ([ErrMethod]);
//   - HTTP/1.0: 426 ([ErrHTTPVersion]);
//   - a request that declares a body: 400 ([ErrRequestBody]);
//   - no "upgrade" token in Connection, or no Upgrade: 426 ([ErrNotUpgrade]);
//   - no acceptable protocol in Upgrade: 426 ([ErrProtocol]);
//   - Connection, Upgrade or Sec-WebSocket-Protocol not a valid list: 400
//     ([ErrMalformedHeader]);
//   - for "websocket", a Sec-WebSocket-Version other than 13 or missing: 426,
//     or sent twice: 400 ([ErrWebSocketVersion]); a Sec-WebSocket-Key
//     missing, sent twice, or not 16 base64-encoded bytes: 400
//     ([ErrWebSocketKey]);
//   - a cross-origin browser request, or an Origin longer than 512 bytes:
//     403 ([ErrOrigin]);
//   - while shutting down, holding [MaxConnections], or past [UpgradeRate]:
//     503 with Retry-After ([ErrShutdown], [ErrTooManyConnections],
//     [ErrUpgradeRate]);
//   - when the client holds [MaxConnectionsPerClient]: 429 with
//     Retry-After ([ErrTooManyClientConnections]).
//
// Every 426 carries Upgrade (the [Protocols] list) and Connection: Upgrade;
// without a [Protocols] list there is nothing to name, so those are 400
// instead. A version refusal also carries Sec-WebSocket-Version: 13.
//
// Over HTTP/2 and HTTP/3 the request is an extended CONNECT (RFC 8441, RFC
// 9220): a method other than CONNECT gets 405 with Allow: CONNECT, a
// CONNECT without :protocol 400 ([ErrNotUpgrade]), and what would be a 426
// is a 400, since HTTP/2 and HTTP/3 responses may not carry Upgrade or
// Connection (RFC 9113, section 8.2.2; RFC 9114, section 4.2). There a
// Sec-WebSocket-Key, which RFC 8441, section 5 does not use, is ignored,
// and no Sec-WebSocket-Accept is sent.
type Upgrader struct {
	cfg *config

	ctx    context.Context // cancelled by Shutdown, with ErrShutdown; handlers' contexts follow it
	cancel context.CancelCauseFunc

	// mu guards the ring of tracked connections and the maps below. The
	// ring is kept rather than a map[*tracked]ownState, which was measured:
	// the map allocates 48 B per upgrade through Hijack instead of 64, with
	// the same two allocations, only because the 16 B of ring links move
	// into the map's table, where each live connection then holds a slot
	// of 40 B (the key and its ownState) at the table's load factor, and
	// the table does not shrink after a peak. Linking into the ring is four
	// pointer writes, under a lock every upgrade takes, where the map
	// hashes; the time per upgrade did not differ beyond the machine's
	// noise.
	mu     sync.Mutex
	active tracked // sentinel of the ring of connections whose handlers run

	// closed is set when Shutdown is called. It is not ctx.Err() != nil:
	// with DrainTime, Shutdown refuses new upgrades at once but cancels
	// ctx, which the connections of Accept share, only once the drain is
	// over.
	closed atomic.Bool
	forced atomic.Bool  // Shutdown's deadline passed: every connection is being closed
	drain  atomic.Int32 // drainNone, drainRunning or drainOver

	// With DrainTime or MaxConnectionsPerClient, what each tracked
	// connection holds beyond its ring entry, and the connections held per
	// client address; guarded by mu. Both are nil when those options are
	// off, so an upgrade then costs what it did without them.
	own     map[*tracked]ownState
	clients map[netip.Addr]int

	rate rateState // with UpgradeRate

	// The clock of the drain and of UpgradeRate: time since New, and a
	// wait that ends early when ctx is done. Tests replace them.
	now   func() time.Duration
	sleep func(ctx context.Context, d time.Duration) error

	// Counters, read by Stats without locks.
	count    atomic.Int64 // connections in the ring
	upgrades atomic.Uint64
	failures atomic.Uint64
	panics   atomic.Uint64
	refused  [len(refusalKinds)]atomic.Uint64
}

// Stats are an Upgrader's counters, from [New] to the moment they are read.
type Stats struct {
	// Active counts the connections the Upgrader holds: those being taken
	// over and those handed over whose handler still runs (for
	// [Upgrader.Accept], whose caller's ServeHTTP still runs, over HTTP/2
	// while its stream lasts). It is what [MaxConnections] bounds and what
	// [Upgrader.Shutdown] waits for.
	Active int
	// Upgrades counts the connections handed over.
	Upgrades uint64
	// Failures counts upgrades that failed after the request was accepted,
	// writing the 101 (see [HandshakeTimeout]) or closed by
	// [Upgrader.Shutdown] before their handler started.
	Failures uint64
	// Panics counts handlers that panicked.
	Panics uint64
	// Refusals counts refused requests by the sentinel they match, from
	// [ErrMethod] to [ErrHijackFailed]; a sentinel with no refusal is
	// absent.
	Refusals map[error]uint64
	// ShuttingDown is true once [Upgrader.Shutdown] has been called: new
	// upgrades are refused with 503 and [ErrShutdown] from then on.
	ShuttingDown bool
	// Draining is true while Shutdown ends the handlers' contexts one by
	// one, spread over [DrainTime]; false before and after, and always
	// false without DrainTime.
	Draining bool
}

// refusalKinds are the sentinels refusals are counted by, in the order of
// Upgrader.refused.
//
// read-only
var refusalKinds = [...]error{
	ErrMethod, ErrHTTPVersion, ErrRequestBody, ErrNotUpgrade, ErrProtocol, ErrMalformedHeader,
	ErrWebSocketKey, ErrWebSocketVersion, ErrOrigin, ErrShutdown, ErrTooManyConnections,
	ErrUpgradeRate, ErrTooManyClientConnections, ErrResponseHeader, ErrHijackFailed,
}

// Stats returns the Upgrader's counters. It takes no lock that the request
// path takes, so it may be called at any time, as often as wanted.
func (u *Upgrader) Stats() Stats {
	s := Stats{
		Active:   int(u.count.Load()),
		Upgrades: u.upgrades.Load(),
		Failures: u.failures.Load(),
		Panics:   u.panics.Load(),
		Refusals: map[error]uint64{},

		ShuttingDown: u.closed.Load(),
		Draining:     u.drain.Load() == drainRunning,
	}
	for i := range u.refused {
		if n := u.refused[i].Load(); n > 0 {
			s.Refusals[refusalKinds[i]] = n
		}
	}
	return s
}

// New returns an Upgrader configured by opts. The options are read once,
// here; the Upgrader never changes afterwards.
func New(opts ...Option) *Upgrader {
	u := &Upgrader{cfg: newConfig(opts)}
	u.ctx, u.cancel = context.WithCancelCause(context.Background())
	u.active.prev, u.active.next = &u.active, &u.active
	if u.cfg.drainTime > 0 || u.cfg.maxPerClient > 0 {
		u.own = map[*tracked]ownState{}
	}
	if u.cfg.maxPerClient > 0 {
		u.clients = map[netip.Addr]int{}
	}
	start := time.Now()
	u.now = func() time.Duration { return time.Since(start) }
	u.sleep = sleep
	return u
}

// A Handshake is what an upgrade agreed on, for the layer that speaks the
// new protocol.
type Handshake struct {
	// Protocol is the agreed Upgrade protocol, for instance "websocket".
	Protocol string
	// Subprotocol is the agreed Sec-WebSocket-Protocol; "" when none.
	Subprotocol string
	// Deflate holds the agreed permessage-deflate parameters, which the
	// framing layer must honour; nil when the extension was not agreed.
	Deflate *DeflateParams
	// Request is the upgrade request. Its context keeps the request's
	// values, is not cancelled when ServeHTTP returns, and is cancelled when
	// the Upgrader shuts down (with [DrainTime], at the connection's turn),
	// with [ErrShutdown] as its [context.Cause], so a framing layer can tell
	// its peer why (a WebSocket close with 1001 or 1012). Its ProtoMajor is
	// the HTTP version that carried the upgrade: 1, 2 when the connection is
	// an HTTP/2 stream (RFC 8441), 3 when it is an HTTP/3 stream (RFC 9220).
	// Over HTTP/2 its Body is the stream, which the connection reads;
	// otherwise it is empty.
	Request *http.Request
}

// Handler returns a handler that upgrades requests as the Upgrader is
// configured and calls h with the connection and what was agreed. A request
// that cannot be upgraded gets an error response with a one-line reason; h
// is not called. h owns conn and must close it; where and when h runs, how
// long hs.Request's context lasts, and what happens when h panics, is the
// handler's contract in the package documentation (Handlers).
//
// Panics if h is nil.
func (u *Upgrader) Handler(h func(conn net.Conn, hs *Handshake)) http.Handler {
	if h == nil {
		panic("cooper: Handler: nil handler")
	}
	return &handler{u: u, handshake: h}
}

// Accept upgrades the connection of r and returns it with what was agreed,
// for callers that stay inside their own handler. On a refusal it has
// already answered through w, and returns an [*UpgradeError]; on any error
// the connection is not handed over.
//
// The caller owns conn and must close it. No deadline is set on it, and the
// first bytes read are those the client sent after its request. While the
// caller's ServeHTTP runs, net/http keeps its per-connection state
// (buffers, the parsed request, a grown stack), and the Upgrader tracks
// conn for [Upgrader.Shutdown]; returning from ServeHTTP, for instance
// after starting a goroutine for conn, releases both. hs.Request's context
// is not cancelled when ServeHTTP returns, only by Shutdown. Over HTTP/2
// and HTTP/3, conn is the request's stream, as for a handler (see the
// package documentation, Handlers): over HTTP/2 the caller must be done
// with it before ServeHTTP returns, and must not use it afterwards. There
// the stream may end before ServeHTTP returns, when the client resets it or
// closes its connection: the Upgrader then stops tracking conn at once, its
// Read fails with the stream's error and its Write with another error, not
// net.ErrClosed, which only a Close causes (the caller's, or Shutdown's once
// its ctx is done).
func (u *Upgrader) Accept(w http.ResponseWriter, r *http.Request) (net.Conn, *Handshake, error) {
	t, err := u.accept(w, r, nil)
	if err != nil {
		return nil, nil, err
	}
	conn, hs := t.netConn(), t.hs
	t.hs = nil
	context.AfterFunc(r.Context(), func() {
		if s, ok := conn.(*streamConn); ok {
			s.stop()
		}
		u.untrack(t)
	})
	return conn, hs, nil
}

// A handler is the http.Handler of [Hijack] and [Upgrader.Handler]; one of
// proto and handshake is set.
type handler struct {
	u         *Upgrader
	proto     func(net.Conn, string)
	handshake func(net.Conn, *Handshake)
}

// ServeHTTP upgrades the request and starts the handler on its own
// goroutine, then returns so the server releases the request's state. An
// HTTP/2 stream ends when ServeHTTP returns, so there the handler runs
// inside it; a stream taken over by a StreamTakeover outlives it.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t, err := h.u.accept(w, r, h)
	if err != nil {
		return
	}
	if s, ok := t.netConn().(*streamConn); ok {
		defer s.end()
		t.run()
		return
	}
	go t.run()
}

// accept is the pipeline every upgrade takes, for the handler h (nil for
// Accept), one step a line, in the order of the package documentation:
// validate, negotiate, the application's response headers, admit, then
// take over, answer and hand over (switchProtocols). Nothing is written to
// w before the connection is taken over; a refusal is answered through w
// and the connection is not taken over. On success the connection is
// t.netConn(), tracked until untrack.
func (u *Upgrader) accept(w http.ResponseWriter, r *http.Request, h *handler) (*tracked, error) {
	d, rej := validate(r, u.cfg)
	if rej != nil {
		return nil, u.refuse(w, r, rej)
	}
	d, rej = negotiate(r, u.cfg, d)
	if rej != nil {
		return nil, u.refuse(w, r, rej)
	}
	extra, rej := u.responseHeaders(r, d.protocol)
	if rej != nil {
		return nil, u.refuse(w, r, rej)
	}
	t, rej := u.admit(r, &d, h)
	if rej != nil {
		return nil, u.refuse(w, r, rej)
	}
	handedOver := false
	defer func() {
		// Also when a Hijack of a middleware's making panics.
		if !handedOver {
			u.untrack(t)
		}
	}()
	if err := u.switchProtocols(w, r, &d, extra, t); err != nil {
		return nil, u.countFailure(err)
	}
	handedOver = true
	u.upgrades.Add(1)
	return t, nil
}

// refuse answers r, refused with rej, through w, then counts and reports
// the refusal. It returns rej.
func (u *Upgrader) refuse(w http.ResponseWriter, r *http.Request, rej *UpgradeError) error {
	u.cfg.writeRefusal(w, r, rej)
	u.countRefusal(rej)
	return rej
}

// countFailure counts and reports err, which ended an upgrade after its
// admission: as a refusal when nothing was sent yet (an *UpgradeError,
// already answered where w could still answer), or else as a failure. It
// returns err.
func (u *Upgrader) countFailure(err error) error {
	if rej, ok := err.(*UpgradeError); ok {
		u.countRefusal(rej)
		return err
	}
	u.failures.Add(1)
	u.report(err)
	return err
}

// errClosedByShutdown is reported for an upgrade whose connection
// Shutdown closed before its handler started.
var errClosedByShutdown = fmt.Errorf("%w: the connection was closed before its handler started", ErrShutdown)

// A decision is what validate and negotiate agreed on for a request.
type decision struct {
	protocol    string // the agreed Upgrade protocol
	subprotocol string // the agreed Sec-WebSocket-Protocol, or ""
	key         string // Sec-WebSocket-Key without white space; "" unless protocol is websocket over HTTP/1.1
	deflate     deflateAnswer
	deflateOK   bool // permessage-deflate was agreed
}

// validate checks r as an upgrade request and picks the protocol: over
// HTTP/1.1 an Upgrade (RFC 9110, section 7.8), over HTTP/2 an extended
// CONNECT (RFC 8441); for WebSocket, as RFC 6455, section 4.2.1 and RFC
// 8441, section 5 ask; then the origin policy. The decision it returns
// holds the protocol and, for WebSocket over HTTP/1.1, the key to answer.
// It does no I/O and does not allocate unless it refuses.
func validate(r *http.Request, c *config) (d decision, rej *UpgradeError) {
	stream := r.ProtoMajor >= 2
	if stream {
		d.protocol, rej = validateConnect(r, c)
	} else {
		d.protocol, rej = validateUpgrade(r, c)
	}
	if rej == nil && isWebSocket(d.protocol) {
		d.key, rej = validateWebSocket(r.Header, stream)
	}
	if rej == nil {
		rej = validateOrigin(r, c)
	}
	if rej != nil {
		return decision{}, rej
	}
	return d, nil
}

// validateUpgrade checks r, an HTTP/1.x request, as an upgrade request
// (RFC 9110, section 7.8) and picks the Upgrade protocol.
func validateUpgrade(r *http.Request, c *config) (string, *UpgradeError) {
	if r.Method != http.MethodGet {
		return "", refusal(http.StatusMethodNotAllowed, ErrMethod, http.Header{"Allow": {"GET"}},
			"method: %s is not GET", quote(r.Method))
	}
	if !r.ProtoAtLeast(1, 1) {
		return "", c.upgradeRequired(ErrHTTPVersion, "HTTP version: %s ignores Upgrade (RFC 9110, section 7.8)", quote(r.Proto))
	}
	// Transfer-Encoding first: net/http sets ContentLength to -1 for it.
	if len(r.TransferEncoding) > 0 {
		return "", refusal(http.StatusBadRequest, ErrRequestBody, nil,
			"Transfer-Encoding: %s: an upgrade request has no body", quoteLines(r.TransferEncoding))
	}
	if r.ContentLength != 0 {
		return "", refusal(http.StatusBadRequest, ErrRequestBody, nil,
			"Content-Length: %s: an upgrade request has no body", quote(strconv.FormatInt(r.ContentLength, 10)))
	}
	conn := r.Header[hdrConnection]
	switch found, ok := hasToken(conn, "upgrade"); {
	case !ok:
		return "", malformed(hdrConnection, conn)
	case !found:
		return "", c.upgradeRequired(ErrNotUpgrade, "Connection: %s has no \"upgrade\" token", quoteLines(conn))
	}
	upgrade := r.Header[hdrUpgrade]
	proto, ok := negotiateProtocol(upgrade, c.protocols)
	switch {
	case !ok:
		return "", malformed(hdrUpgrade, upgrade)
	case proto == "" && len(upgrade) == 0:
		return "", c.upgradeRequired(ErrNotUpgrade, "Upgrade: missing")
	case proto == "":
		return "", c.upgradeRequired(ErrProtocol, "Upgrade: %s has none of %s", quoteLines(upgrade), quote(c.upgradeList))
	}
	return proto, nil
}

// isWebSocket reports whether proto is RFC 6455's Upgrade token.
func isWebSocket(proto string) bool { return tokenEqual(proto, "websocket") }

// upgradeRequired refuses a request that did not ask for one of the
// configured protocols: 426 with Upgrade and Connection (RFC 9110, section
// 15.5.22), or 400 when no protocols are configured and so none can be
// named.
func (c *config) upgradeRequired(err error, format string, args ...any) *UpgradeError {
	if c.upgradeList == "" {
		return refusal(http.StatusBadRequest, err, nil, format, args...)
	}
	h := http.Header{hdrUpgrade: {c.upgradeList}, hdrConnection: {"Upgrade"}}
	return refusal(http.StatusUpgradeRequired, err, h, format, args...)
}

// malformed refuses a request whose header key is not a well-formed list.
func malformed(key string, lines []string) *UpgradeError {
	return refusal(http.StatusBadRequest, ErrMalformedHeader, nil, "%s: %s is not a valid list", rfcName(key), quoteLines(lines))
}

// validateWebSocket checks the headers RFC 6455, section 4.2.1 requires of
// a WebSocket opening handshake and returns the key without white space;
// over an HTTP/2 stream, those RFC 8441, section 5 keeps: the version, not
// the key, and the key is "".
func validateWebSocket(h http.Header, stream bool) (key string, rej *UpgradeError) {
	switch v := h[hdrWSVersion]; {
	case len(v) > 1:
		return "", refusal(http.StatusBadRequest, ErrWebSocketVersion, http.Header{hdrWSVersion: {"13"}},
			"Sec-WebSocket-Version: sent %d times", len(v))
	case len(v) == 0 || trimOWS(v[0]) != "13":
		// RFC 6455, section 4.2.2: answer 426 with the versions understood;
		// RFC 9110, section 15.5.22: a 426 names the protocol in Upgrade,
		// which HTTP/2 forbids, so there the answer is 400.
		status, h := http.StatusUpgradeRequired, http.Header{hdrWSVersion: {"13"}, hdrUpgrade: {"websocket"}, hdrConnection: {"Upgrade"}}
		if stream {
			status, h = http.StatusBadRequest, http.Header{hdrWSVersion: {"13"}}
		}
		if len(v) == 0 {
			return "", refusal(status, ErrWebSocketVersion, h, "Sec-WebSocket-Version: missing")
		}
		return "", refusal(status, ErrWebSocketVersion, h, "Sec-WebSocket-Version: %s is not 13", quote(v[0]))
	}
	if stream {
		return "", nil
	}
	k := h[hdrWSKey]
	switch {
	case len(k) == 0:
		return "", refusal(http.StatusBadRequest, ErrWebSocketKey, nil, "Sec-WebSocket-Key: missing")
	case len(k) > 1:
		return "", refusal(http.StatusBadRequest, ErrWebSocketKey, nil, "Sec-WebSocket-Key: sent %d times", len(k))
	case !isValidKey(k[0]):
		return "", refusal(http.StatusBadRequest, ErrWebSocketKey, nil, "Sec-WebSocket-Key: %s does not decode to 16 bytes", quote(k[0]))
	}
	return trimOWS(k[0]), nil
}

// negotiate settles what the handler gets beyond validate's decision d:
// for WebSocket, the subprotocol and permessage-deflate. It does no I/O and
// does not allocate unless it refuses or a SelectSubprotocol function is
// set.
func negotiate(r *http.Request, c *config, d decision) (decision, *UpgradeError) {
	if !isWebSocket(d.protocol) {
		return d, nil
	}
	var sub string
	var rej *UpgradeError
	if c.selectSubprotocol != nil {
		sub, rej = selectSubprotocol(r, c.selectSubprotocol)
	} else if s, ok := negotiateSubprotocol(r.Header, c.subprotocols); ok {
		sub = s
	} else {
		rej = malformed(hdrWSProtocol, r.Header[hdrWSProtocol])
	}
	if rej != nil {
		return d, rej
	}
	d.subprotocol = sub
	if c.deflate != nil {
		d.deflate, d.deflateOK = negotiateDeflate(r.Header[hdrWSExtensions], c.deflate)
	}
	return d, nil
}

// selectSubprotocol asks fn, the SelectSubprotocol function, to choose among
// the subprotocols r offers, and checks that its choice was offered.
func selectSubprotocol(r *http.Request, fn func(*http.Request, []string) string) (string, *UpgradeError) {
	lines := r.Header[hdrWSProtocol]
	n := 0
	if !scanList(lines, isToken, func(string) bool { n++; return true }) {
		return "", malformed(hdrWSProtocol, lines)
	}
	// allocates: once, and only with a SelectSubprotocol function, which
	// keeps offered.
	offered := make([]string, 0, n)
	scanList(lines, isToken, func(elem string) bool {
		offered = append(offered, elem)
		return true
	})
	sub := fn(r, offered)
	if sub != "" && !slices.Contains(offered, sub) {
		return "", refusal(http.StatusInternalServerError, ErrResponseHeader, nil,
			"Sec-WebSocket-Protocol: SelectSubprotocol chose %s, which the client did not offer (%s)", quote(sub), quoteLines(lines))
	}
	return sub, nil
}

// responseHeaders calls the ResponseHeaders function, if any, and checks
// what it returns: names must be tokens, values free of control bytes, and
// no header may be one negotiation owns or a 101 must not carry (RFC 9110,
// section 8.6). Upgrade, Connection and Sec-WebSocket-Accept are dropped:
// cooper sends its own.
func (u *Upgrader) responseHeaders(r *http.Request, proto string) (http.Header, *UpgradeError) {
	if u.cfg.responseHeaders == nil {
		return nil, nil
	}
	h := u.cfg.responseHeaders(r, proto)
	for name, values := range h {
		switch {
		case !isToken(name):
			return nil, refusal(http.StatusInternalServerError, ErrResponseHeader, nil,
				"ResponseHeaders: header name %s is not a token", quote(name))
		case tokenEqual(name, hdrWSProtocol):
			return nil, refusal(http.StatusInternalServerError, ErrResponseHeader, nil,
				"ResponseHeaders: %s is negotiated by cooper: choose it with SelectSubprotocol or Subprotocols", quote(name))
		case tokenEqual(name, hdrWSExtensions):
			return nil, refusal(http.StatusInternalServerError, ErrResponseHeader, nil,
				"ResponseHeaders: %s is negotiated by cooper: turn permessage-deflate on with Deflate", quote(name))
		case tokenEqual(name, hdrContentLength), tokenEqual(name, "Transfer-Encoding"):
			return nil, refusal(http.StatusInternalServerError, ErrResponseHeader, nil,
				"ResponseHeaders: %s cannot be sent in a 101, which has no body (RFC 9110, section 8.6)", quote(name))
		}
		for _, v := range values {
			if !isFieldValue(v) {
				return nil, refusal(http.StatusInternalServerError, ErrResponseHeader, nil,
					"ResponseHeaders: value of %s has a control byte: %s", quote(name), quote(v))
			}
		}
	}
	return h, nil
}

// isOwnHeader reports whether name is a header cooper writes into every
// 101 itself.
func isOwnHeader(name string) bool {
	return tokenEqual(name, hdrUpgrade) || tokenEqual(name, hdrConnection) || tokenEqual(name, hdrWSAccept)
}

// switchProtocols takes the connection over, answers and hands it over:
// over HTTP/1.1 by hijacking it and writing the 101 (switchConn), over
// HTTP/2 and HTTP/3 by answering 200 on the stream, which becomes the
// connection (switchStream; RFC 8441, RFC 9220). The connection to hand
// over is held by t before the answer is written (through a
// StreamTakeover, as soon as it is taken), so a Shutdown whose deadline
// passes meanwhile closes it, and one that passed makes the upgrade fail
// with errClosedByShutdown: the handler must not start after Shutdown
// returned. A failure before anything was sent is an *UpgradeError.
func (u *Upgrader) switchProtocols(w http.ResponseWriter, r *http.Request, d *decision, extra http.Header, t *tracked) error {
	var err error
	if r.ProtoMajor >= 2 {
		err = u.switchStream(w, r, d, extra, t)
	} else {
		err = u.switchConn(w, r, d, extra, t)
	}
	if _, refused := err.(*UpgradeError); refused || !u.forced.Load() {
		return err
	}
	if err == nil {
		// Shutdown closes every connection, this one too, maybe while the
		// answer was written.
		t.netConn().Close()
	}
	return errClosedByShutdown
}

// switchConn takes an HTTP/1.1 connection over, holds what is to be handed
// over in t, and answers 101.
func (u *Upgrader) switchConn(w http.ResponseWriter, r *http.Request, d *decision, extra http.Header, t *tracked) error {
	conn, brw, rej := takeOver(w, r, u.cfg)
	if rej != nil {
		return rej
	}
	if !u.hold(t, handOver(conn, brw.Reader)) {
		conn.Close()
		return errClosedByShutdown
	}
	return writeAnswer(conn, brw, d, extra, u.cfg.handshakeTimeout)
}

// takeOver hijacks the connection through http.ResponseController, so a
// ResponseWriter wrapped by middleware that has an Unwrap method works.
// When no writer in the chain can be hijacked it answers r with 500
// through w, with a reason that names the writer and the fix.
func takeOver(w http.ResponseWriter, r *http.Request, c *config) (net.Conn, *bufio.ReadWriter, *UpgradeError) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		if !errors.Is(err, http.ErrNotSupported) {
			return nil, nil, hijackFailed(err, err.Error())
		}
		// Nothing was taken over, so w can still answer; after any other
		// failure it may not.
		rej := hijackFailed(err, unhijackable(w, err))
		c.writeRefusal(w, r, rej)
		return nil, nil, rej
	}
	if brw == nil {
		// A Hijacker of a middleware's own making may return none.
		brw = bufio.NewReadWriter(nil, bufio.NewWriter(conn))
	}
	return conn, brw, nil
}

// unhijackable says which writer of w's chain stopped
// [http.ResponseController.Hijack] with err, and how to fix it. It walks
// the chain as the controller does: the first writer with Hijack is the
// one that refused, unless it also has Unwrap, as an adapter's writer that
// hijacks through the chain beneath it does, and that chain ends in a
// writer with neither Hijack nor Unwrap, which the controller could not see
// past.
func unhijackable(w http.ResponseWriter, err error) string {
	var refused http.ResponseWriter
	for {
		_, hijacks := w.(http.Hijacker)
		if hijacks && refused == nil {
			refused = w
		}
		u, unwraps := w.(interface{ Unwrap() http.ResponseWriter })
		if hijacks && !unwraps {
			return fmt.Sprintf("%T.Hijack: %v", refused, err)
		}
		if !unwraps {
			break
		}
		w = u.Unwrap()
	}
	name := fmt.Sprintf("%T", w)
	if name == "*http.timeoutWriter" {
		return name + " of http.TimeoutHandler cannot be hijacked: serve the upgrade route outside http.TimeoutHandler, and bound the connection with deadlines or the handler's context"
	}
	return name + " cannot be hijacked: give it an Unwrap() http.ResponseWriter method that returns the writer it wraps, or a Hijack method"
}

// writeAnswer sends the 101 for d in one Write on conn, within timeout.
// The answer is built in the free space of net/http's hijacked write buffer,
// which is not used otherwise. Afterwards no deadline is left on conn. On
// failure conn is closed.
func writeAnswer(conn net.Conn, brw *bufio.ReadWriter, d *decision, extra http.Header, timeout time.Duration) error {
	b := appendAnswer(brw.Writer.AvailableBuffer(), d, extra)
	err := conn.SetWriteDeadline(time.Now().Add(timeout))
	if err == nil {
		_, err = conn.Write(b)
	}
	if err == nil {
		// Clears the write deadline above and any read deadline net/http
		// left, which the Hijacker documentation allows it to.
		err = conn.SetDeadline(time.Time{})
	}
	if err != nil {
		conn.Close()
		return fail(ErrWriteResponse, "write 101: %w", err)
	}
	return nil
}

// appendAnswer appends the 101 response for d, with the extra headers in
// the order of their names, to b.
func appendAnswer(b []byte, d *decision, extra http.Header) []byte {
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "...)
	b = append(b, d.protocol...)
	b = append(b, "\r\nConnection: Upgrade\r\n"...)
	if d.key != "" {
		b = append(b, "Sec-WebSocket-Accept: "...)
		b = AppendAcceptKey(b, d.key)
		b = append(b, "\r\n"...)
	}
	if d.subprotocol != "" {
		b = append(b, "Sec-WebSocket-Protocol: "...)
		b = append(b, d.subprotocol...)
		b = append(b, "\r\n"...)
	}
	if d.deflateOK {
		b = append(b, "Sec-WebSocket-Extensions: "...)
		b = appendDeflate(b, &d.deflate)
		b = append(b, "\r\n"...)
	}
	if len(extra) > 0 {
		// allocates: only when the application adds headers.
		for _, name := range slices.Sorted(maps.Keys(extra)) {
			if isOwnHeader(name) {
				continue
			}
			for _, v := range extra[name] {
				b = append(b, name...)
				b = append(b, ": "...)
				b = append(b, v...)
				b = append(b, "\r\n"...)
			}
		}
	}
	return append(b, "\r\n"...)
}

// countRefusal counts the refusal rej by its sentinel and reports it.
func (u *Upgrader) countRefusal(rej *UpgradeError) {
	for i, kind := range refusalKinds {
		if errors.Is(rej, kind) {
			u.refused[i].Add(1)
			break
		}
	}
	u.report(rej)
}

// report tells the OnError function about err, if there is one.
func (u *Upgrader) report(err error) {
	if u.cfg.onError != nil {
		u.cfg.onError(err)
	}
}

var _ http.Handler = (*handler)(nil)
