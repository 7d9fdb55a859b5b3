package interop

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/gobwas/ws"
	gorilla "github.com/gorilla/websocket"

	"lowbit.dev/cooper"
	"lowbit.dev/cooper/internal/testkit/wsclient"
)

// installNginx and installHAProxy say how to get the proxies.
const (
	installNginx   = "install it with: apt-get install -y nginx"
	installHAProxy = "install it with: apt-get install -y haproxy"
)

// startNginx starts nginx on a free loopback port in front of origin, with
// a configuration written to a temporary folder that also holds its pid
// file and temporary files; it logs to its standard error. "/" proxies with
// the usual WebSocket settings, Host $host among them; "/keep-port/" sends
// Host $http_host instead, the request's Host as the client sent it. The
// test's cleanup stops it.
func startNginx(t *testing.T, origin string) string {
	t.Helper()
	nginx := program(t, "nginx", installNginx)
	addr, _ := startNginxConf(t, nginx, "error_log stderr notice;\nevents { worker_connections 64; }", func(dir string, port int) string {
		return fmt.Sprintf(`server {
	listen 127.0.0.1:%[1]d;
	location / {
		proxy_pass http://%[2]s;
		proxy_http_version 1.1;
		proxy_set_header Upgrade $http_upgrade;
		proxy_set_header Connection "upgrade";
		proxy_set_header Host $host;
		proxy_read_timeout 60s;
	}
	location /keep-port/ {
		proxy_pass http://%[2]s;
		proxy_http_version 1.1;
		proxy_set_header Upgrade $http_upgrade;
		proxy_set_header Connection "upgrade";
		proxy_set_header Host $http_host;
		proxy_read_timeout 60s;
	}
}`, port, origin)
	})
	return addr
}

