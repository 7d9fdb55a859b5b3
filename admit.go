package cooper

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"
)

// This file is the admit step: whether the server takes one more
// connection now (shutdown, MaxConnections, UpgradeRate,
// MaxConnectionsPerClient), and the client address the last one counts by.
// With its options off it costs two atomic operations and the lock that
// links the connection into the ring.

// An ownState is what a tracked connection holds beyond its ring entry,
// with DrainTime or MaxConnectionsPerClient.
type ownState struct {
	cancel context.CancelCauseFunc // ends its handler's own context; nil without one
	client netip.Addr              // the client address it counts against; invalid when not counted
}

// admit is the admit step: it returns the entry that tracks the upgrade
// of r, agreed as d, for the handler h (nil for Accept), once the Upgrader
// has agreed to take one more connection, or the refusal (see track).
func (u *Upgrader) admit(r *http.Request, d *decision, h *handler) (*tracked, *UpgradeError) {
	t, o := u.newTracked(r, d, h)
	if rej := u.track(t, r, o); rej != nil {
		return nil, rej
	}
	return t, nil
}

// track admits t and adds it to the ring before its connection is taken
// over, or refuses: with 503 when the Upgrader is shutting down, holds
// MaxConnections or is past UpgradeRate; with 429 when the client holds
// MaxConnectionsPerClient. o is what t holds beyond the ring. The count and
// the rate are atomic, outside the lock, which guards only the ring's
// links and the per-client counts: a request counts itself first, so
// Shutdown, which waits for the count to fall to zero, cannot miss one that
// is past its check.
func (u *Upgrader) track(t *tracked, r *http.Request, o ownState) *UpgradeError {
	n := u.count.Add(1)
	if u.closed.Load() {
		u.count.Add(-1)
		// A client should come back soon, to a server that is not going away.
		return refusal(http.StatusServiceUnavailable, ErrShutdown, retryAfter(1, 2),
			"shutdown: the server is shutting down")
	}
	if max := u.cfg.maxConns; max > 0 && n > max {
		u.count.Add(-1)
		return refusal(http.StatusServiceUnavailable, ErrTooManyConnections, retryAfter(5, 5),
			"MaxConnections: %d open, the limit", max)
	}
	if u.cfg.rateInterval > 0 {
		if rej := u.takeToken(); rej != nil {
			u.count.Add(-1)
			return rej
		}
	}
	if u.clients != nil {
		o.client = clientAddr(r, u.cfg.trustedProxies)
	}
	u.mu.Lock()
	if o.client.IsValid() {
		held := u.clients[o.client]
		if held >= u.cfg.maxPerClient {
			u.mu.Unlock()
			u.count.Add(-1)
			u.returnToken()
			return refusal(http.StatusTooManyRequests, ErrTooManyClientConnections, retryAfter(5, 5),
				"MaxConnectionsPerClient: %s holds %d, the limit", o.client, held)
		}
		u.clients[o.client] = held + 1
	}
	t.prev, t.next = u.active.prev, &u.active
	t.prev.next, t.next.prev = t, t
	if o.cancel != nil || o.client.IsValid() {
		u.own[t] = o
	}
	u.mu.Unlock()
	return nil
}

// untrack removes t from the ring and releases what it held; it is safe to
// call more than once.
func (u *Upgrader) untrack(t *tracked) {
	u.mu.Lock()
	linked := t.next != nil
	if linked {
		t.prev.next, t.next.prev = t.next, t.prev
		t.prev, t.next = nil, nil
		if o, ok := u.own[t]; ok {
			delete(u.own, t)
			if o.client.IsValid() {
				if held := u.clients[o.client] - 1; held > 0 {
					u.clients[o.client] = held
				} else {
					delete(u.clients, o.client)
				}
			}
		}
	}
	u.mu.Unlock()
	if linked {
		u.count.Add(-1)
	}
}

// retryAfter returns a Retry-After header of min to min+spread whole
// seconds, at random, so that clients refused together do not come back
// together.
func retryAfter(min, spread int) http.Header {
	return http.Header{"Retry-After": {strconv.Itoa(min + rand.IntN(spread+1))}}
}

// maxRetryAfter bounds the Retry-After of an UpgradeRate refusal.
const maxRetryAfter = 60 * time.Second

