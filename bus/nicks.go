package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// Nickname claims: chat_nicks maps a nickkey to the gateway holding it,
// {"nick":"Alice","gw":"<gateway id>"}. See members.go for the states of a
// claim.

// ClaimNick reserves nick for this gateway, case-insensitively, in
// chat_nicks. A record left by a gateway whose lease has lapsed, or one
// that cannot be read, is taken over atomically. It reports false if the
// nick is held by a live gateway, this one included.
func (c *Conn) ClaimNick(ctx context.Context, nick string) (bool, error) {
	key, err := NickKey(nick)
	if err != nil {
		return false, err
	}
	if c.closing.Load() {
		return false, ErrClosed
	}
	return c.m.claimNick(ctx, key, nick)
}

func (m *membership) claimNick(ctx context.Context, key, nick string) (bool, error) {
	// The key is reserved while it is claimed, so that a record of this
	// gateway that no session holds is known to be left over.
	m.mu.Lock()
	if cl := m.claims[key]; cl != nil && cl.state != claimDoubtful {
		m.mu.Unlock()
		return false, nil
	}
	m.claims[key] = &claim{nick: nick, state: claimClaiming}
	m.mu.Unlock()

	ok, err := m.createNick(ctx, key, nick)

	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case ok:
		m.claims[key].state = claimHeld
	case err != nil:
		// The server may yet apply a create that timed out: release it
		// once the bus answers again (releaseDoubtful).
		m.claims[key].state = claimDoubtful
	default:
		delete(m.claims, key)
	}
	return ok, err
}

// createNick writes this gateway's record for nick at key, or takes over a
// record whose gateway is gone.
func (m *membership) createNick(ctx context.Context, key, nick string) (bool, error) {
	c := m.c
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
		e, err := c.kvGet(ctx, c.nicks, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("bus: claim nick %q: %w", nick, err)
		}
		owner, valid := m.readRecord(c.nicks, e)
		// A record of this gateway that no session holds is left over
		// from a claim that timed out but was applied: take it. So is a
		// record that is not ours to read (repaired here).
		if valid && owner.GW != c.id {
			alive, err := m.gatewayAlive(ctx, owner.GW)
			if err != nil {
				return false, fmt.Errorf("bus: claim nick %q: %w", nick, err)
			}
			if alive || !m.mayJudge() {
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

// ReleaseNick gives up nick if this gateway holds it; otherwise it does
// nothing. A record it cannot delete now is deleted at a later lease
// refresh.
func (c *Conn) ReleaseNick(ctx context.Context, nick string) error {
	key, err := NickKey(nick)
	if err != nil {
		return err
	}
	if c.closing.Load() {
		return ErrClosed
	}
	m := c.m
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	err = m.deleteOwned(ctx, c.nicks, key)
	m.mu.Lock()
	if cl := m.claims[key]; cl != nil && cl.state == claimHeld {
		if err != nil {
			cl.state = claimDoubtful
		} else {
			delete(m.claims, key)
		}
	}
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("bus: release nick %q: %w", nick, err)
	}
	return nil
}

// releaseDoubtful deletes the nickname records that claims which failed
// (timed out, e.g. while JetStream had no quorum) may have created after
// all, and those a release could not delete. Each key is reserved while
// it is released, so that a claim of it meanwhile is refused, not undone.
// It runs on the lease loop.
func (m *membership) releaseDoubtful(ctx context.Context) {
	m.mu.Lock()
	var keys []string
	for k, cl := range m.claims {
		if cl.state == claimDoubtful {
			cl.state = claimReleasing
			keys = append(keys, k)
		}
	}
	m.mu.Unlock()
	for _, k := range keys {
		err := m.deleteOwned(ctx, m.c.nicks, k)
		m.mu.Lock()
		if err == nil {
			delete(m.claims, k)
		} else {
			m.claims[k].state = claimDoubtful
		}
		m.mu.Unlock()
	}
}

// deleteOwned deletes key from kv if its record names this gateway, with a
// compare-and-delete so that a newer owner's record survives.
func (m *membership) deleteOwned(ctx context.Context, kv jetstream.KeyValue, key string) error {
	e, err := m.c.kvGet(ctx, kv, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var owner ownerRec
	if json.Unmarshal(e.Value(), &owner) != nil || owner.GW != m.c.id {
		return nil
	}
	if err := m.c.kvDelete(ctx, kv, key, e.Revision()); err != nil && !isConflict(err) {
		return err
	}
	return nil
}

// reassertNicks claims again, after this gateway's lease may have lapsed,
// the nicknames it holds. One another gateway took meanwhile is reported to
// OnNickLost.
func (m *membership) reassertNicks(ctx context.Context) {
	c := m.c
	m.mu.Lock()
	held := make(map[string]string, len(m.claims))
	for k, cl := range m.claims {
		if cl.state == claimHeld {
			held[k] = cl.nick
		}
	}
	m.mu.Unlock()

	for key, nick := range held {
		val, _ := json.Marshal(ownerRec{Nick: nick, GW: c.id})
		e, err := c.kvGet(ctx, c.nicks, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			_, err = c.kvCreate(ctx, c.nicks, key, val)
		} else if err == nil {
			owner, valid := m.readRecord(c.nicks, e)
			if valid && owner.GW == c.id {
				continue
			}
			alive, aerr := m.gatewayAlive(ctx, owner.GW)
			switch {
			case aerr != nil:
				err = aerr
			case valid && alive:
				err = jetstream.ErrKeyExists
			default:
				_, err = c.kvUpdate(ctx, c.nicks, key, val, e.Revision())
			}
		}
		if isConflict(err) {
			c.log.Warn("bus: nickname taken while the link was down", "nick", nick)
			m.mu.Lock()
			if cl := m.claims[key]; cl != nil && cl.state == claimHeld {
				delete(m.claims, key)
			}
			m.mu.Unlock()
			if c.cfg.OnNickLost != nil {
				c.cfg.OnNickLost(nick)
			}
		} else if err != nil {
			c.log.Debug("bus: reassert nick", "nick", nick, "err", err)
		}
	}
}

// Whois finds nick across the cluster: the nickname as its holder spells
// it and the rooms it is in, sorted, or "" if no live gateway holds it. A
// user may be in no room (an IRC client before JOIN).
func (c *Conn) Whois(ctx context.Context, nick string) (string, []string, error) {
	key, err := NickKey(nick)
	if err != nil {
		return "", nil, err
	}
	if c.closing.Load() {
		return "", nil, ErrClosed
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	e, err := c.kvGet(ctx, c.nicks, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("bus: whois %s: %w", nick, err)
	}
	owner, valid := c.m.readRecord(c.nicks, e)
	if !valid {
		return "", nil, nil
	}
	if alive, err := c.m.gatewayAlive(ctx, owner.GW); err != nil || !alive {
		return "", nil, err
	}
	entries, err := c.m.livePresence(ctx, "*."+key)
	if err != nil {
		return "", nil, fmt.Errorf("bus: whois %s: %w", nick, err)
	}
	rooms := make([]string, 0, len(entries))
	for _, p := range entries {
		rooms = append(rooms, roomOf(p.key))
	}
	slices.Sort(rooms)
	return owner.Nick, rooms, nil
}
