package testkit

import (
	"bufio"
	"net/http"

	"lowbit.dev/cooper"
)

// FirstLine opens a WebSocket to url with cooper's client (Dial, offering
// the protocol "websocket") and returns the first line, newline included,
// that the server writes on the connection; then it closes the connection.
// It is the client half of the adapters' Examples, which have no
// testing.T: it panics if the upgrade fails, and returns what was read
// when the connection ends before a newline.
func FirstLine(url string) string {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		panic(err)
	}
	conn, err := cooper.Dial(req, cooper.WithProtocol("websocket"))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return line
}
