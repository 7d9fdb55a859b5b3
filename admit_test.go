package cooper

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestUpgradeRateBucket drives UpgradeRate's bucket on a virtual clock: a
// full bucket admits a burst at once, then one upgrade per interval; it
// never holds more than the burst; and a refusal is 503 with ErrUpgradeRate.
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
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("past the rate: status = %d, Retry-After = %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		checkReason(t, resp, body)
		if err := wait(t, f.errs, "refusal"); !errors.Is(err, ErrUpgradeRate) {
			t.Errorf("OnError got %v, want ErrUpgradeRate", err)
		}
		if n := f.hijacked.Load(); n != 2 {
			t.Errorf("%d connections taken over, want 2", n)
		}
		u := f.Config.Handler.(*handler).u
		if s := u.Stats(); s.Refusals[ErrUpgradeRate] != 1 || s.Upgrades != 2 {
			t.Errorf("Stats = %+v, want 2 upgrades and 1 ErrUpgradeRate refusal", s)
		}
	})
}
