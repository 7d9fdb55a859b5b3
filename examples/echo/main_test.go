package main

import (
	"net/http"
	"testing"

	"lowbit.dev/cooper/examples/internal/wstest"
)

func TestMain(m *testing.M) { wstest.Main(m) }

// TestEcho runs the echo examples' checks, and checks that the example
// writes nothing but its listening line.
func TestEcho(t *testing.T) { wstest.CheckEchoExample(t, run, false, wstest.OnlyListening) }

// TestPage checks that / serves the page, which opens its WebSocket on the
// same origin and shows what a browser test reads.
func TestPage(t *testing.T) {
	e := wstest.Start(t, run)
	wstest.CheckPage(t, e, `id="status"`, `id="echo"`, `id="protocol"`, `id="extensions"`, `"/ws", ["echo.v1"]`)
	if resp, err := http.Get(e.URL + "/other"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other = %v, %v; want 404", resp.Status, err)
	} else {
		resp.Body.Close()
	}
}

// TestRefusals checks that requests that are not same-origin WebSocket
// upgrades get cooper's refusals.
func TestRefusals(t *testing.T) {
	e := wstest.Start(t, run)
	for _, tt := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"a plain GET", nil, http.StatusUpgradeRequired},
		{"a page on another site", http.Header{
			"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Origin": {"https://elsewhere.example"},
		}, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.URL+"/ws", nil)
			req.Header = tt.header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status = %s, want %d", resp.Status, tt.want)
			}
		})
	}
}
