package probe

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
)

// A request is an HTTP/1.1 request written as bytes, so that a case can
// send what net/http would refuse to: header lines in any spelling,
// repeated, or missing.
type request struct {
	line   string  // the request line, without CRLF
	fields []field // header lines in order
	key    string  // the Sec-WebSocket-Key sent, for the accept check
	after  []byte  // bytes sent in the same write, after the request
}

// A field is one header line.
type field struct{ name, value string }

// newKey returns a fresh Sec-WebSocket-Key: 16 random bytes in base64.
func newKey() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// acceptKey computes Sec-WebSocket-Accept for key (RFC 6455, section 4.2.2).
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// request returns a valid WebSocket opening handshake for the endpoint,
// with the configured Origin, subprotocol and headers.
func (p *prober) request() *request {
	r := &request{line: "GET " + p.target + " HTTP/1.1", key: newKey()}
	r.add("Host", p.host)
	r.add("Upgrade", "websocket")
	r.add("Connection", "Upgrade")
	r.add("Sec-WebSocket-Key", r.key)
	p.addHeaders(func(name, value string) { r.add(name, value) })
	return r
}

// addHeaders adds, with add, the header lines every valid request carries
// over HTTP/1.1 and HTTP/2 alike: the version, then the configured Origin,
// subprotocol and headers.
func (p *prober) addHeaders(add func(name, value string)) {
	add("Sec-WebSocket-Version", "13")
	if p.cfg.Origin != "" {
		add("Origin", p.cfg.Origin)
	}
	if p.cfg.Subprotocol != "" {
		add("Sec-WebSocket-Protocol", p.cfg.Subprotocol)
	}
	for name, values := range p.cfg.Header {
		for _, v := range values {
			add(name, v)
		}
	}
}

func (r *request) add(name, value string) *request {
	r.fields = append(r.fields, field{name, value})
	return r
}

// del removes every line of the header name, in any case.
func (r *request) del(name string) *request {
	kept := r.fields[:0]
	for _, f := range r.fields {
		if !asciiEqualFold(f.name, name) {
			kept = append(kept, f)
		}
	}
	r.fields = kept
	return r
}

// set replaces every line of the header name with lines of values.
func (r *request) set(name string, values ...string) *request {
	r.del(name)
	for _, v := range values {
		r.add(name, v)
	}
	return r
}

// setKey sends key as Sec-WebSocket-Key and expects its accept.
func (r *request) setKey(key string) *request {
	r.key = key
	return r.set("Sec-WebSocket-Key", key)
}

