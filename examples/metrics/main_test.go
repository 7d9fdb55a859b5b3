package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/wstest"
	"lowbit.dev/cooper/internal/poll"
)

func TestMain(m *testing.M) { wstest.Main(m) }

// TestMetrics upgrades and echoes with gorilla/websocket, has a request
// refused, and scrapes /metrics: the upgrade and the refusal, by its
// reason, are counted, every reason is there at 0 before its first
// refusal, and the server is neither shutting down nor draining.
func TestMetrics(t *testing.T) {
	e := wstest.Start(t, run)
	wstest.CheckEcho(t, e.WS("/ws"), true, "")
	resp, err := http.Get(e.URL + "/ws") // not an upgrade: 426
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("GET /ws = %s, want 426", resp.Status)
	}

	want := expected(0, 1, map[string]int{"not_upgrade": 1}, false, false)
	deadline := time.Now().Add(5 * time.Second) // until the echo's handler has returned
	for {
		err := testutil.ScrapeAndCompare(e.URL+"/metrics", strings.NewReader(want), metricNames...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Count(e.Out.String(), "\n") != 1 {
		t.Errorf("output %q, want the one listening line", e.Out.String())
	}
}

// TestMetricsDraining scrapes the collector while an Upgrader drains two
// connections over an hour: it is shutting down and draining, with both
// connections still held; once Shutdown has given up and closed them, it
// is no longer draining and holds none.
func TestMetricsDraining(t *testing.T) {
	u := cooper.New(cooper.Protocols("lines/1"), cooper.DrainTime(time.Hour))
	srv := httptest.NewServer(u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		io.Copy(io.Discard, conn) // until Shutdown closes it
	}))
	defer srv.Close()
	for range 2 {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: lines/1\r\n\r\n", srv.Listener.Addr())
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 512)); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	shutdown := make(chan error, 1)
	go func() { shutdown <- u.Shutdown(ctx) }()
	poll.Until(t, 5*time.Second, "the Upgrader to start draining", func() bool { return u.Stats().Draining })
	c := statsCollector{u}
	if err := testutil.CollectAndCompare(c, strings.NewReader(expected(2, 2, nil, true, true)), metricNames...); err != nil {
		t.Error(err)
	}
	cancel()
	if err := <-shutdown; err != context.Canceled {
		t.Errorf("Shutdown = %v, want context.Canceled", err)
	}
	// Shutdown closed the connections; their handlers return.
	poll.Until(t, 5*time.Second, "the handlers to return after Shutdown closed their connections", func() bool { return u.Stats().Active == 0 })
	if err := testutil.CollectAndCompare(c, strings.NewReader(expected(0, 2, nil, true, false)), metricNames...); err != nil {
		t.Error(err)
	}
}

// metricNames are the series the tests compare.
var metricNames = []string{
	"cooper_active_connections", "cooper_upgrades_total", "cooper_upgrade_failures_total",
	"cooper_handler_panics_total", "cooper_refusals_total", "cooper_shutting_down", "cooper_draining",
}

// expected returns the exposition of an Upgrader's metrics, every refusal
// reason at 0 but those in refusals.
func expected(active, upgrades int, refusals map[string]int, shuttingDown, draining bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# HELP cooper_active_connections Connections the Upgrader holds: being upgraded, or handed over with their handler running.
# TYPE cooper_active_connections gauge
cooper_active_connections %d
# HELP cooper_upgrades_total Connections handed over.
# TYPE cooper_upgrades_total counter
cooper_upgrades_total %d
# HELP cooper_upgrade_failures_total Upgrades that failed after the request was accepted, writing the 101.
# TYPE cooper_upgrade_failures_total counter
cooper_upgrade_failures_total 0
# HELP cooper_handler_panics_total Handlers that panicked.
# TYPE cooper_handler_panics_total counter
cooper_handler_panics_total 0
# HELP cooper_refusals_total Upgrade requests refused, by reason.
# TYPE cooper_refusals_total counter
`, active, upgrades)
	for _, r := range refusalReasons {
		fmt.Fprintf(&b, "cooper_refusals_total{reason=%q} %d\n", r.reason, refusals[r.reason])
	}
	fmt.Fprintf(&b, `# HELP cooper_shutting_down 1 once Shutdown has been called: new upgrades are refused.
# TYPE cooper_shutting_down gauge
cooper_shutting_down %d
# HELP cooper_draining 1 while Shutdown ends the handlers' contexts one by one over DrainTime.
# TYPE cooper_draining gauge
cooper_draining %d
`, int(gauge(shuttingDown)), int(gauge(draining)))
	return b.String()
}

// TestEcho runs the echo examples' checks: the echo of examples/echo, and
// a stopped server says goodbye with 1001 to every WebSocket and returns
// nil.
func TestEcho(t *testing.T) { wstest.CheckEchoExample(t, run, false, wstest.OnlyListening) }
