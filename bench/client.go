package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// The client: the same hand-written one for every server. It speaks raw
// TCP from pre-built bytes, as a browser would send them, and checks every
// answer, so a server that gets anything wrong fails the run instead of
// winning it.

// requestFormat is Chromium's opening handshake, header for header and in
// its order, for a same-origin page on host (the %s).
const requestFormat = "GET /chat HTTP/1.1\r\n" +
	"Host: %[1]s\r\n" +
	"Connection: Upgrade\r\n" +
	"Pragma: no-cache\r\n" +
	"Cache-Control: no-cache\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n" +
	"Upgrade: websocket\r\n" +
	"Origin: http://%[1]s\r\n" +
	"Sec-WebSocket-Version: 13\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Sec-WebSocket-Key: %[2]s\r\n" +
	"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
	"Sec-WebSocket-Protocol: chat\r\n" +
	"\r\n"

// message is the one 16-byte text message each connection sends.
const message = "cooper bench 16B"

// maskedFrame is message in a final, masked text frame (RFC 6455, section
// 5.2), with a fixed masking key; echoedFrame is what the server must send
// back: the same message, unmasked and uncompressed.
var maskedFrame, echoedFrame = frames() // read-only

// frames builds maskedFrame and echoedFrame.
func frames() (masked, echoed []byte) {
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	masked = append([]byte{0x81, 0x80 | byte(len(message))}, mask[:]...)
	for i := 0; i < len(message); i++ {
		masked = append(masked, message[i]^mask[i&3])
	}
	echoed = append([]byte{0x81, byte(len(message))}, message...)
	return masked, echoed
}

// A client opens connections to one server, one at a time: it is one of the
// concurrent clients of a measurement.
type client struct {
	dialer *dialer
	req    []byte // the request, with this client's key
	accept []byte // the Sec-WebSocket-Accept the key calls for
	buf    [4096]byte
}

// newClient returns a client of the server at d's address with a key of its
// own.
func newClient(d *dialer) *client {
	var raw [16]byte
	rand.Read(raw[:])
	key := base64.StdEncoding.EncodeToString(raw[:])
	return &client{
		dialer: d,
		req:    fmt.Appendf(nil, requestFormat, d.raddr, key),
		accept: appendAccept(nil, key),
	}
}

// handshakeTimeout bounds one connection's handshake and echo.
const handshakeTimeout = 10 * time.Second

// handshake opens a connection, upgrades it and has one message echoed.
// Unless keep is set it then closes the connection with a reset, so neither
// side keeps it in TIME_WAIT, and returns nil; with keep it returns the
// open connection. head is the server's 101 head, valid until the next
// call.
func (c *client) handshake(keep bool) (conn *net.TCPConn, head []byte, err error) {
	tc, err := c.dialer.dial()
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil || !keep {
			tc.SetLinger(0)
			tc.Close()
			conn = nil
		}
	}()
	conn = tc
	if err := conn.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return nil, nil, err
	}
	if _, err := conn.Write(c.req); err != nil {
		return nil, nil, fmt.Errorf("write request: %w", err)
	}
	n, end := 0, -1
	for end < 0 {
		if n == len(c.buf) {
			return nil, nil, errors.New("response head over 4 KiB")
		}
		m, err := conn.Read(c.buf[n:])
		if err != nil {
			return nil, nil, fmt.Errorf("read 101 after %q: %w", c.buf[:n], err)
		}
		n += m
		end = bytes.Index(c.buf[:n], []byte("\r\n\r\n"))
	}
	head = c.buf[:end+4]
	if err := checkHead(head, c.accept); err != nil {
		return nil, nil, fmt.Errorf("%w in %q", err, head)
	}
	if _, err := conn.Write(maskedFrame); err != nil {
		return nil, nil, fmt.Errorf("write message: %w", err)
	}
	// The echo goes after the head in buf, which is big enough for both.
	got := c.buf[len(head):n]
	if len(got) < len(echoedFrame) {
		m, err := io.ReadAtLeast(conn, c.buf[n:], len(echoedFrame)-len(got))
		if err != nil {
			return nil, nil, fmt.Errorf("read echo: %w", err)
		}
		got = c.buf[len(head) : n+m]
	}
	if !bytes.Equal(got, echoedFrame) {
		return nil, nil, fmt.Errorf("echo is % x, want % x", got, echoedFrame)
	}
	if keep {
		if err := conn.SetDeadline(time.Time{}); err != nil {
			return nil, nil, err
		}
	}
	return conn, head, nil
}

