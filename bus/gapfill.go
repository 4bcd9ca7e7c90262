package bus

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Gap-fill. Room events travel on core NATS, which delivers at most once:
// while this gateway's link to NATS is down (its broker died or froze, the
// network dropped) it misses what others publish, until nats.go has
// reconnected and resubscribed. Chat lines are also captured by the history
// stream, so when the link is back each room subscription reads from the
// stream what it may have missed and delivers it, exactly once and in
// order, before the live lines that came in meanwhile (held until then).
//
// Position. Every envelope id is "<gateway>.<counter>", the counter
// monotonic per publishing gateway; a subscription remembers the last
// counter it delivered from each gateway and delivers only higher ones. The
// fill reads the room's stored lines from a time safely before the link
// went silent (the ping timeout plus fillMargin) up to the stream's last
// sequence for the room once resubscribed, and keeps those above the
// subscription's last counter of their sender: the overlap with what was
// delivered live is dropped, and what raced in live during the fill is
// dropped in turn if the fill delivered it. A sender this subscription never
// heard from is taken from its first stored line after the subscription
// started. Notices (joined!, left!) are not stored and are not recovered.
//
// The normal path never reads the stream: a fill runs only after a
// reconnect.

// Kinds Subscribe delivers that are not envelope kinds, all with empty id,
// nick and text.
const (
	// KindMissed: what a gap-fill had to recover is not all there (the
	// room's retention window was exceeded and a sender is gone); once per
	// fill. Its time is when the link went down.
	KindMissed = "missed"
	// KindGap: the link is down; live events are held until KindFilled.
	// What comes between is what the subscriber missed, then what was held:
	// a subscriber that adds members to the room meanwhile should wait for
	// KindFilled (they would get lines from before they came).
	KindGap = "gap"
	// KindFilled: the gap is filled; live events follow.
	KindFilled = "filled"
	// KindFlush: the events delivered since the last KindFlush (or
	// KindFilled) came in one burst, and no more of the room's events are
	// waiting right now. A subscriber may keep a burst's events and hand
	// them on together when the burst ends (FlushesBursts).
	KindFlush = "flush"
)

const (
	// fillMargin is how much earlier than the link can have gone silent a
	// fill starts reading: clock differences between this gateway and the
	// stream's leader, and lines in flight.
	fillMargin = 2 * time.Second
	// maxFill bounds the lines one fill reads for one room.
	maxFill = 10000
	// maxHeld bounds the live events held during a fill; past it they are
	// dropped (and reported as missed).
	maxHeld = PendingMsgsLimit
	// fillTries bounds how many times reading the stream is tried when a
	// fill needs it (JetStream may be electing a leader), each try bounded
	// by RequestTimeout, 250ms apart, all within fillBudget RequestTimeouts:
	// the live lines stay held meanwhile.
	fillTries  = 8
	fillBudget = 3
	// allAnsweredRead bounds the one read of the stream when every live
	// gateway gave its own lines: it only looks for lines of gateways
	// gone since.
	allAnsweredRead = 500 * time.Millisecond
)

// roomSub is one room subscription's delivery state. Its mutex orders
// deliveries: the live callback, and a fill's goroutine.
type roomSub struct {
	c       *Conn
	room    string
	subject string // the room's stored lines
	since   time.Time
	deliver DeliverFunc

	run int // messages since the live callback last ended a burst; its goroutine only

	mu      sync.Mutex
	last    map[string]uint64 // last counter delivered per publishing gateway
	filling int               // fills pending; live events are held while > 0
	held    []Envelope
	dropped int // held events dropped past maxHeld
}

// fills tracks the room subscriptions of a Conn for gap-fill.
type fills struct {
	mu     sync.Mutex
	subs   map[*roomSub]struct{}
	downAt time.Time // when the link went down; zero while up
}

func (f *fills) add(rs *roomSub) {
	f.mu.Lock()
	if f.subs == nil {
		f.subs = make(map[*roomSub]struct{})
	}
	f.subs[rs] = struct{}{}
	if !f.downAt.IsZero() { // subscribed while the link is down
		rs.filling++
	}
	f.mu.Unlock()
}

func (f *fills) remove(rs *roomSub) {
	f.mu.Lock()
	delete(f.subs, rs)
	f.mu.Unlock()
}

