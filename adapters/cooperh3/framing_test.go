package cooperh3_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/qpack"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"lowbit.dev/cooper"
)

// HTTP/3 frame types (RFC 9114, section 7.2).
const (
	frameData    = 0x0
	frameHeaders = 0x1
)

// appendFrame appends an HTTP/3 frame of type typ with payload p to b.
func appendFrame(b []byte, typ uint64, p []byte) []byte {
	b = quicvarint.Append(b, typ)
	b = quicvarint.Append(b, uint64(len(p)))
	return append(b, p...)
}

// webSocketFields is the header section of the extended CONNECT that
// opens a WebSocket to /ws on s (RFC 9220, section 3), field by field as a
// client encodes it, changed by edit if not nil.
func (s *server) webSocketFields(edit func([]qpack.HeaderField) []qpack.HeaderField) []qpack.HeaderField {
	fields := []qpack.HeaderField{
		{Name: ":method", Value: http.MethodConnect}, {Name: ":protocol", Value: "websocket"},
		{Name: ":scheme", Value: "https"}, {Name: ":authority", Value: s.addr.String()}, {Name: ":path", Value: "/ws"},
		{Name: "sec-websocket-version", Value: "13"}, {Name: "origin", Value: "https://" + s.addr.String()},
	}
	if edit != nil {
		fields = edit(fields)
	}
	return fields
}

// openRaw opens a request stream on c's QUIC connection behind quic-go's
// HTTP/3 client, and sends on it, written by hand, a HEADERS frame with
// fields and then the bytes of more, so that a test can frame the stream
// as quic-go's client never would. The answer is left unread.
func (c *client) openRaw(t *testing.T, fields []qpack.HeaderField, more []byte) *quic.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	str, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatalf("opening a stream: %v", err)
	}
	var block bytes.Buffer
	enc := qpack.NewEncoder(&block)
	for _, f := range fields {
		enc.WriteField(f)
	}
	if _, err := str.Write(append(appendFrame(nil, frameHeaders, block.Bytes()), more...)); err != nil {
		t.Fatalf("sending the request: %v", err)
	}
	return str
}

// TestMalformedExtendedConnect sends extended CONNECTs that RFC 9114,
// section 4.3.1 and RFC 8441, section 4 make malformed: quic-go's server
// resets the stream with H3_MESSAGE_ERROR (section 4.1.2) before cooper
// sees the request, as net/http's HTTP/2 server resets one (RST_STREAM)
// before an Upgrader sees it; the handler is not called and OnError hears
// nothing.
func TestMalformedExtendedConnect(t *testing.T) {
	without := func(name string) func([]qpack.HeaderField) []qpack.HeaderField {
		return func(f []qpack.HeaderField) []qpack.HeaderField {
			return slices.DeleteFunc(f, func(f qpack.HeaderField) bool { return f.Name == name })
		}
	}
	set := func(name, value string) func([]qpack.HeaderField) []qpack.HeaderField {
		return func(f []qpack.HeaderField) []qpack.HeaderField {
			for i := range f {
				if f[i].Name == name {
					f[i].Value = value
				}
			}
			return f
		}
	}
	var reported atomic.Int32
	handled := make(chan struct{}, 1)
	u := cooper.New(cooper.Protocols("websocket"), cooper.OnError(func(error) { reported.Add(1) }))
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		handled <- struct{}{}
		conn.Close()
	}), nil)
	c := s.dial(t)
	for _, tc := range []struct {
		name string
		edit func([]qpack.HeaderField) []qpack.HeaderField
	}{
		{"without :path", without(":path")},
		{"without :authority", without(":authority")},
		{"without :scheme", without(":scheme")},
		{"with an empty :protocol, a CONNECT that must not have :path", set(":protocol", "")},
		{"with a :protocol that is not a token", set(":protocol", "web socket")},
		{"with :protocol twice", func(f []qpack.HeaderField) []qpack.HeaderField {
			return slices.Insert(f, 1, qpack.HeaderField{Name: ":protocol", Value: "websocket"})
		}},
		{"with a pseudo-header after a regular field", func(f []qpack.HeaderField) []qpack.HeaderField {
			return append(without(":path")(f), qpack.HeaderField{Name: ":path", Value: "/ws"})
		}},
		{"with an upper-case field name", func(f []qpack.HeaderField) []qpack.HeaderField {
			return append(f, qpack.HeaderField{Name: "Sec-WebSocket-Key", Value: "x"})
		}},
	} {
		t.Run("an extended CONNECT "+tc.name+" is reset", func(t *testing.T) {
			str := c.openRaw(t, s.webSocketFields(tc.edit), nil)
			defer str.CancelWrite(0)
			str.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err := io.ReadAll(str)
			var se *quic.StreamError
			if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(http3.ErrCodeMessageError) {
				t.Errorf("reading the answer: %v, want a reset with H3_MESSAGE_ERROR", err)
			}
		})
	}
	select {
	case <-handled:
		t.Error("the handler was called")
	default:
	}
	if n, st := reported.Load(), u.Stats(); n != 0 || st.Active != 0 || st.Upgrades != 0 || st.Failures != 0 {
		t.Errorf("OnError got %d errors, Stats() = %+v; want the Upgrader untouched", n, st)
	}
}

