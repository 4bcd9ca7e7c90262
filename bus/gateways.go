package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Gateways returns where chat clients reach the other live gateways (their
// Config.Addr), sorted. A gateway shutting down tells its clients these.
func (c *Conn) Gateways(ctx context.Context) ([]string, error) {
	if c.closing.Load() {
		return nil, ErrClosed
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	recs, err := c.leases(ctx)
	if err != nil {
		return nil, fmt.Errorf("bus: gateways: %w", err)
	}
	var addrs []string
	for id, r := range recs {
		if id != c.id && r.Addr != "" {
			addrs = append(addrs, r.Addr)
		}
	}
	slices.Sort(addrs)
	return slices.Compact(addrs), nil
}

// leases reads every current chat_gateways record.
func (c *Conn) leases(ctx context.Context) (map[string]leaseRec, error) {
	w, err := c.gateways.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	recs := make(map[string]leaseRec)
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watcher stopped")
			}
			if e == nil {
				return recs, nil
			}
			var r leaseRec
			if json.Unmarshal(e.Value(), &r) == nil {
				recs[e.Key()] = r
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// lapsed reports, once per reconnect, whether this Conn was cut off from
// NATS long enough for its lease to have lapsed.
func (c *Conn) lapsed() bool {
	since := c.disconnected.Swap(0)
	return since != 0 && time.Since(time.Unix(0, since)) > c.cfg.Lease/3
}

// followGateways records, from a watch on chat_gateways, every gateway
// that takes a lease, as soon as it does; watchGateways later notices the
// ones whose lease lapses. A gateway that closes cleanly deletes its lease
// and is forgotten. It runs until Close.
func (c *Conn) followGateways() {
	defer c.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.done
		cancel()
	}()
	w, err := c.gateways.WatchAll(ctx)
	if err != nil {
		c.log.Warn("bus: cannot watch gateways: crashed gateways will not be noticed", "err", err)
		return
	}
	defer func() { _ = w.Stop() }()
	for e := range w.Updates() {
		if e == nil {
			continue
		}
		c.mu.Lock()
		if e.Operation() == jetstream.KeyValuePut {
			c.seen[e.Key()] = struct{}{}
		} else {
			delete(c.seen, e.Key())
		}
		c.mu.Unlock()
	}
}

// watchGateways cleans up after every gateway seen taking a lease whose
// lease has lapsed. It runs on the lease loop.
func (c *Conn) watchGateways(ctx context.Context) {
	kl, err := c.gateways.ListKeys(ctx)
	if err != nil {
		c.log.Debug("bus: list gateways", "err", err)
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
	c.mu.Lock()
	// Every gateway with a lease now is followed, even if the watch on
	// the bucket missed it (it may stop while JetStream has no quorum).
	for id := range live {
		c.seen[id] = struct{}{}
	}
	if !c.mayJudge() {
		c.mu.Unlock()
		return
	}
	for id := range c.seen {
		if _, ok := live[id]; !ok && id != c.id {
			gone = append(gone, id)
			delete(c.seen, id)
		}
	}
	c.mu.Unlock()
	for _, id := range gone {
		if !c.cleanupGateway(ctx, id) {
			// Alive after all (its lease was being refreshed), or not
			// known: look again at the next refresh.
			c.mu.Lock()
			c.seen[id] = struct{}{}
			c.mu.Unlock()
		}
	}
}

// cleanupGateway releases the presence entries and nicknames of a gateway
// whose lease lapsed and announces its users' departure. Every live gateway
// may run it at once: each entry is removed with a compare-and-delete, and
// only the gateway whose delete succeeds publishes that user's leave event,
// so each departure is announced exactly once.
// It reports whether it did (false: the gateway is alive, or the bus did
// not answer).
func (c *Conn) cleanupGateway(ctx context.Context, gw string) bool {
	if !c.mayJudge() {
		return false
	}
	if alive, err := c.gatewayAlive(ctx, gw); err != nil || alive {
		return false
	}
	c.log.Warn("bus: gateway gone: releasing its users", "gone", gw)
	for _, kv := range []jetstream.KeyValue{c.presence, c.nicks} {
		entries, err := ownedBy(ctx, kv, gw)
		if err != nil {
			c.log.Debug("bus: cleanup", "bucket", kv.Bucket(), "err", err)
			return false
		}
		for _, e := range entries {
			err := c.kvDelete(ctx, kv, e.key, e.rev)
			if err != nil {
				if !isConflict(err) {
					c.log.Debug("bus: cleanup", "key", e.key, "err", err)
				}
				continue
			}
			if kv == c.presence {
				c.announceGone(roomOf(e.key), e.Nick)
			}
		}
	}
	return true
}

// ownedBy lists the entries of kv whose record names gateway gw.
func ownedBy(ctx context.Context, kv jetstream.KeyValue, gw string) ([]presenceEntry, error) {
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
			pe := presenceEntry{key: e.Key(), rev: e.Revision()}
			if json.Unmarshal(e.Value(), &pe.ownerRec) == nil && pe.GW == gw {
				out = append(out, pe)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// reassert claims again, after this gateway's lease may have lapsed, the
// nicknames and presence it holds. A nickname another gateway took
// meanwhile is reported to OnNickLost; a presence entry that was released
// is put back and its user's join published again, since the room was told
// they left.
func (c *Conn) reassert(ctx context.Context) {
	c.mu.Lock()
	held := make(map[string]string, len(c.held))
	for k, v := range c.held {
		if v != "" { // not being released
			held[k] = v
		}
	}
	present := make(map[string]string, len(c.present))
	for k, v := range c.present {
		// An entry Enter could not write was never released, so nobody
		// announced a departure: repairPresence writes it, quietly.
		if _, unwritten := c.unwritten[k]; !unwritten {
			present[k] = v
		}
	}
	c.mu.Unlock()

	for key, nick := range held {
		val, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id})
		e, err := c.nicks.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			_, err = c.kvCreate(ctx, c.nicks, key, val)
		} else if err == nil {
			var owner ownerRec
			_ = json.Unmarshal(e.Value(), &owner)
			if owner.GW == c.id {
				continue
			}
			alive, aerr := c.gatewayAlive(ctx, owner.GW)
			switch {
			case aerr != nil:
				err = aerr
			case alive:
				err = jetstream.ErrKeyExists
			default:
				_, err = c.kvUpdate(ctx, c.nicks, key, val, e.Revision())
			}
		}
		if isConflict(err) {
			c.log.Warn("bus: nickname taken while the link was down", "nick", nick)
			c.mu.Lock()
			delete(c.held, key)
			c.mu.Unlock()
			if c.cfg.OnNickLost != nil {
				c.cfg.OnNickLost(nick)
			}
		} else if err != nil {
			c.log.Debug("bus: reassert nick", "nick", nick, "err", err)
		}
	}
	for key, nick := range present {
		c.mu.Lock()
		_, still := c.present[key]
		c.mu.Unlock()
		if !still { // left meanwhile
			continue
		}
		val, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id})
		e, err := c.presence.Get(ctx, key)
		var owner ownerRec
		switch {
		case err == nil && json.Unmarshal(e.Value(), &owner) == nil && owner.GW == c.id:
			continue
		case err == nil:
			// Another gateway's entry: the user may be there now. Put
			// back only over a gateway that is gone.
			if alive, aerr := c.gatewayAlive(ctx, owner.GW); aerr != nil || alive {
				continue
			}
			_, err = c.kvUpdate(ctx, c.presence, key, val, e.Revision())
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = c.kvCreate(ctx, c.presence, key, val)
		}
		if err != nil {
			c.log.Debug("bus: reassert presence", "key", key, "err", err)
			continue
		}
		room := roomOf(key)
		if subject, err := EventSubject(room, KindJoin); err == nil {
			env := Envelope{Kind: KindJoin, Room: room, Nick: nick}
			_ = c.publish(subject, &env)
		}
	}
}
