package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Presence: chat_presence maps <room>.<nickkey> to the gateway of the user
// in that room, {"nick":"Alice","gw":"<gateway id>"}, read by Who and
// Rooms. Join and Part keep it and announce the user's joined! and left!;
// see members.go for the states of an entry.

// Join records in chat_presence that nick is in room and announces it: the
// room hears "<nick> joined!" (KindJoin), on every gateway. A record another
// gateway left there for the same nickname stands for a session that is
// over: its departure is announced first (see writeEntry). A record that
// cannot be written now is written at a later lease refresh; the join is
// announced all the same. The error says what failed.
func (c *Conn) Join(ctx context.Context, room, nick string) error {
	key, err := presenceKey(room, nick)
	if err != nil {
		return err
	}
	if c.closing.Load() {
		return ErrClosed
	}
	m := c.m
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	rev, werr := m.writeEntry(ctx, room, key, nick)
	m.setEntry(key, room, nick, rev, werr)
	if werr != nil {
		werr = fmt.Errorf("bus: join %s: presence: %w", room, werr)
	}
	return errors.Join(werr, m.announce(room, KindJoin, nick, ""))
}

// Part removes what Join recorded and announces that nick left room, with
// reason (may be empty): the room hears "<nick> left!" (KindLeave), unless
// another gateway announced the departure already: it removed this
// gateway's record while this gateway's lease had lapsed, or replaced it for
// the user back there (the entry was reaped). A record that cannot be
// deleted now is deleted at a later lease refresh; the departure is
// announced all the same.
func (c *Conn) Part(ctx context.Context, room, nick, reason string) error {
	key, err := presenceKey(room, nick)
	if err != nil {
		return err
	}
	if c.closing.Load() {
		return ErrClosed
	}
	m := c.m
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	reaped, derr := m.dropEntry(ctx, key, room, nick)
	if derr != nil {
		derr = fmt.Errorf("bus: part %s: presence: %w", room, derr)
	}
	if reaped {
		return derr
	}
	return errors.Join(derr, m.announce(room, KindLeave, nick, reason))
}

// Rename moves nick's presence in room to newNick and publishes the change
// (KindNick, text newNick): the user stays in the room, and nobody is
// announced as leaving or joining. The caller claims newNick and releases
// old itself.
func (c *Conn) Rename(ctx context.Context, room, old, newNick string) error {
	oldKey, err := presenceKey(room, old)
	if err != nil {
		return err
	}
	newKey, err := presenceKey(room, newNick)
	if err != nil {
		return err
	}
	subject, err := EventSubject(room, KindNick)
	if err != nil {
		return err
	}
	if c.closing.Load() {
		return ErrClosed
	}
	m := c.m
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	var errs []error
	if oldKey != newKey {
		if _, err := m.dropEntry(ctx, oldKey, room, old); err != nil {
			errs = append(errs, fmt.Errorf("bus: rename in %s: presence of %s: %w", room, old, err))
		}
	}
	rev, werr := m.writeEntry(ctx, room, newKey, newNick)
	m.setEntry(newKey, room, newNick, rev, werr)
	if werr != nil {
		errs = append(errs, fmt.Errorf("bus: rename in %s: presence of %s: %w", room, newNick, werr))
	}
	e := Envelope{Kind: KindNick, Room: room, Nick: old, Text: newNick}
	errs = append(errs, c.publish(subject, &e))
	return errors.Join(errs...)
}

// setEntry records that nick is present in room at key: present, its
// record at revision rev, or unwritten if werr says its record could not be
// written.
func (m *membership) setEntry(key, room, nick string, rev uint64, werr error) {
	st := entryPresent
	if werr != nil {
		st = entryUnwritten
	}
	m.mu.Lock()
	m.entries[key] = &entry{room: room, nick: nick, state: st, rev: rev}
	m.mu.Unlock()
}

// dropEntry deletes the entry at key and its record, and reports whether
// it had been reaped (another gateway announced the departure). An entry
// whose record cannot be deleted now is kept as leaving.
func (m *membership) dropEntry(ctx context.Context, key, room, nick string) (reaped bool, err error) {
	m.mu.Lock()
	unwritten, rev := false, uint64(0)
	if e := m.entries[key]; e != nil {
		unwritten = e.state == entryUnwritten
		if e.state == entryPresent {
			rev = e.rev
		}
	}
	m.mu.Unlock()
	reaped, err = m.deleteEntry(ctx, key, unwritten, rev)
	m.mu.Lock()
	if err != nil {
		m.entries[key] = &entry{room: room, nick: nick, state: entryLeaving}
	} else {
		delete(m.entries, key)
	}
	m.mu.Unlock()
	return reaped, err
}

