package cooper_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"lowbit.dev/cooper"
)

// A WebSocket endpoint: cooper answers the handshake, then the handler's
// framing layer (here, a plain echo) owns the connection.
func ExampleHijack() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) {
		defer conn.Close()
		io.Copy(conn, conn)
	}, cooper.Protocols("websocket")))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	conn := resp.Body.(io.ReadWriteCloser) // a 101's body is the connection
	defer conn.Close()
	fmt.Println(resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	conn.Write([]byte("hi"))
	buf := make([]byte, 2)
	io.ReadFull(conn, buf)
	fmt.Printf("%s\n", buf)
	// Output:
	// 101 Switching Protocols s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
	// hi
}

// A handler that needs the subprotocol and the request gets the Handshake;
// the client learns the same subprotocol from its own.
func ExampleUpgrader_Handler() {
	u := cooper.New(cooper.Protocols("websocket"), cooper.Subprotocols("v2.chat", "v1.chat"))
	done := make(chan struct{})
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer close(done)
		defer conn.Close()
		fmt.Println(hs.Protocol, hs.Subprotocol, hs.Request.URL.Path)
	}))
	defer srv.Close()

	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http")+"/rooms/1", nil)
	var hs cooper.Handshake
	conn, err := cooper.Dial(req, cooper.WithUpgradeOptions(
		cooper.WithSubprotocols("v1.chat", "v2.chat"), // the client prefers v1
		cooper.WithHandshake(&hs),
	))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	<-done
	fmt.Println(hs.Subprotocol)
	// Output:
	// websocket v1.chat /rooms/1
	// v1.chat
}

// A handler that upgrades inside its own ServeHTTP, for instance after
// authenticating. Accept has already answered a refused request.
func ExampleUpgrader_Accept() {
	u := cooper.New(cooper.Protocols("websocket"))
	refusals := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, hs, err := u.Accept(w, r)
		if err != nil {
			refusals <- err
			return
		}
		go func() { // returning from ServeHTTP releases net/http's state
			defer conn.Close()
			io.WriteString(conn, hs.Protocol)
		}()
	}))
	defer srv.Close()

	resp, err := http.Get(srv.URL) // a plain GET cannot be upgraded
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println("refused:", <-refusals)
	fmt.Println(resp.Status, resp.Header.Get("Upgrade"))
	// Output:
	// refused: cooper: Connection: "" has no "upgrade" token
	// 426 Upgrade Required websocket
}

// permessage-deflate: the framing layer on each side sets its compressor
// and decompressor from Handshake.Deflate. The server's holds what its 101
// announced, the client's what it read from that 101: the same parameters.
func ExampleDeflate() {
	u := cooper.New(cooper.Protocols("websocket"), cooper.Deflate(cooper.DeflateParams{ServerNoContextTakeover: true}))
	agreed := make(chan *cooper.DeflateParams, 1)
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		agreed <- hs.Deflate // nil when the client offered nothing acceptable
	}))
	defer srv.Close()

	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	var hs cooper.Handshake
	conn, err := cooper.Dial(req, cooper.WithUpgradeOptions(
		cooper.WithDeflate(cooper.DeflateParams{ClientMaxWindowBits: 10}),
		cooper.WithHandshake(&hs),
	))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	fmt.Printf("server: %+v\n", *<-agreed)
	fmt.Printf("client: %+v\n", *hs.Deflate)
	// Output:
	// server: {ServerNoContextTakeover:true ClientNoContextTakeover:false ServerMaxWindowBits:15 ClientMaxWindowBits:10}
	// client: {ServerNoContextTakeover:true ClientNoContextTakeover:false ServerMaxWindowBits:15 ClientMaxWindowBits:10}
}

