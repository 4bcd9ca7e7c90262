package bus

import (
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Sender replay. The history stream does not store what is published while
// it has no leader (a broker that held it died or froze, and the others are
// electing a new one: a few seconds), which is exactly when gateways lose
// their link. So every gateway also keeps, per room, the chat lines it
// published itself in the last few minutes (those that came back to it
// through its subscription: they reached the server), and answers requests for them
// on chat.v1.replay.<room>: a gap-fill or a resume asks every gateway for
// its lines after the last of its counters the asker has, and takes from
// the stream what the gateways that do not answer (gone, crashed) had
// published.

const (
	replayPrefix = subjectPrefix + ".replay."
	// ReplaySubjects is the one subscription every gateway holds to answer
	// replay requests.
	ReplaySubjects = replayPrefix + "*"

	ringLines    = 2000            // own lines kept per room
	ringAge      = 5 * time.Minute // and for no longer than this
	maxRingRooms = 4096            // rooms with lines kept, at most
	maxReplay    = 512 << 10       // bytes of one reply, at most
)

// sentLine is one chat line this gateway published and got back.
type sentLine struct {
	n    uint64 // counter of its id
	ts   int64
	data []byte // the envelope as published
}

// ring is the lines this gateway published in one room, in counter order.
type ring struct {
	lines   []sentLine
	evicted uint64 // highest counter dropped from lines
	last    int64  // unix ns of the last append
	// out is the lines published to the room that have not come back, in
	// counter order: usually the last few in flight, but also any that
	// went into a link that was dying while later ones came back.
	out []outLine
	// unsure is until when replies must say they may be incomplete:
	// set when out overflowed and a line was let go of unseen.
	unsure int64
}

// outLine is a line published and not come back yet.
type outLine struct {
	n  uint64
	at int64 // unix ns it was published
}

// maxOut bounds a ring's lines published and not come back; past it the
// oldest is let go of and replies are partial for ringAge.
const maxOut = ringLines

// rings holds a Conn's own recent lines per room. Its methods are safe for
// concurrent use.
type rings struct {
	mu sync.Mutex
	m  map[string]*ring
}

// roomLocked returns room's ring, made if need be.
func (rs *rings) roomLocked(room string) *ring {
	if rs.m == nil {
		rs.m = make(map[string]*ring)
	}
	r := rs.m[room]
	if r == nil {
		if len(rs.m) >= maxRingRooms {
			rs.evictOldestLocked()
		}
		r = &ring{}
		rs.m[room] = r
	}
	return r
}

// published records that the line with counter n, stamped now (unix ns),
// is being published to room: until it has come back (add), or its publish failed (unpublished),
// a reply for room may be missing it.
func (rs *rings) published(room string, n uint64, now int64) {
	rs.mu.Lock()
	r := rs.roomLocked(room)
	r.last = max(r.last, now) // a room with lines out is not the oldest
	if len(r.out) >= maxOut {
		r.out = append(r.out[:0], r.out[1:]...)
		r.unsure = now + int64(ringAge)
	}
	r.out = append(r.out, outLine{n: n, at: now})
	rs.mu.Unlock()
}

// unpublished records that the publish of line n to room failed: it never
// left, so no reply is missing it.
func (rs *rings) unpublished(room string, n uint64) {
	rs.mu.Lock()
	if r := rs.m[room]; r != nil {
		r.back(n)
	}
	rs.mu.Unlock()
}

// back takes line n off the lines not come back. They come back in
// counter order, so it is nearly always the first.
func (r *ring) back(n uint64) {
	for i, o := range r.out {
		if o.n == n {
			r.out = append(r.out[:i], r.out[i+1:]...)
			return
		}
		if o.n > n {
			return
		}
	}
}

// add records a line published to room that came back from the server
// (once; a line already kept is left as it is). data is copied.
func (rs *rings) add(room string, n uint64, ts int64, data []byte) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := rs.roomLocked(room)
	r.back(n)
	// Lines come back in counter order; one recovered by a gap-fill may
	// be older than some kept already.
	i := len(r.lines)
	for i > 0 && r.lines[i-1].n >= n {
		if r.lines[i-1].n == n {
			return
		}
		i--
	}
	if n <= r.evicted {
		return
	}
	r.lines = slices.Insert(r.lines, i, sentLine{n: n, ts: ts, data: bytes.Clone(data)})
	r.last = max(r.last, ts)
	cut := 0
	for cut < len(r.lines) && (len(r.lines)-cut > ringLines || ts-r.lines[cut].ts > int64(ringAge)) {
		r.evicted = max(r.evicted, r.lines[cut].n)
		cut++
	}
	if cut > 0 {
		r.lines = append(r.lines[:0], r.lines[cut:]...)
	}
}

func (rs *rings) evictOldestLocked() {
	var oldest string
	var at int64
	for room, r := range rs.m {
		if oldest == "" || r.last < at {
			oldest, at = room, r.last
		}
	}
	delete(rs.m, oldest)
}

// after returns the lines of room with a counter above n (known) or, when
// the asker has none of this gateway's (!known), stamped at or after since;
// gone reports that some such lines are no longer kept, behind that a line
// published to room has not come back yet: not only the last one, since a
// line published into a dying link may be missing while later ones came
// back over the new link, and the server may still have it (the stream).
// Only lines published by asked (unix ns: when the request came) count; a
// later one reaches the asker live. A line that has not come back within
// ringAge is let go of.
func (rs *rings) after(room string, n uint64, known bool, since, asked int64) (out [][]byte, gone, behind bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r := rs.m[room]
	if r == nil {
		return nil, false, false
	}
	now := time.Now().UnixNano()
	drop := 0
	for drop < len(r.out) && now-r.out[drop].at > int64(ringAge) {
		drop++
	}
	if drop > 0 {
		r.out = append(r.out[:0], r.out[drop:]...)
	}
	behind = len(r.out) > 0 && r.out[0].at <= asked || now < r.unsure
	for _, l := range r.lines {
		if now-l.ts > int64(ringAge) {
			continue
		}
		if known && l.n > n || !known && l.ts >= since {
			out = append(out, l.data)
		}
	}
	if known && r.evicted > n {
		gone = true
	}
	return out, gone, behind
}

