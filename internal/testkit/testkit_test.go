package testkit

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestCheckForRetriesUntilNil(t *testing.T) {
	n := 0
	CheckFor(t, 5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Errorf("f called %d times, want 3", n)
	}
}

// failRecorder records a Fatalf instead of ending the test.
type failRecorder struct {
	testing.TB
	msg string
}

func (r *failRecorder) Helper() {}
func (r *failRecorder) Fatalf(format string, args ...any) {
	r.msg = format
	panic(r)
}

func TestCheckForFailsWithLastError(t *testing.T) {
	r := &failRecorder{TB: t}
	calls := 0
	func() {
		defer func() {
			if p := recover(); p != r {
				t.Fatalf("want Fatalf, got %v", p)
			}
		}()
		CheckFor(r, 50*time.Millisecond, func() error { calls++; return errors.New("never") })
	}()
	if calls < 2 || r.msg == "" {
		t.Errorf("calls = %d, fatal %q", calls, r.msg)
	}
}

// echoServer plays a chat server for one client at a time: NAME, the
// welcome, each line back as "nick: line", and /quit ends it.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				io.WriteString(conn, "NAME")
				nick, _ := r.ReadString('\n')
				nick = strings.TrimSuffix(nick, "\n")
				io.WriteString(conn, "Connected to server!\n"+nick+" joined!\n")
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == "/quit\n" {
						io.WriteString(conn, "*** bye\n")
						return
					}
					io.WriteString(conn, nick+": "+l)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestClient(t *testing.T) {
	c := Join(t, echoServer(t), "alice")
	c.Send("one\ntwo\nthree\n")
	if skipped := c.Expect("alice: two"); len(skipped) != 1 || skipped[0] != "alice: one" {
		t.Errorf("skipped %q, want the first line", skipped)
	}
	if got := c.ExpectPrefix("alice: th"); got != "alice: three" {
		t.Errorf("ExpectPrefix = %q", got)
	}
	c.Send("four\n")
	if before := c.Sync(); len(before) != 1 || before[0] != "alice: four" {
		t.Errorf("Sync returned %q", before)
	}
	c.Send("/quit\n")
	if got := c.ExpectClosed(); got != "*** bye\n" {
		t.Errorf("ExpectClosed = %q", got)
	}
}

func TestOutput(t *testing.T) {
	var o Output
	go func() {
		o.Write([]byte("first line\nsecond "))
		o.Write([]byte("line\n"))
	}()
	o.WaitUntil(t, "the second line", func(s string) bool { return strings.HasSuffix(s, "second line\n") })
	if got := o.Line("second"); got != "second line" {
		t.Errorf("Line = %q", got)
	}
	if got := o.Line("third"); got != "" {
		t.Errorf("Line of nothing = %q", got)
	}
}
