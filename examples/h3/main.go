// H3 serves the echo of examples/echo over HTTPS on one port: HTTP/1.1
// and HTTP/2 (with extended CONNECT, RFC 8441) over TCP, and HTTP/3 over
// UDP on the same port number, where a browser that speaks RFC 9220 opens
// its WebSocket as an extended CONNECT on a QUIC stream. Responses over TCP
// announce HTTP/3 with Alt-Svc.
//
//	go run ./examples/h3 [-addr 127.0.0.1:8080] [-cert cert.pem -key key.pem]
//
// Without -cert and -key it makes a self-signed certificate for the
// loopback names at start. Browsers do not accept a self-signed
// certificate over QUIC, even when told to ignore certificate errors, but
// Chromium accepts one whose public key is pinned: the program prints that
// pin and a Chromium command that uses it. Chromium opens WebSockets over
// HTTP/3 only with the EnableWebsocketsOverHttp3 feature on. For every
// WebSocket it prints how it came, for instance
//
//	websocket over HTTP/3.0 (extended CONNECT) from 127.0.0.1:53012
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
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
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

	"github.com/quic-go/quic-go/http3"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperh3"
	"lowbit.dev/cooper/examples/internal/page"
	"lowbit.dev/cooper/examples/internal/wsecho"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`host:port` to listen on, over TCP and UDP")
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

// run serves on addr with TLS and cert, over TCP and over UDP on the same
// port, until ctx is done. Once it listens it prints the certificate's
// public key pin, a Chromium command line and "listening on https://ADDR"
// to out, then a line for every WebSocket. When ctx is done it stops
// taking requests, says goodbye to every WebSocket, waits for them, 10 s
// at most, and closes the HTTP/3 connections.
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
		if hs.Request.ProtoMajor >= 2 {
			how = "extended CONNECT"
		}
		outMu.Lock()
		fmt.Fprintf(out, "websocket over %s (%s) from %s\n", hs.Request.Proto, how, conn.RemoteAddr())
		outMu.Unlock()
		if err := wsecho.Serve(conn, hs, ""); err != nil {
			log.Printf("%s: %v", conn.RemoteAddr(), err)
		}
	}))

	tcp, udp, err := listen(addr)
	if err != nil {
		return err
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}}
	h3 := &http3.Server{
		Handler:        cooperh3.Handler(mux),
		TLSConfig:      http3.ConfigureTLSConfig(tlsConfig),
		MaxHeaderBytes: 16 << 10,
	}
	// RFC 7838: the same host serves HTTP/3 on this UDP port, for a day.
	altSvc := fmt.Sprintf(`h3=":%d"; ma=86400`, udp.LocalAddr().(*net.UDPAddr).Port)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Alt-Svc", altSvc)
			mux.ServeHTTP(w, r)
		}),
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	served := make(chan error, 2)
	go func() { served <- srv.ServeTLS(tcp, "", "") }()
	go func() { served <- h3.Serve(udp) }()
	outMu.Lock()
	fmt.Fprintf(out, "certificate SPKI pin: %s\n", spkiPin(cert))
	fmt.Fprintf(out, "chromium --enable-quic --origin-to-force-quic-on=%[1]s --ignore-certificate-errors-spki-list=%[2]s --enable-features=EnableWebsocketsOverHttp3 https://%[1]s/\n",
		tcp.Addr(), spkiPin(cert))
	fmt.Fprintf(out, "listening on https://%s\n", tcp.Addr())
	outMu.Unlock()

	select {
	case err := <-served:
		h3.Close()
		srv.Close()
		return err
	case <-ctx.Done():
	}
	// More than the 5 s http.Server.Shutdown waits for a connection a
	// browser opened ahead of need, so that the server stops in time.
	grace, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Stops srv and u together: http.Server.Shutdown alone neither waits
	// for nor closes upgraded connections. A browser keeps its QUIC
	// connection open, so once the WebSockets are done the HTTP/3 server
	// closes them.
	err = u.ShutdownServer(grace, srv)
	return errors.Join(err, h3.Close())
}

// listen listens on addr over TCP and on the same address and port over
// UDP. With port 0 the system chooses the TCP port, which may be taken
// over UDP; then it tries again with another, three times at most.
func listen(addr string) (net.Listener, net.PacketConn, error) {
	for try := 1; ; try++ {
		tcp, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		udp, err := net.ListenPacket("udp", tcp.Addr().String())
		if err == nil {
			return tcp, udp, nil
		}
		tcp.Close()
		if _, port, _ := net.SplitHostPort(addr); port != "0" || try == 3 {
			return nil, nil, err
		}
	}
}

// spkiPin returns the base64 SHA-256 of the public key of cert's leaf, as
// Chromium's --ignore-certificate-errors-spki-list takes it.
func spkiPin(cert tls.Certificate) string {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return "(unparsable certificate: " + err.Error() + ")"
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
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
		Subject:      pkix.Name{CommonName: "cooper h3 example"},
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
