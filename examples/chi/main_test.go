package main

import (
	"testing"

	"lowbit.dev/cooper/examples/internal/wstest"
)

func TestMain(m *testing.M) { wstest.Main(m) }

func TestEcho(t *testing.T) {
	e := wstest.Start(t, run)
	wstest.CheckClients(t, e, false)
	// middleware.Logger logs each upgrade as 101.
	e.Out.WaitFor(t, `"GET http://127\.0\.0\.1:\d+/ws HTTP/1\.1" from 127\.0\.0\.1:\d+ - 101 0B`)
}

func TestRooms(t *testing.T) { wstest.CheckClients(t, wstest.Start(t, run), true) }

func TestShutdown(t *testing.T) {
	e := wstest.Start(t, run)
	wstest.CheckShutdown(t, e, e.WS("/rooms/lobby/ws"))
}
