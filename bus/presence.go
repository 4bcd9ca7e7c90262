package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream stream and KV buckets shared by all gateways.
const (
	// HistoryStream keeps the last Config.History chat lines of each room
	// (subjects HistorySubjects, one subject per room).
	HistoryStream = "CHAT_HISTORY"
	// GatewaysBucket holds one key per live gateway (its id), value
	// {"name":..,"started":..}, with a TTL of Config.Lease.
	GatewaysBucket = "chat_gateways"
	// NicksBucket maps nickkey to {"nick":"Alice","gw":"<gwid>"}.
	NicksBucket = "chat_nicks"
	// PresenceBucket maps <room>.<nickkey> to {"nick":"Alice","gw":"<gwid>"}.
	PresenceBucket = "chat_presence"
)

// liveCacheTTL is how long the set of live gateways is reused by Who, Rooms
// and SendPrivate.
const liveCacheTTL = time.Second

// ownerRec is the value of chat_nicks and chat_presence entries.
type ownerRec struct {
	Nick string `json:"nick"`
	GW   string `json:"gw"`
	// Took names the gateway whose record this one replaced, the writer
	// having announced (or, repairing, given up) that user's departure
	// (chat_presence only): that gateway must not announce it again.
	Took string `json:"took,omitempty"`
}

// leaseRec is the value of a chat_gateways entry.
type leaseRec struct {
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Addr    string    `json:"addr,omitempty"` // where chat clients reach this gateway
}

type liveCache struct {
	mu  sync.Mutex
	at  time.Time
	ids map[string]struct{} // read-only once stored
}

// setupJetStream creates or updates the stream and buckets and writes this
// gateway's lease. A server without JetStream is refused (ErrNoJetStream).
func (c *Conn) setupJetStream(ctx context.Context) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("bus: jetstream: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return ErrNoJetStream
		}
		return fmt.Errorf("bus: jetstream: %w", err)
	}
	// history is 1 for the leases, which expire by age, and 2 for the
	// nicknames and presence, whose writes roll their key up (kvwrite.go):
	// a write is stored beside the revision it replaces, which the rollup
	// then purges, leaving a tombstone.
	bucket := func(name, desc string, ttl time.Duration, history uint8) (jetstream.KeyValue, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      name,
			Description: desc,
			History:     history,
			TTL:         ttl,
			Storage:     jetstream.FileStorage,
			Replicas:    c.cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("bus: bucket %s: %w", name, err)
		}
		return kv, nil
	}
	if c.gateways, err = bucket(GatewaysBucket, "chatd: live gateways (leases)", c.cfg.Lease, 1); err != nil {
		return err
	}
	if c.nicks, err = bucket(NicksBucket, "chatd: nickname owners", 0, 2); err != nil {
		return err
	}
	if c.presence, err = bucket(PresenceBucket, "chatd: room members", 0, 2); err != nil {
		return err
	}
	if c.cfg.History > 0 {
		c.history, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:              HistoryStream,
			Description:       "chatd: recent chat lines per room",
			Subjects:          []string{HistorySubjects},
			MaxMsgsPerSubject: int64(c.cfg.History),
			Discard:           jetstream.DiscardOld,
			Storage:           jetstream.FileStorage,
			Replicas:          c.cfg.Replicas,
		})
		if err != nil {
			return fmt.Errorf("bus: stream %s: %w", HistoryStream, err)
		}
	}
	if err := c.waitLeaders(ctx); err != nil {
		return err
	}
	if err := c.putLease(ctx); err != nil {
		return err
	}
	c.js = js
	return nil
}

