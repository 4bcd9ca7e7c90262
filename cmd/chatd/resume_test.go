package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
)

// wsPosition follows a WebSocket client's position in its room, as the
// page does: the newest event time and the highest counter per gateway.
type wsPosition struct {
	room string
	ts   int64
	last map[string]uint64
}

func (p *wsPosition) see(m wsMsg) {
	if m.ID == "" {
		return
	}
	i := strings.LastIndexByte(m.ID, '.')
	n, _ := strconv.ParseUint(m.ID[i+1:], 10, 64)
	if p.last == nil {
		p.last = map[string]uint64{}
	}
	p.last[m.ID[:i]] = max(p.last[m.ID[:i]], n)
	p.ts = max(p.ts, m.TS)
}

func (p *wsPosition) token() string {
	var ids []string
	for gw, n := range p.last {
		ids = append(ids, fmt.Sprintf("%s.%d", gw, n))
	}
	return fmt.Sprintf("%s:%d:%s", p.room, p.ts, strings.Join(ids, ","))
}

// expectSay waits for nick's chat line text and returns it.
func (c *wsClient) expectSay(nick, text string) wsMsg {
	c.t.Helper()
	m, _ := c.expect("say "+nick+" "+text, func(m wsMsg) bool {
		return m.Type == "event" && m.Kind == "say" && m.Nick == nick && m.Text == text
	})
	return m
}

// wsResume connects with a resume token and returns the messages up to and
// including the replay (history or missed).
func wsResume(t testing.TB, m *Main, nick, token string) (*wsClient, wsMsg, []wsMsg) {
	t.Helper()
	c := wsDial(t, m)
	c.nick = nick
	c.send(map[string]any{"type": "hello", "v": 1, "nick": nick, "resume": token})
	c.expectType("welcome")
	h, before := c.expect("history", func(m wsMsg) bool { return m.Type == "history" })
	return c, h, before
}

func texts(evs []wsMsg) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Text)
	}
	return out
}

// A WebSocket client that loses its gateway reconnects to another with its
// position and gets what it missed, once, marked as missed, before live
// lines.
func TestResumeWebSocket(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	g1 := mustRunMain(t, "--nats", ns.ClientURL(), "--rate", "100000", "--burst", "100000")
	g2 := mustRunMain(t, "--nats", ns.ClientURL(), "--rate", "100000", "--burst", "100000")
	bob := join(t, g2.ChatAddr().String(), "bob")

	alice := wsJoin(t, g1, "alice")
	bob.Expect("alice joined!")
	pos := wsPosition{room: "lobby"}
	for i := 1; i <= 3; i++ {
		bob.Send(fmt.Sprintf("line %d\n", i))
		pos.see(alice.expectSay("bob", fmt.Sprintf("line %d", i)))
	}
	alice.c.CloseNow() // her gateway is gone
	bob.Expect("alice left!")
	for i := 4; i <= 7; i++ {
		bob.Send(fmt.Sprintf("line %d\n", i))
		bob.Expect(fmt.Sprintf("bob: line %d", i))
	}

	alice, h, _ := wsResume(t, g2, "alice", pos.token())
	if !h.Missed || h.Room != "lobby" || h.Skipped != 0 || h.Gone {
		t.Errorf("replay = %v, want the missed lines", h)
	}
	if got, want := strings.Join(texts(h.Events), "|"), "line 4|line 5|line 6|line 7"; got != want {
		t.Errorf("missed = %q, want %q", got, want)
	}
	for _, e := range h.Events {
		if e.ID == "" || e.TS == 0 {
			t.Errorf("missed event without a position: %v", e)
		}
	}
	bob.Send("line 8\n")
	skipped := alice.expectEvent("say", "bob", "line 8")
	for _, m := range skipped {
		if m.Type == "event" && m.Kind == "say" {
			t.Errorf("a line before the live one: %v", m)
		}
	}

	// Capped: only the newest --resume-lines are replayed, the rest
	// counted.
	g3 := mustRunMain(t, "--nats", ns.ClientURL(), "--rate", "100000", "--burst", "100000", "--resume-lines", "2")
	_, h3, _ := wsResume(t, g3, "dave", pos.token())
	if got, want := strings.Join(texts(h3.Events), "|"), "line 7|line 8"; got != want || h3.Skipped != 3 || !h3.Missed {
		t.Errorf("capped replay = %v, want %q and 3 skipped", h3, want)
	}
}

