package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report writes res as markdown: a table per number of clients, the idle
// and ramp tables, then notes on the machine, the command and the servers.
func report(w io.Writer, res *results) {
	cfg := res.cfg
	var b bytes.Buffer
	if len(res.hs) > 0 {
		fmt.Fprintf(&b, "### Handshakes: upgrade + one 16-byte echo\n\n")
		fmt.Fprintf(&b, "Median of %d interleaved rounds (min–max); %d handshakes per server, number of clients and round. "+
			"CPU, allocations and bytes are the server process's, per handshake; × floor is the median of the per-round ratios.\n",
			cfg.rounds, cfg.handshakes)
		for _, c := range cfg.clients {
			fmt.Fprintf(&b, "\n#### %d concurrent client%s\n\n", c, plural(c))
			b.WriteString("| server | handshakes/s | × floor | p50 | p99 | server CPU/handshake | × floor | allocs/handshake | × floor | bytes/handshake |\n")
			b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
			floor := res.hs["floor"][c]
			for _, name := range cfg.servers {
				ss := res.hs[name][c]
				if len(ss) == 0 {
					continue
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name,
					spread(ss, func(s hsSample) float64 { return s.rate }, formatInt),
					ratio(ss, floor, func(s hsSample) float64 { return s.rate }),
					formatMicros(median(collect(ss, func(s hsSample) float64 { return float64(s.p50) }))/1e3),
					formatMicros(median(collect(ss, func(s hsSample) float64 { return float64(s.p99) }))/1e3),
					spread(ss, func(s hsSample) float64 { return s.cpu / 1e3 }, formatMicros),
					ratio(ss, floor, func(s hsSample) float64 { return s.cpu }),
					spread(ss, func(s hsSample) float64 { return s.allocs }, formatOne),
					ratio(ss, floor, func(s hsSample) float64 { return s.allocs }),
					spread(ss, func(s hsSample) float64 { return s.bytes }, formatInt),
				)
			}
		}
	}
	if len(res.idle) > 0 {
		fmt.Fprintf(&b, "\n### Idle upgraded connections\n\n")
		fmt.Fprintf(&b, "%d connections per server and round, each upgraded and past its echo (bare: accepted), waiting in Read. "+
			"Server heap + goroutine stacks after two GCs once the goroutine count holds still, per connection "+
			"(Go memory only: the kernel's socket buffers are not counted): median of %d rounds (min–max).\n\n",
			cfg.idle, cfg.rounds)
		b.WriteString("| server | KiB/connection | × bare | × floor | goroutines/connection |\n")
		b.WriteString("|---|--:|--:|--:|--:|\n")
		for _, name := range cfg.servers {
			ss := res.idle[name]
			if len(ss) == 0 {
				continue
			}
			kib := func(s idleSample) float64 { return s.perConn / 1024 }
			per := func(s idleSample) float64 { return s.perConn }
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", name,
				spread(ss, kib, formatTwo),
				ratio(ss, res.idle["bare"], per),
				ratio(ss, res.idle["floor"], per),
				formatTwo(median(collect(ss, func(s idleSample) float64 { return s.goroutines }))),
			)
		}
	}
	if len(res.ramp) > 0 {
		fmt.Fprintf(&b, "\n### Ramp to the open-file limit\n\n")
		b.WriteString("Idle connections opened by 16 concurrent clients until one process's open-file limit (less a margin) is reached; " +
			"memory as for the idle table; the million is that memory per connection times 10⁶.\n\n")
		b.WriteString("| server | connections | stopped by | connections/s | by quarter | KiB/connection | 10⁶ idle connections |\n")
		b.WriteString("|---|--:|---|--:|---|--:|--:|\n")
		for _, name := range cfg.rampServers {
			s, ok := res.ramp[name]
			if !ok {
				continue
			}
			q := make([]string, len(s.quarters))
			for i, r := range s.quarters {
				q[i] = formatInt(r)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.2f GiB |\n", name,
				formatInt(float64(s.conns)), s.stoppedBy, formatInt(s.rate), strings.Join(q, " / "),
				formatTwo(s.perConn/1024), s.perConn*1e6/(1<<30))
		}
	}
	notes(&b, res)
	w.Write(b.Bytes())
}

