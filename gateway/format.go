package gateway

import "time"

// formatEvent renders a room event as the line classic clients receive, or
// nil for an unknown kind. It allocates once; the result is shared by every
// member the event is delivered to.
func formatEvent(kind, nick, text string) []byte {
	switch kind {
	case KindSay:
		return concat(nick, ": ", text, "\n")
	case KindMe:
		return concat("* ", nick, " ", text, "\n")
	case KindJoin:
		return concat(nick, " joined!\n")
	case KindLeave:
		return concat(nick, " left!\n")
	case KindNick:
		return concat("* ", nick, " is now known as ", text, "\n")
	}
	return nil
}

// formatHistory renders a replayed chat line with the time it was sent, so
// that it cannot be mistaken for a live one: "[15:04] bob: hi". Lines older
// than a day carry the date too.
func formatHistory(kind, nick, text string, at, now time.Time) []byte {
	layout := "15:04"
	if now.Sub(at) > 24*time.Hour {
		layout = "Jan _2 15:04"
	}
	stamp := "[" + at.Local().Format(layout) + "] "
	switch kind {
	case KindSay:
		return concat(stamp, nick, ": ", text, "\n")
	case KindMe:
		return concat(stamp, "* ", nick, " ", text, "\n")
	}
	return nil
}

func concat(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