// connect opens a connection to a bare TCP server and waits for the byte
// it greets every connection it accepts with.
func (c *client) connect() (*net.TCPConn, error) {
	conn, err := c.dialer.dial()
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := io.ReadFull(conn, c.buf[:len(bareGreeting)]); err != nil {
		conn.SetLinger(0)
		conn.Close()
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	return conn, conn.SetDeadline(time.Time{})
}

// checkHead checks a 101 head as a browser does (RFC 6455, section 4.1):
// status 101, Upgrade: websocket, Connection: Upgrade, the Accept the key
// calls for, and the subprotocol "chat" the harness offers and every server
// speaks. Sec-WebSocket-Extensions may be anything the offer allows; the
// harness never compresses.
func checkHead(head, accept []byte) error {
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 101 ")) {
		return errors.New("status is not 101")
	}
	var upgrade, connection, acceptOK, chat bool
	for len(rest) > 2 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return fmt.Errorf("header line %q has no colon", line)
		}
		value = bytes.Trim(value, " \t")
		switch {
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = bytes.EqualFold(value, []byte("websocket"))
		case bytes.EqualFold(name, []byte("Connection")):
			connection = hasToken(value, "upgrade")
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			acceptOK = bytes.Equal(value, accept)
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Protocol")):
			chat = string(value) == "chat"
		}
	}
	switch {
	case !upgrade:
		return errors.New("no Upgrade: websocket")
	case !connection:
		return errors.New("no Connection: Upgrade")
	case !acceptOK:
		return fmt.Errorf("no Sec-WebSocket-Accept: %s", accept)
	case !chat:
		return errors.New("no Sec-WebSocket-Protocol: chat")
	}
	return nil
}

// hasToken reports whether the comma-separated list has the element
// lower, ignoring ASCII case and white space.
func hasToken(list []byte, lower string) bool {
	for len(list) > 0 {
		var e []byte
		e, list, _ = bytes.Cut(list, []byte(","))
		if bytes.EqualFold(bytes.Trim(e, " \t"), []byte(lower)) {
			return true
		}
	}
	return false
}

// headerValue returns the value of the header name in a response head, or
// "" when it has none.
func headerValue(head []byte, name string) string {
	_, rest, _ := bytes.Cut(head, []byte("\r\n"))
	for len(rest) > 2 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if n, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(n, []byte(name)) {
			return string(bytes.Trim(v, " \t"))
		}
	}
	return ""
}

// A dialer opens the harness's TCP connections to one server. From
// 127.0.0.1, connect(2) slows down as the ephemeral ports in use for the
// server's address grow past a few thousand (the kernel searches further for
// a free port each time), and fails when none is left. A spreading dialer
// connects each connection from the next address of 127.0.1.1 to
// 127.0.255.254 instead, where every port is free; on Linux the port is
// picked at connect, not at bind (IP_BIND_ADDRESS_NO_PORT). A dialer that
// does not spread starts to when 127.0.0.1 runs out of ports.
type dialer struct {
	raddr  *net.TCPAddr
	spread atomic.Bool
	next   atomic.Uint32
}

// dial opens a connection to the server.
func (d *dialer) dial() (*net.TCPConn, error) {
	if !d.spread.Load() {
		c, err := net.DialTCP("tcp", nil, d.raddr)
		if !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return c, err
		}
		d.spread.Store(true)
	}
	i := d.next.Add(1) % (255 * 254)
	nd := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, byte(1+i/254), byte(1+i%254))},
		Control:   bindAddressNoPort,
	}
	c, err := nd.Dial("tcp", d.raddr.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}
