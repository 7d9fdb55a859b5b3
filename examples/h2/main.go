// H2 serves the echo of examples/echo over TLS with HTTP/2, where browsers
// open WebSockets as extended CONNECTs on the connection they already have
// (RFC 8441), and over HTTP/1.1 for clients that do not.
//
//	go run ./examples/h2 [-addr 127.0.0.1:8080] [-cert cert.pem -key key.pem]
//
// Without -cert and -key it makes a self-signed certificate for the
// loopback names at start, which a browser warns about. For every WebSocket
// it prints how it came, for instance
//
//	websocket over HTTP/2.0 (extended CONNECT) from 127.0.0.1:53012
//
// Go's HTTP/2 server announces extended CONNECT only in a process started
// with GODEBUG=http2xconnect=1, so when the environment does not say so
// this program starts itself again with it.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/page"
	"lowbit.dev/cooper/examples/internal/wsecho"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`host:port` to listen on")
	certFile := flag.String("cert", "", "PEM `file` of the certificate chain; a self-signed one without it")
	keyFile := flag.String("key", "", "PEM `file` of the certificate's key")
	flag.Parse()
	if !extendedConnectOn() {
		os.Exit(restartWithExtendedConnect())
	}
	var cert tls.Certificate
	var err error
	if *certFile != "" || *keyFile != "" {
		cert, err = tls.LoadX509KeyPair(*certFile, *keyFile)
	} else {
		cert, err = selfSigned()
	}
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, cert, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// extendedConnectOn reports whether this process started with extended
// CONNECT on in net/http's HTTP/2 server, which reads GODEBUG only then.
func extendedConnectOn() bool {
	return strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1")
}

// restartWithExtendedConnect runs this program again with
// GODEBUG=http2xconnect=1 added, passes SIGINT and SIGTERM on to it, and
// returns its exit code.
func restartWithExtendedConnect() int {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Env = append(os.Environ(), "GODEBUG="+os.Getenv("GODEBUG")+",http2xconnect=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	go func() {
		for s := range signals {
			cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	signal.Stop(signals)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		log.Fatal(err)
	}
	return 0
}

// run serves on addr with TLS and cert, printing "listening on
// https://ADDR" to out once it listens and a line for every WebSocket,
// until ctx is done. Then it stops taking requests, says goodbye to every
// WebSocket, and waits for them, 10 s at most.
func run(ctx context.Context, addr string, cert tls.Certificate, out io.Writer) error {
	var outMu sync.Mutex // the handlers print from their goroutines
	u := cooper.New(
		cooper.Protocols("websocket"),
		cooper.Subprotocols("echo.v1"),
		cooper.Deflate(wsecho.Deflate),
		cooper.OnError(func(err error) { log.Print(err) }),
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", page.Serve)
	mux.Handle("/ws", u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		how := "upgrade"
		if hs.Request.ProtoMajor == 2 {
			how = "extended CONNECT"
		}
		outMu.Lock()
		fmt.Fprintf(out, "websocket over %s (%s) from %s\n", hs.Request.Proto, how, conn.RemoteAddr())
		outMu.Unlock()
		if err := wsecho.Serve(conn, hs, ""); err != nil {
			log.Printf("%s: %v", conn.RemoteAddr(), err)
		}
	}))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	outMu.Lock()
	fmt.Fprintf(out, "listening on https://%s\n", ln.Addr())
	outMu.Unlock()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// More than the 5 s http.Server.Shutdown waits for a connection a
	// browser opened ahead of need, so that the server stops in time.
	grace, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Stops srv and u together: http.Server.Shutdown alone neither waits
	// for nor closes upgraded connections.
	return u.ShutdownServer(grace, srv)
}

// selfSigned makes a certificate for localhost, 127.0.0.1 and ::1, valid
// for a day.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "cooper h2 example"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
