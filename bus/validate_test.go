package bus

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/nats-io/nats.go"
)

// testRules stand in for the gateway's rules (gateway.ValidNickname,
// gateway.CleanText), which cmd/chatd wires in: bus tests do not import
// the gateway.
var testRules = Rules{Nick: testNick, Text: testText, MaxText: 64}

func testNick(s string) bool {
	if len(s) < 1 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_-.[]{}|^", c) >= 0) {
			return false
		}
	}
	return true
}

func testText(s string) bool {
	for i := 0; i < len(s); {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r <= 0x9f || r == 0x202e {
			return false
		}
		i += size
	}
	return strings.TrimSpace(s) == s
}

func testConn() *Conn {
	cfg := DefaultConfig()
	cfg.Servers = []string{"nats://127.0.0.1:1"}
	cfg.Rules = testRules
	if err := cfg.fill(); err != nil {
		panic(err)
	}
	return &Conn{cfg: cfg, log: cfg.Logger}
}

const (
	testGW   = "0123456789abcdef"
	lobbyMsg = "chat.v1.room.lobby.msg"
	lobbyEvt = "chat.v1.room.lobby.event"
	toBob    = "chat.v1.user.bob"
)

func goodEnv() Envelope {
	return Envelope{V: Version, ID: testGW + ".7", GW: testGW, Kind: KindSay, Room: "lobby",
		Nick: "alice", Text: "hi there", TS: 1700000000000000000}
}

func goodMsg() Envelope {
	e := goodEnv()
	e.Kind, e.Room, e.To = KindMsg, "", "Bob"
	return e
}

