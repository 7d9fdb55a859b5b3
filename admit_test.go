package cooper

import (
	"errors"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lowbit.dev/cooper/internal/poll"
)

// TestUpgradeRateBucket drives UpgradeRate's bucket on a virtual clock: a
// full bucket admits a burst at once, then one upgrade per interval; it
// never holds more than the burst; a token given back can be taken again;
// and a refusal is 503 with ErrUpgradeRate.
func TestUpgradeRateBucket(t *testing.T) {
	u := New(UpgradeRate(10, 3)) // an upgrade every 100 ms, 3 at once
	var clock time.Duration
	u.now = func() time.Duration { return clock }
	take := func(want int, when string) {
		t.Helper()
		got := 0
		for range want + 5 {
			rej := u.takeToken()
			if rej == nil {
				got++
				continue
			}
			if rej.Status != http.StatusServiceUnavailable || !errors.Is(rej, ErrUpgradeRate) {
				t.Fatalf("%s: refusal %d %v, want 503 ErrUpgradeRate", when, rej.Status, rej)
			}
		}
		if got != want {
			t.Errorf("%s: %d upgrades admitted, want %d", when, got, want)
		}
	}
	take(3, "at the start, a full bucket")
	clock += 99 * time.Millisecond
	take(0, "99 ms later")
	clock += time.Millisecond
	take(1, "100 ms later")
	clock += 250 * time.Millisecond
	take(2, "250 ms later")
	clock += time.Hour
	take(3, "an hour later, no more than the burst")
	u.returnToken()
	take(1, "after a token was given back")
}

// TestUpgradeRateConcurrent takes tokens from many goroutines at one
// instant: exactly the burst is admitted, whatever the interleaving.
func TestUpgradeRateConcurrent(t *testing.T) {
	const burst = 20000
	u := New(UpgradeRate(1, burst))
	u.now = func() time.Duration { return time.Second }
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5000 {
				if u.takeToken() == nil {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != burst {
		t.Errorf("%d of 40,000 admitted at one instant, want the burst, %d", n, burst)
	}
}

// TestUpgradeRateRetryAfter refuses a storm at one instant: each refused
// client is told to come back at its own time at the rate, so Retry-After
// spreads them over as many seconds as the bucket needs to admit them,
// within the bound, never below one second.
func TestUpgradeRateRetryAfter(t *testing.T) {
	u := New(UpgradeRate(10, 1))
	u.now = func() time.Duration { return 0 }
	if u.takeToken() != nil {
		t.Fatal("the first upgrade was refused")
	}
	seen := map[int]int{}
	for k := 1; k <= 1000; k++ {
		rej := u.takeToken()
		if rej == nil {
			t.Fatal("an upgrade was admitted from an empty bucket")
		}
		secs, err := strconv.Atoi(rej.Header.Get("Retry-After"))
		// The k-th refused may be admitted k intervals on: at k/10 s.
		due := min((k+9)/10, int(maxRetryAfter/time.Second))
		if err != nil || secs < max(due, 1) || secs > max(due, 1)+1 {
			t.Fatalf("refusal %d: Retry-After = %q, want %d or %d", k, rej.Header.Get("Retry-After"), max(due, 1), max(due, 1)+1)
		}
		seen[secs]++
	}
	if len(seen) < 60 {
		t.Errorf("Retry-After took %d values for 1,000 clients, want them spread over 60 s", len(seen))
	}
}

// TestRetryAfterJitter checks that refusals that carry Retry-After spread
// their clients over whole seconds.
func TestRetryAfterJitter(t *testing.T) {
	for _, tc := range []struct{ min, spread int }{{1, 2}, {5, 5}} {
		seen := map[string]bool{}
		for range 200 {
			v := retryAfter(tc.min, tc.spread).Get("Retry-After")
			n, err := strconv.Atoi(v)
			if err != nil || n < tc.min || n > tc.min+tc.spread {
				t.Fatalf("retryAfter(%d, %d) = %q, want whole seconds from %d to %d", tc.min, tc.spread, v, tc.min, tc.min+tc.spread)
			}
			seen[v] = true
		}
		if len(seen) != tc.spread+1 {
			t.Errorf("retryAfter(%d, %d) took %d values in 200 tries, want all %d", tc.min, tc.spread, len(seen), tc.spread+1)
		}
	}
}

// TestUpgradeRateEndToEnd upgrades real connections on loopback past the
// rate: the refused request gets 503 with Retry-After and a one-line
// reason, is not taken over, reaches OnError and is counted in Stats.
func TestUpgradeRateEndToEnd(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		// A token every 100 s: the bucket does not refill during the test.
		f := newFixture(t, m, Protocols("websocket"), UpgradeRate(0.01, 2))
		for range 2 {
			if resp, _, _, _ := f.roundTrip(t, f.wsRequest(), ""); resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("within the burst: status = %d, want 101", resp.StatusCode)
			}
			wait(t, f.handled, "handler call")
		}
		resp, body, _, _ := f.roundTrip(t, f.wsRequest(), "")
		f.checkRetryRefusal(t, resp, body, http.StatusServiceUnavailable, ErrUpgradeRate)
		if n := f.hijacked.Load(); n != 2 {
			t.Errorf("%d connections taken over, want 2", n)
		}
		u := f.Config.Handler.(*handler).u
		if s := u.Stats(); s.Refusals[ErrUpgradeRate] != 1 || s.Upgrades != 2 {
			t.Errorf("Stats = %+v, want 2 upgrades and 1 ErrUpgradeRate refusal", s)
		}
	})
}

