package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// When a gateway vanishes without closing, the others notice its lease
// lapse, release its users' presence and nicknames, and its users' leave is
// published exactly once however many gateways notice.
func TestGatewayCrash(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	short := func(c *Config) { c.Lease = 900 * time.Millisecond }
	a := mustConnect(t, s, short)
	b := mustConnect(t, s, short)
	crashed := mustConnect(t, s, short)
	ctx := context.Background()

	if ok, err := crashed.ClaimNick(ctx, "Zed"); !ok || err != nil {
		t.Fatalf("ClaimNick = %v, %v", ok, err)
	}
	if err := crashed.Join(ctx, "lobby", "Zed"); err != nil {
		t.Fatal(err)
	}
	if err := crashed.nc.Flush(); err != nil { // its join is out before r listens
		t.Fatal(err)
	}
	var ra, rb recorder
	for _, x := range []struct {
		c *Conn
		r *recorder
	}{{a, &ra}, {b, &rb}} {
		unsub, err := x.c.Subscribe("lobby", x.r.deliver)
		if err != nil {
			t.Fatal(err)
		}
		defer unsub()
	}
	// Let a and b see the crashed gateway alive at one lease refresh.
	checkFor(t, 5*time.Second, func() error {
		for _, c := range []*Conn{a, b} {
			if who, err := c.Who(ctx, "lobby"); err != nil || !slices.Equal(who, []string{"Zed"}) {
				return fmt.Errorf("who = %v, %v", who, err)
			}
		}
		return nil
	})
	// a and b have seen the crashed gateway take its lease.
	waitSeen(t, crashed, a, b)

	crashed.nc.Close() // no lease refresh, no clean-up: as if killed

	ra.waitN(t, 1)
	rb.waitN(t, 1)
	checkFor(t, 10*time.Second, func() error { // the nickname is free
		ok, err := a.ClaimNick(ctx, "zed")
		if err != nil || !ok {
			return fmt.Errorf("zed not free yet: %v, %v", ok, err)
		}
		return nil
	})
	if err := a.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*recorder{"a": &ra, "b": &rb} {
		var evs []event
		checkFor(t, 5*time.Second, func() error {
			evs = r.get()
			if len(evs) == 0 || evs[len(evs)-1].nick != "marker" {
				return fmt.Errorf("no marker yet: %v", texts(evs))
			}
			return nil
		})
		want := []string{"leave:Zed:gateway lost", "say:marker:end"}
		if got := texts(evs); !reflect.DeepEqual(got, want) {
			t.Errorf("%s got %v, want %v", name, got, want)
		}
	}
	if who, err := b.Who(ctx, "lobby"); err != nil || len(who) != 0 {
		t.Errorf("who after crash = %v, %v", who, err)
	}
}

