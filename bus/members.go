package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Membership: who is in which room, who holds which nickname, and which
// gateway is alive. One type, membership, owns all of it for a Conn: this
// gateway's lease, its nickname claims, its users' presence, and the
// clean-up after gateways that are gone. It is also the one place where a
// user's "joined!" (KindJoin) or "left!" (KindLeave) is made: announce.
//
// The files, each read top to bottom:
//
//	members.go   this type, its states and transitions, announce
//	jetstream.go the stream and buckets, set up at Connect
//	kvwrite.go   how chat_nicks and chat_presence are read and written
//	leases.go    this gateway's lease; which gateways are alive
//	nicks.go     nickname claims
//	presence.go  Join, Part, Rename; Who and Rooms
//	reap.go      the clean-up after gateways that are gone
//
// # Entries
//
// An entry is one user, by nickname, in one room through this gateway. Its
// states, with what chat_presence holds and what the room was told:
//
//	state      chat_presence record           room told         kept in entries
//	claimed    none (the nickname is held)    nothing yet       no (in claims)
//	present    this gateway's                 joined!           yes
//	unwritten  none, or stale (write failed)  joined!           yes, written quietly at the next refresh
//	leaving    this gateway's, to delete      left!             yes, deleted at the next refresh
//	announced  deleted                        left!             no
//	reaped     removed or replaced by         left! (by that    no
//	           another gateway                gateway)
//
// The transitions, each made by one method, under mu:
//
//	claimed   → present    Join writes the record and announces joined!
//	claimed   → unwritten  Join cannot write the record: joined! all the same
//	unwritten → present    repairPresence (lease loop) writes it; nothing announced
//	present   → announced  Part deletes the record and announces left!
//	present   → leaving    Part cannot delete it: left! all the same
//	leaving   → announced  deleteLeftover (lease loop) deletes it
//	leaving   → present    Join again, before the delete
//	present   → reaped     another gateway removed the record while this
//	                       gateway's lease had lapsed (cleanupGateway, reap),
//	                       or replaced it, naming this gateway in took, for
//	                       the user back there (enter): it announced left!
//	reaped    → present    reassertPresence, once this gateway's lease is
//	                       back: writes the record again and announces joined!
//	reaped    → announced  Part finds the record gone or taken: it announces
//	                       nothing, the departure was announced
//
// Reaped is learnt from chat_presence, not kept: the record is gone (after
// this gateway wrote it) or names this gateway in took.
//
// # Claims
//
// A claim is one nickname, by nickkey, through this gateway:
//
//	state      chat_nicks record
//	claiming   being created; the key is reserved so a second claim is refused
//	held       this gateway's
//	doubtful   a create or delete failed: the record may be this gateway's
//	releasing  a doubtful record being deleted (lease loop, releaseDoubtful)
//
//	(none), doubtful → claiming   ClaimNick
//	claiming → held               the record is created, or taken over from a
//	                              gateway that is gone
//	claiming → (none)             the nickname is taken
//	claiming → doubtful           the create failed (it may yet be applied)
//	held → (none)                 ReleaseNick, or the nickname was taken while
//	                              this gateway's lease had lapsed (OnNickLost)
//	held → doubtful               ReleaseNick cannot delete the record
//	doubtful → releasing → (none) releaseDoubtful deletes it, if this gateway's
//	releasing → doubtful          ... or cannot
//
// # Gateways
//
// seen holds the gateways seen taking a lease; one whose lease has lapsed
// is cleaned up after (reap.go), by every gateway that notices, each
// record with a compare-and-delete, so that only one announces each user's
// departure. No gateway is judged gone while this gateway cannot refresh
// its own lease, nor for a full lease after it can again (mayJudge).
//
// Locking: mu guards claims, entries, seen, reaping and bad; it is never
// held during a bus round trip or a publish, and no other lock is taken
// under it. live.mu guards the cache of live gateways only.

// entryState is the state of an entry kept in membership.entries.
type entryState uint8

const (
	entryPresent entryState = iota
	entryUnwritten
	entryLeaving
)

// entry is one user in one room through this gateway.
type entry struct {
	room, nick string
	state      entryState
	rev        uint64 // the revision of its record this gateway wrote, if known (0: not known)
}

// claimState is the state of a claim kept in membership.claims.
type claimState uint8

const (
	claimClaiming claimState = iota
	claimHeld
	claimDoubtful
	claimReleasing
)

// claim is one nickname through this gateway.
type claim struct {
	nick  string
	state claimState
}

// membership owns this gateway's lease, nickname claims and presence, and
// the clean-up after gateways that are gone. See the states above.
type membership struct {
	c *Conn // the connection: KV handles, publish, config, logger

	// judgeAfter is when this gateway may next judge another gone (unix
	// nanoseconds): a full lease after its own lease was refreshed again
	// following a failure or a lapse (see mayJudge); 0 from the start.
	judgeAfter atomic.Int64
	// refreshFault, set by tests, fails every lease refresh as if
	// JetStream could not answer (no quorum), while the server's TTL runs.
	refreshFault atomic.Bool

	live liveCache

	mu      sync.Mutex
	claims  map[string]*claim   // nickkey → claim
	entries map[string]*entry   // presence key → entry
	seen    map[string]struct{} // gateways seen taking a lease
	reaping bool                // a reap goroutine is running
	bad     map[string]uint64   // bucket/key → revision of a foreign record logged
	// rejoins holds the ids of the joins reassertPresence announced that
	// have not come back yet: they are for the other gateways' users
	// (told the user left), not for this gateway's (see quietNotice).
	rejoins map[string]struct{}
}

