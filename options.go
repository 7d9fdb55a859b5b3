package cooper

import (
	"math"
	"net/http"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"
)

// An Option configures cooper. Options are applied once, in order, when the
// handler or [Upgrader] is built; a later option overrides an earlier one.
// Every option has a safe default, stated in its documentation.
type Option func(*config)

// config is what the options build. It is never modified after newConfig
// returns, so the request path reads it without locks.
type config struct {
	// The hooks; each, when set, decides instead of the default it names.
	checkOrigin       func(*http.Request) bool                                // the origin policy
	selectSubprotocol func(*http.Request, []string) string                    // subprotocols
	refusalHandler    func(http.ResponseWriter, *http.Request, *UpgradeError) // one text/plain line

	protocols          []string    // accepted Upgrade protocols; empty: any
	protocolHandshakes []Handshake // one per protocol, shared by Hijack handlers
	upgradeList        string      // protocols joined for the 426 Upgrade header
	subprotocols       []string
	deflate            *DeflateParams // nil: permessage-deflate is never agreed
	responseHeaders    func(*http.Request, string) http.Header
	onError            func(error)
	originPatterns     []string // lower case
	skipOriginCheck    bool
	handshakeTimeout   time.Duration
	maxConns           int64         // 0: no limit
	drainTime          time.Duration // 0: Shutdown ends every context at once
	rateInterval       time.Duration // UpgradeRate: time per upgrade; 0: no rate limit
	rateTolerance      time.Duration // UpgradeRate: (burst-1) intervals
	maxPerClient       int           // 0: no limit per client
	trustedProxies     []netip.Prefix
}

// DefaultHandshakeTimeout is how long writing the 101 may take when
// [HandshakeTimeout] is not set.
const DefaultHandshakeTimeout = 10 * time.Second

// defaultConfig holds every default in one place.
func defaultConfig() config {
	return config{handshakeTimeout: DefaultHandshakeTimeout}
}

// newConfig applies opts to the defaults and precomputes what depends only
// on the configuration.
func newConfig(opts []Option) *config {
	c := defaultConfig()
	for _, o := range opts {
		o(&c)
	}
	c.upgradeList = strings.Join(c.protocols, ", ")
	for _, p := range c.protocols {
		c.protocolHandshakes = append(c.protocolHandshakes, Handshake{Protocol: p})
	}
	return &c
}

// Protocols sets the Upgrade protocols the server accepts, such as
// "websocket" or "myproto/2". The first protocol in the client's Upgrade list
// that is one of names (compared ignoring ASCII case) is agreed and reported
// in the server's spelling. A request that offers none of them is refused
// with 426 and an Upgrade header listing names in the order given.
//
// Default: any protocol is accepted (a generic upgrade); the client's first
// protocol is agreed, in lower case, and the handler must check it. Whatever
// the protocols, "websocket" is validated as RFC 6455 requires.
//
// Panics if names is empty or a name is not a protocol (token ["/" token]).
func Protocols(names ...string) Option {
	if len(names) == 0 {
		panic("cooper: Protocols: no protocol names")
	}
	for _, n := range names {
		if !isProtocol(n) {
			panic("cooper: Protocols: " + quote(n) + " is not a protocol name")
		}
	}
	names = slices.Clone(names)
	return func(c *config) { c.protocols = names }
}

// Subprotocols sets the WebSocket subprotocols the server speaks. The first
// value in the client's Sec-WebSocket-Protocol lists (all of its lines) that
// is one of names, byte for byte, is agreed and answered. The client's order
// wins: RFC 6455, section 11.3.4 has the client list subprotocols in order of
// preference. When none matches, the upgrade succeeds without a subprotocol
// and [Handshake].Subprotocol is "".
//
// Default: none; no Sec-WebSocket-Protocol is ever answered.
//
// Panics if a name is not a token.
func Subprotocols(names ...string) Option {
	for _, n := range names {
		if !isToken(n) {
			panic("cooper: Subprotocols: " + quote(n) + " is not a token")
		}
	}
	names = slices.Clone(names)
	return func(c *config) { c.subprotocols = names }
}

