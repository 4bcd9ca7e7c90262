package bus

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What one gateway writes to chat_mod, another sees within moments, and is
// told of (OnModeration); expired bans and mutes are not listed; an
// operator counts while its gateway lives.
func TestModerationShared(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	var changes atomic.Int64
	a := mustConnect(t, s, nil)
	b := mustConnect(t, s, func(c *Config) { c.OnModeration = func() { changes.Add(1) } })
	ctx := context.Background()
	now := time.Now()

	if err := a.SetOper(ctx, "Alice", true); err != nil {
		t.Fatal(err)
	}
	must(t, a.PutBan(ctx, Ban{Nick: "Mallory", By: "Alice", Reason: "spam", At: now}))
	must(t, a.PutBan(ctx, Ban{Net: netip.MustParsePrefix("192.0.2.7/24"), By: "Alice", At: now, Until: now.Add(time.Hour)}))
	must(t, a.PutBan(ctx, Ban{Nick: "old", By: "Alice", At: now.Add(-time.Hour), Until: now.Add(-time.Minute)}))
	must(t, a.PutMute(ctx, Mute{Nick: "loud", By: "Alice", At: now, Until: now.Add(time.Minute)}))
	must(t, a.SetTopic(ctx, "lobby", Topic{Text: "hello", By: "Alice", At: now}))
	const hash = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
	must(t, a.PutReg(ctx, "Carol", hash))
	if err := a.PutReg(ctx, "Dave", "not a hash"); err == nil {
		t.Error("PutReg took a plain password")
	}

	checkFor(t, 5*time.Second, func() error {
		ops, err := b.Opers(ctx)
		switch {
		case err != nil:
			return err
		case fmt.Sprint(ops) != "[Alice]":
			return fmt.Errorf("opers %v", ops)
		case len(b.Bans()) != 2:
			return fmt.Errorf("bans %v", b.Bans())
		case len(b.Mutes()) != 1:
			return fmt.Errorf("mutes %v", b.Mutes())
		}
		if tp, ok := b.Topic("lobby"); !ok || tp.Text != "hello" || tp.By != "Alice" {
			return fmt.Errorf("topic %v %v", tp, ok)
		}
		if h, ok := b.Reg("CAROL"); !ok || h != hash {
			return fmt.Errorf("registration %q %v", h, ok)
		}
		return nil
	})
	bans := b.Bans()
	if bans[0].Nick != "Mallory" || bans[0].Reason != "spam" || !bans[0].Until.IsZero() ||
		bans[1].Net != netip.MustParsePrefix("192.0.2.0/24") || bans[1].Until.IsZero() {
		t.Errorf("bans = %+v", bans)
	}
	if changes.Load() == 0 {
		t.Error("OnModeration never called")
	}
	ok, err := b.DeleteBan(ctx, Ban{Nick: "MALLORY"})
	if err != nil || !ok {
		t.Fatalf("DeleteBan: %v %v", ok, err)
	}
	if ok, _ := b.DeleteBan(ctx, Ban{Nick: "MALLORY"}); ok {
		t.Error("a ban lifted twice")
	}
	checkFor(t, 5*time.Second, func() error {
		if n := len(a.Bans()); n != 1 {
			return fmt.Errorf("%d bans on a", n)
		}
		return nil
	})
	// An operator whose gateway is gone no longer counts, and the sweep
	// deletes its entry and the expired ban.
	a.Close()
	checkFor(t, 5*time.Second, func() error {
		if ops, err := b.Opers(ctx); err != nil || len(ops) != 0 {
			return fmt.Errorf("opers %v %v", ops, err)
		}
		return nil
	})
	checkFor(t, 5*time.Second, func() error {
		b.sweepMod(ctx)
		if n := len(b.modEntries("op.")); n != 0 {
			return fmt.Errorf("%d op entries left", n)
		}
		if _, ok := b.modEntries("ban.nick.")["ban.nick.old"]; ok {
			return fmt.Errorf("the expired ban is left")
		}
		return nil
	})
	if len(b.modEntries("mute.")) != 1 || len(b.modEntries("ban.net.")) != 1 {
		t.Errorf("the sweep deleted what is in force: %v", b.modEntries(""))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Entries of chat_mod and kick orders that a chatd gateway does not write,
// put there by a raw NATS client, are ignored, counted and logged (at most
// once per rejectLogEvery), and change nothing.
func TestModerationForeign(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	var mu sync.Mutex
	var kicks []string
	c := mustConnect(t, s, nil)
	stop, err := c.ReceiveKicks(func(room, nick, by, reason string) bool {
		mu.Lock()
		kicks = append(kicks, room+" "+nick+" "+by+" "+reason)
		mu.Unlock()
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx := context.Background()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(ctx, ModBucket)
	if err != nil {
		t.Fatal(err)
	}
	gw := c.ID()
	foreign := map[string]string{
		"op.junk":                       `not json`,
		"op.alice":                      `{"nick":"bob","gw":"` + gw + `"}`,
		"op.carol":                      `{"nick":"carol","gw":"nope"}`,
		"ban.nick.dave":                 `{"nick":"dave","by":"x y","at":1}`,
		"ban.nick.erin":                 `{"nick":"erin","by":"alice","at":1,"reason":"\u001b[2J"}`,
		"ban.net.3130":                  `{"net":"10.0.0.0/8","by":"alice","at":1}`,
		"ban.other.x":                   `{"nick":"x","by":"alice","at":1}`,
		"mute.frank":                    `{"nick":"frank","by":"alice","at":0}`,
		"topic.lobby":                   `{"text":"","by":"alice","at":1}`,
		"topic.Bad_Room":                `{"text":"x","by":"alice","at":1}`,
		"whatever":                      `{}`,
		"reg.mallory":                   `{"nick":"mallory","hash":"plaintext","at":1}`,
		"reg.trent":                     `{"nick":"trent","at":1,"hash":"$2a$10$` + "\n" + `"}`,
		"ban.net." + hexOf("1.2.3.4/8"): `{"net":"1.2.3.4/8","by":"alice","at":1}`,
	}
	for k, v := range foreign {
		if _, err := kv.Put(ctx, k, []byte(v)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	// One good entry after them: once it is in, so are they.
	if _, err := kv.Put(ctx, "topic.dev", []byte(`{"text":"ok","by":"alice","at":1}`)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() error {
		if _, ok := c.Topic("dev"); !ok {
			return fmt.Errorf("no good topic yet")
		}
		return nil
	})
	if got := c.ModRejected(); got != uint64(len(foreign)) {
		t.Errorf("rejected %d, want %d", got, len(foreign))
	}
	ops, _ := c.Opers(ctx)
	if len(ops) != 0 || len(c.Bans()) != 0 || len(c.Mutes()) != 0 {
		t.Errorf("foreign entries taken: ops %v bans %v mutes %v", ops, c.Bans(), c.Mutes())
	}
	if _, ok := c.Topic("lobby"); ok {
		t.Error("an empty topic was taken")
	}
	if _, ok := c.Reg("mallory"); ok {
		t.Error("a registration without a hash was taken")
	}

	// Kick orders: only a well-formed one reaches the gateway.
	good := Envelope{V: Version, GW: gw, ID: gw + ".999", Kind: KindKick, Room: "lobby", Nick: "alice", To: "bob", Text: "bye", TS: 1}
	bad := []Envelope{good, good, good, good, good}
	bad[0].Kind = KindMsg
	bad[1].Room = "No Room"
	bad[2].To = "carol" // not the subject's recipient
	bad[3].Nick = "a b"
	bad[4].Text = "\u001b[2J"
	for _, e := range bad {
		if err := nc.Publish(modPrefix+"bob", Encode(nil, &e)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish(modPrefix+"bob", []byte("junk")); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.Request(modPrefix+"bob", Encode(nil, &good), 5*time.Second); err != nil {
		t.Fatalf("a good order was not answered: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(kicks) != 1 || kicks[0] != "lobby bob alice bye" {
		t.Errorf("kicks delivered: %q", kicks)
	}
}

func hexOf(s string) string { return fmt.Sprintf("%x", s) }
