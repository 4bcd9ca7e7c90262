package cluster

import (
	"log/slog"
	"strings"
	"testing"
)

// A route to a peer that is not up yet, as at a normal start-up of a
// cluster, is a warning, not an error; the plaintext password notice about
// the derived credentials is debug.
func TestNATSLogLevels(t *testing.T) {
	var out strings.Builder
	l := &natsLogger{log: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l.Errorf("Error trying to connect to route (attempt %v): %v", 1, "dial tcp 127.0.0.1:6222: connect: connection refused")
	l.Warnf("Plaintext passwords detected, use nkeys or bcrypt")
	l.Errorf("JetStream failed: %v", "disk full")
	got := out.String()
	if !strings.Contains(got, `level=WARN msg="Error trying to connect to route (attempt 1)`) {
		t.Errorf("route dial failure not at warn:\n%s", got)
	}
	if strings.Contains(got, "Plaintext") {
		t.Errorf("plaintext password notice logged at info:\n%s", got)
	}
	if !strings.Contains(got, `level=ERROR msg="JetStream failed: disk full"`) {
		t.Errorf("other errors not at error:\n%s", got)
	}
}