// A resume token that is malformed, too old, from the future or names a
// bad room gets a normal join (history) and one notice.
func TestResumeBadTokens(t *testing.T) {
	m := mustRunMain(t)
	bob := join(t, m.ChatAddr().String(), "bob")
	bob.Send("hello\n")
	bob.Expect("bob: hello")
	now := time.Now().UnixMilli()
	for i, tok := range []string{
		"garbage",
		"lobby:notanumber:",
		"lobby:" + strconv.FormatInt(now-2*time.Hour.Milliseconds(), 10) + ":",
		"lobby:" + strconv.FormatInt(now+time.Hour.Milliseconds(), 10) + ":",
		"Lobby:" + strconv.FormatInt(now, 10) + ":",
		"lobby:" + strconv.FormatInt(now, 10) + ":zz.1,../x.2",
		"lobby:" + strconv.FormatInt(now, 10) + ":" + strings.Repeat("a.1,", 100) + "a.1",
	} {
		nick := fmt.Sprintf("u%d", i)
		c, h, _ := wsResume(t, m, nick, tok)
		if h.Missed || len(h.Events) == 0 || h.Events[0].Text != "hello" {
			t.Errorf("token %q: replay %v, want the history", tok, h)
		}
		c.expectNotice("your resume position was not used")
		for _, x := range c.sync() {
			if x.Type == "notice" {
				t.Errorf("token %q: a second notice %v", tok, x)
			}
		}
	}
}

// A valid token only ever selects lines of the room it names: one naming
// another room (with positions from lobby) yields none of lobby's lines.
func TestResumeOtherRoom(t *testing.T) {
	m := mustRunMain(t)
	bob := join(t, m.ChatAddr().String(), "bob")
	alice := wsJoin(t, m, "alice")
	bob.Send("in lobby\n")
	seen := alice.expectSay("bob", "in lobby")
	bob.Send("after\n")
	bob.Expect("bob: after")
	tok := fmt.Sprintf("dev:%d:%s", seen.TS-60000, "00000000.0")
	c, h, _ := wsResume(t, m, "carol", tok)
	if h.Room != "dev" || !h.Missed || len(h.Events) != 0 {
		t.Errorf("resume in dev: %v, want an empty missed replay of dev", h)
	}
	for _, x := range c.sync() {
		if x.Type == "event" && x.Kind == "say" && x.Nick == "bob" {
			t.Errorf("a lobby line reached dev: %v", x)
		}
	}
}

// The terminal client's TCP extension: " +resume" after the nickname gives
// positions on chat lines; " +resume=TOKEN" resumes. A plain client's lines
// are unchanged.
func TestResumeTCP(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	bob := join(t, addr, "bob")
	c := dial(t, addr)
	c.ExpectName()
	c.Send("alice +resume\n")
	c.Expect("Connected to server!")
	bob.Expect("alice joined!")
	bob.Send("one\n")
	bob.Expect("bob: one")
	var line string
	c.ExpectFunc("a positioned line", func(s string) bool { line = s; return strings.HasSuffix(s, " bob: one") })
	pos, rest, _ := strings.Cut(line, " ")
	if rest != "bob: one" {
		t.Fatalf("positioned line %q", line)
	}
	f := strings.Split(pos[1:], "/")
	if len(f) != 3 || f[0] != "lobby" {
		t.Fatalf("position %q", pos)
	}
	id, ms := f[1], f[2]
	c.Conn.Close()
	bob.Expect("alice left!")
	carol := join(t, addr, "carol")
	bob.Send("two\n")
	bob.Send("three\n")
	carol.Expect("bob: two") // a plain client sees no positions
	carol.Expect("bob: three")

	c = dial(t, addr)
	c.ExpectName()
	c.Send("alice +resume=lobby:" + ms + ":" + id + "\n")
	c.Expect("Connected to server!")
	c.Expect("--- 2 lines you missed in lobby ---")
	for _, want := range []string{"bob: two", "bob: three"} {
		l := c.ExpectPrefix("@")
		if _, rest, _ := strings.Cut(l, " "); !strings.HasPrefix(rest, "[") || !strings.HasSuffix(rest, "] "+want) {
			t.Errorf("missed line %q, want a positioned history line of %q", l, want)
		}
	}
	c.Expect("--- live ---")
	bob.Send("four\n")
	var l string
	c.ExpectFunc("the live line", func(s string) bool { l = s; return strings.HasSuffix(s, "bob: four") })
	if !strings.HasPrefix(l, "@lobby/") {
		t.Errorf("live line %q", l)
	}
}
