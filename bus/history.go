package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// maxHistoryBatch bounds one fetch of stored lines.
const maxHistoryBatch = 1000

// History calls fn for the last n chat lines (KindSay, KindMe) stored for
// room, oldest first, before it returns. It reads the room's subject of the
// CHAT_HISTORY stream with an ordered consumer and no-wait fetches, so it
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
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	start, replayed := time.Now(), 0
	defer func() {
		c.observe(OpHistoryRead, start, err)
		if err == nil {
			c.observeReplay(replayed)
		}
	}()

	batch := min(4*n, maxHistoryBatch)

	// The stream keeps up to Config.Retain lines per room, many more than
	// are replayed: read back from the room's last line over a span of
	// the stream that grows until it holds n of the room's lines.
	lastMsg, err := c.history.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bus: history %s: %w", room, err)
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
			return fmt.Errorf("bus: history %s: %w", room, err)
		}
		if len(lines) >= n || start == 1 {
			break
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, e := range lines {
		fn(e.ID, e.Kind, e.Nick, e.Text, time.Unix(0, e.TS))
	}
	replayed = len(lines)
	return nil
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
		if done || got < batch {
			return lines, nil
		}
	}
}
