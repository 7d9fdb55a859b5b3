// Gin serves the WebSocket echo behind gin's Logger and Recovery, in
// release mode: at /ws every message comes back unchanged, and at
// /rooms/:room/ws after the room's name.
//
//	go run ./examples/gin [-addr 127.0.0.1:8080]
//
// coopergin.Handler registers the upgrade as a gin route; the handler gets
// a copy of the gin.Context, with the route's parameters, that stays valid
// after the upgrade.
package main

import (
	"context"
	"io"
	"log"
	"net"

	"github.com/gin-gonic/gin"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergin"
	"lowbit.dev/cooper/examples/internal/serve"
	"lowbit.dev/cooper/examples/internal/wsecho"
)

func main() { serve.Main(run) }

// run serves the echo behind gin's middleware on addr until ctx is done,
// as serve.Run says, and writes a log line per request to out.
func run(ctx context.Context, addr string, out io.Writer) error {
	u := cooper.New(wsecho.Options()...) // as in examples/echo
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.LoggerWithWriter(out), gin.Recovery())
	if err := r.SetTrustedProxies(nil); err != nil { // no proxy in front: ClientIP is the peer
		return err
	}
	r.GET("/ws", coopergin.Handler(u, func(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
		echo(conn, hs, "")
	}))
	r.GET("/rooms/:room/ws", coopergin.Handler(u, func(c *gin.Context, conn net.Conn, hs *cooper.Handshake) {
		echo(conn, hs, c.Param("room")+": ")
	}))

	return serve.Server{Upgrader: u, Handler: r}.ListenAndServe(ctx, addr, out)
}

// echo echoes the messages of one WebSocket after prefix, and logs how it
// ended.
func echo(conn net.Conn, hs *cooper.Handshake, prefix string) {
	if err := wsecho.Serve(conn, hs, prefix); err != nil {
		log.Printf("%s: %v", conn.RemoteAddr(), err)
	}
}
