package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"lowbit.dev/cooper"
)

// TestMain runs a server instead of the tests when the harness under test
// re-executes the test binary as one of its server processes.
func TestMain(m *testing.M) {
	if kind := os.Getenv(serverEnv); kind != "" {
		if err := runServer(kind); err != nil {
			os.Stderr.WriteString("bench server: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	// A race-enabled server process would sleep a second as it exits.
	os.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	os.Exit(m.Run())
}

// TestEveryServerUpgradesAndEchoes checks, for each server, what the
// harness's client checks on every handshake, but with net/http's parser
// and cooper's AcceptKey: a 101 with Upgrade: websocket, the Accept for the
// key, the subprotocol "chat", and the message echoed; and that the server
// process counted exactly that one echo and no failure.
func TestEveryServerUpgradesAndEchoes(t *testing.T) {
	ps := &procSet{}
	t.Cleanup(ps.killAll)
	for _, k := range serverKinds {
		if !k.websocket {
			continue
		}
		t.Run(k.name, func(t *testing.T) {
			p, err := ps.start(k.name)
			if err != nil {
				t.Fatal(err)
			}
			defer p.kill()
			c := newClient(&dialer{raddr: p.addr})
			_, head, err := c.handshake(false)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
			if err != nil {
				t.Fatalf("101 head %q: %v", head, err)
			}
			key := requestKey(t, c.req)
			for _, h := range []struct{ name, want string }{
				{"Upgrade", "websocket"},
				{"Sec-WebSocket-Accept", cooper.AcceptKey(key)},
				{"Sec-WebSocket-Protocol", "chat"},
			} {
				if got := resp.Header.Get(h.name); !strings.EqualFold(got, h.want) {
					t.Errorf("%s: %q, want %q", h.name, got, h.want)
				}
			}
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Errorf("status %d, want 101", resp.StatusCode)
			}
			if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
				t.Errorf("Sec-WebSocket-Extensions: %q, want permessage-deflate agreed", ext)
			}
			s := waitEchoes(t, p, 1)
			if s.Fails != 0 {
				t.Errorf("server failed %d times, first: %s", s.Fails, s.FirstFail)
			}
			if err := p.stop(); err != nil {
				t.Error(err)
			}
		})
	}
}

// requestKey returns the Sec-WebSocket-Key of a request the client sends.
func requestKey(t *testing.T, req []byte) string {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req)))
	if err != nil {
		t.Fatalf("request %q: %v", req, err)
	}
	return r.Header.Get("Sec-WebSocket-Key")
}

// waitEchoes waits until p counted n echoes, which it does right after
// writing them, and returns its counters.
func waitEchoes(t *testing.T, p *proc, n int64) serverStats {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s, err := p.stats("stats")
		if err != nil {
			t.Fatal(err)
		}
		if s.Echoes >= n || time.Now().After(deadline) {
			if s.Echoes != n {
				t.Errorf("server counted %d echoes, want %d", s.Echoes, n)
			}
			return s
		}
	}
}

// TestFramesAreTheMessage checks the client's frames against RFC 6455,
// section 5.2: the masked frame unmasks to the message, the echo is the
// message unmasked, both final text frames.
func TestFramesAreTheMessage(t *testing.T) {
	m := maskedFrame
	if m[0] != 0x81 || m[1] != 0x80|byte(len(message)) || len(m) != 2+4+len(message) {
		t.Fatalf("masked frame header % x", m[:2])
	}
	got := make([]byte, len(message))
	for i := range got {
		got[i] = m[6+i] ^ m[2+i%4]
	}
	if string(got) != message {
		t.Errorf("masked frame unmasks to %q, want %q", got, message)
	}
	if want := append([]byte{0x81, byte(len(message))}, message...); !bytes.Equal(echoedFrame, want) {
		t.Errorf("echoed frame % x, want % x", echoedFrame, want)
	}
}

// TestCheckHeadRefusesWrongAnswers checks that the client fails a server
// for each thing a browser would fail it for.
func TestCheckHeadRefusesWrongAnswers(t *testing.T) {
	const accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	good := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + accept + "\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
	tests := []struct {
		name string
		head string
		ok   bool
	}{
		{"a correct 101 passes", good, true},
		{"header names in any case pass", strings.NewReplacer("Upgrade:", "UPGRADE:", "Sec-WebSocket-Accept", "sec-websocket-accept").Replace(good), true},
		{"Connection as one token of a list passes", strings.Replace(good, "Connection: Upgrade", "Connection: keep-alive, upgrade", 1), true},
		{"status 200 fails", strings.Replace(good, "101 Switching Protocols", "200 OK", 1), false},
		{"a wrong Accept fails", strings.Replace(good, accept, "x"+accept[1:], 1), false},
		{"no subprotocol fails", strings.Replace(good, "Sec-WebSocket-Protocol: chat\r\n", "", 1), false},
		{"another subprotocol fails", strings.Replace(good, ": chat", ": superchat", 1), false},
		{"no Upgrade fails", strings.Replace(good, "Upgrade: websocket\r\n", "", 1), false},
		{"no Connection fails", strings.Replace(good, "Connection: Upgrade\r\n", "", 1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkHead([]byte(tt.head), []byte(accept))
			if (err == nil) != tt.ok {
				t.Errorf("checkHead(%q) = %v, want ok %v", tt.head, err, tt.ok)
			}
		})
	}
}