// A rateState is UpgradeRate's token bucket, kept as the generic cell rate
// algorithm keeps it: as one time, so that taking a token is one
// compare-and-swap. tat is the theoretical arrival time: when the next
// upgrade would be due were upgrades spaced exactly at the rate. One is
// admitted while tat is at most the tolerance ahead of now, that is, while
// the bucket holds a token; admitting one moves tat an interval on.
type rateState struct {
	tat   atomic.Int64 // nanoseconds since New
	retry atomic.Int64 // the last time a refused client was told to come back at
}

// takeToken takes a token from UpgradeRate's bucket, or refuses with 503
// when it is empty.
func (u *Upgrader) takeToken() *UpgradeError {
	now := int64(u.now())
	interval, tolerance := int64(u.cfg.rateInterval), int64(u.cfg.rateTolerance)
	for {
		tat := u.rate.tat.Load()
		next := max(tat, now)
		if next-now > tolerance {
			return u.rateRefusal(now, next-tolerance)
		}
		if u.rate.tat.CompareAndSwap(tat, next+interval) {
			return nil
		}
	}
}

// returnToken puts back a token taken for an upgrade that was then refused
// for another reason, so that a client past its own limit does not use up
// everyone's rate.
func (u *Upgrader) returnToken() {
	if u.cfg.rateInterval > 0 {
		u.rate.tat.Add(-int64(u.cfg.rateInterval))
	}
}

// rateRefusal refuses an upgrade at now because the bucket is empty until
// free. Its Retry-After hands out successive times at the rate from free
// on, so the clients refused in a storm are told to come back no faster
// than they can be admitted, within maxRetryAfter, plus up to a second at
// random.
func (u *Upgrader) rateRefusal(now, free int64) *UpgradeError {
	interval := int64(u.cfg.rateInterval)
	var at int64
	for {
		last := u.rate.retry.Load()
		at = max(last+interval, free)
		if at-now > int64(maxRetryAfter) {
			at = now + int64(maxRetryAfter)
			break
		}
		if u.rate.retry.CompareAndSwap(last, at) {
			break
		}
	}
	secs := max(int((at-now+int64(time.Second)-1)/int64(time.Second)), 1)
	return refusal(http.StatusServiceUnavailable, ErrUpgradeRate, retryAfter(secs, 1),
		"UpgradeRate: more upgrades than %s a second", strconv.FormatFloat(float64(time.Second)/float64(interval), 'g', 4, 64))
}

// clientAddr returns the address that MaxConnectionsPerClient counts r
// against: the peer's IP address, or, when the peer is a trusted proxy,
// the address the forwarding headers name (see walkHops). It is invalid
// when RemoteAddr is not an IP address and port, as for a Unix socket.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	peer := ap.Addr().Unmap().WithZone("")
	if !isTrusted(peer, trusted) {
		return peer
	}
	xff, fwd := r.Header[hdrXForwardedFor], r.Header[hdrForwarded]
	switch {
	case len(fwd) == 0:
		return walkHops(peer, xff, false, trusted)
	case len(xff) == 0:
		return walkHops(peer, fwd, true, trusted)
	}
	// A trusted proxy writes one of them; the other may be the client's
	// own, and nothing tells which. Unless they agree, count the proxy.
	if a := walkHops(peer, xff, false, trusted); a == walkHops(peer, fwd, true, trusted) {
		return a
	}
	return peer
}

// isTrusted reports whether a is in one of the trusted prefixes.
func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// maxHops is how many hops of one header line walkHops reads, from the
// right; a line with more is read as if its hop maxHops+1 were unknown.
const maxHops = 16

