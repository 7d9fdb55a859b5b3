package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"golang.org/x/net/http2"
)

// An h2Stream is an extended CONNECT (RFC 8441) and its answer.
type h2Stream struct {
	resp   *http.Response
	w      *io.PipeWriter
	br     *bufio.Reader
	cancel context.CancelFunc
	conn   net.Conn
}

func (s *h2Stream) close() {
	s.w.Close()
	if s.resp != nil {
		s.resp.Body.Close()
	}
	s.cancel()
	s.conn.Close()
}

// connect opens an HTTP/2 connection and sends an extended CONNECT with
// :protocol set to protocol and the headers of a valid request, changed by
// edit. Its error matches errNoH2 when the server does not agree h2 by
// ALPN or does not announce SETTINGS_ENABLE_CONNECT_PROTOCOL.
func (p *prober) connect(protocol string, edit func(h http.Header)) (*h2Stream, error) {
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: p.timeout},
		Config:    p.tlsConfig("h2"),
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("dial: %w", err)
	}
	if proto := conn.(*tls.Conn).ConnectionState().NegotiatedProtocol; proto != "h2" {
		cancel()
		conn.Close()
		return nil, fmt.Errorf("%w: ALPN agreed %q, not h2", errNoH2, proto)
	}
	cc, err := (&http2.Transport{}).NewClientConn(conn)
	if err != nil {
		cancel()
		conn.Close()
		return nil, err
	}
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, "https://"+p.host+p.target, pr)
	if err != nil {
		cancel()
		conn.Close()
		return nil, err
	}
	req.Header.Set(":protocol", protocol)
	p.addHeaders(req.Header.Add)
	if edit != nil {
		edit(req.Header)
	}
	s := &h2Stream{w: pw, cancel: cancel, conn: conn}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		s.close()
		if strings.Contains(err.Error(), "extended connect not supported") {
			return nil, fmt.Errorf("%w: the server does not announce SETTINGS_ENABLE_CONNECT_PROTOCOL", errNoH2)
		}
		return nil, err
	}
	s.resp = resp
	s.br = bufio.NewReader(resp.Body)
	return s, nil
}

// errNoH2 says the endpoint offers no WebSocket over HTTP/2.
var errNoH2 = errors.New("no extended CONNECT")
