package cooperh3_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/cooperh3"
)

// One Upgrader serves WebSockets over HTTP/3: the http3 server's handler is
// wrapped with cooperh3.Handler, and a client opens the WebSocket as an
// extended CONNECT (RFC 9220).
func ExampleHandler() {
	u := cooper.New(cooper.Protocols("websocket"))
	mux := http.NewServeMux()
	mux.Handle("/ws", u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		fmt.Fprintf(conn, "%s over %s: ", hs.Protocol, hs.Request.Proto)
		io.Copy(conn, conn) // a framing layer would take over here
	}))
	cert, roots := exampleCertificate()
	udp, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	srv := &http3.Server{Handler: cooperh3.Handler(mux), TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}})}
	go srv.Serve(udp)
	defer srv.Close()

	// A client opens the WebSocket with an extended CONNECT (RFC 9220).
	str, resp, done := exampleWebSocket(udp.LocalAddr().String(), roots)
	defer done()
	fmt.Println(resp.Status)
	str.Write([]byte("frames go here"))
	str.Close()
	echo, _ := io.ReadAll(str)
	fmt.Printf("%s\n", echo)
	// Output:
	// 200 OK
	// websocket over HTTP/3.0: frames go here
}

// exampleCertificate makes a self-signed certificate for 127.0.0.1 and
// the pool that trusts it.
func exampleCertificate() (tls.Certificate, *x509.CertPool) {
	cert, leaf, err := makeCertificate()
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return cert, roots
}

// exampleWebSocket opens a WebSocket to /ws on the HTTP/3 server at addr,
// whose certificate roots trusts, over a QUIC connection of its own, which
// done closes.
func exampleWebSocket(addr string, roots *x509.CertPool) (str *http3.RequestStream, resp *http.Response, done func()) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	qc, err := quic.DialAddr(ctx, addr, &tls.Config{RootCAs: roots, NextProtos: []string{http3.NextProtoH3}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	cc := (&http3.Transport{}).NewClientConn(qc)
	<-cc.ReceivedSettings() // extended CONNECT waits for the server's SETTINGS
	str, resp, err = openWebSocket(ctx, cc, addr, "/ws")
	if err != nil {
		log.Fatal(err)
	}
	return str, resp, func() {
		qc.CloseWithError(0, "")
		cancel()
	}
}

// openWebSocket opens a WebSocket to path on cc's server, at addr, with the
// least extended CONNECT that cooper takes (RFC 9220), and returns the
// stream and the server's answer. The server's SETTINGS must have come.
func openWebSocket(ctx context.Context, cc *http3.ClientConn, addr, path string) (*http3.RequestStream, *http.Response, error) {
	str, err := cc.OpenRequestStream(ctx)
	if err != nil {
		return nil, nil, err
	}
	err = str.SendRequestHeader(&http.Request{Method: http.MethodConnect, Proto: "websocket", Host: addr,
		URL: &url.URL{Scheme: "https", Host: addr, Path: path}, Header: http.Header{"Sec-Websocket-Version": {"13"}}})
	if err != nil {
		return nil, nil, err
	}
	resp, err := str.ReadResponse()
	return str, resp, err
}
