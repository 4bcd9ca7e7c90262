package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/chatd/chatd/internal/testkit"
	"github.com/nats-io/nats-server/v2/server"
)

// testWriter sends log lines to t.Log until the test's cleanups are done.
type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) }) // runs after the Conns' cleanups
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// mustConnect connects to s with test defaults, changed by mod, and closes
// the Conn when the test ends.
func mustConnect(t testing.TB, s *server.Server, mod func(*Config)) *Conn {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Servers = []string{s.ClientURL()}
	cfg.Name = t.Name()
	cfg.Logger = testLogger(t)
	cfg.RequestTimeout = time.Second
	cfg.Rules = testRules
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

type event struct {
	id, kind, nick, text string
	at                   time.Time
}

// recorder collects delivered events; its deliver never blocks.
type recorder struct {
	mu      sync.Mutex
	events  []event
	flushes int // KindFlush calls, not kept in events
	flushed int // len(events) at the last KindFlush
}

func (r *recorder) deliver(id, kind, nick, text string, at time.Time) {
	if kind == KindFlush {
		r.mu.Lock()
		r.flushes++
		r.flushed = len(r.events)
		r.mu.Unlock()
		return
	}
	r.mu.Lock()
	r.events = append(r.events, event{id, kind, nick, text, at})
	r.mu.Unlock()
}

func (r *recorder) get() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

// waitN waits until r holds at least n events and returns them.
func (r *recorder) waitN(t testing.TB, n int) []event {
	t.Helper()
	var got []event
	checkFor(t, 10*time.Second, func() error {
		if got = r.get(); len(got) < n {
			return fmt.Errorf("have %d events, want %d", len(got), n)
		}
		return nil
	})
	return got
}

// expect waits for len(want) events and checks their texts (see texts).
func (r *recorder) expect(t testing.TB, want ...string) {
	t.Helper()
	if got := texts(r.waitN(t, len(want))); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func texts(evs []event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.kind+":"+e.nick+":"+e.text)
	}
	return out
}

func history(t testing.TB, c *Conn, room string, n int) []event {
	t.Helper()
	var r recorder
	if err := c.History(context.Background(), room, n, r.deliver); err != nil {
		t.Fatalf("History(%s, %d): %v", room, n, err)
	}
	return r.get()
}

func TestPublishSubscribe(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, nil)
	b := mustConnect(t, s, nil)
	if a.ID() == b.ID() || a.ID() == "" {
		t.Fatalf("gateway ids %q and %q", a.ID(), b.ID())
	}

	var ra, rb recorder
	unsubA, err := a.Subscribe("lobby", ra.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsubA()
	unsubB, err := b.Subscribe("lobby", rb.deliver)
	if err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	// Published right after Subscribe returned: the own echo must arrive.
	if err := a.Publish("lobby", KindSay, "alice", "hi"); err != nil {
		t.Fatal(err)
	}
	got := ra.waitN(t, 1)[0]
	if got.kind != KindSay || got.nick != "alice" || got.text != "hi" || !strings.HasPrefix(got.id, a.ID()+".") {
		t.Errorf("own echo = %+v", got)
	}
	if got.at.Before(before.Add(-time.Second)) || got.at.After(time.Now().Add(time.Second)) {
		t.Errorf("at = %v, published at about %v", got.at, before)
	}
	if other := rb.waitN(t, 1)[0]; other.id != got.id || other.text != "hi" {
		t.Errorf("other gateway got %+v, want %+v", other, got)
	}

	// Another room is not delivered; after unsubscribe nothing more is.
	if err := a.Publish("other", KindSay, "alice", "elsewhere"); err != nil {
		t.Fatal(err)
	}
	unsubB()
	unsubB() // idempotent
	if err := a.Publish("lobby", KindSay, "alice", "second"); err != nil {
		t.Fatal(err)
	}
	ra.waitN(t, 2)
	a.flush()
	b.flush()
	if evs := rb.get(); len(evs) != 1 {
		t.Errorf("gateway b got %v after unsubscribing", texts(evs))
	}
	if ids := []string{ra.get()[0].id, ra.get()[1].id}; ids[0] == ids[1] {
		t.Errorf("duplicate event ids %v", ids)
	}
}

