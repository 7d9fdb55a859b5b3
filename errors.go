package cooper

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
)

// Sentinel errors of the server side. Every error an [Upgrader] returns
// ([Upgrader.Accept]) or reports ([OnError]) matches one of them with
// [errors.Is]; a refusal is also an [*UpgradeError]. The errors of a
// connection handed over, from its Read and Write, are its own.
var (
	// ErrMethod: the request's method is not GET (405, with Allow: GET).
	ErrMethod = errors.New("cooper: method is not GET")

	// ErrHTTPVersion: the request is older than HTTP/1.1, whose Upgrade
	// header RFC 9110, section 7.8 says to ignore (426).
	ErrHTTPVersion = errors.New("cooper: HTTP version is older than HTTP/1.1")

	// ErrRequestBody: the request declares a body, whose bytes would
	// otherwise reach the handler as protocol data (400).
	ErrRequestBody = errors.New("cooper: upgrade request declares a body")

	// ErrNotUpgrade: Connection has no "upgrade" token, or there is no
	// Upgrade header (426, with Upgrade and Connection).
	ErrNotUpgrade = errors.New("cooper: not an upgrade request")

	// ErrProtocol: Upgrade names none of the protocols set with [Protocols]
	// (426, with Upgrade and Connection).
	ErrProtocol = errors.New("cooper: no acceptable protocol")

	// ErrMalformedHeader: Connection, Upgrade or Sec-WebSocket-Protocol is not
	// a well-formed list (400).
	ErrMalformedHeader = errors.New("cooper: malformed header")

	// ErrWebSocketKey: Sec-WebSocket-Key is missing, sent more than once, or
	// does not decode to 16 bytes (400).
	ErrWebSocketKey = errors.New("cooper: invalid Sec-WebSocket-Key")

	// ErrWebSocketVersion: Sec-WebSocket-Version is missing or not 13
	// (426), or sent more than once (400); both with
	// Sec-WebSocket-Version: 13.
	ErrWebSocketVersion = errors.New("cooper: unsupported Sec-WebSocket-Version")

	// ErrOrigin: a browser's cross-origin request that the origin policy does
	// not allow, or an Origin longer than 512 bytes, which no real origin is
	// (403). See [OriginPatterns].
	ErrOrigin = errors.New("cooper: origin not allowed")

	// ErrShutdown: the Upgrader is shutting down (503, with Retry-After);
	// also reported when Shutdown closed an accepted connection before its
	// handler started. It is also the cause ([context.Cause]) of the
	// handlers' contexts that Shutdown cancels. See [Upgrader.Shutdown] and
	// [DrainTime].
	ErrShutdown = errors.New("cooper: shutting down")

	// ErrTooManyConnections: the Upgrader already holds as many connections
	// as [MaxConnections] allows (503, with Retry-After).
	ErrTooManyConnections = errors.New("cooper: too many connections")

	// ErrUpgradeRate: upgrades arrive faster than [UpgradeRate] allows (503,
	// with Retry-After).
	ErrUpgradeRate = errors.New("cooper: upgrade rate exceeded")

	// ErrTooManyClientConnections: the client already holds as many
	// connections as [MaxConnectionsPerClient] allows (429, with
	// Retry-After).
	ErrTooManyClientConnections = errors.New("cooper: too many connections from the client")

	// ErrResponseHeader: a header returned by the [ResponseHeaders] function
	// has an invalid name or value, or names a header negotiation owns; or
	// the [SelectSubprotocol] function chose a subprotocol the client did not
	// offer (500).
	ErrResponseHeader = errors.New("cooper: invalid response header")

	// ErrHijackFailed: the connection could not be taken over, for instance
	// because the ResponseWriter (and every writer it unwraps to) cannot be
	// hijacked (500). The error also matches the cause, such as
	// [http.ErrNotSupported].
	ErrHijackFailed = errors.New("cooper: hijack")

	// ErrWriteResponse: once the connection was taken over, the answer (the
	// 101, or over HTTP/2 and HTTP/3 the 200) could not be written or the
	// stream not handed over, for instance because the client went away or
	// [HandshakeTimeout] passed; cooper closed the connection, and nothing
	// more could be sent. The error also matches the cause, such as
	// os.ErrDeadlineExceeded.
	ErrWriteResponse = errors.New("cooper: write response")

	// ErrHandlerPanic: a handler started by [Hijack] or [Upgrader.Handler]
	// panicked; cooper closed its connection. The error is a [*PanicError].
	ErrHandlerPanic = errors.New("cooper: handler panic")
)

