package probe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var summaryLine = regexp.MustCompile(`^\d+ passed, \d+ failed, \d+ warned, \d+ skipped$`)

func runMain(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestCLIHuman: the human output lists every case under its group and
// ends with the summary line.
func TestCLIHuman(t *testing.T) {
	url := startServer(t, correct)
	out, _, code := runMain("-timeout", "2s", url)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if last := lines[len(lines)-1]; !summaryLine.MatchString(last) || code != 0 {
		t.Fatalf("last line %q, exit status %d; want the summary and 0", last, code)
	}
	for _, g := range Groups {
		if !strings.Contains(out, "== "+g+"\n") {
			t.Errorf("no heading for %s", g)
		}
	}
	for _, c := range Cases() {
		if !regexp.MustCompile(`(?m)^(pass|fail|warn|skip)  ` + regexp.QuoteMeta(c.ID) + ` `).MatchString(out) {
			t.Errorf("no line for %s", c.ID)
		}
	}
}

// TestCLIJSON: -json prints one object a case with exactly id, title,
// rfc, result and detail, then the summary line; -run selects by id.
func TestCLIJSON(t *testing.T) {
	url := startServer(t, correct)
	out, _, code := runMain("-json", "-run", "^(req-valid|ans-accept|sub-chosen)$", "-subprotocol", "echo.v1", url)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 || lines[3] != "3 passed, 0 failed, 0 warned, 0 skipped" || code != 0 {
		t.Fatalf("output %q, exit status %d; want three cases, the summary and 0", out, code)
	}
	var ids []string
	for _, l := range lines[:3] {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		keys := make([]string, 0, len(obj))
		for k, v := range obj {
			if _, ok := v.(string); !ok {
				t.Errorf("%q: %s is not a string", l, k)
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"detail", "id", "result", "rfc", "title"}) {
			t.Errorf("%q has members %q", l, keys)
		}
		if obj["result"] != Pass {
			t.Errorf("%q: not a pass", l)
		}
		ids = append(ids, obj["id"].(string))
	}
	if !slices.Equal(ids, []string{"req-valid", "ans-accept", "sub-chosen"}) {
		t.Errorf("ids %q, want the three selected in order", ids)
	}
}

// TestCLIExitStatus: 1 when a case failed, 2 on a usage error, 0 for -h.
func TestCLIExitStatus(t *testing.T) {
	if _, stderr, code := runMain("-h"); code != 0 || !strings.HasPrefix(stderr, "usage: cooperprobe") {
		t.Errorf("-h: exit status %d, stderr %q; want 0 and the usage", code, stderr)
	}
	broken := startServer(t, noConnection)
	if out, _, code := runMain("-run", "ans-connection", broken); code != 1 || !strings.HasSuffix(out, "0 passed, 1 failed, 0 warned, 0 skipped\n") {
		t.Errorf("a failing case: exit status %d, output %q; want 1 and the count", code, out)
	}
	for _, args := range [][]string{
		{},
		{"http://127.0.0.1:1/"},
		{"-run", "(", "ws://127.0.0.1:1/"},
		{"-header", "no colon", "ws://127.0.0.1:1/"},
		{"-header", "Two Words: x", "ws://127.0.0.1:1/"},
		{"-header", "N\u00e4me: x", "ws://127.0.0.1:1/"},
		{"-header", ": x", "ws://127.0.0.1:1/"},
		{"-nosuchflag", "ws://127.0.0.1:1/"},
	} {
		if _, stderr, code := runMain(args...); code != 2 || stderr == "" {
			t.Errorf("%q: exit status %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stderr bytes.Buffer
	if code := Main(ctx, []string{"ws://127.0.0.1:1/"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), context.Canceled.Error()) {
		t.Errorf("an interrupted run: exit status %d, stderr %q; want 2 and the context's error", code, stderr.String())
	}
}

// TestCLIHeaderAndOrigin: -header and -origin reach every request, so an
// endpoint that needs them accepts the valid ones.
func TestCLIHeaderAndOrigin(t *testing.T) {
	url := startServer(t, correct)
	host := strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/ws")
	out, _, code := runMain("-json", "-run", "^req-valid$", "-origin", "http://"+host, "-header", "Authorization: Bearer x", url)
	if code != 0 || !strings.Contains(out, `"result":"pass"`) {
		t.Errorf("with the right origin: exit status %d, output %q", code, out)
	}
	out, _, code = runMain("-json", "-run", "^req-valid$", "-origin", "http://elsewhere.invalid", url)
	if code != 1 || !strings.Contains(out, "403") {
		t.Errorf("with an origin the server refuses: exit status %d, output %q; want req-valid to fail with 403", code, out)
	}
}

// TestEchoExample: cooper's examples/echo, built and run as a process,
// passes every case or warns; this is the command the README shows.
func TestEchoExample(t *testing.T) {
	if os.Getenv("GOWORK") == "off" {
		t.Skip("building examples/echo needs the repository's go.work")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "echo")
	if out, err := exec.Command(goCmd, "build", "-o", bin, "lowbit.dev/cooper/examples/echo").CombinedOutput(); err != nil {
		t.Fatalf("building examples/echo: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	var addr string
	select {
	case l := <-lines:
		addr = strings.TrimPrefix(l, "listening on http://")
	case <-time.After(30 * time.Second):
		t.Fatal("examples/echo did not say where it listens")
	}
	results, summary, code := probe(t, "ws://"+addr+"/ws", "-subprotocol", "echo.v1")
	for _, id := range failed(results) {
		t.Errorf("%s failed: %s", id, results[id].Detail)
	}
	for id, r := range results {
		if r.Result == Warn && id != "origin-other-scheme" {
			t.Errorf("%s warned: %s", id, r.Detail)
		}
	}
	if code != 0 {
		t.Errorf("exit status %d (%s)", code, summary)
	}
	t.Log(summary)
}
