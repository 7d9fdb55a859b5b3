package testkit

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// InExtendedConnectProcess runs the calling top-level test again in a
// child test process started with GODEBUG=http2xconnect=1 (net/http reads
// it only when a process starts) and fails t unless it passes there; in
// that child it returns true instead, and the test goes on here. Plain
// `go test` so covers net/http's extended CONNECT (RFC 8441).
func InExtendedConnectProcess(t *testing.T) bool {
	t.Helper()
	if strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG="+os.Getenv("GODEBUG")+",http2xconnect=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s with GODEBUG=http2xconnect=1: %v\n%s", t.Name(), err, out)
	}
	if testing.Verbose() {
		t.Logf("with GODEBUG=http2xconnect=1:\n%s", out)
	}
	return false
}
