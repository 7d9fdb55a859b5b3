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
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/quic-go/quic-go/http3"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperh3"
	"lowbit.dev/cooper/examples/internal/page"
	"lowbit.dev/cooper/examples/internal/serve"
	"lowbit.dev/cooper/examples/internal/tlsserve"
	"lowbit.dev/cooper/examples/internal/wsecho"
)

func main() {
	flag.String("addr", "127.0.0.1:8080", "`host:port` to listen on, over TCP and UDP")
	tlsserve.Main("cooper h3 example", run)
}

// run serves the page and the echo on addr until ctx is done, over TCP
// and over UDP on the same port, as tlsserve.Run says. Before its
// listening line it prints the certificate's public key pin and a
// Chromium command line, and after it a line for every WebSocket; when it
// stops, it also closes the HTTP/3 connections.
func run(ctx context.Context, addr string, cert tls.Certificate, out io.Writer) error {
	u := cooper.New(wsecho.Options()...) // as in examples/echo
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", page.Serve)
	// The same handler takes the WebSockets of every HTTP version; it
	// prints how each came.
	mux.Handle("/ws", u.Handler(wsecho.Announced(out)))

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

	fmt.Fprintf(out, "certificate SPKI pin: %s\n", spkiPin(cert))
	fmt.Fprintf(out, "chromium --enable-quic --origin-to-force-quic-on=%[1]s --ignore-certificate-errors-spki-list=%[2]s --enable-features=EnableWebsocketsOverHttp3 https://%[1]s/\n",
		tcp.Addr(), spkiPin(cert))
	fmt.Fprintf(out, "listening on https://%s\n", tcp.Addr())
	// Over TCP, the same as examples/h2, but that every response announces
	// HTTP/3; beside it, the HTTP/3 server.
	return serve.Server{
		Upgrader: u,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Alt-Svc", altSvc)
			mux.ServeHTTP(w, r)
		}),
		TLS: tlsConfig,
		// A browser keeps its QUIC connection open, so once the WebSockets
		// are done the HTTP/3 server closes them.
		Beside: h3Server{h3, udp},
	}.Serve(ctx, tcp)
}

// An h3Server is the HTTP/3 server on its UDP socket.
type h3Server struct {
	srv *http3.Server
	udp net.PacketConn
}

func (s h3Server) Serve() error { return s.srv.Serve(s.udp) }
func (s h3Server) Close() error { return s.srv.Close() }

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