// linkDown starts holding every room's live events: what arrives after the
// reconnect must come after what the fill recovers. Called from
// onDisconnect.
func (c *Conn) linkDown() {
	c.fills.mu.Lock()
	defer c.fills.mu.Unlock()
	if !c.fills.downAt.IsZero() {
		return
	}
	c.fills.downAt = time.Now()
	for rs := range c.fills.subs {
		rs.mu.Lock()
		if rs.filling++; rs.filling == 1 {
			rs.deliver("", KindGap, "", "", c.fills.downAt)
		}
		rs.mu.Unlock()
	}
}

// linkUp fills every room's gap, one goroutine per room. Called from
// onReconnect.
func (c *Conn) linkUp() {
	c.fills.mu.Lock()
	down := c.fills.downAt
	c.fills.downAt = time.Time{}
	subs := make([]*roomSub, 0, len(c.fills.subs))
	for rs := range c.fills.subs {
		subs = append(subs, rs)
	}
	c.fills.mu.Unlock()
	if down.IsZero() {
		return
	}
	// The link may have been silent for up to the ping timeout before it
	// was declared down.
	from := down.Add(-time.Duration(maxPingsOut+1)*pingInterval(c.cfg.Lease) - fillMargin)
	c.m.mu.Lock() // no fill starts once Close waits for them
	defer c.m.mu.Unlock()
	if c.closing.Load() {
		return
	}
	for _, rs := range subs {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			rs.fill(from, down)
		}()
	}
}

func newRoomSub(c *Conn, room string, deliver DeliverFunc) (*roomSub, error) {
	subject, err := historySubject(room)
	if err != nil {
		return nil, err
	}
	return &roomSub{c: c, room: room, subject: subject, since: time.Now(), deliver: deliver, last: make(map[string]uint64)}, nil
}

