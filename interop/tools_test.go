package interop

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"lowbit.dev/cooper/internal/testkit"
)

// missing stops a test that needs what is not installed: it skips, saying
// how to install it ("install it with: apt-get install -y nginx"), or
// fails when CI=true, so that CI can never pass by skipping.
func missing(t *testing.T, what, install string) {
	t.Helper()
	msg := fmt.Sprintf("%s is not installed; %s", what, install)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing tool is a failure)")
	}
	t.Skip(msg)
}

// program returns the path of the program name, looked up in PATH and then
// in /usr/sbin, where Debian puts nginx and haproxy but which a user's PATH
// may lack; or it stops the test through missing.
func program(t *testing.T, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if path, err = exec.LookPath(filepath.Join("/usr/sbin", name)); err != nil {
			missing(t, name, install)
		}
	}
	return path
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A process is a program a test started, in a process group of its own.
type process struct {
	cmd    *exec.Cmd
	output *testkit.LockedBuffer // its standard output and error, together, the first MiB
	exited chan struct{}
	err    error // how it exited, once exited is closed
}

// start starts a program in its own process group with its output
// captured. The test's cleanup stops it: SIGTERM to the group, then, if it
// has not exited 5 s later, SIGKILL.
func start(t *testing.T, path string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(path, args...), output: &testkit.LockedBuffer{Limit: 1 << 20}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	return p
}

// stop ends the process and everything in its group, and waits for it.
func (p *process) stop() {
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.exited
	}
	// Children that outlived the leader are still in its group.
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// await calls done every 20 ms until it reports true: the wait of every
// test for a program it started to get ready. It returns an error, with
// the process's output, if the process has exited or within has passed
// when done still reports false. done sees what the process wrote before
// it exited, so that a line it reads there (an error the program printed,
// a process to clean up) is not lost to the exit.
func (p *process) await(within time.Duration, done func() bool) error {
	for deadline := time.Now().Add(within); ; time.Sleep(20 * time.Millisecond) {
		if done() {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited (%v):\n%s", p.err, p.output)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still waiting after %v:\n%s", within, p.output)
		}
	}
}

// listenAddr waits up to 10 s, as await does, for the process to print
// "listening on " and returns the rest of that line: where a server
// program the tests run says it listens.
func (p *process) listenAddr() (string, error) {
	var addr string
	err := p.await(10*time.Second, func() bool {
		_, rest, ok := strings.Cut(p.output.String(), "listening on ")
		addr, _, _ = strings.Cut(rest, "\n")
		return ok
	})
	return strings.TrimSpace(addr), err
}

// waitListening waits up to 10 s, as await does, until something accepts
// connections on addr. It reports false, saying why, if not.
func (p *process) waitListening(addr string) (ok bool, why string) {
	err := p.await(10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	if err != nil {
		return false, fmt.Sprintf("not listening on %s: %v", addr, err)
	}
	return true, ""
}

// listening starts a server program on a free loopback port, retrying
// with another port, up to three times, when the port was taken between
// choosing it and the program binding it. run starts the program to listen
// on port.
func listening(t *testing.T, name string, run func(port int) *process) (addr string, p *process) {
	t.Helper()
	var why string
	for range 3 {
		port := freePort(t)
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p = run(port)
		var ok bool
		if ok, why = p.waitListening(addr); ok {
			return addr, p
		}
		p.stop()
		if !bytes.Contains(p.output.Bytes(), []byte("in use")) {
			break
		}
	}
	t.Fatalf("%s %s", name, why)
	return "", nil
}

// buildExample builds the example program examples/name, without the race
// detector, into a temporary folder and returns the program's path.
func buildExample(t *testing.T, name string) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, goCmd, "build", "-o", bin, "lowbit.dev/cooper/examples/"+name).CombinedOutput(); err != nil {
		t.Fatalf("building examples/%s: %v\n%s", name, err, out)
	}
	return bin
}

// startExample builds the example program examples/name, runs it on a free
// loopback port and returns the URL it prints, with the process. The
// test's cleanup stops it.
func startExample(t *testing.T, name string, args ...string) (string, *process) {
	t.Helper()
	p := start(t, buildExample(t, name), append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	url, err := p.listenAddr()
	if err != nil {
		t.Fatalf("examples/%s did not say where it listens: %v", name, err)
	}
	return url, p
}