// waitLeaders waits until the stream and every bucket has a leader: on a
// cluster, each one elects its own a moment after it is created or after a
// broker restarts, and until then claims fail and published lines are not
// stored.
func (c *Conn) waitLeaders(ctx context.Context) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		err := c.leadersReady(attempt)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bus: JetStream not ready: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Conn) leadersReady(ctx context.Context) error {
	for _, kv := range []jetstream.KeyValue{c.gateways, c.nicks, c.presence} {
		if _, err := kv.Get(ctx, "leader-probe"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("bucket %s: %w", kv.Bucket(), err)
		}
	}
	if c.history != nil {
		info, err := c.history.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream %s: %w", HistoryStream, err)
		}
		if info.Cluster != nil && info.Cluster.Leader == "" {
			return fmt.Errorf("stream %s has no leader yet", HistoryStream)
		}
	}
	return nil
}

func (c *Conn) putLease(ctx context.Context) error {
	if c.refreshFault.Load() {
		return errors.New("bus: lease: refresh fault (test)")
	}
	val, _ := json.Marshal(leaseRec{Name: c.cfg.Name, Started: c.startedAt, Addr: c.cfg.Addr})
	if _, err := c.gateways.Put(ctx, c.id, val); err != nil {
		return fmt.Errorf("bus: lease: %w", err)
	}
	return nil
}

// leaseLoop refreshes this gateway's lease every Lease/3 (and at once after
// a reconnect) until Close.
func (c *Conn) leaseLoop() {
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
		err := c.putLease(ctx)
		if err == nil {
			last = time.Now()
		}
		lapsed := c.lapsed() || late
		switch {
		case err != nil:
			// JetStream does not answer (no quorum, or no link): nobody's
			// lease can be refreshed, so nobody may be judged gone...
			c.judgeAfter.Store(math.MaxInt64)
		case !ok || lapsed:
			// ...until every gateway has had a full lease to refresh
			// after JetStream answers again: leases that lapsed meanwhile
			// all expire at once when it does, and the other gateways
			// refresh theirs up to a lease/3 later.
			c.judgeAfter.Store(time.Now().Add(c.cfg.Lease).UnixNano())
		}
		switch {
		case err != nil && ok:
			c.log.Warn("bus: cannot refresh lease", "err", err)
		case err == nil && (!ok || lapsed):
			// The lease may have lapsed meanwhile, and other gateways may
			// have released what this one holds: claim it again.
			c.log.Info("bus: lease refreshed again")
			c.reassert(ctx)
		}
		if err == nil {
			c.repairPresence(ctx)
			c.deleteLeftover(ctx)
			c.releaseDoubtful(ctx)
			c.watchGateways(ctx)
		}
		cancel()
		ok = err == nil
	}
}

// mayJudge reports whether this gateway may take another whose lease is
// missing for gone: not while its own refreshes fail, and not until a full
// lease after they succeed again (after JetStream failed to answer, or its
// own lease lapsed). Until then a missing lease
// may belong to a gateway that is alive and has not had its turn to
// refresh, and nobody is announced as gone, reaped or taken over.
func (c *Conn) mayJudge() bool {
	return time.Now().UnixNano() >= c.judgeAfter.Load()
}

// liveGateways returns the ids of the gateways whose lease is current, at
// most liveCacheTTL old. The map must not be modified.
func (c *Conn) liveGateways(ctx context.Context) (map[string]struct{}, error) {
	c.live.mu.Lock()
	defer c.live.mu.Unlock()
	if c.live.ids != nil && time.Since(c.live.at) < liveCacheTTL {
		return c.live.ids, nil
	}
	kl, err := c.gateways.ListKeys(ctx)
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
	c.live.ids, c.live.at = ids, time.Now()
	return ids, nil
}

// gatewayAlive reports whether gw holds a current lease, asking the server.
func (c *Conn) gatewayAlive(ctx context.Context, gw string) (bool, error) {
	if gw == c.id {
		return true, nil
	}
	if gw == "" {
		return false, nil
	}
	_, err := c.gateways.Get(ctx, gw)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		return false, nil
	}
	return false, fmt.Errorf("bus: gateway lease: %w", err)
}

