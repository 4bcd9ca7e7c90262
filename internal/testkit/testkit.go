// Package testkit holds what the tests of every package share: polling
// waits instead of sleeps standing in for a condition.
package testkit

import (
	"testing"
	"time"
)

// pollEvery is how often CheckFor tries again.
const pollEvery = 20 * time.Millisecond

// CheckFor calls f until it returns nil, at least once and every
// pollEvery, and fails the test with f's last error once total has passed.
func CheckFor(t testing.TB, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", total, err)
		}
		time.Sleep(pollEvery)
	}
}
