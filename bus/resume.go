package bus

import (
	"context"
	"time"
)

// maxResumeRead bounds the stored lines one resume reads.
const maxResumeRead = 4 * maxHistoryBatch

// Missed calls fn, oldest first, for the chat lines of room that a client
// which saw up to a position has not seen: the stored lines from a little
// before since (fillMargin) on, up to the newest when called, but those
// whose sender's counter is at or below last[sender]; from a sender not in
// last, those stamped after since. At most max are given, the newest;
// skipped counts the others. gone reports that the stored lines no longer
// reach back to since, or that more lines than a resume reads were stored
// since. It reads at most 4000 lines, only from room's own subject: a
// position cannot reach another room's lines. fn runs before Missed
// returns.
func (c *Conn) Missed(ctx context.Context, room string, since time.Time, last map[string]uint64, max int, fn DeliverFunc) (skipped int, gone bool, err error) {
	subject, err := historySubject(room)
	if err != nil {
		return 0, false, err
	}
	if c.closing.Load() {
		return 0, false, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	lines, gone, err := c.recoverLines(room, subject, since.Add(-fillMargin), last, since, maxResumeRead)
	if err != nil {
		return 0, false, err
	}
	sinceNs := since.UnixNano()
	missed := lines[:0]
	for _, e := range lines {
		gw, n, ok := splitID(e.ID)
		if !ok {
			continue
		}
		if seen, known := last[gw]; known && n <= seen || !known && e.TS <= sinceNs {
			continue
		}
		missed = append(missed, e)
	}
	if max > 0 && len(missed) > max {
		skipped = len(missed) - max
		missed = missed[skipped:]
	}
	for _, e := range missed {
		fn(e.ID, e.Kind, e.Nick, e.Text, time.Unix(0, e.TS))
	}
	return skipped, gone, nil
}