// isConflict reports whether err is a failed compare-and-set on a KV key.
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// ClaimNick reserves nick for this gateway, case-insensitively, in
// chat_nicks. A record left by a gateway whose lease has lapsed is taken
// over atomically. It reports false if the nick is held by a live gateway,
// this one included.
func (c *Conn) ClaimNick(ctx context.Context, nick string) (bool, error) {
	key, err := NickKey(nick)
	if err != nil {
		return false, err
	}
	if c.closing.Load() {
		return false, ErrClosed
	}
	// The key is reserved here while it is claimed, so that a record of
	// this gateway that no session holds is known to be left over.
	c.mu.Lock()
	if _, busy := c.held[key]; busy {
		c.mu.Unlock()
		return false, nil
	}
	c.held[key] = nick
	c.mu.Unlock()
	ok, err := c.claimNick(ctx, key, nick)
	if !ok {
		c.mu.Lock()
		delete(c.held, key)
		if err != nil {
			// The server may yet apply a create that timed out: release
			// it once the bus answers again (releaseDoubtful).
			c.doubtful[key] = struct{}{}
		}
		c.mu.Unlock()
	}
	return ok, err
}

// claimNick is ClaimNick on JetStream, with key reserved in c.held.
func (c *Conn) claimNick(ctx context.Context, key, nick string) (bool, error) {
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	val, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id})
	for range 3 { // retried when the record changes between the steps
		_, err := c.kvCreate(ctx, c.nicks, key, val)
		if err == nil {
			return true, nil
		}
		if !isConflict(err) {
			return false, fmt.Errorf("bus: claim nick %q: %w", nick, err)
		}
		e, err := c.nicks.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("bus: claim nick %q: %w", nick, err)
		}
		var owner ownerRec
		// A record of this gateway that no session holds is left over
		// from a claim that timed out but was applied: take it.
		if json.Unmarshal(e.Value(), &owner) == nil && owner.GW != c.id {
			alive, err := c.gatewayAlive(ctx, owner.GW)
			if err != nil {
				return false, fmt.Errorf("bus: claim nick %q: %w", nick, err)
			}
			if alive || !c.mayJudge() {
				return false, nil
			}
		}
		// Stale: its gateway is gone. Take it over unless the record changed
		// meanwhile (released by a clean-up, or claimed by someone else):
		// then look again.
		if _, err := c.kvUpdate(ctx, c.nicks, key, val, e.Revision()); err != nil {
			if isConflict(err) {
				continue
			}
			return false, fmt.Errorf("bus: claim nick %q: %w", nick, err)
		}
		c.log.Info("bus: took over stale nickname", "nick", nick, "from_gw", owner.GW)
		return true, nil
	}
	return false, nil
}

// repairPresence writes the presence entries that Enter could not, for the
// users still present. Their join was announced when they entered, so none
// is published. It runs on the lease loop.
func (c *Conn) repairPresence(ctx context.Context) {
	c.mu.Lock()
	keys := make(map[string]string, len(c.unwritten))
	for k := range c.unwritten {
		if nick, ok := c.present[k]; ok {
			keys[k] = nick
		} else {
			delete(c.unwritten, k)
		}
	}
	c.mu.Unlock()
	for key, nick := range keys {
		if err := c.enterQuiet(ctx, key, nick); err != nil {
			continue
		}
		c.mu.Lock()
		delete(c.unwritten, key)
		_, still := c.present[key]
		c.mu.Unlock()
		if !still { // left meanwhile
			_ = c.deleteOwned(ctx, c.presence, key)
		}
	}
}

// enterQuiet writes the presence entry of a user whose join was announced
// but whose entry could not be written then (repairPresence). An entry of
// another gateway found there is replaced, naming it in Took, and nothing
// is published: that gateway's Leave failed the same way, and announced
// the departure all the same (a gateway stopping while JetStream elects
// leaders, its users coming here), or it crashed and the departure is
// lost, which is the lesser harm than a "left!" after this user's
// "joined!".
func (c *Conn) enterQuiet(ctx context.Context, key, nick string) error {
	e, err := c.presence.Get(ctx, key)
	var old ownerRec
	if err == nil && json.Unmarshal(e.Value(), &old) == nil && old.GW != c.id && old.GW != "" {
		took, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id, Took: old.GW})
		_, err := c.kvUpdate(ctx, c.presence, key, took, e.Revision())
		if err == nil || !isConflict(err) {
			return err
		}
	}
	val, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id})
	_, err = c.kvPut(ctx, c.presence, key, val)
	return err
}