// Deflate turns permessage-deflate negotiation (RFC 7692) on, with policy
// saying what the server's framing layer does and wants (see
// [DeflateParams]). The client's offers are tried in its order and the first
// one that is valid and that policy can honour is agreed; an invalid or
// unacceptable offer is declined, and the upgrade goes on without the
// extension, never with an error. The answer carries exactly the agreed
// parameters, which [Handshake].Deflate reports.
//
// Default: off; no Sec-WebSocket-Extensions is ever answered.
//
// Panics if a window size is neither 0 nor 8 to 15.
func Deflate(policy DeflateParams) Option {
	policy.checkWindowBits("Deflate")
	return func(c *config) { c.deflate = &policy }
}

// ResponseHeaders sets a function whose headers are added to the 101
// response, for instance cookies. It runs on the request's goroutine after
// the request is accepted and before the connection is taken over, with the
// agreed protocol.
//
// cooper writes Upgrade, Connection and Sec-WebSocket-Accept itself; values
// fn returns for them are not sent. A header name that is not a token, a
// value with a control byte, or a header negotiation owns
// (Sec-WebSocket-Protocol, Sec-WebSocket-Extensions) or that a 101 must not
// carry (Content-Length, Transfer-Encoding) fails the upgrade with 500 and
// [ErrResponseHeader]: nothing fn returns can split the response. The
// subprotocol is chosen with [SelectSubprotocol] or [Subprotocols], and
// permessage-deflate with [Deflate].
//
// Default: nil, no extra headers.
func ResponseHeaders(fn func(r *http.Request, proto string) http.Header) Option {
	return func(c *config) { c.responseHeaders = fn }
}

// OnError sets a function that is told every error: each refusal (an
// [*UpgradeError]), a failed take-over or 101 write, and a handler's panic
// (a [*PanicError]). It runs synchronously, on the request's goroutine or,
// for a panic, on the handler's, so it should return quickly.
//
// Default: nil; errors are only returned (by [Upgrader.Accept]) or sent to
// the client as the response body. cooper never logs.
func OnError(fn func(error)) Option {
	return func(c *config) { c.onError = fn }
}

// CheckOrigin sets a function that decides, alone, whether a request's
// origin is allowed, as gorilla/websocket's Upgrader.CheckOrigin does: it
// is called for every upgrade request, with or without an Origin header,
// on the request's goroutine, after the request was found to be a valid
// upgrade. When it returns false the request is refused with 403 and
// [ErrOrigin].
//
// When fn is set it is the whole decision: [OriginPatterns] and
// [InsecureSkipOriginCheck] have no effect, whatever their order. A
// function that returns true for every request turns the check against
// cross-site WebSocket hijacking off (see [InsecureSkipOriginCheck]).
//
// Default: nil; the origin policy of [OriginPatterns] applies.
func CheckOrigin(fn func(r *http.Request) bool) Option {
	return func(c *config) { c.checkOrigin = fn }
}

// SelectSubprotocol sets a function that chooses the WebSocket subprotocol
// of each request, for instance from the request's credentials. It is
// called for every WebSocket upgrade whose Sec-WebSocket-Protocol lists
// are well formed, on the request's goroutine, with offered holding the
// client's subprotocols in its order of preference (empty when it offered
// none); offered is the function's own to keep. It returns one of offered,
// which is answered, or "" for none.
//
// A subprotocol that the client did not offer, byte for byte, is never
// sent: the request is refused with 500 and [ErrResponseHeader], since the
// fault is the server's. When fn is set, [Subprotocols] has no effect.
//
// Default: nil; the [Subprotocols] list decides.
func SelectSubprotocol(fn func(r *http.Request, offered []string) string) Option {
	return func(c *config) { c.selectSubprotocol = fn }
}

// RefusalHandler sets a function that writes the response to each refused
// request, in the application's own way (JSON, an HTML page), as
// gorilla/websocket's Upgrader.Error does. When fn is called, the headers
// the RFCs require for the refusal (err.Header: Allow, Upgrade,
// Connection, Sec-WebSocket-Version, Retry-After) are already set on
// w.Header(); fn adds its own, then writes the status err.Status and a
// body. A refused request is never taken over, whatever fn does. fn runs
// on the request's goroutine, before [OnError] is told; it must write the
// status, since net/http otherwise answers 200.
//
// Default: nil; the refusal is answered with err.Status and err's one-line
// reason as text/plain.
func RefusalHandler(fn func(w http.ResponseWriter, r *http.Request, err *UpgradeError)) Option {
	return func(c *config) { c.refusalHandler = fn }
}

