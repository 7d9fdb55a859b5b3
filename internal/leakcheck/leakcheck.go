// Package leakcheck finds the goroutines a test run left behind. The root
// package's TestMain and testkit.Main, which the other modules' TestMain
// call, both use it; it imports only the standard library, so that the root
// module's tests can.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// ExitCode returns the exit status of a test run that ended with code: code
// when it is not 0; otherwise 1 if a goroutine whose stack mentions one of
// marks (such as "net/http") is still running 5 s later, whose stacks it
// then prints to standard error, and 0 if none is.
func ExitCode(code int, marks ...string) int {
	if code != 0 {
		return code
	}
	if leaked := Leaked(5*time.Second, marks...); leaked != "" {
		fmt.Fprintf(os.Stderr, "goroutines left running after the tests:\n%s\n", leaked)
		return 1
	}
	return 0
}

// Leaked waits up to d for the goroutines whose stacks mention one of marks
// to end, and returns the stacks of those that did not, separated by blank
// lines; "" when all ended. The goroutine calling it and the one running
// testing.M are not counted.
func Leaked(d time.Duration, marks ...string) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "leakcheck.Leaked") || strings.Contains(g, "testing.(*M).") {
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
