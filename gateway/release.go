package gateway

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// Returning memory to the system once the gateway goes quiet. A burst of
// handshakes, a join storm's history replays or a spell of chat leave the
// heap at up to twice the live heap (the collector's goal), with spans their
// garbage left partly filled, and the runtime hands freed pages back to the
// system slowly. An idle gateway holding thousands of connections would keep
// that memory for as long as nothing happens. So when the gateway has been
// quiet for Config.ReleaseAfter — no session started or ended, no line
// from a client, no room event from the bus — after the heap grew by at
// least Config.ReleaseGrowth since the last release, it collects and
// returns every free page to the system. Anything that happens restarts
// the wait, so a busy gateway never pays for it; the next release needs
// activity and new growth first.
//
// Some memory is let go only a while after a burst: the embedded NATS
// server keeps a stream's block cache (megabytes) for 10 s after its last
// use and then hands the buffer to a sync.Pool, and a pool keeps what it
// holds through one collection. So a release collects three times (the
// cache's buffer goes to its pool, the pool's primary to its victim cache,
// the victim cache away) before debug.FreeOSMemory, and a quiet spell that
// goes on to three times ReleaseAfter is released once more.

// releaseMetrics are the runtime/metrics samples that make up the heap the
// gateway holds from the system: live and dead objects, the unused parts of
// their spans, and free pages not yet returned.
var releaseMetrics = []string{
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
}

// heapHeld reads the bytes of heap the process holds from the system.
func heapHeld() uint64 {
	s := make([]metrics.Sample, len(releaseMetrics))
	for i, name := range releaseMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	var n uint64
	for _, v := range s {
		if v.Value.Kind() == metrics.KindUint64 {
			n += v.Value.Uint64()
		}
	}
	return n
}

// releaser decides when to release memory. Its tick runs on the release
// loop's goroutine only; the counters are read by Stats.
type releaser struct {
	after  time.Duration // quiet this long before a release
	growth uint64        // least heap growth since the last release

	activity  uint64    // the activity count at the last tick
	quietFrom time.Time // when the activity count last changed
	dirty     bool      // something happened since the last release
	stage     int       // releases in this quiet spell: 0, 1 or 2
	base      uint64    // heap held right after the last release; 0 before the first

	releases atomic.Uint64 // releases done
	returned atomic.Uint64 // bytes the releases took off the held heap
}

// tick is one look at the gateway: activity is a count that moves with
// everything the gateway does, held the heap held now. It reports whether
// to release now.
func (r *releaser) tick(now time.Time, activity, held uint64) bool {
	if activity != r.activity || r.quietFrom.IsZero() {
		if activity != r.activity {
			r.dirty = true
		}
		r.activity = activity
		r.quietFrom = now
		r.stage = 0
		return false
	}
	quiet := now.Sub(r.quietFrom)
	switch r.stage {
	case 0:
		return r.dirty && quiet >= r.after && held >= r.base+r.growth
	case 1: // the follow-up of a release in this quiet spell
		return quiet >= 3*r.after
	}
	return false
}

// released records a release that took the held heap from before to after.
func (r *releaser) released(before, after uint64) {
	r.dirty = false
	r.stage++
	r.base = after
	r.releases.Add(1)
	if before > after {
		r.returned.Add(before - after)
	}
}

// activity is a count that changes whenever a session starts or ends, a
// client sends a line, or a room event arrives.
func (st *stats) activity() uint64 {
	n := st.linesIn.Load() + st.events.Load()
	for i := range st.opened {
		n += st.opened[i].Load()
		for r := range st.closed[i] {
			n += st.closed[i][r].Load()
		}
	}
	return n
}

// releaseEvery is how often the release loop looks, for a quiet period of
// after: often enough to release soon after the period ends.
func releaseEvery(after time.Duration) time.Duration {
	return min(max(after/4, 10*time.Millisecond), time.Second)
}

// releaseLoop releases memory when the gateway goes quiet, until stop is
// closed. It never runs on a session's or the bus's goroutine.
func (s *Server) releaseLoop(stop <-chan struct{}) {
	r := &s.memRelease
	t := time.NewTicker(releaseEvery(r.after))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			if !r.tick(now, s.stats.activity(), heapHeld()) {
				continue
			}
			before := heapHeld()
			runtime.GC() // expired caches go to their pools
			runtime.GC() // pools move what they hold to their victim caches
			debug.FreeOSMemory()
			after := heapHeld()
			r.released(before, after)
			s.log.Info("memory returned to the system after a quiet spell",
				"held_before", before, "held_after", after, "took", time.Since(now).Round(time.Millisecond))
		}
	}
}
