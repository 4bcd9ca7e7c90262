package main

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The real binary, stopped by SIGTERM, tells its clients, publishes their
// departures and exits cleanly in bounded time.
func TestSignalShutdown(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the chatd binary")
	}
	bin := filepath.Join(t.TempDir(), "chatd")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data", t.TempDir(), "--shutdown-timeout", "5s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testLog{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill() // only if the test failed before it exited
		<-exited
	})

	// "  nc 127.0.0.1 40123   lo   <- advertised"
	addrRE := regexp.MustCompile(`nc (127\.0\.0\.1) (\d+)`)
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1] + ":" + m[2]
			break
		}
	}
	if addr == "" {
		t.Fatal("chatd printed no nc line")
	}
	go func() {
		for sc.Scan() {
		}
	}()

	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.expect("bob joined!")

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, bob} {
		if got := c.expectClosed(); !strings.HasSuffix(got, "* server shutting down, bye\n") {
			t.Errorf("%s got %q at shutdown", c.nick, got)
		}
	}
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("chatd exited with %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("chatd did not exit after SIGTERM")
	}
	t.Logf("SIGTERM to exit: %v", time.Since(start).Round(time.Millisecond))
}
