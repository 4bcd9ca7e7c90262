package termclient

import (
	"slices"
	"testing"
)

func TestOwnEcho(t *testing.T) {
	for typed, want := range map[string]string{
		"hi":             "alice: hi",
		"  hi  ":         "alice: hi",
		"alice: hi":      "alice: hi", // the server strips one own prefix
		"//etc/passwd":   "alice: /etc/passwd",
		"/me waves":      "* alice waves",
		"/ME  waves ":    "* alice waves",
		"/me":            "",
		"/who":           "",
		"/msg bob psst":  "",
		"   ":            "",
		"bob: not mine":  "alice: bob: not mine",
		"alice:no space": "alice: alice:no space",
	} {
		if got := ownEcho(typed, "alice"); got != want {
			t.Errorf("ownEcho(%q) = %q, want %q", typed, got, want)
		}
	}
}

func replayOf(ids []string, texts ...string) []replayLine {
	r := make([]replayLine, len(texts))
	for i, tx := range texts {
		r[i] = replayLine{line: "[12:01] " + tx, seenLine: seenLine{text: tx}}
		if ids != nil {
			r[i].id = ids[i]
		}
	}
	return r
}

func texts(r []replayLine) []string {
	var out []string
	for _, l := range r {
		out = append(out, l.text)
	}
	return out
}

// A replay leaves out the lines on the screen: by id when both have ids,
// else what comes up to the latest line shown that it holds.
func TestScreenUnseen(t *testing.T) {
	var s screen
	for _, tx := range []string{"bob: ok", "bob: one", "bob: ok"} {
		s.add("", tx)
	}
	keep, skipped := s.unseen(replayOf(nil, "bob: ok", "bob: one", "bob: ok", "bob: two", "bob: ok"))
	if got := texts(keep); !slices.Equal(got, []string{"bob: two", "bob: ok"}) || skipped != 3 {
		t.Errorf("by text: kept %q, skipped %d", got, skipped)
	}
	// Nothing in common: everything is new.
	keep, skipped = s.unseen(replayOf(nil, "carol: a", "carol: b"))
	if len(keep) != 2 || skipped != 0 {
		t.Errorf("nothing in common: kept %q, skipped %d", texts(keep), skipped)
	}

	// A replay read right after a reconnect may end before the last lines
	// shown (the server had not stored them yet): nothing in it is new.
	var lag screen
	for _, tx := range []string{"bob: one", "bob: two", "bob: three"} {
		lag.add("", tx)
	}
	keep, skipped = lag.unseen(replayOf(nil, "bob: one"))
	if len(keep) != 0 || skipped != 1 {
		t.Errorf("a replay behind the screen: kept %q, skipped %d", texts(keep), skipped)
	}
	keep, skipped = lag.unseen(replayOf(nil, "alice: zero", "bob: one", "bob: two"))
	if len(keep) != 0 || skipped != 3 {
		t.Errorf("a replay behind the screen, from before it: kept %q, skipped %d", texts(keep), skipped)
	}

	var ids screen
	ids.add("g.1", "bob: ok")
	ids.add("g.2", "bob: ok")
	keep, skipped = ids.unseen(replayOf([]string{"g.1", "g.2", "g.3"}, "bob: ok", "bob: ok", "bob: ok"))
	if len(keep) != 1 || keep[0].id != "g.3" || skipped != 2 {
		t.Errorf("by id: kept %v, skipped %d", keep, skipped)
	}
}

func TestReplayRoom(t *testing.T) {
	for line, want := range map[string]string{
		"--- last 20 lines of lobby ---":                               "lobby",
		"--- 2 lines you missed in dev ---":                            "dev",
		"--- 500 lines you missed in dev (120 older ones skipped) ---": "dev",
		"--- live ---":                   "",
		"bob: --- last 2 lines of x ---": "",
	} {
		if got, _ := replayRoom(line); got != want {
			t.Errorf("replayRoom(%q) = %q, want %q", line, got, want)
		}
	}
}