// The Sec-WebSocket-Accept value for the sample key of RFC 6455, section 1.3.
func ExampleAcceptKey() {
	fmt.Println(cooper.AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="))
	// Output: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
}

// A page on another site may connect only when OriginPatterns allows its
// origin; other browsers' cross-origin requests are refused with 403.
func Example_crossOrigin() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket"), cooper.OriginPatterns("*.example.com")))
	defer srv.Close()

	for _, origin := range []string{"https://app.example.com", "https://evil.example"} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Host = "ws.example.net"
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		reason, _ := io.ReadAll(resp.Body) // empty for a 101
		resp.Body.Close()
		fmt.Println(strings.TrimSpace(fmt.Sprintln(origin, resp.StatusCode, string(reason))))
	}
	// Output:
	// https://app.example.com 101
	// https://evil.example 403 cooper: Origin: "https://evil.example" does not match Host "ws.example.net"
}

// A protocol of your own over Upgrade: without WebSocket's headers, cooper
// checks Connection and Upgrade and switches.
func Example_generic() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) {
		defer conn.Close()
		fmt.Fprintf(conn, "speaking %s\n", proto)
	}, cooper.Protocols("lines/1")))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "LINES/1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	line, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.Header.Get("Upgrade"), ": ", string(line))
	// Output: lines/1: speaking lines/1
}

// Shutdown cancels the handlers' contexts, waits for them, and closes what
// is left at ctx's deadline. http.Server.Shutdown neither waits for nor
// closes upgraded connections, so a server stops itself and its Upgrader
// with one call, ShutdownServer, which returns once both have stopped: the
// handlers have said goodbye before the program goes on to exit.
func ExampleUpgrader_Shutdown() {
	u := cooper.New(cooper.Protocols("lines/1"))
	srv := &http.Server{Handler: u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		io.WriteString(conn, "ready\n")
		<-hs.Request.Context().Done() // cancelled by the shutdown
		io.WriteString(conn, "goodbye\n")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)

	req, _ := http.NewRequest("GET", "http://"+ln.Addr().String(), nil)
	conn, err := cooper.Dial(req, cooper.WithProtocol("lines/1"))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	lines := bufio.NewReader(conn)
	lines.ReadString('\n') // ready

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("ShutdownServer:", u.ShutdownServer(ctx, srv))
	goodbye, _ := lines.ReadString('\n')
	fmt.Print("client read: ", goodbye)
	// Output:
	// ShutdownServer: <nil>
	// client read: goodbye
}

// A server that drains its connections over DrainTime when it shuts down,
// so their clients reconnect to the rest of the fleet spread over that
// time rather than all at once. The handler tells a drain from other
// cancellation by the context's cause, and a WebSocket framing layer would
// send close code 1012 (service restart).
func ExampleDrainTime() {
	u := cooper.New(cooper.Protocols("lines/1"), cooper.DrainTime(300*time.Millisecond))
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		io.WriteString(conn, "ready\n")
		<-hs.Request.Context().Done()
		if errors.Is(context.Cause(hs.Request.Context()), cooper.ErrShutdown) {
			io.WriteString(conn, "1012 service restart\n")
		}
	}))
	defer srv.Close()

	var clients []*bufio.Reader
	for range 3 {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "lines/1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		br.ReadString('\n') // ready
		clients = append(clients, br)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("Shutdown:", u.Shutdown(ctx)) // returns once every handler has
	for i, br := range clients {
		line, _ := br.ReadString('\n')
		fmt.Printf("client %d told: %s", i, line)
	}
	// Output:
	// Shutdown: <nil>
	// client 0 told: 1012 service restart
	// client 1 told: 1012 service restart
	// client 2 told: 1012 service restart
}

// A WebSocket client: Dial connects, does the RFC 6455 handshake, checks
// the answer, and reports what was agreed. The framing layer then owns
// the connection.
func ExampleDial() {
	u := cooper.New(cooper.Protocols("websocket"), cooper.Subprotocols("v1.chat"))
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		io.Copy(conn, conn)
	}))
	defer srv.Close()

	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http")+"/chat", nil)
	var hs cooper.Handshake
	conn, err := cooper.Dial(req, cooper.WithUpgradeOptions( // ws: the protocol is websocket
		cooper.WithSubprotocols("v2.chat", "v1.chat"), // in order of preference
		cooper.WithHandshake(&hs),
	))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Println(hs.Protocol, hs.Subprotocol)
	conn.Write([]byte("hi"))
	buf := make([]byte, 2)
	io.ReadFull(conn, buf)
	fmt.Printf("%s\n", buf)
	// Output:
	// websocket v1.chat
	// hi
}

