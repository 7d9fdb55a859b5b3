package probe

import (
	"bytes"
	"cmp"
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

// checkVerdicts checks that every case in results has the verdict want
// gives it, or passes when want gives none, and that every case want
// names has a result.
func checkVerdicts(t *testing.T, results map[string]Result, want map[string]string) {
	t.Helper()
	for _, id := range slices.Sorted(maps.Keys(results)) {
		if r, w := results[id], cmp.Or(want[id], Pass); r.Result != w {
			t.Errorf("%s: %s %q, want %s", id, r.Result, r.Detail, w)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if _, ok := results[id]; !ok {
			t.Errorf("%s: no result, want %s", id, want[id])
		}
	}
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

// TestBrokenServers: a server that breaks one rule makes the cases about
// that rule fail, or warn where the rule is a SHOULD or left to the
// server, and the cases that depend on them skip; one that does what is
// allowed but uncommon makes them warn or skip. Every other case passes.
func TestBrokenServers(t *testing.T) {
	early := map[string]string{"early-close": Fail, "early-frame": Fail, "early-ping": Fail, "early-split-frame": Fail, "early-two-frames": Fail}
	cases := []struct {
		name string
		flaw flaw
		want map[string]string // the cases that do not pass, and their verdicts
	}{
		{"an accept key computed without the GUID fails every case that checks the accept", wrongAccept, map[string]string{
			"ans-accept": Fail, "ans-accept-sample": Fail, "req-connection-case": Fail, "req-connection-empty-elements": Fail,
			"req-connection-lines": Fail, "req-connection-list": Fail, "req-key-whitespace": Fail, "req-upgrade-case": Fail, "req-valid": Fail}},
		{"a 101 without Connection fails ans-connection", noConnection, map[string]string{"ans-connection": Fail}},
		{"upgrading version 8 fails req-version-8", acceptsVersion8, map[string]string{"req-version-8": Fail, "req-version-header": Skip}},
		{"a 426 without Upgrade fails req-426-upgrade", no426Upgrade, map[string]string{"req-426-upgrade": Fail}},
		{"ending the connection after the 101 fails ans-no-body and skips the cases that need an echo", noEcho, map[string]string{
			"ans-no-body": Fail, "ans-frames": Skip, "early-close": Skip, "early-frame": Skip, "early-ping": Skip, "early-split-frame": Skip,
			"early-two-frames": Skip, "pmd-client-context": Skip, "pmd-declined-uncompressed": Skip, "pmd-exchange": Skip,
			"pmd-smwb-10-honoured": Skip, "pmd-snct-honoured": Skip}},
		{"answering a subprotocol not offered fails the cases that offer another or none", unofferedSub,
			map[string]string{"sub-case": Fail, "sub-none-offered": Fail, "sub-unknown": Fail}},
		{"answering a server window larger than offered fails the window cases", largerServerWindow,
			map[string]string{"pmd-smwb-10": Fail, "pmd-smwb-10-honoured": Fail, "pmd-smwb-8": Fail, "pmd-smwb-quoted": Fail}},
		{"compressing past the agreed window fails pmd-smwb-10-honoured", ignoresServerWindow, map[string]string{"pmd-smwb-10-honoured": Fail}},
		{"keeping context despite server_no_context_takeover fails pmd-snct-honoured", keepsServerContext, map[string]string{"pmd-snct-honoured": Fail}},
		{"compressing after a decline fails pmd-declined-uncompressed", compressesDeclined, map[string]string{"pmd-declined-uncompressed": Fail}},
		{"compressing without RSV1 after a decline fails pmd-declined-uncompressed", compressesSilently, map[string]string{
			"pmd-declined-uncompressed": Fail, "pmd-client-context": Skip, "pmd-exchange": Skip, "pmd-smwb-10-honoured": Skip, "pmd-snct-honoured": Skip}},
		{"inflating after a decline fails pmd-declined-uncompressed", inflatesDeclined, map[string]string{"pmd-declined-uncompressed": Fail}},
		{"reading only the first offer warns in pmd-fallback", firstOfferOnly, map[string]string{"pmd-fallback": Warn}},
		{"accepting an unknown parameter fails pmd-unknown-param", acceptsUnknownParam,
			map[string]string{"pmd-unknown-param": Fail, "pmd-declined-uncompressed": Skip}},
		{"refusing the handshake for an offer warns in the cases whose offer must be declined", refusesBadOffer, map[string]string{
			"pmd-cmwb-16": Warn, "pmd-duplicate-param": Warn, "pmd-smwb-16": Warn, "pmd-smwb-7": Warn, "pmd-smwb-leading-zero": Warn,
			"pmd-smwb-valueless": Warn, "pmd-snct-value": Warn, "pmd-unknown-param": Warn, "pmd-declined-uncompressed": Skip}},
		{"answering client_no_context_takeover skips pmd-client-context", noClientContext, map[string]string{"pmd-client-context": Skip}},
		{"sending uncompressed under permessage-deflate warns in pmd-exchange", neverCompresses, map[string]string{"pmd-exchange": Warn}},
		{"echoing compressed messages as received fails the exchanges", echoesRaw, map[string]string{
			"pmd-client-context": Fail, "pmd-exchange": Fail, "pmd-smwb-10-honoured": Fail, "pmd-snct-honoured": Fail}},
		{"ignoring the client's context fails pmd-client-context", dropsClientContext, map[string]string{"pmd-client-context": Fail}},
		{"keeping the compressed bytes as the window fails pmd-client-context", windowsCompressed, map[string]string{"pmd-client-context": Fail}},
		{"losing early data fails the early-data cases", losesEarlyData, early},
		{"dropping the first frame sent with the request fails the early-data cases", dropsFirstEarlyFrame, early},
		{"answering a ping with a close frame fails early-ping", closesOnPing, map[string]string{"early-ping": Fail}},
		{"answering a ping with an empty pong fails early-ping", wrongPong, map[string]string{"early-ping": Fail}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			url := startServer(t, c.flaw)
			results, summary, code := probe(t, url, "-subprotocol", "echo.v1", "-timeout", "1s", "-run", "^(req|ans|sub|pmd|origin|early)-")
			checkVerdicts(t, results, c.want)
			want := 0
			if slices.Contains(slices.Collect(maps.Values(c.want)), Fail) {
				want = 1
			}
			if code != want {
				t.Errorf("exit status %d, want %d (%s)", code, want, summary)
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
