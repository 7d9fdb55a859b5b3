package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

// probe runs the cases against url with the flags given, through Main,
// and returns the results by id, the summary line and the exit status.
func probe(t *testing.T, url string, flags ...string) (map[string]Result, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	args := append(append([]string{"-json", "-timeout", "2s"}, flags...), url)
	code := Main(context.Background(), args, &out, &errOut)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	results := map[string]Result{}
	for _, l := range lines[:len(lines)-1] {
		var r Result
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		results[r.ID] = r
	}
	return results, lines[len(lines)-1], code
}

// failed returns the ids of the cases that failed, sorted.
func failed(results map[string]Result) []string {
	var ids []string
	for id, r := range results {
		if r.Result == Fail {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestCorrectServer: against a server that follows the RFCs, no case
// fails, and none warns.
func TestCorrectServer(t *testing.T) {
	url := startServer(t, correct)
	results, summary, code := probe(t, url, "-subprotocol", "echo.v1")
	for _, id := range slices.Sorted(maps.Keys(results)) {
		if r := results[id]; r.Result == Fail || r.Result == Warn {
			t.Errorf("%s: %s: %s", id, r.Result, r.Detail)
		}
	}
	if code != 0 {
		t.Errorf("exit status %d, want 0 (%s)", code, summary)
	}
	if len(results) != len(Cases()) {
		t.Errorf("%d results, want one for each of the %d cases", len(results), len(Cases()))
	}
}

// TestBrokenServers: a server that breaks one rule makes exactly the cases
// about that rule fail.
func TestBrokenServers(t *testing.T) {
	cases := []struct {
		name string
		flaw flaw
		fail []string
	}{
		{"an accept key computed without the GUID fails every case that checks the accept", wrongAccept,
			[]string{"ans-accept", "ans-accept-sample", "req-connection-case", "req-connection-empty-elements", "req-connection-lines",
				"req-connection-list", "req-key-whitespace", "req-upgrade-case", "req-valid"}},
		{"a 101 without Connection fails ans-connection", noConnection, []string{"ans-connection"}},
		{"upgrading version 8 fails req-version-8", acceptsVersion8, []string{"req-version-8"}},
		{"answering a subprotocol not offered fails the cases that offer another or none", unofferedSub,
			[]string{"sub-case", "sub-none-offered", "sub-unknown"}},
		{"answering a server window larger than offered fails the window cases", largerServerWindow,
			[]string{"pmd-smwb-10", "pmd-smwb-10-honoured", "pmd-smwb-8", "pmd-smwb-quoted"}},
		{"compressing past the agreed window fails pmd-smwb-10-honoured", ignoresServerWindow, []string{"pmd-smwb-10-honoured"}},
		{"keeping context despite server_no_context_takeover fails pmd-snct-honoured", keepsServerContext, []string{"pmd-snct-honoured"}},
		{"compressing after a decline fails pmd-declined-uncompressed", compressesDeclined, []string{"pmd-declined-uncompressed"}},
		{"losing early data fails the early-data cases", losesEarlyData,
			[]string{"early-close", "early-frame", "early-ping", "early-split-frame", "early-two-frames"}},
		{"a 426 without Upgrade fails req-426-upgrade", no426Upgrade, []string{"req-426-upgrade"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			url := startServer(t, c.flaw)
			results, summary, code := probe(t, url, "-subprotocol", "echo.v1", "-timeout", "1s")
			if got := failed(results); !slices.Equal(got, c.fail) {
				for _, id := range got {
					t.Logf("%s: %s", id, results[id].Detail)
				}
				t.Errorf("failed %q, want %q", got, c.fail)
			}
			if code != 1 {
				t.Errorf("exit status %d, want 1 (%s)", code, summary)
			}
		})
	}
}

// TestDialAddress checks the address dialled and the TLS server name for
// URLs with and without a port, IPv6 literals included.
func TestDialAddress(t *testing.T) {
	for _, tt := range []struct{ url, addr, name string }{
		{"ws://example.com/chat", "example.com:80", "example.com"},
		{"wss://example.com/chat", "example.com:443", "example.com"},
		{"ws://example.com:8080/chat", "example.com:8080", "example.com"},
		{"wss://[::1]/chat", "[::1]:443", "::1"},
		{"ws://[::1]:8080/", "[::1]:8080", "::1"},
	} {
		p, err := newProber(context.Background(), Config{URL: tt.url})
		if err != nil {
			t.Fatalf("newProber(%q): %v", tt.url, err)
		}
		if p.addr != tt.addr || hostOnly(p.addr) != tt.name {
			t.Errorf("%s: address %q, server name %q; want %q, %q", tt.url, p.addr, hostOnly(p.addr), tt.addr, tt.name)
		}
	}
}

// TestRunStopsWithItsContext checks that Run starts no case once its
// context is done and returns the context's error.
func TestRunStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := Run(ctx, Config{URL: "ws://127.0.0.1:1/"}, nil, func(r Result) {
		t.Errorf("case %s ran after the context was cancelled", r.ID)
	})
	if !errors.Is(err, context.Canceled) || s != (Summary{}) {
		t.Errorf("Run = %v, %v; want no counts and context.Canceled", s, err)
	}
}

// TestResponseLines checks that the lines of a header are found in any
// ASCII case and in order, and that a name that equals it only under
// Unicode folding (ſ for s, the Kelvin sign for k) is another header.
func TestResponseLines(t *testing.T) {
	r := &response{raw: []byte("HTTP/1.1 101 Switching Protocols\r\n" +
		"sec-websocket-protocol: chat\r\n" +
		"\u017fec-WebSocket-Protocol: long s\r\n" +
		"Sec-WebSoc\u212aet-Protocol: kelvin\r\n" +
		"SEC-WEBSOCKET-PROTOCOL:\tsuperchat \r\n\r\n")}
	if got, want := r.lines("Sec-WebSocket-Protocol"), []string{"chat", "superchat"}; !slices.Equal(got, want) {
		t.Errorf("lines = %q, want %q", got, want)
	}
}