// A protocol of your own over a connection you already have. What the
// server writes right after its 101 is read first, even when it arrived
// with the response.
func ExampleUpgrade() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) {
		defer conn.Close()
		fmt.Fprintf(conn, "speaking %s\n", proto)
	}, cooper.Protocols("lines/1")))
	defer srv.Close()

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/lines", nil)
	req.Header.Set("Upgrade", "lines/1")
	conn, err := cooper.Upgrade(c, req)
	if err != nil {
		fmt.Println(err)
		return
	}
	line, _ := io.ReadAll(conn)
	fmt.Print(string(line))
	// Output: speaking lines/1
}

// Every error names what was wrong and matches a sentinel: here the
// server refuses the upgrade.
func ExampleDial_refused() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket")))
	defer srv.Close()

	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	_, err := cooper.Dial(req, cooper.WithProtocol("chat/2"))
	fmt.Println(errors.Is(err, cooper.ErrUnexpectedStatus))
	fmt.Println(err)
	// Output:
	// true
	// cooper: status: "426 Upgrade Required" is not 101 Switching Protocols; body "cooper: Upgrade: \"chat/2\" has none of \"websocket\""
}

// CheckOrigin decides the origin check alone, as gorilla/websocket's
// Upgrader.CheckOrigin does: here, the application's own list of origins.
func ExampleCheckOrigin() {
	allowed := map[string]bool{"https://app.example": true}
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket"),
		cooper.CheckOrigin(func(r *http.Request) bool { return allowed[r.Header.Get("Origin")] })))
	defer srv.Close()

	for _, origin := range []string{"https://app.example", "https://evil.example"} {
		req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		req.Header.Set("Origin", origin)
		conn, err := cooper.Dial(req)
		if err != nil {
			fmt.Println(origin, "refused:", errors.Is(err, cooper.ErrUnexpectedStatus))
			continue
		}
		conn.Close()
		fmt.Println(origin, "upgraded")
	}
	// Output:
	// https://app.example upgraded
	// https://evil.example refused: true
}

// SelectSubprotocol chooses each request's subprotocol: here a browser,
// which cannot set headers, carries its token as an offered subprotocol,
// and the server agrees on the chat subprotocol only when the token is
// good.
func ExampleSelectSubprotocol() {
	u := cooper.New(cooper.Protocols("websocket"),
		cooper.SelectSubprotocol(func(r *http.Request, offered []string) string {
			if slices.Contains(offered, "token.s3cr3t") && slices.Contains(offered, "chat.v1") {
				return "chat.v1"
			}
			return "" // the handler closes connections without a subprotocol
		}))
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) { conn.Close() }))
	defer srv.Close()

	for _, token := range []string{"token.s3cr3t", "token.guess"} {
		req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		var hs cooper.Handshake
		conn, err := cooper.Dial(req, cooper.WithUpgradeOptions(
			cooper.WithSubprotocols("chat.v1", token), cooper.WithHandshake(&hs)))
		if err != nil {
			fmt.Println(err)
			return
		}
		conn.Close()
		fmt.Printf("%s: subprotocol %q\n", token, hs.Subprotocol)
	}
	// Output:
	// token.s3cr3t: subprotocol "chat.v1"
	// token.guess: subprotocol ""
}

// RefusalHandler writes refusals the application's way, here as JSON. The
// headers the refusal requires (for a version refusal, Sec-WebSocket-Version
// and Upgrade) are already set; the status comes from the error.
func ExampleRefusalHandler() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket"),
		cooper.RefusalHandler(func(w http.ResponseWriter, r *http.Request, err *cooper.UpgradeError) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(err.Status)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		})))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Sec-WebSocket-Version"), resp.Header.Get("Content-Type"))
	fmt.Print(string(body))
	// Output:
	// 426 Upgrade Required 13 application/json
	// {"error":"cooper: Sec-WebSocket-Version: \"8\" is not 13"}
}