// onMsg is the subscription's nats.go callback.
func (rs *roomSub) onMsg(m *nats.Msg) {
	e, ok := rs.c.accept(onRoom, m.Subject, m.Data)
	end := burstEnd(m.Sub, rs.run > 0)
	if rs.run++; end {
		rs.run = 0
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if ok {
		rs.keepOwn(&e)
		switch {
		case rs.filling == 0:
			rs.deliverLocked(&e)
		case len(rs.held) >= maxHeld:
			rs.dropped++
		default:
			rs.held = append(rs.held, e)
		}
	}
	// Every message, dropped ones included, looks for the end of its
	// burst, so the last one of a burst always tells. A fill in progress
	// ends with KindFilled instead.
	if end && rs.filling == 0 {
		rs.deliver("", KindFlush, "", "", time.Time{})
	}
}

// burstEnd reports whether no message waits in sub behind the one its
// callback is handling. The messages of a burst come in one read of the
// connection, and nats.go's reader may still be queuing the rest when the
// callback has the first ones: a callback in a burst (inBurst: messages
// came before this one since the last end) that finds none waiting yields
// once and looks again. A lone message does not yield: at a low rate
// most are alone, and the yield would run the writers its fan-out started
// before the next message can join their queues. nats.go counts the
// message being handled as pending until its callback returns, so 1 is
// none waiting (should it stop counting it, a burst ends one message
// early: no harm).
func burstEnd(sub *nats.Subscription, inBurst bool) bool {
	if n, _, err := sub.Pending(); err != nil || n > 1 {
		return err != nil
	}
	if !inBurst {
		return true
	}
	runtime.Gosched()
	n, _, err := sub.Pending()
	return err != nil || n <= 1
}

// deliverLocked delivers e unless its sender's counter shows it was
// delivered already (or is late: see Subscribe).
func (rs *roomSub) deliverLocked(e *Envelope) {
	if gw, n, ok := splitID(e.ID); ok {
		if n <= rs.last[gw] {
			rs.c.log.Debug("bus: skipping a late or repeated message", "room", rs.room, "id", e.ID, "last", rs.last[gw])
			return
		}
		if _, known := rs.last[gw]; !known && len(rs.last) >= maxSenders {
			clear(rs.last)
		}
		rs.last[gw] = n
	}
	if rs.c.m.quietNotice(e) {
		return
	}
	rs.deliver(e.ID, e.Kind, e.Nick, e.Text, time.Unix(0, e.TS))
}

// keepOwn keeps e, if it is one of this gateway's own chat lines, for
// replay to the others (replay.go): it came back through the bus (live, or
// read back by a fill), so it reached the server. It is kept as it comes
// in, before a fill in progress holds it: a gateway that is filling its
// own gap still answers for every line of its own the server has. A line
// published into a link that was dying never comes back, and is never
// replayed.
func (rs *roomSub) keepOwn(e *Envelope) {
	// Others' lines (most of them) stop at the comparison; the envelope
	// check made e.GW the id's gateway.
	if e.GW != rs.c.id || e.Kind != KindSay && e.Kind != KindMe {
		return
	}
	if _, n, ok := splitID(e.ID); ok {
		rs.c.rings.add(rs.room, n, e.TS, Encode(nil, e))
	}
}

// fill recovers what the subscription may have missed since from (from
// the senders' own lines, replay.go, and the stream), delivers it, then the
// live events held meanwhile. down is when the link went down.
func (rs *roomSub) fill(from, down time.Time) {
	from = later(from, rs.since)
	rs.mu.Lock()
	last := maps.Clone(rs.last)
	rs.mu.Unlock()
	lines, gone, err := rs.c.recoverLines(rs.room, rs.subject, from, last, rs.since, maxFill)
	if rs.c.closing.Load() {
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	recovered := 0
	for i := range lines {
		rs.keepOwn(&lines[i])
		if rs.deliverIfNew(&lines[i]) {
			recovered++
		}
	}
	if err != nil || gone || rs.dropped > 0 {
		rs.c.log.Warn("bus: gap-fill incomplete", "room", rs.room, "stream_err", err, "no_longer_stored", gone, "dropped_live", rs.dropped)
		rs.deliver("", KindMissed, "", "", down)
	}
	if recovered > 0 {
		rs.c.log.Info("bus: gap filled", "room", rs.room, "lines", recovered)
	}
	rs.filling--
	if rs.filling > 0 {
		return // another fill follows; it releases the held events
	}
	held := rs.held
	rs.held, rs.dropped = nil, 0
	for i := range held {
		rs.deliverLocked(&held[i])
	}
	rs.deliver("", KindFilled, "", "", time.Now())
}

// recoverLines gathers the chat lines of room that someone whose last
// counter per gateway is last has not delivered: from a gateway absent from
// last, those after from (and, read from the stream, stored after floor).
// It asks the gateways for their own lines first, then reads the stream for
// the gateways that did not answer (crashed, or gone since): once and
// briefly (allAnsweredRead) when every live gateway answered, else tried
// again while the stream has no leader, for a bounded time. The lines come in delivery order (merge). gone reports
// that some could not be recovered; err that the stream could not be read
// when it was needed.
func (c *Conn) recoverLines(room, subject string, from time.Time, last map[string]uint64, floor time.Time, max int) (lines []Envelope, gone bool, err error) {
	lines, answered, ringGone := c.askSenders(room, from, last)
	all := c.allAnswered(answered)
	timeout, deadline := c.cfg.RequestTimeout, time.Now().Add(fillBudget*c.cfg.RequestTimeout)
	if all {
		timeout, deadline = min(timeout, allAnsweredRead), time.Time{}
	}
	var stored []storedLine
	var streamGone bool
	for try := 0; try < fillTries; try++ {
		if c.closing.Load() {
			return nil, false, ErrClosed
		}
		stored, streamGone, err = c.readSince(subject, from, max, timeout)
		if err == nil || errors.Is(err, errNoHistory) {
			break
		}
		c.log.Warn("bus: gap-fill: cannot read the room's stream", "room", room, "try", try+1, "err", err)
		if time.Now().Add(c.cfg.RequestTimeout).Before(deadline) {
			select {
			case <-c.done:
				return nil, false, ErrClosed
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		break
	}
	// silent: a gateway with lines due did not answer, so what the stream
	// no longer holds may be lost.
	silent := err != nil && !all
	for i := range stored {
		e := &stored[i].e
		if gw, n, ok := splitID(e.ID); ok {
			seen, known := last[gw]
			if known && n <= seen || !known && stored[i].at.Before(floor) {
				continue
			}
			silent = silent || !answered[gw]
		}
		lines = append(lines, *e)
	}
	if errors.Is(err, errNoHistory) {
		err, streamGone = nil, true
	}
	if !silent {
		// Every gateway with lines due gave its own: the stream only
		// confirmed them.
		err, streamGone = nil, false
	}
	return merge(lines), ringGone || streamGone || err != nil, err
}

// allAnswered reports whether every gateway alive at the last lease
// refresh answered a replay request.
func (c *Conn) allAnswered(answered map[string]bool) bool {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	if len(c.m.seen) == 0 {
		return false
	}
	for id := range c.m.seen {
		if !answered[id] {
			return false
		}
	}
	return true
}

// deliverIfNew is deliverLocked reporting whether it delivered.
func (rs *roomSub) deliverIfNew(e *Envelope) bool {
	if gw, n, ok := splitID(e.ID); ok && n <= rs.last[gw] {
		return false
	}
	rs.deliverLocked(e)
	return true
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// storedLine is one chat line read back from the history stream.
type storedLine struct {
	e   Envelope
	seq uint64    // stream sequence
	at  time.Time // when the stream stored it
}

// errNoHistory: the history stream is off.
var errNoHistory = errors.New("bus: no history stream")

// readSince reads subject's stored lines stored at or after from, up to the
// stream's last one for subject when called, at most max, within timeout. gone reports that
// the stream may no longer hold lines from the start of that range (the
// room's retention window was exceeded). Lines that fail the envelope check
// are skipped and counted.
func (c *Conn) readSince(subject string, from time.Time, max int, timeout time.Duration) (lines []storedLine, gone bool, err error) {
	if c.history == nil {
		return nil, false, errNoHistory
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// The resubscription is in place at the server before the end of the
	// range is read, so every later line arrives live.
	c.flush()
	lastMsg, err := c.history.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("last line: %w", err)
	}
	end := lastMsg.Sequence
	if lastMsg.Time.Before(from) {
		return nil, false, nil // nothing stored since from
	}
	info, err := c.history.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, false, fmt.Errorf("stream info: %w", err)
	}
	stored := info.State.Subjects[subject]
	if age := info.Config.MaxAge; age > 0 && time.Since(from) > age {
		gone = true
	}
	start := from
	cons, err := c.readConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: subject, // one filter: NATS 2.9 knows no FilterSubjects
		DeliverPolicy: jetstream.DeliverByStartTimePolicy,
		OptStartTime:  &start,
	})
	if err != nil {
		return nil, false, fmt.Errorf("consumer: %w", err)
	}
	defer func() {
		if ci := cons.CachedInfo(); ci != nil {
			_ = c.history.DeleteConsumer(ctx, ci.Name)
		}
	}()
	for {
		msgs, err := cons.FetchNoWait(min(max-len(lines), maxHistoryBatch))
		if err != nil {
			return lines, gone, fmt.Errorf("fetch: %w", err)
		}
		got, done := 0, false
		for m := range msgs.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			if md.Sequence.Stream > end {
				done = true
				continue
			}
			if e, ok := c.accept(onRoom, m.Subject(), m.Data()); ok {
				lines = append(lines, storedLine{e: e, seq: md.Sequence.Stream, at: md.Timestamp})
			}
			if md.Sequence.Stream == end {
				done = true
			}
		}
		if err := msgs.Error(); err != nil {
			return lines, gone, fmt.Errorf("fetch: %w", err)
		}
		if done {
			break
		}
		// Fewer than there are (see readFrom): read on up to end.
		if got == 0 {
			if err := pause(ctx); err != nil {
				return lines, gone, fmt.Errorf("fetch: %w", err)
			}
		}
		if len(lines) >= max {
			gone = true // more than a fill may read: the oldest are skipped
			break
		}
	}
	// The room is at its count limit and its oldest line still stored is
	// in the range: lines of the range may have been discarded.
	if limit := info.Config.MaxMsgsPerSubject; limit > 0 && stored >= uint64(limit) && !gone {
		oldest, err := c.history.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(subject))
		if err != nil || !oldest.Time.Before(from) {
			gone = true
		}
	}
	return lines, gone, nil
}