// TestClientAddr tables the rules for the address MaxConnectionsPerClient
// counts by: the peer's, unless the peer is a trusted proxy, in which case
// the forwarding headers are walked from the right past trusted proxies to
// the first address that is not one; a hop that does not say whom it
// forwarded for, a malformed header, or two headers that disagree leave
// the last trusted address.
func TestClientAddr(t *testing.T) {
	trusted := newConfig([]Option{TrustedProxies("10.0.0.0/8", "2001:db8:1::/48", "127.0.0.1", "::ffff:172.16.0.0/108")}).trustedProxies
	const proxy, client = "10.0.0.1:443", "203.0.113.7"
	cases := []struct {
		name       string
		remoteAddr string
		xff, fwd   []string
		want       string // "" for none: not limited
	}{
		{"untrusted peer counts as itself", "198.51.100.9:5000", nil, nil, "198.51.100.9"},
		{"untrusted peer cannot choose its address with X-Forwarded-For", "198.51.100.9:5000", []string{client}, nil, "198.51.100.9"},
		{"untrusted peer cannot choose its address with Forwarded", "198.51.100.9:5000", nil, []string{"for=" + client}, "198.51.100.9"},
		{"trusted peer without headers counts as itself", proxy, nil, nil, "10.0.0.1"},
		{"trusted peer names the client in X-Forwarded-For", proxy, []string{client}, nil, client},
		{"what the client wrote to the left is ignored", proxy, []string{"198.51.100.1, " + client}, nil, client},
		{"a client claiming a trusted address is still itself", proxy, []string{"10.0.0.5, " + client}, nil, client},
		{"trusted hops are walked past", proxy, []string{client + ", 10.0.0.2, 10.0.0.3"}, nil, client},
		{"every line is read, the last first", proxy, []string{"198.51.100.1", client + ", 10.0.0.2"}, nil, client},
		{"a hop in an earlier line", proxy, []string{client, "10.0.0.2"}, nil, client},
		{"a chain of trusted proxies only gives the farthest", proxy, []string{"10.0.0.3, 10.0.0.2"}, nil, "10.0.0.3"},
		{"empty elements are skipped", proxy, []string{client + ", , 10.0.0.2,"}, nil, client},
		{"unknown hop leaves the last trusted", proxy, []string{"198.51.100.1, unknown, 10.0.0.2"}, nil, "10.0.0.2"},
		{"a hop that is not an address leaves the proxy", proxy, []string{client + ", not-an-address"}, nil, "10.0.0.1"},
		{"IPv6 in X-Forwarded-For", proxy, []string{"2001:db8:2::5"}, nil, "2001:db8:2::5"},
		{"bracketed IPv6 with a port", proxy, []string{"[2001:db8:2::5]:4711"}, nil, "2001:db8:2::5"},
		{"IPv4 with a port", proxy, []string{client + ":5555"}, nil, client},
		{"IPv4-mapped IPv6 is IPv4", proxy, []string{"::ffff:" + client}, nil, client},
		{"a zone is dropped", proxy, []string{"fe80::1%eth0"}, nil, "fe80::1"},
		{"a bracket that does not close leaves the proxy", proxy, []string{"[2001:db8:2::5"}, nil, "10.0.0.1"},
		{"a port that is not a port leaves the proxy", proxy, []string{"[2001:db8:2::5]:http"}, nil, "10.0.0.1"},
		{"more trusted hops than are read", proxy, []string{client + strings.Repeat(", 10.0.0.9", maxHops) + ", 10.0.0.2"}, nil, "10.0.0.9"},
		{"RFC 7239 example", proxy, nil, []string{"for=192.0.2.60;proto=http;by=203.0.113.43"}, "192.0.2.60"},
		{"Forwarded parameter names ignore case", proxy, nil, []string{"For=192.0.2.60"}, "192.0.2.60"},
		{"Forwarded quoted IPv4", proxy, nil, []string{`for="192.0.2.60"`}, "192.0.2.60"},
		{"Forwarded quoted IPv4 with a port", proxy, nil, []string{`for="192.0.2.60:4711"`}, "192.0.2.60"},
		{"Forwarded quoted bracketed IPv6 with a port", proxy, nil, []string{`for="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17"},
		{"Forwarded chain, client's spoof on the left", proxy, nil, []string{"for=198.51.100.1, for=192.0.2.60"}, "192.0.2.60"},
		{"Forwarded trusted hop walked past", proxy, nil, []string{"for=192.0.2.60;proto=https, for=10.0.0.2"}, "192.0.2.60"},
		{"Forwarded on several lines", proxy, nil, []string{"for=198.51.100.1", "for=192.0.2.60"}, "192.0.2.60"},
		{"Forwarded comma inside a quoted string does not split", proxy, nil, []string{`for="_a,b", for=192.0.2.60`}, "192.0.2.60"},
		{"Forwarded obfuscated node leaves the last trusted", proxy, nil, []string{"for=198.51.100.1, for=_hidden, for=10.0.0.2"}, "10.0.0.2"},
		{"Forwarded unknown node leaves the proxy", proxy, nil, []string{"for=unknown"}, "10.0.0.1"},
		{"Forwarded unquoted IPv6 is malformed", proxy, nil, []string{"for=2001:db8::1"}, "10.0.0.1"},
		{"Forwarded quoted IPv6 without brackets is refused", proxy, nil, []string{`for="2001:db8::1"`}, "10.0.0.1"},
		{"Forwarded element without for leaves the proxy", proxy, nil, []string{"for=198.51.100.1, proto=https"}, "10.0.0.1"},
		{"Forwarded for twice in one element is malformed", proxy, nil, []string{"for=198.51.100.1;for=192.0.2.60"}, "10.0.0.1"},
		{"Forwarded unterminated quoted string", proxy, nil, []string{`for=192.0.2.60, for="198.51.100.1`}, "10.0.0.1"},
		{"Forwarded escape in a node", proxy, nil, []string{`for="\"192.0.2.60\""`}, "10.0.0.1"},
		{"Forwarded pair without a value", proxy, nil, []string{"for"}, "10.0.0.1"},
		{"both headers agreeing", proxy, []string{client}, []string{"for=" + client}, client},
		{"both headers disagreeing count the proxy", proxy, []string{client}, []string{"for=198.51.100.1"}, "10.0.0.1"},
		{"trusted IPv6 peer", "[2001:db8:1::1]:443", []string{client}, nil, client},
		{"trusted IPv4-mapped peer", "[::ffff:10.0.0.1]:443", []string{client}, nil, client},
		{"trusted single address", "127.0.0.1:443", []string{client}, nil, client},
		{"trusted IPv4-mapped prefix matches IPv4", "172.16.0.1:443", []string{client}, nil, client},
		{"peer with a zone", "[fe80::1%eth0]:443", nil, nil, "fe80::1"},
		{"peer that is not an IP address is not limited", "@", nil, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remoteAddr, Header: http.Header{}}
			if tc.xff != nil {
				r.Header["X-Forwarded-For"] = tc.xff
			}
			if tc.fwd != nil {
				r.Header["Forwarded"] = tc.fwd
			}
			var want netip.Addr
			if tc.want != "" {
				want = netip.MustParseAddr(tc.want)
			}
			if got := clientAddr(r, trusted); got != want {
				t.Errorf("clientAddr = %v, want %v", got, want)
			}
		})
	}
}