// deleteLeftover deletes the presence entries that Leave could not, unless
// the user is present again. It runs on the lease loop.
func (c *Conn) deleteLeftover(ctx context.Context) {
	c.mu.Lock()
	var keys []string
	for k := range c.leftover {
		if _, back := c.present[k]; back {
			delete(c.leftover, k)
			continue
		}
		keys = append(keys, k)
	}
	c.mu.Unlock()
	for _, k := range keys {
		if err := c.deleteOwned(ctx, c.presence, k); err != nil {
			continue
		}
		c.mu.Lock()
		if _, back := c.present[k]; !back {
			delete(c.leftover, k)
		}
		c.mu.Unlock()
	}
}

// releaseDoubtful deletes the nickname records that claims which failed
// (timed out, e.g. while JetStream had no quorum) may have created after
// all, unless a session holds them now. Each key is reserved while it is
// released, so that a claim of it meanwhile is refused, not undone. It runs
// on the lease loop.
func (c *Conn) releaseDoubtful(ctx context.Context) {
	c.mu.Lock()
	var keys []string
	for k := range c.doubtful {
		if _, held := c.held[k]; !held {
			c.held[k] = ""
			keys = append(keys, k)
		}
	}
	c.mu.Unlock()
	for _, k := range keys {
		err := c.deleteOwned(ctx, c.nicks, k)
		c.mu.Lock()
		delete(c.held, k)
		if err == nil {
			delete(c.doubtful, k)
		}
		c.mu.Unlock()
	}
}

// ReleaseNick gives up nick if this gateway holds it; otherwise it does
// nothing.
func (c *Conn) ReleaseNick(ctx context.Context, nick string) error {
	key, err := NickKey(nick)
	if err != nil {
		return err
	}
	if c.closing.Load() {
		return ErrClosed
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	if err := c.deleteOwned(ctx, c.nicks, key); err != nil {
		return fmt.Errorf("bus: release nick %q: %w", nick, err)
	}
	c.mu.Lock()
	delete(c.held, key)
	c.mu.Unlock()
	return nil
}

// deleteOwned deletes key from kv if its record names this gateway, with a
// compare-and-delete so that a newer owner's record survives.
func (c *Conn) deleteOwned(ctx context.Context, kv jetstream.KeyValue, key string) error {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var owner ownerRec
	if json.Unmarshal(e.Value(), &owner) != nil || owner.GW != c.id {
		return nil
	}
	if err := c.kvDelete(ctx, kv, key, e.Revision()); err != nil && !isConflict(err) {
		return err
	}
	return nil
}

// Enter records in chat_presence that nick is in room.
func (c *Conn) Enter(ctx context.Context, room, nick string) error {
	key, err := presenceKey(room, nick)
	if err != nil {
		return err
	}
	if c.closing.Load() {
		return ErrClosed
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	if err := c.enter(ctx, room, key, nick); err != nil {
		// Written at the next lease refresh (repairPresence): without
		// it the user's departure would not be announced if this
		// gateway crashed.
		c.mu.Lock()
		c.present[key] = nick
		c.unwritten[key] = struct{}{}
		delete(c.leftover, key)
		c.mu.Unlock()
		return fmt.Errorf("bus: enter %s: %w", room, err)
	}
	c.mu.Lock()
	c.present[key] = nick
	delete(c.announced, key)
	delete(c.leftover, key)
	c.mu.Unlock()
	return nil
}

// enter writes this gateway's presence record for nick at key.
//
// A record of another gateway there stands for a session that is over:
// this gateway holds the nickname now, and a nickname is only released by
// its session's end or taken over from a gateway whose lease lapsed. That
// session's departure may not have been announced yet: its gateway crashed
// and no clean-up has run, or its lease looks current still (a replica of
// chat_gateways may not have expired it yet), or it is
// shutting down and its clients, told where to go, came here faster than
// it let them go (a rolling restart). So the record is replaced with a
// compare-and-set naming that gateway in Took, and the departure is
// announced here, before the join: the room hears the user leave once,
// then join. A clean-up or the old gateway's Leave that finds the record
// replaced announces nothing.
func (c *Conn) enter(ctx context.Context, room, key, nick string) error {
	e, err := c.presence.Get(ctx, key)
	var old ownerRec
	if err == nil && json.Unmarshal(e.Value(), &old) == nil && old.GW != c.id && old.GW != "" {
		took, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id, Took: old.GW})
		_, err := c.kvUpdate(ctx, c.presence, key, took, e.Revision())
		if err == nil {
			subject, err := EventSubject(room, KindLeave)
			if err != nil {
				return err
			}
			env := Envelope{Kind: KindLeave, Room: room, Nick: old.Nick}
			if alive, err := c.gatewayAlive(ctx, old.GW); err == nil && !alive {
				env.Text = "gateway lost"
			}
			return c.publish(subject, &env)
		}
		if !isConflict(err) {
			return err
		}
		// Released meanwhile by its gateway or a clean-up, which
		// announced the departure.
	}
	val, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id})
	_, err = c.kvPut(ctx, c.presence, key, val)
	return err
}

