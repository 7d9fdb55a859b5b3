package main

import (
	"testing"

	"lowbit.dev/cooper/examples/internal/wstest"
)

func TestMain(m *testing.M) { wstest.Main(m) }

func TestEcho(t *testing.T) {
	e := wstest.Start(t, run)
	t.Run("gorilla without compression", func(t *testing.T) { wstest.CheckEcho(t, e.WS("/ws"), false, "") })
	t.Run("gorilla with compression", func(t *testing.T) { wstest.CheckEcho(t, e.WS("/ws"), true, "") })
	t.Run("gobwas sees compressed frames", func(t *testing.T) { wstest.CheckCompressed(t, e.WS("/ws"), "") })
	// middleware.Logger logs each upgrade as 101.
	e.Out.WaitFor(t, `"GET http://127\.0\.0\.1:\d+/ws HTTP/1\.1" from 127\.0\.0\.1:\d+ - 101 0B`)
}

func TestRooms(t *testing.T) {
	e := wstest.Start(t, run)
	t.Run("gorilla without compression", func(t *testing.T) { wstest.CheckEcho(t, e.WS("/rooms/lobby/ws"), false, "lobby: ") })
	t.Run("gorilla with compression", func(t *testing.T) { wstest.CheckEcho(t, e.WS("/rooms/kitchen/ws"), true, "kitchen: ") })
	t.Run("gobwas sees compressed frames", func(t *testing.T) { wstest.CheckCompressed(t, e.WS("/rooms/attic/ws"), "attic: ") })
}

func TestShutdown(t *testing.T) {
	e := wstest.Start(t, run)
	wstest.CheckShutdown(t, e, e.WS("/rooms/lobby/ws"))
}
