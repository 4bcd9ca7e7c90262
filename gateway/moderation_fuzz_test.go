package gateway

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fuzzMod is an in-memory Moderation for one gateway: "bob" (the fuzz
// bus's other user) is in every room, and "carol" is registered with the
// password "carols secret".
type fuzzMod struct {
	mu     sync.Mutex
	opers  map[string]bool
	bans   []Ban
	mutes  map[string]Mute
	topics map[string]Topic
	regs   map[string]string
	checks int // CheckNick calls
}

func newFuzzMod() *fuzzMod {
	return &fuzzMod{opers: map[string]bool{}, mutes: map[string]Mute{}, topics: map[string]Topic{},
		regs: map[string]string{"carol": "carols secret"}}
}

func (m *fuzzMod) SetOper(_ context.Context, nick string, on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on {
		m.opers[nick] = true
	} else {
		delete(m.opers, nick)
	}
	return nil
}

func (m *fuzzMod) Opers(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.opers {
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

func (m *fuzzMod) PutBan(_ context.Context, b Ban) error {
	m.mu.Lock()
	m.bans = append(m.bans, b)
	m.mu.Unlock()
	return nil
}

func (m *fuzzMod) DeleteBan(_ context.Context, b Ban) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.bans)
	m.bans = slices.DeleteFunc(m.bans, func(x Ban) bool { return strings.EqualFold(x.Nick, b.Nick) && x.Net == b.Net })
	return len(m.bans) < n, nil
}

func (m *fuzzMod) Bans() []Ban {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.bans)
}

func (m *fuzzMod) PutMute(_ context.Context, mu Mute) error {
	m.mu.Lock()
	m.mutes[strings.ToLower(mu.Nick)] = mu
	m.mu.Unlock()
	return nil
}

func (m *fuzzMod) DeleteMute(_ context.Context, nick string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.mutes[strings.ToLower(nick)]
	delete(m.mutes, strings.ToLower(nick))
	return ok, nil
}

func (m *fuzzMod) Mutes() []Mute {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Mute
	for _, mu := range m.mutes {
		out = append(out, mu)
	}
	return out
}

func (m *fuzzMod) SetTopic(_ context.Context, room string, t Topic) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.Text == "" {
		delete(m.topics, room)
	} else {
		m.topics[room] = t
	}
	return nil
}

func (m *fuzzMod) Topic(room string) (Topic, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.topics[room]
	return t, ok
}

func (m *fuzzMod) Kick(_ context.Context, room, nick, by, reason string) (bool, error) {
	return strings.EqualFold(nick, "bob"), nil
}

func (m *fuzzMod) ReceiveKicks(func(room, nick, by, reason string) bool) (func(), error) {
	return func() {}, nil
}

func (m *fuzzMod) PartKicked(context.Context, string, string, string, string) error { return nil }

func (m *fuzzMod) Registered(nick string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.regs[strings.ToLower(nick)]
	return ok
}

func (m *fuzzMod) CheckNick(nick, password string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.checks++
	pw, ok := m.regs[strings.ToLower(nick)]
	return ok && pw == password
}

func (m *fuzzMod) Register(_ context.Context, nick, password string) error {
	m.mu.Lock()
	m.regs[strings.ToLower(nick)] = password
	m.mu.Unlock()
	return nil
}

func (m *fuzzMod) Drop(_ context.Context, nick string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.regs[strings.ToLower(nick)]
	delete(m.regs, strings.ToLower(nick))
	return ok, nil
}

var modSeeds = []string{
	"/oper", "/oper root", "/oper root wrong", "/oper root pw", "/kick bob", "/ban bob", "/mute bob 1h x",
	"/topic", "/topic hello", "/topic -", "/bans", "/unban bob", "/unmute bob", "/register", "/drop",
	"/oper root pw\n/kick bob spam\n/ban bob 10m spam\n/bans\n/unban bob\n/mute bob 2d\n/unmute bob",
	"/oper root pw\n/ban 10.0.0.0/8 1w\n/ban ::1\n/ban 2001:db8::/33 1h x\n/ban 0.0.0.0/0\n/ban 10.0.0.0/99\n/bans",
	"/oper root pw\n/ban fuzzer\n/ban bob 5x\n/ban bob 99999d\n/kick fuzzer\n/kick \x1b[2J\n/mute fuzzer",
	"/oper root pw\n/topic " + strings.Repeat("t", 400) + "\n/kick bob " + strings.Repeat("r", 400),
	"/register carols secret\n/nick carol\n/nick carol wrong one\n/nick carol carols secret\n/drop\n/drop carol",
	"/register short\n/register a fine password\n/drop bob\n/oper root pw\n/drop carol",
	"/oper root pw\n/mute bob\n/topic \u202eevil\n/ban bob 1h \u202e\x07",
}

