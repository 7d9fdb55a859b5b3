package interop

import (
	"io"
	"net"
	"strings"
	"testing"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/testkit"
)

// TestH2Generic opens a protocol other than WebSocket over HTTP/2, in raw
// frames to net/http's server: an extended CONNECT whose :protocol names
// it (RFC 8441, section 4 takes any Upgrade token) is answered 200 with
// nothing of WebSocket's, even when the request carries WebSocket's
// headers and the server is set up for subprotocols; the handler gets the
// protocol in the server's spelling and the stream carries its bytes both
// ways; a version the server lacks is refused with 400, which cannot name
// the versions it has (RFC 9113, section 8.2.2 forbids Upgrade).
func TestH2Generic(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	handled := make(chan *cooper.Handshake, 2)
	s, u := hostileServer(t, make(chan error, 4), func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		handled <- hs
		io.Copy(conn, conn)
	}, nil, cooper.Protocols("lines/1", "lines/2"), cooper.Subprotocols("chat"))
	c := dialH2(t, s)

	c.connect(1, false, ":protocol", "LINES/2", "sec-websocket-version", "8", "sec-websocket-protocol", "chat")
	header := c.answered(1)
	for name := range header {
		if strings.HasPrefix(name, "sec-websocket-") || name == "upgrade" || name == "connection" {
			t.Errorf("the answer carries %s: %q", name, header.Values(name))
		}
	}
	hs := testkit.Recv(t, handled)
	if hs.Protocol != "lines/2" || hs.Subprotocol != "" || hs.Request.ProtoMajor != 2 {
		t.Errorf("Handshake = {%q, %q, HTTP/%d}, want lines/2 without a subprotocol over HTTP/2", hs.Protocol, hs.Subprotocol, hs.Request.ProtoMajor)
	}
	c.data(1, false, []byte("hello over a stream\n"))
	if got := c.readN(1, len("hello over a stream\n")); got != "hello over a stream\n" {
		t.Errorf("echo = %q", got)
	}
	c.data(1, true, nil)
	if _, reset, ended := c.rest(1); !ended || reset != 0 {
		t.Errorf("after the client's end: ended %v, reset %v; want the stream ended by the handler", ended, reset)
	}

	c.connect(3, false, ":protocol", "lines/3", "sec-websocket-version", "")
	header, _, _, ended := c.response(3)
	if header.Get(":status") != "400" || !ended || len(header.Values("upgrade")) > 0 {
		t.Errorf("lines/3: status %s, Upgrade %q, ended %v; want 400 without Upgrade, the stream ended", header.Get(":status"), header.Values("upgrade"), ended)
	}
	if st := u.Stats(); st.Upgrades != 1 || st.Refusals[cooper.ErrProtocol] != 1 {
		t.Errorf("Stats = %+v, want 1 upgrade and 1 ErrProtocol refusal", st)
	}
}
