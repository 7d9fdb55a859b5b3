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
	conn, err := cooper.Dial(req, cooper.WithProtocol("websocket"))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	line, _ := bufio.NewReader(conn).ReadString('\n')
	fmt.Print(line)
	// Output:
	// welcome to lobby, ada
}
