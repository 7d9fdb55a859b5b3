package interop

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/testkit"
)

// TestH2ShutdownServer checks ShutdownServer over HTTP/2, where a
// WebSocket's handler runs inside ServeHTTP: http.Server.Shutdown waits for
// the stream, which ends only when the Upgrader's shutdown has the handler
// say goodbye and return, so the two must run together. ShutdownServer
// returns nil, in time, with the goodbye delivered.
func TestH2ShutdownServer(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	u := cooper.New(cooper.Protocols("websocket"))
	s := newH2Server(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		io.WriteString(conn, "ready\n")
		<-hs.Request.Context().Done()
		io.WriteString(conn, "goodbye\n")
	}), nil)
	st := connect(t, s, "/ws", nil)
	if st.StatusCode != 200 {
		t.Fatalf("status %d, want 200", st.StatusCode)
	}
	br := bufio.NewReader(st)
	if line, err := br.ReadString('\n'); line != "ready\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := u.ShutdownServer(ctx, s.Config); err != nil {
		t.Fatalf("ShutdownServer = %v after %v, want nil", err, time.Since(start))
	}
	if line, err := br.ReadString('\n'); line != "goodbye\n" {
		t.Errorf("after ShutdownServer the stream gave %q, %v; want the goodbye", line, err)
	}
}
