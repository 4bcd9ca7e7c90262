package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// WaitFor is how long a test waits for something that should happen.
const WaitFor = 10 * time.Second

// Client is a raw-socket client of the classic line protocol, as nc would
// be: the one the tests of every package speak to a gateway through. Its
// methods fail the test (they call T.Fatalf), so they belong on the test's
// goroutine; ReadName and ReadLine return errors instead, for other
// goroutines.
type Client struct {
	T    testing.TB
	Conn net.Conn
	R    *bufio.Reader // reads Conn; it may hold lines read ahead
	Nick string        // names the client in failure messages; Sync needs it
	Seen []string      // every line read, for failure messages
}

// NewClient is a client on conn (a TLS connection, one with a PROXY
// header sent already, ...), which is closed when the test ends.
func NewClient(t testing.TB, conn net.Conn) *Client {
	t.Cleanup(func() { conn.Close() })
	return &Client{T: t, Conn: conn, R: bufio.NewReader(conn)}
}

// Dial connects to addr.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, WaitFor)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return NewClient(t, c)
}

// DialFrom connects to addr from the local address ip (any 127.0.0.0/8
// address is this machine's), so that a test can be several clients.
func DialFrom(t testing.TB, ip, addr string) *Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: WaitFor}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ip, err)
	}
	return NewClient(t, c)
}

// Join connects and completes the handshake as nick, newline-terminated.
func Join(t testing.TB, addr, nick string) *Client {
	t.Helper()
	c := Dial(t, addr)
	c.ExpectName()
	c.Send(nick + "\n")
	c.Nick = nick
	c.Expect("Connected to server!")
	c.Expect(nick + " joined!")
	return c
}

// ReadName reads exactly the four bytes NAME, within the deadline set on
// Conn.
func (c *Client) ReadName() error {
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c.R, buf); err != nil || string(buf) != "NAME" {
		return fmt.Errorf("want NAME, got %q (%v)", buf, err)
	}
	return nil
}

// ExpectName reads exactly the four bytes NAME.
func (c *Client) ExpectName() {
	c.T.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(WaitFor))
	if err := c.ReadName(); err != nil {
		c.T.Fatal(err)
	}
}

// Send writes s as it is: a line needs its newline.
func (c *Client) Send(s string) {
	c.T.Helper()
	c.Conn.SetWriteDeadline(time.Now().Add(WaitFor))
	if _, err := io.WriteString(c.Conn, s); err != nil {
		c.T.Fatalf("send %q: %v", s, err)
	}
}

// Line reads one line without its newline, within WaitFor.
func (c *Client) Line() (string, error) {
	c.Conn.SetReadDeadline(time.Now().Add(WaitFor))
	return c.ReadLine()
}

// ReadLine reads one line without its newline, within the deadline set on
// Conn.
func (c *Client) ReadLine() (string, error) {
	s, err := c.R.ReadString('\n')
	if err != nil {
		return s, err
	}
	s = strings.TrimSuffix(s, "\n")
	c.Seen = append(c.Seen, s)
	return s, nil
}

// Expect reads lines until one equals want; it fails if the connection ends
// or nothing matches within WaitFor. It returns the lines skipped.
func (c *Client) Expect(want string) []string {
	c.T.Helper()
	return c.ExpectFunc(want, func(s string) bool { return s == want })
}

// ExpectPrefix reads lines until one starts with prefix, and returns it.
func (c *Client) ExpectPrefix(prefix string) string {
	c.T.Helper()
	var got string
	c.ExpectFunc(prefix+"...", func(s string) bool {
		got = s
		return strings.HasPrefix(s, prefix)
	})
	return got
}

// ExpectFunc reads lines until one matches (desc says what it wants), and
// returns the lines skipped.
func (c *Client) ExpectFunc(desc string, match func(string) bool) []string {
	c.T.Helper()
	return c.ExpectWithin(WaitFor, desc, match)
}

// ExpectWithin is ExpectFunc with its own time limit.
func (c *Client) ExpectWithin(total time.Duration, desc string, match func(string) bool) []string {
	c.T.Helper()
	var skipped []string
	deadline := time.Now().Add(total)
	for time.Now().Before(deadline) {
		c.Conn.SetReadDeadline(deadline)
		s, err := c.ReadLine()
		if err != nil {
			c.T.Fatalf("%s: waiting for %q: %v; read so far: %q", c.Nick, desc, err, c.Seen)
		}
		if match(s) {
			return skipped
		}
		skipped = append(skipped, s)
	}
	c.T.Fatalf("%s: no %q within %v; read: %q", c.Nick, desc, total, c.Seen)
	return nil
}

// ExpectInOrder reads the next lines and fails unless they are exactly
// want, in order, within total: nothing dropped, nothing between them.
func (c *Client) ExpectInOrder(total time.Duration, want []string) {
	c.T.Helper()
	deadline := time.Now().Add(total)
	for i, w := range want {
		c.Conn.SetReadDeadline(deadline)
		got, err := c.ReadLine()
		if err != nil {
			c.T.Fatalf("%s: line %d of %d: %v; read: %q", c.Nick, i, len(want), err, c.Seen)
		}
		if got != w {
			c.T.Fatalf("%s: line %d = %q, want %q", c.Nick, i, got, w)
		}
	}
}

// ExpectClosed reads until the server closes the connection and returns
// what it read.
func (c *Client) ExpectClosed() string {
	c.T.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(WaitFor))
	b, err := io.ReadAll(c.R)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		c.T.Fatalf("%s: want the server to close, got %v after %q", c.Nick, err, b)
	}
	return string(b)
}

// Sync sends a marker line and reads up to its echo, returning the lines
// before it: everything the server sent this client before the marker.
func (c *Client) Sync() []string {
	c.T.Helper()
	marker := "sync-" + time.Now().Format("150405.000000000")
	c.Send(marker + "\n")
	return c.Expect(c.Nick + ": " + marker)
}

// Reset closes the connection abruptly: the server reads a reset, not an
// end of stream.
func (c *Client) Reset() {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Conn.Close()
}