// OriginPatterns allows cross-origin requests from origins whose host
// matches one of patterns, with [path.Match] syntax, ignoring ASCII case:
// "example.com", "*.example.com", "localhost:*". A pattern that contains
// "://" is matched against "scheme://host" instead, as "https://*.example.com".
//
// The origin check guards against cross-site WebSocket hijacking: a page on
// another site opening a WebSocket with the user's cookies. Allow only the
// sites you trust; each one can act as the user on this endpoint.
//
// Default: only same-origin requests pass: a request with an Origin header
// whose host[:port] is not the request's Host, ignoring the scheme and a
// default port, is refused with 403 and [ErrOrigin], and so is
// "Origin: null". Requests without Origin (non-browser clients) pass.
//
// An Origin longer than 512 bytes, more than any real origin has, is
// refused with 403 and [ErrOrigin] before it is looked at.
//
// Panics if a pattern is malformed, or if the host name in it (what
// follows "://", or the whole pattern, up to its last ":", where the port
// starts) has no literal character other than ".": "*", "**", "?*", "*.*",
// "*:*", "*:8443", "[a-z]*" and "https://*" would each allow every site,
// or almost; use [InsecureSkipOriginCheck] to say that. Such a character
// (outside "*", "?" and "[...]", or escaped with "\\") must appear in the
// host name of every origin the pattern allows.
func OriginPatterns(patterns ...string) Option {
	lower := make([]string, len(patterns))
	for i, p := range patterns {
		p = lowerToken(p)
		if _, err := path.Match(p, ""); err != nil {
			panic("cooper: OriginPatterns: " + quote(p) + " is not a valid pattern")
		}
		if !hasLiteralHost(p) {
			panic("cooper: OriginPatterns: " + quote(p) + " has no literal character in its host, so it allows almost every origin; " +
				"name the site, as \"*.example.com\", or use InsecureSkipOriginCheck to allow every origin")
		}
		lower[i] = p
	}
	return func(c *config) { c.originPatterns = lower }
}

// InsecureSkipOriginCheck turns the origin check off: any web page, on any
// site, can open a connection with its visitors' cookies and act as them
// (cross-site WebSocket hijacking). Use it only for endpoints that do not
// rely on cookies or other ambient credentials.
//
// Default: the check is on; see [OriginPatterns].
func InsecureSkipOriginCheck() Option {
	return func(c *config) { c.skipOriginCheck = true }
}

// MaxConnections sets the most connections the Upgrader holds at once
// (being upgraded, or handed over with their handler running; see
// [Stats].Active). A request past it
// is refused with 503, Retry-After and [ErrTooManyConnections] before
// anything is taken over. Set it below the process's open-file limit, so
// that plain HTTP requests are still served when it is reached.
//
// Default: no limit but the operating system's.
//
// Panics if n is not positive.
func MaxConnections(n int) Option {
	if n <= 0 {
		panic("cooper: MaxConnections: n must be positive")
	}
	return func(c *config) { c.maxConns = int64(n) }
}

// HandshakeTimeout bounds writing the 101 response: a client that stops
// reading cannot hold the request's goroutine longer than d. The deadline
// is cleared before the connection is handed over.
//
// Default: [DefaultHandshakeTimeout] (10 s).
//
// Panics if d is not positive.
func HandshakeTimeout(d time.Duration) Option {
	if d <= 0 {
		panic("cooper: HandshakeTimeout: duration must be positive")
	}
	return func(c *config) { c.handshakeTimeout = d }
}

