//go:build linux

package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

func parkedCount(srv *Server) int {
	srv.poller.mu.Lock()
	defer srv.poller.mu.Unlock()
	return len(srv.poller.parked)
}

func waitParked(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for parkedCount(srv) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions parked, want %d", parkedCount(srv), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
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

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	name := make([]byte, 4)
	if _, err := io.ReadFull(r, name); err != nil || string(name) != "NAME" {
		t.Fatalf("want NAME, got %q %v", name, err)
	}
	expect := func(want string) {
		t.Helper()
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if strings.TrimSuffix(line, "\n") == want {
				return
			}
		}
	}
	io.WriteString(c, "alice\n")
	expect("alice joined!")
	waitParked(t, srv, 1)

	for range 3 { // resumed by each line, parked again after it
		io.WriteString(c, "hello\n")
		expect("alice: hello")
		waitParked(t, srv, 1)
	}
	// A partial line keeps the reader (it waits for the rest or a pause).
	io.WriteString(c, "par")
	time.Sleep(20 * time.Millisecond)
	io.WriteString(c, "tial\n")
	expect("alice: partial")
	waitParked(t, srv, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	expect("*** server shutting down, bye")
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
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.ReadFull(c, make([]byte, 4))
	io.WriteString(c, "bob\n")
	waitParked(t, srv, 1)
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left after the client closed", srv.Sessions())
		}
		time.Sleep(5 * time.Millisecond)
	}
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
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				r := bufio.NewReader(c)
				if _, err := io.ReadFull(r, make([]byte, 4)); err != nil {
					return err
				}
				nick := "user" + string(rune('a'+i))
				io.WriteString(c, nick+"\n")
				for j := range lines {
					want := nick + ": line " + strconv.Itoa(j)
					io.WriteString(c, strings.TrimPrefix(want, nick+": ")+"\n")
					for {
						got, err := r.ReadString('\n')
						if err != nil {
							return err
						}
						if strings.TrimSuffix(got, "\n") == want {
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
