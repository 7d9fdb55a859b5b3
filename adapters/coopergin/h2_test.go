package coopergin_test

import (
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/gin-gonic/gin"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergin"
	"lowbit.dev/cooper/internal/testkit"
)

// TestHTTP2 opens a WebSocket over HTTP/2 (RFC 8441) through gin, with
// golang.org/x/net/http2's client: the upgrade is a CONNECT, so a route
// registered for CONNECT as well as GET serves it, behind gin.Logger and
// gin.Recovery, with its parameters, and what a middleware writes once
// the chain returns to it stays off the stream; one registered with GET
// alone answers gin's 404, as the package documentation warns.
func TestHTTP2(t *testing.T) {
	if !testkit.InExtendedConnectProcess(t) {
		return
	}
	for _, tt := range []struct {
		name    string
		methods []string
		status  int
	}{
		{"a route for GET and CONNECT serves the extended CONNECT", []string{http.MethodGet, http.MethodConnect}, http.StatusOK},
		{"a route for GET alone answers 404", []string{http.MethodGet}, http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logs := &testkit.LockedBuffer{}
			u := cooper.New(cooper.Protocols("websocket"))
			e := gin.New()
			e.Use(gin.LoggerWithWriter(logs), gin.RecoveryWithWriter(io.Discard))
			writesAfter := func(c *gin.Context) { c.Next(); c.String(http.StatusOK, "written after the chain") }
			e.Match(tt.methods, "/rooms/:room/ws", writesAfter, coopergin.Handler(u, func(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
				testkit.RoomEcho(conn, c.Param("room"))
			}))
			stream := testkit.CheckRoomOverH2(t, u, e, tt.status)
			if stream == nil {
				return
			}
			stream.Close()
			if rest, err := io.ReadAll(stream); len(rest) > 0 || err != nil {
				t.Errorf("after the handler: %q, %v; want the end of the stream", rest, err)
			}
			logs.WaitFor(t, "| 200 |")
		})
	}
}