// DrainTime spreads the end of the handlers' contexts over d when
// [Upgrader.Shutdown] is called: instead of all at once, each handler's
// context is cancelled at its own turn, in random order, evenly spaced over
// d, so the clients that reconnect when their connection ends come back to
// the rest of the fleet spread over d rather than in one storm. New
// upgrades are refused from the start of Shutdown, as without it; a handler
// that returns before its turn leaves early; at the deadline of Shutdown's
// context, whatever is left is cancelled and closed. The cause of a
// cancelled context ([context.Cause]) is [ErrShutdown], so the framing
// layer can tell its peer to come back (WebSocket close code 1012, or
// 1001).
//
// A [Hijack] handler has no context, so at its turn its connection is
// closed instead. The connections of [Upgrader.Accept] share one context,
// cancelled when the drain ends. Give Shutdown a context whose deadline
// leaves d and some margin for the handlers to say goodbye.
//
// Default: 0, every context is cancelled as soon as Shutdown is called.
// With d set, each [Upgrader.Handler] upgrade allocates its own context.
//
// Panics if d is negative.
func DrainTime(d time.Duration) Option {
	if d < 0 {
		panic("cooper: DrainTime: duration must not be negative")
	}
	return func(c *config) { c.drainTime = d }
}

// UpgradeRate admits at most perSecond upgrades a second, with bursts of
// up to burst at once: a token bucket holding burst tokens, refilled at
// perSecond, from which each admitted upgrade takes one. A request past it
// is refused with 503, Retry-After and [ErrUpgradeRate] before anything is
// taken over, so a server in a reconnect storm sheds load early and
// cheaply rather than timing out late. Retry-After hands the refused
// clients successive whole seconds at the rate (within a minute), so they
// come back spread out. Requests refused for another reason take no token.
// Taking a token is one compare-and-swap: no goroutine, no lock.
//
// Default: no rate limit.
//
// Panics if perSecond is not a positive number or burst is less than 1.
func UpgradeRate(perSecond float64, burst int) Option {
	if !(perSecond > 0) || math.IsInf(perSecond, 1) {
		panic("cooper: UpgradeRate: perSecond must be a positive number")
	}
	if burst < 1 {
		panic("cooper: UpgradeRate: burst must be at least 1")
	}
	interval := max(time.Duration(math.Round(float64(time.Second)/perSecond)), 1)
	return func(c *config) {
		c.rateInterval, c.rateTolerance = interval, time.Duration(burst-1)*interval
	}
}

// MaxConnectionsPerClient sets the most connections the Upgrader holds at
// once for one client address, counted as [Stats].Active is: from the
// request's admission until its handler returns (for [Upgrader.Accept],
// until the ServeHTTP that took the connection returns). A request past it
// is refused with 429, Retry-After and [ErrTooManyClientConnections] before
// anything is taken over.
//
// The client address is the IP address of the peer (the request's
// RemoteAddr), or, when the peer is one of [TrustedProxies], the address
// the proxies say the request came from. IPv6 addresses count one by one,
// not by network. A peer whose address is not an IP address (a Unix
// socket) is not limited.
//
// Default: no limit per client.
//
// Panics if n is not positive.
func MaxConnectionsPerClient(n int) Option {
	if n <= 0 {
		panic("cooper: MaxConnectionsPerClient: n must be positive")
	}
	return func(c *config) { c.maxPerClient = n }
}

// TrustedProxies names the reverse proxies whose word on the client's
// address [MaxConnectionsPerClient] takes, as CIDR prefixes such as
// "10.0.0.0/8" or "2001:db8::/32", or single addresses. When the peer is
// one of them, the client address is found by walking X-Forwarded-For (all
// its lines) or Forwarded (RFC 7239, its "for" parameters) from the right,
// past the addresses of trusted proxies, to the first that is not one.
// Headers from any other peer are ignored: a client cannot choose its
// address by sending them.
//
// When a trusted hop does not say whom it forwarded for (no header, the
// "unknown" or an obfuscated identifier, a malformed value), the request
// counts against the last trusted address. A request that has both headers
// and whose two answers differ counts against the peer, since one of the
// two may be the client's own: a trusted proxy should remove the one of
// them it does not write.
//
// Default: none; the client address is the peer's.
//
// Panics if a prefix is neither a CIDR prefix nor an IP address.
func TrustedProxies(prefixes ...string) Option {
	ps := make([]netip.Prefix, len(prefixes))
	for i, s := range prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				panic("cooper: TrustedProxies: " + quote(s) + " is not a CIDR prefix or an IP address")
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ps[i] = unmapPrefix(p.Masked())
	}
	return func(c *config) { c.trustedProxies = ps }
}
