package main

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strings"
	"sync"
	"time"
)

// reference is a bare reference server: the strong one (strongServer, the
// yardstick every ratio is taken against) or the simple one (refServer).
type reference interface {
	addr() string
	members(room string) int
	close()
}

// newReference serves the reference of kind ("strong" or "simple") on ln.
func newReference(kind string, ln net.Listener) reference {
	if kind == "simple" {
		return newRefServer(ln)
	}
	return newStrongServer(ln)
}

// refServer is the simple reference: a bare in-memory broadcast server that speaks
// the same classic framing as chatd and does nothing else. The handshake
// writes NAME and reads a nickname line; every later line is fanned out as
// "nick: text\n" to the members of the sender's room, the sender included;
// "/join ROOM" moves rooms, and joins and departures are announced as chatd
// announces them ("nick joined!", "nick left!"). Each client has one reader
// goroutine with a default-size bufio.Reader and one writer goroutine that
// coalesces its queue into one write; a client with more than maxPending
// bytes queued is dropped. There is no NATS, no sanitizing, no rate limit
// and no history: it is what a plain Go chat server costs on this machine,
// the yardstick for chatd's figures.
type refServer struct {
	ln         net.Listener
	maxPending int
	wg         sync.WaitGroup

	mu      sync.RWMutex // guards rooms, nicks, clients and every room's members
	rooms   map[string]*refRoom
	nicks   map[string]bool
	clients map[*refClient]struct{}
	closed  bool
}

type refRoom struct {
	members []*refClient
	slot    map[*refClient]int
}

type refClient struct {
	srv  *refServer
	conn net.Conn
	nick string
	room string // guarded by srv.mu

	mu      sync.Mutex
	cond    sync.Cond
	out     [][]byte
	pending int
	closed  bool
}

const refDefaultRoom = "lobby"

// newRefServer serves the reference protocol on ln until close.
func newRefServer(ln net.Listener) *refServer {
	s := &refServer{
		ln:         ln,
		maxPending: 256 << 10,
		rooms:      make(map[string]*refRoom),
		nicks:      make(map[string]bool),
		clients:    make(map[*refClient]struct{}),
	}
	s.wg.Add(1)
	go s.accept()
	return s
}

func (s *refServer) addr() string { return s.ln.Addr().String() }

// members returns how many clients are in room (for tests).
func (s *refServer) members(room string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.rooms[room]; r != nil {
		return len(r.members)
	}
	return 0
}

func (s *refServer) accept() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff) // out of file descriptors, most likely
			continue
		}
		backoff = 0
		cl := &refClient{srv: s, conn: c}
		cl.cond.L = &cl.mu
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.clients[cl] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(2)
		go cl.writeLoop()
		go cl.readLoop()
	}
}

// close stops the listener and every client, and waits for their goroutines.
func (s *refServer) close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	clients := make([]*refClient, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	for _, c := range clients {
		c.shut()
	}
	s.wg.Wait()
}

func (c *refClient) readLoop() {
	defer c.srv.wg.Done()
	defer c.leave()
	r := bufio.NewReader(c.conn)
	if _, err := c.conn.Write([]byte("NAME")); err != nil {
		return
	}
	for c.nick == "" {
		line, err := readRefLine(r)
		if err != nil {
			return
		}
		nick := strings.TrimSpace(string(line))
		if nick == "" {
			continue
		}
		key := strings.ToLower(nick)
		c.srv.mu.Lock()
		taken := c.srv.nicks[key]
		if !taken {
			c.srv.nicks[key] = true
			c.nick = nick
		}
		c.srv.mu.Unlock()
		if taken {
			if _, err := c.conn.Write([]byte("ERROR nickname " + nick + " is taken, choose another\n")); err != nil {
				return
			}
			time.Sleep(150 * time.Millisecond)
			if _, err := c.conn.Write([]byte("NAME")); err != nil {
				return
			}
		}
	}
	c.enqueue([]byte("Connected to server!\n"))
	c.join(refDefaultRoom)
	prefix := []byte(c.nick + ": ")
	for {
		line, err := readRefLine(r)
		if err != nil {
			return
		}
		line = bytes.TrimSpace(line)
		switch {
		case len(line) == 0:
		case bytes.HasPrefix(line, []byte("/join ")):
			if room := strings.ToLower(strings.TrimSpace(string(line[6:]))); room != "" {
				c.join(room)
			}
		case bytes.Equal(line, []byte("/quit")):
			return
		default:
			out := make([]byte, 0, len(prefix)+len(line)+1)
			out = append(append(append(out, prefix...), line...), '\n')
			c.srv.broadcast(c, out)
		}
	}
}

