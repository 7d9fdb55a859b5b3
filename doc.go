// Package cooper coordinates HTTP upgrades: it owns the moment a request
// such as GET /ws with Upgrade: websocket stops being HTTP, decides whether
// it may, answers, and hands the connection and what was agreed to the
// layer that speaks the new protocol (a WebSocket framing library, or your
// own protocol). Reading and writing frames is not cooper's job.
//
// A WebSocket endpoint with a framing layer of your choice:
//
//	http.Handle("/ws", cooper.Hijack(func(conn net.Conn, proto string) {
//		defer conn.Close()
//		// the framing layer takes over conn
//	}, cooper.Protocols("websocket")))
//
// # The pipeline
//
// Every upgrade, whether through [Hijack], [Upgrader.Handler] or
// [Upgrader.Accept], takes the same steps, in this order:
//
//  1. validate the request as RFC 9110, section 7.8 and, for WebSocket,
//     RFC 6455, section 4.2.1 ask, and its Origin (see Security below);
//  2. negotiate the Upgrade protocol, Sec-WebSocket-Accept, the
//     subprotocol ([Subprotocols], [SelectSubprotocol]) and
//     permessage-deflate ([Deflate]);
//  3. ask for the application's response headers ([ResponseHeaders]), and
//     check them;
//  4. admit the connection: refuse it while the [Upgrader] shuts down, at
//     [MaxConnections], past [UpgradeRate] or past
//     [MaxConnectionsPerClient];
//  5. take the connection over with [http.ResponseController], so
//     ResponseWriters wrapped by middleware work;
//  6. answer 101 in one write, bounded by [HandshakeTimeout];
//  7. hand over a net.Conn that first returns any bytes the client sent
//     after its request and net/http had already read, and is the socket
//     itself (*net.TCPConn, *tls.Conn) when there were none, with no
//     deadline left on it.
//
// A request refused by one of the first four steps gets the right status,
// the headers the RFC asks for and a one-line reason ([Upgrader] lists
// them). Nothing is written before the decision, and a refused request is
// answered through the ResponseWriter, never taken over. cooper never logs
// and never panics on input; errors go to [OnError] and to
// [Upgrader.Accept]'s caller.
//
// # Handlers
//
// The handler given to [Hijack] or [Upgrader.Handler] owns the connection
// and must close it. When it runs, the answer has been written, no deadline
// is set, and the first bytes read are those the client sent after its
// request. It runs on a goroutine of its own: ServeHTTP has returned, so an
// idle upgraded connection does not keep net/http's buffers and request
// state. The Upgrader tracks it until it returns, for [Upgrader.Shutdown],
// and the context of [Handshake].Request stays valid until then or until
// Shutdown. If it panics, the connection is closed and the panic is
// reported to [OnError] as [ErrHandlerPanic], unless its value is
// [http.ErrAbortHandler], net/http's way to abort a handler quietly.
//
// Over HTTP/2 the connection is the request's stream, which ends when
// ServeHTTP returns, so there the handler runs inside ServeHTTP (and a
// caller of [Upgrader.Accept] must be done with the connection before its
// ServeHTTP returns). Over HTTP/3 the stream, taken over through a
// [StreamTakeover], outlives ServeHTTP, so the handler runs on a goroutine
// of its own, as over HTTP/1.1.
//
// [Upgrader.Shutdown] refuses new upgrades, cancels the handlers' contexts,
// waits for them and closes what is left, which [http.Server.Shutdown]
// does not do for hijacked connections.
//
// # Limits
//
// cooper bounds what it owns: [HandshakeTimeout] bounds the 101 write, and
// [MaxConnections] the connections held. The request before it is
// net/http's to bound: set [http.Server] ReadHeaderTimeout, so a client that
// sends its headers slowly cannot hold a connection, and MaxHeaderBytes.
// [Upgrader.Stats] reads the counters at any time without locks.
//
// # Fleets
//
// Behind a load balancer, a process that restarts should not send all its
// clients to the others at once. [DrainTime] has [Upgrader.Shutdown] end
// the handlers' contexts one by one, spread over a time, with [ErrShutdown]
// as their cause. The survivors can protect themselves: [UpgradeRate]
// refuses upgrades past a rate with 503, and [MaxConnectionsPerClient]
// refuses a client past its share with 429, counting by the address that
// [TrustedProxies] report. Every refusal is answered before anything is
// taken over, carries a Retry-After spread over whole seconds so refused
// clients do not return together, reaches [OnError], and is counted in
// [Stats].Refusals; [Stats].ShuttingDown and Draining say where a shutdown
// is.
//
// # HTTP/2
//
// Over HTTP/2, a browser opens a WebSocket as an extended CONNECT on a
// stream of the connection it already has (RFC 8441), when the server
// announces it can. The same [Hijack], [Upgrader.Handler] and
// [Upgrader.Accept] serve both protocols with no change to the code:
// cooper validates and negotiates as over HTTP/1.1 (there is no
// Sec-WebSocket-Key), answers 200, and the handler's net.Conn is the stream;
// [Handshake].Request.ProtoMajor is 2 (see Handlers for where the handler
// runs). As net/http implements them, a read or write deadline that passes ends
// the stream. A protocol other than WebSocket opens the same way, as an
// extended CONNECT whose :protocol names it; [Dial] speaks HTTP/1.1 only.
//
// Go's HTTP/2 server announces extended CONNECT only when the process
// starts with it turned on:
//
//	GODEBUG=http2xconnect=1 ./server
//
// Go keeps it off by default (golang.org/issue/71128): a browser that sees
// the announcement opens every WebSocket to that origin over HTTP/2 and does
// not fall back to HTTP/1.1, so a server that turns it on must serve
// WebSockets over HTTP/2 on every WebSocket route, as cooper's handlers do.
// A route served by a library that cannot breaks in browsers. Without it,
// browsers open WebSockets over HTTP/1.1 on a connection of their own, which
// cooper serves too.
//
// # HTTP/3
//
// Over HTTP/3 a WebSocket is an extended CONNECT on a stream of a QUIC
// connection (RFC 9220), answered as over HTTP/2. net/http does not serve
// HTTP/3, so the transport's adapter takes the stream over for cooper
// through a [StreamTakeover]; lowbit.dev/cooper/adapters/cooperh3 does so
// for github.com/quic-go/quic-go's HTTP/3 server. The same [Upgrader] then
// serves all three versions; [Handshake].Request.ProtoMajor is 3.
//
// # Client
//
// [Dial] is the other half: it connects (through an HTTP proxy, with TLS
// for wss and https), sends the upgrade request and checks the answer as
// strictly as the server checks requests, down to each permessage-deflate
// parameter ([WithDeflate]) and the subprotocol ([WithSubprotocols]).
// [Upgrade] does the same over a connection you already have. The
// request's context bounds both. The connection returned first replays
// any bytes the server sent right after its 101, and [WithHandshake]
// reports what was agreed:
//
//	req, _ := http.NewRequestWithContext(ctx, "GET", "wss://example.com/ws", nil)
//	var hs cooper.Handshake
//	conn, err := cooper.Dial(req, cooper.WithProtocol("websocket"),
//		cooper.WithUpgradeOptions(cooper.WithSubprotocols("v1.chat"), cooper.WithHandshake(&hs)))
//
// Every error names the header that was wrong and matches a sentinel such
// as [ErrAcceptMismatch] with [errors.Is].
//
// # Security
//
// A browser sends cookies with a WebSocket request to any site, so a page
// elsewhere could act as its visitor (cross-site WebSocket hijacking). cooper
// refuses a request whose Origin is not the request's own host with 403
// unless [OriginPatterns] allows that origin, or [InsecureSkipOriginCheck]
// turns the check off, or a [CheckOrigin] function decides instead, alone.
// Requests without Origin (non-browser clients) pass by default.
// The check compares Origin with the Host cooper receives, so a reverse
// proxy must pass the client's Host through, port included (nginx:
// proxy_set_header Host $http_host, as $host drops the port).
//
// Values from [ResponseHeaders] cannot split the 101 or change the headers
// cooper writes, and a request that declares a body is refused, so no byte
// of it reaches the handler as protocol data.
package cooper
