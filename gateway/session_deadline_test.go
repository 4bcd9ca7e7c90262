package gateway

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stuckTransport is a client that never reads: a write blocks until the
// write deadline last set passes. The first deadline the writer sets lets
// hook run first, for as long as hook takes or 50ms, whichever is shorter.
type stuckTransport struct {
	lineCodec
	hook     func()
	hooked   atomic.Bool
	mu       sync.Mutex
	deadline time.Time
	closed   chan struct{}
}

func (t *stuckTransport) setWriteDeadline(d time.Time) {
	if t.hooked.CompareAndSwap(false, true) {
		done := make(chan struct{})
		go func() { t.hook(); close(done) }()
		select {
		case <-done:
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.mu.Lock()
	t.deadline = d
	t.mu.Unlock()
}

func (t *stuckTransport) writeBatch([][]byte) error {
	for {
		t.mu.Lock()
		d := t.deadline
		t.mu.Unlock()
		if !d.IsZero() && time.Now().After(d) {
			return errors.New("i/o timeout")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (t *stuckTransport) serve(*Session) bool     { return false }
func (t *stuckTransport) nickRefused(*Session)    {}
func (t *stuckTransport) writeEarly([]byte) error { return nil }
func (t *stuckTransport) goodbye(CloseReason)     {}
func (t *stuckTransport) close()                  { close(t.closed) }

// A client that overflows its queue while its writer is starting a write
// is cut within closeWriteTimeout: the writer's own, longer deadline never
// lands after the overflow's short one. (Under load that race held slow
// consumers, and everything waiting for their departure, for the whole
// --write-timeout.)
func TestOverflowDeadlineWinsOverWriter(t *testing.T) {
	srv, err := New(Config{WriteTimeout: 10 * time.Second, MaxPending: 64 << 10}, newFuzzBus())
	if err != nil {
		t.Fatal(err)
	}
	tr := &stuckTransport{closed: make(chan struct{})}
	s := newSession(srv, tr, "stuck", netip.Addr{})
	tr.hook = func() { s.deliver(make([]byte, 65<<10), "") } // over MaxPending
	s.mu.Lock()
	s.queued = true
	s.mu.Unlock()

	start := time.Now()
	s.deliver([]byte("hello\n"), "")
	select {
	case <-tr.closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("not closed %v after overflowing (write timeout 10s, close write timeout %v)", time.Since(start), closeWriteTimeout)
	}
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	if reason != ReasonSlowConsumer {
		t.Errorf("reason %v, want slow_consumer", reason)
	}
}
