package probe

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// A flaw breaks one rule in the test server.
type flaw int

const (
	correct              flaw = iota
	wrongAccept               // Sec-WebSocket-Accept without the GUID
	noConnection              // a 101 without Connection
	acceptsVersion8           // version 8 is upgraded like 13
	unofferedSub              // answers its subprotocol whether offered or not
	largerServerWindow        // answers server_max_window_bits=15 to any offer of it
	ignoresServerWindow       // answers the window offered, compresses with 32 KiB
	keepsServerContext        // refers back into earlier messages despite server_no_context_takeover
	compressesDeclined        // compresses its frames when it declined the offer
	compressesSilently        // declines every offer, then compresses its frames without RSV1 all the same
	losesEarlyData            // drops what came with the request
	no426Upgrade              // 426 without Upgrade
	acceptsCrossOrigin        // over HTTP/2, accepts any Origin
	sendsAccept               // over HTTP/2, answers Sec-WebSocket-Accept
	refusesConnect            // over HTTP/2, refuses every extended CONNECT
	resetsConnect             // over HTTP/2, resets the stream of an extended CONNECT
	masksFrames               // over HTTP/2, masks its frames
	noEcho                    // ends the connection, or the stream, right after its answer
	noEchoOverH2              // over HTTP/2, ends the stream right after its answer
	garblesEcho               // over HTTP/2, echoes a text message as binary
	firstOfferOnly            // reads only the first permessage-deflate offer
	acceptsUnknownParam       // ignores permessage-deflate parameters it does not know
	refusesBadOffer           // refuses the handshake when it declines a permessage-deflate offer (allowed, but not what RFC 7692 asks)
	noClientContext           // answers client_no_context_takeover to every offer (allowed)
	declinesDeflate           // over HTTP/2, declines every permessage-deflate offer (allowed)
	twoSubprotocols           // over HTTP/2, answers Sec-WebSocket-Protocol twice
	neverCompresses           // agrees permessage-deflate and sends uncompressed messages (allowed)
	echoesRaw                 // under permessage-deflate, echoes messages as received, compressed, without RSV1
	dropsClientContext        // inflates every message on its own, despite client context takeover
	windowsCompressed         // keeps the compressed messages as its window, not what they inflate to
	inflatesDeclined          // inflates every message when it declined the offer
	dropsFirstEarlyFrame      // drops the first frame that came with the request
	closesOnPing              // answers a ping with a close frame
	wrongPong                 // answers a ping with an empty pong
)

// testServer is a WebSocket echo server on loopback written for these
// tests from the RFCs, independently of the probe's cases: raw sockets,
// its own validation and negotiation, speaking the subprotocol echo.v1,
// with one flaw or none.
type testServer struct {
	t    *testing.T
	ln   net.Listener
	flaw flaw
	wg   sync.WaitGroup
}

func startServer(t *testing.T, f flaw) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{t: t, ln: ln, flaw: f}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return "ws://" + ln.Addr().String() + "/ws"
}

func (s *testServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			s.handle(c)
		}()
	}
}

