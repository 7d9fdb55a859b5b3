package main

import (
	"testing"

	"lowbit.dev/cooper/examples/internal/wstest"
)

func TestMain(m *testing.M) { wstest.Main(m) }

// TestEcho runs the echo examples' checks, in rooms too, and checks that
// middleware.Logger logs each upgrade as 101.
func TestEcho(t *testing.T) {
	wstest.CheckEchoExample(t, run, true, `"GET http://127\.0\.0\.1:\d+/ws HTTP/1\.1" from 127\.0\.0\.1:\d+ - 101 0B`)
}