// readRefLine reads one line without its "\n" (or "\r\n"); the slice is
// valid until the next read.
func readRefLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		for errors.Is(err, bufio.ErrBufferFull) { // too long: drop it
			_, err = r.ReadSlice('\n')
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(line[:len(line)-1], []byte("\r")), nil
}

// broadcast queues line to every member of c's room.
func (s *refServer) broadcast(c *refClient, line []byte) {
	s.mu.RLock()
	if r := s.rooms[c.room]; r != nil {
		for _, m := range r.members {
			m.enqueue(line)
		}
	}
	s.mu.RUnlock()
}

func (c *refClient) join(room string) {
	s := c.srv
	s.mu.Lock()
	old := c.room
	if old == room {
		s.mu.Unlock()
		return
	}
	if old != "" {
		s.removeLocked(c)
	}
	r := s.rooms[room]
	if r == nil {
		r = &refRoom{slot: make(map[*refClient]int)}
		s.rooms[room] = r
	}
	r.slot[c] = len(r.members)
	r.members = append(r.members, c)
	c.room = room
	s.mu.Unlock()
	if old != "" {
		s.announce(old, c.nick+" left!\n")
	}
	s.announce(room, c.nick+" joined!\n")
}

func (s *refServer) announce(room, text string) {
	line := []byte(text)
	s.mu.RLock()
	if r := s.rooms[room]; r != nil {
		for _, m := range r.members {
			m.enqueue(line)
		}
	}
	s.mu.RUnlock()
}

// removeLocked takes c out of its room; s.mu is held.
func (s *refServer) removeLocked(c *refClient) {
	r := s.rooms[c.room]
	if r == nil {
		return
	}
	i, ok := r.slot[c]
	if !ok {
		return
	}
	last := len(r.members) - 1
	r.members[i] = r.members[last]
	r.slot[r.members[i]] = i
	r.members[last] = nil
	r.members = r.members[:last]
	delete(r.slot, c)
	if len(r.members) == 0 {
		delete(s.rooms, c.room)
	}
}

// leave runs when the reader ends: the client leaves its room, frees its
// nickname and is closed.
func (c *refClient) leave() {
	s := c.srv
	s.mu.Lock()
	room := c.room
	if room != "" {
		s.removeLocked(c)
		c.room = ""
	}
	if c.nick != "" {
		delete(s.nicks, strings.ToLower(c.nick))
	}
	delete(s.clients, c)
	s.mu.Unlock()
	if room != "" {
		s.announce(room, c.nick+" left!\n")
	}
	c.shut()
}

// enqueue queues line for the writer; it never blocks. A client over the
// pending limit is closed.
func (c *refClient) enqueue(line []byte) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.pending+len(line) > c.srv.maxPending {
		c.closed = true
		c.mu.Unlock()
		c.cond.Signal()
		c.conn.Close()
		return
	}
	c.pending += len(line)
	c.out = append(c.out, line)
	c.mu.Unlock()
	c.cond.Signal()
}

func (c *refClient) shut() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cond.Signal()
	c.conn.Close()
}

// writeLoop is the client's only writer: it waits for lines and writes
// everything queued in one go.
func (c *refClient) writeLoop() {
	defer c.srv.wg.Done()
	var spare [][]byte
	for {
		c.mu.Lock()
		for len(c.out) == 0 && !c.closed {
			c.cond.Wait()
		}
		if c.closed {
			c.mu.Unlock()
			return
		}
		batch := c.out
		c.out = spare[:0]
		c.mu.Unlock()

		n := 0
		for _, b := range batch {
			n += len(b)
		}
		bufs := net.Buffers(batch)
		_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := bufs.WriteTo(c.conn)
		clear(batch)
		spare = batch[:0]
		c.mu.Lock()
		c.pending -= n
		c.mu.Unlock()
		if err != nil {
			c.shut()
			return
		}
	}
}
