package main

import (
	"crypto/sha1"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
)

// The floor: the least a correct WebSocket upgrade on net/http can do. It
// checks what RFC 6455, section 4.2.1 requires of the request, takes the
// connection over with http.ResponseController, answers with a 101 that is
// fixed but for Sec-WebSocket-Accept, and hands the connection to echo on a
// goroutine of its own, so ServeHTTP returns as cooper's does. Everything
// cooper does beyond this is cooper's cost.

// The 101 heads the floor answers with, but for Sec-WebSocket-Accept and
// the blank line, by what the client offered.
const (
	floorHead        = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	floorChat        = "Sec-WebSocket-Protocol: chat\r\n"
	floorDeflate     = "Sec-WebSocket-Extensions: permessage-deflate\r\n"
	floorAcceptField = "Sec-WebSocket-Accept: "
)

// floorHandler is the floor's http.Handler.
type floorHandler struct{ st *serverState }

func (f floorHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := floorValid(r)
	if !ok {
		http.Error(w, "bad upgrade request", http.StatusBadRequest)
		return
	}
	chat := hasElement(r.Header["Sec-Websocket-Protocol"], "chat")
	deflate := offersPlainDeflate(r.Header["Sec-Websocket-Extensions"])
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		f.st.fail(err)
		return
	}
	if brw.Reader.Buffered() > 0 {
		// RFC 6455, section 4.1: the client waits for the 101 before it
		// sends a frame; the floor does not replay early bytes.
		conn.Close()
		f.st.fail(errEarlyData)
		return
	}
	b := append(brw.Writer.AvailableBuffer(), floorHead...)
	if chat {
		b = append(b, floorChat...)
	}
	if deflate {
		b = append(b, floorDeflate...)
	}
	b = append(b, floorAcceptField...)
	b = appendAccept(b, key)
	b = append(b, "\r\n\r\n"...)
	if _, err := conn.Write(b); err != nil {
		conn.Close()
		f.st.fail(err)
		return
	}
	go echo(conn, f.st)
}

// floorValid checks r as RFC 6455, section 4.2.1 asks and returns its
// Sec-WebSocket-Key: a GET of HTTP/1.1 or later with no body, Connection
// naming "upgrade", Upgrade naming "websocket", version 13, a key of 16
// base64-encoded bytes, and an Origin, if any, of the request's own host.
func floorValid(r *http.Request) (key string, ok bool) {
	h := r.Header
	if r.Method != http.MethodGet || !r.ProtoAtLeast(1, 1) || r.ContentLength != 0 ||
		!hasElement(h["Connection"], "upgrade") || !hasElement(h["Upgrade"], "websocket") {
		return "", false
	}
	if v := h["Sec-Websocket-Version"]; len(v) != 1 || v[0] != "13" {
		return "", false
	}
	k := h["Sec-Websocket-Key"]
	if len(k) != 1 || !isKey(k[0]) {
		return "", false
	}
	if o := h["Origin"]; len(o) > 1 || len(o) == 1 && !sameOrigin(o[0], r.Host) {
		return "", false
	}
	return k[0], true
}

// hasElement reports whether one of the comma-separated lists in lines has
// an element equal to want, ignoring ASCII case and white space; want is
// lower case.
func hasElement(lines []string, want string) bool {
	for _, line := range lines {
		for line != "" {
			var e string
			e, line, _ = strings.Cut(line, ",")
			if asciiFoldEqual(strings.Trim(e, " \t"), want) {
				return true
			}
		}
	}
	return false
}

// offersPlainDeflate reports whether an offer in the Sec-WebSocket-Extensions
// lines is permessage-deflate with at most client_max_window_bits, which
// the floor accepts by answering "permessage-deflate" alone (RFC 7692,
// sections 7.1.2.2 and 7.1.3).
func offersPlainDeflate(lines []string) bool {
	for _, line := range lines {
		for line != "" {
			var offer string
			offer, line, _ = strings.Cut(line, ",")
			name, params, _ := strings.Cut(offer, ";")
			if !asciiFoldEqual(strings.Trim(name, " \t"), "permessage-deflate") {
				continue
			}
			plain := true
			for params != "" && plain {
				var p string
				p, params, _ = strings.Cut(params, ";")
				p, _, _ = strings.Cut(p, "=")
				plain = asciiFoldEqual(strings.Trim(p, " \t"), "client_max_window_bits")
			}
			if plain {
				return true
			}
		}
	}
	return false
}

// asciiFoldEqual reports whether s equals the lower-case lower, ignoring
// ASCII case only.
func asciiFoldEqual(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isKey reports whether k is a Sec-WebSocket-Key: 16 bytes in padded
// base64, which is 24 characters.
func isKey(k string) bool {
	var b [18]byte
	n, err := base64.StdEncoding.Decode(b[:], []byte(k))
	return len(k) == 24 && err == nil && n == 16
}

// sameOrigin reports whether origin is scheme://host with host equal to
// the request's Host, ignoring ASCII case.
func sameOrigin(origin, host string) bool {
	_, h, ok := strings.Cut(origin, "://")
	return ok && strings.EqualFold(h, host)
}

// websocketGUID is the GUID of RFC 6455, section 1.3.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// appendAccept appends the Sec-WebSocket-Accept value for key to b
// (RFC 6455, section 4.2.2): base64(SHA-1(key + GUID)).
func appendAccept(b []byte, key string) []byte {
	var in [24 + len(websocketGUID)]byte
	sum := sha1.Sum(append(append(in[:0], key...), websocketGUID...))
	return base64.StdEncoding.AppendEncode(b, sum[:])
}

// floorServer serves the floor on ln.
func floorServer(ln net.Listener, st *serverState) error {
	return serveHTTP(ln, floorHandler{st: st})
}
