package bus

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Op is a kind of JetStream call a gateway makes, for metrics.
type Op int

const (
	OpKVWrite     Op = iota // write to a bucket (nickname claim, presence, lease)
	OpKVGet                 // read a key from its stream leader
	OpKVDelete              // delete a key (purge at a revision)
	OpHistoryRead           // read a room's history back for a join
	numOps
)

var opNames = [numOps]string{"kv_write", "kv_get", "kv_delete", "history_read"}

func (o Op) String() string {
	if o < 0 || o >= numOps {
		return "unknown"
	}
	return opNames[o]
}

// Ops lists every Op.
func Ops() []Op {
	out := make([]Op, numOps)
	for i := range out {
		out[i] = Op(i)
	}
	return out
}

// OpBuckets are the upper bounds of the JetStream call latency histogram.
var OpBuckets = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

// ReplayBuckets are the upper bounds of the history replay size histogram,
// in lines.
var ReplayBuckets = [...]int{0, 1, 5, 10, 25, 50, 100, 250, 500, 1000}

// opStats are the JetStream call counters: single atomic adds per call.
type opStats struct {
	calls, errors [numOps]atomic.Uint64
	latency       [numOps][len(OpBuckets) + 1]atomic.Uint64
	latencySum    [numOps]atomic.Int64

	replay    [len(ReplayBuckets) + 1]atomic.Uint64
	replaySum atomic.Uint64
}

// observe counts one call of op that started at start and ended with err.
// A conflict (a nickname taken, a revision moved on) and a missing key are
// answers, not errors.
func (c *Conn) observe(op Op, start time.Time, err error) {
	st := &c.ops
	st.calls[op].Add(1)
	if err != nil && !isConflict(err) && !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrMsgNotFound) {
		st.errors[op].Add(1)
	}
	d := time.Since(start)
	i := 0
	for i < len(OpBuckets) && d > OpBuckets[i] {
		i++
	}
	st.latency[op][i].Add(1)
	st.latencySum[op].Add(int64(d))
}

// observeReplay counts one history replay of n lines.
func (c *Conn) observeReplay(n int) {
	i := 0
	for i < len(ReplayBuckets) && n > ReplayBuckets[i] {
		i++
	}
	c.ops.replay[i].Add(1)
	c.ops.replaySum.Add(uint64(n))
}

// OpStats is a snapshot of one Op's counters. Latency[i] counts the calls
// that took at most OpBuckets[i] (not cumulative), the last one those
// above every bucket.
type OpStats struct {
	Calls, Errors uint64
	Latency       []uint64
	LatencySum    time.Duration
}

// OpStats returns the JetStream call counters, by Op. Safe for concurrent
// use.
func (c *Conn) OpStats() map[Op]OpStats {
	out := make(map[Op]OpStats, numOps)
	for _, op := range Ops() {
		s := OpStats{Calls: c.ops.calls[op].Load(), Errors: c.ops.errors[op].Load(),
			Latency: make([]uint64, len(OpBuckets)+1), LatencySum: time.Duration(c.ops.latencySum[op].Load())}
		for i := range s.Latency {
			s.Latency[i] = c.ops.latency[op][i].Load()
		}
		out[op] = s
	}
	return out
}

// ReplayStats returns the history replay sizes: Counts[i] is the number of
// replays of at most ReplayBuckets[i] lines (not cumulative; the last,
// more than every bucket), Sum the lines replayed in all.
func (c *Conn) ReplayStats() (counts []uint64, sum uint64) {
	counts = make([]uint64, len(c.ops.replay))
	for i := range counts {
		counts[i] = c.ops.replay[i].Load()
	}
	return counts, c.ops.replaySum.Load()
}
