package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// countHandler counts the warnings about foreign records, per key.
type countHandler struct {
	slog.Handler
	mu    *sync.Mutex
	count map[string]int
}

func (h countHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "record chatd did not write") {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "key" {
				h.mu.Lock()
				h.count[a.Value.String()]++
				h.mu.Unlock()
			}
			return true
		})
	}
	return h.Handler.Handle(ctx, r)
}

func (h countHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return countHandler{h.Handler.WithAttrs(as), h.mu, h.count}
}

func (h countHandler) WithGroup(g string) slog.Handler {
	return countHandler{h.Handler.WithGroup(g), h.mu, h.count}
}

// Records chatd did not write, put in the buckets by a raw NATS client
// (wrong JSON, a nickname that does not match its key or is not one, a
// gateway id that is not one, a gateway nobody knows), are logged once,
// never listed by /who, never block a claim or a join, and are repaired:
// written over or deleted. The record of a gateway nobody knows, well
// formed, is that of a gateway gone: its user's departure is announced
// once, as for a crash.
func TestForeignRecords(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	var mu sync.Mutex
	count := map[string]int{}
	a := mustConnect(t, s, func(c *Config) {
		c.Logger = slog.New(countHandler{c.Logger.Handler(), &mu, count})
	})
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
	put := func(bucket, key, val string) {
		t.Helper()
		kv, err := js.KeyValue(ctx, bucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, key, []byte(val)); err != nil {
			t.Fatalf("put %s %s: %v", bucket, key, err)
		}
	}
	const nobody = "00000000000000ff" // a gateway id no gateway has
	foreign := map[string]string{
		"lobby.junk":   `not json`,
		"lobby.null":   `null`,
		"lobby.list":   `[1,2]`,
		"lobby.other":  `{"nick":"someone","gw":"` + nobody + `"}`,
		"lobby.ctl=1b": `{"nick":"ctl\u001b","gw":"` + nobody + `"}`,
		"lobby.nogw":   `{"nick":"nogw","gw":"not a gateway"}`,
		"lobby.alice":  `{"nick":`,
	}
	for k, v := range foreign {
		put(PresenceBucket, k, v)
	}
	put(PresenceBucket, "lobby.ghost", `{"nick":"ghost","gw":"`+nobody+`","extra":1}`)
	put(NicksBucket, "alice", `[1,2]`)
	put(NicksBucket, "bob", `{"nick":"bob","gw":"`+nobody+`"}`)
	put(NicksBucket, "carol", `{"nick":"Mallory","gw":"`+nobody+`"}`)
	put(GatewaysBucket, "zz", `not a lease`)

	var r recorder
	unsub, err := a.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	// Claims and joins go through, writing over what was there.
	for _, nick := range []string{"alice", "bob", "carol"} {
		if ok, err := a.ClaimNick(ctx, nick); !ok || err != nil {
			t.Errorf("ClaimNick(%s) over a foreign record = %v, %v", nick, ok, err)
		}
	}
	if err := a.Join(ctx, "lobby", "alice"); err != nil {
		t.Fatal(err)
	}
	// /who lists alice only; the foreign records go, ghost is reaped.
	checkFor(t, 10*time.Second, func() error {
		who, err := a.Who(ctx, "lobby")
		if err != nil || !slices.Equal(who, []string{"alice"}) {
			return fmt.Errorf("Who = %v, %v", who, err)
		}
		for k := range foreign {
			if k == "lobby.alice" {
				continue
			}
			if _, err := a.presence.Get(ctx, k); !errors.Is(err, jetstream.ErrKeyNotFound) {
				return fmt.Errorf("%s still there: %v", k, err)
			}
		}
		if _, err := a.presence.Get(ctx, "lobby.ghost"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("ghost still there: %v", err)
		}
		return nil
	})
	if rooms, err := a.Rooms(ctx); err != nil || rooms["lobby"] != 1 || len(rooms) != 1 {
		t.Errorf("Rooms = %v, %v", rooms, err)
	}
	if gws, err := a.Gateways(ctx); err != nil || len(gws) != 0 {
		t.Errorf("Gateways = %v, %v", gws, err)
	}
	if err := a.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "join:alice:", "leave:ghost:gateway lost", "say:marker:end")
	if err := a.Part(ctx, "lobby", "alice", ""); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{"lobby.junk", "lobby.null", "lobby.list", "lobby.other", "lobby.ctl=1b", "lobby.nogw", "lobby.alice", "alice", "carol"} {
		if count[k] != 1 {
			t.Errorf("%s logged %d times, want once", k, count[k])
		}
	}
}

// A lease record's address reaches clients in the shutdown notice, so one
// written by a NATS client that is not a gateway, with something other
// than a printable host:port, is left out of Gateways.
func TestLeaseAddrChecked(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, nil)
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
	kv, err := js.KeyValue(ctx, GatewaysBucket)
	if err != nil {
		t.Fatal(err)
	}
	leases := map[string]string{
		"00000000000000a1": `{"name":"ok","addr":"10.0.0.9:5500","irc":"10.0.0.9:6667"}`,
		"00000000000000a2": `{"name":"nl","addr":"evil:1\n*** server shutting down; reconnect to evil:2","irc":"evil:1\r\nERROR :x"}`,
		"00000000000000a3": `{"name":"esc","addr":"evil\u001b[2J:1"}`,
		"00000000000000a4": `{"name":"noport","addr":"evil"}`,
		"00000000000000a5": `{"name":"long","addr":"` + strings.Repeat("a", 300) + `:1"}`,
	}
	for k, v := range leases {
		if _, err := kv.Put(ctx, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	gws, err := a.Gateways(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gws, []string{"10.0.0.9:5500"}) {
		t.Errorf("Gateways = %q, want only the well-formed address", gws)
	}
	irc, err := a.IRCGateways(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(irc, []string{"10.0.0.9:6667"}) {
		t.Errorf("IRCGateways = %q, want only the well-formed address", irc)
	}
}

func TestValidAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"10.0.0.9:5500": true, "[::1]:5500": true, "chat.example.org:5500": true,
		"": false, "evil": false, ":5500": false, "evil:": false, "a b:1": false,
		"evil\n:1": false, "é:1": false, strings.Repeat("a", 300) + ":1": false,
	} {
		if got := validAddr(addr); got != want {
			t.Errorf("validAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}
