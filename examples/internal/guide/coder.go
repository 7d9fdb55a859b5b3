package guide

import (
	"net/http"

	"github.com/coder/websocket"
)

func serveCoder(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    []string{"chat.v2", "chat.v1"},
		OriginPatterns:  []string{"app.example"},
		CompressionMode: websocket.CompressionContextTakeover,
	})
	if err != nil {
		return // Accept has answered
	}
	defer c.CloseNow()
	c.SetReadLimit(512)
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, msg); err != nil {
			return
		}
	}
}
