package main

import (
	_ "embed"
	"net/http"

	"lowbit.dev/cooper/examples/internal/page"
)

// pageHTML is the chat room's browser page. It opens a WebSocket to /ws on
// its own origin, shows each line that arrives as an element of #log, sends
// what is typed in #msg, and shows the connection's state in #status:
// "connecting", "open", or "closed CODE" with the close code.
//
//go:embed page.html
var pageHTML []byte

// servePage writes the page.
func servePage(w http.ResponseWriter, _ *http.Request) { page.Write(w, pageHTML) }
