package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/chatd/chatd/internal/testkit"
)

// waitFor is how long a test waits for something that should happen.
const waitFor = testkit.WaitFor

// testLog sends a Main's logs to t.Log until the test's cleanup has run,
// and keeps them for logsOf.
type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
	all  testkit.Output
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

// client is the raw-socket chat client of every package's tests
// (testkit.Client), as nc would be.
type client = testkit.Client

// dial, dialFrom and join connect clients (testkit.Dial, DialFrom, Join).
var (
	dial     = testkit.Dial
	dialFrom = testkit.DialFrom
	join     = testkit.Join
)

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
			fmt.Fprintf(&b, "%s line %d\n", u.Nick, i)
		}
		u.Send(b.String())
	}
	for _, r := range users {
		next := map[string]int{}
		for got := 0; got < n*len(users); {
			s, err := r.Line()
			if err != nil {
				t.Fatalf("%s: %v", r.Nick, err)
			}
			nick, text, ok := strings.Cut(s, ": ")
			if !ok {
				continue
			}
			if want := fmt.Sprintf("%s line %d", nick, next[nick]); text != want {
				t.Fatalf("%s: got %q, want %q", r.Nick, text, want)
			}
			next[nick]++
			got++
		}
	}
}
