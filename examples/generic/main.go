// Generic serves lines/1, a small protocol of its own that is not
// WebSocket, over HTTP Upgrade at /lines: after the 101, the server answers
// every line the client sends with the same line in upper case.
//
//	go run ./examples/generic [-addr 127.0.0.1:8080]
//
// With -connect it is the client instead: it upgrades with cooper.Dial,
// sends each line of its standard input and prints each answer.
//
//	go run ./examples/generic -connect http://127.0.0.1:8080/lines
//
// A client asks for it with
//
//	GET /lines HTTP/1.1
//	Connection: Upgrade
//	Upgrade: lines/1
//
// A request for any other protocol is refused with 426 and
// "Upgrade: lines/1".
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/serve"
)

func main() {
	server := flag.String("connect", "", "be the client of the lines/1 server at `URL` instead")
	serve.Main(func(ctx context.Context, addr string, out io.Writer) error {
		if *server != "" {
			return connect(ctx, *server, os.Stdin, out)
		}
		return run(ctx, addr, out)
	})
}

// connect is the client: it upgrades a connection to url to lines/1 with
// cooper.Dial, which checks the server's answer, then sends each line of
// in and writes each answer to out, until in ends.
func connect(ctx context.Context, url string, in io.Reader, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	conn, err := cooper.Dial(req, cooper.WithProtocol("lines/1"))
	if err != nil {
		return err
	}
	defer conn.Close()
	lines, answers := bufio.NewScanner(in), bufio.NewScanner(conn)
	answers.Buffer(make([]byte, 256), maxLine)
	for lines.Scan() {
		if _, err := fmt.Fprintf(conn, "%s\n", lines.Bytes()); err != nil {
			return err
		}
		if !answers.Scan() {
			return cmp.Or(answers.Err(), io.ErrUnexpectedEOF)
		}
		fmt.Fprintln(out, answers.Text())
	}
	return lines.Err()
}

// run serves lines/1 at /lines on addr until ctx is done, as serve.Run
// says: at the end every lines/1 connection is ended.
func run(ctx context.Context, addr string, out io.Writer) error {
	u := cooper.New(
		cooper.Protocols("lines/1"),
		cooper.OnError(func(err error) { log.Print(err) }),
	)
	mux := http.NewServeMux()
	mux.Handle("/lines", u.Handler(upper))

	return serve.Server{Upgrader: u, Handler: mux}.ListenAndServe(ctx, addr, out)
}

// maxLine bounds a line, newline included; a longer one ends the
// connection.
const maxLine = 4 << 10

// upper speaks lines/1 on conn: it answers each line with the line in
// upper case until the client closes its side or the Upgrader shuts down.
func upper(conn net.Conn, hs *cooper.Handshake) {
	defer conn.Close()
	stop := context.AfterFunc(hs.Request.Context(), func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	lines := bufio.NewScanner(conn)
	lines.Buffer(make([]byte, 256), maxLine)
	for lines.Scan() {
		answer := append(bytes.ToUpper(lines.Bytes()), '\n')
		if _, err := conn.Write(answer); err != nil {
			return
		}
	}
	if err := lines.Err(); err != nil && hs.Request.Context().Err() == nil {
		log.Printf("%s: %v", conn.RemoteAddr(), err)
	}
}
