package cooper

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// idleServerEnv names the kind of server the test binary runs, instead of
// its tests, when BenchmarkIdleMemory re-executes it.
const idleServerEnv = "COOPER_IDLE_SERVER"

// BenchmarkIdleMemory measures what an idle upgraded connection costs the
// server process: heap plus goroutine stacks after GC, per connection, with
// 10,000 connections open (1,000 with -short), each waiting in Read. The
// server runs in a process of its own, so the clients' memory is not
// counted. "bare" is a TCP listener with one goroutine per connection, the
// floor; "cooper" is Hijack; "inside" upgrades with Accept and stays inside
// ServeHTTP, as a handler that blocks there does.
func BenchmarkIdleMemory(b *testing.B) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	for _, kind := range []string{"bare", "cooper", "inside"} {
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			var perConn float64
			rounds := 0
			for b.Loop() {
				perConn += idleRound(b, kind, n)
				rounds++
			}
			b.ReportMetric(perConn/float64(rounds), "B/conn")
		})
	}
}

// idleRound starts a server of kind, opens n idle connections to it and
// returns the server's heap and stack growth per connection.
func idleRound(b *testing.B, kind string, n int) float64 {
	b.StopTimer()
	defer b.StartTimer()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), idleServerEnv+"="+kind)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	out := bufio.NewReader(stdout)
	addr, err := out.ReadString('\n')
	if err != nil {
		b.Fatalf("server did not start: %v", err)
	}
	addr = strings.TrimSpace(addr)
	stats := func() (mem uint64, goroutines int) {
		fmt.Fprintln(stdin, "stats")
		line, err := out.ReadString('\n')
		if err != nil {
			b.Fatalf("server stats: %v", err)
		}
		fmt.Sscan(line, &mem, &goroutines)
		return mem, goroutines
	}
	base, g0 := stats()
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + testKey + "\r\n\r\n"
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT to exhaust ports across rounds
			c.Close()
		}
	}()
	buf := make([]byte, 512)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatalf("after %d connections: %v", len(conns), err)
		}
		conns = append(conns, c)
		if kind == "bare" {
			continue
		}
		io.WriteString(c, req)
		if m, err := c.Read(buf); err != nil || !strings.HasPrefix(string(buf[:m]), "HTTP/1.1 101") {
			b.Fatalf("upgrade %d: %q, %v", len(conns), buf[:m], err)
		}
	}
	var mem uint64
	for deadline := time.Now().Add(10 * time.Second); ; {
		var g int
		mem, g = stats()
		if g == g0+n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return float64(mem-base) / float64(n)
}

// runIdleServer is the server side of BenchmarkIdleMemory: it prints its
// address, serves kind, and answers each "stats" line on stdin with heap
// plus stack bytes in use after GC and the number of goroutines.
func runIdleServer(kind string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	wait := func(c net.Conn) {
		var b [1]byte
		c.Read(b[:])
		c.Close()
	}
	switch kind {
	case "bare":
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go wait(c)
			}
		}()
	case "cooper":
		go http.Serve(ln, Hijack(func(c net.Conn, _ string) { wait(c) }, Protocols("websocket")))
	case "inside":
		u := New(Protocols("websocket"))
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, _, err := u.Accept(w, r); err == nil {
				wait(c)
			}
		}))
	}
	fmt.Println(ln.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Println(ms.HeapAlloc+ms.StackInuse, runtime.NumGoroutine())
	}
}