// refuse writes an error response with the given headers.
func refuse(c net.Conn, status int, headers ...string) {
	body := http.StatusText(status)
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\n", status, body)
	for _, h := range headers {
		fmt.Fprintf(c, "%s\r\n", h)
	}
	fmt.Fprintf(c, "Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

func (s *testServer) handle(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		refuse(c, 400)
		return
	}
	s.upgrade(c, br, req)
}

// upgrade answers req, read from c through br, and echoes what follows
// when it switched.
func (s *testServer) upgrade(c net.Conn, br *bufio.Reader, req *http.Request) {
	h := req.Header
	upgradeHeaders := []string{"Upgrade: websocket", "Connection: Upgrade"}
	if s.flaw == no426Upgrade {
		upgradeHeaders = []string{"Connection: Upgrade"}
	}
	version := h.Values("Sec-Websocket-Version")
	switch {
	case req.Method != "GET":
		refuse(c, 405, "Allow: GET")
		return
	case req.ProtoMajor == 1 && req.ProtoMinor == 0:
		refuse(c, 426, upgradeHeaders...)
		return
	case req.Host == "": // ReadRequest refuses two Host lines itself
		refuse(c, 400)
		return
	case !hasToken(h.Values("Upgrade"), "websocket"), !hasToken(h.Values("Connection"), "upgrade"):
		refuse(c, 426, upgradeHeaders...)
		return
	case len(version) != 1 || (version[0] != "13" && !(s.flaw == acceptsVersion8 && version[0] == "8")):
		refuse(c, 426, append(upgradeHeaders, "Sec-WebSocket-Version: 13")...)
		return
	}
	keys := h.Values("Sec-Websocket-Key")
	if len(keys) != 1 {
		refuse(c, 400)
		return
	}
	key := strings.Trim(keys[0], " \t")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		refuse(c, 400)
		return
	}
	if o := h.Values("Origin"); len(o) > 0 && o[0] != "http://"+req.Host {
		refuse(c, 403)
		return
	}
	sub := ""
	for _, p := range tokens(h.Values("Sec-Websocket-Protocol")) {
		if !isToken(p) {
			refuse(c, 400)
			return
		}
		if p == "echo.v1" {
			sub = p
		}
	}
	if s.flaw == unofferedSub {
		sub = "echo.v1"
	}
	offered := len(h.Values("Sec-Websocket-Extensions")) > 0
	ext, agreed := s.negotiate(h.Values("Sec-Websocket-Extensions"))
	if exts, _ := parseExtensions(h.Values("Sec-Websocket-Extensions")); s.flaw == refusesBadOffer && agreed == nil &&
		slices.ContainsFunc(exts, func(e extension) bool { return e.name == "permessage-deflate" }) {
		refuse(c, 400)
		return
	}

	guid := "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
	if s.flaw == wrongAccept {
		guid = ""
	}
	sum := sha1.Sum([]byte(key + guid))
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
	if s.flaw != noConnection {
		b.WriteString("Connection: Upgrade\r\n")
	}
	b.WriteString("Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n")
	if sub != "" {
		b.WriteString("Sec-WebSocket-Protocol: " + sub + "\r\n")
	}
	if ext != "" {
		b.WriteString("Sec-WebSocket-Extensions: " + ext + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := c.Write(b.Bytes()); err != nil || s.flaw == noEcho {
		return
	}
	if s.flaw == losesEarlyData {
		br = bufio.NewReader(c)
	}
	if s.flaw == dropsFirstEarlyFrame && br.Buffered() > 0 {
		if _, err := readFrame(br); err != nil {
			return
		}
	}
	if agreed == nil && offered && (s.flaw == compressesDeclined || s.flaw == compressesSilently || s.flaw == inflatesDeclined) {
		agreed = &serverDeflate{window: 15, clientContext: false}
	}
	s.echo(c, br, agreed)
}

// serverDeflate is what the test server agreed.
type serverDeflate struct {
	serverContext bool // it may refer back into its earlier messages
	clientContext bool // the client may refer back into its earlier messages
	window        int  // the server's window, in bits
}

// negotiate picks the first permessage-deflate offer it can accept
// (RFC 7692, sections 5 and 7) and returns its answer.
func (s *testServer) negotiate(lines []string) (string, *serverDeflate) {
	exts, ok := parseExtensions(lines)
	if !ok || s.flaw == compressesSilently {
		return "", nil
	}
	read := 0
offers:
	for _, e := range exts {
		if e.name != "permessage-deflate" {
			continue
		}
		if read++; read > 1 && s.flaw == firstOfferOnly {
			break
		}
		d := &serverDeflate{serverContext: true, clientContext: true, window: 15}
		answer := []string{"permessage-deflate"}
		seen := map[string]bool{}
		for _, p := range e.params {
			if seen[p.name] {
				continue offers
			}
			seen[p.name] = true
			n, err := strconv.Atoi(p.value)
			validBits := err == nil && n >= 8 && n <= 15 && strconv.Itoa(n) == p.value
			switch {
			case p.name == "server_no_context_takeover" && !p.hasValue:
				d.serverContext = s.flaw == keepsServerContext
				answer = append(answer, p.name)
			case p.name == "client_no_context_takeover" && !p.hasValue:
				d.clientContext = false
				answer = append(answer, p.name)
			case p.name == "server_max_window_bits" && validBits:
				d.window = n
				if s.flaw == largerServerWindow {
					n = 15
				}
				if s.flaw == ignoresServerWindow {
					d.window = 15
				}
				answer = append(answer, p.name+"="+strconv.Itoa(n))
			case p.name == "client_max_window_bits" && !p.hasValue:
			case p.name == "client_max_window_bits" && validBits:
				answer = append(answer, p.name+"="+p.value)
			case s.flaw == acceptsUnknownParam && !strings.HasSuffix(p.name, "_context_takeover") && !strings.HasSuffix(p.name, "_max_window_bits"):
			default:
				continue offers
			}
		}
		if s.flaw == noClientContext && d.clientContext {
			d.clientContext = false
			answer = append(answer, "client_no_context_takeover")
		}
		return strings.Join(answer, "; "), d
	}
	return "", nil
}

// echo sends back every message, compressed when deflate was agreed.
func (s *testServer) echo(c net.Conn, br *bufio.Reader, d *serverDeflate) {
	var sent, received []byte // the windows, under context takeover
	for {
		var msg []byte
		var op byte
		compressed := false
		for {
			f, err := readFrame(br)
			if err != nil || !f.masked {
				return
			}
			switch f.op {
			case opPing:
				switch s.flaw {
				case closesOnPing:
					c.Write(serverFrame(opClose, false, nil))
					return
				case wrongPong:
					c.Write(serverFrame(opPong, false, nil))
				default:
					c.Write(serverFrame(opPong, false, f.payload))
				}
				continue
			case opClose:
				c.Write(serverFrame(opClose, false, f.payload))
				return
			case opPong:
				continue
			case opText, opBinary:
				op, compressed = f.op, f.rsv1
			}
			msg = append(msg, f.payload...)
			if f.fin {
				break
			}
		}
		if d != nil && s.flaw == echoesRaw {
			c.Write(serverFrame(op, false, msg))
			continue
		}
		if compressed || (d != nil && s.flaw == inflatesDeclined) {
			if d == nil {
				return
			}
			var dict []byte
			if d.clientContext && s.flaw != dropsClientContext {
				dict = received
			}
			out, err := decompress(msg, dict)
			if err != nil {
				return
			}
			if d.clientContext && s.flaw == windowsCompressed {
				received = window(received, msg)
			} else if d.clientContext {
				received = window(received, out)
			}
			msg = out
		}
		if d == nil || s.flaw == neverCompresses {
			c.Write(serverFrame(op, false, msg))
			continue
		}
		level := flate.DefaultCompression // BestSpeed would ignore the window of earlier messages
		if d.window < 15 {
			level = flate.HuffmanOnly // no reference back at all: within any window
		}
		var dict []byte
		if d.serverContext {
			dict = sent
			sent = window(sent, msg)
		}
		c.Write(serverFrame(op, s.flaw != compressesSilently, compress(msg, dict, level)))
	}
}

// serverFrame encodes an unmasked frame.
func serverFrame(op byte, rsv1 bool, payload []byte) []byte {
	f := frameBytes(true, rsv1, op, payload)
	// Unmask: drop the mask bit and key, and undo the masking.
	n := 2
	switch f[1] & 0x7f {
	case 126:
		n = 4
	case 127:
		n = 10
	}
	mask := f[n : n+4]
	out := append([]byte{}, f[:n]...)
	out[1] &^= 0x80
	for i, c := range f[n+4:] {
		out = append(out, c^mask[i%4])
	}
	return out
}
