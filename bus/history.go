package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chatd/chatd/internal/busctx"
	"github.com/nats-io/nats.go/jetstream"
)

// maxHistoryBatch bounds one fetch of stored lines.
const maxHistoryBatch = 1000

// History calls fn for the last n chat lines (KindSay, KindMe) stored for
// room, oldest first, before it returns. It reads the room's subject of the
// CHAT_HISTORY stream with an ephemeral consumer and no-wait fetches, so it
// never waits for lines that do not exist. A room with no lines, or history
// off (Config.History 0), means no calls and a nil error. Stored envelopes
// pass the same check as live ones (validate.go): what fails is skipped and
// counted.
func (c *Conn) History(ctx context.Context, room string, n int, fn func(id, kind, nick, text string, at time.Time)) (err error) {
	subject, err := historySubject(room)
	if err != nil {
		return err
	}
	if n <= 0 || fn == nil || c.history == nil {
		return nil
	}
	if c.closing.Load() {
		return ErrClosed
	}
	start := time.Now()
	lines, err := c.reads.read(ctx, room, n, func(ctx context.Context) ([]Envelope, error) {
		ctx, cancel := c.opContext(ctx)
		defer cancel()
		return c.readHistory(ctx, subject, n)
	})
	c.observe(OpHistoryRead, start, err)
	if err != nil {
		return fmt.Errorf("bus: history %s: %w", room, err)
	}
	for _, e := range lines {
		fn(e.ID, e.Kind, e.Nick, e.Text, time.Unix(0, e.TS))
	}
	c.observeReplay(len(lines))
	return nil
}

// historyReads lets the joins of one room share History reads. A read
// answers every caller that asked before it started (or, when the caller's
// context says since when it has received the room's live lines
// (busctx.WithLiveSince), before that time), and only those: a caller that comes
// while an older read is under way waits for the next one, which starts
// when the current one ends and answers everyone who waited. So what a
// caller gets was read after it called, as if it had read alone — the
// lines stored before it called are there, and its session's hold on live
// lines (gateway) covers the rest — while a join storm into one room costs
// at most two reads at a time, not one per join.
type historyReads struct {
	mu    sync.Mutex
	rooms map[historyKey]*historyRoom
}

type historyKey struct {
	room string
	n    int
}

// historyRoom is one room's reads: the one under way, and the one that
// waits for it to end (nil: nobody waits).
type historyRoom struct {
	running, next *historyRead
}

type historyRead struct {
	start   time.Time // when the read started (zero: not yet)
	callers int       // how many callers it answers
	done    chan struct{}
	lines   []Envelope // shared by its callers: read only
	err     error
}

// read returns what fetch reads for (room, n), from a read that started
// after read was called. fetch runs without the caller's cancellation (its
// other callers may still want it), under its own request timeout.
func (h *historyReads) read(ctx context.Context, room string, n int, fetch func(context.Context) ([]Envelope, error)) ([]Envelope, error) {
	key := historyKey{room, n}
	detached := context.WithoutCancel(ctx)
	h.mu.Lock()
	if h.rooms == nil {
		h.rooms = make(map[historyKey]*historyRoom)
	}
	r := h.rooms[key]
	if r == nil {
		r = &historyRoom{}
		h.rooms[key] = r
	}
	if r.running == nil {
		f := &historyRead{done: make(chan struct{}), start: time.Now(), callers: 1}
		r.running = f
		h.mu.Unlock()
		h.run(detached, key, r, f, fetch)
		return f.lines, f.err
	}
	f := r.next
	if after, ok := busctx.LiveSince(ctx); ok && !r.running.start.Before(after) {
		f = r.running // started after the caller's live lines did
	} else if f == nil {
		f = &historyRead{done: make(chan struct{})}
		r.next = f
	}
	f.callers++
	h.mu.Unlock()
	select {
	case <-f.done:
		return f.lines, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run does read f, then starts the read that waited for it, if any.
func (h *historyReads) run(ctx context.Context, key historyKey, r *historyRoom, f *historyRead,
	fetch func(context.Context) ([]Envelope, error)) {
	f.lines, f.err = fetch(ctx)
	h.mu.Lock()
	next := r.next
	r.running, r.next = next, nil
	if next == nil {
		delete(h.rooms, key)
	}
	if next != nil {
		next.start = time.Now()
	}
	h.mu.Unlock()
	close(f.done)
	if next != nil {
		go h.run(ctx, key, r, next, fetch)
	}
}

// readHistory reads the last n lines stored for subject, oldest first.
func (c *Conn) readHistory(ctx context.Context, subject string, n int) ([]Envelope, error) {
	batch := min(4*n, maxHistoryBatch)

	// The stream keeps up to Config.Retain lines per room, many more than
	// are replayed: read back from the room's last line over a span of
	// the stream that grows until it holds n of the room's lines.
	lastMsg, err := c.history.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	end := lastMsg.Sequence
	var lines []Envelope
	for span := uint64(4 * n); ; span *= 8 {
		start := uint64(1)
		if end > span {
			start = end - span + 1
		}
		lines, err = c.readFrom(ctx, subject, start, end, batch, n)
		if err != nil {
			return nil, err
		}
		if len(lines) >= n || start == 1 {
			break
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// readConsumer makes an ephemeral consumer of the history stream for one
// read of stored lines, within ctx (an ordered consumer would make its own
// with a fixed 10 s timeout: reads must stay bounded while the stream
// elects a leader). The caller deletes it; InactiveThreshold is the
// fallback if the delete fails.
func (c *Conn) readConsumer(ctx context.Context, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cfg.AckPolicy = jetstream.AckNonePolicy
	cfg.InactiveThreshold = 30 * time.Second
	cfg.MemoryStorage = true
	cfg.Replicas = 1
	return c.history.CreateConsumer(ctx, cfg)
}

// readFrom reads subject's stored lines from stream sequence start to end,
// keeping the last n that pass the envelope check.
func (c *Conn) readFrom(ctx context.Context, subject string, start, end uint64, batch, n int) ([]Envelope, error) {
	cons, err := c.readConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: subject, // one filter: NATS 2.9 knows no FilterSubjects
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   start,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			if err := c.history.DeleteConsumer(ctx, info.Name); err != nil {
				c.log.Debug("bus: history: delete consumer", "err", err)
			}
		}
	}()
	var lines []Envelope
	for {
		msgs, err := cons.FetchNoWait(batch)
		if err != nil {
			return nil, err
		}
		got, done := 0, false
		for m := range msgs.Messages() {
			got++
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= end {
				done = true
				if md.Sequence.Stream > end {
					continue
				}
			}
			e, ok := c.accept(onRoom, m.Subject(), m.Data())
			if !ok {
				continue
			}
			lines = append(lines, e)
		}
		if err := msgs.Error(); err != nil {
			return nil, err
		}
		if len(lines) > n { // keep memory bounded while paging
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
		if done {
			return lines, nil
		}
		// A batch may hold fewer than there are (a no-wait fetch takes
		// what the new consumer has ready): the range ends at end, which
		// is stored, so read on.
		if got == 0 {
			if err := pause(ctx); err != nil {
				return nil, err
			}
		}
	}
}

// pause waits a moment before a fetch that found nothing is tried again,
// unless ctx ends first.
func pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(5 * time.Millisecond):
		return nil
	}
}
