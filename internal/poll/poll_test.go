package poll

import (
	"fmt"
	"testing"
	"time"
)

// TestUntil checks that Until returns once the condition holds, having
// checked it until then.
func TestUntil(t *testing.T) {
	calls := 0
	Until(t, 10*time.Second, "the third call", func() bool { calls++; return calls == 3 })
	if calls != 3 {
		t.Errorf("cond called %d times, want 3", calls)
	}
}

// TestUntilFails checks that Until fails the test, saying what it waited
// for, once the time is up.
func TestUntilFails(t *testing.T) {
	r := &recorder{TB: t}
	Until(r, 20*time.Millisecond, "nothing", func() bool { return false })
	if want := "waited 20ms for nothing"; r.failure != want {
		t.Errorf("failure = %q, want %q", r.failure, want)
	}
}

// A recorder is a testing.TB whose Fatalf records the failure instead.
type recorder struct {
	testing.TB
	failure string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failure = fmt.Sprintf(format, args...) }