// startNginxConf starts nginx on a free loopback port, with a
// configuration written to a temporary folder that also holds its pid file
// and temporary files: main's lines in the main context, and in the http
// block what http returns for that folder and port. It logs to its
// standard error; the test's cleanup stops it.
func startNginxConf(t *testing.T, nginx, main string, http func(dir string, port int) string) (string, *process) {
	t.Helper()
	dir := t.TempDir()
	// Workers run as root only when nginx starts as root; otherwise nginx
	// runs as the current user and needs no user directive.
	var userLine string
	if u, err := user.Current(); err == nil && os.Geteuid() == 0 {
		userLine = "user " + u.Username + ";"
	}
	return listening(t, "nginx", func(port int) *process {
		conf := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
%[3]s
http {
	access_log off;
	client_body_temp_path %[2]s/client_body;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
%[4]s
}
`, userLine, dir, main, http(dir, port))
		path := filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		return start(t, nginx, "-p", dir, "-c", path, "-e", "stderr")
	})
}

// startHAProxy starts HAProxy on a free loopback port in front of origin,
// in HTTP mode with a configuration written to a temporary folder, in the
// foreground without a pid file. The test's cleanup stops it.
func startHAProxy(t *testing.T, origin string) string {
	t.Helper()
	haproxy := program(t, "haproxy", installHAProxy)
	dir := t.TempDir()
	addr, _ := listening(t, "haproxy", func(port int) *process {
		conf := fmt.Sprintf(`global
	maxconn 64
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	timeout tunnel 60s
frontend interop
	bind 127.0.0.1:%d
	default_backend origin
backend origin
	server origin %s
`, port, origin)
		path := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		return start(t, haproxy, "-db", "-f", path)
	})
	return addr
}

// A route is a way to reach an echo server: directly or through a proxy,
// at a path.
type route struct {
	name string
	// start returns the address to connect to for an echo server at
	// origin.
	start func(t *testing.T, origin string) string
	path  string
	// sameOriginStatus is the status a page from the address the client
	// connects to gets: 101, or 403 where the proxy changes Host.
	sameOriginStatus int
}

// routes are the ways the proxy tests reach an echo server.
var routes = []route{
	{"direct", func(t *testing.T, origin string) string { return origin }, "/echo", 101},
	// nginx's $host is the host name without the port, so behind
	// "proxy_set_header Host $host" on any port but 80 the request's Host no
	// longer names the origin the page came from, and the origin check
	// refuses a page that is in fact same-origin.
	{"nginx, Host $host", startNginx, "/echo", 403},
	{"nginx, Host $http_host", startNginx, "/keep-port/echo", 101},
	{"haproxy", startHAProxy, "/echo", 101},
}

// TestProxies upgrades, echoes and closes through nginx and HAProxy in
// front of cooper, with coder's client and cooper's own, checks that the origin check still decides right behind
// them, and that a first frame sent with the upgrade request, in one write,
// still comes back.
func TestProxies(t *testing.T) {
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			e := startEcho(t, cooper.Subprotocols(serverSubprotocols...), cooper.Deflate(contextTakeover))
			addr := rt.start(t, e.Listener.Addr().String())
			url := "ws://" + addr + rt.path

			t.Run("upgrade, echo and close with compression", func(t *testing.T) {
				runClientAt(t, e, url, clientCase{
					dial:       wsclient.Coder(coder.CompressionContextTakeover),
					extensions: "permessage-deflate",
					deflate:    &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15},
				})
			})

			t.Run("cooper's client: upgrade, echo and close with compression", func(t *testing.T) {
				runClientAt(t, e, url, clientCase{
					dial:       dialCooper(offerContext),
					extensions: "permessage-deflate; client_max_window_bits=15",
					deflate:    &cooper.DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15},
				})
			})

			origins := []struct {
				name   string
				origin string
				status int
			}{
				{"a page from the address the client connects to", "http://" + addr, rt.sameOriginStatus},
				{"a page from another site is refused with 403", "https://evil.example", 403},
			}
			for _, o := range origins {
				t.Run(o.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					d := gorilla.Dialer{HandshakeTimeout: 10 * time.Second}
					c, resp, err := d.DialContext(ctx, url, http.Header{"Origin": {o.origin}})
					if resp == nil {
						t.Fatalf("dial: %v", err)
					}
					body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
					if resp.StatusCode != o.status {
						t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, o.status)
					}
					if o.status == 403 && !strings.HasPrefix(string(body), "cooper: Origin: ") {
						t.Errorf("body %q, want cooper's reason", body)
					}
					if o.origin == "http://"+addr && o.status == 403 && !strings.HasSuffix(strings.TrimSpace(string(body)), `does not match Host "127.0.0.1"`) {
						t.Errorf("body %q, want a refusal naming the Host without its port", body)
					}
					if c == nil {
						return
					}
					c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""), time.Now().Add(5*time.Second))
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					if _, _, err := c.ReadMessage(); !gorilla.IsCloseError(err, gorilla.CloseNormalClosure) {
						t.Errorf("after the close frame: %v, want the server's close frame", err)
					}
					c.Close()
					e.report(t)
				})
			}

			t.Run("a frame sent with the upgrade request comes back", func(t *testing.T) {
				pipelined(t, addr, rt.path)
				r := e.report(t)
				if r.err != nil || r.messages != 1 || r.closeCode != ws.StatusNormalClosure {
					t.Errorf("the server echoed %d messages and ended with %v, close code %d; want 1 and a close with 1000", r.messages, r.err, r.closeCode)
				}
				// Directly, net/http reads the frame with the request and cooper
				// must replay it; a proxy may hold it until the 101 comes back.
				if rt.name == "direct" && !r.replayed {
					t.Errorf("the connection did not replay the frame sent with the request")
				}
				t.Logf("the frame reached cooper with the request: %v", r.replayed)
			})
		})
	}
}

// pipelined writes an upgrade request and a first masked text frame in one
// write to addr, then reads the 101 and the echo, and closes.
func pipelined(t *testing.T, addr, path string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	nonce := make([]byte, 16)
	rand.Read(nonce)
	key := base64.StdEncoding.EncodeToString(nonce)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	frame, err := ws.CompileFrame(ws.MaskFrame(ws.NewTextFrame([]byte("early"))))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(append([]byte(req), frame...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != cooper.AcceptKey(key) {
		t.Fatalf("answer %s %v, want 101 with the key's accept", resp.Status, resp.Header)
	}
	f, err := ws.ReadFrame(br)
	if err != nil || f.Header.OpCode != ws.OpText || string(f.Payload) != "early" {
		t.Fatalf("echo %+v %q, %v; want the text early", f.Header, f.Payload, err)
	}
	if err := ws.WriteFrame(conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))); err != nil {
		t.Fatal(err)
	}
	if f, err := ws.ReadFrame(br); err != nil || f.Header.OpCode != ws.OpClose {
		t.Fatalf("after the close frame: %+v, %v; want the server's close frame", f.Header, err)
	}
}
