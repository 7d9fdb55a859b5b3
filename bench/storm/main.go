// Command storm measures a reconnect storm on one cooper process: N
// clients that all connect at the same moment, as they do when another
// process of a fleet goes away at once, against a server without and with
// cooper's UpgradeRate. It prints a markdown table.
//
// Run it from the repository root:
//
//	go run ./bench/storm                           # 10,000 clients; UpgradeRate(500, 50)
//	go run ./bench/storm -clients 5000 -rate 1000 -burst 100
//
// Each server is a fresh process (this program, re-executed) on loopback.
// Its handler does what a real server does for a new connection before
// the client can use it (authenticate, load the session, subscribe):
// -work of CPU time (hashing, calibrated on the process's CPU time) and a 16 KiB
// session; then it sends a welcome message and holds the connection open
// until the client closes it. A client is connected once it has the
// welcome; it gives up on a connection after -client-timeout, as a
// browser's or an app's connect timeout does, and the server's work for
// it is wasted. The clients start together, each on a goroutine of its
// own, and behave as clients of a fleet should: a refusal's Retry-After
// (whole seconds) is waited, and up to a second more at random; a failed connection is
// retried after exponential backoff with full jitter (250 ms doubled each
// time, 8 s at most).
//
// For each server the table gives the time until every client is
// connected, the refused handshakes (503, with Retry-After), the
// connections that failed (timed out waiting for the welcome, or reset),
// the server's peak resident memory (VmHWM) and its CPU time (user and
// system), both from /proc, so on Linux only.
package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"lowbit.dev/cooper"
)

// serverEnv names the child's role: "rate,burst,work" (rate 0 for no
// limit).
const serverEnv = "COOPER_STORM_SERVER"

// The flags the clients and the server use.
var work, clientTimeout time.Duration

func main() {
	if v, ok := os.LookupEnv(serverEnv); ok {
		if err := serve(v); err != nil {
			log.Fatal(err)
		}
		return
	}
	clients := flag.Int("clients", 10000, "clients that connect at once")
	rate := flag.Float64("rate", 500, "UpgradeRate's upgrades a second, for the limited server")
	burst := flag.Int("burst", 50, "UpgradeRate's burst, for the limited server")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up on a storm after `d`")
	flag.DurationVar(&work, "work", time.Millisecond, "CPU time the server spends on a new connection")
	flag.DurationVar(&clientTimeout, "client-timeout", 5*time.Second, "how long a client waits for the welcome")
	flag.Parse()

	fmt.Printf("| server | time until all %d are connected | refused (503) | failed connections | server's peak memory | server's CPU time |\n", *clients)
	fmt.Println("| --- | --: | --: | --: | --: | --: |")
	for _, s := range []struct {
		name  string
		rate  float64
		burst int
	}{
		{"cooper, no UpgradeRate", 0, 0},
		{fmt.Sprintf("cooper, UpgradeRate(%g, %d)", *rate, *burst), *rate, *burst},
	} {
		r, err := storm(*clients, s.rate, s.burst, *timeout)
		if err != nil {
			log.Fatalf("%s: %v", s.name, err)
		}
		fmt.Printf("| %s | %.2f s | %d | %d | %.1f MiB | %.2f s |\n", s.name, r.all.Seconds(), r.refused, r.failed,
			float64(r.peakKiB)/1024, r.cpu.Seconds())
	}
	fmt.Printf("\n%d clients at once on loopback, %d CPUs, %s %s/%s, Go %s.\n", *clients, runtime.NumCPU(),
		cpuModel(), runtime.GOOS, runtime.GOARCH, strings.TrimPrefix(runtime.Version(), "go"))
}

// A result is what one storm measured.
type result struct {
	all             time.Duration // until every client was connected
	refused, failed int64
	peakKiB         int64
	cpu             time.Duration
}

// storm starts a server with UpgradeRate(rate, burst) (none when rate is
// 0), sends n clients at it at once, and measures.
func storm(n int, rate float64, burst int, timeout time.Duration) (result, error) {
	self, err := os.Executable()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%g,%d,%s", serverEnv, rate, burst, work))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // closing it stops the server
	if err != nil {
		return result{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer cmd.Wait()
	defer stdin.Close()
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return result{}, fmt.Errorf("the server did not say where it listens: %w", err)
	}
	addr = strings.TrimSpace(addr)

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ctx, broken := context.WithCancelCause(ctx) // an answer no retry mends ends the storm
	defer broken(nil)
	var r result
	var refused, failed atomic.Int64
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range conns {
		wg.Go(func() {
			<-start
			var err error
			if conns[i], err = connect(ctx, addr, &refused, &failed); err != nil {
				broken(err)
			}
		})
	}
	began := time.Now()
	close(start)
	wg.Wait()
	r.all = time.Since(began)
	r.refused, r.failed = refused.Load(), failed.Load()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		closeAll(conns)
		return r, err
	}
	missing := 0
	for _, c := range conns {
		if c == nil {
			missing++
		}
	}
	if missing > 0 {
		closeAll(conns)
		return r, fmt.Errorf("%d of %d clients not connected after %v", missing, n, timeout)
	}
	r.peakKiB, r.cpu, err = usage(cmd.Process.Pid)
	closeAll(conns)
	return r, err
}

