package main

import (
	"testing"

	"lowbit.dev/cooper/examples/internal/wstest"
)

func TestMain(m *testing.M) { wstest.Main(m) }

// TestEcho runs the echo examples' checks, in rooms too, and checks that
// gin.Logger logs each upgrade as 101.
func TestEcho(t *testing.T) {
	wstest.CheckEchoExample(t, run, true, `\| 101 \|.*\| +127\.0\.0\.1 \| GET +"/ws"`)
}
