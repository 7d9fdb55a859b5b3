package cooper

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"slices"
)

// This file is the client's options: DialOption for Dial, UpgradeOption
// for the upgrade that Upgrade and Dial do.

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
	c := &dialConfig{proxy: http.ProxyFromEnvironment}
	for _, o := range opts {
		o(c)
	}
	if c.dialer == nil {
		c.dialer = &net.Dialer{}
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
	return func(c *dialConfig) { c.dialer = d }
}

// WithProxy sets the function that picks the HTTP proxy for a request, as
// [http.Transport.Proxy] does: it is given the request with its URL's ws
// or wss scheme spelled http or https, and returns the proxy's URL, or nil
// for none. The proxy URL's scheme must be http (or empty); Dial asks it to
// CONNECT to the server, with Basic Proxy-Authorization when the URL has a
// user, and fails with [ErrDialFailed] unless it answers 200, within the
// limits [Upgrade] sets on the server's answer: five interim answers, 1 MiB
// of heads.
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
//
// Deprecated: Use [WithResponseValidator].
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
