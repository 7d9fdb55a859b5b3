package wsclient

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// A Conn is one WebSocket library's client connection, seen through what
// the tests of a server need. The context of each call bounds it: its
// deadline becomes the connection's for that call.
type Conn interface {
	// Send sends m as one data message, compressed if the library
	// compresses it.
	Send(ctx context.Context, m Message) error
	// Receive returns the next data message; a close frame is an error.
	Receive(ctx context.Context) (Message, error)
	// Close sends a close frame with code and reason, waits for the
	// server's, which must carry code too, and closes the connection. A
	// data message that comes first is an error, except with
	// coder/websocket, whose Close skips it and is bounded by coder's own
	// wait instead of ctx's deadline.
	Close(ctx context.Context, code int, reason string) error
	// Subprotocol and Extensions are the Sec-WebSocket-Protocol and
	// Sec-WebSocket-Extensions the client agreed to.
	Subprotocol() string
	Extensions() string
}

// A Dialer opens a client connection to url, offering subprotocols if
// any.
type Dialer func(ctx context.Context, url string, subprotocols ...string) (Conn, error)

// A Message is one data message of an exchange. Name says what it is in
// failures.
type Message struct {
	Name   string
	Binary bool
	Data   []byte
}

// readLimit is the size of the largest message the clients read.
const readLimit = 8 << 20

// Exchange sends each of msgs on c in turn and receives its echo, which
// must be of the same type with the same bytes; it returns the first
// failure.
func Exchange(ctx context.Context, c Conn, msgs []Message) error {
	for _, m := range msgs {
		if err := c.Send(ctx, m); err != nil {
			return fmt.Errorf("sending %s: %w", m.Name, err)
		}
		got, err := c.Receive(ctx)
		if err != nil {
			return fmt.Errorf("receiving the echo of %s: %w", m.Name, err)
		}
		if got.Binary != m.Binary || !bytes.Equal(got.Data, m.Data) {
			return fmt.Errorf("echo of %s: binary %v, %d bytes; want binary %v, the %d bytes sent", m.Name, got.Binary, len(got.Data), m.Binary, len(m.Data))
		}
	}
	return nil
}

// A Conversation is one client connection as a test expects it to go:
// offering Offer, the client agrees on Subprotocol and Extensions (""
// for none), exchanges Messages (see [Exchange]), then closes with Code
// and Reason.
type Conversation struct {
	Offer       []string
	Subprotocol string
	Extensions  string
	Messages    []Message
	Code        int
	Reason      string
}

// Have has the conversation with the server at url through dial, all of
// it within 30 s. A failed dial or exchange stops t; a wrong agreement or
// a failed close is reported and the conversation goes on.
func (c Conversation) Have(t testing.TB, dial Dialer, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := dial(ctx, url, c.Offer...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := cl.Subprotocol(); got != c.Subprotocol {
		t.Errorf("the client's subprotocol = %q, want %q", got, c.Subprotocol)
	}
	if got := cl.Extensions(); got != c.Extensions {
		t.Errorf("the client's Sec-WebSocket-Extensions = %q, want %q", got, c.Extensions)
	}
	if err := Exchange(ctx, cl, c.Messages); err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(ctx, c.Code, c.Reason); err != nil {
		t.Errorf("closing: %v", err)
	}
}

// deadline returns ctx's deadline, or the zero time, no deadline, if it
// has none.
func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// dialError adds a refused handshake's status and body to err.
func dialError(err error, resp *http.Response) error {
	if resp == nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("%w (status %d, body %q)", err, resp.StatusCode, body)
}
