//go:build linux

package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

func parkedCount(srv *Server) int {
	srv.poller.mu.Lock()
	defer srv.poller.mu.Unlock()
	return len(srv.poller.parked)
}

func waitParked(t *testing.T, srv *Server, n int) {
	t.Helper()
	testkit.CheckFor(t, 5*time.Second, func() error {
		if got := parkedCount(srv); got != n {
			return fmt.Errorf("%d sessions parked, want %d", got, n)
		}
		return nil
	})
}

// An idle session is parked with no goroutine; what its client sends
// resumes it, and closing the server ends it as any other.
func TestParkedSession(t *testing.T) {
	srv, err := New(DefaultConfig(), newMemBus())
	if err != nil {
		t.Fatal(err)
	}
	if srv.poller == nil {
		t.Skip("no epoll")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)

	c := testkit.Dial(t, ln.Addr().String())
	c.ExpectName()
	c.Send("alice\n")
	c.Nick = "alice"
	c.Expect("alice joined!")
	waitParked(t, srv, 1)

	for range 3 { // resumed by each line, parked again after it
		c.Send("hello\n")
		c.Expect("alice: hello")
		waitParked(t, srv, 1)
	}
	// A partial line keeps the reader (it waits for the rest or a pause).
	c.Send("par")
	time.Sleep(20 * time.Millisecond)
	c.Send("tial\n")
	c.Expect("alice: partial")
	waitParked(t, srv, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	c.Expect("*** server shutting down, bye")
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := parkedCount(srv); n != 0 {
		t.Errorf("%d sessions still parked after Shutdown", n)
	}
}

// A parked client that goes away is noticed and its session ends.
func TestParkedClientCloses(t *testing.T) {
	srv, err := New(DefaultConfig(), newMemBus())
	if err != nil {
		t.Fatal(err)
	}
	if srv.poller == nil {
		t.Skip("no epoll")
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	c := testkit.Dial(t, ln.Addr().String())
	c.ExpectName()
	c.Send("bob\n")
	waitParked(t, srv, 1)
	c.Conn.Close()
	testkit.CheckFor(t, 5*time.Second, func() error {
		if n := srv.Sessions(); n != 0 {
			return fmt.Errorf("%d sessions left after the client closed", n)
		}
		return nil
	})
	if n := parkedCount(srv); n != 0 {
		t.Errorf("%d sessions still parked", n)
	}
}

// Many clients, each resumed and parked again for every line it sends:
// no input is ever left unread.
func TestParkedManyResumes(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rate, cfg.Burst = 1e6, 1e6
	srv, err := New(cfg, newMemBus())
	if err != nil {
		t.Fatal(err)
	}
	if srv.poller == nil {
		t.Skip("no epoll")
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	const clients, lines = 16, 500
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			errs <- func() error {
				conn, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return err
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(30 * time.Second))
				// On its own goroutine: the errors are returned, not fatal.
				c := &testkit.Client{Conn: conn, R: bufio.NewReader(conn)}
				if err := c.ReadName(); err != nil {
					return err
				}
				nick := "user" + string(rune('a'+i))
				io.WriteString(conn, nick+"\n")
				for j := range lines {
					want := nick + ": line " + strconv.Itoa(j)
					io.WriteString(conn, strings.TrimPrefix(want, nick+": ")+"\n")
					for {
						got, err := c.ReadLine()
						if err != nil {
							return err
						}
						if got == want {
							break
						}
					}
				}
				return nil
			}()
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
