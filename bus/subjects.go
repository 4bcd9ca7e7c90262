package bus

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Subject layout. Every subject this package uses is built here.
//
//	chat.v1.room.<room>.msg    chat lines (say, me); captured by the history stream
//	chat.v1.room.<room>.event  notices (join, leave, nick); not stored
//	chat.v1.user.<nickkey>     private messages, sent as requests
//	chat.v1.mod.<nickkey>      moderation orders (kick) for a user, as requests
const (
	subjectPrefix = "chat.v1"
	roomPrefix    = subjectPrefix + ".room."
	userPrefix    = subjectPrefix + ".user."
	modPrefix     = subjectPrefix + ".mod."

	// HistorySubjects is the history stream's subject filter.
	HistorySubjects = roomPrefix + "*.msg"
	// UserSubjects is the one subscription every gateway holds for private
	// messages.
	UserSubjects = userPrefix + "*"
	// ModSubjects is the one subscription every gateway holds for
	// moderation orders.
	ModSubjects = modPrefix + "*"
)

// MaxRoomLen is the longest room name accepted, in bytes.
const MaxRoomLen = 32

// MaxNickLen is the longest nickname accepted, in bytes. The gateway's own
// rule is stricter; this only keeps keys and subjects bounded.
const MaxNickLen = 128

// ValidToken reports whether s can be used as one token of a subject: it
// must be non-empty and contain no '.', '*', '>' or white space.
func ValidToken(s string) error {
	if s == "" {
		return fmt.Errorf("%w: empty", ErrInvalidToken)
	}
	for _, r := range s {
		switch {
		case r == '.' || r == '*' || r == '>':
			return fmt.Errorf("%w: %q contains %q", ErrInvalidToken, s, r)
		case r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r):
			return fmt.Errorf("%w: %q contains white space, a control character or invalid UTF-8", ErrInvalidToken, s)
		}
	}
	return nil
}

// ValidRoom reports whether room is a valid room name: 1–MaxRoomLen bytes
// of [a-z0-9_-] (the gateway lower-cases names before they get here). Such a
// name is always a valid subject token and KV key part.
func ValidRoom(room string) error {
	if err := ValidToken(room); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRoom, err)
	}
	if len(room) > MaxRoomLen {
		return fmt.Errorf("%w: %q must be 1-%d characters", ErrInvalidRoom, room, MaxRoomLen)
	}
	for i := 0; i < len(room); i++ {
		if !keyByte(room[i]) {
			return fmt.Errorf("%w: %q may only contain a-z, 0-9, _ and -", ErrInvalidRoom, room)
		}
	}
	return nil
}

// keyByte reports whether b is written as itself in a nickkey.
func keyByte(b byte) bool {
	return 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '_' || b == '-'
}

// NickKey returns the key that identifies nick in subjects and KV buckets:
// the nick lower-cased, with every byte outside [a-z0-9_-] written as '='
// and two lower-case hex digits ("Al.ice" → "al=2eice"). Nicks that differ
// only in case share a key; different nicks never do.
func NickKey(nick string) (string, error) {
	if nick == "" || len(nick) > MaxNickLen || !utf8.ValidString(nick) {
		return "", fmt.Errorf("%w: %q", ErrInvalidNick, nick)
	}
	const hex = "0123456789abcdef"
	low := strings.ToLower(nick)
	var b strings.Builder
	b.Grow(len(low) + 8)
	for i := 0; i < len(low); i++ {
		c := low[i]
		if keyByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String(), nil
}

// RoomSubject returns the one subject a gateway subscribes to for room:
// chat.v1.room.<room>.* (both chat lines and notices, so that order per
// publisher holds across the two).
func RoomSubject(room string) (string, error) {
	if err := ValidRoom(room); err != nil {
		return "", err
	}
	return roomPrefix + room + ".*", nil
}

// EventSubject returns the subject an event of kind is published on in room:
// chat.v1.room.<room>.msg for chat lines (KindSay, KindMe) and
// chat.v1.room.<room>.event for notices (KindJoin, KindLeave, KindNick).
func EventSubject(room, kind string) (string, error) {
	if err := ValidRoom(room); err != nil {
		return "", err
	}
	switch kind {
	case KindSay, KindMe:
		return roomPrefix + room + ".msg", nil
	case KindJoin, KindLeave, KindNick, KindKick, KindTopic:
		return roomPrefix + room + ".event", nil
	}
	return "", fmt.Errorf("%w: %q", ErrInvalidKind, kind)
}

// historySubject is the subject of room's stored chat lines.
func historySubject(room string) (string, error) {
	return EventSubject(room, KindSay)
}

// UserSubject returns chat.v1.user.<nickkey>, where private messages to nick
// are sent.
func UserSubject(nick string) (string, error) {
	key, err := NickKey(nick)
	if err != nil {
		return "", err
	}
	return userPrefix + key, nil
}

// ModSubject returns chat.v1.mod.<nickkey>, where moderation orders for
// nick are sent.
func ModSubject(nick string) (string, error) {
	key, err := NickKey(nick)
	if err != nil {
		return "", err
	}
	return modPrefix + key, nil
}

// presenceKey is the chat_presence key for nick in room: <room>.<nickkey>.
func presenceKey(room, nick string) (string, error) {
	if err := ValidRoom(room); err != nil {
		return "", err
	}
	key, err := NickKey(nick)
	if err != nil {
		return "", err
	}
	return room + "." + key, nil
}
