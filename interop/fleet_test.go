package interop

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The fleet test: examples/fleet, three processes behind a load balancer
// configured by docs/deploy, thousands of clients, and a rolling deploy.

// fleetSize is how many server processes a fleet has: as many as
// docs/deploy's configurations name.
const fleetSize = 3

// A fleetCase is a rolling deploy to measure and check.
type fleetCase struct {
	name     string
	balancer string // "haproxy" or "nginx"
	clients  int
	drain    time.Duration // the servers' -drain; 0 ends every connection at once
}

// A deployResult is what one rolling deploy measured.
type deployResult struct {
	fleetCase
	peak           int             // the most upgrades the survivors took in one second, over all steps
	drained        []int           // per step, the connections the drained process held
	back           []time.Duration // per step, from SIGTERM until every client was connected again
	worstReconnect time.Duration   // the longest a client was without a connection
	after          [fleetSize]int  // connections per process after the deploy
	closes         map[int]int     // close codes clients got from servers
	refusals       map[int]int     // refused handshakes that reached clients, by status
}

// TestFleet runs rolling deploys of examples/fleet behind HAProxy and nginx,
// configured by the files docs/deploying.md shows, with clients that
// acknowledge numbered messages and reconnect as a client of a fleet
// should. Each process in turn gets SIGTERM, drains, exits and is started
// again on its port. Every client must be connected at the end, every
// acknowledged message acknowledged once, no connection may end without a
// close frame, no refused upgrade may reach a client, and with DrainTime
// the survivors must take the drained process's clients at about
// clients-per-process / DrainTime a second, where without it they take
// them all at once.
func TestFleet(t *testing.T) {
	haproxy := program(t, "haproxy", installHAProxy)
	nginx := program(t, "nginx", installNginx)
	bin := buildExample(t, "fleet")

	const drain = 6 * time.Second
	cases := []fleetCase{
		{"HAProxy with DrainTime 6s", "haproxy", 1500, drain},
		{"HAProxy without DrainTime", "haproxy", 1500, 0},
		{"nginx with DrainTime 3s", "nginx", 300, 3 * time.Second},
	}
	var results []deployResult
	for _, fc := range cases {
		t.Run(fc.name, func(t *testing.T) {
			lb := map[string]string{"haproxy": haproxy, "nginx": nginx}[fc.balancer]
			r := rollingDeploy(t, bin, lb, fc)
			results = append(results, r)
		})
	}
	if t.Failed() || len(results) != len(cases) {
		return
	}

	t.Logf("measured:\n%s", fleetTable(results))
}

// fleetTable formats results as the README's table.
func fleetTable(results []deployResult) string {
	var b strings.Builder
	b.WriteString("| deploy | clients | drained at each step | survivors' peak upgrades/s | every client back after (worst step) | worst client's reconnect | connections per process after |\n")
	b.WriteString("| --- | --: | --: | --: | --: | --: | --- |\n")
	for _, r := range results {
		worst := slices.Max(r.back)
		fmt.Fprintf(&b, "| %s | %d | %d, %d, %d | %d | %.1f s | %.1f s | %d, %d, %d |\n", r.name, r.clients,
			r.drained[0], r.drained[1], r.drained[2], r.peak, worst.Seconds(), r.worstReconnect.Seconds(),
			r.after[0], r.after[1], r.after[2])
	}
	return b.String()
}

// A fleetServer is one place in the fleet: an address, and the processes
// that served on it, one after the other.
type fleetServer struct {
	addr string
	runs []*process
}

// current is the process serving now.
func (s *fleetServer) current() *process { return s.runs[len(s.runs)-1] }

// startFleet starts fleetSize processes of bin on free loopback ports.
func startFleet(t *testing.T, bin string, drain time.Duration) []*fleetServer {
	t.Helper()
	servers := make([]*fleetServer, fleetSize)
	for i := range servers {
		addr, p := listening(t, "examples/fleet", func(port int) *process {
			return startFleetProcess(t, bin, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), drain)
		})
		servers[i] = &fleetServer{addr: addr, runs: []*process{p}}
	}
	return servers
}

func startFleetProcess(t *testing.T, bin, addr string, drain time.Duration) *process {
	return start(t, bin, "-addr", addr, "-drain", drain.String(), "-grace", "10s")
}