// walkHops returns the client address that the lines of X-Forwarded-For,
// or of Forwarded when forwarded is true, name for a request from peer, a
// trusted proxy. Each proxy appends the address it received the request
// from, so the lines are read from the right, past the trusted proxies, to
// the first address that is not one, which is the client's: what lies to
// its left, the client could have written. When a trusted hop does not say
// whom it forwarded for (an "unknown" or obfuscated node, a value that is
// not an address, a malformed line, no hop at all), the answer is the last
// trusted address, which is the nearest that is known.
func walkHops(peer netip.Addr, lines []string, forwarded bool, trusted []netip.Prefix) netip.Addr {
	last := peer
	for i := len(lines) - 1; i >= 0; i-- {
		var hops [maxHops]string
		n, ok := splitHops(&hops, lines[i], forwarded)
		if !ok {
			return last
		}
		for j := n - 1; j >= max(n-maxHops, 0); j-- {
			a, ok := parseNode(hops[j%maxHops], forwarded)
			if !ok {
				return last
			}
			if !isTrusted(a, trusted) {
				return a
			}
			last = a
		}
		if n > maxHops {
			return last
		}
	}
	return last
}

// splitHops puts the hops of one line into hops, the n-th at n%maxHops, so
// the last maxHops are kept, and returns how many there are: the elements
// of X-Forwarded-For, or the "for" values of Forwarded's elements (RFC 7239,
// section 4), "" for an element without one. Empty elements are skipped, as
// lists allow. ok is false when the line is malformed: a quoted string
// that does not end, or a Forwarded element whose parameters are not
// name=value pairs or that has "for" twice.
func splitHops(hops *[maxHops]string, line string, forwarded bool) (n int, ok bool) {
	for rest := line; rest != ""; {
		var elem string
		if elem, rest, _, ok = cut(rest, &elementEnd); !ok {
			return 0, false
		}
		if elem == "" {
			continue
		}
		if forwarded {
			if elem, ok = forwardedFor(elem); !ok {
				return 0, false
			}
		}
		hops[n%maxHops] = elem
		n++
	}
	return n, true
}

// forwardedFor returns the raw value of the "for" parameter of a Forwarded
// element (RFC 7239, section 4), "" when it has none:
//
//	forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )
//	forwarded-pair    = token "=" value
//	value             = token / quoted-string
func forwardedFor(elem string) (value string, ok bool) {
	found := false
	for more := true; more; {
		var name, v string
		var hasValue bool
		name, v, hasValue, elem, more = nextParam(elem)
		switch {
		case name == "" && !hasValue:
			continue // an empty pair, as after a trailing ";"
		case !hasValue || !isToken(name) || !isToken(v) && !isQuoted(v):
			return "", false
		case tokenEqual(name, "for"):
			if found {
				return "", false
			}
			value, found = v, true
		}
	}
	return value, true
}

// parseNode parses a hop as an IP address, ignoring a port and a zone. In
// X-Forwarded-For a hop is an address, an IPv4 address with a port, or a
// bracketed IPv6 address with or without one. In Forwarded it is a node
// (RFC 7239, section 6): an IPv4 address, or a quoted string holding an
// IPv4 address with a port or a bracketed IPv6 address with or without
// one; "unknown" and obfuscated nodes ("_hidden") are not addresses.
func parseNode(s string, forwarded bool) (netip.Addr, bool) {
	if forwarded && s != "" && s[0] == '"' {
		s = s[1 : len(s)-1]
		for i := 0; i < len(s); i++ {
			if s[i] == '\\' {
				return netip.Addr{}, false
			}
		}
	} else if forwarded {
		// Unquoted, a node is a token: an IPv4 address, "unknown" or an
		// obfuscated one.
		a, err := netip.ParseAddr(s)
		return a, err == nil && a.Is4()
	}
	if s != "" && s[0] == '[' {
		end := 0
		for end < len(s) && s[end] != ']' {
			end++
		}
		if end == len(s) || !isPort(s[end+1:]) {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(s[1:end])
		return a.Unmap().WithZone(""), err == nil && a.Is6()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		if forwarded && !a.Is4() {
			return netip.Addr{}, false // RFC 7239, section 6: IPv6 goes in brackets
		}
		return a.Unmap().WithZone(""), true
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || !ap.Addr().Is4() {
		return netip.Addr{}, false
	}
	return ap.Addr(), true
}

// isPort reports whether s is "" or ":" followed by one to five digits.
func isPort(s string) bool {
	if s == "" {
		return true
	}
	if s[0] != ':' || len(s) < 2 || len(s) > 6 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// unmapPrefix returns p over IPv4 when it is an IPv4-mapped IPv6 prefix, as
// client addresses are unmapped before they are compared.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}
