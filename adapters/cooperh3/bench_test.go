package cooperh3_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/idlemem"
	"lowbit.dev/cooper/internal/testkit"
)

// TestMain runs the server a process started by BenchmarkIdleMemory asks
// for, or else the tests, and fails the run when one leaves a goroutine of
// cooper's, quic-go's or net/http's behind.
func TestMain(m *testing.M) {
	if kind := idlemem.Kind(); kind != "" {
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
	idlemem.Run(b, []string{"quic", "cooper", "inside"}, 1000, idleRound)
}

// idleRound opens n idle connections to srv, a server of kind, and returns
// the server's heap and stack growth per connection.
func idleRound(b *testing.B, srv *idlemem.Server, kind string, n int) float64 {
	addr, certB64, _ := strings.Cut(srv.Hello, " ")
	der, _ := base64.StdEncoding.DecodeString(certB64)
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	base, _ := srv.Stats(b)

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
	mem := srv.Settle(b, func(active int) bool { return kind == "quic" || active == n })
	return float64(mem-base) / float64(n)
}

// runIdleServer is the server side of BenchmarkIdleMemory: it serves kind
// and reports its memory and the number of connections the Upgrader holds
// (see [idlemem.Serve]), after a hello line with its address and its
// certificate.
func runIdleServer(kind string) {
	u := cooper.New(cooper.Protocols("websocket"))
	h := u.Handler(func(c net.Conn, _ *cooper.Handshake) { idlemem.Hold(c) })
	if kind == "inside" {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, _, err := u.Accept(w, r); err == nil {
				idlemem.Hold(c)
			}
		})
	}
	s, err := startServer(h, &quic.Config{MaxIdleTimeout: idleTimeout, MaxIncomingStreams: 10})
	if err != nil {
		panic(err)
	}
	hello := s.addr.String() + " " + base64.StdEncoding.EncodeToString(s.leaf.Raw)
	idlemem.Serve(hello, func() int { return u.Stats().Active })
}