// TestReadDeadlineInAFrame makes a read deadline pass while the handler's
// Read is inside a frame's header or inside a frame it skips: the timeout
// must lose nothing, so that once the deadline is lifted Read returns the
// next DATA frame's payload, as net.Conn's rule on deadlines asks.
func TestReadDeadlineInAFrame(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	conns := make(chan net.Conn, 1)
	release := make(chan struct{})
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		conns <- conn
		<-release
	}), nil)
	defer close(release)
	c := s.dial(t)
	for _, tc := range []struct {
		name         string
		before, rest []byte // sent before and after the deadline passes
	}{
		{"in a DATA frame's header", []byte{frameData}, []byte{5, 'w', 'o', 'r', 'l', 'd'}},
		{"in the two-byte length of a DATA frame's header", []byte{frameData, 0x40}, append([]byte{5}, "world"...)},
		{"in an unknown frame's payload", []byte{0x21, 4, 'x', 'x'}, appendFrame([]byte("xx"), frameData, []byte("world"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A first frame, then what the deadline is to find, in the
			// same write: the server has the one once it has the other.
			str := c.openRaw(t, s.webSocketFields(nil), append(appendFrame(nil, frameData, []byte("hello")), tc.before...))
			defer str.CancelRead(0)
			defer str.CancelWrite(0)
			conn := recv(t, conns, "handler call")
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := make([]byte, 5)
			if _, err := io.ReadFull(conn, got); err != nil || string(got) != "hello" {
				t.Fatalf("first frame: %q, %v", got, err)
			}
			conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if n, err := conn.Read(got); !isTimeout(err) {
				t.Fatalf("Read past the deadline: %d, %v; want a timeout", n, err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := str.Write(tc.rest); err != nil {
				t.Fatal(err)
			}
			clear(got)
			if _, err := io.ReadFull(conn, got); err != nil || string(got) != "world" {
				t.Errorf("the frame after the deadline: %q, %v; want \"world\"", got, err)
			}
		})
	}
}

// TestFraming sends a stream framed as quic-go's client never frames one
// (RFC 9114, section 7): the handler reads the payload of the DATA frames
// and nothing else, up to a clean end of the stream, and fails on a stream
// cut inside a frame or a frame that has no place on a request stream.
func TestFraming(t *testing.T) {
	type result struct {
		data []byte
		err  error
	}
	u := cooper.New(cooper.Protocols("websocket"))
	results := make(chan result, 1)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		data, err := io.ReadAll(conn)
		results <- result{data, err}
	}), nil)
	c := s.dial(t)
	data := func(p string) []byte { return appendFrame(nil, frameData, []byte(p)) }
	for _, tc := range []struct {
		name   string
		frames []byte
		want   string
		err    error // nil: a clean end of the stream
	}{
		{"DATA frames are read in order", slices.Concat(data("one "), data("two")), "one two", nil},
		{"empty DATA frames are skipped", slices.Concat(data(""), data("one"), data("")), "one", nil},
		{"frames of unknown types are skipped (RFC 9114, section 9)",
			slices.Concat(appendFrame(nil, 0x21, []byte("grease")), data("one"), appendFrame(nil, 0x1f*7+0x21, nil), data(" two")), "one two", nil},
		{"a frame type in two bytes is read whole", slices.Concat(appendFrame(nil, 0x40, []byte("xx")), data("one")), "one", nil},
		{"trailers are skipped", slices.Concat(data("one"), appendFrame(nil, frameHeaders, []byte{0, 0})), "one", nil},
		{"a stream cut inside a DATA frame fails with io.ErrUnexpectedEOF", data("one")[:4], "on", io.ErrUnexpectedEOF},
		{"a stream cut inside a frame header fails with io.ErrUnexpectedEOF", append(data("one"), frameData), "one", io.ErrUnexpectedEOF},
		{"a stream cut inside a skipped frame fails with io.ErrUnexpectedEOF", append(data("one"), 0x21, 3, 'x'), "one", io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			str := c.openRaw(t, s.webSocketFields(nil), tc.frames)
			defer str.CancelRead(0)
			str.Close()
			r := recv(t, results, "handler's read")
			if string(r.data) != tc.want || !errors.Is(r.err, tc.err) || (tc.err == nil) != (r.err == nil) {
				t.Errorf("read %q, %v; want %q, %v", r.data, r.err, tc.want, tc.err)
			}
		})
	}
	for _, typ := range []uint64{0x2, 0x3, 0x4, 0x5, 0x7, 0xd, 0xf0700} {
		t.Run(fmt.Sprintf("a frame of type %#x fails Read and stops the reading", typ), func(t *testing.T) {
			str := c.openRaw(t, s.webSocketFields(nil), slices.Concat(data("one"), appendFrame(nil, typ, []byte{0}), data("two")))
			defer str.CancelRead(0)
			r := recv(t, results, "handler's read")
			if string(r.data) != "one" || r.err == nil {
				t.Errorf("read %q, %v; want \"one\" and an error", r.data, r.err)
			}
			// The server's STOP_SENDING fails a Write once it arrives.
			_, err := str.Write(data("more"))
			for deadline := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
				_, err = str.Write(data("more"))
			}
			var se *quic.StreamError
			if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(http3.ErrCodeFrameUnexpected) {
				t.Errorf("writing after the frame: %v, want the server's STOP_SENDING with H3_FRAME_UNEXPECTED", err)
			}
		})
	}
}

