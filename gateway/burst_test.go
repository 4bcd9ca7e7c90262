package gateway

import (
	"strconv"
	"testing"
	"time"
)

// burstServer runs a Server over a burstBus (newChatBus, whose user ends
// bursts with KindFlush) on 127.0.0.1:0 until the test ends, with cfg
// changed by set (if not nil). It returns the bus and the address.
func burstServer(t testing.TB, set func(*Config)) (*memBus, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.LinePause = 50 * time.Millisecond
	if set != nil {
		set(&cfg)
	}
	b := newChatBus()
	b.flushes = true
	srv, err := New(cfg, burstBus{b})
	if err != nil {
		t.Fatal(err)
	}
	if !srv.bursts {
		t.Fatal("the server does not take the bus's bursts")
	}
	return b, serveTCP(t, srv)
}

// publishBurst publishes events (kind, nick, text triples) to room on b
// and ends the burst with KindFlush, as a BurstBus does.
func publishBurst(t testing.TB, b *memBus, room string, events ...string) {
	t.Helper()
	b.bursting.Store(true)
	for i := 0; i+2 < len(events); i += 3 {
		if err := b.Publish(room, events[i], events[i+1], events[i+2]); err != nil {
			t.Fatal(err)
		}
	}
	b.bursting.Store(false)
	if err := b.Publish(room, KindFlush, "", ""); err != nil {
		t.Fatal(err)
	}
}

// A burst that mixes chat lines and notices reaches a TCP member whole and
// in the bus's order, and so does one that goes over the burst's size.
func TestBurstMixesLinesAndNotices(t *testing.T) {
	b, addr := burstServer(t, nil)
	alice := join(t, addr, "alice")
	alice.Sync()

	publishBurst(t, b, "lobby",
		KindSay, "bob", "one",
		KindJoin, "carol", "",
		KindMe, "bob", "waves",
		KindNick, "carol", "caro",
		KindLeave, "caro", "",
		KindTopic, "bob", "burst order",
		KindKick, "dave", "bob spam",
		KindSay, "bob", "two",
	)
	alice.ExpectInOrder(waitFor, []string{
		"bob: one",
		"carol joined!",
		"* bob waves",
		"*** carol is now known as caro",
		"caro left!",
		"*** bob set the topic: burst order",
		"*** dave was kicked by bob: spam",
		"bob: two",
	})

	// More events than a burst keeps: handed on in pieces, still in order.
	var events []string
	var want []string
	for i := range maxBurst + maxBurst/2 {
		nick := "n" + strconv.Itoa(i)
		if i%2 == 0 {
			events = append(events, KindJoin, nick, "")
			want = append(want, nick+" joined!")
		} else {
			events = append(events, KindSay, "bob", nick)
			want = append(want, "bob: "+nick)
		}
	}
	publishBurst(t, b, "lobby", events...)
	alice.ExpectInOrder(waitFor, want)
}

// In a quiet room a newcomer's own join notice, which goes to it alone,
// still comes after the burst's lines before it and before those after it.
func TestBurstQuietJoinInOrder(t *testing.T) {
	b, addr := burstServer(t, func(c *Config) { c.QuietRoomSize = 1 })
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob") // the room is quiet now: alice is not told

	publishBurst(t, b, "lobby",
		KindSay, "x", "before",
		KindJoin, "bob", "", // bob is here: only bob is told
		KindJoin, "zed", "", // on another gateway: nobody is told
		KindLeave, "yan", "", // quiet: nobody is told
		KindSay, "x", "after",
	)
	alice.ExpectInOrder(waitFor, []string{"x: before", "x: after"})
	bob.ExpectInOrder(waitFor, []string{"x: before", "bob joined!", "x: after"})
}
