package testkit

import (
	"testing"
	"time"
)

// TestGate checks that Wait blocks until Open, and that Open may be called
// again.
func TestGate(t *testing.T) {
	g := NewGate()
	passed := make(chan struct{})
	go func() {
		g.Wait()
		close(passed)
	}()
	select {
	case <-passed:
		t.Fatal("Wait returned before Open")
	case <-time.After(20 * time.Millisecond):
	}
	g.Open()
	RecvWithin(t, passed, 5*time.Second, "return of Wait after Open")
	g.Open()
	g.Wait()
}
