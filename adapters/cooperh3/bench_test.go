package cooperh3_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/testkit"
)

// idleServerEnv names the kind of server a test process started by
// BenchmarkIdleMemory runs instead of the tests.
const idleServerEnv = "COOPERH3_IDLE_SERVER"

// TestMain runs the server a process started by BenchmarkIdleMemory asks
// for, or else the tests, and fails the run when one leaves a goroutine of
// cooper's, quic-go's or net/http's behind.
func TestMain(m *testing.M) {
	if kind := os.Getenv(idleServerEnv); kind != "" {
		runIdleServer(kind)
		return
	}
	testkit.Main(m, "quic-go")
}

// idleTimeout keeps the idle connections of BenchmarkIdleMemory open while
// they are counted.
const idleTimeout = 5 * time.Minute

// BenchmarkIdleMemory measures what an idle WebSocket over HTTP/3 costs
// the server: heap and stacks in use after GC, per connection, with n QUIC
// connections from another process ("quic": HTTP/3 connections that have
// exchanged SETTINGS and nothing else; "cooper": each with one WebSocket
// upgraded by cooper, its handler on its own goroutine blocked in Read;
// "inside": the same, with Accept and the wait inside ServeHTTP). The
// difference between quic and cooper is what the WebSocket adds to the
// QUIC connection it rides on.
//
//	go test -run='^$' -bench=IdleMemory -benchtime=1x ./adapters/cooperh3
func BenchmarkIdleMemory(b *testing.B) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	for _, kind := range []string{"quic", "cooper", "inside"} {
		b.Run(kind, func(b *testing.B) {
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

// idleRound starts a server of kind in a process of its own, opens n idle
// connections to it and returns the server's heap and stack growth per
// connection.
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
	var addr, certB64 string
	if _, err := fmt.Fscanln(out, &addr, &certB64); err != nil {
		b.Fatalf("server did not start: %v", err)
	}
	der, _ := base64.StdEncoding.DecodeString(certB64)
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	stats := func() (mem uint64, active int) {
		fmt.Fprintln(stdin, "stats")
		if _, err := fmt.Fscanln(out, &mem, &active); err != nil {
			b.Fatalf("server stats: %v", err)
		}
		return mem, active
	}
	base, _ := stats()

	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	defer udp.Close()
	defer tr.Close()
	raddr, _ := net.ResolveUDPAddr("udp", addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tlsConf := &tls.Config{RootCAs: roots, NextProtos: []string{http3.NextProtoH3}}
	quicConf := &quic.Config{MaxIdleTimeout: idleTimeout}
	for i := range n {
		qc, err := tr.Dial(ctx, raddr, tlsConf, quicConf)
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		cc := (&http3.Transport{}).NewClientConn(qc)
		<-cc.ReceivedSettings()
		if kind == "quic" {
			continue
		}
		_, resp, err := openWebSocket(ctx, cc, addr, "/ws")
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("WebSocket %d: %v, %v", i, resp, err)
		}
	}
	var mem uint64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var active int
		mem, active = stats()
		if kind == "quic" || active == n || time.Now().After(deadline) {
			break
		}
	}
	return float64(mem-base) / float64(n)
}

// runIdleServer is the server side of BenchmarkIdleMemory: it prints its
// address and its certificate, serves kind, and answers each "stats" line
// on stdin with heap plus stack bytes in use after GC and the number of
// connections the Upgrader holds.
func runIdleServer(kind string) {
	u := cooper.New(cooper.Protocols("websocket"))
	wait := func(c net.Conn) {
		var b [1]byte
		c.Read(b[:])
		c.Close()
	}
	h := u.Handler(func(c net.Conn, _ *cooper.Handshake) { wait(c) })
	if kind == "inside" {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, _, err := u.Accept(w, r); err == nil {
				wait(c)
			}
		})
	}
	s, err := startServer(h, &quic.Config{MaxIdleTimeout: idleTimeout, MaxIncomingStreams: 10})
	if err != nil {
		panic(err)
	}
	fmt.Println(s.addr, base64.StdEncoding.EncodeToString(s.leaf.Raw))
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Println(ms.HeapAlloc+ms.StackInuse, u.Stats().Active)
	}
}
