// Package interop tests cooper against software its team did not write:
// HTTP/2 clients that open WebSockets with extended CONNECT, WebSocket
// clients and servers in Go and Node.js, browsers and reverse proxies. It
// has no code of its own beyond its tests.
package interop