func TestCheck(t *testing.T) {
	c := testConn()
	enc := func(f func(*Envelope)) []byte {
		e := goodEnv()
		f(&e)
		return Encode(nil, &e)
	}
	msg := func(f func(*Envelope)) []byte {
		e := goodMsg()
		f(&e)
		return Encode(nil, &e)
	}
	same := func(*Envelope) {}
	for _, tt := range []struct {
		name    string
		on      carrier
		subject string
		data    []byte
		want    Reason
	}{
		{"say", onRoom, lobbyMsg, enc(same), 0},
		{"me", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Kind = KindMe }), 0},
		{"join", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindJoin, "" }), 0},
		{"leave with reason", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindLeave, "bye" }), 0},
		{"nick", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindNick, "alice2" }), 0},
		{"msg", onUser, toBob, msg(same), 0},
		{"kick", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindKick, "alice spam and eggs" }), 0},
		{"kick no reason", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindKick, "alice" }), 0},
		{"topic", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindTopic, "read the rules" }), 0},
		{"topic cleared", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindTopic, "" }), 0},
		{"kick order", onMod, "chat.v1.mod.bob", msg(func(e *Envelope) { e.Kind, e.Room, e.Text = KindKick, "lobby", "" }), 0},
		{"kick on msg", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Kind, e.Text = KindKick, "alice" }), ReasonKind},
		{"kick by no one", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindKick, "" }), ReasonNick},
		{"kick by invalid", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindKick, "*** server: x" }), ReasonNick},
		{"kick order no room", onMod, "chat.v1.mod.bob", msg(func(e *Envelope) { e.Kind = KindKick }), ReasonRoom},
		{"kick order to another", onMod, "chat.v1.mod.bob", msg(func(e *Envelope) { e.Kind, e.Room, e.To = KindKick, "lobby", "carol" }), ReasonRecipient},
		{"msg as kick order", onMod, "chat.v1.mod.bob", msg(func(e *Envelope) { e.Room = "lobby" }), ReasonKind},
		{"newer fields", onRoom, lobbyMsg, []byte(`{"v":1,"id":"` + testGW + `.1","gw":"` + testGW + `","kind":"say","room":"lobby","nick":"a","text":"x","ts":1,"color":"red"}`), 0},
		{"max text", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Text = strings.Repeat("é", 64) }), 0},

		{"not JSON", onRoom, lobbyMsg, []byte(`{"v":1,`), ReasonMalformed},
		{"array", onRoom, lobbyMsg, []byte(`[1]`), ReasonMalformed},
		{"invalid UTF-8", onRoom, lobbyMsg, []byte(strings.Replace(string(enc(same)), "hi", "h\xff", 1)), ReasonMalformed},
		{"string version", onRoom, lobbyMsg, []byte(`{"v":"1"}`), ReasonMalformed},
		{"no time", onRoom, lobbyMsg, enc(func(e *Envelope) { e.TS = 0 }), ReasonMalformed},
		{"version 2", onRoom, lobbyMsg, enc(func(e *Envelope) { e.V = 2 }), ReasonVersion},
		{"unknown kind", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Kind = "shout" }), ReasonKind},
		{"say on event", onRoom, lobbyEvt, enc(same), ReasonKind},
		{"join on msg", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Kind, e.Text = KindJoin, "" }), ReasonKind},
		{"msg on room", onRoom, lobbyMsg, msg(same), ReasonKind},
		{"say on user", onUser, toBob, enc(same), ReasonKind},
		{"no id", onRoom, lobbyMsg, enc(func(e *Envelope) { e.ID = "" }), ReasonID},
		{"id of another gw", onRoom, lobbyMsg, enc(func(e *Envelope) { e.ID = "fedcba9876543210.7" }), ReasonID},
		{"id counter 0", onRoom, lobbyMsg, enc(func(e *Envelope) { e.ID = testGW + ".0" }), ReasonID},
		{"id counter 07", onRoom, lobbyMsg, enc(func(e *Envelope) { e.ID = testGW + ".07" }), ReasonID},
		{"id counter huge", onRoom, lobbyMsg, enc(func(e *Envelope) { e.ID = testGW + ".99999999999999999999" }), ReasonID},
		{"gw upper case", onRoom, lobbyMsg, enc(func(e *Envelope) { e.GW = strings.ToUpper(testGW); e.ID = e.GW + ".7" }), ReasonID},
		{"gw short", onRoom, lobbyMsg, enc(func(e *Envelope) { e.GW = "abc"; e.ID = "abc.7" }), ReasonID},
		{"room mismatch", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Room = "other" }), ReasonRoom},
		{"no room", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Room = "" }), ReasonRoom},
		{"odd subject", onRoom, "chat.v1.elsewhere", enc(same), ReasonRoom},
		{"to another", onUser, toBob, msg(func(e *Envelope) { e.To = "alice" }), ReasonRecipient},
		{"to invalid", onUser, toBob, msg(func(e *Envelope) { e.To = "bob\n" }), ReasonRecipient},
		{"nick newline", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Nick = "\n* server shutting down" }), ReasonNick},
		{"nick empty", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Nick = "" }), ReasonNick},
		{"from invalid", onUser, toBob, msg(func(e *Envelope) { e.Nick = "ad min" }), ReasonNick},
		{"new nick invalid", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindNick, "\x1b[2J" }), ReasonNick},
		{"text ESC", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Text = "\x1b[2Jhi" }), ReasonText},
		{"text BEL", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Text = "hi\a" }), ReasonText},
		{"text bidi", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Text = "\u202eevil" }), ReasonText},
		{"text empty", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Text = "" }), ReasonText},
		{"msg empty", onUser, toBob, msg(func(e *Envelope) { e.Text = "" }), ReasonText},
		{"join ESC", onRoom, lobbyEvt, enc(func(e *Envelope) { e.Kind, e.Text = KindJoin, "\x1b[2J" }), ReasonText},
		{"text long", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Text = strings.Repeat("é", 65) }), ReasonTooLong},
		{"envelope huge", onRoom, lobbyMsg, enc(func(e *Envelope) { e.Text = strings.Repeat("a", 1<<20) }), ReasonTooLong},
	} {
		_, got := c.check(tt.on, tt.subject, tt.data)
		if got != tt.want {
			t.Errorf("%s: check(%s) = %v, want %v", tt.name, tt.data[:min(len(tt.data), 200)], got, tt.want)
		}
	}
}

// FuzzCheck: whatever the check accepts is safe to format: every field
// shown to a user is valid UTF-8 with no control byte and within its bound,
// and the envelope is the one a gateway would have written.
func FuzzCheck(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s), false)
	}
	f.Add(Encode(nil, &benchEnvelope), false)
	e := goodEnv()
	f.Add(Encode(nil, &e), false)
	e = goodMsg()
	f.Add(Encode(nil, &e), true)
	c := testConn()
	f.Fuzz(func(t *testing.T, data []byte, user bool) {
		on, subject := onRoom, lobbyMsg
		if user {
			on, subject = onUser, toBob
		}
		e, r := c.check(on, subject, data)
		if r != 0 {
			return
		}
		for _, s := range []string{e.Nick, e.Text, e.ID, e.GW, e.Room, e.To} {
			if !utf8.ValidString(s) {
				t.Fatalf("accepted %q: %q is not UTF-8", data, s)
			}
			for i := 0; i < len(s); i++ {
				if s[i] < 0x20 || s[i] == 0x7f {
					t.Fatalf("accepted %q: %q holds byte %#x", data, s, s[i])
				}
			}
		}
		if !testNick(e.Nick) || !testText(e.Text) || utf8.RuneCountInString(e.Text) > testRules.MaxText {
			t.Fatalf("accepted %q: nick %q text %q", data, e.Nick, e.Text)
		}
		if len(e.ID) > 64 || !validGatewayID(e.GW) || e.TS <= 0 || e.V != Version {
			t.Fatalf("accepted %q: id %q gw %q ts %d", data, e.ID, e.GW, e.TS)
		}
		switch {
		case user && (e.Kind != KindMsg || !strings.EqualFold(e.To, "bob") || e.Text == ""):
			t.Fatalf("accepted %q on %s: %+v", data, subject, e)
		case !user && (e.Room != "lobby" || (e.Kind != KindSay && e.Kind != KindMe) || e.Text == ""):
			t.Fatalf("accepted %q on %s: %+v", data, subject, e)
		}
	})
}