// A user whose gateway crashed comes back, on another gateway, before any
// gateway has cleaned up after the crashed one: the room hears them leave,
// once, before it hears them join again.
func TestRejoinBeforeCleanup(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	short := func(c *Config) { c.Lease = 900 * time.Millisecond }
	crashed := mustConnect(t, s, short)
	ctx := context.Background()
	if ok, err := crashed.ClaimNick(ctx, "Zed"); !ok || err != nil {
		t.Fatalf("ClaimNick = %v, %v", ok, err)
	}
	if err := crashed.Join(ctx, "lobby", "Zed"); err != nil {
		t.Fatal(err)
	}
	crashed.nc.Close() // no lease refresh, no clean-up: as if killed

	// Its lease lapses before the next gateway starts, so no gateway ever
	// saw it alive and none cleans up after it.
	waitLeaseGone(t, s, crashed.ID())

	b := mustConnect(t, s, short)
	var rb recorder
	unsub, err := b.Subscribe("lobby", rb.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	if ok, err := b.ClaimNick(ctx, "zed"); !ok || err != nil {
		t.Fatalf("ClaimNick after the crash = %v, %v", ok, err)
	}
	if err := b.Join(ctx, "lobby", "zed"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	rb.expect(t, "leave:Zed:gateway lost", "join:zed:", "say:marker:end")
	if who, err := b.Who(ctx, "lobby"); err != nil || !reflect.DeepEqual(who, []string{"zed"}) {
		t.Errorf("Who = %v, %v", who, err)
	}
}

// A claim that timed out may still be applied by the server (JetStream
// without a quorum applies it once the quorum is back): the record is this
// gateway's, yet no session holds it. A later claim of that nickname
// succeeds, and a record nobody claims again is released.
func TestLeftoverClaim(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, func(c *Config) { c.Lease = 900 * time.Millisecond })
	ctx := context.Background()
	for _, nick := range []string{"Ghost", "Spook"} {
		val, _ := json.Marshal(ownerRec{Nick: nick, GW: a.ID()})
		if _, err := a.nicks.Create(ctx, strings.ToLower(nick), val); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := a.ClaimNick(ctx, "ghost"); !ok || err != nil {
		t.Fatalf("ClaimNick(ghost) = %v, %v; want true", ok, err)
	}
	if ok, err := a.ClaimNick(ctx, "GHOST"); ok || err != nil {
		t.Fatalf("ClaimNick(GHOST) = %v, %v; want false", ok, err)
	}
	a.m.mu.Lock()
	a.m.claims["spook"] = &claim{nick: "spook", state: claimDoubtful} // its claim failed
	a.m.mu.Unlock()
	checkFor(t, 5*time.Second, func() error {
		if _, err := a.nicks.Get(ctx, "spook"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("spook still claimed: %v", err)
		}
		return nil
	})
	if _, err := a.nicks.Get(ctx, "ghost"); err != nil {
		t.Errorf("ghost released: %v", err)
	}
}

// A presence entry Enter could not write (JetStream busy) is written at a
// later lease refresh, so that the user's departure is announced if the
// gateway crashes.
func TestPresenceRepaired(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, func(c *Config) { c.Lease = 900 * time.Millisecond })
	ctx := context.Background()
	a.m.mu.Lock() // as Join leaves it when the write fails
	a.m.entries["lobby.kim"] = &entry{room: "lobby", nick: "Kim", state: entryUnwritten}
	a.m.mu.Unlock()
	checkFor(t, 5*time.Second, func() error {
		if who, err := a.Who(ctx, "lobby"); err != nil || !slices.Equal(who, []string{"Kim"}) {
			return fmt.Errorf("who = %v, %v", who, err)
		}
		return nil
	})
}

// A user who leaves after another gateway released their presence (this
// gateway's lease had lapsed) and announced the departure is not
// announced twice.
func TestLeaveAnnouncedOnce(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, nil)
	var r recorder
	unsub, err := a.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	ctx := context.Background()
	if err := a.Join(ctx, "lobby", "Kim"); err != nil {
		t.Fatal(err)
	}
	if err := a.presence.Delete(ctx, "lobby.kim"); err != nil { // as a clean-up would
		t.Fatal(err)
	}
	for range 2 {
		if err := a.Part(ctx, "lobby", "Kim", ""); err != nil {
			t.Fatal(err)
		}
		if err := a.Join(ctx, "lobby", "Kim"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	// Joined; reaped (no leave: the clean-up would have announced it);
	// joined again; left; joined again.
	r.expect(t, "join:Kim:", "join:Kim:", "leave:Kim:", "join:Kim:", "say:marker:end")
}

// A user who comes back on another live gateway before the first one has
// let them go (a rolling restart: the gateway shutting down tells its
// clients where to go, and they are quicker than its clean-up) is
// announced leaving once, before they join, however the two gateways'
// steps interleave; the second gateway's presence entry stands.
func TestLeaveAfterRejoinElsewhere(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, nil)
	b := mustConnect(t, s, nil)
	ctx := context.Background()
	if err := a.Join(ctx, "lobby", "Kim"); err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil { // its join is out before r listens
		t.Fatal(err)
	}
	var r recorder
	unsub, err := b.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	if err := b.Join(ctx, "lobby", "Kim"); err != nil {
		t.Fatal(err)
	}
	if err := b.nc.Flush(); err != nil { // b's events reach r before a's
		t.Fatal(err)
	}
	if err := a.Part(ctx, "lobby", "Kim", ""); err != nil {
		t.Fatal(err)
	}
	// a's events, if any, reach r before its marker.
	if err := a.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "leave:Kim:", "join:Kim:", "say:marker:end")
	if who, err := b.Who(ctx, "lobby"); err != nil || !slices.Equal(who, []string{"Kim"}) {
		t.Errorf("Who after the old gateway's leave = %v, %v; want [Kim]", who, err)
	}
}

