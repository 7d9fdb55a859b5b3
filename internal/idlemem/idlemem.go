// Package idlemem measures what idle connections cost a server process,
// for the BenchmarkIdleMemory of the root package and of the adapters. The
// benchmark runs its own test binary again as the server, so that the
// clients' memory is not counted: [Run] and [Start] on the benchmark's
// side, [Kind] and [Serve] in the server process. It imports only the
// standard library, so that the root module's tests can use it.
package idlemem

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// serverEnv names the kind of server a process started by Start serves
// instead of running its tests.
const serverEnv = "COOPER_IDLEMEM_SERVER"

// Kind returns the kind of server this process must serve, with Serve,
// instead of running its tests; "" when it was not started by Start.
func Kind() string { return os.Getenv(serverEnv) }

// Run runs a sub-benchmark for each kind of server. Each iteration, with
// the timer stopped, starts a fresh server of that kind ([Start]), calls
// round to open n idle connections to it (n/10 under -short) and return the
// server's memory growth per connection, and closes the server. Run
// reports the mean as B/conn.
func Run(b *testing.B, kinds []string, n int, round func(b *testing.B, srv *Server, kind string, n int) float64) {
	if testing.Short() {
		n /= 10
	}
	for _, kind := range kinds {
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			var perConn float64
			rounds := 0
			for b.Loop() {
				perConn += measure(b, kind, n, round)
				rounds++
			}
			b.ReportMetric(perConn/float64(rounds), "B/conn")
		})
	}
}

// measure is one iteration of Run's: round on a fresh server of kind,
// untimed.
func measure(b *testing.B, kind string, n int, round func(b *testing.B, srv *Server, kind string, n int) float64) float64 {
	b.StopTimer()
	defer b.StartTimer()
	srv := Start(b, kind)
	defer srv.Close()
	return round(b, srv, kind, n)
}

// A Server is a server process started by [Start].
type Server struct {
	// Hello is the line the server printed first (see [Serve]), without
	// its newline: the address to dial, and whatever else the client needs.
	Hello string

	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// Start runs the test binary again, as a server of kind, and returns once
// the server printed its hello line. The binary's TestMain must, when
// [Kind] is not "", call [Serve] instead of running the tests. Start fails
// tb if the process does not start or prints no hello line. The caller
// must call Close.
func Start(tb testing.TB, kind string) *Server {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverEnv+"="+kind)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	s := &Server{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	hello, err := s.out.ReadString('\n')
	if err != nil {
		s.Close()
		tb.Fatalf("server did not start: %v", err)
	}
	s.Hello = strings.TrimSpace(hello)
	return s
}

// Stats returns the server's heap plus stack bytes in use after GC and the
// count its active function reports (see [Serve]). It fails tb if the
// server does not answer.
func (s *Server) Stats(tb testing.TB) (mem uint64, active int) {
	tb.Helper()
	fmt.Fprintln(s.stdin, "stats")
	if _, err := fmt.Fscanln(s.out, &mem, &active); err != nil {
		tb.Fatalf("server stats: %v", err)
	}
	return mem, active
}

// Settle polls Stats every 50 ms until done holds for the active count,
// and returns the memory figure then. It fails tb if that takes over 10 s:
// a figure taken before the server settled would not be the one asked for.
func (s *Server) Settle(tb testing.TB, done func(active int) bool) (mem uint64) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mem, active := s.Stats(tb)
		if done(active) {
			return mem
		}
		if time.Now().After(deadline) {
			tb.Fatalf("server did not settle in 10 s: active count %d", active)
		}
	}
}

// Close closes the server's standard input, on which Serve returns, and
// waits for the process to exit.
func (s *Server) Close() error {
	s.stdin.Close()
	return s.cmd.Wait()
}

// Serve is the server process's side: it prints hello on a line of its
// own, then answers each line read from standard input with the heap plus
// stack bytes in use after GC and the count active returns, until
// standard input ends. hello must hold no newline.
func Serve(hello string, active func() int) {
	fmt.Println(hello)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Println(ms.HeapAlloc+ms.StackInuse, active())
	}
}

// Hold is an idle connection's handler: it waits until c's client sends a
// byte or goes away, then closes c.
func Hold(c net.Conn) {
	var b [1]byte
	c.Read(b[:])
	c.Close()
}