// FuzzClientAddr checks that no forwarding header makes clientAddr panic,
// and that the address it returns is the peer's, one named in the headers,
// or invalid.
func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.1:443", "198.51.100.1, 203.0.113.7", `for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"`)
	f.Add("10.0.0.1:443", "[2001:db8::1]:80, unknown", `for=_hidden, for="\"x"`)
	f.Add("[::ffff:10.0.0.1]:1", "", `for="`)
	trusted := newConfig([]Option{TrustedProxies("10.0.0.0/8", "2001:db8::/32")}).trustedProxies
	f.Fuzz(func(t *testing.T, remoteAddr, xff, fwd string) {
		r := &http.Request{RemoteAddr: remoteAddr, Header: http.Header{"X-Forwarded-For": {xff}, "Forwarded": {fwd}}}
		a := clientAddr(r, trusted)
		if !a.IsValid() {
			return
		}
		if a.Zone() != "" || a.Is4In6() {
			t.Errorf("clientAddr = %v, want no zone and IPv4 unmapped", a)
		}
		if ap, err := netip.ParseAddrPort(remoteAddr); err == nil && ap.Addr().Unmap().WithZone("") == a {
			return
		}
		// A slow reference: every piece of the headers that reads as an
		// address, with or without a port.
		named := false
		for piece := range strings.FieldsFuncSeq(xff+","+fwd, func(r rune) bool { return strings.ContainsRune(" \t,;=\"[]", r) }) {
			b, err := netip.ParseAddr(piece)
			if ap, perr := netip.ParseAddrPort(piece); err != nil && perr == nil {
				b, err = ap.Addr(), nil
			}
			named = named || err == nil && b.Unmap().WithZone("") == a
		}
		if !named {
			t.Errorf("clientAddr = %v, named neither by the peer %q nor by the headers", a, remoteAddr)
		}
	})
}

