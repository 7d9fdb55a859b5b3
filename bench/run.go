package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A config says what one run measures.
type config struct {
	rounds      int      // interleaved rounds
	clients     []int    // numbers of concurrent clients
	handshakes  int      // handshakes per server, number of clients and round
	warmup      int      // handshakes before measuring, per server and round
	idle        int      // idle connections per server and round; 0 skips
	ramp        bool     // ramp to the open-file limit
	rampMax     int      // stop a ramp there; 0: at the limit
	servers     []string // compared in rounds; bare TCP takes part in the idle measurement only
	rampServers []string
	cpuProfile  string // write the server processes' CPU profiles here
	memProfile  string // write the server processes' allocation profiles here
	command     string // the command line, for the notes
}

// results holds what a run measured.
type results struct {
	cfg     config
	hs      map[string]map[int][]hsSample // server, clients: one sample a round
	idle    map[string][]idleSample       // server: one sample a round
	ramp    map[string]rampSample
	answers map[string]string // server: its 101's Sec-WebSocket-Extensions
	elapsed time.Duration
}

// run measures what cfg asks for, logging its progress to logw. Every
// server process it starts is gone when it returns, and so when ctx is
// cancelled.
func run(ctx context.Context, cfg config, logw io.Writer) (*results, error) {
	ps := &procSet{}
	defer ps.killAll()
	defer context.AfterFunc(ctx, ps.killAll)()

	if limit := fileLimit(); cfg.idle > limit-2*rampMargin {
		return nil, fmt.Errorf("-idle %d does not fit the open-file limit %d; -ramp goes as far as it allows", cfg.idle, limit)
	}
	res := &results{
		cfg:     cfg,
		hs:      make(map[string]map[int][]hsSample),
		idle:    make(map[string][]idleSample),
		ramp:    make(map[string]rampSample),
		answers: make(map[string]string),
	}
	start := time.Now()
	for r := range cfg.rounds {
		for _, name := range rotate(cfg.servers, r) {
			k, _ := kindByName(name)
			if k.websocket && cfg.handshakes > 0 && len(cfg.clients) > 0 {
				if err := handshakeRound(ctx, ps, cfg, res, k, r, logw); err != nil {
					return nil, err
				}
			}
			if cfg.idle > 0 {
				s, err := inFreshProcess(ps, k, func(p *proc) (idleSample, error) {
					return measureIdle(ctx, p, k.websocket, cfg.idle)
				})
				if err != nil {
					return nil, err
				}
				res.idle[name] = append(res.idle[name], s)
				fmt.Fprintf(logw, "round %d/%d %-10s idle: %d connections, %.0f B each, %.2f goroutines each\n",
					r+1, cfg.rounds, name, s.conns, s.perConn, s.goroutines)
			}
		}
	}
	if cfg.ramp {
		for _, name := range cfg.rampServers {
			k, _ := kindByName(name)
			s, err := inFreshProcess(ps, k, func(p *proc) (rampSample, error) {
				return measureRamp(ctx, p, k.websocket, cfg.rampMax)
			})
			if err != nil {
				return nil, err
			}
			res.ramp[name] = s
			fmt.Fprintf(logw, "ramp %-10s %d connections at %.0f/s, %.0f B each; stopped by %s\n",
				name, s.conns, s.rate, s.perConn, s.stoppedBy)
		}
	}
	res.elapsed = time.Since(start)
	return res, nil
}

// rotate returns names rotated left by r, so that in round r every server
// runs once and each one goes first in turn.
func rotate(names []string, r int) []string {
	if len(names) == 0 {
		return nil
	}
	r %= len(names)
	return append(slices.Clone(names[r:]), names[:r]...)
}

// handshakeRound starts server k, checks its answer, warms it up and
// measures its handshakes at every number of clients.
func handshakeRound(ctx context.Context, ps *procSet, cfg config, res *results, k serverKind, r int, logw io.Writer) error {
	var env []string
	single := cfg.rounds == 1 && countWebSocket(cfg.servers) == 1
	if cfg.cpuProfile != "" {
		env = append(env, cpuProfileEnv+"="+profilePath(cfg.cpuProfile, k.name, r, single))
	}
	if cfg.memProfile != "" {
		env = append(env, memProfileEnv+"="+profilePath(cfg.memProfile, k.name, r, single))
	}
	p, err := ps.start(k.name, env...)
	if err != nil {
		return err
	}
	defer p.kill()
	_, head, err := newClient(&dialer{raddr: p.addr}).handshake(false)
	if err != nil {
		return fmt.Errorf("%s: first handshake: %w", k.name, err)
	}
	res.answers[k.name] = headerValue(head, "Sec-WebSocket-Extensions")
	if cfg.warmup > 0 {
		if _, _, err := load(ctx, p.addr, slices.Max(cfg.clients), cfg.warmup); err != nil {
			return fmt.Errorf("%s: warm-up: %w", k.name, err)
		}
	}
	if res.hs[k.name] == nil {
		res.hs[k.name] = make(map[int][]hsSample)
	}
	for _, c := range cfg.clients {
		s, err := measureHandshakes(ctx, p, c, cfg.handshakes)
		if err != nil {
			return err
		}
		res.hs[k.name][c] = append(res.hs[k.name][c], s)
		fmt.Fprintf(logw, "round %d/%d %-10s %2d clients: %6.0f handshakes/s, p50 %v, p99 %v, server %.1f µs CPU, %.1f allocs, %.0f B per handshake\n",
			r+1, cfg.rounds, k.name, c, s.rate, s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond), s.cpu/1e3, s.allocs, s.bytes)
	}
	return p.stop()
}

// inFreshProcess starts server k in a fresh process, measures it with
// measure and stops it: measureIdle and measureRamp each want a server
// that nothing has run on before.
func inFreshProcess[S any](ps *procSet, k serverKind, measure func(p *proc) (S, error)) (S, error) {
	var none S
	p, err := ps.start(k.name)
	if err != nil {
		return none, err
	}
	defer p.kill()
	s, err := measure(p)
	if err != nil {
		return none, err
	}
	return s, p.stop()
}

// countWebSocket counts the servers in names that upgrade.
func countWebSocket(names []string) int {
	n := 0
	for _, name := range names {
		if k, _ := kindByName(name); k.websocket {
			n++
		}
	}
	return n
}

// profilePath is where the profile of server in round r goes: path itself
// for a single server in a single round, else path with "-server-rN"
// before its extension.
func profilePath(path, server string, r int, single bool) string {
	if single {
		return path
	}
	ext := filepath.Ext(path)
	return fmt.Sprintf("%s-%s-r%d%s", strings.TrimSuffix(path, ext), server, r+1, ext)
}
