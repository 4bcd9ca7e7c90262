package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestAppendJSONString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"hi", `"hi"`},
		{`say "hi" \o/`, `"say \"hi\" \\o/"`},
		{"<script>&</script>", `"<script>&</script>"`}, // not HTML-escaped: the page uses textContent
		{"a\nb\rc\td\x00e\x1bf\x7f", `"a\nb\rc\td\u0000e\u001bf` + "\x7f" + `"`},
		{"héllo ✓ 😀", `"héllo ✓ 😀"`},
		{"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"caf\xe9!", `"caf\ufffd!"`},
	} {
		if got := string(appendJSONString(nil, tc.in)); got != tc.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// Every frame jsonCodec makes is one JSON object with a type.
func TestJSONCodecFrames(t *testing.T) {
	c := jsonCodec{maxLine: 4096}
	at := time.UnixMilli(1795000000123)
	ev := &event{id: "x.1", kind: KindSay, room: "lobby", nick: "bob", text: `<b>"hi"</b>`, at: at}
	frames := map[string][]byte{
		"event":   c.event(ev),
		"welcome": c.welcome("alice", "lobby"),
		"notice":  c.notice("you are already in dev"),
		"error":   c.errorMsg(codeNickTaken, "nickname bob is taken, choose another"),
		"errnone": c.errorMsg("", "no code"),
		"who":     c.who("lobby", []string{"alice", "bob"}, []string{"bob"}),
		"whonone": c.who("lobby", nil, nil),
		"rooms":   c.rooms([]string{"dev", "lobby"}, map[string]int{"dev": 1, "lobby": 2}, map[string]string{"dev": "the topic"}),
		"private": c.private("bob", "alice", "psst", at, false),
		"pong":    framePong,
	}
	hist := c.history("lobby", []event{*ev, {kind: KindMe, nick: "carol", text: "waves", at: at}, {kind: KindJoin, nick: "x"}}, at)
	if len(hist) != 1 {
		t.Fatalf("history: %d frames, want 1", len(hist))
	}
	frames["history"] = hist[0]
	frames["histnone"] = c.history("dev", nil, at)[0]
	frames["missed"] = c.missed("lobby", []event{*ev}, 2, true, at)[0]
	for name, f := range frames {
		var m map[string]any
		if err := json.Unmarshal(f, &m); err != nil {
			t.Errorf("%s: %s: %v", name, f, err)
			continue
		}
		if _, ok := m["type"].(string); !ok {
			t.Errorf("%s: %s has no type", name, f)
		}
	}
	for name, want := range map[string]string{
		"event":    `{"type":"event","kind":"say","id":"x.1","room":"lobby","nick":"bob","text":"<b>\"hi\"</b>","ts":1795000000123}`,
		"welcome":  `{"type":"welcome","v":1,"nick":"alice","room":"lobby","max_line":4096}`,
		"error":    `{"type":"error","code":"nick_taken","text":"nickname bob is taken, choose another"}`,
		"errnone":  `{"type":"error","text":"no code"}`,
		"who":      `{"type":"notice","cmd":"who","text":"in lobby (2): alice, @bob","ops":["bob"],"room":"lobby","nicks":["alice","bob"]}`,
		"whonone":  `{"type":"notice","cmd":"who","text":"in lobby (0): ","ops":[],"room":"lobby","nicks":[]}`,
		"rooms":    `{"type":"notice","cmd":"rooms","text":"rooms: dev (1) [the topic], lobby (2)","rooms":[{"room":"dev","count":1,"topic":"the topic"},{"room":"lobby","count":2}]}`,
		"private":  `{"type":"private","from":"bob","to":"alice","text":"psst","ts":1795000000123}`,
		"history":  `{"type":"history","room":"lobby","events":[{"kind":"say","id":"x.1","nick":"bob","text":"<b>\"hi\"</b>","ts":1795000000123},{"kind":"me","nick":"carol","text":"waves","ts":1795000000123}]}`,
		"histnone": `{"type":"history","room":"dev","events":[]}`,
		"missed":   `{"type":"history","missed":true,"skipped":2,"gone":true,"room":"lobby","events":[{"kind":"say","id":"x.1","nick":"bob","text":"<b>\"hi\"</b>","ts":1795000000123}]}`,
	} {
		if got := string(frames[name]); got != want {
			t.Errorf("%s = %s\nwant %s", name, got, want)
		}
	}
	if f := c.event(&event{kind: "shout"}); f != nil {
		t.Errorf("an unknown kind encodes to %s, want nil", f)
	}
}

// An event is encoded once per encoding, and every member with that
// encoding gets the same bytes: an IRC client's encoding depends on whether
// it asked for server-time.
func TestEventEncodedOnce(t *testing.T) {
	ev := &event{kind: KindSay, room: "dev", nick: "bob", text: "hi", at: time.Now()}
	var plain, stamped, stamped2 ircState
	stamped.caps.Store(capServerTime)
	stamped2.caps.Store(capServerTime | capEchoMessage)
	codecs := []codec{lineCodec{}, jsonCodec{}, posCodec{}, ircCodec{&plain}, ircCodec{&stamped}, ircCodec{&stamped2}}
	first := make([][]byte, len(codecs))
	for i, c := range codecs {
		first[i] = ev.frame(c)
	}
	if allocs := testing.AllocsPerRun(100, func() {
		for i, c := range codecs {
			if f := ev.frame(c); &f[0] != &first[i][0] {
				t.Fatal("members got different copies of one event")
			}
		}
	}); allocs != 0 {
		t.Errorf("%v allocations per delivery after the first, want 0", allocs)
	}
	if &first[4][0] != &first[5][0] {
		t.Error("two server-time clients got different copies")
	}
	if string(first[0]) != "bob: hi\n" || !strings.HasPrefix(string(first[1]), `{"type":"event"`) {
		t.Errorf("frames %q, %q", first[0], first[1])
	}
	if want := ":bob!bob@chatd PRIVMSG #dev :hi\r\n"; string(first[3]) != want || string(first[4]) != string(timeTag(nil, ev.at))+want {
		t.Errorf("IRC frames %q, %q", first[3], first[4])
	}
}
