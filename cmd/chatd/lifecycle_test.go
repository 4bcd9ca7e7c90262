package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// On SIGTERM the real binary first fails /readyz for --drain-delay while
// chat still serves (a connected client chats, a new one joins), and only
// then tells its clients and closes; /healthz answers throughout.
func TestDrainOrder(t *testing.T) {
	const delay = 2 * time.Second
	admin := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	p := startChatd(t, "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--admin", admin,
		"--drain-delay", delay.String(), "--shutdown-timeout", "5s")
	status := func(path string, want int) func() error {
		return func() error {
			code, body, err := get("http://" + admin + path)
			if err != nil || code != want {
				return fmt.Errorf("GET %s = %d %q, %v; want %d", path, code, body, err, want)
			}
			return nil
		}
	}
	checkFor(t, waitFor, status("/readyz", http.StatusOK))
	alice := join(t, p.addr, "alice")

	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	checkFor(t, delay/2, status("/readyz", http.StatusServiceUnavailable))
	alice.Send("still here\n")
	alice.Expect("alice: still here")
	bob := join(t, p.addr, "bob")
	alice.Expect("bob joined!")
	if err := status("/healthz", http.StatusOK)(); err != nil {
		t.Error(err)
	}
	if time.Since(start) >= delay {
		t.Fatalf("the checks during the drain took %v, longer than the drain delay", time.Since(start))
	}

	for _, c := range []*client{alice, bob} {
		if got := c.ExpectClosed(); !strings.HasSuffix(got, "*** server shutting down, bye\n") {
			t.Errorf("%s got %q at shutdown", c.Nick, got)
		}
	}
	if took := time.Since(start); took < delay {
		t.Errorf("clients closed %v after SIGTERM, before the %v drain delay", took, delay)
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Errorf("chatd exited with %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("chatd did not exit after SIGTERM")
	}
}

// Under a service manager (Type=notify) the real binary sends READY=1 once
// it serves, WATCHDOG=1 every half $WATCHDOG_USEC, and STOPPING=1 on
// SIGTERM, to a unix datagram socket named by a path or an abstract @name.
func TestSystemdNotify(t *testing.T) {
	for _, kind := range []string{"path", "abstract"} {
		t.Run(kind, func(t *testing.T) {
			name := filepath.Join(t.TempDir(), "notify")
			if kind == "abstract" {
				name = fmt.Sprintf("@chatd-test-notify-%d-%d", os.Getpid(), time.Now().UnixNano())
			}
			ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			msgs := make(chan string, 1000)
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := ln.Read(buf)
					if err != nil {
						return
					}
					msgs <- string(buf[:n])
				}
			}()
			next := func(want string) {
				t.Helper()
				timeout := time.After(waitFor)
				for {
					select {
					case m := <-msgs:
						for _, line := range strings.Split(m, "\n") {
							if line == want {
								return
							}
						}
					case <-timeout:
						t.Fatalf("no %s from chatd", want)
					}
				}
			}
			t.Setenv("NOTIFY_SOCKET", name)
			t.Setenv("WATCHDOG_USEC", "200000")
			p := startChatd(t, "--listen", "127.0.0.1:0", "--data", t.TempDir())
			next("READY=1")
			join(t, p.addr, "alice") // ready means serving
			start := time.Now()
			next("WATCHDOG=1")
			next("WATCHDOG=1")
			if took := time.Since(start); took > time.Second {
				t.Errorf("two watchdog pings took %v, want about 200ms", took)
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			next("STOPPING=1")
			if err := <-p.exited; err != nil {
				t.Errorf("chatd exited with %v", err)
			}
			p.exited <- nil
		})
	}
}

// WATCHDOG_USEC meant for another process (WATCHDOG_PID) is not ours.
func TestWatchdogInterval(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "3000000")
	t.Setenv("WATCHDOG_PID", "")
	if got := watchdogInterval(); got != 1500*time.Millisecond {
		t.Errorf("interval = %v, want 1.5s", got)
	}
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()+1))
	if got := watchdogInterval(); got != 0 {
		t.Errorf("another process's watchdog: interval = %v, want 0", got)
	}
	t.Setenv("WATCHDOG_USEC", "")
	if got := watchdogInterval(); got != 0 {
		t.Errorf("no watchdog: interval = %v, want 0", got)
	}
}
