package gateway

import (
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// sinkConn is a net.Conn whose writes cost nothing but a count, so that the
// benchmark measures the gateway's own fan-out work, not the kernel's.
type sinkConn struct {
	written atomic.Int64
	writes  atomic.Int64
	closed  atomic.Bool
}

var sinkAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}

func (c *sinkConn) Read([]byte) (int, error) { select {} }
func (c *sinkConn) Write(p []byte) (int, error) {
	c.written.Add(int64(len(p)))
	c.writes.Add(1)
	return len(p), nil
}
func (c *sinkConn) Close() error                     { c.closed.Store(true); return nil }
func (c *sinkConn) LocalAddr() net.Addr              { return sinkAddr }
func (c *sinkConn) RemoteAddr() net.Addr             { return sinkAddr }
func (c *sinkConn) SetDeadline(time.Time) error      { return nil }
func (c *sinkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *sinkConn) SetWriteDeadline(time.Time) error { return nil }

// burstBus is a memBus that says it ends bursts with KindFlush: its
// user delivers KindFlush itself.
type burstBus struct{ *memBus }

func (burstBus) FlushesBursts() bool { return true }

// fanoutRoom sets up n sessions past the handshake in one room of a server
// on a memBus (a burstBus if bursts) and returns the room's bus callback
// and the sessions' conns.
func fanoutRoom(tb testing.TB, n int, bursts bool) (deliver DeliverFunc, conns []*sinkConn) {
	tb.Helper()
	b := newMemBus()
	cfg := DefaultConfig()
	cfg.MaxPending = 1 << 30 // the benchmark outruns the writers for a while
	var bus Bus = b
	if bursts {
		bus = burstBus{b}
	}
	srv, err := New(cfg, bus)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { srv.Close() })
	for i := range n {
		c := &sinkConn{}
		s := newSession(srv, newTCPConn(c, &srv.cfg, nil), sinkAddr.String(), sinkAddr.AddrPort().Addr())
		s.nick = "user" + strconv.Itoa(i)
		s.queued = true
		if err := srv.enter(s, "lobby"); err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
	}
	b.mu.Lock()
	deliver = b.subs["lobby"][0].deliver
	b.mu.Unlock()
	return deliver, conns
}

// waitWritten waits until every conn has been written want bytes.
func waitWritten(tb testing.TB, conns []*sinkConn, want int64) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range conns {
		for c.written.Load() < want {
			if c.closed.Load() || time.Now().After(deadline) {
				tb.Fatalf("conn got %d of %d bytes (closed %v)", c.written.Load(), want, c.closed.Load())
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// BenchmarkFanout delivers one chat event from the bus to N local TCP
// sessions and counts it done when every session's writer has written the
// line. One op is one event; ns/member is per delivered line, lines/write
// how well the writers coalesce.
func BenchmarkFanout(b *testing.B) {
	const text = "hello everyone, this is a fairly ordinary chat line"
	lineLen := int64(len(formatEvent(KindSay, "alice", text)))
	for _, n := range []int{10, 100, 1000} {
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			deliver, conns := fanoutRoom(b, n, false)
			at := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			var ops int64
			for b.Loop() {
				deliver("gw.1", KindSay, "alice", text, at)
				ops++
			}
			waitWritten(b, conns, ops*lineLen)
			b.StopTimer()
			el := b.Elapsed()
			b.ReportMetric(float64(el.Nanoseconds())/float64(ops*int64(n)), "ns/member")
			var writes int64
			for _, c := range conns {
				writes += c.writes.Load()
			}
			b.ReportMetric(float64(ops*int64(n))/float64(writes), "lines/write")
		})
	}
}

// BenchmarkFanoutBurst is BenchmarkFanout with a bus that ends bursts of
// events with KindFlush, 8 chat lines a burst: the room hands each member
// a burst in one queue append. One op is one event.
func BenchmarkFanoutBurst(b *testing.B) {
	const text = "hello everyone, this is a fairly ordinary chat line"
	const burst = 8
	lineLen := int64(len(formatEvent(KindSay, "alice", text)))
	for _, n := range []int{10, 100, 1000} {
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			deliver, conns := fanoutRoom(b, n, true)
			at := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			var ops int64
			for b.Loop() {
				deliver("gw.1", KindSay, "alice", text, at)
				if ops++; ops%burst == 0 {
					deliver("", KindFlush, "", "", time.Time{})
				}
			}
			deliver("", KindFlush, "", "", time.Time{})
			waitWritten(b, conns, ops*lineLen)
			b.StopTimer()
			el := b.Elapsed()
			b.ReportMetric(float64(el.Nanoseconds())/float64(ops*int64(n)), "ns/member")
			var writes int64
			for _, c := range conns {
				writes += c.writes.Load()
			}
			b.ReportMetric(float64(ops*int64(n))/float64(writes), "lines/write")
		})
	}
}

