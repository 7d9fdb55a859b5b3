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
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergin"
	"lowbit.dev/cooper/examples/internal/wsecho"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`host:port` to listen on")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run serves on addr, printing "listening on http://ADDR" to out once it
// listens, and then a log line per request, until ctx is done. Then it
// stops taking requests, says goodbye to every WebSocket, and waits for
// them, 10 s at most.
func run(ctx context.Context, addr string, out io.Writer) error {
	u := cooper.New(
		cooper.Protocols("websocket"),
		cooper.Subprotocols("echo.v1"),
		cooper.Deflate(wsecho.Deflate),
		cooper.OnError(func(err error) { log.Print(err) }),
	)
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

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 16 << 10}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(out, "listening on http://%s\n", ln.Addr())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// More than the 5 s http.Server.Shutdown waits for a connection a
	// browser opened ahead of need, so that the server stops in time.
	grace, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Stops srv and u together: http.Server.Shutdown alone neither waits
	// for nor closes upgraded connections.
	return u.ShutdownServer(grace, srv)
}

// echo echoes the messages of one WebSocket after prefix, and logs how it
// ended.
func echo(conn net.Conn, hs *cooper.Handshake, prefix string) {
	if err := wsecho.Serve(conn, hs, prefix); err != nil {
		log.Printf("%s: %v", conn.RemoteAddr(), err)
	}
}