// TestAdmissionOptionPanics checks that the admission options refuse
// programmer errors when they are built.
func TestAdmissionOptionPanics(t *testing.T) {
	checkPanics(t, []panicCase{
		{"negative DrainTime", func() { DrainTime(-1) }, "cooper: DrainTime: duration must not be negative"},
		{"zero rate", func() { UpgradeRate(0, 1) }, "cooper: UpgradeRate: perSecond must be a positive number"},
		{"NaN rate", func() { UpgradeRate(math.NaN(), 1) }, "cooper: UpgradeRate: perSecond must be a positive number"},
		{"infinite rate", func() { UpgradeRate(math.Inf(1), 1) }, "cooper: UpgradeRate: perSecond must be a positive number"},
		{"zero burst", func() { UpgradeRate(1, 0) }, "cooper: UpgradeRate: burst must be at least 1"},
		{"zero per client", func() { MaxConnectionsPerClient(0) }, "cooper: MaxConnectionsPerClient: n must be positive"},
		{"prefix too long", func() { TrustedProxies("10.0.0.0/33") }, `cooper: TrustedProxies: "10.0.0.0/33" is not a CIDR prefix or an IP address`},
		{"host name", func() { TrustedProxies("10.0.0.0/8", "proxy.internal") }, `cooper: TrustedProxies: "proxy.internal" is not a CIDR prefix or an IP address`},
	})
}

// TestMaxConnectionsPerClientEndToEnd holds one client's limit open over
// loopback: its next request gets 429 with Retry-After, is not taken over,
// reaches OnError and Stats; a request a trusted proxy forwards for another
// client passes; once the first client closes a connection, it may upgrade
// again.
func TestMaxConnectionsPerClientEndToEnd(t *testing.T) {
	run(t, func(t *testing.T, m mode) {
		f := newFixture(t, m, Protocols("websocket"), MaxConnectionsPerClient(2), TrustedProxies("127.0.0.1"))
		forwardedFor := func(client string) *http.Request {
			r := f.wsRequest()
			r.Header.Set("X-Forwarded-For", client)
			return r
		}
		var open []net.Conn
		for range 2 {
			resp, _, c, _ := f.roundTrip(t, forwardedFor("203.0.113.7"), "")
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("within the limit: status = %d, want 101", resp.StatusCode)
			}
			wait(t, f.handled, "handler call")
			open = append(open, c)
		}
		resp, body, _, _ := f.roundTrip(t, forwardedFor("203.0.113.7"), "")
		f.checkRetryRefusal(t, resp, body, http.StatusTooManyRequests, ErrTooManyClientConnections)
		if n := f.hijacked.Load(); n != 2 {
			t.Errorf("%d connections taken over, want 2", n)
		}
		if resp, _, _, _ := f.roundTrip(t, forwardedFor("203.0.113.8"), ""); resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("another client through the same proxy: status = %d, want 101", resp.StatusCode)
		}
		wait(t, f.handled, "handler call")
		u := f.Config.Handler.(*handler).u
		if s := u.Stats(); s.Refusals[ErrTooManyClientConnections] != 1 || s.Upgrades != 3 {
			t.Errorf("Stats = %+v, want 3 upgrades and 1 ErrTooManyClientConnections refusal", s)
		}
		open[0].Close()
		poll.Until(t, 10*time.Second, "a handler to return", func() bool { return u.Stats().Active == 2 })
		if resp, _, _, _ := f.roundTrip(t, forwardedFor("203.0.113.7"), ""); resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("below the client's limit again: status = %d, want 101", resp.StatusCode)
		}
	})
}
