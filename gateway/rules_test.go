package gateway

import "testing"

func TestCleanText(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"", true}, {"hi", true}, {"héllo 👍🏽 你好", true}, {"a\uFFFDb", true}, {"a  b", true},
		{" hi", false}, {"hi ", false}, {"\u00a0hi", false}, {"hi\u3000", false},
		{"a\tb", false}, {"a\nb", false}, {"\x1b[2J", false}, {"ding\x07", false}, {"a\x7fb", false},
		{"\u009b2J", false}, {"a\u0085b", false}, {"\u202eevil", false}, {"a\u2066b", false},
		{"a\xffb", false}, {"caf\xc3", false}, {"\xed\xa0\x80", false},
	} {
		if got := CleanText(tt.in); got != tt.want {
			t.Errorf("CleanText(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestValidNickname(t *testing.T) {
	for _, nick := range []string{"alice", "A-b_c.[]{}|^", "x", "abcdefghijklmnopqrstuvwxyz012345"} {
		if !ValidNickname(nick) {
			t.Errorf("ValidNickname(%q) = false", nick)
		}
	}
	for _, nick := range []string{"", "al ice", "\n* server", "é", "abcdefghijklmnopqrstuvwxyz0123456", "a:b"} {
		if ValidNickname(nick) {
			t.Errorf("ValidNickname(%q) = true", nick)
		}
	}
}

func TestRulesAllocs(t *testing.T) {
	text := "chloé: ça marche, à demain 10h, salle 4.2 👍 — 你好!"
	if n := testing.AllocsPerRun(100, func() {
		if !CleanText(text) || !ValidNickname("alice") {
			t.Fatal("rejected")
		}
	}); n != 0 {
		t.Errorf("CleanText and ValidNickname allocate %v times", n)
	}
}