// startFleetHAProxy starts HAProxy with docs/deploy/haproxy.cfg, as it is,
// on a free loopback port in front of servers, and returns its address and
// the path of its runtime API's socket.
func startFleetHAProxy(t *testing.T, haproxy string, servers []*fleetServer) (addr, socket string, p *process) {
	t.Helper()
	socket = filepath.Join(t.TempDir(), "haproxy.sock")
	cfg, err := filepath.Abs(filepath.Join("..", "docs", "deploy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	addr, p = listening(t, "haproxy", func(port int) *process {
		// env sets the addresses the configuration expands, and becomes
		// HAProxy.
		return start(t, "/usr/bin/env",
			"FLEET_BIND=127.0.0.1:"+strconv.Itoa(port),
			"FLEET_S1="+servers[0].addr, "FLEET_S2="+servers[1].addr, "FLEET_S3="+servers[2].addr,
			"HAPROXY_SOCKET="+socket,
			haproxy, "-db", "-f", cfg)
	})
	return addr, socket, p
}

// haproxyDown returns the servers HAProxy's runtime API at socket does not
// report UP.
func haproxyDown(socket string) ([]string, error) {
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("show stat\n")); err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(c)
	status := -1
	var down []string
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ",")
		if strings.HasPrefix(sc.Text(), "# ") {
			status = slices.Index(fields, "status")
			continue
		}
		if status < 0 || len(fields) <= status || fields[0] != "fleet" || fields[1] == "BACKEND" {
			continue
		}
		if fields[status] != "UP" {
			down = append(down, fields[1]+" "+fields[status])
		}
	}
	if status < 0 {
		return nil, fmt.Errorf("no status column in HAProxy's show stat: %v", sc.Err())
	}
	return down, sc.Err()
}

