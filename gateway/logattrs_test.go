package gateway

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A session's logger writes what base.With would, attributes first.
func TestSessionLogger(t *testing.T) {
	var got, want bytes.Buffer
	opts := &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	remote := "127.0.0.9:4242"
	l1 := sessionLogger(slog.New(slog.NewTextHandler(&got, opts)), 7, remote)
	l2 := slog.New(slog.NewTextHandler(&want, opts)).With("session", uint64(7), "remote", remote)
	for _, l := range []*slog.Logger{l1, l2} {
		l.Info("hello", "nick", "alice")
		l.With("room", "lobby").Warn("joined", "n", 3)
		l.WithGroup("g").Info("grouped", "k", "v")
		l.Debug("not shown")
	}
	if got.String() != want.String() {
		t.Errorf("got\n%s\nwant\n%s", got.String(), want.String())
	}
	if !strings.Contains(got.String(), "session=7 remote=127.0.0.9:4242 nick=alice") {
		t.Errorf("attributes missing: %s", got.String())
	}
}
