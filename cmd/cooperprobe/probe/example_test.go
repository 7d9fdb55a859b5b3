package probe_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"

	"lowbit.dev/cooper/cmd/cooperprobe/probe"
)

// Run two request cases against a server that is no WebSocket server at
// all: it refuses every request with 400, which is what those two cases
// ask of a request that is not a valid opening handshake.
func ExampleRun() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no WebSockets here", http.StatusBadRequest)
	}))
	defer srv.Close()

	cfg := probe.Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"}
	only := regexp.MustCompile(`^req-(method-post|version-8)$`).MatchString
	sum, err := probe.Run(context.Background(), cfg, only, func(r probe.Result) {
		fmt.Printf("%s %s: %s\n", r.Result, r.ID, r.Detail)
	})
	if err != nil {
		fmt.Println(err)
	}
	fmt.Println(sum)
	// Output:
	// pass req-method-post: POST: 400 Bad Request
	// pass req-version-8: Sec-WebSocket-Version: 8: 400 Bad Request
	// 2 passed, 0 failed, 0 warned, 0 skipped
}

// Main is the cooperprobe command; with -json each case is one object.
func ExampleMain() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no WebSockets here", http.StatusBadRequest)
	}))
	defer srv.Close()

	code := probe.Main(context.Background(), []string{"-json", "-run", "^req-valid$", "ws" + strings.TrimPrefix(srv.URL, "http")}, os.Stdout, os.Stderr)
	fmt.Println("exit status", code)
	// Output:
	// {"id":"req-valid","title":"a valid opening handshake is accepted with 101","rfc":"RFC 6455, section 4.2.2","result":"fail","detail":"the request of RFC 6455 section 4.1: refused with 400 Bad Request"}
	// 0 passed, 1 failed, 0 warned, 0 skipped
	// exit status 1
}