func newMembership(c *Conn) *membership {
	return &membership{
		c:       c,
		claims:  make(map[string]*claim),
		entries: make(map[string]*entry),
		seen:    make(map[string]struct{}),
		bad:     make(map[string]uint64),
		rejoins: make(map[string]struct{}),
	}
}

// announce publishes that nick joined (KindJoin) or left (KindLeave) room,
// with text (a reason, or "gateway lost" for a user of a gateway that is
// gone). It is the one place either event is made; Publish refuses them.
func (m *membership) announce(room, kind, nick, text string) error {
	subject, err := EventSubject(room, kind)
	if err != nil {
		return err
	}
	e := Envelope{Kind: kind, Room: room, Nick: nick, Text: text}
	return m.c.publish(subject, &e)
}

// announceRejoin announces again that nick joined room, after another
// gateway announced its departure while this gateway's lease had lapsed.
// The announcement is kept from this gateway's own users (quietNotice).
func (m *membership) announceRejoin(room, nick string) error {
	subject, err := EventSubject(room, KindJoin)
	if err != nil {
		return err
	}
	e := Envelope{Kind: KindJoin, Room: room, Nick: nick}
	return m.c.publishWith(subject, &e, func(id string) {
		m.mu.Lock()
		if len(m.rejoins) >= maxRejoins { // joins that never came back
			clear(m.rejoins)
		}
		m.rejoins[id] = struct{}{}
		m.mu.Unlock()
	})
}

// maxRejoins bounds the rejoin ids remembered.
const maxRejoins = 10000

// quietNotice reports whether e, a room event, is kept from this
// gateway's own users: while this gateway's lease had lapsed (its link cut
// for longer than the lease), another gateway took it for gone and told
// the room its users left ("gateway lost"), and once the lease is back
// this gateway told the room they joined again (reassertPresence). Its
// own users never saw them leave: they see neither the departure of a
// user this gateway holds in the room nor the join again.
func (m *membership) quietNotice(e *Envelope) bool {
	switch e.Kind {
	case KindLeave:
		// Only a departure announced for a gateway taken for gone: a
		// user who moved here from a gateway that released them is
		// announced leaving that one, rightly.
		if e.GW == m.c.id || e.Text != textGatewayLost {
			return false
		}
		key, err := presenceKey(e.Room, e.Nick)
		if err != nil {
			return false
		}
		m.mu.Lock()
		_, here := m.entries[key]
		m.mu.Unlock()
		return here
	case KindJoin:
		if e.GW != m.c.id {
			return false
		}
		m.mu.Lock()
		_, rejoin := m.rejoins[e.ID]
		delete(m.rejoins, e.ID)
		m.mu.Unlock()
		return rejoin
	}
	return false
}

// announceGone announces the departure of nick, a user of a gateway that is
// gone, from room.
func (m *membership) announceGone(room, nick string) {
	if err := m.announce(room, KindLeave, nick, textGatewayLost); err != nil {
		m.c.log.Debug("bus: publish leave", "err", err)
	}
}

// textGatewayLost is the text of a departure announced for a gateway that
// is gone.
const textGatewayLost = "gateway lost"

// release deletes, at Close, the presence records and nicknames still held
// and then the lease. JetStream may be electing a leader for a moment (a
// broker restarting): failed deletes are retried for up to twice
// RequestTimeout, because an entry left behind would be announced as a
// departure again when its user comes back.
func (m *membership) release() {
	c := m.c
	m.mu.Lock()
	present := make([]string, 0, len(m.entries))
	for k := range m.entries {
		present = append(present, k)
	}
	held := make([]string, 0, len(m.claims))
	for k := range m.claims {
		held = append(held, k)
	}
	m.mu.Unlock()
	deadline := time.Now().Add(2 * c.cfg.RequestTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
		var failed []error
		present = slices.DeleteFunc(present, func(key string) bool {
			err := m.deleteOwned(ctx, c.presence, key)
			if err != nil {
				failed = append(failed, fmt.Errorf("leave %s: %w", key, err))
			}
			return err == nil
		})
		held = slices.DeleteFunc(held, func(key string) bool {
			err := m.deleteOwned(ctx, c.nicks, key)
			if err != nil {
				failed = append(failed, fmt.Errorf("release nick %s: %w", key, err))
			}
			return err == nil
		})
		cancel()
		if len(failed) == 0 || time.Now().After(deadline) {
			if len(failed) > 0 {
				c.log.Warn("bus: close: could not release", "err", errors.Join(failed...))
			}
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	// Deleted even if some entries are left: a lease left to lapse would
	// have the other gateways announce every user's departure again.
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
	defer cancel()
	if err := c.gateways.Delete(ctx, c.id); err != nil {
		c.log.Debug("bus: close: delete lease", "err", err)
	}
}