// writeEntry writes this gateway's presence record for nick at key.
//
// A record of another gateway there stands for a session that is over:
// this gateway holds the nickname now, and a nickname is only released by
// its session's end or taken over from a gateway whose lease lapsed. That
// session's departure may not have been announced yet: its gateway crashed
// and no clean-up has run, or its lease looks current still (a replica of
// chat_gateways may not have expired it yet), or it is shutting down and
// its clients, told where to go, came here faster than it let them go (a
// rolling restart). So the record is replaced with a compare-and-set
// naming that gateway in Took, and the departure is announced here, before
// the join: the room hears the user leave once, then join. A clean-up or
// the old gateway's Part that finds the record replaced announces nothing
// (for it, the entry was reaped).
//
// The common case, a key that has never been written (no record, no
// marker), takes one round trip: a create, which fails if anything is
// there; only then is the record read.
//
// It returns the revision written (0 if unknown), which lets Part delete
// the record without reading it first.
func (m *membership) writeEntry(ctx context.Context, room, key, nick string) (uint64, error) {
	c := m.c
	val, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id})
	if rev, err := c.kvPublish(ctx, c.presence, key, val, true, 0); err == nil || !isConflict(err) {
		return rev, err
	}
	e, err := c.kvGet(ctx, c.presence, key)
	if err == nil {
		if old, valid := m.readRecord(c.presence, e); valid && old.GW != c.id {
			took, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id, Took: old.GW})
			rev, err := c.kvUpdate(ctx, c.presence, key, took, e.Revision())
			if err == nil {
				text := ""
				if alive, err := m.gatewayAlive(ctx, old.GW); err == nil && !alive {
					text = textGatewayLost
				}
				return rev, m.announce(room, KindLeave, old.Nick, text)
			}
			if !isConflict(err) {
				return 0, err
			}
			// Released meanwhile by its gateway or a clean-up, which
			// announced the departure.
		}
	}
	return c.kvPut(ctx, c.presence, key, val)
}

// deleteEntry deletes this gateway's presence record at key with a
// compare-and-delete and reports whether the entry had been reaped: the
// record is gone (though it had been written: not unwritten) or names this
// gateway in Took.
//
// With rev, the revision this gateway wrote (0: unknown), the record is
// deleted in one round trip if it is still that revision: this gateway's
// own, not reaped. Only if it changed is it read.
func (m *membership) deleteEntry(ctx context.Context, key string, unwritten bool, rev uint64) (reaped bool, err error) {
	c := m.c
	if rev > 0 {
		err := c.kvDelete(ctx, c.presence, key, rev)
		if err == nil {
			return false, nil
		}
		if !isConflict(err) {
			return false, err
		}
	}
	for range 3 { // retried when the record changes between the steps
		e, err := c.kvGet(ctx, c.presence, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return !unwritten, nil
		}
		if err != nil {
			return false, err
		}
		owner, valid := m.readRecord(c.presence, e)
		if !valid {
			// Not a record this gateway wrote: delete it (repair); the
			// departure is this gateway's to announce.
			if err := c.kvDelete(ctx, c.presence, key, e.Revision()); err != nil && !isConflict(err) {
				return false, err
			}
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

// repairPresence writes the records Join could not, for the users still
// present (unwritten → present). Their join was announced when they
// joined, so nothing is published. It runs on the lease loop.
func (m *membership) repairPresence(ctx context.Context) {
	m.mu.Lock()
	var todo []entry
	keys := []string{}
	for k, e := range m.entries {
		if e.state == entryUnwritten {
			todo = append(todo, *e)
			keys = append(keys, k)
		}
	}
	m.mu.Unlock()
	for i, key := range keys {
		if err := m.writeQuiet(ctx, key, todo[i].nick); err != nil {
			continue
		}
		m.mu.Lock()
		e := m.entries[key]
		if e != nil && e.state == entryUnwritten {
			e.state = entryPresent
		}
		m.mu.Unlock()
		if e == nil { // parted meanwhile
			_ = m.deleteOwned(ctx, m.c.presence, key)
		}
	}
}

// writeQuiet writes the presence record of a user whose join was announced
// but whose record could not be written then (repairPresence). A record of
// another gateway found there is replaced, naming it in Took, and nothing
// is published: that gateway's Part failed the same way, and announced
// the departure all the same (a gateway stopping while JetStream elects
// leaders, its users coming here), or it crashed and the departure is
// lost, which is the lesser harm than a "left!" after this user's
// "joined!".
func (m *membership) writeQuiet(ctx context.Context, key, nick string) error {
	c := m.c
	e, err := c.kvGet(ctx, c.presence, key)
	if err == nil {
		if old, valid := m.readRecord(c.presence, e); valid && old.GW != c.id {
			took, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id, Took: old.GW})
			_, err := c.kvUpdate(ctx, c.presence, key, took, e.Revision())
			if err == nil || !isConflict(err) {
				return err
			}
		}
	}
	val, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id})
	_, err = c.kvPut(ctx, c.presence, key, val)
	return err
}

