package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gorilla/websocket"
	"lowbit.dev/cooper"
)

// serve is the README's shutdown block, copied verbatim: TestReadmeShutdown
// checks that the README still shows exactly this code.
func serve(ctx context.Context, ln net.Listener) error {
	u := cooper.New(cooper.Protocols("websocket"), cooper.Subprotocols("v2.chat", "v1.chat"))
	mux := http.NewServeMux()
	mux.Handle("/ws", u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		// hs.Subprotocol, hs.Deflate; hs.Request, whose context ends when u shuts down:
		<-hs.Request.Context().Done() // a framing loop reads and writes messages until then
		ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "server shutting down")))
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	<-ctx.Done() // SIGTERM, say
	grace, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return u.ShutdownServer(grace, srv) // returns once srv has stopped and every goodbye is sent
}

// readmeServerEnv, set in a child process of TestReadmeShutdown, makes that
// process the README's server.
const readmeServerEnv = "COOPER_README_SERVER"

// TestReadmeShutdown runs the README's shutdown block as a program does: in
// a process of its own, which exits as soon as serve returns, so that
// nothing the block does not wait for can still happen. A gorilla client
// connects, the process gets SIGTERM, and the client must read the 1001
// goodbye, not see the connection drop (1006).
func TestReadmeShutdown(t *testing.T) {
	if os.Getenv(readmeServerEnv) == "1" {
		runReadmeServer()
		return
	}
	checkReadmeBlock(t, "u.ShutdownServer(grace, srv)", "readme_test.go")

	t.Setenv(readmeServerEnv, "1") // for the child: this test binary, run again
	p := start(t, os.Args[0], "-test.run=^TestReadmeShutdown$")
	addr, err := p.listenAddr()
	if err != nil {
		t.Fatalf("the README's server did not say where it listens: %v", err)
	}

	d := websocket.Dialer{Subprotocols: []string{"v1.chat"}, HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if conn.Subprotocol() != "v1.chat" {
		t.Errorf("subprotocol %q, want v1.chat", conn.Subprotocol())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = conn.ReadMessage()
	var closeErr *websocket.CloseError
	if !errors.As(err, &closeErr) || closeErr.Code != websocket.CloseGoingAway {
		t.Fatalf("after SIGTERM the client read %v, want the goodbye: close 1001", err)
	}
	t.Logf("the client read the goodbye: %v", closeErr)
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("the README's server exited with %v:\n%s", p.err, p.output)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the README's server did not exit within 10 s of SIGTERM")
	}
}

// runReadmeServer is the program around the README's block: it listens on
// a free loopback port, prints "listening on ADDR" and serves until
// SIGTERM; then it exits, with status 1 if serve returned an error.
func runReadmeServer() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := serve(ctx, ln); err != nil {
		fmt.Println("serve:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// checkReadmeBlock fails the test unless the README's ```go block that
// contains marker appears, as it is, in the file named source of this
// package, so that the code the README shows is the code the test runs.
func checkReadmeBlock(t *testing.T, marker, source string) {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var block string
	for rest := string(readme); ; {
		var ok bool
		if _, rest, ok = strings.Cut(rest, "```go\n"); !ok {
			break
		}
		var b string
		b, rest, _ = strings.Cut(rest, "```\n")
		if strings.Contains(b, marker) {
			block = b
			break
		}
	}
	if block == "" {
		t.Fatalf("README.md has no go block with %q", marker)
	}
	code, err := os.ReadFile(source)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(code), block) {
		t.Fatalf("the README's block with %q is not in %s as written:\n%s", marker, source, block)
	}
}