// notes writes how the tables were made.
func notes(b *bytes.Buffer, res *results) {
	cfg := res.cfg
	fmt.Fprintf(b, "\n**Machine:** %d CPUs (%s), %s, Go %s %s/%s, open-file limit %d. ",
		runtime.NumCPU(), cpuModel(), kernel(), strings.TrimPrefix(runtime.Version(), "go"), runtime.GOOS, runtime.GOARCH, fileLimit())
	fmt.Fprintf(b, "The harness and the server under test share the machine: the numbers are loopback numbers. Run time %v.\n\n",
		res.elapsed.Round(time.Second))
	fmt.Fprintf(b, "**Command:** `%s`\n\n", cfg.command)
	b.WriteString("**Method:** every server runs in a process of its own on 127.0.0.1, started afresh for each measurement, " +
		"in an order rotated each round. The client is the same for all: raw TCP, Chromium's request (Origin same-origin, " +
		"`Sec-WebSocket-Protocol: chat`, `Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits`), " +
		"a check of the 101 (Upgrade, Connection, Accept, `chat`), one masked 16-byte text frame, a check of the echo " +
		"(unmasked, uncompressed), then a close with a reset. Latency is connect to echo. " +
		"Server CPU is the process's user + system time (getrusage) over the measurement, " +
		"allocations its `runtime.MemStats` Mallocs and TotalAlloc, both divided by the handshakes; " +
		"with one client the server idles between handshakes, and its CPU per handshake includes the runtime's wake-ups.\n\n")
	b.WriteString("**Servers:** each hands the upgraded connection to a goroutine of its own, so ServeHTTP returns.\n\n")
	for _, name := range cfg.servers {
		k, _ := kindByName(name)
		fmt.Fprintf(b, "- **%s**: %s", name, k.note)
		if a, ok := res.answers[name]; ok {
			if a == "" {
				a = "(none)"
			}
			fmt.Fprintf(b, ". Answered Sec-WebSocket-Extensions: `%s`", a)
		}
		b.WriteString(".\n")
	}
}

// collect returns f of each sample.
func collect[S any](ss []S, f func(S) float64) []float64 {
	xs := make([]float64, len(ss))
	for i, s := range ss {
		xs[i] = f(s)
	}
	return xs
}

// median returns the median of xs, the mean of the middle two for an even
// count.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	} else {
		return s[n/2]
	}
}

// spread formats the median of f over ss, with the range when there is one.
func spread[S any](ss []S, f func(S) float64, format func(float64) string) string {
	xs := collect(ss, f)
	m := format(median(xs))
	if len(xs) < 2 {
		return m
	}
	return fmt.Sprintf("%s (%s–%s)", m, format(slices.Min(xs)), format(slices.Max(xs)))
}

// ratio formats the median of the per-round ratios f(ss[r]) / f(base[r]),
// with their range; "–" without a base.
func ratio[S any](ss, base []S, f func(S) float64) string {
	n := min(len(ss), len(base))
	if n == 0 {
		return "–"
	}
	rs := make([]float64, n)
	for i := range n {
		rs[i] = f(ss[i]) / f(base[i])
	}
	return spread(rs, func(x float64) float64 { return x }, formatTwo)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// formatInt formats x rounded to an integer, with thousands separated.
func formatInt(x float64) string {
	s := strconv.FormatInt(int64(x+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func formatOne(x float64) string { return strconv.FormatFloat(x, 'f', 1, 64) }
func formatTwo(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }

// formatMicros formats a number of microseconds.
func formatMicros(us float64) string {
	if us >= 100 {
		return formatInt(us) + " µs"
	}
	return formatOne(us) + " µs"
}

// cpuModel returns the first model name in /proc/cpuinfo, or "CPU model unknown".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "CPU model unknown"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "CPU model unknown"
}

// kernel returns the kernel's name and release, or the GOOS where /proc
// does not say.
func kernel() string {
	typ, err1 := os.ReadFile("/proc/sys/kernel/ostype")
	rel, err2 := os.ReadFile("/proc/sys/kernel/osrelease")
	if err1 != nil || err2 != nil {
		return runtime.GOOS
	}
	return strings.TrimSpace(string(typ)) + " " + strings.TrimSpace(string(rel))
}