func TestOrderPerSender(t *testing.T) {
	const n = 1000
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, func(c *Config) { c.History = 0 })
	b := mustConnect(t, s, func(c *Config) { c.History = 0 })
	var ra, rb recorder
	for _, x := range []struct {
		c *Conn
		r *recorder
	}{{a, &ra}, {b, &rb}} {
		unsub, err := x.c.Subscribe("order", x.r.deliver)
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
	}
	kinds := []string{KindSay, KindJoin, KindMe, KindLeave, KindNick}
	var wg sync.WaitGroup
	for _, x := range []struct {
		c    *Conn
		nick string
	}{{a, "alice"}, {b, "bob"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := publishAny(x.c, "order", kinds[i%len(kinds)], x.nick, strconv.Itoa(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for name, r := range map[string]*recorder{"a": &ra, "b": &rb} {
		evs := r.waitN(t, 2*n)
		next := map[string]int{}
		for _, e := range evs {
			if want := strconv.Itoa(next[e.nick]); e.text != want {
				t.Fatalf("gateway %s: from %s got %s, want %s", name, e.nick, e.text, want)
			}
			if want := kinds[next[e.nick]%len(kinds)]; e.kind != want {
				t.Fatalf("gateway %s: from %s kind %s, want %s", name, e.nick, e.kind, want)
			}
			next[e.nick]++
		}
		if next["alice"] != n || next["bob"] != n {
			t.Errorf("gateway %s: counts %v", name, next)
		}
	}
}

func TestHistory(t *testing.T) {
	dir := t.TempDir()
	s := clustertest.Start(t, clustertest.Options{StoreDir: dir})
	c := mustConnect(t, s, func(c *Config) { c.History, c.Retain = 4, 0 })
	var r recorder
	unsub, err := c.Subscribe("hist", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	if got := history(t, c, "hist", 10); len(got) != 0 {
		t.Fatalf("empty room history = %v", texts(got))
	}
	// Notices are delivered but not stored; only the last 4 lines are kept.
	pub := [][2]string{
		{KindJoin, ""}, {KindSay, "1"}, {KindMe, "2"}, {KindSay, "3"}, {KindNick, "bob2"},
		{KindSay, "4"}, {KindLeave, "bye"}, {KindSay, "5"}, {KindSay, "6"},
	}
	for _, p := range pub {
		if err := publishAny(c, "hist", p[0], "bob", p[1]); err != nil {
			t.Fatal(err)
		}
	}
	live := r.waitN(t, len(pub))
	if len(live) != len(pub) {
		t.Fatalf("live events %v", texts(live))
	}
	want := []string{"say:bob:3", "say:bob:4", "say:bob:5", "say:bob:6"}
	checkFor(t, 5*time.Second, func() error {
		if got := texts(history(t, c, "hist", 10)); !reflect.DeepEqual(got, want) {
			return fmt.Errorf("History(n=10) = %v, want %v", got, want)
		}
		return nil
	})
	if got := texts(history(t, c, "hist", 2)); !reflect.DeepEqual(got, want[2:]) {
		t.Errorf("History(n=2) = %v, want %v", got, want[2:])
	}
	h := history(t, c, "hist", 1)
	if len(h) != 1 || h[0].id != live[len(live)-1].id || !h[0].at.Equal(live[len(live)-1].at) {
		t.Errorf("History(n=1) = %+v, want %+v", h, live[len(live)-1])
	}
	if got := history(t, c, "hist", 0); len(got) != 0 {
		t.Errorf("History(n=0) = %v", texts(got))
	}
	if got := history(t, c, "nothere", 5); len(got) != 0 {
		t.Errorf("History(other room) = %v", texts(got))
	}

	// The stream survives a restart of the server on the same store.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	s.WaitForShutdown()
	s2 := clustertest.Start(t, clustertest.Options{StoreDir: dir})
	c2 := mustConnect(t, s2, func(c *Config) { c.History, c.Retain = 4, 0 })
	if got := texts(history(t, c2, "hist", 3)); !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("after restart History(n=3) = %v, want %v", got, want[1:])
	}

	// History off: no stream use, no calls.
	off := mustConnect(t, s2, func(c *Config) { c.History = 0 })
	if got := history(t, off, "hist", 3); len(got) != 0 {
		t.Errorf("history off: History = %v", texts(got))
	}
}

func TestClaimNick(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, nil)
	b := mustConnect(t, s, nil)
	ctx := context.Background()
	claim := func(c *Conn, nick string, want bool) {
		t.Helper()
		got, err := c.ClaimNick(ctx, nick)
		if err != nil || got != want {
			t.Fatalf("ClaimNick(%q) = %v, %v; want %v", nick, got, err, want)
		}
	}
	claim(a, "Alice", true)
	claim(b, "alice", false)
	claim(b, "ALICE", false)
	claim(a, "aLiCe", false) // taken on this gateway too
	claim(b, "bob", true)
	claim(a, "Al.ice", true) // a different nick, despite the escape
	claim(b, "al=2eice", true)

	// Releasing someone else's nick does nothing.
	if err := a.ReleaseNick(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	claim(a, "bob", false)
	// Release, then reclaim, by another gateway and case.
	if err := a.ReleaseNick(ctx, "ALICE"); err != nil {
		t.Fatal(err)
	}
	claim(b, "alice", true)
	claim(a, "Alice", false)
	if err := b.ReleaseNick(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	claim(a, "Alice", true)

	if _, err := a.ClaimNick(ctx, ""); !errors.Is(err, ErrInvalidNick) {
		t.Errorf("ClaimNick(\"\") err = %v", err)
	}
	// Close releases what a holds.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	claim(b, "alice", true)
	claim(b, "al.ice", true)
}

func TestStaleNickTakeover(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	short := func(c *Config) { c.Lease = 900 * time.Millisecond }
	a := mustConnect(t, s, short)
	b := mustConnect(t, s, short)
	ctx := context.Background()
	if ok, err := a.ClaimNick(ctx, "Carol"); !ok || err != nil {
		t.Fatalf("a.ClaimNick = %v, %v", ok, err)
	}
	if err := a.Join(ctx, "lobby", "Carol"); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(ctx, "lobby", "dave"); err != nil {
		t.Fatal(err)
	}
	// While a refreshes its lease, the nick stays a's, past one lease period:
	// wait until a has refreshed its lease more than a Lease after its first
	// write we saw.
	first, err := b.gateways.Get(ctx, a.ID())
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		e, err := b.gateways.Get(ctx, a.ID())
		if err != nil {
			return err
		}
		if d := e.Created().Sub(first.Created()); d < 1200*time.Millisecond {
			return fmt.Errorf("last lease refresh %v after the first", d)
		}
		return nil
	})
	if ok, err := b.ClaimNick(ctx, "carol"); ok || err != nil {
		t.Fatalf("b.ClaimNick while a is alive = %v, %v", ok, err)
	}
	if who, err := b.Who(ctx, "lobby"); err != nil || !reflect.DeepEqual(who, []string{"Carol", "dave"}) {
		t.Fatalf("Who = %v, %v", who, err)
	}

	// a's gateway dies without Close: its lease lapses.
	a.nc.Close()
	checkFor(t, 10*time.Second, func() error {
		ok, err := b.ClaimNick(ctx, "carol")
		if err != nil || !ok {
			return fmt.Errorf("b.ClaimNick(carol) = %v, %v", ok, err)
		}
		return nil
	})
	if ok, err := b.ClaimNick(ctx, "CAROL"); ok || err != nil {
		t.Errorf("b.ClaimNick after takeover = %v, %v; want false", ok, err)
	}
	// a's presence is ignored, then reaped.
	checkFor(t, 10*time.Second, func() error {
		who, err := b.Who(ctx, "lobby")
		if err != nil || !reflect.DeepEqual(who, []string{"dave"}) {
			return fmt.Errorf("Who = %v, %v", who, err)
		}
		return nil
	})
	checkFor(t, 10*time.Second, func() error {
		if _, err := b.presence.Get(ctx, "lobby.carol"); err == nil {
			return errors.New("stale presence entry not reaped")
		}
		return nil
	})
}

func TestWhoRooms(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, nil)
	b := mustConnect(t, s, nil)
	ctx := context.Background()
	enter := func(c *Conn, room, nick string) {
		t.Helper()
		if err := c.Join(ctx, room, nick); err != nil {
			t.Fatal(err)
		}
	}
	enter(a, "lobby", "bob")
	enter(a, "lobby", "Alice")
	enter(b, "lobby", "carol")
	enter(b, "dev", "dave")
	enter(b, "dev", "Dave") // same key: one member
	check := func(c *Conn, room string, want []string, rooms map[string]int) {
		t.Helper()
		checkFor(t, 5*time.Second, func() error {
			who, err := c.Who(ctx, room)
			if err != nil || !reflect.DeepEqual(who, want) {
				return fmt.Errorf("Who(%s) = %v, %v; want %v", room, who, err, want)
			}
			got, err := c.Rooms(ctx)
			if err != nil || !reflect.DeepEqual(got, rooms) {
				return fmt.Errorf("Rooms = %v, %v; want %v", got, err, rooms)
			}
			return nil
		})
	}
	check(a, "lobby", []string{"Alice", "bob", "carol"}, map[string]int{"lobby": 3, "dev": 1})
	check(b, "lobby", []string{"Alice", "bob", "carol"}, map[string]int{"lobby": 3, "dev": 1})
	check(b, "dev", []string{"Dave"}, map[string]int{"lobby": 3, "dev": 1})
	check(b, "empty", nil, map[string]int{"lobby": 3, "dev": 1})

	if err := a.Part(ctx, "lobby", "bob", ""); err != nil {
		t.Fatal(err)
	}
	if err := b.Part(ctx, "lobby", "Alice", ""); err != nil { // not b's: ignored
		t.Fatal(err)
	}
	check(b, "lobby", []string{"Alice", "carol"}, map[string]int{"lobby": 2, "dev": 1})
	if err := b.Part(ctx, "dev", "dave", ""); err != nil {
		t.Fatal(err)
	}
	check(a, "lobby", []string{"Alice", "carol"}, map[string]int{"lobby": 2})
	// Close takes a's members away at once.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	check(b, "lobby", []string{"carol"}, map[string]int{"lobby": 1})
	if _, err := b.Who(ctx, "Lobby"); !errors.Is(err, ErrInvalidRoom) {
		t.Errorf("Who(Lobby) err = %v", err)
	}
	if err := a.Join(ctx, "lobby", "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Enter after Close err = %v", err)
	}
}

