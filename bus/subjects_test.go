package bus

import (
	"errors"
	"strings"
	"testing"
)

func TestNickKey(t *testing.T) {
	tests := []struct {
		nick, key string
	}{
		{"alice", "alice"},
		{"Alice", "alice"},
		{"ALICE", "alice"},
		{"bob_-42", "bob_-42"},
		{"a.b", "a=2eb"},
		{"[x]", "=5bx=5d"},
		{"{y}|^", "=7by=7d=7c=5e"},
		{"a=b", "a=3db"},     // '=' itself is escaped, so keys stay unambiguous
		{"a=3db", "a=3d3db"}, // ...and differ from the nick that spells an escape
		{"Zoë", "zo=c3=ab"},
		{"ZOË", "zo=c3=ab"},
	}
	for _, tt := range tests {
		got, err := NickKey(tt.nick)
		if err != nil || got != tt.key {
			t.Errorf("NickKey(%q) = %q, %v; want %q", tt.nick, got, err, tt.key)
		}
		if err := ValidToken(got); err != nil {
			t.Errorf("NickKey(%q) = %q is not a valid token: %v", tt.nick, got, err)
		}
	}
	for _, bad := range []string{"", "\xff", strings.Repeat("a", MaxNickLen+1)} {
		if _, err := NickKey(bad); !errors.Is(err, ErrInvalidNick) {
			t.Errorf("NickKey(%q) err = %v; want ErrInvalidNick", bad, err)
		}
	}
}

func TestValidToken(t *testing.T) {
	for _, ok := range []string{"lobby", "a", "a-b_c", "=2e", "Mixed", "é"} {
		if err := ValidToken(ok); err != nil {
			t.Errorf("ValidToken(%q) = %v; want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "*", "a>", ">", "a b", "a\tb", "a\nb", "a\x00", "a\u00a0b", "a\u2003b", "\xff"} {
		if err := ValidToken(bad); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("ValidToken(%q) = %v; want ErrInvalidToken", bad, err)
		}
	}
}

func TestValidRoom(t *testing.T) {
	for _, ok := range []string{"lobby", "a", "dev-ops_2", strings.Repeat("x", MaxRoomLen)} {
		if err := ValidRoom(ok); err != nil {
			t.Errorf("ValidRoom(%q) = %v; want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a*", "a>", "a b", "Lobby", "é", "a=b", strings.Repeat("x", MaxRoomLen+1)} {
		if err := ValidRoom(bad); !errors.Is(err, ErrInvalidRoom) {
			t.Errorf("ValidRoom(%q) = %v; want ErrInvalidRoom", bad, err)
		}
	}
}

func TestSubjects(t *testing.T) {
	tests := []struct {
		got     func() (string, error)
		subject string
	}{
		{func() (string, error) { return RoomSubject("lobby") }, "chat.v1.room.lobby.*"},
		{func() (string, error) { return EventSubject("lobby", KindSay) }, "chat.v1.room.lobby.msg"},
		{func() (string, error) { return EventSubject("lobby", KindMe) }, "chat.v1.room.lobby.msg"},
		{func() (string, error) { return EventSubject("lobby", KindJoin) }, "chat.v1.room.lobby.event"},
		{func() (string, error) { return EventSubject("lobby", KindLeave) }, "chat.v1.room.lobby.event"},
		{func() (string, error) { return EventSubject("lobby", KindNick) }, "chat.v1.room.lobby.event"},
		{func() (string, error) { return UserSubject("Al.ice") }, "chat.v1.user.al=2eice"},
		{func() (string, error) { return presenceKey("lobby", "Al.ice") }, "lobby.al=2eice"},
	}
	for i, tt := range tests {
		got, err := tt.got()
		if err != nil || got != tt.subject {
			t.Errorf("%d: got %q, %v; want %q", i, got, err, tt.subject)
		}
	}
	if _, err := EventSubject("lobby", KindMsg); !errors.Is(err, ErrInvalidKind) {
		t.Errorf("EventSubject(msg) err = %v; want ErrInvalidKind", err)
	}
	if _, err := EventSubject("lob.by", KindSay); !errors.Is(err, ErrInvalidRoom) {
		t.Errorf("EventSubject(lob.by) err = %v; want ErrInvalidRoom", err)
	}
}
