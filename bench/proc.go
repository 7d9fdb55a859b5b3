package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Server processes, seen from the harness: started by re-executing the
// harness's own binary, driven through their standard input and output, and
// killed when the run ends, however it ends.

// Bounds on talking to a server process.
const (
	startTimeout   = 20 * time.Second // until it prints "ready"
	commandTimeout = 60 * time.Second // for one command's answer
	stopTimeout    = 10 * time.Second // from quit until it has exited
)

// A proc is a running server process.
type proc struct {
	kind   string
	addr   *net.TCPAddr
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  chan string   // what it prints, one line each; closed when it exits
	done   chan struct{} // closed once it has exited and been waited for
	stderr *tail
}

// A procSet holds the server processes of a run, so that killAll can end
// every one that is still running.
type procSet struct {
	mu     sync.Mutex
	procs  map[*proc]bool
	closed bool
}

// start runs a server process of kind, with env added to its environment,
// and waits until it listens.
func (ps *procSet) start(kind string, env ...string) (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), serverEnv+"="+kind), env...)
	cmd.SysProcAttr = sysProcAttr()
	p := &proc{kind: kind, cmd: cmd, lines: make(chan string, 16), done: make(chan struct{}), stderr: &tail{}}
	cmd.Stderr = p.stderr
	if p.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	ps.mu.Lock()
	if ps.closed {
		ps.mu.Unlock()
		return nil, errors.New("the run is over")
	}
	if err := cmd.Start(); err != nil {
		ps.mu.Unlock()
		return nil, err
	}
	if ps.procs == nil {
		ps.procs = make(map[*proc]bool)
	}
	ps.procs[p] = true
	ps.mu.Unlock()
	go p.read(out, ps)

	line, err := p.receive(startTimeout)
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("%s did not start: %w", kind, err)
	}
	addr, ok := strings.CutPrefix(line, "ready ")
	if ok {
		p.addr, err = net.ResolveTCPAddr("tcp", addr)
	}
	if !ok || err != nil {
		p.kill()
		return nil, fmt.Errorf("%s started with %q", kind, line)
	}
	return p, nil
}

// read passes on what the process prints until it exits, then waits for it
// and removes it from ps.
func (p *proc) read(out io.Reader, ps *procSet) {
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		p.lines <- sc.Text()
	}
	close(p.lines)
	p.cmd.Wait()
	ps.mu.Lock()
	delete(ps.procs, p)
	ps.mu.Unlock()
	close(p.done)
}

// receive returns the next line the process prints, waiting at most
// timeout; it kills the process if none comes.
func (p *proc) receive(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-p.lines:
		if !ok {
			<-p.done
			return "", fmt.Errorf("%s exited (%v): %s", p.kind, p.cmd.ProcessState, p.stderr)
		}
		return line, nil
	case <-t.C:
		p.kill()
		return "", fmt.Errorf("%s did not answer within %v: %s", p.kind, timeout, p.stderr)
	}
}

// stats sends cmd ("stats" or "gc") and returns the answer.
func (p *proc) stats(cmd string) (serverStats, error) {
	var s serverStats
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		return s, fmt.Errorf("%s: %s: %w: %s", p.kind, cmd, err, p.stderr)
	}
	line, err := p.receive(commandTimeout)
	if err != nil {
		return s, err
	}
	if err := s.parseLine(line); err != nil {
		return s, fmt.Errorf("%s: %s answered %q: %w", p.kind, cmd, line, err)
	}
	return s, nil
}

// stop asks the process to exit, so it writes its profiles, and kills it
// if it has not exited within stopTimeout.
func (p *proc) stop() error {
	fmt.Fprintln(p.in, "quit")
	p.in.Close()
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.kill()
		return fmt.Errorf("%s did not exit within %v", p.kind, stopTimeout)
	}
	if !p.cmd.ProcessState.Success() {
		return fmt.Errorf("%s exited with %v: %s", p.kind, p.cmd.ProcessState, p.stderr)
	}
	return nil
}

// kill ends the process at once and waits until it is gone.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	p.in.Close()
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
	}
}

// killAll kills every process still running and refuses to start more.
func (ps *procSet) killAll() {
	ps.mu.Lock()
	ps.closed = true
	procs := make([]*proc, 0, len(ps.procs))
	for p := range ps.procs {
		procs = append(procs, p)
	}
	ps.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
}

// A tail keeps the last few KiB written to it: a server process's standard
// error, shown when it fails.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

// tailSize is how much of a server's standard error a tail keeps.
const tailSize = 4 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailSize; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) == 0 {
		return "(no standard error)"
	}
	return strings.TrimSpace(string(t.buf))
}
