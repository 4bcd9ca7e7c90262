package gateway

import (
	"context"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memBus is an in-memory stand-in for the bus, for the fan-out benchmark
// only: Publish calls the room's subscribers at once, and the nickname and
// presence calls always succeed. The real NATS path is measured end to end
// by cmd/chatbench.
type memBus struct {
	mu   sync.Mutex
	subs map[string][]DeliverFunc
	seq  atomic.Uint64
}

func newMemBus() *memBus { return &memBus{subs: make(map[string][]DeliverFunc)} }

func (b *memBus) Publish(room, kind, nick, text string) error {
	b.mu.Lock()
	subs := b.subs[room]
	b.mu.Unlock()
	id := "m." + strconv.FormatUint(b.seq.Add(1), 10)
	for _, d := range subs {
		d(id, kind, nick, text, time.Time{})
	}
	return nil
}

func (b *memBus) Subscribe(room string, d DeliverFunc) (func(), error) {
	b.mu.Lock()
	b.subs[room] = append(b.subs[room], d)
	i := len(b.subs[room]) - 1
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		b.subs[room][i] = func(string, string, string, string, time.Time) {}
		b.mu.Unlock()
	}, nil
}

func (b *memBus) History(context.Context, string, int, DeliverFunc) error { return nil }
func (b *memBus) ClaimNick(context.Context, string) (bool, error)         { return true, nil }
func (b *memBus) ReleaseNick(context.Context, string) error               { return nil }
func (b *memBus) Join(_ context.Context, room, nick string) error {
	return b.Publish(room, KindJoin, nick, "")
}
func (b *memBus) Part(_ context.Context, room, nick, reason string) error {
	return b.Publish(room, KindLeave, nick, reason)
}
func (b *memBus) Rename(_ context.Context, room, nick, newNick string) error {
	return b.Publish(room, KindNick, nick, newNick)
}
func (b *memBus) Who(context.Context, string) ([]string, error) { return nil, nil }
func (b *memBus) Rooms(context.Context) (map[string]int, error) { return nil, nil }
func (b *memBus) SendPrivate(context.Context, string, string, string) (bool, error) {
	return false, nil
}
func (b *memBus) ReceivePrivate(func(to, from, text string, at time.Time) bool) (func(), error) {
	return func() {}, nil
}
func (b *memBus) Gateways(context.Context) ([]string, error)    { return nil, nil }
func (b *memBus) IRCGateways(context.Context) ([]string, error) { return nil, nil }

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

// fanoutRoom sets up n sessions past the handshake in one room of a server
// on a memBus and returns the room's bus callback and the sessions' conns.
func fanoutRoom(tb testing.TB, n int) (deliver DeliverFunc, conns []*sinkConn) {
	tb.Helper()
	b := newMemBus()
	cfg := DefaultConfig()
	cfg.MaxPending = 1 << 30 // the benchmark outruns the writers for a while
	srv, err := New(cfg, b)
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
	deliver = b.subs["lobby"][0]
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
			deliver, conns := fanoutRoom(b, n)
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

// TestFanoutAllocs checks that delivering a line costs no allocation per
// member: what one event allocates does not grow with the room.
func TestFanoutAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("measures allocations over many events")
	}
	perEvent := func(n int) float64 {
		deliver, conns := fanoutRoom(t, n)
		const text = "hello"
		var ops int64
		// Warm up: queues grow to the backlog the writers let build up, and
		// the runtime keeps the writers' goroutines for reuse.
		for range 1000 {
			deliver("gw.1", KindSay, "alice", text, time.Time{})
			ops++
		}
		waitWritten(t, conns, ops*int64(len("alice: hello\n")))
		allocs := testing.AllocsPerRun(200, func() {
			deliver("gw.1", KindSay, "alice", text, time.Time{})
			ops++
		})
		waitWritten(t, conns, ops*int64(len("alice: hello\n")))
		return allocs
	}
	// The count covers the whole process, the writers included: a writer
	// started when the runtime has no spare goroutine costs a few
	// allocations, more under the race detector on a busy machine. An
	// allocation per delivered line would cost at least one per member on
	// every try; the fewest of three tries tells the two apart.
	perMember := math.Inf(1)
	for try := 0; try < 3 && perMember > 0.01; try++ {
		small, large := perEvent(10), perEvent(1000)
		t.Logf("allocations per event: %v with 10 members, %v with 1000", small, large)
		perMember = min(perMember, (large-small)/990)
	}
	if perMember > 0.25 {
		t.Errorf("fan-out allocates %.3f times per member; want 0", perMember)
	}
}
