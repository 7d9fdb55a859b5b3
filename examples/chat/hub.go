package main

// A hub is a chat room: it keeps the set of clients in it and sends each
// message to all of them. One goroutine, run, owns the set; the clients
// talk to it through channels.
type hub struct {
	clients    map[*client]bool // owned by run
	broadcast  chan []byte      // messages for everyone
	register   chan *client     // clients entering
	unregister chan *client     // clients leaving
	done       chan struct{}    // closed by close: run has stopped, or is stopping
}

func newHub() *hub {
	return &hub{
		clients:    map[*client]bool{},
		broadcast:  make(chan []byte),
		register:   make(chan *client),
		unregister: make(chan *client),
		done:       make(chan struct{}),
	}
}

// run serves the room until close is called. A client whose queue is full
// is too slow to keep up: it is dropped from the room, and its queue
// closed, which ends its connection.
func (h *hub) run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
		case c := <-h.unregister:
			if h.clients[c] {
				delete(h.clients, c)
				close(c.send)
			}
		case msg := <-h.broadcast:
			for c := range h.clients {
				select {
				case c.send <- msg:
				default:
					delete(h.clients, c)
					close(c.send)
				}
			}
		case <-h.done:
			return
		}
	}
}

// close stops run. A client that then enters, leaves or speaks is not
// held up.
func (h *hub) close() { close(h.done) }

// enter adds c to the room; it reports false if the room is closed.
func (h *hub) enter(c *client) bool {
	select {
	case h.register <- c:
		return true
	case <-h.done:
		return false
	}
}

// leave takes c out of the room, if it is still in it.
func (h *hub) leave(c *client) {
	select {
	case h.unregister <- c:
	case <-h.done:
	}
}

// say sends msg to everyone in the room.
func (h *hub) say(msg []byte) {
	select {
	case h.broadcast <- msg:
	case <-h.done:
	}
}