// A user of a crashed gateway who is back on another one while the dead
// gateway's lease still looks current (a replica of chat_gateways may
// expire it a moment later than the one that let the nickname go) is
// announced leaving once, before the join: the clean-up after the dead
// gateway finds nothing left to announce.
func TestRejoinBeforeLeaseLapses(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	short := func(c *Config) { c.Lease = 900 * time.Millisecond }
	crashed := mustConnect(t, s, short)
	b := mustConnect(t, s, short)
	ctx := context.Background()
	if err := crashed.Join(ctx, "lobby", "Zed"); err != nil {
		t.Fatal(err)
	}
	if err := crashed.nc.Flush(); err != nil { // its join is out before r listens
		t.Fatal(err)
	}
	crashed.nc.Close() // as if killed; its lease runs on
	var r recorder
	unsub, err := b.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	if alive, err := b.m.gatewayAlive(ctx, crashed.ID()); !alive || err != nil {
		t.Fatalf("crashed gateway's lease: alive=%v, %v; want it current", alive, err)
	}
	if err := b.Join(ctx, "lobby", "Zed"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		if !b.m.cleanupGateway(ctx, crashed.ID()) {
			return errors.New("crashed gateway not cleaned up yet")
		}
		return nil
	})
	if err := b.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "leave:Zed:", "join:Zed:", "say:marker:end")
	if who, err := b.Who(ctx, "lobby"); err != nil || !slices.Equal(who, []string{"Zed"}) {
		t.Errorf("Who = %v, %v; want [Zed]", who, err)
	}
}

// A user whose presence entry could not be written when they joined (a
// gateway stopping while JetStream elected leaders sent its users here, and
// neither gateway could write) is not announced joining a second time when
// this gateway's lease is refreshed again: the entry is written quietly,
// over the stopped gateway's, which had announced the departure itself.
func TestUnwrittenNotReasserted(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	short := func(c *Config) { c.Lease = 900 * time.Millisecond }
	old := mustConnect(t, s, short)
	a := mustConnect(t, s, short)
	var r recorder
	unsub, err := a.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	ctx := context.Background()
	if err := old.Join(ctx, "lobby", "Kim"); err != nil {
		t.Fatal(err)
	}
	old.nc.Close() // its Leave failed: the entry stays
	checkFor(t, 10*time.Second, func() error {
		if alive, err := a.m.gatewayAlive(ctx, old.ID()); alive || err != nil {
			return fmt.Errorf("old gateway alive=%v, %v", alive, err)
		}
		return nil
	})
	a.m.mu.Lock() // as Join leaves it when the write fails
	a.m.entries["lobby.kim"] = &entry{room: "lobby", nick: "Kim", state: entryUnwritten}
	a.m.mu.Unlock()
	a.m.reassertNicks(ctx)
	a.m.reassertPresence(ctx)
	a.m.repairPresence(ctx)
	if err := a.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "join:Kim:", "say:marker:end")
	e, err := a.presence.Get(ctx, "lobby.kim")
	var rec ownerRec
	if err != nil || json.Unmarshal(e.Value(), &rec) != nil || rec.GW != a.ID() {
		t.Errorf("presence entry after the repair: %+v, %v; want it a's", rec, err)
	}
}

// A presence entry of a gateway whose lease lapsed, removed by /who's
// reaper rather than by a clean-up (no gateway saw that one alive, or the
// reaper got there first), is announced as a departure, once: a gateway
// that claims its users back after a lapse then announces them joining
// after a leave, not twice in a row.
func TestReapAnnounces(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	short := func(c *Config) { c.Lease = 900 * time.Millisecond }
	gone := mustConnect(t, s, short)
	ctx := context.Background()
	if err := gone.Join(ctx, "lobby", "Kim"); err != nil {
		t.Fatal(err)
	}
	gone.nc.Close()
	// Its lease lapses before b starts, so no gateway cleans up after it.
	waitLeaseGone(t, s, gone.ID())
	b := mustConnect(t, s, short)
	var r recorder
	unsub, err := b.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	checkFor(t, 10*time.Second, func() error {
		if _, err := b.Who(ctx, "lobby"); err != nil {
			return err
		}
		if _, err := b.presence.Get(ctx, "lobby.kim"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("entry not reaped yet: %v", err)
		}
		return nil
	})
	r.waitN(t, 1) // the reaper publishes the leave just after its delete
	if err := b.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "leave:Kim:gateway lost", "say:marker:end")
}

