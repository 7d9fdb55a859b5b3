// Package probe checks a WebSocket server's opening handshake against what
// RFC 6455 (sections 4 and 9.1), RFC 7692 (sections 5 to 7), RFC 8441
// (sections 4 and 5) and RFC 9110 (sections 5.6, 7.8 and 15.5) ask of a
// server. It is the engine of the cooperprobe command.
//
// Each [Case] sends one or a few requests, written byte by byte on a fresh
// connection, and judges the answer: pass, fail (the server broke a MUST),
// warn (something the RFCs leave to the server, or a SHOULD) or skip (the
// case does not apply to this server, for instance an echo is needed and
// the endpoint does not echo). The cases that exchange messages expect the
// endpoint to echo every message it receives, as echo servers do; the
// others need nothing beyond the handshake.
package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Results a case can have.
const (
	Pass = "pass" // the server did what the RFC asks
	Fail = "fail" // the server broke a MUST
	Warn = "warn" // allowed, but left to the server or against a SHOULD
	Skip = "skip" // the case does not apply to this endpoint
)

// Groups of cases, in the order they run.
const (
	GroupRequest     = "request validation"
	GroupAnswer      = "the answer"
	GroupSubprotocol = "subprotocols"
	GroupDeflate     = "permessage-deflate"
	GroupOrigin      = "origin"
	GroupEarlyData   = "early data"
	GroupHTTP2       = "HTTP/2"
)

// Groups lists the groups in the order their cases run. Read-only.
var Groups = []string{GroupRequest, GroupAnswer, GroupSubprotocol, GroupDeflate, GroupOrigin, GroupEarlyData, GroupHTTP2}

// A Case is one check: an identifier to select it by, the group it belongs
// to, what it checks, and the RFC section that asks for it.
type Case struct {
	ID    string // short, unique, stable: "req-version-8"
	Group string // one of Groups
	Title string // what a server must do, in one line
	RFC   string // "RFC 6455, section 4.2.1"
	run   func(p *prober) verdict
}

// A Result is what one case found. Its JSON form is one object with exactly
// these five members.
type Result struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	RFC    string `json:"rfc"`
	Result string `json:"result"` // Pass, Fail, Warn or Skip
	Detail string `json:"detail"` // what was seen; may be empty
}

// A Summary counts results.
type Summary struct {
	Passed, Failed, Warned, Skipped int
}

// String returns the summary line: "N passed, N failed, N warned, N skipped".
func (s Summary) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d warned, %d skipped", s.Passed, s.Failed, s.Warned, s.Skipped)
}

func (s *Summary) add(result string) {
	switch result {
	case Pass:
		s.Passed++
	case Fail:
		s.Failed++
	case Warn:
		s.Warned++
	default:
		s.Skipped++
	}
}

// A Config says which endpoint to probe and what it needs to accept a
// valid request.
type Config struct {
	// URL is the endpoint, ws:// or wss://. Over wss:// the server's
	// certificate is not verified: the probe checks handshakes, not
	// identities.
	URL string
	// Origin, when set, is sent as Origin on every request but those of
	// the origin cases; without it requests carry no Origin, as
	// non-browser clients send them.
	Origin string
	// Subprotocol, when set, is a subprotocol the endpoint speaks: it is
	// offered on every request but those of the subprotocol cases, and the
	// subprotocol cases check that the server picks it.
	Subprotocol string
	// Header is added to every request, for what the endpoint needs, such
	// as authorization.
	Header http.Header
	// Timeout bounds each exchange of a case (dialling, the answer, an
	// echo). Zero means 5 s.
	Timeout time.Duration
	// H2 also probes RFC 8441 extended CONNECT over HTTP/2 (wss:// only).
	// Without it the HTTP/2 cases are skipped.
	H2 bool
}

// Cases returns every case, in the order Run runs them.
func Cases() []Case {
	var all []Case
	for _, group := range [][]Case{requestCases(), answerCases(), subprotocolCases(), deflateCases(), originCases(), earlyCases(), h2Cases()} {
		all = append(all, group...)
	}
	return all
}

// Run runs every case whose ID match accepts (every case when match is
// nil) against the endpoint cfg names, in order, passing each result to
// report as soon as it is known, and returns the counts. It returns an
// error, having run nothing, when cfg is unusable (a URL that is not
// ws:// or wss://), and ctx's error, with the counts so far, when ctx is
// done before a case starts; an endpoint that cannot be reached fails its
// cases.
func Run(ctx context.Context, cfg Config, match func(id string) bool, report func(Result)) (Summary, error) {
	p, err := newProber(ctx, cfg)
	if err != nil {
		return Summary{}, err
	}
	var s Summary
	for _, c := range Cases() {
		if match != nil && !match(c.ID) {
			continue
		}
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
		v := c.run(p)
		s.add(v.result)
		report(Result{ID: c.ID, Title: c.Title, RFC: c.RFC, Result: v.result, Detail: v.detail})
	}
	return s, nil
}

// A verdict is what a case's run decided.
type verdict struct{ result, detail string }

func pass(format string, args ...any) verdict { return verdict{Pass, fmt.Sprintf(format, args...)} }
func fail(format string, args ...any) verdict { return verdict{Fail, fmt.Sprintf(format, args...)} }
func warn(format string, args ...any) verdict { return verdict{Warn, fmt.Sprintf(format, args...)} }
func skip(format string, args ...any) verdict { return verdict{Skip, fmt.Sprintf(format, args...)} }

// A prober holds the endpoint and what was learnt about it so far.
type prober struct {
	ctx     context.Context
	cfg     Config
	tls     bool
	addr    string // host:port to dial
	host    string // the Host header: the URL's authority
	target  string // path and query
	timeout time.Duration

	echoChecked bool
	echoes      bool    // the endpoint echoes messages
	echoVerdict verdict // what checking the echo found

	deflateChecked bool
	deflates       bool // the server accepts a plain permessage-deflate offer

	h2Checked bool
	h2Err     error // what the first extended CONNECT failed with, or nil
}

func newProber(ctx context.Context, cfg Config) (*prober, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("cooperprobe: URL: %w", err)
	}
	p := &prober{ctx: ctx, cfg: cfg, timeout: cfg.Timeout}
	switch u.Scheme {
	case "ws":
		p.addr = hostPort(u, "80")
	case "wss":
		p.tls = true
		p.addr = hostPort(u, "443")
	default:
		return nil, fmt.Errorf("cooperprobe: URL: %q is not a ws:// or wss:// URL", cfg.URL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("cooperprobe: URL: %q has no host", cfg.URL)
	}
	if p.timeout <= 0 {
		p.timeout = 5 * time.Second
	}
	p.host = u.Host
	p.target = u.RequestURI()
	if u.Fragment != "" {
		return nil, errors.New("cooperprobe: URL: a WebSocket URL has no fragment (RFC 6455, section 3)")
	}
	return p, nil
}

// hostPort returns the URL's host with its port, or the default port.
func hostPort(u *url.URL, port string) string {
	return net.JoinHostPort(u.Hostname(), cmp.Or(u.Port(), port))
}

// sameOrigin returns the Origin of a page served by the endpoint's own host:
// the same scheme (http or https), host and port.
func (p *prober) sameOrigin() string {
	if p.tls {
		return "https://" + p.host
	}
	return "http://" + p.host
}