// deleteLeftover deletes the records Part could not (leaving →
// announced). It runs on the lease loop.
func (m *membership) deleteLeftover(ctx context.Context) {
	m.mu.Lock()
	var keys []string
	for k, e := range m.entries {
		if e.state == entryLeaving {
			keys = append(keys, k)
		}
	}
	m.mu.Unlock()
	for _, k := range keys {
		if err := m.deleteOwned(ctx, m.c.presence, k); err != nil {
			continue
		}
		m.mu.Lock()
		switch e := m.entries[k]; {
		case e == nil:
		case e.state == entryLeaving:
			delete(m.entries, k)
		default:
			// Joined again meanwhile: its record may be the one just
			// deleted; write it again at the next refresh.
			e.state = entryUnwritten
		}
		m.mu.Unlock()
	}
}

// reassertPresence puts back, after this gateway's lease may have lapsed,
// the records of its users that another gateway removed (reaped →
// present), and announces their join again, since the room was told they
// left (to the other gateways' users only: quietNotice). Records Join could not write are left to repairPresence: they were
// never removed, so nobody announced a departure.
func (m *membership) reassertPresence(ctx context.Context) {
	c := m.c
	m.mu.Lock()
	present := make(map[string]entry, len(m.entries))
	for k, e := range m.entries {
		if e.state == entryPresent {
			present[k] = *e
		}
	}
	m.mu.Unlock()

	for key, ent := range present {
		m.mu.Lock()
		e := m.entries[key]
		still := e != nil && e.state == entryPresent
		m.mu.Unlock()
		if !still { // parted meanwhile
			continue
		}
		val, _ := json.Marshal(ownerRec{Nick: ent.nick, GW: c.id})
		rec, err := c.kvGet(ctx, c.presence, key)
		switch {
		case err == nil:
			owner, valid := m.readRecord(c.presence, rec)
			if valid && owner.GW == c.id {
				continue
			}
			// Another gateway's record: the user may be there now. Put
			// back only over a gateway that is gone.
			if valid {
				if alive, aerr := m.gatewayAlive(ctx, owner.GW); aerr != nil || alive {
					continue
				}
			}
			_, err = c.kvUpdate(ctx, c.presence, key, val, rec.Revision())
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = c.kvCreate(ctx, c.presence, key, val)
		}
		if err != nil {
			c.log.Debug("bus: reassert presence", "key", key, "err", err)
			continue
		}
		if err := m.announceRejoin(ent.room, ent.nick); err != nil {
			c.log.Debug("bus: publish join", "err", err)
		}
	}
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
	entries, err := c.m.livePresence(ctx, room+".*")
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
	entries, err := c.m.livePresence(ctx, jetstream.AllKeys)
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
// gateway is alive, and hands the others to a reaper: the records of
// gateways that are gone, and those chatd did not write (readRecord).
func (m *membership) livePresence(ctx context.Context, filter string) ([]presenceEntry, error) {
	c := m.c
	w, err := c.presence.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer func() { _ = w.Stop() }()
	var entries, foreign []presenceEntry
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
			rec, valid := m.readRecord(c.presence, e)
			if !valid {
				foreign = append(foreign, presenceEntry{key: e.Key(), rev: e.Revision()})
				continue
			}
			entries = append(entries, presenceEntry{key: e.Key(), rev: e.Revision(), ownerRec: rec})
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !m.mayJudge() {
		m.reap(nil, foreign)
		return entries, nil // see mayJudge: every entry may be current
	}
	live, err := m.liveGateways(ctx)
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
	m.reap(stale, foreign)
	return kept, nil
}
