package gateway

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"
)

// nullTransport discards what it is given; for measuring the fan-out alone.
type nullTransport struct{ codec }

func (nullTransport) serve(*Session) bool        { return false }
func (nullTransport) nickRefused(*Session)       {}
func (nullTransport) writeEarly([]byte) error    { return nil }
func (nullTransport) writeBatch([][]byte) error  { return nil }
func (nullTransport) setWriteDeadline(time.Time) {}
func (nullTransport) goodbye(CloseReason)        {}
func (nullTransport) close()                     {}

// BenchmarkRoomDeliver measures one room event fanned out to members of
// both encodings: the event is encoded once per encoding, so the cost per
// event does not grow with the members beyond queueing.
func BenchmarkRoomDeliver(b *testing.B) {
	for _, members := range []int{10, 1000} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.MaxPending = 1 << 30
			if err := cfg.fill(); err != nil {
				b.Fatal(err)
			}
			srv := &Server{cfg: cfg, log: slog.New(slog.DiscardHandler)}
			r := &room{srv: srv, name: "lobby", slots: make(map[*Session]int)}
			for i := range members {
				var c codec = lineCodec{}
				if i%2 == 1 {
					c = jsonCodec{maxLine: cfg.MaxLine}
				}
				s := newSession(srv, nullTransport{c}, "", netip.Addr{})
				s.queued = true
				r.add(s)
			}
			at := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				r.deliver("id", KindSay, "alice", "the quick brown fox jumps over the lazy dog", at)
			}
		})
	}
}
