package testkit

import (
	"os"
	"testing"

	"lowbit.dev/cooper/internal/leakcheck"
)

// Main runs the tests and fails the run when one leaves behind a goroutine
// running cooper's or net/http's code, or code whose stack mentions one of
// also (such as "go-chi/chi"). It waits up to 5 s for such goroutines to
// end, and prints the stacks of those that did not (see
// [leakcheck.ExitCode]).
func Main(m *testing.M, also ...string) {
	marks := append([]string{"lowbit.dev/cooper", "net/http"}, also...)
	os.Exit(leakcheck.ExitCode(m.Run(), marks...))
}
