package guide

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/gobwas/ws"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/adapters/coopergobwas"
)

var u = cooper.New(
	cooper.Protocols("websocket"),
	cooper.Subprotocols("chat.v2", "chat.v1"), // the client's order of preference decides
	cooper.Deflate(coopergobwas.Deflate()),
	cooper.CheckOrigin(func(r *http.Request) bool {
		return r.Header.Get("Origin") == "https://app.example"
	}),
	cooper.RefusalHandler(func(w http.ResponseWriter, r *http.Request, err *cooper.UpgradeError) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(err.Status)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
	}),
)

var serveCooper = u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
	c := coopergobwas.NewConn(conn, hs)
	defer c.Close()
	stop := context.AfterFunc(hs.Request.Context(), func() { // the server is shutting down
		c.CloseWith(ws.StatusGoingAway, "server shutting down")
	})
	defer stop()
	c.SetReadLimit(512)
	for {
		op, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(op, msg); err != nil {
			return
		}
	}
})

func serveAccept(w http.ResponseWriter, r *http.Request) {
	conn, hs, err := u.Accept(w, r)
	if err != nil {
		return // u has answered
	}
	c := coopergobwas.NewConn(conn, hs)
	defer c.Close()
	for {
		op, msg, err := c.ReadMessage()
		if err != nil || c.WriteMessage(op, msg) != nil {
			return
		}
	}
}

// serverOrder agrees, as gorilla and coder do, on the first of ours that
// the client offers, whatever the client prefers.
func serverOrder(ours ...string) cooper.Option {
	return cooper.SelectSubprotocol(func(r *http.Request, offered []string) string {
		for _, s := range ours {
			if slices.Contains(offered, s) {
				return s
			}
		}
		return ""
	})
}

func shutdown(srv *http.Server) error {
	grace, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return u.ShutdownServer(grace, srv) // returns once every handler has said goodbye
}
