package bus

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Releasing a nickname or leaving a room deletes a key of chat_nicks or
// chat_presence, and JetStream keeps a delete marker for every key ever
// deleted: without a sweep, the buckets and the servers' per-subject state
// grow with every distinct nickname ever used.
//
// Every Config.Sweep (a minute) a gateway purges the markers older than
// Config.Sweep: a reader that looked at the key just before it was deleted
// has long seen the deletion.
const (
	// sweepWorkers is how many purge requests a sweep keeps in flight.
	// One at a time, a busy server answered fewer purges than the churn
	// of distinct nicknames made markers (hundreds a second): the sweeps
	// ran out of time and the markers piled up.
	sweepWorkers = 16
)

// sweepLoop purges old delete markers from the nickname and presence
// buckets every Config.Sweep until Close. Every gateway sweeps; sweeps that
// overlap are harmless.
func (c *Conn) sweepLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Sweep)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(c.cfg.Sweep/2, c.cfg.RequestTimeout))
		c.sweepMod(ctx)
		cancel()
		for _, kv := range []jetstream.KeyValue{c.nicks, c.presence, c.modKV} {
			ctx, cancel := context.WithTimeout(context.Background(), max(c.cfg.Sweep/2, c.cfg.RequestTimeout))
			// A sweep cut short keeps what it purged; the next one
			// takes the rest.
			n, err := c.sweepMarkers(ctx, kv, c.cfg.Sweep)
			cancel()
			if err != nil {
				c.log.Warn("bus: sweeping delete markers", "bucket", kv.Bucket(), "purged", n, "err", err)
			} else if n > 0 {
				c.log.Debug("bus: swept delete markers", "bucket", kv.Bucket(), "markers", n)
			}
		}
	}
}

// sweepMarkers purges every delete marker of kv older than age, with the
// revisions before it, and returns how many it purged. Each purge stops at
// the marker's sequence, so a record written after it — a nickname claimed
// again meanwhile — is kept.
func (c *Conn) sweepMarkers(ctx context.Context, kv jetstream.KeyValue, age time.Duration) (int, error) {
	w, err := kv.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return 0, err
	}
	var markers []jetstream.KeyValueEntry
	limit := time.Now().Add(-age)
	for e := range w.Updates() {
		if e == nil {
			break // the current values are all in
		}
		if op := e.Operation(); (op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge) && !e.Created().After(limit) {
			markers = append(markers, e)
		}
	}
	w.Stop()
	if len(markers) == 0 {
		return 0, ctx.Err()
	}
	stream, err := c.js.Stream(ctx, "KV_"+kv.Bucket())
	if err != nil {
		return 0, err
	}
	var (
		n    atomic.Int64
		next atomic.Int64
		mu   sync.Mutex
		errs error
		wg   sync.WaitGroup
	)
	for range min(sweepWorkers, len(markers)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(markers)) && ctx.Err() == nil; i = next.Add(1) - 1 {
				e := markers[i]
				err := stream.Purge(ctx,
					jetstream.WithPurgeSubject("$KV."+kv.Bucket()+"."+e.Key()),
					jetstream.WithPurgeSequence(e.Revision()+1))
				if err != nil {
					mu.Lock()
					if errs == nil {
						errs = err
					}
					mu.Unlock()
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if errs == nil {
		errs = ctx.Err()
	}
	return int(n.Load()), errs
}