// A gateway cut off for longer than its lease claims its users back when the
// link returns, and the room hears they are back; its own users, who never
// saw them go, hear nothing.
func TestReassertAfterLapse(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	short := func(c *Config) { c.Lease = 900 * time.Millisecond }
	a := mustConnect(t, s, short)
	b := mustConnect(t, s, short)
	ctx := context.Background()
	if ok, err := a.ClaimNick(ctx, "amy"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := a.Join(ctx, "lobby", "amy"); err != nil {
		t.Fatal(err)
	}
	if err := a.nc.Flush(); err != nil { // its join is out before rb listens
		t.Fatal(err)
	}
	var rb, ra recorder
	unsub, err := b.Subscribe("lobby", rb.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	unsubA, err := a.Subscribe("lobby", ra.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsubA()
	// As if the link was down past the lease: the others release amy.
	if err := a.gateways.Delete(ctx, a.id); err != nil {
		t.Fatal(err)
	}
	b.m.cleanupGateway(ctx, a.id)
	if got := texts(rb.waitN(t, 1)); !reflect.DeepEqual(got, []string{"leave:amy:gateway lost"}) {
		t.Fatalf("got %v", got)
	}
	a.disconnected.Store(time.Now().Add(-time.Hour).UnixNano())
	a.kick <- struct{}{}
	if got := texts(rb.waitN(t, 2)); !reflect.DeepEqual(got[1:], []string{"join:amy:"}) {
		t.Fatalf("got %v", got)
	}
	// amy's own gateway never let her go: its users hear neither her
	// departure nor her return.
	if err := a.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	ra.expect(t, "say:marker:end")
	if ok, err := b.ClaimNick(ctx, "amy"); ok || err != nil {
		t.Errorf("amy claimable after reassert: %v, %v", ok, err)
	}
	if who, err := b.Who(ctx, "lobby"); err != nil || !slices.Equal(who, []string{"amy"}) {
		t.Errorf("who = %v, %v", who, err)
	}
}

// A nickname taken by someone else while the link was down is reported.
func TestNickLostWhileCutOff(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	var mu sync.Mutex
	var lost []string
	a := mustConnect(t, s, func(c *Config) {
		c.Lease = 900 * time.Millisecond
		c.OnNickLost = func(n string) { mu.Lock(); lost = append(lost, n); mu.Unlock() }
	})
	b := mustConnect(t, s, nil)
	ctx := context.Background()
	if ok, err := a.ClaimNick(ctx, "amy"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := a.gateways.Delete(ctx, a.id); err != nil { // a's lease lapsed
		t.Fatal(err)
	}
	if ok, err := b.ClaimNick(ctx, "AMY"); !ok || err != nil {
		t.Fatalf("takeover = %v, %v", ok, err)
	}
	a.disconnected.Store(time.Now().Add(-time.Hour).UnixNano())
	a.kick <- struct{}{}
	checkFor(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(lost, []string{"amy"}) {
			return fmt.Errorf("lost = %v", lost)
		}
		return nil
	})
}

func TestGatewayAddresses(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, func(c *Config) { c.Addr = "h1:5500" })
	mustConnect(t, s, func(c *Config) { c.Addr = "h2:5500" })
	mustConnect(t, s, func(c *Config) { c.Addr = "h3:5500" })
	checkFor(t, 5*time.Second, func() error {
		got, err := a.Gateways(context.Background())
		if err != nil || !slices.Equal(got, []string{"h2:5500", "h3:5500"}) {
			return fmt.Errorf("Gateways = %v, %v", got, err)
		}
		return nil
	})
}

// waitLeaseGone waits until gateway id's lease has lapsed, reading the
// bucket on a connection of its own (a Conn would follow the gateway and
// clean up after it).
func waitLeaseGone(t *testing.T, s *server.Server, id string) {
	t.Helper()
	ctx := context.Background()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := js.KeyValue(ctx, GatewaysBucket)
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		if _, err := leases.Get(ctx, id); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("lease still there: %v", err)
		}
		return nil
	})
}