// BenchmarkFanoutNotices is BenchmarkFanoutBurst with join and leave
// notices (of a user on another gateway, the room not quiet) instead of
// chat lines, as in a join storm: 8 a burst. One op is one event.
func BenchmarkFanoutNotices(b *testing.B) {
	const burst = 8
	joinLen := int64(len(formatEvent(KindJoin, "zed", "")))
	leaveLen := int64(len(formatEvent(KindLeave, "zed", "")))
	for _, n := range []int{10, 100, 256} {
		b.Run("N="+strconv.Itoa(n), func(b *testing.B) {
			deliver, conns := fanoutRoom(b, n, true)
			at := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			var ops, bytes int64
			for b.Loop() {
				if ops%2 == 0 {
					deliver("gw.1", KindJoin, "zed", "", at)
					bytes += joinLen
				} else {
					deliver("gw.1", KindLeave, "zed", "", at)
					bytes += leaveLen
				}
				if ops++; ops%burst == 0 {
					deliver("", KindFlush, "", "", time.Time{})
				}
			}
			deliver("", KindFlush, "", "", time.Time{})
			waitWritten(b, conns, bytes)
			b.StopTimer()
			el := b.Elapsed()
			b.ReportMetric(float64(el.Nanoseconds())/float64(ops*int64(n)), "ns/member")
			var writes int64
			for _, c := range conns {
				writes += c.writes.Load()
			}
			b.ReportMetric(float64(ops*int64(n))/float64(writes), "lines/write")
		})
	}
}

// TestFanoutAllocs checks that delivering a line costs no allocation per
// member: what one event allocates does not grow with the room.
func TestFanoutAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations over many events")
	}
	// perEvent counts allocations per event; with bursts, the bus ends
	// every 4 events with KindFlush.
	perEvent := func(n int, bursts bool) float64 {
		deliver, conns := fanoutRoom(t, n, bursts)
		const text = "hello"
		burst := 1
		if bursts {
			burst = 4
		}
		var ops int64
		send := func() {
			for range burst {
				deliver("gw.1", KindSay, "alice", text, time.Time{})
				ops++
			}
			if bursts {
				deliver("", KindFlush, "", "", time.Time{})
			}
		}
		// Warm up: queues grow to the backlog the writers let build up, and
		// the runtime keeps the writers' goroutines for reuse.
		for range 1000 {
			send()
		}
		waitWritten(t, conns, ops*int64(len("alice: hello\n")))
		allocs := testing.AllocsPerRun(200, send)
		waitWritten(t, conns, ops*int64(len("alice: hello\n")))
		return allocs / float64(burst)
	}
	// The count covers the whole process, the writers included: a writer
	// started when the runtime has no spare goroutine costs a few
	// allocations, more under the race detector on a busy machine. An
	// allocation per delivered line would cost at least one per member on
	// every try; the fewest of three tries tells the two apart.
	for _, bursts := range []bool{false, true} {
		perMember := math.Inf(1)
		for try := 0; try < 3 && perMember > 0.01; try++ {
			small, large := perEvent(10, bursts), perEvent(1000, bursts)
			t.Logf("bursts %v: allocations per event: %v with 10 members, %v with 1000", bursts, small, large)
			perMember = min(perMember, (large-small)/990)
		}
		if perMember > 0.25 {
			t.Errorf("bursts %v: fan-out allocates %.3f times per member; want 0", bursts, perMember)
		}
	}
}
