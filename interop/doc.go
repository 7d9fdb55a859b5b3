// Package interop tests cooper against software its team did not write:
// WebSocket clients in Go (gorilla/websocket, coder/websocket, gobwas/ws,
// golang.org/x/net/http2 for RFC 8441) and Node.js (the npm ws package and
// Node's own WebSocket), headless Chromium and Firefox over HTTP/1.1 and
// HTTP/2 (Chromium also over HTTP/3, against examples/h3), nginx and
// HAProxy in front of cooper, and cooper's own client against servers
// written with those libraries. It has no code of its own beyond its tests.
//
// TestFleet runs processes of examples/fleet behind HAProxy and nginx,
// configured by the files in docs/deploy, through rolling deploys.
// TestScoreboard runs cmd/cooperprobe against cooper's examples, cooper
// behind nginx and HAProxy, and the other libraries' servers, and checks
// the README's scoreboard against what it found. The TestH2Hostile tests
// speak raw HTTP/2 frames (golang.org/x/net/http2's Framer) to net/http's
// server, as a broken or hostile client would.
//
// Each test starts what it needs on loopback, on free ports, and stops it.
// Node.js scripts and their pinned packages are in the node folder (run
// npm ci there). A test whose tool is missing skips with how to install it,
// or fails when the environment has CI=true, so that CI cannot pass by
// skipping.
package interop
