package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
)

// "Connected to server!", a WebSocket welcome and the reply to /join are a
// promise: a line published to the room after the client has read it
// reaches the client, even when the client is the first member of the room
// on its gateway (whose subscription to the room is made by that join).
func TestJoinPromise(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	fast := []string{"--nats", ns.ClientURL(), "--rate", "100000", "--burst", "100000", "--history", "0"}
	g1 := mustRunMain(t, fast...)
	g2 := mustRunMain(t, fast...)
	a1, a2 := g1.ChatAddr().String(), g2.ChatAddr().String()
	alice := join(t, a1, "alice")
	const tries = 40
	deadline := time.Now().Add(20 * time.Second)

	t.Run("tcp", func(t *testing.T) {
		for i := range tries {
			nick := fmt.Sprintf("tcp%d", i)
			c := dial(t, a2)
			c.ExpectName()
			c.Send(nick + "\n")
			c.Nick = nick
			c.Expect("Connected to server!")
			line := fmt.Sprintf("to %s", nick)
			alice.Send(line + "\n")
			c.ExpectWithin(3*time.Second, "alice: "+line, func(s string) bool { return s == "alice: "+line })
			c.Send("/quit\n")
			alice.Expect(nick + " left!")
			if time.Now().After(deadline) {
				break
			}
		}
	})
	t.Run("join", func(t *testing.T) {
		bob := join(t, a2, "bob")
		for i := range tries {
			room := fmt.Sprintf("r%d", i)
			alice.Send("/join " + room + "\n")
			alice.Expect("alice joined!")
			bob.Send("/join " + room + "\n")
			bob.Expect("bob joined!")
			line := "in " + room
			alice.Send(line + "\n")
			bob.ExpectWithin(3*time.Second, "alice: "+line, func(s string) bool { return s == "alice: "+line })
			if time.Now().After(deadline) {
				break
			}
		}
		bob.Send("/quit\n")
		alice.Send("/join lobby\n")
		alice.Expect("alice joined!")
	})
	t.Run("websocket", func(t *testing.T) {
		for i := range tries {
			nick := fmt.Sprintf("web%d", i)
			w := wsDial(t, g2)
			w.nick = nick
			w.send(map[string]any{"type": "hello", "v": 1, "nick": nick})
			w.expectType("welcome")
			line := "to " + nick
			alice.Send(line + "\n")
			w.expect("alice: "+line, func(m wsMsg) bool { return m.Type == "event" && m.Nick == "alice" && m.Text == line })
			w.c.CloseNow()
			alice.Expect(nick + " left!")
			if time.Now().After(deadline) {
				break
			}
		}
	})
}

// A gateway pointed at a NATS server without JetStream refuses to start,
// at once, with one line that says how to enable it.
func TestGatewayRefusesNoJetStream(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{NoJetStream: true})
	checkRefusesNoJetStream(t, ns.ClientURL())
}

func checkRefusesNoJetStream(t *testing.T, url string) {
	t.Helper()
	m := NewMain(RoleGateway)
	m.Stdout, m.Stderr = io.Discard, &testLog{t: t}
	if err := m.ParseFlags([]string{"--nats", url, "--listen", "127.0.0.1:0", "--http", ""}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	start := time.Now()
	err := m.Run(ctx)
	m.Close()
	if err == nil {
		t.Fatal("Run succeeded on a NATS server without JetStream")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "nats-server -js") || !strings.Contains(msg, "chatd broker") {
		t.Errorf("refusal %q: want one line naming nats-server -js and chatd broker", msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused after %v, want at once", d)
	}
}

// watchLog passes a process's log to t.Log and reports when a line holds
// a given text.
type watchLog struct {
	testLog
	mu    sync.Mutex
	text  string
	found chan struct{}
}

func (w *watchLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.found != nil && bytes.Contains(p, []byte(w.text)) {
		close(w.found)
		w.found = nil
	}
	w.mu.Unlock()
	return w.testLog.Write(p)
}

// await returns a channel closed when a later log line holds text.
func (w *watchLog) await(text string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.text, w.found = text, make(chan struct{})
	return w.found
}

// A crash never brings anyone back: users who quit before chatd was killed
// with SIGKILL, after the sweep of delete markers had run, are neither in
// /who nor holding their nicknames after a restart on the same data, and
// the users connected at the crash are announced left! once.
func TestNoGhostsAfterCrash(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGKILL")
	}
	data := t.TempDir()
	args := []string{"--listen", "127.0.0.1:0", "--data", data, "--sweep", "1s", "--lease", "3s", "--log-level", "debug", "--history", "0"}
	p, log := startWatched(t, args...)

	stay := join(t, p.addr, "stay")
	var gone []string
	for i := range 12 {
		nick := fmt.Sprintf("gone%d", i)
		c := join(t, p.addr, nick)
		stay.Expect(nick + " joined!")
		c.Send("/quit\n")
		stay.Expect(nick + " left!")
		gone = append(gone, nick)
	}
	// A sweep purges the markers those quits left, once they are older
	// than the sweep interval; then a second one runs, with nothing left.
	for range 2 {
		select {
		case <-log.await("bus: swept delete markers"):
		case <-time.After(20 * time.Second):
			t.Fatal("no sweep of delete markers within 20s")
		}
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	p.exited <- nil

	p2, _ := startWatched(t, args...)
	watcher := join(t, p2.addr, "watcher")
	watcher.Send("/who\n")
	who := watcher.ExpectPrefix("*** in lobby")
	for _, g := range gone {
		if strings.Contains(who, g+",") || strings.HasSuffix(who, g) {
			t.Errorf("after the crash %s, who had quit, is back: %q", g, who)
		}
	}
	for _, g := range gone[:3] {
		c := dial(t, p2.addr)
		c.ExpectName()
		c.Send(g + "\n")
		c.Nick = g
		c.ExpectFunc("Connected to server! for "+g, func(s string) bool {
			if strings.HasPrefix(s, "ERROR") {
				t.Errorf("nickname %s, whose user quit before the crash: %s", g, s)
				return true
			}
			return s == "Connected to server!"
		})
		c.Send("/quit\n")
	}
	// The user connected at the crash is announced gone once its old
	// gateway's lease lapses; nobody who had quit is announced again.
	skipped := watcher.Expect("stay left!")
	for _, g := range gone {
		if count(skipped, g+" left!") > 1 {
			t.Errorf("%s left! announced again after the crash: %q", g, skipped)
		}
	}
	lines := watcher.Sync()
	if n := count(lines, "stay left!"); n > 0 {
		t.Errorf("stay left! announced again: %q", lines)
	}
}

func startWatched(t *testing.T, args ...string) (*process, *watchLog) {
	t.Helper()
	cmd := exec.Command(chatdBinary(t), append(args, "--http", "127.0.0.1:0")...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	lw := &watchLog{testLog: testLog{t: t}}
	cmd.Stderr = lw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		err := <-p.exited
		p.exited <- err
		lw.stop()
	})
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
	return p, lw
}