// After JetStream could not answer for longer than the lease (every lease
// lapsed), the gateways refresh again one after the other, as their
// tickers come: none is judged gone meanwhile, nobody is announced as
// leaving or joining, their nicknames stay theirs and /who lists everyone.
func TestRecoveryAnnouncesNobody(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	short := func(c *Config) { c.Lease = 900 * time.Millisecond }
	gws := []*Conn{mustConnect(t, s, short), mustConnect(t, s, short), mustConnect(t, s, short)}
	a := gws[0]
	ctx := context.Background()
	all := []string{"u0", "u1", "u2"}
	for i, g := range gws {
		if ok, err := g.ClaimNick(ctx, all[i]); !ok || err != nil {
			t.Fatalf("ClaimNick = %v, %v", ok, err)
		}
		if err := g.Join(ctx, "lobby", all[i]); err != nil {
			t.Fatal(err)
		}
		if err := g.nc.Flush(); err != nil { // its join is out before r listens
			t.Fatal(err)
		}
	}
	var r recorder
	unsub, err := a.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	checkFor(t, 5*time.Second, func() error {
		for _, g := range gws {
			if !g.m.mayJudge() {
				return errors.New("a gateway has not had a full lease yet")
			}
		}
		return nil
	})

	// JetStream unavailable to every gateway past the lease.
	for _, g := range gws {
		g.m.refreshFault.Store(true)
	}
	for _, g := range gws {
		waitLeaseGone(t, s, g.ID())
	}
	// It answers again; the gateways refresh one after the other.
	refreshed := func(g *Conn, times int) {
		t.Helper()
		e, err := a.gateways.Get(ctx, g.ID())
		var from uint64
		if err == nil {
			from = e.Revision()
		}
		checkFor(t, 5*time.Second, func() error {
			e, err := a.gateways.Get(ctx, g.ID())
			if err != nil || e.Revision() < from+uint64(times) {
				return fmt.Errorf("lease of %s not refreshed %d times: %v", g.ID(), times, err)
			}
			return nil
		})
	}
	for i, g := range gws {
		g.m.refreshFault.Store(false)
		refreshed(g, 2) // and it looked at the others' leases
		if who, err := a.Who(ctx, "lobby"); err != nil || !slices.Equal(who, all) {
			t.Errorf("after %d recovered: Who = %v, %v; want %v", i+1, who, err, all)
		}
		if i == 0 {
			if ok, err := a.ClaimNick(ctx, "U2"); ok || err != nil {
				t.Errorf("ClaimNick of a nickname whose gateway has not refreshed yet = %v, %v; want false", ok, err)
			}
		}
	}
	for _, g := range gws {
		refreshed(g, 4) // past a full lease for everyone
	}
	if err := a.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "say:marker:end")
	for _, g := range gws {
		if who, err := g.Who(ctx, "lobby"); err != nil || !slices.Equal(who, all) {
			t.Errorf("Who = %v, %v; want %v", who, err, all)
		}
	}
}

// A gateway of many users vanishes: every user's departure is announced
// once, even when removing their records takes longer than the others may
// wait at one lease refresh (a clean-up ran its deletes within one
// refresh's time limit, and each delete past it failed: the departure was
// never announced, and the record stayed or was applied unannounced).
func TestGatewayCrashManyUsers(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	const users = 1200
	observer := func(c *Config) {
		c.Lease = 900 * time.Millisecond
		c.RequestTimeout = 250 * time.Millisecond
	}
	crashed := mustConnect(t, s, func(c *Config) { c.Lease = 900 * time.Millisecond })
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, users)
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				nick := fmt.Sprintf("u%d", i)
				if ok, err := crashed.ClaimNick(ctx, nick); !ok || err != nil {
					errs <- fmt.Errorf("ClaimNick(%s) = %v, %v", nick, ok, err)
					continue
				}
				if err := crashed.Join(ctx, "lobby", nick); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range users {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a := mustConnect(t, s, observer)
	b := mustConnect(t, s, observer)
	var ra recorder
	unsub, err := a.Subscribe("lobby", ra.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	waitSeen(t, crashed, a, b)

	crashed.nc.Close() // no lease refresh, no clean-up: as if killed

	checkFor(t, 60*time.Second, func() error {
		left := make(map[string]int)
		for _, e := range ra.get() {
			if e.kind == KindLeave {
				left[e.nick]++
			}
		}
		if len(left) < users {
			return fmt.Errorf("%d of %d users announced gone", len(left), users)
		}
		for nick, n := range left {
			if n != 1 {
				return fmt.Errorf("%s announced gone %d times", nick, n)
			}
		}
		return nil
	})
	checkFor(t, 10*time.Second, func() error {
		if who, err := b.Who(ctx, "lobby"); err != nil || len(who) != 0 {
			return fmt.Errorf("who after the clean-up: %d users, %v", len(who), err)
		}
		return nil
	})
}

// waitSeen waits until every one of others has seen gw take its lease (it
// follows gw, and will clean up after it when the lease lapses).
func waitSeen(t testing.TB, gw *Conn, others ...*Conn) {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		for _, c := range others {
			c.m.mu.Lock()
			_, ok := c.m.seen[gw.id]
			c.m.mu.Unlock()
			if !ok {
				return fmt.Errorf("%s has not seen gateway %s", c.id, gw.id)
			}
		}
		return nil
	})
}
