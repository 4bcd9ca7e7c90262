package bus

import (
	"context"
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
func (c *Conn) History(ctx context.Context, room string, n int, fn func(id, kind, nick, text string, at time.Time)) error {
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

	batch := c.cfg.History
	if info := c.history.CachedInfo(); info != nil && info.Config.MaxMsgsPerSubject > 0 {
		batch = int(info.Config.MaxMsgsPerSubject) // another gateway may have set it
	}
	batch = min(max(batch, 1), maxHistoryBatch)

	cons, err := c.history.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subject},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: 30 * time.Second, // fallback if the delete below fails
		MaxResetAttempts:  1,
	})
	if err != nil {
		return fmt.Errorf("bus: history %s: %w", room, err)
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
			return fmt.Errorf("bus: history %s: %w", room, err)
		}
		got := 0
		for m := range msgs.Messages() {
			got++
			e, ok := c.accept(onRoom, m.Subject(), m.Data())
			if !ok {
				continue
			}
			lines = append(lines, e)
		}
		if err := msgs.Error(); err != nil {
			return fmt.Errorf("bus: history %s: %w", room, err)
		}
		if got < batch {
			break
		}
		if len(lines) > n { // keep memory bounded while paging
			lines = append(lines[:0], lines[len(lines)-n:]...)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, e := range lines {
		fn(e.ID, e.Kind, e.Nick, e.Text, time.Unix(0, e.TS))
	}
	return nil
}
