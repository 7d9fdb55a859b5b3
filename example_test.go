package cooper_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
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
func ExampleOriginPatterns() {
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

// AppendAcceptKey writes the answer into a buffer the caller owns, as a
// server that builds its own 101 does; with room for 28 more bytes, it
// does not allocate.
func ExampleAppendAcceptKey() {
	line := make([]byte, 0, 64)
	line = append(line, "Sec-WebSocket-Accept: "...)
	line = cooper.AppendAcceptKey(line, "dGhlIHNhbXBsZSBub25jZQ==")
	fmt.Printf("%s\n", line)
	// Output: Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
}

// Subprotocols lists the subprotocols the server speaks; the client's
// order of preference decides among them, and a client that offers none
// of them is upgraded without one, for the handler to serve or close.
func ExampleSubprotocols() {
	u := cooper.New(cooper.Protocols("websocket"), cooper.Subprotocols("v2.chat", "v1.chat"))
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		fmt.Fprintf(conn, "%q agreed", hs.Subprotocol)
	}))
	defer srv.Close()

	for _, offer := range [][]string{{"v1.chat", "v2.chat"}, {"v3.chat"}} {
		req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		conn, err := cooper.Dial(req, cooper.WithUpgradeOptions(cooper.WithSubprotocols(offer...)))
		if err != nil {
			panic(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		agreed, _ := io.ReadAll(conn) // until the handler closes the connection
		conn.Close()
		fmt.Printf("%q offered: %s\n", offer, agreed)
	}
	// Output:
	// ["v1.chat" "v2.chat"] offered: "v1.chat" agreed
	// ["v3.chat"] offered: "" agreed
}

// An endpoint that relies on no cookie or other ambient credential, here
// one that takes a token in its URL, may let pages on any site connect.
func ExampleInsecureSkipOriginCheck() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket"), cooper.InsecureSkipOriginCheck()))
	defer srv.Close()

	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http")+"/feed?token=s3cr3t", nil)
	req.Header.Set("Origin", "https://anywhere.example")
	conn, err := cooper.Dial(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	conn.Close()
	fmt.Println("upgraded")
	// Output: upgraded
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
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(peer).ReadString('\n')
	fmt.Print(resp.Status, ", then on the stream: ", line)
	// Output: 200 OK, then on the stream: websocket over HTTP/3
}

// ResponseHeaders adds the application's headers to the 101, here a
// cookie and a limit that depends on the agreed protocol. cooper writes
// the 101 itself, in one write, with them after its own in the order of
// their names; this is what the client reads.
func ExampleResponseHeaders() {
	limits := map[string]string{"lines/1": "80", "lines/2": "4096"}
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("lines/1", "lines/2"),
		cooper.ResponseHeaders(func(r *http.Request, proto string) http.Header {
			return http.Header{"Set-Cookie": {"session=42; HttpOnly"}, "X-Line-Limit": {limits[proto]}}
		})))
	defer srv.Close()

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: lines/2\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, _ := io.ReadAll(c) // until the handler closes the connection
	fmt.Print(strings.ReplaceAll(string(answer), "\r\n", "\n"))
	// Output:
	// HTTP/1.1 101 Switching Protocols
	// Upgrade: lines/2
	// Connection: Upgrade
	// Set-Cookie: session=42; HttpOnly
	// X-Line-Limit: 4096
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
	select {
	case rej := <-refusals:
		fmt.Println(rej.Status, rej.Header, errors.Is(rej, cooper.ErrProtocol))
		fmt.Println(rej)
	case <-time.After(5 * time.Second):
		fmt.Println("OnError was not called")
	}
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
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Read(make([]byte, 1))
	fmt.Println("client read:", err)
	select {
	case p := <-panics:
		fmt.Println(p.Value, errors.Is(p, cooper.ErrHandlerPanic), strings.Contains(string(p.Stack), "ExamplePanicError"))
	case <-time.After(5 * time.Second):
		fmt.Println("OnError was not called")
	}
	// Output:
	// client read: EOF
	// out of cheese true true
}

// A server in a reconnect storm sheds the excess early and cheaply. Here
// the rate is one upgrade a minute with no burst, so of two clients that
// come at once the second is refused: it gets 503 Service Unavailable with
// a Retry-After of about a minute, when the bucket holds a token again.
func ExampleUpgradeRate() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket"), cooper.UpgradeRate(1.0/60, 1)))
	defer srv.Close()

	for _, client := range []string{"first", "second"} {
		req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		conn, err := cooper.Dial(req)
		if err != nil {
			fmt.Println(client, "refused:", err)
			continue
		}
		conn.Close()
		fmt.Println(client, "upgraded")
	}
	// Output:
	// first upgraded
	// second refused: cooper: status: "503 Service Unavailable" is not 101 Switching Protocols; body "cooper: UpgradeRate: more upgrades than 0.01667 a second"
}

// MaxConnections keeps the Upgrader's connections under the process's
// open-file limit. Here it holds two; the third client gets 503 Service
// Unavailable with a Retry-After of 5 to 10 seconds.
func ExampleMaxConnections() {
	srv := httptest.NewServer(cooper.Hijack(hold, cooper.Protocols("lines/1"), cooper.MaxConnections(2)))
	defer srv.Close()

	for client := 1; client <= 3; client++ {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		conn, err := cooper.Dial(req, cooper.WithProtocol("lines/1"))
		if err != nil {
			fmt.Println(client, err)
			continue
		}
		defer conn.Close()
		fmt.Println(client, "upgraded")
	}
	// Output:
	// 1 upgraded
	// 2 upgraded
	// 3 cooper: status: "503 Service Unavailable" is not 101 Switching Protocols; body "cooper: MaxConnections: 2 open, the limit"
}