// startFleetNginx starts nginx with docs/deploy/nginx.conf, its addresses
// filled in as envsubst would, inside the http block of a configuration of
// the test's own (pid file, temporary folders, logging), on a free loopback
// port in front of servers.
func startFleetNginx(t *testing.T, nginx string, servers []*fleetServer) (string, *process) {
	t.Helper()
	site, err := os.ReadFile(filepath.Join("..", "docs", "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	main := "worker_rlimit_nofile 8192;\nerror_log stderr error;\nevents { worker_connections 4096; }"
	return startNginxConf(t, nginx, main, func(dir string, port int) string {
		vars := map[string]string{
			"FLEET_BIND": "127.0.0.1:" + strconv.Itoa(port),
			"FLEET_S1":   servers[0].addr, "FLEET_S2": servers[1].addr, "FLEET_S3": servers[2].addr,
		}
		filled := os.Expand(string(site), func(name string) string {
			if v, ok := vars[name]; ok {
				return v
			}
			return "$" + name // one of nginx's variables
		})
		if err := os.WriteFile(filepath.Join(dir, "fleet.conf"), []byte(filled), 0o644); err != nil {
			t.Fatal(err)
		}
		return "include " + dir + "/fleet.conf;"
	})
}

// rollingDeploy starts a fleet and its balancer, connects fc.clients
// clients, restarts every process in turn, and checks what the clients and
// the servers' logs saw.
func rollingDeploy(t *testing.T, bin, balancer string, fc fleetCase) deployResult {
	r := deployResult{fleetCase: fc}
	servers := startFleet(t, bin, fc.drain)
	var lbAddr, socket string
	var lb *process
	if fc.balancer == "haproxy" {
		lbAddr, socket, lb = startFleetHAProxy(t, balancer, servers)
	} else {
		lbAddr, lb = startFleetNginx(t, balancer, servers)
	}
	allUp := func() {
		t.Helper()
		if socket == "" {
			return // nginx has no active health check to wait for
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			down, err := haproxyDown(socket)
			if err == nil && len(down) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("HAProxy: servers not up after 15 s: %v %v", down, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	allUp()

	began := time.Now()
	clients := startFleetClients(fc.clients, lbAddr, 3*time.Second, time.Second)
	stopped := false
	stopClients := func() {
		if !stopped {
			stopped = true
			clients.stop()
		}
	}
	t.Cleanup(stopClients)
	if missing, _ := clients.waitAllAcked(began, 60*time.Second); missing > 0 {
		t.Errorf("%d of %d clients not connected and acknowledged 60 s after starting", missing, fc.clients)
		stopClients()
		t.Fatalf("what the clients saw:\n%s", clientsSummary(clients.all, began))
	}
	t.Logf("%d clients connected in %v", fc.clients, time.Since(began).Round(time.Millisecond))

	type step struct {
		from, to time.Time
		drained  *process
		clients  int // the drained process's connections at SIGTERM
	}
	var steps []step
	for i, s := range servers {
		allUp()
		old := s.current()
		from := time.Now()
		if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-old.exited:
		case <-time.After(fc.drain + 30*time.Second):
			t.Fatalf("s%d did not exit %v after SIGTERM:\n%s", i+1, fc.drain+30*time.Second, tail(old.output.String()))
		}
		exited := time.Since(from)
		if old.err != nil || !strings.Contains(old.output.String(), "\ndrained\n") {
			t.Fatalf("s%d exited with %v, not drained:\n%s", i+1, old.err, tail(old.output.String()))
		}
		p := startFleetProcess(t, bin, s.addr, fc.drain)
		if ok, why := p.waitListening(s.addr); !ok {
			t.Fatalf("s%d restarted: %s", i+1, why)
		}
		s.runs = append(s.runs, p)
		missing, back := clients.waitAllAcked(from, fc.drain+60*time.Second)
		if missing > 0 {
			t.Errorf("step %d: %d of %d clients not back %v after SIGTERM", i+1, missing, fc.clients, fc.drain+60*time.Second)
			stopClients()
			t.Fatalf("what the clients saw:\n%s\nthe balancer's output:\n%s", clientsSummary(clients.all, from), tail(lb.output.String()))
		}
		var drained int
		if _, err := fmt.Sscanf(old.output.String()[strings.Index(old.output.String(), "draining "):], "draining %d", &drained); err != nil {
			t.Fatalf("s%d did not say how many connections it drained:\n%s", i+1, tail(old.output.String()))
		}
		r.back = append(r.back, back.Sub(from))
		r.drained = append(r.drained, drained)
		steps = append(steps, step{from, back, old, drained})
		t.Logf("step %d: s%d drained %d connections and exited %v after SIGTERM; every client was back after %v",
			i+1, i+1, drained, exited.Round(time.Millisecond), back.Sub(from).Round(time.Millisecond))
	}
	// Let the last stats lines be printed before reading the counts.
	time.Sleep(300 * time.Millisecond)
	for i, s := range servers {
		r.after[i] = lastActive(s.current().output.String())
	}

	stopClients()
	for i, s := range servers {
		p := s.current()
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("s%d did not exit 30 s after SIGTERM with no clients", i+1)
		}
	}

	var all []*process
	for _, s := range servers {
		all = append(all, s.runs...)
	}
	for i, st := range steps {
		var survivors []*process
		for _, p := range all {
			if p != st.drained {
				survivors = append(survivors, p)
			}
		}
		peak := peakUpgrades(survivors, st.from, st.to.Add(time.Second))
		r.peak = max(r.peak, peak)
		if fc.drain > 0 {
			// The drained process's clients come back spread over
			// DrainTime, to the survivors together; three times that rate,
			// and 20 more, leave room for a busy machine (a drain that falls
			// behind its schedule catches up) and the clients' jitter, and
			// stay well below the herd that comes back without DrainTime.
			bound := int(3*float64(st.clients)/fc.drain.Seconds()) + 20
			if peak > bound {
				t.Errorf("step %d: the survivors took up to %d upgrades in a second, want at most %d (3 × %d clients / %v + 20)",
					i+1, peak, bound, st.clients, fc.drain)
			}
		} else if peak < st.clients/2 {
			// Without DrainTime the herd comes back at once; a peak below
			// half of it would mean this measurement cannot tell a drain
			// from none.
			t.Errorf("step %d: without DrainTime the survivors took up to %d upgrades in a second, want at least half the %d clients of the drained process",
				i+1, peak, st.clients)
		}
	}
	r.closes, r.refusals = map[int]int{}, map[int]int{}
	checkFleetClients(t, clients.all, all, &r)
	t.Logf("%s: survivors' peak %d upgrades/s; every client back after %v; worst reconnect %v; connections per process after: %v; close codes %v; refusals seen by clients %v",
		fc.name, r.peak, r.back, r.worstReconnect.Round(time.Millisecond), r.after, r.closes, r.refusals)
	return r
}

// checkFleetClients checks what the clients saw and what the servers
// logged: every client's acknowledgements in order, once each, from one
// connection's range to the next, no connection ended without a close
// frame, and no refused upgrade reached a client.
func checkFleetClients(t *testing.T, clients []*fleetClient, procs []*process, r *deployResult) {
	t.Helper()
	ranges := map[int][][2]uint64{} // client → acknowledged ranges, as the servers logged them
	for _, p := range procs {
		for line := range strings.Lines(p.output.String()) {
			var id int
			var acked, end string
			var n uint64
			if _, err := fmt.Sscanf(line, "conn client=%d acked=%s n=%d end=%s", &id, &acked, &n, &end); err != nil || acked == "none" {
				continue
			}
			var first, last uint64
			if _, err := fmt.Sscanf(acked, "%d-%d", &first, &last); err != nil || last-first+1 != n {
				t.Errorf("server log line %q: acknowledged range and count disagree", strings.TrimSpace(line))
				continue
			}
			ranges[id] = append(ranges[id], [2]uint64{first, last})
		}
	}
	var unclean, broken, lost int
	for _, c := range clients {
		for _, u := range c.unclean {
			if unclean++; unclean <= 5 {
				t.Errorf("client %d: %s", c.id, u)
			}
		}
		for _, v := range c.violations {
			if broken++; broken <= 5 {
				t.Errorf("client %d: %s", c.id, v)
			}
		}
		rs := ranges[c.id]
		slices.SortFunc(rs, func(a, b [2]uint64) int { return int(a[0]) - int(b[0]) })
		next := uint64(1)
		for _, rg := range rs {
			if rg[0] != next {
				if lost++; lost <= 5 {
					t.Errorf("client %d: the servers acknowledged %v, want a range starting at %d: every range %v", c.id, rg, next, rs)
				}
				break
			}
			next = rg[1] + 1
		}
		if next-1 != c.acked {
			if lost++; lost <= 5 {
				t.Errorf("client %d got %d acknowledgements, the servers logged up to %d (%v)", c.id, c.acked, next-1, rs)
			}
		}
		if c.acked == 0 {
			t.Errorf("client %d got no acknowledgement", c.id)
		}
		r.worstReconnect = max(r.worstReconnect, c.worstDown)
		for code, n := range c.closes {
			r.closes[code] += n
		}
		for status, n := range c.refusals {
			r.refusals[status] += n
		}
	}
	if unclean+broken+lost > 0 {
		t.Errorf("%d connections ended without a close frame, %d acknowledgements broke the protocol, %d clients' acknowledgements disagree with the servers'", unclean, broken, lost)
	}
	// docs/deploy's balancers retry an upgrade a draining process refused
	// (503) or a stopped one could not take on another process.
	if len(r.refusals) > 0 {
		t.Errorf("refused upgrades reached the clients, by status: %v; want none, the balancer retrying them on another process", r.refusals)
	}
}

// peakUpgrades returns the most upgrades procs took together in any one
// second from from to to, from the "stats" lines they printed.
func peakUpgrades(procs []*process, from, to time.Time) int {
	type event struct{ ms, n int64 }
	var events []event
	for _, p := range procs {
		var prev int64
		for line := range strings.Lines(p.output.String()) {
			var ms, upgrades int64
			if _, err := fmt.Sscanf(line, "stats ms=%d upgrades=%d", &ms, &upgrades); err != nil {
				continue
			}
			if ms >= from.UnixMilli() && ms <= to.UnixMilli() && upgrades > prev {
				events = append(events, event{ms, upgrades - prev})
			}
			prev = upgrades
		}
	}
	slices.SortFunc(events, func(a, b event) int { return int(a.ms - b.ms) })
	var peak, sum int64
	lo := 0
	for _, e := range events {
		sum += e.n
		for events[lo].ms <= e.ms-1000 {
			sum -= events[lo].n
			lo++
		}
		peak = max(peak, sum)
	}
	return int(peak)
}

// lastActive returns the active count of the last stats line in out.
func lastActive(out string) int {
	active := -1
	for line := range strings.Lines(out) {
		var ms, upgrades int64
		var n int
		if _, err := fmt.Sscanf(line, "stats ms=%d upgrades=%d active=%d", &ms, &upgrades, &n); err == nil {
			active = n
		}
	}
	return active
}

// clientsSummary describes, once they have stopped, the first few clients
// that had no acknowledgement since since.
func clientsSummary(clients []*fleetClient, since time.Time) string {
	var b strings.Builder
	n := 0
	for _, c := range clients {
		if c.lastAck.Load() >= since.UnixNano() {
			continue
		}
		if n++; n > 10 {
			break
		}
		fmt.Fprintf(&b, "client %d: %d acknowledged, %d connections, closes %v, refusals %v, %d failed dials, unclean %q, violations %q\n",
			c.id, c.acked, c.connects, c.closes, c.refusals, c.dialFailures, c.unclean, c.violations)
	}
	return b.String()
}

// tail returns the last 40 lines of out.
func tail(out string) string {
	lines := strings.Split(out, "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}
