package testkit

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// Output is a writer that several goroutines may write to (a program's
// output, a server's log) and that tests read and wait on. Its zero value
// is ready to use.
type Output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed at each write
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	if o.changed != nil {
		close(o.changed)
		o.changed = nil
	}
	return len(p), nil
}

// Snapshot returns everything written so far, and a channel closed at the
// next write.
func (o *Output) Snapshot() (string, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.changed == nil {
		o.changed = make(chan struct{})
	}
	return o.buf.String(), o.changed
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Line returns the first line written that holds substr, or "".
func (o *Output) Line(substr string) string {
	for _, l := range strings.Split(o.String(), "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

// WaitUntil waits, up to WaitFor, until cond holds for everything written
// so far; desc says what it waits for.
func (o *Output) WaitUntil(t testing.TB, desc string, cond func(string) bool) {
	t.Helper()
	deadline := time.After(WaitFor)
	for {
		s, changed := o.Snapshot()
		if cond(s) {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no %s within %v; output:\n%s", desc, WaitFor, s)
		}
	}
}