// MaxConnectionsPerClient keeps one client from taking every connection.
// Here a client address may hold one at a time: while the first
// connection is open, a second from the same address gets 429 Too Many
// Requests with a Retry-After of 5 to 10 seconds.
func ExampleMaxConnectionsPerClient() {
	srv := httptest.NewServer(cooper.Hijack(hold, cooper.Protocols("websocket"), cooper.MaxConnectionsPerClient(1)))
	defer srv.Close()

	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	first, err := cooper.Dial(req)
	if err != nil {
		panic(err)
	}
	defer first.Close()
	_, err = cooper.Dial(req)
	fmt.Println(err)
	// Output:
	// cooper: status: "429 Too Many Requests" is not 101 Switching Protocols; body "cooper: MaxConnectionsPerClient: 127.0.0.1 holds 1, the limit"
}

// Behind a reverse proxy every request comes from the proxy's address, so
// MaxConnectionsPerClient counts by the client address the proxy names in
// X-Forwarded-For, from the proxies TrustedProxies lists. Here the client
// on 127.0.0.1 plays the proxy and writes the header as it would: two
// clients behind it are upgraded, and a client that already holds its one
// connection is refused with 429 Too Many Requests, even when it sent an
// X-Forwarded-For of its own (192.0.2.1), which the proxy kept in front of
// the address it saw.
func ExampleTrustedProxies() {
	srv := httptest.NewServer(cooper.Hijack(hold, cooper.Protocols("websocket"),
		cooper.MaxConnectionsPerClient(1), cooper.TrustedProxies("127.0.0.0/8")))
	defer srv.Close()

	for _, forwardedFor := range []string{"203.0.113.7", "198.51.100.9", "192.0.2.1, 203.0.113.7"} {
		req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		req.Header.Set("X-Forwarded-For", forwardedFor)
		conn, err := cooper.Dial(req)
		if err != nil {
			fmt.Printf("%s: %v\n", forwardedFor, err)
			continue
		}
		defer conn.Close()
		fmt.Printf("%s: upgraded\n", forwardedFor)
	}
	// Output:
	// 203.0.113.7: upgraded
	// 198.51.100.9: upgraded
	// 192.0.2.1, 203.0.113.7: cooper: status: "429 Too Many Requests" is not 101 Switching Protocols; body "cooper: MaxConnectionsPerClient: 203.0.113.7 holds 1, the limit"
}

// hold is the handler of the examples above: it keeps its connection
// until the client closes it, as a framing layer's read loop would.
func hold(conn net.Conn, proto string) {
	defer conn.Close()
	io.Copy(io.Discard, conn)
}

// wss to a server whose certificate a private CA signed, here httptest's:
// WithTLSConfig gives Dial the roots that trust it. The server name
// checked is the URL's host, 127.0.0.1, which the certificate names.
func ExampleWithTLSConfig() {
	srv := httptest.NewTLSServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket")))
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	req, _ := http.NewRequest("GET", "wss"+strings.TrimPrefix(srv.URL, "https"), nil)
	conn, err := cooper.Dial(req, cooper.WithTLSConfig(&tls.Config{RootCAs: roots}))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	fmt.Printf("%T\n", conn) // the socket itself, as nothing came after the 101
	// Output: *tls.Conn
}

// WithResponseValidator checks what cooper does not know to: here the
// client needs a server that announces version 2 of the application's
// protocol in a header of the 101, and this one announces 1.
func ExampleWithResponseValidator() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) { conn.Close() },
		cooper.Protocols("websocket"),
		cooper.ResponseHeaders(func(r *http.Request, proto string) http.Header {
			return http.Header{"X-Chat-Version": {"1"}}
		})))
	defer srv.Close()

	errOldServer := errors.New("the server speaks an older chat")
	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	_, err := cooper.Dial(req, cooper.WithUpgradeOptions(
		cooper.WithResponseValidator(func(req *http.Request, resp *http.Response) error {
			if resp.Header.Get("X-Chat-Version") != "2" {
				return errOldServer
			}
			return nil
		})))
	fmt.Println(errors.Is(err, cooper.ErrResponseValidator), errors.Is(err, errOldServer))
	fmt.Println(err)
	// Output:
	// true true
	// cooper: response validator: the server speaks an older chat
}

// Dial through an HTTP proxy, which it asks to CONNECT to the server.
// WithProxy names it; the default, http.ProxyFromEnvironment, reads
// HTTPS_PROXY and HTTP_PROXY and never proxies a loopback address. The
// proxy here is a minimal one on loopback that tunnels every CONNECT.
func ExampleWithProxy() {
	srv := httptest.NewServer(cooper.Hijack(func(conn net.Conn, proto string) {
		defer conn.Close()
		io.WriteString(conn, "hello through the proxy\n")
	}, cooper.Protocols("websocket")))
	defer srv.Close()
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("proxy:", r.Method, r.Host == srv.Listener.Addr().String())
		server, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer server.Close()
		client, buffered, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer client.Close()
		io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n")
		go io.Copy(server, buffered) // ends when the client closes
		io.Copy(client, server)      // ends when the server closes
	}))
	defer proxy.Close()

	proxyURL, _ := url.Parse(proxy.URL)
	req, _ := http.NewRequest("GET", "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	conn, err := cooper.Dial(req, cooper.WithProxy(http.ProxyURL(proxyURL)))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	fmt.Print(line)
	// Output:
	// proxy: CONNECT true
	// hello through the proxy
}
