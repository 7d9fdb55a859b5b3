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
func failed(results map[string]Result) []string { return withResult(results, Fail) }

// withResult returns the ids of the cases whose result is result, sorted.
func withResult(results map[string]Result, result string) []string {
	var ids []string
	for id, r := range results {
		if r.Result == result {
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
// about that rule fail, or warn where the rule is a SHOULD or left to the
// server; one that does what is allowed but uncommon makes them warn or
// skip as their verdicts say.
func TestBrokenServers(t *testing.T) {
	cases := []struct {
		name string
		flaw flaw
		fail []string
		warn []string
		skip []string // some of the cases skipped
	}{
		{"an accept key computed without the GUID fails every case that checks the accept", wrongAccept,
			[]string{"ans-accept", "ans-accept-sample", "req-connection-case", "req-connection-empty-elements", "req-connection-lines",
				"req-connection-list", "req-key-whitespace", "req-upgrade-case", "req-valid"}, nil, nil},
		{"a 101 without Connection fails ans-connection", noConnection, []string{"ans-connection"}, nil, nil},
		{"upgrading version 8 fails req-version-8", acceptsVersion8, []string{"req-version-8"}, nil, nil},
		{"answering a subprotocol not offered fails the cases that offer another or none", unofferedSub,
			[]string{"sub-case", "sub-none-offered", "sub-unknown"}, nil, nil},
		{"answering a server window larger than offered fails the window cases", largerServerWindow,
			[]string{"pmd-smwb-10", "pmd-smwb-10-honoured", "pmd-smwb-8", "pmd-smwb-quoted"}, nil, nil},
		{"compressing past the agreed window fails pmd-smwb-10-honoured", ignoresServerWindow, []string{"pmd-smwb-10-honoured"}, nil, nil},
		{"keeping context despite server_no_context_takeover fails pmd-snct-honoured", keepsServerContext, []string{"pmd-snct-honoured"}, nil, nil},
		{"compressing after a decline fails pmd-declined-uncompressed", compressesDeclined, []string{"pmd-declined-uncompressed"}, nil, nil},
		{"losing early data fails the early-data cases", losesEarlyData,
			[]string{"early-close", "early-frame", "early-ping", "early-split-frame", "early-two-frames"}, nil, nil},
		{"a 426 without Upgrade fails req-426-upgrade", no426Upgrade, []string{"req-426-upgrade"}, nil, nil},
		{"ending the connection after the 101 fails ans-no-body and skips the cases that need an echo", noEcho, []string{"ans-no-body"}, nil,
			[]string{"ans-frames", "early-close", "early-frame", "early-ping", "early-split-frame", "early-two-frames", "pmd-client-context",
				"pmd-declined-uncompressed", "pmd-exchange", "pmd-smwb-10-honoured", "pmd-snct-honoured"}},
		{"reading only the first offer warns in pmd-fallback", firstOfferOnly, nil, []string{"pmd-fallback"}, nil},
		{"accepting an unknown parameter fails pmd-unknown-param", acceptsUnknownParam, []string{"pmd-unknown-param"}, nil,
			[]string{"pmd-declined-uncompressed"}},
		{"refusing the handshake for an offer warns in the cases whose offer must be declined", refusesBadOffer, nil,
			[]string{"pmd-cmwb-16", "pmd-duplicate-param", "pmd-smwb-16", "pmd-smwb-7", "pmd-smwb-leading-zero", "pmd-smwb-valueless", "pmd-snct-value", "pmd-unknown-param"},
			[]string{"pmd-declined-uncompressed"}},
		{"answering client_no_context_takeover skips pmd-client-context", noClientContext, nil, nil, []string{"pmd-client-context"}},
		{"sending uncompressed under permessage-deflate warns in pmd-exchange", neverCompresses, nil, []string{"pmd-exchange"}, nil},
		{"echoing compressed messages as received fails the exchanges", echoesRaw,
			[]string{"pmd-client-context", "pmd-exchange", "pmd-smwb-10-honoured", "pmd-snct-honoured"}, nil, nil},
		{"ignoring the client's context fails pmd-client-context", dropsClientContext, []string{"pmd-client-context"}, nil, nil},
		{"keeping the compressed bytes as the window fails pmd-client-context", windowsCompressed, []string{"pmd-client-context"}, nil, nil},
		{"inflating after a decline fails pmd-declined-uncompressed", inflatesDeclined, []string{"pmd-declined-uncompressed"}, nil, nil},
		{"dropping the first frame sent with the request fails the early-data cases", dropsFirstEarlyFrame,
			[]string{"early-close", "early-frame", "early-ping", "early-split-frame", "early-two-frames"}, nil, nil},
		{"answering a ping with a close frame fails early-ping", closesOnPing, []string{"early-ping"}, nil, nil},
		{"answering a ping with an empty pong fails early-ping", wrongPong, []string{"early-ping"}, nil, nil},
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
			if got := withResult(results, Warn); !slices.Equal(got, c.warn) {
				t.Errorf("warned %q, want %q", got, c.warn)
			}
			for _, id := range c.skip {
				if r := results[id]; r.Result != Skip {
					t.Errorf("%s: %s %q, want skip", id, r.Result, r.Detail)
				}
			}
			if code != min(len(c.fail), 1) {
				t.Errorf("exit status %d, want %d (%s)", code, min(len(c.fail), 1), summary)
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
