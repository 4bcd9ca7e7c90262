package testkit

import (
	"errors"
	"testing"
	"time"
)

func TestCheckForRetriesUntilNil(t *testing.T) {
	n := 0
	CheckFor(t, 5*time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Errorf("f called %d times, want 3", n)
	}
}

// failRecorder records a Fatalf instead of ending the test.
type failRecorder struct {
	testing.TB
	msg string
}

func (r *failRecorder) Helper() {}
func (r *failRecorder) Fatalf(format string, args ...any) {
	r.msg = format
	panic(r)
}

func TestCheckForFailsWithLastError(t *testing.T) {
	r := &failRecorder{TB: t}
	calls := 0
	func() {
		defer func() {
			if p := recover(); p != r {
				t.Fatalf("want Fatalf, got %v", p)
			}
		}()
		CheckFor(r, 50*time.Millisecond, func() error { calls++; return errors.New("never") })
	}()
	if calls < 2 || r.msg == "" {
		t.Errorf("calls = %d, fatal %q", calls, r.msg)
	}
}
