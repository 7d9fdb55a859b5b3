package coopergin_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergin"
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

	req, _ := http.NewRequest("GET", srv.URL+"/rooms/lobby/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close() // a 101's body is the connection
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	fmt.Print(resp.Status, "\n", line)
	// Output:
	// 101 Switching Protocols
	// welcome to lobby, ada
}