// TestWriteDeadlineInAFrame makes a write deadline pass while the
// handler's Write is blocked on flow control in the middle of a DATA
// frame: the Write fails with a timeout; once the deadline is lifted the
// next Writes finish the frame and the client reads every byte in order,
// up to a clean end; a Close with the frame unfinished resets the stream
// (H3_REQUEST_CANCELLED) instead of ending it inside the frame, which RFC
// 9114, section 7.1 makes an error of the whole QUIC connection.
func TestWriteDeadlineInAFrame(t *testing.T) {
	for _, goOn := range []bool{true, false} {
		name := "Close with the frame unfinished resets the stream"
		if goOn {
			name = "Writes after the deadline is lifted finish the frame"
		}
		t.Run(name, func(t *testing.T) {
			u := cooper.New(cooper.Protocols("websocket"))
			timedOut := make(chan error, 1)
			s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
				defer conn.Close()
				conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
				pos, err := writePattern(conn, 0, 1<<30)
				timedOut <- err
				if goOn {
					conn.SetWriteDeadline(time.Time{})
					writePattern(conn, pos, pos+128<<10)
				}
			}), nil)
			str := s.dial(t).openRaw(t, s.webSocketFields(nil), nil) // the client reads nothing yet
			defer str.CancelRead(0)
			str.Close()
			if err := recv(t, timedOut, "end of the Write"); !isTimeout(err) {
				t.Fatalf("Write past the deadline: %v, want a timeout", err)
			}
			str.SetReadDeadline(time.Now().Add(10 * time.Second))
			status, data, err := readAnswer(str)
			if status != "200" {
				t.Fatalf("status %q, want 200", status)
			}
			for i, b := range data {
				if b != byte(i%251) {
					t.Fatalf("byte %d of %d read is %d, want %d: the stream lost or repeated bytes", i, len(data), b, i%251)
				}
			}
			var se *quic.StreamError
			if goOn && err != nil {
				t.Errorf("reading the stream after %d bytes: %v, want a clean end", len(data), err)
			} else if !goOn && (!errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(http3.ErrCodeRequestCanceled)) {
				t.Errorf("reading the stream after %d bytes: %v, want a reset with H3_REQUEST_CANCELLED", len(data), err)
			}
		})
	}
}

