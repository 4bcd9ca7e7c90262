package main

import (
	"slices"
	"testing"
	"time"
)

func TestParseNotice(t *testing.T) {
	for _, tc := range []struct {
		line         string
		nick         string
		joined, isOK bool
	}{
		{"alice joined!", "alice", true, true},
		{"alice left!", "alice", false, true},
		{"alice left!\r", "alice", false, true},
		{"bob: alice left!", "", false, false}, // a chat line
		{"alice: left!", "", false, false},
		{" left!", "", false, false},
		{"Connected to server!", "", false, false},
		{"*** alice is now known as bob", "", false, false},
	} {
		nick, joined, ok := parseNotice([]byte(tc.line))
		if nick != tc.nick || joined != tc.joined || ok != tc.isOK {
			t.Errorf("parseNotice(%q) = %q, %v, %v; want %q, %v, %v", tc.line, nick, joined, ok, tc.nick, tc.joined, tc.isOK)
		}
	}
}

// A user is exactly once only when every watcher of its room saw one
// left! and one joined!; each other case is counted once per user.
func TestTallyNotices(t *testing.T) {
	users := []string{"u0", "u1", "u2", "u3", "u4"}
	room := map[string]int{"u0": 0, "u1": 0, "u2": 1, "u3": 1, "u4": 1}
	watchersOf := [][]int{{0, 1}, {2, 3}}
	seen := []map[string]*noticeCount{
		{"u0": {left: 1, joined: 1}, "u1": {left: 1, joined: 1}},
		{"u0": {left: 1, joined: 1}, "u1": {left: 2, joined: 1}}, // u1: a second left!
		{"u2": {left: 1, joined: 1}, "u3": {left: 0, joined: 1}, "u4": {left: 1, joined: 3}},
		{"u2": {left: 1, joined: 1}, "u3": {left: 1, joined: 1}}, // u4 unseen here
	}
	got := tallyNotices(users, func(n string) int { return room[n] }, watchersOf, seen)
	if got.ExactlyOnce != 2 || got.Left0 != 2 || got.Left2 != 1 || got.Joined0 != 1 || got.Joined2 != 1 {
		t.Errorf("tally = %+v; want 2 exactly once, left 0: 2 (u3, u4), left 2+: 1 (u1), joined 0: 1 (u4), joined 2+: 1 (u4)", got)
	}
	want := []string{"u1 w1 left 2 joined 1", "u3 w2 left 0 joined 1", "u4 w2 left 1 joined 3", "u4 w3 left 0 joined 0"}
	if !slices.Equal(got.Examples, want) {
		t.Errorf("examples = %q; want %q", got.Examples, want)
	}
}

func TestLeaseFromCmdline(t *testing.T) {
	for _, tc := range []struct {
		cmdline string
		lease   time.Duration
		given   bool
		err     bool
	}{
		{"chatd\x00gateway\x00--listen\x00127.0.0.1:1\x00", 0, false, false},
		{"chatd\x00gateway\x00--lease\x005s\x00--listen\x00x\x00", 5 * time.Second, true, false},
		{"chatd\x00gateway\x00-lease=1500ms\x00", 1500 * time.Millisecond, true, false},
		{"chatd\x00gateway\x00--lease\x00", 0, false, true},
		{"chatd\x00gateway\x00--lease=soon\x00", 0, false, true},
	} {
		d, given, err := leaseFromCmdline([]byte(tc.cmdline))
		if d != tc.lease || given != tc.given || (err != nil) != tc.err {
			t.Errorf("leaseFromCmdline(%q) = %v, %v, %v; want %v, %v, error %v", tc.cmdline, d, given, err, tc.lease, tc.given, tc.err)
		}
	}
}

func TestRefusalKind(t *testing.T) {
	got := refusalKind([]byte("ERROR nickname bx_12 is taken, choose another\r"), "bx_12")
	if got != "ERROR nickname NICK is taken, choose another" {
		t.Errorf("refusalKind = %q", got)
	}
}
