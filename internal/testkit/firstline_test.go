package testkit

import (
	"fmt"
	"net"
	"net/http/httptest"
	"testing"

	"lowbit.dev/cooper"
)

// TestFirstLine checks that FirstLine upgrades, reads one line and no
// more, and panics when the server refuses the upgrade.
func TestFirstLine(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		fmt.Fprintf(conn, "%s over %s\nsecond line\n", hs.Protocol, hs.Request.URL.Path)
	}))
	defer srv.Close()
	if got := FirstLine(srv.URL + "/ws"); got != "websocket over /ws\n" {
		t.Errorf("FirstLine = %q, want %q", got, "websocket over /ws\n")
	}
	MustPanic(t, "FirstLine of a server that does not upgrade", func() {
		plain := httptest.NewServer(nil)
		defer plain.Close()
		FirstLine(plain.URL)
	})
}
