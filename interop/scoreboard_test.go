package interop

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/lxzan/gws"

	"lowbit.dev/cooper/cmd/cooperprobe/probe"
)

var update = flag.Bool("update", false, "rewrite the README's scoreboard with what TestScoreboard found")

// A contender is a server the scoreboard probes.
type contender struct {
	name  string
	start func(t *testing.T) (url string)
	h2    bool
	// subprotocol is the one it speaks; serverSubprotocols' first when "".
	subprotocol string
	// cooper's own rows must not fail, and may warn only as cooperWarns
	// says.
	cooper bool
}

// cooperWarns are the warns cooper's rows may show, and why each is
// justified.
var cooperWarns = map[string]string{
	// cooper compares the Origin's host and port with Host, not its
	// scheme: behind a proxy that ends TLS, the scheme the server sees is
	// not the one the browser used.
	"origin-other-scheme": "the scheme is not compared",
}

// goEcho starts h on a fresh loopback server and returns its ws URL.
var goEcho = startForeign

// gwsServer is an lxzan/gws echo server with permessage-deflate on,
// speaking serverSubprotocols.
func gwsServer(t *testing.T) string {
	up := gws.NewUpgrader(gwsEcho{}, &gws.ServerOption{
		PermessageDeflate: gws.PermessageDeflate{Enabled: true},
		SubProtocols:      serverSubprotocols,
	})
	return goEcho(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	}))
}

// gwsEcho sends every message back.
type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	c.WriteMessage(m.Opcode, m.Bytes())
}

// cooperEcho starts examples/echo and returns its WebSocket URL.
func cooperEcho(t *testing.T) string {
	url, _ := startExample(t, "echo")
	return "ws" + strings.TrimPrefix(url, "http") + "/ws"
}

// contenders are the scoreboard's rows, in order.
func contenders() []contender {
	behind := func(proxy func(t *testing.T, origin string) string) func(t *testing.T) string {
		return func(t *testing.T) string {
			url := cooperEcho(t)
			addr := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/ws")
			return "ws://" + proxy(t, addr) + "/ws"
		}
	}
	return []contender{
		{name: "cooper, `examples/echo` (HTTP/1.1)", start: cooperEcho, subprotocol: "echo.v1", cooper: true},
		{name: "cooper, `examples/h2` (HTTP/1.1 and HTTP/2)", h2: true, subprotocol: "echo.v1", cooper: true, start: func(t *testing.T) string {
			url, _ := startExample(t, "h2")
			return "wss" + strings.TrimPrefix(url, "https") + "/ws"
		}},
		{name: "nginx in front of cooper (`examples/echo`)", start: behind(startNginx), subprotocol: "echo.v1"},
		{name: "HAProxy in front of cooper (`examples/echo`)", start: behind(startHAProxy), subprotocol: "echo.v1"},
		{name: "gorilla/websocket v1.5.3", start: gorillaServer(true).start},
		{name: "coder/websocket v1.8.15", start: coderServer(coder.CompressionContextTakeover).start},
		{name: "gobwas/ws v1.5.0", start: gobwasServer.start},
		{name: "lxzan/gws v1.8.9", start: gwsServer},
		{name: "npm ws 8.23.0", start: nodeServer(map[string]any{"perMessageDeflate": true}).start},
	}
}

// A score is what the probe found for one contender.
type score struct {
	name    string
	results []probe.Result
}

