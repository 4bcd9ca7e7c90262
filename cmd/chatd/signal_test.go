package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// TestMain removes the chatd binary built for the process tests.
func TestMain(m *testing.M) {
	// No test listens on the default IRC port, :6667, chatd processes
	// included: a test that wants IRC gives --irc 127.0.0.1:0.
	os.Setenv("CHAT_IRC", "")
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// chatdBinary builds the real chatd once per test run.
func chatdBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the chatd binary")
	}
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "chatd-test-bin"); buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "chatd")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// process is a chatd binary running for a test.
type process struct {
	cmd    *exec.Cmd
	exited chan error // receives cmd.Wait's result once
	addr   string     // chat address, from the printed nc line
}

// startChatd runs the chatd binary with args until the test ends. Unless
// it runs as a broker, it waits for the printed nc line.
func startChatd(t testing.TB, args ...string) *process {
	t.Helper()
	if len(args) == 0 || args[0] != "broker" {
		args = append(args, "--http", "127.0.0.1:0") // not the default :8080
	}
	cmd := exec.Command(chatdBinary(t), args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	lw := &testLog{t: t}
	cmd.Stderr = lw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill() // only if the test left it running
		err := <-p.exited
		p.exited <- err
		lw.stop()
	})
	if len(args) > 0 && args[0] == "broker" {
		go io.Copy(io.Discard, stdout)
		return p
	}
	// "  nc 127.0.0.1 40123   lo   <- advertised"
	addrRE := regexp.MustCompile(`nc (127\.0\.0\.1) (\d+)`)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := addrRE.FindStringSubmatch(sc.Text()); m != nil {
			p.addr = m[1] + ":" + m[2]
			break
		}
	}
	if p.addr == "" {
		t.Fatal("chatd printed no nc line")
	}
	go io.Copy(io.Discard, stdout)
	return p
}

// The real binary, stopped by SIGTERM, tells its clients, publishes their
// departures and exits cleanly in bounded time.
func TestSignalShutdown(t *testing.T) {
	p := startChatd(t, "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--shutdown-timeout", "5s")
	cmd, exited, addr := p.cmd, p.exited, p.addr

	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.Expect("bob joined!")

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, bob} {
		if got := c.ExpectClosed(); !strings.HasSuffix(got, "*** server shutting down, bye\n") {
			t.Errorf("%s got %q at shutdown", c.Nick, got)
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