// Sentinel errors of the client side: every error [Dial] and [Upgrade]
// return matches one of them with [errors.Is], and also matches the
// foreign error that caused it, if any, such as [context.Canceled].
var (
	// ErrNilRequest: Dial or Upgrade was given a nil request.
	ErrNilRequest = errors.New("cooper: nil request")

	// ErrInvalidHost: the request's URL names no host Dial can reach (no
	// URL, no host, a port that is not 1 to 65535, a scheme other than ws,
	// wss, http and https), or its Host cannot be sent.
	ErrInvalidHost = errors.New("cooper: invalid host")

	// ErrProtocolConflict: the request's Upgrade header names a protocol
	// other than the one set with [WithProtocol], or more than one protocol.
	ErrProtocolConflict = errors.New("cooper: conflicting protocols")

	// ErrDialFailed: the server could not be reached: the TCP connection
	// failed, or the proxy could not be found, reached or did not CONNECT.
	ErrDialFailed = errors.New("cooper: dial failed")

	// ErrTLSHandshakeFailed: the TLS handshake with the server failed.
	ErrTLSHandshakeFailed = errors.New("cooper: TLS handshake failed")

	// ErrMissingUpgradeHeader: the request names no protocol (no Upgrade
	// header, or one that is not a valid list, and no [WithProtocol]), or
	// the 101 has no Upgrade header.
	ErrMissingUpgradeHeader = errors.New("cooper: missing Upgrade header")

	// ErrSendRequest: the request could not be sent: no connection was
	// given, the request has a body, or a method, request target, header or
	// Sec-WebSocket-Key that cannot be sent as given, or writing it failed.
	ErrSendRequest = errors.New("cooper: send request")

	// ErrReadResponse: no valid response head could be read: the connection
	// failed or ended, the context ended, or the server sent no HTTP/1.1
	// response (a 101 in another version, such as HTTP/1.0 101, included)
	// or one whose head is longer than 1 MiB.
	ErrReadResponse = errors.New("cooper: read response")

	// ErrUnexpectedStatus: the server answered with a status other than 101
	// Switching Protocols.
	ErrUnexpectedStatus = errors.New("cooper: unexpected status")

	// ErrProtocolMismatch: the 101's Upgrade header is not the protocol
	// requested (RFC 9110, section 7.8).
	ErrProtocolMismatch = errors.New("cooper: protocol mismatch")

	// ErrMissingConnectionHeader: the 101's Connection header is missing,
	// malformed, or has no "upgrade" token.
	ErrMissingConnectionHeader = errors.New("cooper: no upgrade token in Connection")

	// ErrResponseValidator: the [WithResponseValidator] function rejected the
	// answer; the error also matches the function's error.
	ErrResponseValidator = errors.New("cooper: response validator")

	// ErrAcceptMismatch: the 101's Sec-WebSocket-Accept is missing, sent
	// more than once, or does not answer the Sec-WebSocket-Key sent (RFC
	// 6455, section 4.1).
	ErrAcceptMismatch = errors.New("cooper: Sec-WebSocket-Accept mismatch")

	// ErrSubprotocolMismatch: the 101's Sec-WebSocket-Protocol names a
	// subprotocol the request did not offer, or more than one.
	ErrSubprotocolMismatch = errors.New("cooper: Sec-WebSocket-Protocol mismatch")

	// ErrExtensionMismatch: the 101's Sec-WebSocket-Extensions is not a
	// valid answer to the extensions offered: an extension not offered or
	// answered twice, or permessage-deflate parameters that RFC 7692,
	// section 7 does not allow in an answer to the offer.
	ErrExtensionMismatch = errors.New("cooper: Sec-WebSocket-Extensions mismatch")
)

// A sentinelError is an error of Dial or Upgrade, or an Upgrader's failure
// to answer: a one-line message that names what was wrong, wrapping the
// foreign error that caused it if any, and the sentinel it matches.
type sentinelError struct {
	sentinel error
	err      error
}

