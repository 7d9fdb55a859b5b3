package interop

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"lowbit.dev/cooper/internal/testkit/wsclient"
)

// A chatPage is what chatPageState reads from the chat example's page.
type chatPage struct {
	Status string
	Lines  []string
}

// chatPageState returns a promise of the chat page's status and lines once
// every one of want is among the lines and the status is status ("" for
// any), or after 10 s, whichever comes first.
func chatPageState(status string, want ...string) string {
	w, _ := json.Marshal(append([]string{}, want...)) // [] rather than null
	return `new Promise((resolve) => {
	const want = ` + string(w) + `, end = Date.now() + 10000;
	const poll = () => {
		const status = document.getElementById("status").textContent;
		const lines = [...document.querySelectorAll("#log div")].map((d) => d.textContent);
		if ((` + strconv.Quote(status) + ` === "" || status === ` + strconv.Quote(status) + `) && want.every((l) => lines.includes(l)) || Date.now() > end) resolve({ status, lines });
		else setTimeout(poll, 20);
	};
	poll();
})`
}

// typeInChat types msg into the chat page and sends it, as a person would.
func typeInChat(t *testing.T, b page, msg string) {
	t.Helper()
	var sent bool
	b.evaluate(t, `(() => {
	document.getElementById("msg").value = `+strconv.Quote(msg)+`;
	document.getElementById("form").requestSubmit();
	return true;
})()`, &sent)
}

// TestChromiumChatExample runs examples/chat as its own process; a
// headless Chromium page and gorilla clients chat in its room (see
// useChatPage).
func TestChromiumChatExample(t *testing.T) {
	program(t, "chromium", installChromium)
	useChatPage(t, startChromium, "chromium")
}

// TestFirefoxChatExample is TestChromiumChatExample with Firefox.
func TestFirefoxChatExample(t *testing.T) {
	program(t, "firefox-esr", installFirefox)
	useChatPage(t, func(t *testing.T, url string) page { return startFirefox(t, url) }, "firefox")
}

// useChatPage runs examples/chat as its own process; a page opened by
// open, used as a person would, and gorilla clients, with and without
// compression, chat in its room: what each says reaches everyone. On
// SIGTERM everyone, the page included, is told goodbye with 1001, and the
// example exits cleanly.
func useChatPage(t *testing.T, open func(t *testing.T, url string) page, name string) {
	url, p := startExample(t, "chat")
	wsURL := "ws" + strings.TrimPrefix(url, "http") + "/ws"
	b := open(t, url+"/")

	var pg chatPage
	if b.evaluate(t, chatPageState("open"), &pg); pg.Status != "open" {
		t.Fatalf("the page shows status %q, want open", pg.Status)
	}
	typeInChat(t, b, name+" joined") // heard back: the page is in the room
	if b.evaluate(t, chatPageState("open", name+" joined"), &pg); pg.Status != "open" || !slices.Contains(pg.Lines, name+" joined") {
		t.Fatalf("the page shows %+v, want it open, with its own greeting", pg)
	}
	var room []*wsclient.Chatter
	for i := range 3 {
		room = append(room, wsclient.JoinChat(t, wsURL, fmt.Sprintf("gorilla %d", i), i == 1))
	}

	typeInChat(t, b, "hello from "+name)
	var said []string
	for i, c := range room {
		said = append(said, fmt.Sprintf("hello from gorilla %d", i))
		c.Say(t, said[i])
	}
	for _, c := range room {
		c.Hear(t, "hello from "+name)
		for _, line := range said {
			c.Hear(t, line)
		}
	}
	want := append([]string{"hello from " + name}, said...)
	if b.evaluate(t, chatPageState("open", want...), &pg); !containsAll(pg.Lines, want) {
		t.Fatalf("the page shows %q, want every line of %q", pg.Lines, want)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if b.evaluate(t, chatPageState("closed 1001"), &pg); pg.Status != "closed 1001" {
		t.Errorf("after SIGTERM the page shows status %q, want closed 1001", pg.Status)
	}
	for _, c := range room {
		select {
		case err := <-c.Ended:
			if !gorilla.IsCloseError(err, gorilla.CloseGoingAway) {
				t.Errorf("after SIGTERM a gorilla client read %v, want close 1001", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("a gorilla client was not told goodbye within 10 s of SIGTERM")
		}
	}
	select {
	case <-p.exited:
		if p.err != nil {
			t.Errorf("examples/chat exited with %v:\n%s", p.err, p.output)
		}
	case <-time.After(15 * time.Second): // a connection a browser opened ahead of need holds it 5 s
		t.Errorf("examples/chat did not exit within 15 s of SIGTERM:\n%s", p.output)
	}
}

// containsAll reports whether every one of want is in lines.
func containsAll(lines, want []string) bool {
	for _, w := range want {
		if !slices.Contains(lines, w) {
			return false
		}
	}
	return true
}
