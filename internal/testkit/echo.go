package testkit

import (
	"io"
	"net"

	"lowbit.dev/cooper"
)

// Echo is an upgraded handler that sends back what it reads until the
// client ends its side, then closes the connection.
func Echo(conn net.Conn, _ *cooper.Handshake) {
	defer conn.Close()
	io.Copy(conn, conn)
}
