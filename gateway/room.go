package gateway

import (
	"sync"
	"time"
)

// room is a gateway's local view of one chat room: its members here and the
// one bus subscription that feeds them all.
type room struct {
	srv   *Server
	name  string
	ready chan struct{} // closed once the subscription attempt is over
	err   error         // why the subscription failed; set before ready closes
	unsub func()
	refs  int // members plus joins in progress; guarded by Server.mu

	// The events of the burst the bus is delivering (Server.bursts; chat
	// lines and notices, bursty) and about how many bytes they hold; used
	// by the bus callback only.
	// The slice keeps its capacity (at most maxBurst events) while the
	// room lives.
	burst      []event
	burstBytes int

	mu      sync.RWMutex
	gap     chan struct{} // non-nil while the bus fills the room's gap; closed when filled
	members []*Session
	slots   map[*Session]int // index of each member in members
}

// A burst is handed on when the bus says it ended, or at these sizes.
const (
	maxBurst      = 64
	maxBurstBytes = writeChunk
)

// deliver is the room's bus callback. It builds one event and queues it to
// every local member in the member's encoding: each encoding (TCP line,
// WebSocket JSON) is made at most once, on first use, and the same bytes are
// shared by all members that use it, so the fan-out allocates nothing per
// member. It never blocks. The bus calls it on one goroutine per room; the
// event stays on that goroutine, so its lazy fields need no lock.
//
// When the bus ends its bursts with KindFlush (BurstBus), the lines of a
// burst (chat lines and the notices every member gets: joins, leaves,
// nick changes, kicks, topics) are kept until it ends (or reaches
// maxBurst events or maxBurstBytes) and then handed on together (flush);
// any other event first hands on the events kept, so every member gets
// every event in the bus's order. Whether a join or leave notice is quiet
// (quiet.go) is decided as it arrives, as without bursts; a quiet one is
// not kept.
func (r *room) deliver(id, kind, nick, text string, at time.Time) {
	if r.srv.bursts {
		if bursty(kind) {
			// The event is made in place, in the burst's array: one made
			// on the stack would escape (codec.skips) and cost an
			// allocation per event.
			n := len(r.burst)
			r.burst = append(r.burst, event{id: id, kind: kind, room: r.name, nick: nick, text: text, at: at})
			if ev := &r.burst[n]; ev.kind == KindJoin || ev.kind == KindLeave {
				if quiet, only := r.quiet(ev); quiet {
					// Not kept: the slot past the burst's end holds it
					// until it is told.
					r.burst = r.burst[:n]
					if only != nil {
						r.flush()
						if f := ev.frame(only.enc); f != nil {
							only.deliver(f, id)
						}
					}
					*ev = event{}
					r.srv.stats.observeEvent(1, at)
					return
				}
			}
			r.burstBytes += len(nick) + len(text) + 4
			if len(r.burst) >= maxBurst || r.burstBytes >= maxBurstBytes {
				r.flush()
			}
			return
		}
		r.flush()
	}
	switch kind {
	case KindFlush:
		return
	case KindMissed:
		r.missed(at)
		return
	case KindGap:
		r.mu.Lock()
		if r.gap == nil {
			r.gap = make(chan struct{})
		}
		r.mu.Unlock()
		return
	case KindFilled:
		r.mu.Lock()
		if r.gap != nil {
			close(r.gap)
			r.gap = nil
		}
		r.mu.Unlock()
		return
	}
	ev := event{id: id, kind: kind, room: r.name, nick: nick, text: text, at: at}
	if r.quietNotice(&ev) {
		r.srv.stats.observeEvent(1, at)
		return
	}
	r.fanout(&ev)
}

// bursty reports whether events of kind may be kept in a burst: the lines
// every member is sent as they come, one frame per event.
func bursty(kind string) bool {
	switch kind {
	case KindSay, KindMe, KindJoin, KindLeave, KindNick, KindKick, KindTopic:
		return true
	}
	return false
}

// replayID is the id under which a session holding live frames during a
// history replay (outbox.hold) keeps ev: only chat lines can be in a
// replay too, so other events have none.
func (ev *event) replayID() string {
	if ev.kind == KindSay || ev.kind == KindMe {
		return ev.id
	}
	return ""
}

// fanout queues ev to every local member, in the member's encoding. A
// quiet room's join and leave notices have been dealt with (quietNotice).
func (r *room) fanout(ev *event) {
	replayID := ev.replayID()
	r.mu.RLock()
	for _, m := range r.members {
		// A kind this gateway does not know encodes to nil: newer gateways
		// may add some.
		if f := ev.frame(m.enc); f != nil {
			m.deliver(f, replayID)
		}
	}
	n := len(r.members)
	r.mu.RUnlock()
	r.srv.stats.observeEvent(n, ev.at)
}

