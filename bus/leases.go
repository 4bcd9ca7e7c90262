package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Leases. Every gateway keeps a record in chat_gateways, refreshed every
// Lease/3; the bucket's TTL removes it a lease after the last refresh. A
// gateway whose record is missing is gone (crashed, cut off, paused) once
// this gateway may judge (mayJudge), and reap.go cleans up after it.

// leaseRec is the value of a chat_gateways entry.
type leaseRec struct {
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Addr    string    `json:"addr,omitempty"` // where chat clients reach this gateway
	IRC     string    `json:"irc,omitempty"`  // where IRC clients reach it, if it has an IRC port
}

// liveCacheTTL is how long the set of live gateways is reused by Who and
// Rooms.
const liveCacheTTL = time.Second

type liveCache struct {
	mu  sync.Mutex
	at  time.Time
	ids map[string]struct{} // read-only once stored
}

// putLease writes this gateway's lease.
func (m *membership) putLease(ctx context.Context) error {
	if m.refreshFault.Load() {
		return errors.New("bus: lease: refresh fault (test)")
	}
	c := m.c
	val, _ := json.Marshal(leaseRec{Name: c.cfg.Name, Started: c.startedAt, Addr: c.cfg.Addr, IRC: c.cfg.IRCAddr})
	if _, err := c.gateways.Put(ctx, c.id, val); err != nil {
		return fmt.Errorf("bus: lease: %w", err)
	}
	return nil
}

// leaseLoop refreshes this gateway's lease every Lease/3 (and at once after
// a reconnect) until Close. After each refresh it does the work that waits
// for one: it claims back what it holds if its lease may have lapsed,
// writes and deletes the presence records it could not before, releases
// doubtful nickname records and cleans up after gateways that are gone.
func (m *membership) leaseLoop() {
	c := m.c
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Lease / 3)
	defer t.Stop()
	ok := true
	last := time.Now() // the last refresh that succeeded
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		case <-c.kick:
		}
		// A refresh two periods late means this process was not running
		// (paused, stopped, starved) for long enough that its lease may
		// have lapsed without the link ever going down.
		late := time.Since(last) > 2*c.cfg.Lease/3
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
		err := m.putLease(ctx)
		if err == nil {
			last = time.Now()
		}
		lapsed := c.lapsed() || late
		switch {
		case err != nil:
			// JetStream does not answer (no quorum, or no link): nobody's
			// lease can be refreshed, so nobody may be judged gone...
			m.judgeAfter.Store(math.MaxInt64)
		case !ok || lapsed:
			// ...until every gateway has had a full lease to refresh
			// after JetStream answers again: leases that lapsed meanwhile
			// all expire at once when it does, and the other gateways
			// refresh theirs up to a lease/3 later.
			m.judgeAfter.Store(time.Now().Add(c.cfg.Lease).UnixNano())
		}
		switch {
		case err != nil && ok:
			c.log.Warn("bus: cannot refresh lease", "err", err)
		case err == nil && (!ok || lapsed):
			// The lease may have lapsed meanwhile, and other gateways may
			// have released what this one holds: claim it again.
			c.log.Info("bus: lease refreshed again")
			m.reassertNicks(ctx)
			m.reassertPresence(ctx)
		}
		if err == nil {
			m.repairPresence(ctx)
			m.deleteLeftover(ctx)
			m.releaseDoubtful(ctx)
			m.watchGateways(ctx)
		}
		cancel()
		ok = err == nil
	}
}

// lapsed reports, once per reconnect, whether this Conn was cut off from
// NATS long enough for its lease to have lapsed.
func (c *Conn) lapsed() bool {
	since := c.disconnected.Swap(0)
	return since != 0 && time.Since(time.Unix(0, since)) > c.cfg.Lease/3
}

// mayJudge reports whether this gateway may take another whose lease is
// missing for gone: not while its own refreshes fail, and not until a full
// lease after they succeed again (after JetStream failed to answer, or its
// own lease lapsed). Until then a missing lease may belong to a gateway
// that is alive and has not had its turn to refresh, and nobody is
// announced as gone, reaped or taken over.
func (m *membership) mayJudge() bool {
	return time.Now().UnixNano() >= m.judgeAfter.Load()
}

// liveGateways returns the ids of the gateways whose lease is current, at
// most liveCacheTTL old. The map must not be modified.
func (m *membership) liveGateways(ctx context.Context) (map[string]struct{}, error) {
	m.live.mu.Lock()
	defer m.live.mu.Unlock()
	if m.live.ids != nil && time.Since(m.live.at) < liveCacheTTL {
		return m.live.ids, nil
	}
	kl, err := m.c.gateways.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("bus: list gateways: %w", err)
	}
	ids := make(map[string]struct{})
	for k := range kl.Keys() {
		ids[k] = struct{}{}
	}
	if err := ctx.Err(); err != nil { // the lister stops early on ctx
		return nil, fmt.Errorf("bus: list gateways: %w", err)
	}
	m.live.ids, m.live.at = ids, time.Now()
	return ids, nil
}

// gatewayAlive reports whether gw holds a current lease, asking the server.
func (m *membership) gatewayAlive(ctx context.Context, gw string) (bool, error) {
	if gw == m.c.id {
		return true, nil
	}
	if gw == "" {
		return false, nil
	}
	_, err := m.c.kvGet(ctx, m.c.gateways, gw)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		return false, nil
	}
	return false, fmt.Errorf("bus: gateway lease: %w", err)
}

// followGateways records, from a watch on chat_gateways, every gateway
// that takes a lease, as soon as it does; watchGateways later notices the
// ones whose lease lapses. A gateway that closes cleanly deletes its lease
// and is forgotten. It runs until Close.
func (m *membership) followGateways() {
	c := m.c
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
		m.mu.Lock()
		if e.Operation() == jetstream.KeyValuePut {
			m.seen[e.Key()] = struct{}{}
		} else {
			delete(m.seen, e.Key())
		}
		m.mu.Unlock()
	}
}

// Gateways returns where chat clients reach the other live gateways (their
// Config.Addr), sorted. A gateway shutting down tells its clients these.
func (c *Conn) Gateways(ctx context.Context) ([]string, error) {
	return c.gatewayAddrs(ctx, func(r leaseRec) string { return r.Addr })
}

// IRCGateways returns where IRC clients reach the other live gateways that
// have an IRC port (their Config.IRCAddr), sorted.
func (c *Conn) IRCGateways(ctx context.Context) ([]string, error) {
	return c.gatewayAddrs(ctx, func(r leaseRec) string { return r.IRC })
}

// gatewayAddrs returns the address addr picks from each other gateway's
// lease, leaving out empty ones and any that is not a printable host:port.
func (c *Conn) gatewayAddrs(ctx context.Context, addr func(leaseRec) string) ([]string, error) {
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
		a := addr(r)
		if id == c.id || a == "" {
			continue
		}
		if !validAddr(a) {
			c.log.Warn("bus: ignored a gateway lease whose address is not host:port", "gateway", id)
			continue
		}
		addrs = append(addrs, a)
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