type inbox struct {
	mu   sync.Mutex
	for_ string // lower-case nick this gateway holds
	got  []string
}

func (in *inbox) deliver(to, from, text string, at time.Time) bool {
	if strings.ToLower(to) != in.for_ || at.IsZero() {
		return false
	}
	in.mu.Lock()
	in.got = append(in.got, to+"<"+from+":"+text)
	in.mu.Unlock()
	return true
}

func (in *inbox) messages() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.got...)
}

func TestSendPrivate(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	fast := func(c *Config) { c.RequestTimeout = 500 * time.Millisecond }
	a := mustConnect(t, s, fast)
	b := mustConnect(t, s, fast)
	ctx := context.Background()
	ina, inb := &inbox{for_: "alice"}, &inbox{for_: "bob"}
	stopA, err := a.ReceivePrivate(ina.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer stopA()
	stopB, err := b.ReceivePrivate(inb.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer stopB()
	for _, x := range []struct {
		c    *Conn
		nick string
	}{{a, "Alice"}, {b, "bob"}, {b, "ghost"}} {
		if ok, err := x.c.ClaimNick(ctx, x.nick); !ok || err != nil {
			t.Fatalf("ClaimNick(%s) = %v, %v", x.nick, ok, err)
		}
	}

	ok, err := b.SendPrivate(ctx, "ALICE", "bob", "psst")
	if !ok || err != nil {
		t.Fatalf("SendPrivate(ALICE) = %v, %v", ok, err)
	}
	if got := ina.messages(); !reflect.DeepEqual(got, []string{"ALICE<bob:psst"}) {
		t.Errorf("alice's gateway got %v", got)
	}
	if ok, err := a.SendPrivate(ctx, "bob", "Alice", "hi back"); !ok || err != nil {
		t.Fatalf("SendPrivate(bob) = %v, %v", ok, err)
	}
	if got := inb.messages(); !reflect.DeepEqual(got, []string{"bob<Alice:hi back"}) {
		t.Errorf("bob's gateway got %v", got)
	}

	// Nobody holds the nick: false, without waiting for a timeout.
	start := time.Now()
	if ok, err := a.SendPrivate(ctx, "nobody", "Alice", "hello?"); ok || err != nil {
		t.Errorf("SendPrivate(nobody) = %v, %v", ok, err)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("SendPrivate(nobody) took %v", d)
	}
	// Held, but no gateway delivers it: false after RequestTimeout.
	if ok, err := a.SendPrivate(ctx, "ghost", "Alice", "boo"); ok || err != nil {
		t.Errorf("SendPrivate(ghost) = %v, %v", ok, err)
	}
	// A cancelled context is an error.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := a.SendPrivate(cctx, "bob", "Alice", "x"); err == nil {
		t.Error("SendPrivate with a cancelled context: no error")
	}
	if _, err := a.SendPrivate(ctx, "", "Alice", "x"); !errors.Is(err, ErrInvalidNick) {
		t.Errorf("SendPrivate(\"\") err = %v", err)
	}
}

func TestInvalidNames(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	c := mustConnect(t, s, nil)
	ctx := context.Background()
	nop := func(string, string, string, string, time.Time) {}
	for _, room := range []string{"", "a.b", "a*", "lobby>", ">", "has space", "tab\t", "Lobby", "é", strings.Repeat("r", 33)} {
		if err := c.Publish(room, KindSay, "x", "y"); !errors.Is(err, ErrInvalidRoom) {
			t.Errorf("Publish(%q) err = %v", room, err)
		}
		if _, err := c.Subscribe(room, nop); !errors.Is(err, ErrInvalidRoom) {
			t.Errorf("Subscribe(%q) err = %v", room, err)
		}
		if err := c.History(ctx, room, 5, nop); !errors.Is(err, ErrInvalidRoom) {
			t.Errorf("History(%q) err = %v", room, err)
		}
		if err := c.Join(ctx, room, "x"); !errors.Is(err, ErrInvalidRoom) {
			t.Errorf("Enter(%q) err = %v", room, err)
		}
	}
	for _, kind := range []string{"", KindMsg, "SAY", "shout"} {
		if err := c.Publish("lobby", kind, "x", "y"); !errors.Is(err, ErrInvalidKind) {
			t.Errorf("Publish(kind %q) err = %v", kind, err)
		}
	}
	if err := c.Join(ctx, "lobby", ""); !errors.Is(err, ErrInvalidNick) {
		t.Errorf("Enter(nick \"\") err = %v", err)
	}
}

// A NATS server without JetStream is refused at once, with one line that
// says how to enable it.
func TestNoJetStream(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{NoJetStream: true})
	cfg := DefaultConfig()
	cfg.Servers = []string{s.ClientURL()}
	cfg.Logger = testLogger(t)
	cfg.Rules = testRules
	start := time.Now()
	c, err := Connect(context.Background(), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Connect succeeded without JetStream")
	}
	if !errors.Is(err, ErrNoJetStream) {
		t.Fatalf("Connect err = %v, want ErrNoJetStream", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "nats-server -js") || !strings.Contains(msg, "chatd broker") {
		t.Errorf("refusal %q: want one line naming nats-server -js and chatd broker", msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusal took %v", d)
	}
}

func TestInProcessAndClose(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	c := mustConnect(t, s, func(c *Config) { c.Servers = nil; c.InProcess = s })
	other := mustConnect(t, s, nil)
	ctx := context.Background()
	if ok, err := other.m.gatewayAlive(ctx, c.ID()); !ok || err != nil {
		t.Fatalf("lease of the in-process Conn: %v, %v", ok, err)
	}
	var r recorder
	if _, err := c.Subscribe("lobby", r.deliver); err != nil {
		t.Fatal(err)
	}
	if err := other.Publish("lobby", KindMe, "x", "waves"); err != nil {
		t.Fatal(err)
	}
	r.waitN(t, 1)

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if ok, err := other.m.gatewayAlive(ctx, c.ID()); ok || err != nil {
		t.Errorf("lease after Close: %v, %v", ok, err)
	}
	if err := c.Publish("lobby", KindSay, "x", "y"); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close err = %v", err)
	}
	if _, err := c.ClaimNick(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("ClaimNick after Close err = %v", err)
	}

	if _, err := Connect(ctx, Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("Connect(Config{}) err = %v", err)
	}
}

// publishAny publishes an event of any kind, as Publish and, for joins and
// departures, as Join and Part announce them.
func publishAny(c *Conn, room, kind, nick, text string) error {
	if kind == KindJoin || kind == KindLeave {
		return c.m.announce(room, kind, nick, text)
	}
	return c.Publish(room, kind, nick, text)
}

// checkFor polls until a condition holds (testkit.CheckFor).
var checkFor = testkit.CheckFor

// TestSubscribeFlushesBursts checks that every event a subscription
// delivers is followed, once nothing more is waiting, by a KindFlush: a
// subscriber that keeps a burst's events until then never keeps one for
// good.
func TestSubscribeFlushesBursts(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	c := mustConnect(t, s, nil)
	var r recorder
	unsub, err := c.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	const n = 500
	for i := range n {
		if err := c.Publish("lobby", KindSay, "alice", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.flushed != n {
			return fmt.Errorf("%d events, %d of them flushed by %d flushes", len(r.events), r.flushed, r.flushes)
		}
		return nil
	})
	for i, e := range r.get() {
		if e.text != strconv.Itoa(i) {
			t.Fatalf("event %d is %q", i, e.text)
		}
	}
}
