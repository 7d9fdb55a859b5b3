// Command bench measures cooper side by side with a bare net/http floor and
// the Go WebSocket libraries, and prints the results as markdown tables.
//
// Run it from the repository root:
//
//	go run ./bench                  # the full measurement, several minutes
//	go run ./bench -rounds 5        # the same with five rounds
//	go run ./bench -quick           # tiny counts, a few seconds: does it work?
//
// # What it measures
//
// Each server upgrades a browser's WebSocket request (subprotocol "chat"
// and a permessage-deflate offer, both negotiated), echoes one 16-byte
// message, and waits until the client goes away. The servers are:
//
//   - floor: net/http, the checks RFC 6455 requires, ResponseController's
//     Hijack and a fixed 101 with a computed Accept; the least a correct
//     upgrade on net/http can cost;
//   - cooper: this repository's Hijack, whose handler gets the connection
//     and the protocol;
//   - cooper-handler: its Upgrader.Handler, whose handler also gets the
//     Handshake (subprotocol, deflate parameters, the request);
//   - gorilla, coder, gobwas (HTTPUpgrader), gws: the libraries, each
//     through its own API with write compression off or not reached;
//   - gobwas-raw: gobwas/ws's Upgrader reading the request off the
//     connection without net/http, a reference from outside net/http;
//   - bare: a TCP listener with a goroutine in Read per connection (after
//     a one-byte greeting that tells the client it was accepted), the
//     baseline for idle memory; it takes no handshakes.
//
// For each server, in rounds that run every server once in an order that
// rotates, it measures:
//
//  1. handshake throughput and p50/p99 latency (connect to echo) at each
//     number of concurrent clients (-clients);
//  2. server CPU time (user + system, getrusage) per handshake;
//  3. server allocations and bytes allocated per handshake
//     (runtime.MemStats);
//  4. memory per idle upgraded connection: heap plus goroutine stacks after
//     two GCs, goroutine count settled, -idle connections open;
//
// and, after the rounds, once per -ramp-servers server:
//
//  5. a ramp to the open-file limit: as many idle connections as both
//     processes' limits allow, the rate they were set up at, memory per
//     connection and what a million would take at that rate.
//
// The table gives the median across rounds, the range (min–max), and the
// ratio to the floor (median of the per-round ratios); the notes under it
// give the machine, the command and how each server is set up.
//
// # Flags
//
//	-rounds N          interleaved rounds (5)
//	-clients 1,16,64   numbers of concurrent clients for the handshakes
//	-handshakes N      handshakes per server, number of clients and round (5000)
//	-warmup N          handshakes before measuring, per server and round (500)
//	-idle N            idle connections per server and round (10000; 0 skips)
//	-ramp=false        skip the ramp to the open-file limit
//	-ramp-max N        stop each ramp at N connections (0: at the limit)
//	-ramp-servers list servers to ramp (bare,cooper)
//	-servers list      servers to compare (all, the floor first)
//	-quick             tiny counts, a few seconds; flags given explicitly win
//	-cpuprofile file   CPU profiles of the handshake server processes
//	-memprofile file   allocation profiles of the same
//	-timeout d         stop everything after d (1h)
//
// # How
//
// Every server runs in a process of its own: the bench binary re-executed
// with COOPER_BENCH_SERVER naming the server, which listens on 127.0.0.1
// and reports its counters (CPU time, MemStats, goroutines, open files) on
// request over its standard input and output. A server process is started
// afresh for each round's handshakes and for each idle measurement, so one
// measurement's garbage, goroutines and pools do not skew the next. The
// client side is one hand-written client, the same for every server: raw
// TCP, Chromium's request bytes, a strict check of the 101 and of the echo,
// and a close with a reset (SetLinger(0)) so no port is left in TIME_WAIT.
// When 127.0.0.1 runs out of ephemeral ports it dials from other addresses
// of 127.0.0.0/8.
//
// Everything is bounded: each handshake has a deadline, each command to a
// server process a timeout, the run as a whole -timeout. Server processes
// exit when the harness closes their standard input, are killed on
// failure, on interrupt and when the run ends, and on Linux the kernel
// kills them if the harness dies.
//
// # Profiles
//
// -cpuprofile and -memprofile make each server process of the handshake
// measurement write a profile of its whole life (start, warm-up and all
// numbers of clients; not the idle or ramp processes). With one server
// and one round the file is the path given; otherwise each process writes
// path-<server>-r<round>.<ext>. To see what cooper spends beyond the floor:
//
//	go run ./bench -servers floor,cooper -rounds 1 -idle 0 -ramp=false -cpuprofile cpu.pprof
//	go tool pprof -top cpu-cooper-r1.pprof
//	go tool pprof -peek 'cooper\.' cpu-cooper-r1.pprof
//	go tool pprof -top -diff_base cpu-floor-r1.pprof cpu-cooper-r1.pprof
//
// -memprofile records every allocation (runtime.MemProfileRate = 1), which
// slows the server; use its numbers of allocations, not its timings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if kind := os.Getenv(serverEnv); kind != "" {
		if err := runServer(kind); err != nil {
			fmt.Fprintln(os.Stderr, "bench server:", err)
			os.Exit(1)
		}
		return
	}
	cfg, timeout, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		cancel()
		os.Exit(1)
	}
	report(os.Stdout, res)
}

