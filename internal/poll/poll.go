// Package poll waits, in tests, for a condition that nothing announces,
// such as a count in an Upgrader's Stats. It imports only the standard
// library, so that the root module's tests can use it.
package poll

import (
	"testing"
	"time"
)

// interval is how often Until checks its condition.
const interval = 5 * time.Millisecond

// Until calls cond every 5 ms until it holds. If d passes first, it fails
// t with "waited d for what" and returns. Like t.Fatal, it must be called
// from the test's goroutine.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(interval) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
			return
		}
	}
}
