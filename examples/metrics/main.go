// Metrics serves the WebSocket echo of examples/echo at /ws and exports
// the Upgrader's Stats as Prometheus metrics at /metrics: what a fleet of
// such servers is watched by.
//
//	go run ./examples/metrics [-addr 127.0.0.1:8080] [-drain 2s] [-rate N -burst N] [-per-client N]
//
// On SIGINT or SIGTERM it drains: the WebSockets are told goodbye one by
// one over -drain, while /metrics says so. -rate (upgrades a second, with
// bursts of -burst) and -per-client (connections per client address) turn
// cooper's admission control on; refusals are counted by reason.
package main

import (
	"context"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"lowbit.dev/cooper"
	"lowbit.dev/cooper/examples/internal/serve"
	"lowbit.dev/cooper/examples/internal/wsecho"
)

func main() {
	var c config
	flag.DurationVar(&c.drain, "drain", 2*time.Second, "spread the goodbyes of a shutdown over `time`")
	flag.Float64Var(&c.rate, "rate", 0, "admit at most `n` upgrades a second (0: no limit)")
	flag.IntVar(&c.burst, "burst", 1, "with -rate, admit up to `n` upgrades at once")
	flag.IntVar(&c.perClient, "per-client", 0, "hold at most `n` connections per client address (0: no limit)")
	serve.Main(c.run) // c.run sees the flags: Main parses them before it calls c.run
}

// A config is what the flags set.
type config struct {
	drain     time.Duration
	rate      float64
	burst     int
	perClient int
}

// run serves as the flags' defaults say; see config.run.
func run(ctx context.Context, addr string, out io.Writer) error {
	return (&config{drain: 2 * time.Second}).run(ctx, addr, out)
}

// run serves the echo and /metrics on addr until ctx is done, as
// serve.Run says, but spreads the goodbyes over c.drain and waits for
// them c.drain and 3 s more at most.
func (c *config) run(ctx context.Context, addr string, out io.Writer) error {
	opts := wsecho.Options(cooper.DrainTime(c.drain)) // examples/echo's, and a drain
	if c.rate > 0 {
		opts = append(opts, cooper.UpgradeRate(c.rate, c.burst))
	}
	if c.perClient > 0 {
		opts = append(opts, cooper.MaxConnectionsPerClient(c.perClient))
	}
	u := cooper.New(opts...)
	reg := prometheus.NewRegistry()
	reg.MustRegister(statsCollector{u}, collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/ws", u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		if err := wsecho.Serve(conn, hs, ""); err != nil {
			log.Printf("%s: %v", conn.RemoteAddr(), err)
		}
	}))

	return serve.Server{Upgrader: u, Handler: mux, Grace: c.drain + 3*time.Second}.ListenAndServe(ctx, addr, out)
}

// A statsCollector exports an Upgrader's Stats, read once per scrape:
// Stats takes no lock the upgrades take, so scraping does not slow them.
type statsCollector struct{ u *cooper.Upgrader }

// The metrics, prefixed cooper_ as Prometheus names them by their source.
var (
	activeDesc = prometheus.NewDesc("cooper_active_connections",
		"Connections the Upgrader holds: being upgraded, or handed over with their handler running.", nil, nil)
	upgradesDesc = prometheus.NewDesc("cooper_upgrades_total",
		"Connections handed over.", nil, nil)
	failuresDesc = prometheus.NewDesc("cooper_upgrade_failures_total",
		"Upgrades that failed after the request was accepted, writing the 101.", nil, nil)
	panicsDesc = prometheus.NewDesc("cooper_handler_panics_total",
		"Handlers that panicked.", nil, nil)
	refusalsDesc = prometheus.NewDesc("cooper_refusals_total",
		"Upgrade requests refused, by reason.", []string{"reason"}, nil)
	shuttingDownDesc = prometheus.NewDesc("cooper_shutting_down",
		"1 once Shutdown has been called: new upgrades are refused.", nil, nil)
	drainingDesc = prometheus.NewDesc("cooper_draining",
		"1 while Shutdown ends the handlers' contexts one by one over DrainTime.", nil, nil)
)

// refusalReasons names the reason label of each refusal cooper counts, so
// that every series exists, at 0, before its first refusal.
var refusalReasons = []struct {
	err    error
	reason string
}{
	{cooper.ErrMethod, "method"},
	{cooper.ErrHTTPVersion, "http_version"},
	{cooper.ErrRequestBody, "request_body"},
	{cooper.ErrNotUpgrade, "not_upgrade"},
	{cooper.ErrProtocol, "protocol"},
	{cooper.ErrMalformedHeader, "malformed_header"},
	{cooper.ErrWebSocketKey, "websocket_key"},
	{cooper.ErrWebSocketVersion, "websocket_version"},
	{cooper.ErrOrigin, "origin"},
	{cooper.ErrShutdown, "shutdown"},
	{cooper.ErrTooManyConnections, "too_many_connections"},
	{cooper.ErrUpgradeRate, "upgrade_rate"},
	{cooper.ErrTooManyClientConnections, "too_many_client_connections"},
	{cooper.ErrResponseHeader, "response_header"},
	{cooper.ErrHijackFailed, "hijack_failed"},
}

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{activeDesc, upgradesDesc, failuresDesc, panicsDesc, refusalsDesc, shuttingDownDesc, drainingDesc} {
		ch <- d
	}
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.u.Stats()
	ch <- prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(s.Active))
	ch <- prometheus.MustNewConstMetric(upgradesDesc, prometheus.CounterValue, float64(s.Upgrades))
	ch <- prometheus.MustNewConstMetric(failuresDesc, prometheus.CounterValue, float64(s.Failures))
	ch <- prometheus.MustNewConstMetric(panicsDesc, prometheus.CounterValue, float64(s.Panics))
	for _, r := range refusalReasons {
		ch <- prometheus.MustNewConstMetric(refusalsDesc, prometheus.CounterValue, float64(s.Refusals[r.err]), r.reason)
		delete(s.Refusals, r.err)
	}
	for err, n := range s.Refusals { // a sentinel newer than this list
		reason := strings.ReplaceAll(strings.TrimPrefix(err.Error(), "cooper: "), " ", "_")
		ch <- prometheus.MustNewConstMetric(refusalsDesc, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(shuttingDownDesc, prometheus.GaugeValue, gauge(s.ShuttingDown))
	ch <- prometheus.MustNewConstMetric(drainingDesc, prometheus.GaugeValue, gauge(s.Draining))
}

// gauge is 1 for true and 0 for false, as Prometheus gauges say yes and no.
func gauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
