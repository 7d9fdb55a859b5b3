package testkit

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Main runs the tests and fails the run when one leaves behind a goroutine
// running cooper's or net/http's code, or code whose stack mentions one of
// also (such as "go-chi/chi"). It waits up to 5 s for such goroutines to
// end, and prints the stacks of those that did not.
func Main(m *testing.M, also ...string) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5*time.Second, also); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for goroutines running cooper's,
// net/http's or also's code to end, and returns the stacks of those that
// did not.
func leakedGoroutines(d time.Duration, also []string) string {
	marks := append([]string{"lowbit.dev/cooper", "net/http"}, also...)
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "leakedGoroutines") || strings.Contains(g, "testing.(*M).") {
				continue
			}
			for _, mark := range marks {
				if strings.Contains(g, mark) {
					leaked = append(leaked, g)
					break
				}
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
