package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/chatd/chatd/cluster/clustertest"
)

// Two gateways on one NATS server share rooms, nicknames and /who.
func TestTwoGateways(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	g1 := mustRunMain(t, "--nats", ns.ClientURL(), "--rate", "100000", "--burst", "100000")
	g2 := mustRunMain(t, "--nats", ns.ClientURL(), "--rate", "100000", "--burst", "100000")
	a1, a2 := g1.ChatAddr().String(), g2.ChatAddr().String()

	alice := join(t, a1, "alice")
	bob := join(t, a2, "bob")
	alice.Expect("bob joined!")
	alice.Send("across\n")
	bob.Expect("alice: across")
	bob.Send("back\n")
	alice.Expect("bob: back")

	// Nicknames are unique across both gateways, case-insensitively.
	c := dial(t, a2)
	c.ExpectName()
	c.Send("ALICE\n")
	c.Expect("ERROR nickname ALICE is taken, choose another")
	c.Conn.Close()

	for _, cl := range []*client{alice, bob} {
		cl.Send("/who\n")
		cl.Expect("*** in lobby (2): alice, bob")
	}

	alice.Send("/msg bob private across\n")
	bob.Expect("*** private from alice: private across")

	// 1,000 lines from each of two senders on different gateways arrive in
	// per-sender order at a receiver on each gateway.
	carol := join(t, a1, "carol")
	dave := join(t, a2, "dave")
	carol.Expect("dave joined!")
	const n = 1000
	var wg sync.WaitGroup
	for _, s := range []*client{alice, bob} {
		wg.Go(func() {
			var b strings.Builder
			for i := range n {
				fmt.Fprintf(&b, "seq %d\n", i)
			}
			s.Send(b.String())
		})
	}
	wg.Wait()
	for _, r := range []*client{carol, dave} {
		next := map[string]int{"alice": 0, "bob": 0}
		for next["alice"] < n || next["bob"] < n {
			s, err := r.Line()
			if err != nil {
				t.Fatalf("%s: %v; next %v", r.Nick, err, next)
			}
			nick, text, ok := strings.Cut(s, ": ")
			if _, sender := next[nick]; !ok || !sender {
				continue
			}
			if want := fmt.Sprintf("seq %d", next[nick]); text != want {
				t.Fatalf("%s: from %s got %q, want %q", r.Nick, nick, text, want)
			}
			next[nick]++
		}
	}

	// Quitting releases the nickname and presence on every gateway.
	bob.Send("/quit\n")
	alice.Expect("bob left!")
	alice.Send("/who\n")
	got := alice.ExpectPrefix("*** in lobby")
	if strings.Contains(got, "bob") {
		t.Errorf("/who after bob quit: %q", got)
	}
	join(t, a1, "bob") // on the other gateway this time
}

// The last lines of a room are replayed, framed and timestamped, on joining
// it, and survive a restart of chatd on the same data folder.
func TestHistorySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	m := mustRunMain(t, "--data", dir, "--history", "3")
	addr := m.ChatAddr().String()
	alice := join(t, addr, "alice")
	for i := 1; i <= 5; i++ {
		alice.Send(fmt.Sprintf("line %d\n", i))
		alice.Expect(fmt.Sprintf("alice: line %d", i))
	}
	alice.Send("/me waves\n")
	alice.Expect("* alice waves")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m = mustRunMain(t, "--data", dir, "--history", "3")
	bob := dial(t, m.ChatAddr().String())
	bob.ExpectName()
	bob.Send("bob\n")
	bob.Nick = "bob"
	bob.Expect("Connected to server!")
	bob.Expect("--- last 3 lines of lobby ---")
	var hist []string
	for range 3 {
		l, err := bob.Line()
		if err != nil {
			t.Fatal(err)
		}
		hist = append(hist, l)
	}
	bob.Expect("--- live ---")
	bob.Expect("bob joined!")
	for i, want := range []string{"alice: line 4", "alice: line 5", "* alice waves"} {
		// "[15:04] alice: line 4"
		if len(hist[i]) < 8 || hist[i][0] != '[' || hist[i][6] != ']' || hist[i][8:] != want {
			t.Errorf("history line %d = %q, want [hh:mm] %s", i, hist[i], want)
		}
	}
}

// A WebSocket user on one gateway and an nc user on another share a room,
// /who, private messages and nickname uniqueness.
func TestWebSocketAcrossGateways(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	g1 := mustRunMain(t, "--nats", ns.ClientURL())
	g2 := mustRunMain(t, "--nats", ns.ClientURL())

	web := wsJoin(t, g1, "webuser")
	nc := join(t, g2.ChatAddr().String(), "ncuser")
	web.expectEvent("join", "ncuser", "")
	web.line("across, from the web")
	nc.Expect("webuser: across, from the web")
	nc.Send("across, from nc\n")
	web.expectEvent("say", "ncuser", "across, from nc")

	web.line("/who")
	if who := web.expectNotice("in lobby"); strings.Join(who.Nicks, ",") != "ncuser,webuser" {
		t.Errorf("/who on the web = %v", who)
	}
	nc.Send("/who\n")
	nc.Expect("*** in lobby (2): ncuser, webuser")

	nc.Send("/msg webuser over the bus\n")
	if m, _ := web.expect("private", func(m wsMsg) bool { return m.Type == "private" }); m.From != "ncuser" || m.Text != "over the bus" {
		t.Errorf("private = %v", m)
	}
	web.line("/msg ncuser and back")
	nc.Expect("*** private from webuser: and back")

	w2 := wsDial(t, g2)
	w2.send(map[string]string{"type": "hello", "nick": "WEBUSER"})
	w2.expectError("nick_taken", "nickname WEBUSER is taken")
}
