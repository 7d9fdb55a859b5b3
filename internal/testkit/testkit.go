// Package testkit holds the test helpers that more than one of cooper's
// modules needs: the goroutine-leak check their TestMain runs ([Main]), a
// loopback server whose Upgrader reports its errors ([Serve]), a raw
// WebSocket client ([Dial]), the checks several adapters share, and small
// synchronised helpers. It is a module of its own so that the root module
// ships no test code and stays standard-library only; a module whose tests
// use it requires it and points it here with a replace, as it does the
// root. Helpers built on other WebSocket libraries are in package
// wsclient, so that using testkit pulls none of them in.
package testkit

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Recv receives from ch, waiting up to 5 s; after that it fails t.
func Recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	return RecvWithin(t, ch, 5*time.Second, "value")
}

// RecvWithin receives from ch, waiting up to d; after that it fails t,
// saying that no what came.
func RecvWithin[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("no %s within %v", what, d)
		var zero T
		return zero
	}
}

// A LockedBuffer is a bytes.Buffer that loggers, or a process's output,
// on several goroutines can share. Its zero value is empty, keeps all that
// is written, and is ready to use.
type LockedBuffer struct {
	// Limit, if more than 0, is the most b keeps: later writes are
	// dropped, though reported written, so that a chatty writer cannot
	// fill memory.
	Limit int

	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p, or as much of it as Limit leaves room for, and reports
// all of p written.
func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Limit > 0 {
		b.buf.Write(p[:min(len(p), max(0, b.Limit-b.buf.Len()))])
		return len(p), nil
	}
	return b.buf.Write(p)
}

// Bytes returns a copy of what b holds.
func (b *LockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// String returns what b holds.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Take returns what b holds and empties it.
func (b *LockedBuffer) Take() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	b.buf.Reset()
	return s
}

// WaitFor waits up to 5 s for b to contain s and returns what it holds;
// after that it fails t.
func (b *LockedBuffer) WaitFor(t testing.TB, s string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := b.String()
		if strings.Contains(got, s) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in:\n%s", s, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// MustPanic fails t unless f panics; call names the call f makes.
func MustPanic(t testing.TB, call string, f func()) {
	t.Helper()
	defer func() {
		t.Helper()
		if recover() == nil {
			t.Errorf("%s did not panic", call)
		}
	}()
	f()
}