// Leave removes what Enter recorded, if this gateway recorded it. When
// another gateway has announced the departure already (it released the
// entry while this gateway's lease had lapsed, or replaced it: see enter),
// the leave event that follows is not published (see Publish).
func (c *Conn) Leave(ctx context.Context, room, nick string) error {
	key, err := presenceKey(room, nick)
	if err != nil {
		return err
	}
	if c.closing.Load() {
		return ErrClosed
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	announced, err := c.leave(ctx, key)
	if err != nil {
		// The user is gone all the same: they must not be claimed
		// back (reassert) or written (repairPresence); the entry is
		// deleted at a later lease refresh (deleteLeftover).
		c.mu.Lock()
		delete(c.present, key)
		delete(c.unwritten, key)
		c.leftover[key] = struct{}{}
		c.mu.Unlock()
		return fmt.Errorf("bus: leave %s: %w", room, err)
	}
	if announced {
		c.mu.Lock()
		c.announced[key] = struct{}{}
		c.mu.Unlock()
	}
	c.mu.Lock()
	delete(c.present, key)
	delete(c.unwritten, key)
	c.mu.Unlock()
	return nil
}

// leave deletes this gateway's presence entry at key with a
// compare-and-delete and reports whether another gateway announced the
// departure: the entry is gone (released by a clean-up) or names this
// gateway in Took.
func (c *Conn) leave(ctx context.Context, key string) (announced bool, err error) {
	c.mu.Lock()
	_, unwritten := c.unwritten[key]
	c.mu.Unlock()
	for range 3 { // retried when the entry changes between the steps
		e, err := c.presence.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return !unwritten, nil
		}
		if err != nil {
			return false, err
		}
		var owner ownerRec
		if json.Unmarshal(e.Value(), &owner) != nil {
			return false, nil
		}
		if owner.GW != c.id {
			return owner.Took == c.id, nil
		}
		err = c.kvDelete(ctx, c.presence, key, e.Revision())
		if err == nil {
			return false, nil
		}
		if !isConflict(err) {
			return false, err
		}
	}
	return false, nil
}

// presenceEntry is one chat_presence record read by Who or Rooms.
type presenceEntry struct {
	key string
	rev uint64
	ownerRec
}