// FuzzModeration feeds lines to a joined session of a gateway with
// moderation (an operator "root", password "pw"): no command may panic,
// every reply is one clean frame, and leaving leaves nothing behind.
func FuzzModeration(f *testing.F) {
	for _, s := range modSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, ws bool) {
		b := newFuzzBus()
		mod := newFuzzMod()
		srv, err := New(Config{History: 5, Mod: mod, AuthDelay: time.Microsecond, AuthDelayMax: time.Millisecond,
			Operators: func(name, pw string) bool { return name == "root" && pw == "pw" }}, b)
		if err != nil {
			t.Fatal(err)
		}
		s := fuzzSession(t, srv, ws, netip.MustParseAddr("192.0.2.1"))
		frames := feedLines(s, data, 10)
		for _, fr := range frames {
			checkFrame(t, data, fr, ws)
		}
		for _, bn := range mod.Bans() {
			if strings.EqualFold(bn.Nick, "fuzzer") || bn.Net.Contains(s.ip) || bn.Net.IsValid() && bn.Net.Bits() < 8 {
				t.Fatalf("input %q: a ban the gateway should refuse: %+v", data, bn)
			}
			checkClean(t, data, "ban reason", bn.Reason)
		}
		s.teardown()
		if ops, _ := mod.Opers(context.Background()); len(ops) != 0 {
			t.Fatalf("input %q: operators left after leaving: %v", data, ops)
		}
		srv.mu.Lock()
		nicks, rooms := len(srv.nicks), len(srv.rooms)
		srv.mu.Unlock()
		if nicks != 0 || rooms != 0 {
			t.Fatalf("after %q and leaving: %d nicknames, %d rooms left", data, nicks, rooms)
		}
	})
}

// The moderation commands' replies, without a bus round trip to check.
func TestModerationCommands(t *testing.T) {
	b := newFuzzBus()
	mod := newFuzzMod()
	srv, err := New(Config{History: 0, Mod: mod, AuthDelay: time.Microsecond, AuthDelayMax: time.Millisecond,
		Operators: func(name, pw string) bool { return name == "root" && pw == "pw" }}, b)
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(srv, &fuzzTransport{codec: lineCodec{}}, "test", netip.MustParseAddr("192.0.2.1"))
	s.writing = true
	s.hello("fuzzer")
	for _, step := range []struct{ in, want string }{
		{"/kick bob", "ERROR /kick is for operators; see /oper"},
		{"/oper root nope", "ERROR wrong operator name or password"},
		{"/oper root pw", "*** you are now an operator (root)"},
		{"/ban 192.0.2.0/24", "ERROR you cannot ban yourself: 192.0.2.0/24 holds your own address"},
		{"/ban 2001:db8::1 1h", "*** banned 2001:db8::/64 for 1h0m0s"},
		{"/ban bob 1d spam", "*** banned bob for 24h0m0s"},
		{"/ban bob 1.5h", "*** banned bob for 1h30m0s"},
		{"/ban bob 7", `ERROR bad duration "7": use a number and s, m, h, d or w (such as 10m, 2h, 7d), at most 10 years`},
		{"/unban 2001:db8::7", "*** lifted the ban of 2001:db8::7"},
		{"/mute bob 1w", "*** muted bob for 168h0m0s"},
		{"/kick bob bye", ""},
		{"/topic hi all", ""}, // the room hears it from the bus
		{"/topic", "*** topic of lobby: hi all (set by fuzzer)"},
		{"/nick carol", "ERROR the nickname carol is registered: /nick carol PASSWORD"},
		{"/nick carol guess", "ERROR wrong password for the nickname carol"},
		{"/nick carol carols secret", "*** fuzzer is now known as carol"},
		{"/drop", "*** the nickname carol is no longer registered"},
	} {
		s.mu.Lock()
		s.frames = s.frames[:0]
		s.mu.Unlock()
		s.handle(step.in)
		s.mu.Lock()
		var got []string
		for _, f := range s.frames {
			got = append(got, strings.TrimSuffix(string(f), "\n"))
		}
		s.mu.Unlock()
		if step.want == "" {
			if len(got) != 0 {
				t.Errorf("%s: got %q, want nothing", step.in, got)
			}
			continue
		}
		if !slices.Contains(got, step.want) {
			t.Errorf("%s: got %q, want %q", step.in, got, step.want)
		}
	}
	if got := srv.Stats().Moderation; got["refused"] != 1 || got["oper_failed"] != 1 || got["ban"] != 3 || got["kick"] != 1 {
		t.Errorf("counted: %v", got)
	}
}

// An address whose password attempts already wait in line past
// --auth-delay-max is refused before any password hash is computed for it.
func TestModerationBackloggedNoHash(t *testing.T) {
	now := time.Unix(1795000000, 0)
	mod := newFuzzMod()
	srv, err := New(Config{Mod: mod, AuthDelay: time.Second, AuthDelayMax: 2 * time.Second, Now: func() time.Time { return now },
		Operators: func(string, string) bool { t.Error("operator password checked"); return false }}, newFuzzBus())
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(srv, &fuzzTransport{codec: lineCodec{}}, "test", netip.MustParseAddr("192.0.2.1"))
	s.writing = true
	s.hello("fuzzer")
	srv.auth.attempt(s.key, false, now) // the next verdict in 1s
	srv.auth.attempt(s.key, false, now) // then 2s after: 3s away
	if !srv.auth.backlogged(s.key, now) {
		t.Fatal("not backlogged")
	}
	if srv.auth.backlogged(AddrKey(netip.MustParseAddr("192.0.2.99")), now) {
		t.Fatal("another address backlogged")
	}
	for _, in := range []string{"/nick carol carols secret", "/oper root pw"} {
		s.mu.Lock()
		s.frames = s.frames[:0]
		s.mu.Unlock()
		s.handle(in)
		s.mu.Lock()
		got := string(bytes.Join(s.frames, nil))
		s.mu.Unlock()
		if got != "ERROR too many wrong passwords from your address; wait a few seconds before trying again\n" {
			t.Errorf("%s: got %q", in, got)
		}
	}
	if mod.checks != 0 {
		t.Errorf("%d password hashes computed for a backlogged address", mod.checks)
	}
}
