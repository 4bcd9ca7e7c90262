package termclient

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor is how long a test waits for something that should happen.
const waitFor = 10 * time.Second

// output is a writer that tests can wait on.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed at each write
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *output) snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String(), o.changed
}

func (o *output) String() string { s, _ := o.snapshot(); return s }

// waitUntil waits until cond holds for everything written so far.
func (o *output) waitUntil(t testing.TB, desc string, cond func(string) bool) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		s, changed := o.snapshot()
		if cond(s) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no %s within %v; output:\n%s", desc, waitFor, s)
		}
	}
}

// session is a Run driven by a test: the user's input through an io.Pipe,
// the output in an output.
type session struct {
	t      testing.TB
	in     *io.PipeWriter
	out    *output
	done   chan error
	cancel context.CancelFunc
	next   int // lines of output already matched by expect
}

// start runs the client with cfg until the test ends.
func start(t testing.TB, cfg Config) *session {
	t.Helper()
	inR, inW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{t: t, in: inW, out: newOutput(), done: make(chan error, 1), cancel: cancel}
	go func() { s.done <- Run(ctx, cfg, inR, s.out) }()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		select {
		case <-s.done:
		case <-time.After(waitFor):
			t.Errorf("Run did not return after its context ended")
		}
	})
	return s
}

// testConfig is DefaultConfig with short waits, for addr.
func testConfig(addr string) Config {
	cfg := DefaultConfig()
	cfg.Addr = addr
	cfg.MinBackoff = 10 * time.Millisecond
	cfg.MaxBackoff = 40 * time.Millisecond
	cfg.NameTimeout = 2 * time.Second
	return cfg
}

// typeLine sends a line as the user.
func (s *session) typeLine(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		s.t.Fatalf("typing %q: %v", line, err)
	}
}

// expect waits for a whole output line equal to want, after the lines that
// earlier calls matched.
func (s *session) expect(want string) {
	s.t.Helper()
	s.expectFunc(want, func(l string) bool { return l == want })
}

func (s *session) expectFunc(desc string, match func(string) bool) string {
	s.t.Helper()
	var got string
	s.out.waitUntil(s.t, "line "+desc, func(out string) bool {
		lines := strings.Split(out, "\n")
		lines = lines[:len(lines)-1] // the last is unfinished
		for i := s.next; i < len(lines); i++ {
			if match(lines[i]) {
				got, s.next = lines[i], i+1
				return true
			}
		}
		return false
	})
	return got
}

// wait waits for Run to return.
func (s *session) wait() error {
	s.t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(waitFor):
		s.t.Fatalf("Run did not return; output:\n%s", s.out)
		return nil
	}
}

// fakeServer is a chat server played by the test, one connection at a
// time.
type fakeServer struct {
	t     testing.TB
	ln    net.Listener
	conns chan net.Conn
}

func listenFake(t testing.TB) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveFake(t, ln)
}

func serveFake(t testing.TB, ln net.Listener) *fakeServer {
	f := &fakeServer{t: t, ln: ln, conns: make(chan net.Conn, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(f.conns)
				return
			}
			f.conns <- c
		}
	}()
	return f
}

func (f *fakeServer) addr() string { return f.ln.Addr().String() }

// accept waits for the client's next connection.
func (f *fakeServer) accept() *fakeConn {
	f.t.Helper()
	select {
	case c, ok := <-f.conns:
		if !ok {
			f.t.Fatal("listener closed")
		}
		f.t.Cleanup(func() { c.Close() })
		return &fakeConn{t: f.t, c: c, r: bufio.NewReader(c)}
	case <-time.After(waitFor):
		f.t.Fatal("the client did not connect")
		return nil
	}
}

type fakeConn struct {
	t    testing.TB
	c    net.Conn
	r    *bufio.Reader
	nick string
}

func (c *fakeConn) send(s string) {
	c.t.Helper()
	c.c.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c.c, s); err != nil {
		c.t.Fatalf("server send %q: %v", s, err)
	}
}

func (c *fakeConn) line() string {
	c.t.Helper()
	c.c.SetReadDeadline(time.Now().Add(waitFor))
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("server read: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\n")
}

// expectLine reads the client's next line and checks it.
func (c *fakeConn) expectLine(want string) {
	c.t.Helper()
	if got := c.line(); got != want {
		c.t.Fatalf("server got %q, want %q", got, want)
	}
}

// handshake plays the server's side of a successful handshake and returns
// the nickname.
func (c *fakeConn) handshake() string {
	c.t.Helper()
	c.send("NAME")
	c.nick = c.line()
	c.send("Connected to server!\n" + c.nick + " joined!\n")
	return c.nick
}

// echo reads one chat line and sends it back as the server would.
func (c *fakeConn) echo(want string) {
	c.t.Helper()
	c.expectLine(want)
	c.send(c.nick + ": " + want + "\n")
}