// Who lists the nicknames in room whose gateway is alive, sorted
// case-insensitively. It reads the current chat_presence entries under
// <room>.*; the set of live gateways it uses may be up to a second old.
func (c *Conn) Who(ctx context.Context, room string) ([]string, error) {
	if err := ValidRoom(room); err != nil {
		return nil, err
	}
	if c.closing.Load() {
		return nil, ErrClosed
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	entries, err := c.livePresence(ctx, room+".*")
	if err != nil {
		return nil, fmt.Errorf("bus: who %s: %w", room, err)
	}
	var nicks []string
	for _, e := range entries {
		nicks = append(nicks, e.Nick)
	}
	slices.SortFunc(nicks, func(a, b string) int {
		if c := strings.Compare(strings.ToLower(a), strings.ToLower(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return nicks, nil
}

// Rooms counts the members of every room with at least one member whose
// gateway is alive.
func (c *Conn) Rooms(ctx context.Context) (map[string]int, error) {
	if c.closing.Load() {
		return nil, ErrClosed
	}
	rooms := make(map[string]int)
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	entries, err := c.livePresence(ctx, jetstream.AllKeys)
	if err != nil {
		return nil, fmt.Errorf("bus: rooms: %w", err)
	}
	for _, e := range entries {
		rooms[roomOf(e.key)]++
	}
	return rooms, nil
}

func roomOf(presenceKey string) string {
	room, _, _ := strings.Cut(presenceKey, ".")
	return room
}

// livePresence returns the chat_presence entries matching filter whose
// gateway is alive, and hands the others to a reaper.
func (c *Conn) livePresence(ctx context.Context, filter string) ([]presenceEntry, error) {
	w, err := c.presence.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	var entries []presenceEntry
read:
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("watcher stopped")
			}
			if e == nil { // all current values seen
				break read
			}
			pe := presenceEntry{key: e.Key(), rev: e.Revision()}
			if json.Unmarshal(e.Value(), &pe.ownerRec) != nil || pe.Nick == "" {
				continue
			}
			entries = append(entries, pe)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !c.mayJudge() {
		return entries, nil // see mayJudge: every entry may be current
	}
	live, err := c.liveGateways(ctx)
	if err != nil {
		return nil, err
	}
	var stale []presenceEntry
	kept := entries[:0]
	for _, e := range entries {
		if _, ok := live[e.GW]; ok || e.GW == c.id {
			kept = append(kept, e)
		} else {
			stale = append(stale, e)
		}
	}
	c.reap(stale)
	return kept, nil
}

// reap deletes, in the background, presence entries left by gateways that
// are gone (crashed without Close), after checking each gateway's lease
// again. One reaper runs at a time; Close waits for it.
func (c *Conn) reap(stale []presenceEntry) {
	if len(stale) == 0 {
		return
	}
	c.mu.Lock()
	if c.reaping || c.closing.Load() {
		c.mu.Unlock()
		return
	}
	c.reaping = true
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			c.reaping = false
			c.mu.Unlock()
		}()
		dead := make(map[string]bool)
		for _, e := range stale {
			select {
			case <-c.done:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
			d, checked := dead[e.GW]
			if !checked && !c.mayJudge() {
				cancel()
				return
			}
			if !checked {
				alive, err := c.gatewayAlive(ctx, e.GW)
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
					// As cleanupGateway: the room hears the departure
					// from whoever removed the entry. Without it, a
					// gateway whose lease lapsed (JetStream without a
					// quorum) and which claims its users back would
					// announce them joining again with no leave between.
					c.announceGone(roomOf(e.key), e.Nick)
					c.log.Debug("bus: reaped stale presence", "key", e.key, "gw", e.GW)
				}
			}
			cancel()
		}
	}()
}

// announceGone publishes the leave of nick from room on behalf of a gateway
// that is gone.
func (c *Conn) announceGone(room, nick string) {
	subject, err := EventSubject(room, KindLeave)
	if err != nil {
		return
	}
	env := Envelope{Kind: KindLeave, Room: room, Nick: nick, Text: "gateway lost"}
	if err := c.publish(subject, &env); err != nil {
		c.log.Debug("bus: publish leave", "err", err)
	}
}
