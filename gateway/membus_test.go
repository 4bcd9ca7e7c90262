package gateway

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// memBus is the in-memory Bus of the gateway's tests and benchmarks, for
// one gateway: Publish delivers at once, on the publisher's goroutine, to
// every subscriber of the room; nicknames are claimed in a map; members are
// kept per room. Its knobs, set before use:
//   - history: chat lines are kept per room for History (else it has none);
//   - others: nicknames held on another gateway, never claimable, in every
//     room, answering private messages;
//   - record: the room or recipient, nickname and text of everything
//     published or sent privately are kept in published;
//   - gateways, ircGateways: what Gateways and IRCGateways answer.
//
// newMemBus is the bare one (benchmarks), newChatBus keeps history and
// names other gateways, newFuzzBus has "bob" elsewhere and records.
type memBus struct {
	history     bool
	others      []string
	record      bool
	gateways    []string
	ircGateways []string
	at          time.Time // the time of every event
	// flushes: every published event is a burst of its own, ended with
	// KindFlush as a BurstBus does, except while bursting is set (the
	// test then ends the burst).
	flushes  bool
	bursting atomic.Bool

	seq atomic.Uint64

	mu        sync.Mutex
	subs      map[string][]*memSub
	nicks     map[string]bool            // lower-cased nicknames claimed here
	members   map[string]map[string]bool // room → nicknames
	hist      map[string][]event
	private   func(to, from, text string, at time.Time) bool
	published []string
}

func newMemBus() *memBus {
	return &memBus{subs: map[string][]*memSub{}, nicks: map[string]bool{},
		members: map[string]map[string]bool{}, hist: map[string][]event{}}
}

// newChatBus keeps history and names two other gateways.
func newChatBus() *memBus {
	b := newMemBus()
	b.history = true
	b.at = time.Now()
	b.gateways = []string{"chat2.example:5500", "10.0.0.3:5500"}
	b.ircGateways = []string{"chat2.example:6667"}
	return b
}

// newFuzzBus has "bob" on another gateway, in every room, with one line
// of history in each, and records what is sent.
func newFuzzBus() *memBus {
	b := newMemBus()
	b.others = []string{"bob"}
	b.record = true
	b.at = time.Unix(1700000000, 0)
	return b
}

func (b *memBus) other(nick string) (string, bool) {
	for _, o := range b.others {
		if strings.EqualFold(o, nick) {
			return o, true
		}
	}
	return "", false
}

func (b *memBus) Publish(room, kind, nick, text string) error {
	id := "m." + strconv.FormatUint(b.seq.Add(1), 10)
	b.mu.Lock()
	if b.record {
		b.published = append(b.published, room, nick, text)
	}
	if b.history && (kind == KindSay || kind == KindMe) {
		b.hist[room] = append(b.hist[room], event{id: id, kind: kind, nick: nick, text: text, at: b.at})
	}
	subs := b.subs[room]
	b.mu.Unlock()
	for _, sub := range subs {
		sub.deliver(id, kind, nick, text, b.at)
		if b.flushes && kind != KindFlush && !b.bursting.Load() {
			sub.deliver("", KindFlush, "", "", b.at)
		}
	}
	return nil
}

// memSub is one subscription.
type memSub struct{ deliver DeliverFunc }

func (b *memBus) Subscribe(room string, d DeliverFunc) (func(), error) {
	sub := &memSub{d}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.subs[room] = append(b.subs[room], sub)
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		// A new slice: Publish may be reading the old one.
		left := slices.DeleteFunc(slices.Clone(b.subs[room]), func(x *memSub) bool { return x == sub })
		if len(left) == 0 {
			delete(b.subs, room)
		} else {
			b.subs[room] = left
		}
	}, nil
}

func (b *memBus) History(_ context.Context, room string, n int, fn DeliverFunc) error {
	b.mu.Lock()
	evs := b.hist[room]
	evs = slices.Clone(evs[max(0, len(evs)-n):])
	b.mu.Unlock()
	if len(b.others) > 0 {
		fn("h1", KindSay, b.others[0], "earlier in "+room, b.at)
	}
	for _, ev := range evs {
		fn(ev.id, ev.kind, ev.nick, ev.text, ev.at)
	}
	return nil
}

func (b *memBus) ClaimNick(_ context.Context, nick string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k := strings.ToLower(nick)
	if _, elsewhere := b.other(nick); elsewhere || b.nicks[k] {
		return false, nil
	}
	b.nicks[k] = true
	return true, nil
}

func (b *memBus) ReleaseNick(_ context.Context, nick string) error {
	b.mu.Lock()
	delete(b.nicks, strings.ToLower(nick))
	b.mu.Unlock()
	return nil
}

func (b *memBus) Join(_ context.Context, room, nick string) error {
	b.mu.Lock()
	if b.members[room] == nil {
		b.members[room] = map[string]bool{}
	}
	b.members[room][nick] = true
	b.mu.Unlock()
	return b.Publish(room, KindJoin, nick, "")
}

func (b *memBus) Part(_ context.Context, room, nick, reason string) error {
	b.mu.Lock()
	delete(b.members[room], nick)
	if len(b.members[room]) == 0 {
		delete(b.members, room)
	}
	b.mu.Unlock()
	return b.Publish(room, KindLeave, nick, reason)
}

func (b *memBus) Rename(_ context.Context, room, nick, newNick string) error {
	b.mu.Lock()
	delete(b.members[room], nick)
	if b.members[room] == nil {
		b.members[room] = map[string]bool{}
	}
	b.members[room][newNick] = true
	b.mu.Unlock()
	return b.Publish(room, KindNick, nick, newNick)
}

func (b *memBus) Who(_ context.Context, room string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	nicks := slices.Clone(b.others)
	for n := range b.members[room] {
		nicks = append(nicks, n)
	}
	slices.SortFunc(nicks, func(a, b string) int { // as bus.Conn.Who sorts
		if c := strings.Compare(strings.ToLower(a), strings.ToLower(b)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return nicks, nil
}

func (b *memBus) Rooms(context.Context) (map[string]int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	counts := map[string]int{}
	if len(b.others) > 0 {
		counts["lobby"] = len(b.others)
	}
	for r, m := range b.members {
		counts[r] += len(m)
	}
	return counts, nil
}

func (b *memBus) SendPrivate(_ context.Context, to, from, text string) (bool, error) {
	b.mu.Lock()
	if b.record {
		b.published = append(b.published, to, from, text)
	}
	fn := b.private
	b.mu.Unlock()
	if _, elsewhere := b.other(to); elsewhere {
		return true, nil
	}
	return fn != nil && fn(to, from, text, b.at), nil
}

func (b *memBus) ReceivePrivate(deliver func(to, from, text string, at time.Time) bool) (func(), error) {
	b.mu.Lock()
	b.private = deliver
	b.mu.Unlock()
	return func() {}, nil
}

func (b *memBus) Gateways(context.Context) ([]string, error)    { return b.gateways, nil }
func (b *memBus) IRCGateways(context.Context) ([]string, error) { return b.ircGateways, nil }

func (b *memBus) Whois(_ context.Context, nick string) (string, []string, error) {
	if o, elsewhere := b.other(nick); elsewhere {
		return o, []string{"lobby"}, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.nicks[strings.ToLower(nick)] {
		return "", nil, nil
	}
	var rooms []string
	for r, m := range b.members {
		for n := range m {
			if strings.EqualFold(n, nick) {
				rooms = append(rooms, r)
			}
		}
	}
	slices.Sort(rooms)
	return nick, rooms, nil
}
