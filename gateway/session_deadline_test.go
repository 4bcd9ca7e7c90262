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

// countingTransport writes at once, or, once stuck, blocks each write until
// the write deadline last set passes; it counts the deadlines set.
type countingTransport struct {
	stuckTransport
	sets   atomic.Int64
	writes atomic.Int64
	stuck  atomic.Bool
}

func (t *countingTransport) setWriteDeadline(d time.Time) {
	t.sets.Add(1)
	t.mu.Lock()
	t.deadline = d
	t.mu.Unlock()
}

func (t *countingTransport) writeBatch(b [][]byte) error {
	t.writes.Add(1)
	if t.stuck.Load() {
		return t.stuckTransport.writeBatch(b)
	}
	return nil
}

// A busy writer does not set a write deadline before every write, only when
// less than --write-timeout is left; a write that then blocks still fails
// after --write-timeout, and at most an eighth more.
func TestWriteDeadlineMovedRarely(t *testing.T) {
	const timeout = 400 * time.Millisecond
	srv, err := New(Config{WriteTimeout: timeout, MaxPending: 1 << 20}, newFuzzBus())
	if err != nil {
		t.Fatal(err)
	}
	tr := &countingTransport{stuckTransport: stuckTransport{closed: make(chan struct{})}}
	s := newSession(srv, tr, "busy", netip.Addr{})
	s.useQueue()
	for i := 0; tr.writes.Load() < 100; i++ {
		s.deliver([]byte("line\n"), "")
		if i%10 == 0 {
			time.Sleep(time.Millisecond)
		}
		if i > 1_000_000 {
			t.Fatal("no writes")
		}
	}
	if sets, writes := tr.sets.Load(), tr.writes.Load(); sets > writes/10 {
		t.Errorf("%d write deadlines set for %d writes", sets, writes)
	}

	// Wait until the writer is idle, then block the client.
	waitIdle := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		writing := s.writing
		s.mu.Unlock()
		if !writing {
			break
		}
		if time.Now().After(waitIdle) {
			t.Fatal("writer never idle")
		}
		time.Sleep(time.Millisecond)
	}
	tr.stuck.Store(true)
	start := time.Now()
	s.deliver([]byte("stuck\n"), "")
	select {
	case <-tr.closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("a blocked write not cut after %v (write timeout %v)", time.Since(start), timeout)
	}
	if d := time.Since(start); d > timeout*9/8+300*time.Millisecond || d < timeout-50*time.Millisecond {
		t.Errorf("a blocked write was cut after %v; want %v to %v", d, timeout, timeout*9/8)
	}
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	if reason != ReasonWriteError {
		t.Errorf("reason %v, want write error", reason)
	}
}