// TestScoreboard runs cooperprobe against cooper's examples, cooper behind
// nginx and HAProxy, and the other libraries' servers, and checks the
// README's scoreboard says what it found: rerun with -update to rewrite
// it. cooper's rows must pass every case, or warn where cooperWarns says
// why.
func TestScoreboard(t *testing.T) {
	var scores []score
	for _, c := range contenders() {
		t.Run(c.name, func(t *testing.T) {
			url := c.start(t)
			subprotocol := c.subprotocol
			if subprotocol == "" {
				subprotocol = serverSubprotocols[0]
			}
			cfg := probe.Config{URL: url, Subprotocol: subprotocol, Timeout: 2 * time.Second, H2: c.h2}
			s := score{name: c.name}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			sum, err := probe.Run(ctx, cfg, nil, func(r probe.Result) { s.results = append(s.results, r) })
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s in %v", sum, time.Since(start).Round(time.Millisecond))
			for _, r := range s.results {
				if testing.Verbose() && r.Result != probe.Pass {
					t.Logf("%s %s: %s", r.Result, r.ID, r.Detail)
				}
				if !c.cooper {
					continue
				}
				if r.Result == probe.Fail {
					t.Errorf("%s failed: %s", r.ID, r.Detail)
				}
				if _, ok := cooperWarns[r.ID]; r.Result == probe.Warn && !ok {
					t.Errorf("%s warned, with no reason to: %s", r.ID, r.Detail)
				}
			}
			scores = append(scores, s)
		})
	}
	if t.Failed() || len(scores) != len(contenders()) {
		return
	}
	table := renderScoreboard(scores)
	readme := filepath.Join("..", "README.md")
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	if n := fmt.Sprintf("Its %d cases", len(probe.Cases())); !strings.Contains(string(b), n) {
		t.Errorf("README.md does not say %q", n)
	}
	before, rest, ok1 := strings.Cut(string(b), scoreboardStart)
	_, after, ok2 := strings.Cut(rest, scoreboardEnd)
	if !ok1 || !ok2 {
		t.Fatalf("README.md has no %s … %s section", scoreboardStart, scoreboardEnd)
	}
	if current := strings.TrimPrefix(rest[:len(rest)-len(after)-len(scoreboardEnd)], "\n"); current == table {
		return
	}
	if *update || os.Getenv("COOPERPROBE_UPDATE") == "1" {
		if err := os.WriteFile(readme, []byte(before+scoreboardStart+"\n"+table+scoreboardEnd+after), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("README.md's scoreboard rewritten")
		return
	}
	t.Errorf("README.md's scoreboard differs from this run's; rerun with -update to rewrite it. This run:\n%s", table)
}

// The markers around the README's scoreboard.
const (
	scoreboardStart = "<!-- scoreboard: written by TestScoreboard in interop; go test -run TestScoreboard ./interop -update -->"
	scoreboardEnd   = "<!-- end of scoreboard -->"
)

// renderScoreboard writes the table, passed/failed a group, and then a
// line for every case a contender failed.
func renderScoreboard(scores []score) string {
	var b strings.Builder
	b.WriteString("| server | " + strings.Join(probe.Groups, " | ") + " | warned | skipped |\n")
	b.WriteString("| --- |" + strings.Repeat(" --: |", len(probe.Groups)+2) + "\n")
	for _, s := range scores {
		type count struct{ passed, failed int }
		counts := map[string]*count{}
		warned, skipped := 0, 0
		group := map[string]string{}
		for _, c := range probe.Cases() {
			group[c.ID] = c.Group
		}
		for _, r := range s.results {
			c := counts[group[r.ID]]
			if c == nil {
				c = &count{}
				counts[group[r.ID]] = c
			}
			switch r.Result {
			case probe.Pass:
				c.passed++
			case probe.Fail:
				c.failed++
			case probe.Warn:
				warned++
			default:
				skipped++
			}
		}
		b.WriteString("| " + s.name)
		for _, g := range probe.Groups {
			c := counts[g]
			if c == nil {
				c = &count{}
			}
			if c.failed > 0 {
				fmt.Fprintf(&b, " | %d/**%d**", c.passed, c.failed)
			} else {
				fmt.Fprintf(&b, " | %d/0", c.passed)
			}
		}
		fmt.Fprintf(&b, " | %d | %d |\n", warned, skipped)
	}
	b.WriteString("\nCases failed, by server:\n\n")
	for _, s := range scores {
		var failed []string
		for _, r := range s.results {
			if r.Result == probe.Fail {
				failed = append(failed, fmt.Sprintf("`%s` (%s, %s)", r.ID, r.Title, r.RFC))
			}
		}
		if len(failed) == 0 {
			continue
		}
		slices.Sort(failed)
		fmt.Fprintf(&b, "- %s: %s\n", s.name, strings.Join(failed, "; "))
	}
	return b.String()
}
