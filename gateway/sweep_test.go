package gateway

import (
	"log/slog"
	"net/netip"
	"testing"
)

// A session's queues are let go after two sweeps with nothing queued in
// between; a frame queued between them keeps them.
func TestSweep(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.fill(); err != nil {
		t.Fatal(err)
	}
	srv := &Server{cfg: cfg, log: slog.New(slog.DiscardHandler)}
	s := newSession(srv, nullTransport{lineCodec{}}, "", netip.Addr{})
	s.frames, s.spare = make([][]byte, 0, 64), make([][]byte, 0, 64)

	s.sweepLocked()
	s.queueLocked([]byte("x\n")) // busy again: the next sweep only marks it
	s.frames = s.frames[:0]
	s.sweepLocked()
	if cap(s.frames) == 0 {
		t.Fatal("queues of a session that queued a frame since the last sweep were let go")
	}
	s.sweepLocked()
	if cap(s.frames) != 0 || cap(s.spare) != 0 {
		t.Errorf("idle session keeps queues of capacity %d and %d", cap(s.frames), cap(s.spare))
	}
}