// flush hands the events of the burst kept so far to every member. Each
// member that takes a stream of lines (encLine, encPos: they never skip an
// event) gets the burst's frames joined in one buffer, made once per
// encoding and shared, so that it costs one queue append and at most one
// writer wake-up per member; the others get each event's frame as deliver
// gives it. Bus callback only.
func (r *room) flush() {
	evs := r.burst
	switch len(evs) {
	case 0:
		return
	case 1:
		r.fanout(&evs[0])
	default:
		var joined [numEncodings][]byte
		r.mu.RLock()
		for _, m := range r.members {
			i := m.enc.encoding()
			if i != encLine && i != encPos {
				for k := range evs {
					if f := evs[k].frame(m.enc); f != nil {
						m.deliver(f, evs[k].replayID())
					}
				}
				continue
			}
			if joined[i] == nil {
				joined[i] = joinFrames(evs, m.enc)
			}
			m.deliverBurst(joined[i], evs, i)
		}
		n := len(r.members)
		r.mu.RUnlock()
		for k := range evs {
			r.srv.stats.observeEvent(n, evs[k].at)
		}
	}
	clear(evs)
	r.burst, r.burstBytes = evs[:0], 0
}

// joinFrames makes each event's frame in c's encoding and joins them in one
// new buffer.
func joinFrames(evs []event, c codec) []byte {
	n := 0
	for k := range evs {
		n += len(evs[k].frame(c))
	}
	b := make([]byte, 0, n)
	for k := range evs {
		b = append(b, evs[k].frames[c.encoding()]...)
	}
	return b
}

// missed tells every local member, once, that lines sent to the room while
// the bus link was down since at could not all be recovered.
func (r *room) missed(at time.Time) {
	text := "some lines sent to " + r.name + " while the chat link was down (from " +
		at.Format("15:04:05") + ") are no longer stored: you may have missed them"
	r.mu.RLock()
	for _, m := range r.members {
		m.notice(text)
	}
	r.mu.RUnlock()
}

// maxGapWait bounds how long a join waits for the bus to fill its room's
// gap.
const maxGapWait = 30 * time.Second

// add adds s to the room's members. While the bus fills the room's gap it
// first waits for the fill (at most maxGapWait): what is filled in was said
// before s came.
func (r *room) add(s *Session) {
	r.mu.RLock()
	gap := r.gap
	r.mu.RUnlock()
	if gap != nil {
		select {
		case <-gap:
		case <-time.After(maxGapWait):
		}
	}
	r.mu.Lock()
	r.slots[s] = len(r.members)
	r.members = append(r.members, s)
	r.mu.Unlock()
}

// remove takes s out of the members and reports whether it was one.
func (r *room) remove(s *Session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.slots[s]
	if !ok {
		return false
	}
	last := len(r.members) - 1
	moved := r.members[last]
	r.members[i] = moved
	r.slots[moved] = i
	r.members[last] = nil
	r.members = r.members[:last]
	delete(r.slots, s)
	return true
}

// enter adds s to the local room, subscribing to the room on the bus if s is
// its first local member. When enter returns nil, s receives every event
// published to the room from then on.
func (srv *Server) enter(s *Session, name string) error {
	srv.mu.Lock()
	r := srv.rooms[name]
	first := r == nil
	if first {
		r = &room{srv: srv, name: name, ready: make(chan struct{}), slots: make(map[*Session]int)}
		srv.rooms[name] = r
	}
	r.refs++
	srv.mu.Unlock()

	if first {
		r.unsub, r.err = srv.bus.Subscribe(name, r.deliver)
		close(r.ready)
	} else {
		<-r.ready
	}
	if r.err != nil {
		srv.release(r)
		return r.err
	}
	r.add(s)
	return nil
}

// exit removes s from the local room name. Once is enough: a session that
// is not a member (a kick took it out already) is left alone.
func (srv *Server) exit(s *Session, name string) {
	srv.mu.Lock()
	r := srv.rooms[name]
	srv.mu.Unlock()
	if r == nil {
		return
	}
	if r.remove(s) {
		srv.release(r)
	}
}

// release drops one reference to r and unsubscribes when it was the last.
func (srv *Server) release(r *room) {
	srv.mu.Lock()
	r.refs--
	last := r.refs == 0
	if last && srv.rooms[r.name] == r {
		delete(srv.rooms, r.name)
	}
	srv.mu.Unlock()
	if last && r.unsub != nil {
		r.unsub()
	}
}