func (r *request) bytes() []byte {
	var b bytes.Buffer
	b.WriteString(r.line + "\r\n")
	for _, f := range r.fields {
		b.WriteString(f.name + ": " + f.value + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(r.after)
	return b.Bytes()
}

// A response is the head of the server's answer, kept as the lines it
// came in as well as parsed.
type response struct {
	*http.Response
	raw  []byte   // the status line and header lines, as received
	conn net.Conn // open: the caller closes it
	br   *bufio.Reader
	key  string // the key the request sent
}

// dial connects to the endpoint, with TLS and ALPN http/1.1 for wss.
func (p *prober) dial() (net.Conn, error) {
	d := net.Dialer{Timeout: p.timeout}
	conn, err := d.DialContext(p.ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(p.timeout))
	if !p.tls {
		return conn, nil
	}
	tc := tls.Client(conn, p.tlsConfig("http/1.1"))
	if err := tc.HandshakeContext(p.ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// tlsConfig is the TLS configuration of a connection to the endpoint that
// offers alpn by ALPN.
func (p *prober) tlsConfig(alpn string) *tls.Config {
	return &tls.Config{
		ServerName:         hostOnly(p.addr),
		InsecureSkipVerify: true, // the probe checks handshakes, not identities
		NextProtos:         []string{alpn},
	}
}

// hostOnly returns the host of addr, a host and port that hostPort joined,
// for TLS's server name.
func hostOnly(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// send writes r in one write on a fresh connection and reads the head of
// the answer. On success the connection stays open for the caller to use
// and close.
func (p *prober) send(r *request) (*response, error) {
	conn, err := p.dial()
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if _, err := conn.Write(r.bytes()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("writing the request: %w", err)
	}
	resp, err := readHead(conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	resp.key = r.key
	return resp, nil
}

// readHead reads a response head from conn: the status line and header
// lines up to the empty line, 64 KiB at most.
func readHead(conn net.Conn) (*response, error) {
	br := bufio.NewReaderSize(conn, 64<<10)
	var raw []byte
	for {
		line, err := br.ReadSlice('\n')
		raw = append(raw, line...)
		if err != nil {
			if len(raw) == 0 {
				return nil, fmt.Errorf("no answer: %w", err)
			}
			return nil, fmt.Errorf("reading the answer after %q: %w", clip(raw), err)
		}
		if len(raw) > 64<<10 {
			return nil, errors.New("an answer head over 64 KiB")
		}
		if bytes.Equal(line, []byte("\r\n")) || bytes.Equal(line, []byte("\n")) {
			break
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
	if err != nil {
		return nil, fmt.Errorf("malformed answer %q: %w", clip(raw), err)
	}
	return &response{Response: resp, raw: raw, conn: conn, br: br}, nil
}

// close says goodbye with a close frame when the connection was switched,
// and closes it.
func (r *response) close() {
	if r.StatusCode == http.StatusSwitchingProtocols {
		r.conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		writeFrame(r.conn, true, false, opClose, []byte{0x03, 0xe8})
	}
	r.conn.Close()
}

// lines returns the values of every line of the header name in the raw
// head, in order, as sent (without surrounding whitespace).
func (r *response) lines(name string) []string {
	var values []string
	for _, line := range strings.Split(string(r.raw), "\n")[1:] {
		n, v, ok := strings.Cut(line, ":")
		if ok && asciiEqualFold(strings.Trim(n, " \t"), name) {
			values = append(values, strings.Trim(v, " \t\r"))
		}
	}
	return values
}

// clip quotes at most 120 bytes of b for a detail.
func clip(b []byte) string {
	if len(b) > 120 {
		return fmt.Sprintf("%q…", b[:120])
	}
	return fmt.Sprintf("%q", b)
}

// tokens returns the elements of the comma-separated lists in values,
// without the whitespace around them, empty ones dropped (RFC 9110,
// section 5.6.1).
func tokens(values []string) []string {
	var out []string
	for _, v := range values {
		for _, e := range strings.Split(v, ",") {
			if e = strings.Trim(e, " \t"); e != "" {
				out = append(out, e)
			}
		}
	}
	return out
}

// hasToken reports whether the comma-separated lists in values contain
// token, compared ignoring ASCII case (RFC 9110, section 5.6.1).
func hasToken(values []string, token string) bool {
	return slices.ContainsFunc(tokens(values), func(t string) bool { return asciiEqualFold(t, token) })
}

// asciiEqualFold compares ignoring ASCII case only.
func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// WebSocket frame opcodes (RFC 6455, section 5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xa
)

// frameBytes encodes a masked client frame.
func frameBytes(fin, rsv1 bool, op byte, payload []byte) []byte {
	b := make([]byte, 0, 14+len(payload))
	first := op
	if fin {
		first |= 0x80
	}
	if rsv1 {
		first |= 0x40
	}
	b = append(b, first)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

func writeFrame(w io.Writer, fin, rsv1 bool, op byte, payload []byte) error {
	_, err := w.Write(frameBytes(fin, rsv1, op, payload))
	return err
}

// A frame is one frame as received.
type frame struct {
	fin, rsv1, rsv2, rsv3, masked bool
	op                            byte
	payload                       []byte
}

// maxPayload bounds what the probe reads of one frame or message.
const maxPayload = 4 << 20

func readFrame(r io.Reader) (frame, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return frame{}, err
	}
	f := frame{fin: h[0]&0x80 != 0, rsv1: h[0]&0x40 != 0, rsv2: h[0]&0x20 != 0, rsv3: h[0]&0x10 != 0,
		op: h[0] & 0x0f, masked: h[1]&0x80 != 0}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > maxPayload {
		return f, fmt.Errorf("a frame of %d bytes, over the probe's %d", n, maxPayload)
	}
	var mask [4]byte
	if f.masked {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return f, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(r, f.payload); err != nil {
		return f, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= mask[i%4]
		}
	}
	return f, nil
}

// readFrameOf reads frames until one whose opcode is one of ops, skipping
// the others, and returns it.
func readFrameOf(r io.Reader, ops ...byte) (frame, error) {
	for {
		f, err := readFrame(r)
		if err != nil || slices.Contains(ops, f.op) {
			return f, err
		}
	}
}

// A message is a data message as received: its opcode, whether its first
// frame had RSV1 set, and its payload as sent (still compressed, if it
// was).
type message struct {
	op         byte
	compressed bool
	payload    []byte
	masked     bool // some frame of it was masked
	rsv23      bool // some frame had RSV2 or RSV3 set
}

// errClosed is returned by readMessage when the server sent a close frame.
type errClosed struct{ payload []byte }

func (e errClosed) Error() string {
	if len(e.payload) >= 2 {
		return fmt.Sprintf("the server closed the connection with code %d %q", binary.BigEndian.Uint16(e.payload), e.payload[2:])
	}
	return "the server closed the connection"
}

// readMessage reads the next data message, answering pings and skipping
// pongs; a close frame ends it with errClosed.
func (r *response) readMessage() (message, error) {
	var m message
	started := false
	for {
		f, err := readFrame(r.br)
		if err != nil {
			return m, err
		}
		m.masked = m.masked || f.masked
		m.rsv23 = m.rsv23 || f.rsv2 || f.rsv3
		switch f.op {
		case opClose:
			return m, errClosed{f.payload}
		case opPing:
			writeFrame(r.conn, true, false, opPong, f.payload)
			continue
		case opPong:
			continue
		case opCont:
			if !started {
				return m, errors.New("a continuation frame with no message to continue")
			}
		default:
			if started {
				return m, fmt.Errorf("a frame with opcode %d inside a fragmented message", f.op)
			}
			started = true
			m.op = f.op
			m.compressed = f.rsv1
		}
		m.payload = append(m.payload, f.payload...)
		if len(m.payload) > maxPayload {
			return m, errors.New("a message over the probe's limit")
		}
		if f.fin {
			return m, nil
		}
	}
}

// sendMessage writes one unfragmented message.
func (r *response) sendMessage(op byte, compressed bool, payload []byte) error {
	return writeFrame(r.conn, true, compressed, op, payload)
}
