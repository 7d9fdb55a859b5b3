package testkit

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"lowbit.dev/cooper"
)

func TestMain(m *testing.M) { Main(m) }

// TestServeAndDial upgrades and echoes through Serve and Dial, and checks
// what a refusal leaves in the Client and for NextErr.
func TestServeAndDial(t *testing.T) {
	s := Serve(t, nil, func(u *cooper.Upgrader) http.Handler {
		return u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
			defer conn.Close()
			io.Copy(conn, conn)
		})
	})
	Dial(t, s.URL, nil).Echoes(t, "hello, testkit")

	c := Dial(t, s.URL, http.Header{"Sec-Websocket-Version": {"8"}})
	if c.Resp.StatusCode != http.StatusUpgradeRequired || !strings.Contains(c.Body, "is not 13") {
		t.Errorf("refusal = %s %q, want 426 and cooper's reason", c.Resp.Status, c.Body)
	}
	if err := s.NextErr(t); !errors.Is(err, cooper.ErrWebSocketVersion) {
		t.Errorf("NextErr = %v, want ErrWebSocketVersion", err)
	}
}

// TestLockedBufferLimit checks that a LockedBuffer with a Limit keeps that
// much and reports every write whole.
func TestLockedBufferLimit(t *testing.T) {
	b := &LockedBuffer{Limit: 8}
	for _, w := range []string{"12345", "6789", "abc"} {
		if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
			t.Errorf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
		}
	}
	if got := b.String(); got != "12345678" {
		t.Errorf("the buffer holds %q, want the first 8 bytes, 12345678", got)
	}
	if got := b.Take(); got != "12345678" || b.String() != "" {
		t.Errorf("Take = %q and leaves %q, want 12345678 and nothing", got, b.String())
	}
}
