package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A WebSocket client asks how many lines wait in rooms it was in before,
// giving its positions there: it gets the count of others' chat lines
// after each position, "more" when every recent line is after it, nothing
// for its own room; at most 4 rooms and one query per 5 s.
func TestWSUnread(t *testing.T) {
	m := mustRunMain(t, "--rate", "100", "--burst", "100", "--history", "5")
	alice := wsJoin(t, m, "alice")
	alice.line("/join dev")
	alice.expect("history of dev", func(x wsMsg) bool { return x.Type == "history" && x.Room == "dev" })
	alice.line("before you left")
	last, _ := alice.expect("own line", func(x wsMsg) bool { return x.Type == "event" && x.Kind == "say" && x.Nick == "alice" })
	gw := last.ID[:strings.LastIndexByte(last.ID, '.')]
	pos := fmt.Sprintf("dev:%d:%s", last.TS, last.ID)
	alice.line("/join lobby")
	alice.expect("history of lobby", func(x wsMsg) bool { return x.Type == "history" && x.Room == "lobby" })

	bob := join(t, m.ChatAddr().String(), "bob")
	bob.Send("/join dev\n")
	bob.Expect("bob joined!")
	bob.Send("one\n")
	bob.Send("/me waves\n")
	bob.Expect("* bob waves")
	// The stream stores a line a moment after the room hears it: wait
	// until both are stored (a fresh client per try: one query per 5 s).
	tries := 0
	checkFor(t, 10*time.Second, func() error {
		tries++
		c := wsJoin(t, m, fmt.Sprintf("probe%d", tries))
		c.send(map[string]any{"type": "unread", "rooms": []string{pos}})
		x, _ := c.expect("unread", func(x wsMsg) bool { return x.Type == "unread" || x.Type == "error" })
		if len(x.Rooms) != 1 || x.Rooms[0].Count != 2 {
			return fmt.Errorf("unread = %v", x)
		}
		return nil
	})

	unread := func(c *wsClient, rooms ...string) wsMsg {
		t.Helper()
		c.send(map[string]any{"type": "unread", "rooms": rooms})
		x, _ := c.expect("unread or error", func(x wsMsg) bool { return x.Type == "unread" || x.Type == "error" })
		return x
	}
	x := unread(alice, pos, fmt.Sprintf("lobby:%d:%s.1", last.TS, gw))
	if x.Type != "unread" || len(x.Rooms) != 1 || x.Rooms[0].Room != "dev" || x.Rooms[0].Count != 2 || x.Rooms[0].More {
		t.Errorf("unread = %v, want dev: 2 (bob's two lines, not alice's, not the joins; nothing for lobby, alice's room)", x)
	}
	if x := unread(alice, pos); x.Type != "error" || x.Code != "usage" || !strings.Contains(x.Text, "one query every 5s") {
		t.Errorf("a second query at once: %v, want a usage error", x)
	}
	alice.sync() // still connected

	// More lines than a join's history: at least that many, and more.
	for i := range 5 {
		bob.Send(fmt.Sprintf("line %d\n", i))
	}
	bob.Expect("bob: line 4")
	carol := wsJoin(t, m, "carol")
	if x := unread(carol, pos, pos, pos, pos, pos); x.Type != "error" || x.Code != "usage" || !strings.Contains(x.Text, "at most 4 rooms") {
		t.Errorf("5 rooms: %v, want a usage error", x)
	}
	x = unread(carol, pos)
	if x.Type != "unread" || len(x.Rooms) != 1 || x.Rooms[0].Count != 5 || !x.Rooms[0].More {
		t.Errorf("unread = %v, want dev: 5 and more", x)
	}

	// A position is untrusted input.
	dave := wsJoin(t, m, "dave")
	if x := unread(dave, "dev:garbage"); x.Type != "error" || x.Code != "usage" {
		t.Errorf("a bad position: %v, want a usage error", x)
	}
	dave.sync()
}

// The unread limits are flags: --unread-rooms bounds a query's rooms (0
// turns unread counts off) and --unread-every the queries' pace.
func TestWSUnreadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--unread-rooms", "1"}, "at most 1 rooms"},
		{[]string{"--unread-rooms", "0"}, "unread counts are off"},
	} {
		m := mustRunMain(t, tc.args...)
		c := wsJoin(t, m, "alice")
		c.send(map[string]any{"type": "unread", "rooms": []string{"dev:1:a.1", "ops:1:a.1"}})
		x, _ := c.expect("error", func(x wsMsg) bool { return x.Type == "unread" || x.Type == "error" })
		if x.Type != "error" || x.Code != "usage" || !strings.Contains(x.Text, tc.want) {
			t.Errorf("%v: %v, want a usage error saying %q", tc.args, x, tc.want)
		}
	}
	m := mustRunMain(t, "--unread-every", "1ms")
	c := wsJoin(t, m, "bob")
	for range 2 {
		c.send(map[string]any{"type": "unread", "rooms": []string{"dev:1:a.1"}})
		if x, _ := c.expect("unread", func(x wsMsg) bool { return x.Type == "unread" || x.Type == "error" }); x.Type != "unread" {
			t.Errorf("with --unread-every 1ms: %v", x)
		}
		time.Sleep(5 * time.Millisecond) // past --unread-every: a duration, not a condition
	}
}
