package guide

import (
	"encoding/json"
	"net/http"

	"github.com/gorilla/websocket"
)

var upgrader = websocket.Upgrader{
	Subprotocols:      []string{"chat.v2", "chat.v1"},
	EnableCompression: true,
	CheckOrigin: func(r *http.Request) bool {
		return r.Header.Get("Origin") == "https://app.example"
	},
	Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": reason.Error()})
	},
}

func serveGorilla(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // upgrader.Error has answered
	}
	defer conn.Close()
	conn.SetReadLimit(512)
	for {
		op, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := conn.WriteMessage(op, msg); err != nil {
			return
		}
	}
}