func (e *sentinelError) Error() string   { return e.err.Error() }
func (e *sentinelError) Unwrap() []error { return []error{e.sentinel, e.err} }

var _ error = (*sentinelError)(nil)

// fail returns a sentinelError matching sentinel, with the message "cooper: "
// followed by format's result; a %w verb in format wraps a foreign cause.
func fail(sentinel error, format string, args ...any) error {
	return &sentinelError{sentinel: sentinel, err: fmt.Errorf("cooper: "+format, args...)}
}

// An UpgradeError is a refused upgrade: the request was answered with an
// error status through the ResponseWriter instead of 101, and the connection
// was not taken over. It unwraps to one of the sentinel errors, so
// errors.Is(err, ErrOrigin) and errors.As(err, &upgradeErr) both work.
type UpgradeError struct {
	// Status is the status code sent, for example 426.
	Status int
	// Header holds the headers the RFC asks for with that status (Allow on
	// 405; Upgrade and Connection on 426; Sec-WebSocket-Version on a version
	// refusal; Retry-After on 503 and 429); nil when there are none.
	Header http.Header

	err    error  // a sentinel, possibly wrapped with a cause
	reason string // one line: "cooper: <Header>: <what was wrong>"
}

// Error returns the one-line reason sent to the client as the response body.
func (e *UpgradeError) Error() string { return e.reason }

// Unwrap returns the sentinel error the refusal matches.
func (e *UpgradeError) Unwrap() error { return e.err }

// refusal returns the refusal with status, the sentinel err and the reason
// built from format and args, which must start with the header name.
func refusal(status int, err error, header http.Header, format string, args ...any) *UpgradeError {
	return &UpgradeError{Status: status, Header: header, err: err, reason: "cooper: " + fmt.Sprintf(format, args...)}
}

// hijackFailed returns the refusal of an upgrade whose connection could not
// be taken over because of cause, with 500 and the reason
// "cooper: hijack: " and detail; it matches ErrHijackFailed and cause.
func hijackFailed(cause error, detail string) *UpgradeError {
	return &UpgradeError{Status: http.StatusInternalServerError, err: fmt.Errorf("%w: %w", ErrHijackFailed, cause), reason: "cooper: hijack: " + detail}
}

// writeRefusal answers r, refused with rej, through w: the headers the RFCs
// require for the refusal, then the [RefusalHandler]'s response or a
// one-line text/plain body.
func (c *config) writeRefusal(w http.ResponseWriter, r *http.Request, rej *UpgradeError) {
	h := w.Header()
	for k, v := range rej.Header {
		h[k] = v
	}
	if c.refusalHandler != nil {
		c.refusalHandler(w, r, rej)
		return
	}
	http.Error(w, rej.reason, rej.Status)
}

// A PanicError reports a panic in a handler started by [Hijack] or
// [Upgrader.Handler]. It matches [ErrHandlerPanic].
type PanicError struct {
	// Value is the value the handler panicked with.
	Value any
	// Stack is the panicking goroutine's stack, as [debug.Stack] formats it.
	Stack []byte
}

// Error returns the panic value on one line; the stack is in Stack.
func (e *PanicError) Error() string { return fmt.Sprintf("cooper: handler panic: %v", e.Value) }

// Unwrap returns [ErrHandlerPanic].
func (e *PanicError) Unwrap() error { return ErrHandlerPanic }

var (
	_ error = (*UpgradeError)(nil)
	_ error = (*PanicError)(nil)
)

// newPanicError captures the current goroutine's stack for the panic value v.
func newPanicError(v any) *PanicError { return &PanicError{Value: v, Stack: debug.Stack()} }

// maxQuoted is how many bytes of a client's value an error message shows.
const maxQuoted = 64

// quote returns s quoted with %q, which escapes control bytes so a value
// cannot forge log lines, cut to maxQuoted bytes.
func quote(s string) string {
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q...", s[:maxQuoted])
	}
	return fmt.Sprintf("%q", s)
}

// quoteLines quotes the header lines joined as one list.
func quoteLines(lines []string) string { return quote(strings.Join(lines, ", ")) }