// The adapter of a stream-based transport, such as an HTTP/3 server,
// hands cooper each extended CONNECT's stream: it shapes the request as
// net/http's HTTP/2 server does and attaches a StreamTakeover that sends
// the answer cooper has set on w and returns the stream, which outlives
// ServeHTTP. Here a request to a loopback server stands in for the
// transport's request and one end of a net.Pipe for its stream;
// lowbit.dev/cooper/adapters/cooperh3 does this for quic-go.
func ExampleWithStreamTakeover() {
	u := cooper.New(cooper.Protocols("websocket"))
	ws := u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		fmt.Fprintf(conn, "%s over HTTP/%d\n", hs.Protocol, hs.Request.ProtoMajor)
	})
	peer, stream := net.Pipe()
	defer peer.Close()
	adapter := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		take := func() (net.Conn, error) {
			if err := http.NewResponseController(w).Flush(); err != nil { // sends the 200
				return nil, err
			}
			return stream, nil
		}
		r = cooper.WithStreamTakeover(r, take)
		r.Method, r.Proto, r.ProtoMajor, r.ProtoMinor = http.MethodConnect, "HTTP/3.0", 3, 0
		r.Header = http.Header{":protocol": {"websocket"}, "Sec-Websocket-Version": {"13"}}
		ws.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(adapter)
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	line, _ := bufio.NewReader(peer).ReadString('\n')
	fmt.Print(resp.Status, ", then on the stream: ", line)
	// Output: 200 OK, then on the stream: websocket over HTTP/3
}

// ResponseHeaders adds the application's headers to the 101, here a
// cookie and a header that depends on the agreed protocol.
func ExampleResponseHeaders() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("lines/1", "lines/2"),
		cooper.ResponseHeaders(func(r *http.Request, proto string) http.Header {
			return http.Header{
				"Set-Cookie":   {"session=42; HttpOnly"},
				"X-Line-Limit": {map[string]string{"lines/1": "80", "lines/2": "4096"}[proto]},
			}
		})))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "lines/2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Set-Cookie"), resp.Header.Get("X-Line-Limit"))
	// Output: 101 Switching Protocols session=42; HttpOnly 4096
}

// A refusal reaches OnError (and Upgrader.Accept's caller) as an
// *UpgradeError, which carries the status and the headers the client was
// sent and matches a sentinel: here a client asks for a protocol the
// server does not speak, and gets 426 Upgrade Required naming the one it
// does.
func ExampleUpgradeError() {
	refusals := make(chan *cooper.UpgradeError, 1)
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket"),
		cooper.OnError(func(err error) {
			if rej, ok := errors.AsType[*cooper.UpgradeError](err); ok {
				refusals <- rej
			}
		})))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL, nil)
	if _, err := cooper.Dial(req, cooper.WithProtocol("chat/2")); err == nil {
		panic("upgraded")
	}
	rej := <-refusals
	fmt.Println(rej.Status, rej.Header, errors.Is(rej, cooper.ErrProtocol))
	fmt.Println(rej)
	// Output:
	// 426 map[Connection:[Upgrade] Upgrade:[websocket]] true
	// cooper: Upgrade: "chat/2" has none of "websocket"
}

// A handler's panic reaches OnError as a *PanicError, with the value and
// the stack; cooper has closed the connection, so the client reads EOF,
// and the server goes on.
func ExamplePanicError() {
	panics := make(chan *cooper.PanicError, 1)
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) {
		panic("out of cheese")
	}, cooper.Protocols("lines/1"), cooper.OnError(func(err error) {
		if p, ok := errors.AsType[*cooper.PanicError](err); ok {
			panics <- p
		}
	})))
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL, nil)
	conn, err := cooper.Dial(req, cooper.WithProtocol("lines/1"))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	_, err = conn.Read(make([]byte, 1))
	fmt.Println("client read:", err)
	p := <-panics
	fmt.Println(p.Value, errors.Is(p, cooper.ErrHandlerPanic), strings.Contains(string(p.Stack), "ExamplePanicError"))
	// Output:
	// client read: EOF
	// out of cheese true true
}