// replayReq is a replay request.
type replayReq struct {
	Since int64             `json:"since"` // unix ns
	After map[string]uint64 `json:"after"` // gateway id → last counter the asker has
}

// replayMeta is the first line of a reply; the lines follow, one envelope
// per line.
type replayMeta struct {
	GW   string `json:"gw"`
	Gone bool   `json:"gone,omitempty"`
	// Partial: a line this gateway published to the room had not come
	// back to it when it answered (in flight, or published into a link
	// that was dying): the asker must not take the reply as complete.
	Partial bool `json:"partial,omitempty"`
}

// replayCatchUp bounds how long a reply waits for this gateway's lines in
// flight to come back before it is sent as partial.
const replayCatchUp = 300 * time.Millisecond

// serveReplay answers replay requests from the other gateways (and this
// one) until Close.
func (c *Conn) serveReplay() error {
	_, err := c.nc.Subscribe(ReplaySubjects, func(m *nats.Msg) {
		if m.Reply == "" || len(m.Data) > 64<<10 {
			return
		}
		room := m.Subject[len(replayPrefix):]
		if ValidRoom(room) != nil {
			return
		}
		var req replayReq
		if json.Unmarshal(m.Data, &req) != nil || len(req.After) > maxSenders {
			return
		}
		n, known := req.After[c.id]
		asked := time.Now()
		lines, gone, behind := c.rings.after(room, n, known, req.Since, asked.UnixNano())
		for wait := asked.Add(replayCatchUp); behind && time.Now().Before(wait); {
			time.Sleep(5 * time.Millisecond)
			lines, gone, behind = c.rings.after(room, n, known, req.Since, asked.UnixNano())
		}
		size := 0
		start := len(lines)
		for start > 0 && size+len(lines[start-1])+1 <= maxReplay {
			start--
			size += len(lines[start]) + 1
		}
		if start > 0 {
			gone = true // the oldest do not fit in one reply
		}
		meta, _ := json.Marshal(replayMeta{GW: c.id, Gone: gone, Partial: behind})
		buf := make([]byte, 0, len(meta)+1+size)
		buf = append(buf, meta...)
		for _, l := range lines[start:] {
			buf = append(buf, '\n')
			buf = append(buf, l...)
		}
		if err := m.Respond(buf); err != nil {
			c.log.Debug("bus: replay: respond", "err", err)
		}
	})
	return err
}

// askSenders asks every gateway for its lines of room that the asker, with
// last counters last, has not delivered (from a gateway absent from last,
// those stamped at or after since). It waits until every live gateway has
// answered or RequestTimeout has passed. It returns the lines (checked like
// any envelope), which gateways answered, and whether one of them no longer
// has all the lines asked for.
func (c *Conn) askSenders(room string, since time.Time, last map[string]uint64) (lines []Envelope, answered map[string]bool, gone bool) {
	answered = make(map[string]bool)
	subject, err := historySubject(room)
	if err != nil {
		return nil, answered, false
	}
	data, _ := json.Marshal(replayReq{Since: since.UnixNano(), After: last})
	inbox := c.nc.NewRespInbox()
	sub, err := c.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, answered, false
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := c.nc.PublishRequest(replayPrefix+room, inbox, data); err != nil {
		return nil, answered, false
	}
	c.m.mu.Lock()
	want := len(c.m.seen)
	c.m.mu.Unlock()
	deadline := time.Now().Add(c.cfg.RequestTimeout)
	seen := make(map[string]bool)
	for want == 0 || len(seen) < want {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		m, err := sub.NextMsg(wait)
		if err != nil {
			break
		}
		head, rest, _ := bytes.Cut(m.Data, []byte{'\n'})
		var meta replayMeta
		if json.Unmarshal(head, &meta) != nil || meta.GW == "" || seen[meta.GW] {
			continue
		}
		seen[meta.GW] = true
		// A partial reply is used, but the stream must confirm what that
		// gateway published.
		answered[meta.GW] = !meta.Partial
		gone = gone || meta.Gone
		for len(rest) > 0 {
			var line []byte
			line, rest, _ = bytes.Cut(rest, []byte{'\n'})
			e, ok := c.accept(onRoom, subject, line)
			if !ok || e.GW != meta.GW {
				continue
			}
			lines = append(lines, e)
		}
	}
	return lines, answered, gone
}

// merge orders recovered lines for delivery: each line once (by id), by
// time, and each sender's lines in the order of their counters.
func merge(lines []Envelope) []Envelope {
	seen := make(map[string]bool, len(lines))
	out := lines[:0]
	for _, e := range lines {
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].TS < out[j].TS })
	// Per sender: the slots its lines hold in time order get its lines in
	// counter order (clocks can step back; counters cannot).
	slots := make(map[string][]int)
	for i, e := range out {
		slots[e.GW] = append(slots[e.GW], i)
	}
	res := make([]Envelope, len(out))
	for _, idx := range slots {
		mine := make([]Envelope, len(idx))
		for k, i := range idx {
			mine[k] = out[i]
		}
		sort.SliceStable(mine, func(a, b int) bool {
			_, na, _ := splitID(mine[a].ID)
			_, nb, _ := splitID(mine[b].ID)
			return na < nb
		})
		for k, i := range idx {
			res[i] = mine[k]
		}
	}
	return res
}
