package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitFor is how long a test waits for something that should happen.
const waitFor = 10 * time.Second

// testLog sends a Main's logs to t.Log until the test's cleanup has run,
// and keeps them for logsOf.
type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
	all  strings.Builder
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
		w.all.Write(p)
	}
	return len(p), nil
}

// logsOf returns what a Main started by mustRunRole has logged so far.
func logsOf(t testing.TB, m *Main) string {
	t.Helper()
	w, ok := m.Stderr.(*testLog)
	if !ok {
		t.Fatal("logsOf: not started by mustRunRole")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

func (w *testLog) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// mustRunMain starts a real chatd on 127.0.0.1 with a fresh data folder
// (unless args give one) and stops it when the test ends.
func mustRunMain(t testing.TB, args ...string) *Main {
	t.Helper()
	return mustRunRole(t, RoleSingle, args...)
}

// mustRunRole starts a real chatd of role on 127.0.0.1 and stops it when
// the test ends.
func mustRunRole(t testing.TB, role Role, args ...string) *Main {
	t.Helper()
	m := NewMain(role)
	lw := &testLog{t: t}
	m.Stdout, m.Stderr = io.Discard, lw
	var base []string
	if role.runsNode() {
		base = append(base, "--data", t.TempDir())
	}
	if role.runsGateway() {
		base = append(base, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--line-pause", "50ms")
	}
	if err := m.ParseFlags(append(base, args...)); err != nil {
		t.Fatalf("ParseFlags: %v", err)
	}
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		lw.stop()
	})
	return m
}

// client is a raw-socket chat client, as nc would be.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	nick string
	seen []string // every line read, for failure messages
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

// dialFrom connects to addr from the local address ip (any 127.0.0.0/8
// address is this machine's), so that a test can be several clients.
func dialFrom(t testing.TB, ip, addr string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitFor}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

// join connects and completes the handshake as nick, newline-terminated.
func join(t testing.TB, addr, nick string) *client {
	t.Helper()
	c := dial(t, addr)
	c.expectName()
	c.send(nick + "\n")
	c.nick = nick
	c.expect("Connected to server!")
	c.expect(nick + " joined!")
	return c
}

// expectName reads exactly the four bytes NAME.
func (c *client) expectName() {
	c.t.Helper()
	buf := make([]byte, 4)
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(c.r, buf); err != nil || string(buf) != "NAME" {
		c.t.Fatalf("want NAME, got %q (%v)", buf, err)
	}
}

func (c *client) send(s string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// line reads one line without its newline.
func (c *client) line() (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	return c.readLine()
}

func (c *client) readLine() (string, error) {
	s, err := c.r.ReadString('\n')
	if err != nil {
		return s, err
	}
	s = strings.TrimSuffix(s, "\n")
	c.seen = append(c.seen, s)
	return s, nil
}

// expect reads lines until one equals want; it fails if the connection ends
// or nothing matches within waitFor. It returns the lines skipped.
func (c *client) expect(want string) []string {
	c.t.Helper()
	return c.expectFunc(want, func(s string) bool { return s == want })
}

func (c *client) expectPrefix(prefix string) string {
	c.t.Helper()
	var got string
	c.expectFunc(prefix+"...", func(s string) bool {
		got = s
		return strings.HasPrefix(s, prefix)
	})
	return got
}

func (c *client) expectFunc(desc string, match func(string) bool) []string {
	c.t.Helper()
	return c.expectWithin(waitFor, desc, match)
}

// expectWithin is expectFunc with its own time limit.
func (c *client) expectWithin(total time.Duration, desc string, match func(string) bool) []string {
	c.t.Helper()
	var skipped []string
	deadline := time.Now().Add(total)
	for time.Now().Before(deadline) {
		c.conn.SetReadDeadline(deadline)
		s, err := c.readLine()
		if err != nil {
			c.t.Fatalf("%s: waiting for %q: %v; read so far: %q", c.nick, desc, err, c.seen)
		}
		if match(s) {
			return skipped
		}
		skipped = append(skipped, s)
	}
	c.t.Fatalf("%s: no %q within %v; read: %q", c.nick, desc, total, c.seen)
	return nil
}

// expectClosed reads until the server closes the connection and returns
// what it read.
func (c *client) expectClosed() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(waitFor))
	b, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("%s: want the server to close, got %v after %q", c.nick, err, b)
	}
	return string(b)
}

// sync sends a marker line and reads up to its echo, returning the lines
// before it: everything the server sent this client before the marker.
func (c *client) sync() []string {
	c.t.Helper()
	marker := "sync-" + time.Now().Format("150405.000000000")
	c.send(marker + "\n")
	return c.expect(c.nick + ": " + marker)
}

func (c *client) reset() {
	if tc, ok := c.conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.conn.Close()
}

func count(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}

// chatInOrder has every user send n numbered lines at once and checks that
// every user receives every line, in per-sender order.
func chatInOrder(t testing.TB, users []*client, n int) {
	t.Helper()
	for _, u := range users {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "%s line %d\n", u.nick, i)
		}
		u.send(b.String())
	}
	for _, r := range users {
		next := map[string]int{}
		for got := 0; got < n*len(users); {
			s, err := r.line()
			if err != nil {
				t.Fatalf("%s: %v", r.nick, err)
			}
			nick, text, ok := strings.Cut(s, ": ")
			if !ok {
				continue
			}
			if want := fmt.Sprintf("%s line %d", nick, next[nick]); text != want {
				t.Fatalf("%s: got %q, want %q", r.nick, text, want)
			}
			next[nick]++
			got++
		}
	}
}
