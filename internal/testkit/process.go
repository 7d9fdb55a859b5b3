package testkit

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// InChildProcess runs the calling test, a subtest too, again and alone in a
// child process of the test binary whose environment has key=value added,
// and fails t unless it passes there; in that child, where key is value,
// it returns true instead, and the test goes on there. A test that changes
// what a process keeps for good (an Upgrader shut down, a setting read
// only at start) runs so, and the tests can run again (-count).
func InChildProcess(t *testing.T, key, value string) bool {
	t.Helper()
	if os.Getenv(key) == value {
		return true
	}
	runChild(t, key+"="+value)
	return false
}

// InExtendedConnectProcess runs the calling test again in a child test
// process started with GODEBUG=http2xconnect=1 (net/http reads it only
// when a process starts) and fails t unless it passes there; in that
// child it returns true instead, and the test goes on there. Plain
// `go test` so covers net/http's extended CONNECT (RFC 8441).
func InExtendedConnectProcess(t *testing.T) bool {
	t.Helper()
	if strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		return true
	}
	runChild(t, "GODEBUG="+os.Getenv("GODEBUG")+",http2xconnect=1")
	return false
}

// runChild runs t's test alone in a child process of the test binary with
// setting added to its environment, and fails t unless it passes there.
func runChild(t *testing.T, setting string) {
	t.Helper()
	names := strings.Split(t.Name(), "/")
	for i, name := range names {
		names[i] = "^" + regexp.QuoteMeta(name) + "$"
	}
	// The child's -test.timeout ends before this process's: otherwise a
	// child that hangs outlives it by up to 10 minutes, and its stacks are
	// lost with it.
	timeout := time.Duration(0) // none, as here
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d) * 9 / 10
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(names, "/"), "-test.count=1", "-test.v", "-test.timeout="+timeout.String())
	cmd.Env = append(os.Environ(), setting)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s with %s: %v\n%s", t.Name(), setting, err, out)
	}
	if testing.Verbose() {
		t.Logf("with %s:\n%s", setting, out)
	}
}
