package coopergin_test

import (
	"fmt"
	"net"
	"net/http/httptest"

	"github.com/gin-gonic/gin"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergin"
	"lowbit.dev/cooper/internal/testkit"
)

// A gin route whose handler reads its parameter and a key a middleware set,
// after the upgrade.
func ExampleHandler() {
	u := cooper.New(cooper.Protocols("websocket"))
	r := gin.New()
	r.Use(func(c *gin.Context) { c.Set("user", "ada") })
	r.GET("/rooms/:room/ws", coopergin.Handler(u, func(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		fmt.Fprintf(conn, "welcome to %s, %s\n", c.Param("room"), c.GetString("user"))
	}))
	srv := httptest.NewServer(r)
	defer srv.Close()

	fmt.Print(testkit.FirstLine(srv.URL + "/rooms/lobby/ws")) // what a client of cooper.Dial reads
	// Output:
	// welcome to lobby, ada
}
