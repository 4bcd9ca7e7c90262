package termclient

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// waitFor is how long a test waits for something that should happen.
const waitFor = testkit.WaitFor

// session is a Run driven by a test: the user's input through an io.Pipe,
// the output in an output.
type session struct {
	t      testing.TB
	in     *io.PipeWriter
	out    *testkit.Output
	done   chan error
	cancel context.CancelFunc
	next   int // lines of output already matched by expect
}

// start runs the client with cfg until the test ends.
func start(t testing.TB, cfg Config) *session {
	t.Helper()
	inR, inW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{t: t, in: inW, out: &testkit.Output{}, done: make(chan error, 1), cancel: cancel}
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
	s.out.WaitUntil(s.t, "line "+desc, func(out string) bool {
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
		return &fakeConn{testkit.NewClient(f.t, c)}
	case <-time.After(waitFor):
		f.t.Fatal("the client did not connect")
		return nil
	}
}

// fakeConn is the server's end of a connection from the client under
// test, read and written through the test kit's line client.
type fakeConn struct{ *testkit.Client }

func (c *fakeConn) send(s string) { c.T.Helper(); c.Send(s) }

func (c *fakeConn) line() string {
	c.T.Helper()
	s, err := c.Line()
	if err != nil {
		c.T.Fatalf("server read: %v (got %q)", err, s)
	}
	return s
}

// expectLine reads the client's next line and checks it.
func (c *fakeConn) expectLine(want string) {
	c.T.Helper()
	if got := c.line(); got != want {
		c.T.Fatalf("server got %q, want %q", got, want)
	}
}

// handshake plays the server's side of a successful handshake and returns
// the nickname.
func (c *fakeConn) handshake() string {
	c.T.Helper()
	c.send("NAME")
	c.Nick = c.line()
	c.send("Connected to server!\n" + c.Nick + " joined!\n")
	return c.Nick
}

// echo reads one chat line and sends it back as the server would.
func (c *fakeConn) echo(want string) {
	c.T.Helper()
	c.expectLine(want)
	c.send(c.Nick + ": " + want + "\n")
}
