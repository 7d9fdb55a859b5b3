package probe

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
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
	// The child's -test.timeout ends before this process's, so a child that
	// hangs does not outlive it and its stacks reach the failure.
	timeout := time.Duration(0) // none, as here
	if d, ok := t.Deadline(); ok {
		timeout = time.Until(d) * 9 / 10
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout="+timeout.String())
	cmd.Env = append(os.Environ(), "GODEBUG="+os.Getenv("GODEBUG")+",http2xconnect=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s with GODEBUG=http2xconnect=1: %v\n%s", t.Name(), err, out)
	}
	return false
}

// h2Server serves WebSockets over HTTP/2 as RFC 8441 says, on loopback
// with TLS, echoing every frame and negotiating permessage-deflate as the
// test server does (it does not compress); over HTTP/1.1 it is the test
// server. f may break one rule: those marked over HTTP/2, acceptsVersion8,
// unofferedSub, largerServerWindow or noEcho.
func h2Server(t *testing.T, f flaw) string {
	t.Helper()
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			(&testServer{flaw: f}).upgrade(c, brw.Reader, r)
			return
		}
		if r.Method != http.MethodConnect {
			http.Error(w, "extended CONNECT only", http.StatusBadRequest)
			return
		}
		v := r.Header.Values("Sec-Websocket-Version")
		switch {
		case f == resetsConnect:
			panic(http.ErrAbortHandler) // the stream is reset, unanswered
		case r.Header.Get(":protocol") != "websocket":
			http.Error(w, "not websocket", http.StatusBadRequest)
			return
		case len(v) != 1 || (v[0] != "13" && !(f == acceptsVersion8 && v[0] == "8")):
			w.Header().Set("Sec-WebSocket-Version", "13")
			http.Error(w, "version 13 only", http.StatusBadRequest)
			return
		case r.Header.Get("Origin") != "" && r.Header.Get("Origin") != "https://"+r.Host && f != acceptsCrossOrigin:
			http.Error(w, "cross-origin", http.StatusForbidden)
			return
		case f == refusesConnect:
			http.Error(w, "no WebSocket here", http.StatusNotFound)
			return
		}
		if slices.Contains(tokens(r.Header.Values("Sec-Websocket-Protocol")), "echo.v1") || f == unofferedSub {
			w.Header().Set("Sec-WebSocket-Protocol", "echo.v1")
		}
		if f == twoSubprotocols {
			w.Header()["Sec-Websocket-Protocol"] = []string{unknownSub1, unknownSub1}
		}
		if ext, _ := (&testServer{flaw: f}).negotiate(r.Header.Values("Sec-Websocket-Extensions")); ext != "" && f != declinesDeflate {
			w.Header().Set("Sec-WebSocket-Extensions", ext)
		}
		if f == sendsAccept {
			w.Header().Set("Sec-WebSocket-Accept", acceptKey(r.Header.Get("Sec-Websocket-Key")))
		}
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		rc.Flush()
		for f != noEcho && f != noEchoOverH2 {
			fr, err := readFrame(r.Body)
			if err != nil || !fr.masked || fr.op == opClose {
				return
			}
			out := serverFrame(fr.op, false, fr.payload)
			switch f {
			case masksFrames:
				out = frameBytes(true, false, fr.op, fr.payload)
			case garblesEcho:
				out = serverFrame(opBinary, false, fr.payload)
			}
			if _, err := w.Write(out); err != nil || rc.Flush() != nil {
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

// TestH2: over HTTP/2 a server that follows RFC 8441 passes every case,
// and one that breaks one rule gets, in the cases about that rule, the
// verdict wanted; every other case passes.
func TestH2(t *testing.T) {
	if !inExtendedConnectProcess(t) {
		return
	}
	cases := []struct {
		name string
		flaw flaw
		want map[string]string // the cases that do not pass, and their verdicts
	}{
		{"a server that follows RFC 8441 passes every case", correct, nil},
		{"upgrading version 8 fails h2-version-8", acceptsVersion8, map[string]string{"h2-version-8": Fail}},
		{"answering a subprotocol not offered fails h2-subprotocol", unofferedSub, map[string]string{"h2-subprotocol": Fail}},
		{"answering two subprotocol fields fails h2-subprotocol", twoSubprotocols, map[string]string{"h2-subprotocol": Fail}},
		{"answering a server window larger than offered fails h2-deflate", largerServerWindow, map[string]string{"h2-deflate": Fail}},
		{"accepting another site warns in h2-cross-origin", acceptsCrossOrigin, map[string]string{"h2-cross-origin": Warn}},
		{"answering Sec-WebSocket-Accept warns in h2-no-accept", sendsAccept, map[string]string{"h2-no-accept": Warn}},
		{"refusing extended CONNECT fails the cases that need a 2xx", refusesConnect,
			map[string]string{"h2-connect": Fail, "h2-no-accept": Fail, "h2-echo": Fail, "h2-subprotocol": Fail, "h2-deflate": Fail}},
		{"a server that declines permessage-deflate passes every case", declinesDeflate, nil},
		{"resetting the stream fails the cases that need an answer", resetsConnect,
			map[string]string{"h2-connect": Fail, "h2-no-accept": Fail, "h2-echo": Fail, "h2-subprotocol": Fail, "h2-deflate": Fail, "h2-cross-origin": Fail}},
		{"masking its frames fails h2-echo", masksFrames, map[string]string{"h2-echo": Fail}},
		{"echoing in another opcode fails h2-echo", garblesEcho, map[string]string{"h2-echo": Fail}},
		{"not echoing over HTTP/2 fails h2-echo", noEchoOverH2, map[string]string{"h2-echo": Fail}},
		{"not echoing, over HTTP/1.1 either, skips h2-echo", noEcho, map[string]string{"h2-echo": Skip}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkVerdicts(t, h2Results(t, h2Server(t, c.flaw)), c.want)
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
