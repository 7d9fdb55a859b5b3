// Package page is the browser page the echo examples serve at /: it opens
// a WebSocket to /ws on its own origin, sends a message and shows the
// echo, the subprotocol and the extensions in elements with the ids
// status, echo, protocol and extensions.
package page

import (
	_ "embed"
	"net/http"
)

//go:embed index.html
var html []byte

// Serve writes the page.
func Serve(w http.ResponseWriter, _ *http.Request) { Write(w, html) }

// Write writes b to w as an HTML page: the examples' pages, this one and
// examples/chat's.
func Write(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b)
}