// allServers is the default list of servers, the floor first.
const allServers = "floor,cooper,cooper-handler,gorilla,coder,gobwas,gobwas-raw,gws,bare"

// parseFlags reads the command line into a config and the run's time limit.
func parseFlags(fs *flag.FlagSet, args []string) (config, time.Duration, error) {
	var cfg config
	fs.IntVar(&cfg.rounds, "rounds", 5, "interleaved `rounds`; each runs every server once")
	clients := fs.String("clients", "1,16,64", "comma-separated `numbers` of concurrent clients")
	fs.IntVar(&cfg.handshakes, "handshakes", 5000, "handshakes per server, number of clients and round")
	fs.IntVar(&cfg.warmup, "warmup", 500, "handshakes before measuring, per server and round")
	fs.IntVar(&cfg.idle, "idle", 10000, "idle connections per server and round; 0 skips the idle measurement")
	fs.BoolVar(&cfg.ramp, "ramp", true, "ramp to the open-file limit after the rounds")
	fs.IntVar(&cfg.rampMax, "ramp-max", 0, "stop a ramp at this many `connections`; 0: at the open-file limit")
	servers := fs.String("servers", allServers, "comma-separated servers to compare")
	rampServers := fs.String("ramp-servers", "bare,cooper", "comma-separated servers to ramp")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write the handshake server processes' CPU profiles to `file`")
	fs.StringVar(&cfg.memProfile, "memprofile", "", "write the handshake server processes' allocation profiles to `file`")
	quick := fs.Bool("quick", false, "tiny counts, a few seconds: check that the harness works (explicit flags win)")
	timeout := fs.Duration("timeout", time.Hour, "stop the run, and every server, after this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./bench [flags]\n\nMeasures cooper, a net/http floor and the Go WebSocket libraries side by side; prints markdown.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, 0, err
	}
	if fs.NArg() > 0 {
		return cfg, 0, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quick {
		set := make(map[string]bool)
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quickDefaults := []struct {
			name string
			set  func()
		}{
			{"rounds", func() { cfg.rounds = 2 }},
			{"clients", func() { *clients = "1,4" }},
			{"handshakes", func() { cfg.handshakes = 40 }},
			{"warmup", func() { cfg.warmup = 10 }},
			{"idle", func() { cfg.idle = 50 }},
			{"ramp-max", func() { cfg.rampMax = 200 }},
		}
		for _, d := range quickDefaults {
			if !set[d.name] {
				d.set()
			}
		}
	}
	var err error
	if cfg.clients, err = parseCounts(*clients); err != nil {
		return cfg, 0, fmt.Errorf("-clients: %w", err)
	}
	if cfg.servers, err = parseServers(*servers); err != nil {
		return cfg, 0, fmt.Errorf("-servers: %w", err)
	}
	if cfg.rampServers, err = parseServers(*rampServers); err != nil {
		return cfg, 0, fmt.Errorf("-ramp-servers: %w", err)
	}
	switch {
	case cfg.rounds < 1:
		return cfg, 0, errors.New("-rounds must be at least 1")
	case cfg.handshakes < 0 || cfg.warmup < 0 || cfg.idle < 0 || cfg.rampMax < 0:
		return cfg, 0, errors.New("counts must not be negative")
	case cfg.handshakes > 0 && cfg.handshakes < slices.Max(cfg.clients):
		return cfg, 0, errors.New("-handshakes must be at least the largest number of -clients")
	case *timeout <= 0:
		return cfg, 0, errors.New("-timeout must be positive")
	}
	cfg.command = strings.TrimSpace("go run ./bench " + strings.Join(args, " "))
	return cfg, *timeout, nil
}

// parseCounts parses a comma-separated list of positive numbers.
func parseCounts(s string) ([]int, error) {
	var ns []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// parseServers parses a comma-separated list of server names.
func parseServers(s string) ([]string, error) {
	var names []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if _, ok := kindByName(f); !ok {
			return nil, fmt.Errorf("unknown server %q (known: %s)", f, allServers)
		}
		names = append(names, f)
	}
	return names, nil
}
