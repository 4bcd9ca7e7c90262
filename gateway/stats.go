package gateway

import (
	"sync/atomic"
	"time"
)

// transportNames names each codec's transport, by codec slot, for metrics.
var transportNames = [numTransports]string{"tcp", "websocket", "irc"}

// LatencyBuckets are the upper bounds of the delivery latency histogram:
// from a line's publication by a gateway to its arrival at this one.
var LatencyBuckets = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second,
}

// stats are a gateway's counters. Updates are single atomic adds, once per
// session event or per bus event, never per delivered member.
type stats struct {
	connected  [numTransports]atomic.Int64
	opened     [numTransports]atomic.Uint64
	closed     [numTransports][len(reasonNames)]atomic.Uint64
	linesIn    atomic.Uint64                          // chat lines and actions clients sent
	events     atomic.Uint64                          // room events received from the bus
	deliveries atomic.Uint64                          // frames queued to members
	latency    [len(LatencyBuckets) + 1]atomic.Uint64 // the last: above every bucket
	latencySum atomic.Int64                           // nanoseconds

	authFailures  [numTransports]atomic.Uint64 // wrong server passwords
	authThrottled [numTransports]atomic.Uint64 // password attempts refused unjudged

	mod        [numModActions]atomic.Uint64     // moderation actions (moderation.go)
	refused    [len(refusalNames)]atomic.Uint64 // connections refused by admit, by refusal
	floodPaced atomic.Uint64                    // lines that waited for the flood limit's budget
}

// refusalCause is why admit refused a connection.
type refusalCause int

const (
	refusedShutdown refusalCause = iota
	refusedBanned
	refusedMaxConns
	refusedPerAddress
)

var refusalNames = [...]string{"shutting_down", "banned", "max_conns", "per_address"}

// observeEvent counts one bus event delivered to n members, sent at at.
func (st *stats) observeEvent(n int, at time.Time) {
	st.events.Add(1)
	st.deliveries.Add(uint64(n))
	d := time.Since(at)
	if d < 0 {
		d = 0 // clocks of different machines disagree
	}
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	st.latency[i].Add(1)
	st.latencySum.Add(int64(d))
}

// Stats is a snapshot of a gateway's counters, for metrics.
type Stats struct {
	Connected  map[string]int64             // clients connected now, by transport
	Opened     map[string]uint64            // sessions started, by transport
	Closed     map[string]map[string]uint64 // sessions ended, by transport and reason
	Rooms      int                          // rooms with members on this gateway
	LinesIn    uint64                       // chat lines and actions sent by clients
	Events     uint64                       // room events received from the bus
	Deliveries uint64                       // frames queued to members for them
	// Latency counts events by publication-to-arrival time: Latency[i] is
	// the number at most LatencyBuckets[i] (not cumulative), the last one
	// those above every bucket. LatencySum is their total.
	Latency    []uint64
	LatencySum time.Duration
	// AuthFailures counts wrong server passwords, by transport;
	// AuthThrottled the attempts refused without a verdict because their
	// address had too many in line; AuthTracked is the number of addresses
	// the password throttle remembers now.
	AuthFailures  map[string]uint64
	AuthThrottled map[string]uint64
	AuthTracked   int
	// Moderation counts moderation actions by kind (oper, oper_failed,
	// kick, ban, unban, mute, unmute, topic, refused).
	Moderation map[string]uint64
	// Refused counts connections refused before their handshake, by cause:
	// shutting_down, banned, max_conns, per_address.
	Refused map[string]uint64
	// FloodPaced counts lines and messages that had to wait for the flood
	// limit's budget (paced; none is dropped).
	FloodPaced uint64
	// MemoryReleases counts the times a quiet spell returned memory to the
	// system (release.go); MemoryReturned is the heap the releases let go
	// of, in bytes.
	MemoryReleases uint64
	MemoryReturned uint64
}

// Stats returns the gateway's counters. Safe for concurrent use.
func (s *Server) Stats() Stats {
	st := &s.stats
	out := Stats{
		Connected:  make(map[string]int64),
		Opened:     make(map[string]uint64),
		Closed:     make(map[string]map[string]uint64),
		LinesIn:    st.linesIn.Load(),
		Events:     st.events.Load(),
		Deliveries: st.deliveries.Load(),
		Latency:    make([]uint64, len(st.latency)),
		LatencySum: time.Duration(st.latencySum.Load()),

		AuthFailures:  make(map[string]uint64),
		AuthThrottled: make(map[string]uint64),
		AuthTracked:   s.auth.tracked(),
		Refused:       make(map[string]uint64),
		FloodPaced:    st.floodPaced.Load(),

		MemoryReleases: s.memRelease.releases.Load(),
		MemoryReturned: s.memRelease.returned.Load(),
	}
	for i, name := range refusalNames {
		out.Refused[name] = st.refused[i].Load()
	}
	for i, name := range transportNames {
		out.Connected[name] = st.connected[i].Load()
		out.Opened[name] = st.opened[i].Load()
		byReason := make(map[string]uint64)
		for r := range st.closed[i] {
			if n := st.closed[i][r].Load(); n > 0 {
				byReason[CloseReason(r).String()] = n
			}
		}
		out.Closed[name] = byReason
		out.AuthFailures[name] = st.authFailures[i].Load()
		out.AuthThrottled[name] = st.authThrottled[i].Load()
	}
	out.Moderation = make(map[string]uint64, numModActions)
	for i, name := range modActionNames {
		out.Moderation[name] = st.mod[i].Load()
	}
	for i := range st.latency {
		out.Latency[i] = st.latency[i].Load()
	}
	s.mu.Lock()
	out.Rooms = len(s.rooms)
	s.mu.Unlock()
	return out
}