// writePattern writes to conn, 64 KiB at a time, the bytes of a stream
// whose byte i is i%251, from position from until to or an error, and
// returns the position it reached.
func writePattern(conn net.Conn, from, to int) (int, error) {
	chunk := make([]byte, 64<<10)
	for from < to {
		p := chunk[:min(len(chunk), to-from)]
		for i := range p {
			p[i] = byte((from + i) % 251)
		}
		n, err := conn.Write(p)
		from += n
		if err != nil {
			return from, err
		}
	}
	return from, nil
}

// readAnswer reads str, a raw request stream, to its end, frame by frame:
// the status of the answer's HEADERS frame, and the payload of the DATA
// frames after it. err is nil at a clean end, io.ErrUnexpectedEOF when the
// stream ends inside a frame, or the error that ended the reading.
func readAnswer(str io.Reader) (status string, data []byte, err error) {
	r := bufio.NewReader(str)
	for {
		typ, err := quicvarint.Read(r)
		if err == io.EOF {
			return status, data, nil
		} else if err != nil {
			return status, data, err
		}
		n, err := quicvarint.Read(r)
		if err != nil {
			return status, data, unexpected(err)
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return status, data, unexpected(err)
		}
		switch typ {
		case frameHeaders:
			for dec := qpack.NewDecoder().Decode(payload); ; {
				f, err := dec()
				if err != nil {
					break
				}
				if f.Name == ":status" {
					status = f.Value
				}
			}
		case frameData:
			data = append(data, payload...)
		}
	}
}

// unexpected returns err, or io.ErrUnexpectedEOF for io.EOF: the stream
// ended inside a frame.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isTimeout reports whether err is a net.Error that timed out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestReadsAtOnce reads a stream of many small DATA frames from two
// goroutines at once, as net.Conn allows: between them they read every
// byte once (run with -race, which also watches the framing state they
// share).
func TestReadsAtOnce(t *testing.T) {
	u := cooper.New(cooper.Protocols("websocket"))
	counted := make(chan int, 2)
	s := newServer(t, u.Handler(func(conn net.Conn, hs *cooper.Handshake) {
		defer conn.Close()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				n, _ := io.Copy(io.Discard, conn)
				counted <- int(n)
			})
		}
		wg.Wait()
	}), nil)
	var frames []byte
	for range 2000 {
		frames = appendFrame(frames, frameData, []byte("0123456789"))
	}
	str := s.dial(t).openRaw(t, s.webSocketFields(nil), frames)
	defer str.CancelRead(0)
	str.Close()
	if n := recv(t, counted, "end of a Read loop") + recv(t, counted, "end of the other"); n != 20000 {
		t.Errorf("read %d bytes between the two, want the 20000 sent", n)
	}
}
