package testkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"lowbit.dev/cooper"
)

// A Server is a loopback httptest server whose upgrades go through U, with
// what U reported to OnError (see [Server.NextErr]) and what net/http
// logged.
type Server struct {
	URL      string
	U        *cooper.Upgrader
	ErrorLog *LockedBuffer // http.Server.ErrorLog

	errs chan error // what U told OnError, the first 64
}

// Serve builds U from opts, plus Protocols("websocket") and an OnError
// that collects errors for NextErr, and serves what handler makes of it on a
// loopback server. When the test ends it closes the server, shuts U down
// (within 5 s) and fails the test if either did not go cleanly or
// net/http logged anything.
func Serve(t testing.TB, opts []cooper.Option, handler func(u *cooper.Upgrader) http.Handler) *Server {
	t.Helper()
	s := &Server{ErrorLog: &LockedBuffer{}, errs: make(chan error, 64)}
	opts = append(opts[:len(opts):len(opts)], cooper.Protocols("websocket"), cooper.OnError(func(err error) {
		select {
		case s.errs <- err:
		default:
		}
	}))
	s.U = cooper.New(opts...)
	srv := httptest.NewUnstartedServer(handler(s.U))
	srv.Config.ErrorLog = log.New(s.ErrorLog, "", 0)
	srv.Start()
	s.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.U.Shutdown(ctx); err != nil {
			t.Errorf("Upgrader.Shutdown: %v", err)
		}
		if msg := s.ErrorLog.String(); msg != "" {
			t.Errorf("http.Server logged:\n%s", msg)
		}
	})
	return s
}

// NextErr returns the next error U reported, waiting up to 5 s.
func (s *Server) NextErr(t testing.TB) error {
	t.Helper()
	return Recv(t, s.errs)
}

// CheckRequestStateOutlives checks that a router's pooled per-request
// state stays with an upgraded handler that outlives its request. The
// router at url must upgrade /rooms/{room}/ws with a handler that waits
// for release to be called and then writes one line, want(room number),
// and must answer GET /rooms/{room}/info with the room's name. The check
// upgrades rooms rooms at once and, while their handlers wait, sends 400
// other requests from 8 goroutines, enough for the router to reuse every
// request state it pooled; then it calls release and reads each room's
// line.
func CheckRequestStateOutlives(t *testing.T, url string, rooms int, release func(), want func(room int) string) {
	t.Helper()
	clients := make([]*Client, rooms)
	for i := range clients {
		clients[i] = Dial(t, fmt.Sprintf("%s/rooms/r%d/ws", url, i), nil)
		if clients[i].Resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("room %d: status = %s, want 101", i, clients[i].Resp.Status)
		}
	}

	var churn sync.WaitGroup
	for w := range 8 {
		churn.Go(func() {
			for i := range 50 {
				room := fmt.Sprintf("other-%d-%d", w, i)
				resp, err := http.Get(url + "/rooms/" + room + "/info")
				if err != nil {
					t.Error(err)
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(body) != room {
					t.Errorf("GET /rooms/%s/info = %q, %v; want %[1]q", room, body, err)
				}
			}
		})
	}
	churn.Wait()
	http.DefaultClient.CloseIdleConnections()
	release()

	for i, c := range clients {
		line, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatalf("room %d: %v", i, err)
		}
		if line != want(i) {
			t.Errorf("room %d: handler read %q, want %q", i, line, want(i))
		}
	}
}

// CheckHandlerPanic checks that a panic in an upgraded handler closes that
// connection and reaches OnError as cooper.ErrHandlerPanic, and that the
// server goes on serving. The server must upgrade /panic with a handler
// that panics and /ws with one that echoes.
func (s *Server) CheckHandlerPanic(t *testing.T) {
	t.Helper()
	c := Dial(t, s.URL+"/panic", nil)
	if c.Resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status = %s, want 101", c.Resp.Status)
	}
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("Read after the panic = %d, %v; want the connection closed", n, err)
	}
	if err := s.NextErr(t); !errors.Is(err, cooper.ErrHandlerPanic) {
		t.Errorf("OnError got %v, want ErrHandlerPanic", err)
	}
	Dial(t, s.URL+"/ws", nil).Echoes(t, "still serving")
}
