package leakcheck

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(ExitCode(m.Run(), "lowbit.dev/cooper")) }

// TestLeaked checks that a goroutine whose stack carries a mark (this
// package is under lowbit.dev/cooper) is reported until it ends, and that
// one without any is not.
func TestLeaked(t *testing.T) {
	release := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		<-release
	}()
	if leaked := Leaked(50*time.Millisecond, "lowbit.dev/cooper"); !strings.Contains(leaked, "TestLeaked.func1") {
		t.Errorf("Leaked = %q, want the goroutine still waiting", leaked)
	}
	if leaked := Leaked(50*time.Millisecond, "no such mark"); leaked != "" {
		t.Errorf("Leaked with a mark no stack has = %q, want none", leaked)
	}
	close(release)
	<-ended
	if leaked := Leaked(5*time.Second, "lowbit.dev/cooper"); leaked != "" {
		t.Errorf("Leaked after it ended = %q, want none", leaked)
	}
}

// TestExitCode checks that a failed run keeps its status and a passing run
// without leaks keeps 0.
func TestExitCode(t *testing.T) {
	if got := ExitCode(2, "lowbit.dev/cooper"); got != 2 {
		t.Errorf("ExitCode(2) = %d, want 2", got)
	}
	if got := ExitCode(0, "no such mark"); got != 0 {
		t.Errorf("ExitCode(0) with nothing left running = %d, want 0", got)
	}
}
