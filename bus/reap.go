package bus

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"
)

// Reaping: the records of a gateway that is gone (crashed, killed, cut off
// or paused past its lease) are removed by the gateways that stay, and each
// of its users' departures is announced once: every record is removed with
// a compare-and-delete, and only the gateway whose delete succeeds
// announces that user's departure. Nobody is judged gone while mayJudge
// says no.

// watchGateways cleans up after every gateway seen taking a lease whose
// lease has lapsed. It runs on the lease loop.
func (m *membership) watchGateways(ctx context.Context) {
	kl, err := m.c.gateways.ListKeys(ctx)
	if err != nil {
		m.c.log.Debug("bus: list gateways", "err", err)
		return
	}
	live := make(map[string]struct{})
	for k := range kl.Keys() {
		live[k] = struct{}{}
	}
	if ctx.Err() != nil {
		return
	}
	var gone []string
	m.mu.Lock()
	// Every gateway with a lease now is followed, even if the watch on
	// the bucket missed it (it may stop while JetStream has no quorum).
	for id := range live {
		m.seen[id] = struct{}{}
	}
	if !m.mayJudge() {
		m.mu.Unlock()
		return
	}
	for id := range m.seen {
		if _, ok := live[id]; !ok && id != m.c.id {
			gone = append(gone, id)
			delete(m.seen, id)
		}
	}
	m.mu.Unlock()
	for _, id := range gone {
		if !m.cleanupGateway(ctx, id) {
			// Alive after all (its lease was being refreshed), or not
			// known: look again at the next refresh.
			m.mu.Lock()
			m.seen[id] = struct{}{}
			m.mu.Unlock()
		}
	}
}

// cleanupGateway removes the presence records and nicknames of a gateway
// whose lease lapsed and announces its users' departure. It reports
// whether it took the gateway for gone (false: the gateway is alive, or
// the bus did not answer). The records are listed on the lease loop and
// removed apart from it (releaseGone): a gateway of thousands of users
// takes longer than one refresh may wait.
func (m *membership) cleanupGateway(ctx context.Context, gw string) bool {
	if !m.mayJudge() {
		return false
	}
	if alive, err := m.gatewayAlive(ctx, gw); err != nil || alive {
		return false
	}
	c := m.c
	var presence, nicks []presenceEntry
	var err error
	if presence, err = m.ownedBy(ctx, c.presence, gw); err == nil {
		nicks, err = m.ownedBy(ctx, c.nicks, gw)
	}
	if err != nil {
		c.log.Debug("bus: cleanup: list", "gone", gw, "err", err)
		return false
	}
	c.log.Warn("bus: gateway gone: releasing its users", "gone", gw, "presence", len(presence), "nicknames", len(nicks))
	m.mu.Lock()
	if c.closing.Load() {
		m.mu.Unlock()
		return false
	}
	c.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer c.wg.Done()
		if !m.releaseGone(presence, nicks) {
			// Some records could not be removed: look at the gateway
			// again at the next refresh.
			m.mu.Lock()
			m.seen[gw] = struct{}{}
			m.mu.Unlock()
		}
	}()
	return true
}

// cleanupWorkers is how many of a clean-up's deletes are in flight at
// once: they are pipelined on one acknowledgement subscription (kvpipe.go).
const cleanupWorkers = 32

// releaseGone removes a gone gateway's presence records, announcing each
// departure whose delete was this gateway's, then its nicknames. Each
// delete is a compare-and-delete: of the gateways cleaning up, only the
// one whose delete was applied announces; a delete that timed out is read
// back (kvDeleteSure), since the broker may have applied it. It reports
// whether every record is gone (removed here or by someone else).
func (m *membership) releaseGone(presence, nicks []presenceEntry) bool {
	c := m.c
	var failed atomic.Bool
	for _, list := range []struct {
		kv      jetstream.KeyValue
		entries []presenceEntry
	}{{c.presence, presence}, {c.nicks, nicks}} {
		next := make(chan presenceEntry)
		var wg sync.WaitGroup
		for range min(cleanupWorkers, len(list.entries)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for e := range next {
					err := c.kvDeleteSure(list.kv, e.key, e.rev, 3, c.cfg.RequestTimeout)
					switch {
					case err == nil && list.kv == c.presence:
						m.announceGone(roomOf(e.key), e.Nick)
					case err != nil && !isConflict(err):
						failed.Store(true)
						c.log.Debug("bus: cleanup", "key", e.key, "err", err)
					}
				}
			}()
		}
	feed:
		for _, e := range list.entries {
			select {
			case next <- e:
			case <-c.done:
				failed.Store(true)
				break feed
			}
		}
		close(next)
		wg.Wait()
	}
	return !failed.Load()
}

// ownedBy lists the records of kv that name gateway gw.
func (m *membership) ownedBy(ctx context.Context, kv jetstream.KeyValue, gw string) ([]presenceEntry, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	var out []presenceEntry
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watcher stopped")
			}
			if e == nil {
				return out, nil
			}
			if rec, valid := m.readRecord(kv, e); valid && rec.GW == gw {
				out = append(out, presenceEntry{key: e.Key(), rev: e.Revision(), ownerRec: rec})
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// reap removes, in the background, presence records left by gateways that
// are gone (crashed without Close) and announces each departure it
// removes, after checking each gateway's lease again. Without the
// announcement, a gateway whose lease lapsed (JetStream without a quorum)
// and which claims its users back would announce them joining again with no
// leave between. It also removes, announcing nothing, the foreign records:
// those chatd did not write (readRecord). Each record is removed with a
// compare-and-delete, so a record written since stays. One reaper runs at
// a time; Close waits for it.
func (m *membership) reap(stale, foreign []presenceEntry) {
	if len(stale) == 0 && len(foreign) == 0 {
		return
	}
	c := m.c
	m.mu.Lock()
	if m.reaping || c.closing.Load() {
		m.mu.Unlock()
		return
	}
	m.reaping = true
	c.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer func() {
			m.mu.Lock()
			m.reaping = false
			m.mu.Unlock()
		}()
		for _, e := range foreign {
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
			err := c.kvDelete(ctx, c.presence, e.key, e.rev)
			cancel()
			if err != nil && !isConflict(err) {
				c.log.Debug("bus: delete foreign record", "key", e.key, "err", err)
				return
			}
		}
		dead := make(map[string]bool)
		for _, e := range stale {
			select {
			case <-c.done:
				return
			default:
			}
			if !m.mayJudge() {
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
			d, checked := dead[e.GW]
			if !checked {
				alive, err := m.gatewayAlive(ctx, e.GW)
				if err != nil {
					cancel()
					c.log.Debug("bus: reap presence", "err", err)
					return
				}
				d = !alive
				dead[e.GW] = d
			}
			if d {
				err := c.kvDelete(ctx, c.presence, e.key, e.rev)
				if err != nil && !isConflict(err) {
					cancel()
					c.log.Debug("bus: reap presence", "key", e.key, "err", err)
					return
				}
				if err == nil {
					m.announceGone(roomOf(e.key), e.Nick)
					c.log.Debug("bus: reaped stale presence", "key", e.key, "gw", e.GW)
				}
			}
			cancel()
		}
	}()
}
