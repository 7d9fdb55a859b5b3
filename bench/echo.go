package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// The frame echo the floor and cooper share. It knows just enough of RFC
// 6455, section 5.2 to read one small masked client frame and send its
// payload back unmasked; it never compresses, which stays valid when
// permessage-deflate was agreed because a frame with RSV1 clear is not
// compressed (RFC 7692, section 6).

// maxEchoPayload is the largest payload echoFrame accepts; the harness
// sends 16 bytes.
const maxEchoPayload = 125

// echoBufs holds the buffers echoFrame reads into, so the echo does not
// allocate per connection and an idle connection does not keep one.
var echoBufs = sync.Pool{New: func() any { return new([2 + 4 + maxEchoPayload]byte) }}

var (
	errFrame     = errors.New("bench: frame is not a final, unmasked-by-server, uncompressed data frame")
	errFrameSize = errors.New("bench: frame payload is over 125 bytes")
)

// echo answers the one message of a harness client on c, then waits until
// the client goes away and closes c. It counts the echo, or the error, in
// st.
func echo(c net.Conn, st *serverState) {
	defer c.Close()
	buf := echoBufs.Get().(*[2 + 4 + maxEchoPayload]byte)
	err := echoFrame(c, buf[:])
	echoBufs.Put(buf)
	if err != nil {
		st.fail(err)
		return
	}
	st.echoes.Add(1)
	waitClose(c)
}

// waitClose blocks until c is closed by the peer, the idle state of every
// harness server.
func waitClose(c net.Conn) {
	var b [1]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			return
		}
	}
}

// echoFrame reads one masked client frame with a payload of at most
// maxEchoPayload bytes from c and writes the payload back in a server
// frame of the same opcode, in one Write. buf holds the frame while it is
// unmasked and answered.
func echoFrame(c net.Conn, buf []byte) error {
	const head = 2 + 4 // a 7-bit length and the masking key
	if _, err := io.ReadFull(c, buf[:head]); err != nil {
		return fmt.Errorf("bench: read frame: %w", err)
	}
	b0, b1 := buf[0], buf[1]
	op := b0 & 0x0f
	if b0&0xf0 != 0x80 || (op != 1 && op != 2) || b1&0x80 == 0 {
		return errFrame
	}
	n := int(b1 & 0x7f)
	if n > maxEchoPayload {
		return errFrameSize
	}
	if _, err := io.ReadFull(c, buf[head:head+n]); err != nil {
		return fmt.Errorf("bench: read payload: %w", err)
	}
	mask := buf[2:6]
	p := buf[head : head+n]
	for i := range p {
		p[i] ^= mask[i&3]
	}
	// The answer's two-byte header goes right before the payload.
	out := buf[head-2 : head+n]
	out[0], out[1] = 0x80|op, byte(n)
	if _, err := c.Write(out); err != nil {
		return fmt.Errorf("bench: write echo: %w", err)
	}
	return nil
}
