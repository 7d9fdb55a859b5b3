package probe

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// headerFlags collects repeated -header "Name: value" flags.
type headerFlags http.Header

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.TrimSpace(name)
	if !ok || !isToken(name) {
		return fmt.Errorf("%q is not Name: value", s)
	}
	if strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("%q has a line break", s)
	}
	http.Header(h).Add(name, strings.TrimSpace(value))
	return nil
}

// Main is the cooperprobe command: it parses args (without the program
// name), runs the cases, writes their results and the summary line to
// stdout and usage errors to stderr, and returns the exit status: 0 when
// no case failed (or -h asked for the usage), 1 when one did, 2 on a
// usage error or when ctx ended the run early (its error goes to stderr).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cooperprobe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object a case: id, title, rfc, result, detail")
	h2 := fs.Bool("h2", false, "also probe RFC 8441 extended CONNECT over HTTP/2 (wss:// URLs)")
	run := fs.String("run", "", "run only the cases whose id matches `regexp`")
	origin := fs.String("origin", "", "send `origin` as Origin: one the endpoint allows")
	subprotocol := fs.String("subprotocol", "", "offer `name`, a subprotocol the endpoint speaks")
	header := headerFlags{}
	fs.Var(header, "header", "add `Name: value` to every request (repeatable), such as authorization")
	timeout := fs.Duration("timeout", 5*time.Second, "bound each exchange by `duration`")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: cooperprobe [flags] URL\n\nChecks the opening handshake of the WebSocket server at URL (ws:// or wss://)\nagainst RFC 6455, 7692, 8441 and 9110. Cases that exchange messages need an\nendpoint that echoes.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err == flag.ErrHelp {
		return 0
	} else if err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	var match func(string) bool
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fmt.Fprintf(stderr, "cooperprobe: -run: %v\n", err)
			return 2
		}
		match = re.MatchString
	}
	cfg := Config{URL: fs.Arg(0), Origin: *origin, Subprotocol: *subprotocol, Header: http.Header(header), Timeout: *timeout, H2: *h2}
	enc := json.NewEncoder(stdout)
	groupOf := map[string]string{}
	for _, c := range Cases() {
		groupOf[c.ID] = c.Group
	}
	group := ""
	report := func(r Result) {
		if *asJSON {
			enc.Encode(r)
			return
		}
		if g := groupOf[r.ID]; g != group {
			group = g
			fmt.Fprintf(stdout, "== %s\n", g)
		}
		fmt.Fprintf(stdout, "%-4s  %-30s %s [%s]\n", r.Result, r.ID, r.Title, r.RFC)
		if r.Detail != "" {
			fmt.Fprintf(stdout, "      %s\n", r.Detail)
		}
	}
	s, err := Run(ctx, cfg, match, report)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	fmt.Fprintln(stdout, s)
	if s.Failed > 0 {
		return 1
	}
	return 0
}
