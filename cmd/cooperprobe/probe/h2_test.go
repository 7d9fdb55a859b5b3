package probe

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// inExtendedConnectProcess runs the calling test again in a child process
// started with GODEBUG=http2xconnect=1, which net/http reads only at
// start, unless this process is that child: then it returns true and the
// test goes on here.
func inExtendedConnectProcess(t *testing.T) bool {
	t.Helper()
	if strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "GODEBUG="+os.Getenv("GODEBUG")+",http2xconnect=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s with GODEBUG=http2xconnect=1: %v\n%s", t.Name(), err, out)
	}
	return false
}

// h2Server serves WebSockets over HTTP/2 as RFC 8441 says, on loopback
// with TLS, echoing every frame; f may break one rule (acceptsVersion8,
// unofferedSub). Over HTTP/1.1 it refuses.
func h2Server(t *testing.T, f flaw) string {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.ProtoMajor != 2 {
			http.Error(w, "extended CONNECT only", http.StatusBadRequest)
			return
		}
		v := r.Header.Values("Sec-Websocket-Version")
		switch {
		case r.Header.Get(":protocol") != "websocket":
			http.Error(w, "not websocket", http.StatusBadRequest)
			return
		case len(v) != 1 || (v[0] != "13" && !(f == acceptsVersion8 && v[0] == "8")):
			w.Header().Set("Sec-WebSocket-Version", "13")
			http.Error(w, "version 13 only", http.StatusBadRequest)
			return
		case r.Header.Get("Origin") != "" && r.Header.Get("Origin") != "https://"+r.Host:
			http.Error(w, "cross-origin", http.StatusForbidden)
			return
		}
		if slices.Contains(tokens(r.Header.Values("Sec-Websocket-Protocol")), "echo.v1") || f == unofferedSub {
			w.Header().Set("Sec-WebSocket-Protocol", "echo.v1")
		}
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		rc.Flush()
		for {
			fr, err := readFrame(r.Body)
			if err != nil || !fr.masked || fr.op == opClose {
				return
			}
			if _, err := w.Write(serverFrame(fr.op, false, fr.payload)); err != nil || rc.Flush() != nil {
				return
			}
		}
	}))
	s.EnableHTTP2 = true
	s.StartTLS()
	t.Cleanup(s.Close)
	return "wss" + strings.TrimPrefix(s.URL, "https") + "/ws"
}

// h2Results runs the HTTP/2 cases with -h2 against url.
func h2Results(t *testing.T, url string, flags ...string) map[string]Result {
	t.Helper()
	results, _, _ := probe(t, url, append([]string{"-h2", "-run", "^h2-"}, flags...)...)
	if len(results) != len(h2Cases()) {
		t.Fatalf("%d results, want the %d HTTP/2 cases", len(results), len(h2Cases()))
	}
	return results
}

// TestH2: over HTTP/2 a server that follows RFC 8441 passes every case;
// one that upgrades version 8 fails h2-version-8; one that answers a
// subprotocol not offered fails h2-subprotocol.
func TestH2(t *testing.T) {
	if !inExtendedConnectProcess(t) {
		return
	}
	cases := []struct {
		name string
		flaw flaw
		fail []string
	}{
		{"a server that follows RFC 8441 passes every case", correct, nil},
		{"upgrading version 8 fails h2-version-8", acceptsVersion8, []string{"h2-version-8"}},
		{"answering a subprotocol not offered fails h2-subprotocol", unofferedSub, []string{"h2-subprotocol"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			results := h2Results(t, h2Server(t, c.flaw))
			for id, r := range results {
				if r.Result != Pass && r.Result != Fail {
					t.Errorf("%s: %s: %s", id, r.Result, r.Detail)
				}
			}
			if got := failed(results); !slices.Equal(got, c.fail) {
				for _, id := range got {
					t.Logf("%s: %s", id, results[id].Detail)
				}
				t.Errorf("failed %q, want %q", got, c.fail)
			}
		})
	}
}

// TestH2NotAnnounced: without SETTINGS_ENABLE_CONNECT_PROTOCOL, or without
// -h2, the HTTP/2 cases are skipped, saying why.
func TestH2NotAnnounced(t *testing.T) {
	if strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") {
		t.Skip("this process announces extended CONNECT")
	}
	url := h2Server(t, correct)
	for id, r := range h2Results(t, url) {
		if r.Result != Skip || !strings.Contains(r.Detail, "SETTINGS_ENABLE_CONNECT_PROTOCOL") {
			t.Errorf("%s: %s %q, want a skip naming SETTINGS_ENABLE_CONNECT_PROTOCOL", id, r.Result, r.Detail)
		}
	}
	results, _, _ := probe(t, url, "-run", "^h2-")
	for id, r := range results {
		if r.Result != Skip || r.Detail != "needs -h2" {
			t.Errorf("without -h2, %s: %s %q, want a skip", id, r.Result, r.Detail)
		}
	}
}
