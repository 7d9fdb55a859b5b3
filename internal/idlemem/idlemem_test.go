package idlemem

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if kind := Kind(); kind != "" {
		Serve("hello "+kind, func() int { return 7 })
		return
	}
	os.Exit(m.Run())
}

// TestStartAndServe starts this test binary as a server and checks what
// each side of the protocol sees: the hello line with the kind, memory
// figures and the active count, and a clean exit on Close.
func TestStartAndServe(t *testing.T) {
	s := Start(t, "tester")
	if s.Hello != "hello tester" {
		t.Errorf("Hello = %q, want %q", s.Hello, "hello tester")
	}
	mem, active := s.Stats(t)
	if mem == 0 || active != 7 {
		t.Errorf("Stats = %d, %d; want some memory and 7", mem, active)
	}
	if mem := s.Settle(t, func(active int) bool { return active == 7 }); mem == 0 {
		t.Error("Settle = 0, want some memory")
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close = %v, want the server to exit cleanly", err)
	}
}

// TestHold checks that Hold returns and closes the connection once the
// client sends a byte.
func TestHold(t *testing.T) {
	server, client := net.Pipe()
	defer client.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Hold(server)
	}()
	client.Write([]byte("x"))
	<-done
	if _, err := server.Read(make([]byte, 1)); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Read after Hold = %v, want io.ErrClosedPipe", err)
	}
}
