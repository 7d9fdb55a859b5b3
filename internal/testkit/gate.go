package testkit

import "sync"

// A Gate holds upgraded handlers back until the test opens it, as
// [CheckRequestStateOutlives] asks of the handlers it checks. A test that
// can fail before it opens its gate opens it in a cleanup registered after
// the server's, so that the handlers have returned when the server shuts
// down.
type Gate struct {
	c    chan struct{}
	once sync.Once
}

// NewGate returns a gate that is not open yet: Wait blocks until Open.
func NewGate() *Gate { return &Gate{c: make(chan struct{})} }

// Wait blocks until g is open.
func (g *Gate) Wait() { <-g.c }

// Open lets every Wait, present and future, return. Opening an open gate
// does nothing.
func (g *Gate) Open() { g.once.Do(func() { close(g.c) }) }