// closeAll closes the connections that are not nil.
func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// connect upgrades a connection to addr, retrying as a client of a fleet
// should, until it succeeds or ctx is done (then it returns nil, nil). An
// answer that is neither a 101 nor a 503 refusal ends it with errAnswer:
// counting it as either would make the figures wrong.
func connect(ctx context.Context, addr string, refused, failed *atomic.Int64) (net.Conn, error) {
	attempt := 0
	for ctx.Err() == nil {
		conn, retryAfter, err := upgrade(ctx, addr)
		switch {
		case err == nil:
			return conn, nil
		case errors.Is(err, errAnswer):
			return nil, err
		}
		var wait time.Duration
		if retryAfter > 0 {
			refused.Add(1)
			wait = time.Duration(retryAfter)*time.Second + rand.N(time.Second)
		} else {
			failed.Add(1)
			attempt++
			wait = rand.N(min(250*time.Millisecond<<min(attempt, 10), 8*time.Second))
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil, nil
}

// errRefused is a handshake refused with 503, which UpgradeRate answers.
var errRefused = errors.New("refused")

// errAnswer is an answer that is neither a valid 101 nor a 503.
var errAnswer = errors.New("unexpected answer")

// upgrade does one WebSocket handshake with addr; on a 503 it returns the
// Retry-After in seconds, at least 1.
func upgrade(ctx context.Context, addr string) (net.Conn, int, error) {
	d := net.Dialer{Timeout: clientTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	conn.SetDeadline(time.Now().Add(clientTimeout))
	nonce := make([]byte, 16)
	crand.Read(nonce)
	key := base64.StdEncoding.EncodeToString(nonce)
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, 0, err
	}
	br := bufio.NewReaderSize(conn, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, 0, err
	}
	switch {
	case resp.StatusCode == http.StatusServiceUnavailable:
		conn.Close()
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return nil, max(ra, 1), fmt.Errorf("%w: %s", errRefused, resp.Status)
	case resp.StatusCode != http.StatusSwitchingProtocols:
		conn.Close()
		return nil, 0, fmt.Errorf("%w: %s", errAnswer, resp.Status)
	case resp.Header.Get("Sec-WebSocket-Accept") != cooper.AcceptKey(key):
		conn.Close()
		return nil, 0, fmt.Errorf("%w: 101 with Sec-WebSocket-Accept %q", errAnswer, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	if _, err := io.ReadFull(br, make([]byte, len(welcome))); err != nil {
		conn.Close()
		return nil, 0, fmt.Errorf("waiting for the welcome: %w", err)
	}
	conn.SetDeadline(time.Time{})
	return conn, 0, nil
}

// serve is the server process: it prints its address, then holds every
// upgraded connection open until its client closes it, until its standard
// input ends.
func serve(spec string) error {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		return fmt.Errorf("%s=%q, want rate,burst,work", serverEnv, spec)
	}
	rate, err := strconv.ParseFloat(parts[0], 64)
	if err != nil {
		return err
	}
	burst, err := strconv.Atoi(parts[1])
	if err != nil {
		return err
	}
	work, err := time.ParseDuration(parts[2])
	if err != nil {
		return err
	}
	rounds := calibrate(work)
	opts := []cooper.Option{cooper.Protocols("websocket")}
	if rate > 0 {
		opts = append(opts, cooper.UpgradeRate(rate, burst))
	}
	u := cooper.New(opts...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			defer conn.Close()
			session := make([]byte, 16<<10)
			session[0] = hash(rounds)
			if _, err := conn.Write(welcome); err != nil {
				return
			}
			io.Copy(io.Discard, conn)
			runtime.KeepAlive(session)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(ln)
	fmt.Println(ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// welcome is the server's first message, an unmasked WebSocket text frame.
var welcome = []byte("\x81\x07welcome") // read-only

// calibrate returns how many rounds of hash take d of CPU time. It counts
// the process's CPU time, not the time that passed, so other work on the
// machine does not skew it.
func calibrate(d time.Duration) int {
	n := 1000
	for {
		began := cpuTime()
		hash(n)
		if took := cpuTime() - began; took >= 50*time.Millisecond {
			return int(float64(n) * float64(d) / float64(took))
		}
		n *= 2
	}
}

// cpuTime returns the CPU time, user and system, this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hash hashes a 64-byte block rounds times, feeding each sum into the
// next, and returns the first byte of the last.
func hash(rounds int) byte {
	var sum [32]byte
	block := make([]byte, 64)
	for range rounds {
		copy(block, sum[:])
		sum = sha256.Sum256(block)
	}
	return sum[0]
}

// usage returns the peak resident memory and the CPU time of process pid,
// from /proc.
func usage(pid int) (peakKiB int64, cpu time.Duration, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	hwm := errors.New("no VmHWM line") // a process that has exited has none
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			peakKiB, hwm = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	if hwm != nil {
		return 0, 0, fmt.Errorf("/proc/%d/status: %w", pid, hwm)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields 14 and 15, user and system time in clock ticks (100 a second
	// on Linux), follow the command name in parentheses.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %q has no CPU times", pid, stat)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return peakKiB, time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// cpuModel returns the processor's name from /proc/cpuinfo, or "".
func cpuModel() string {
	info, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.Lines(string(info)) {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return ""
}
