package main

import (
	_ "embed"
	"net/http"
)

// page is the chat room's browser page. It opens a WebSocket to /ws on its
// own origin, shows each line that arrives as an element of #log, sends
// what is typed in #msg, and shows the connection's state in #status:
// "connecting", "open", or "closed CODE" with the close code.
//
//go:embed page.html
var page []byte

// servePage writes the page.
func servePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(page)
}