// TestQuick runs the whole harness with -quick and checks that every
// server completed its handshakes, idle connections and ramp, that the
// report has a row for each, and that no server process is left.
func TestQuick(t *testing.T) {
	cfg, timeout, err := parseFlags(flag.NewFlagSet("bench", flag.ContinueOnError), []string{"-quick"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res, err := run(ctx, cfg, testLog{t})
	if err != nil {
		t.Fatal(err)
	}
	assertNoChildren(t)
	for _, name := range cfg.servers {
		k, _ := kindByName(name)
		if k.websocket {
			for _, c := range cfg.clients {
				if got := len(res.hs[name][c]); got != cfg.rounds {
					t.Errorf("%s, %d clients: %d samples, want %d", name, c, got, cfg.rounds)
				}
			}
		}
		if got := len(res.idle[name]); got != cfg.rounds {
			t.Errorf("%s idle: %d samples, want %d", name, got, cfg.rounds)
		}
	}
	for _, name := range cfg.rampServers {
		if got := res.ramp[name].conns; got != cfg.rampMax {
			t.Errorf("%s ramp: %d connections, want %d", name, got, cfg.rampMax)
		}
	}
	var out bytes.Buffer
	report(&out, res)
	md := out.String()
	for _, name := range cfg.servers {
		if !strings.Contains(md, "| "+name+" |") {
			t.Errorf("report has no row for %s:\n%s", name, md)
		}
	}
	for _, want := range []string{"#### 1 concurrent client\n", "#### 4 concurrent clients\n", "### Idle", "### Ramp", "**Command:** `go run ./bench -quick`"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestCancelStopsEverything cancels a long run in the middle and checks
// that it returns promptly and leaves no server process behind.
func TestCancelStopsEverything(t *testing.T) {
	cfg, _, err := parseFlags(flag.NewFlagSet("bench", flag.ContinueOnError),
		[]string{"-rounds", "1000", "-servers", "floor,cooper", "-clients", "4", "-handshakes", "1000000", "-idle", "0", "-ramp=false"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	if _, err := run(ctx, cfg, io.Discard); err == nil {
		t.Fatal("run after cancel: no error")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("run returned %v after it started, %v after the cancel", d, d-time.Second)
	}
	assertNoChildren(t)
}

// assertNoChildren fails t if the test process has a child process left,
// as far as /proc tells.
func assertNoChildren(t *testing.T) {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	if len(stats) == 0 {
		t.Log("no /proc: child processes not checked")
		return
	}
	me := strconv.Itoa(os.Getpid())
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces, so cut at the last ')'.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == me {
			t.Errorf("child process left: %s", strings.TrimSpace(s[:min(len(s), 80)]))
		}
	}
}

// TestParseFlags checks -quick's counts and that explicit flags win.
func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		rounds  int
		clients []int
		idle    int
	}{
		{"defaults are the full measurement", nil, 5, []int{1, 16, 64}, 10000},
		{"-quick sets tiny counts", []string{"-quick"}, 2, []int{1, 4}, 50},
		{"explicit flags win over -quick", []string{"-quick", "-rounds", "3", "-clients", "2"}, 3, []int{2}, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := parseFlags(flag.NewFlagSet("bench", flag.ContinueOnError), tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.rounds != tt.rounds || !slices.Equal(cfg.clients, tt.clients) || cfg.idle != tt.idle {
				t.Errorf("rounds %d, clients %v, idle %d; want %d, %v, %d",
					cfg.rounds, cfg.clients, cfg.idle, tt.rounds, tt.clients, tt.idle)
			}
		})
	}
	for _, bad := range [][]string{{"-servers", "nginx"}, {"-clients", "0"}, {"-rounds", "0"}, {"-handshakes", "-1"}, {"extra"}} {
		fs := flag.NewFlagSet("bench", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if _, _, err := parseFlags(fs, bad); err == nil {
			t.Errorf("parseFlags(%q): no error", bad)
		}
	}
}

// testLog writes the harness's progress to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