// A raw NATS client's invalid envelopes reach no callback, live or from
// history, and are counted by reason; valid ones still flow.
func TestRejectedNotDelivered(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	c := mustConnect(t, s, nil)
	var r recorder
	unsub, err := c.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	in := inbox{for_: "bob"}
	stop, err := c.ReceivePrivate(in.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	seq := 0
	pub := func(subject string, f func(*Envelope)) {
		t.Helper()
		seq++
		e := goodEnv()
		if subject == toBob {
			e = goodMsg()
		}
		e.ID = testGW + "." + strconv.Itoa(seq)
		e.TS = time.Now().UnixNano()
		f(&e)
		if err := nc.Publish(subject, Encode(nil, &e)); err != nil {
			t.Fatal(err)
		}
	}
	pub(lobbyMsg, func(e *Envelope) { e.Nick = "\n* server" })
	pub(lobbyMsg, func(e *Envelope) { e.Text = "\x1b[2J" })
	pub(lobbyMsg, func(e *Envelope) { e.Room = "other" })
	// A forged id far ahead of the gateway's does not silence it: the
	// envelope is dropped before the bus remembers its id.
	pub(lobbyMsg, func(e *Envelope) { e.ID = testGW + ".999999"; e.Text = "\a" })
	pub(toBob, func(e *Envelope) { e.To = "carol" })
	pub(toBob, func(e *Envelope) { e.Text = "\x1b]0;x\x07" })
	if err := nc.Publish(lobbyMsg, []byte("{nope")); err != nil {
		t.Fatal(err)
	}
	pub(lobbyMsg, func(e *Envelope) { e.Text = "fine" })
	pub(toBob, func(e *Envelope) { e.Text = "fine too" })
	r.expect(t, "say:alice:fine")
	checkFor(t, 5*time.Second, func() error {
		if got := in.messages(); len(got) != 1 {
			return errors.New("no private message yet")
		}
		return nil
	})
	if got := in.messages(); len(got) != 1 {
		t.Errorf("private messages delivered: %v", got)
	}
	if got := texts(history(t, c, "lobby", 10)); len(got) != 1 || got[0] != "say:alice:fine" {
		t.Errorf("history = %v", got)
	}
	// Live: the room's five and the two private ones; read back from the
	// stream: the room's five once more.
	want := map[Reason]uint64{ReasonNick: 2, ReasonText: 5, ReasonRoom: 2, ReasonRecipient: 1, ReasonMalformed: 2}
	for _, r := range Reasons() {
		if got := c.Rejected()[r]; got != want[r] {
			t.Errorf("Rejected()[%v] = %d, want %d", r, got, want[r])
		}
	}
}

func TestRulesRequired(t *testing.T) {
	cfg := DefaultConfig()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := Connect(ctx, cfg); !errors.Is(err, ErrConfig) {
		t.Errorf("Connect without Rules: %v, want ErrConfig", err)
	}
}

// The check a room event passes costs no allocation beyond Decode's one.
func TestAcceptAllocs(t *testing.T) {
	c := testConn()
	data := Encode(nil, &benchEnvelope)
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := c.accept(onRoom, lobbyMsg, data); !ok {
			t.Fatal("rejected")
		}
	})
	if allocs > 1 {
		t.Errorf("accept allocates %v times; want 1 (Decode's)", allocs)
	}
}

// BenchmarkAccept is what a gateway does with every room event it
// receives before handing it on: Decode, then the checks.
func BenchmarkAccept(b *testing.B) {
	c := testConn()
	c.cfg.Rules.MaxText = defaultMaxText
	data := Encode(nil, &benchEnvelope)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.accept(onRoom, lobbyMsg, data); !ok {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkCheckFields is the checks alone, on a decoded room event: what
// validation adds to every event a gateway receives.
func BenchmarkCheckFields(b *testing.B) {
	c := testConn()
	c.cfg.Rules.MaxText = defaultMaxText
	e := benchEnvelope
	b.ReportAllocs()
	for b.Loop() {
		if r := c.checkFields(onRoom, lobbyMsg, &e); r != 0 {
			b.Fatal(r)
		}
	}
}
