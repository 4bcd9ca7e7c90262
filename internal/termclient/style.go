package termclient

import (
	"strings"

	"github.com/chatd/chatd/internal/textsafe"
)

// kind is what a line shown to the user is, for styling.
type kind uint8

const (
	kindChat    kind = iota // nick: text
	kindOwn                 // a chat line of the user's own
	kindAction              // * nick action
	kindNotice              // *** ... from the server
	kindPrivate             // *** private from/to ...
	kindEvent               // X joined! / X left! / Connected to server!
	kindFrame               // --- history frame ---
	kindHistory             // [hh:mm] replayed line
	kindError               // ERROR ...
	kindLocal               // -!- the client's own messages
)

// SGR colour codes. Only the basic and bright colours, which every terminal
// with colour (Windows consoles with virtual terminal processing included)
// shows.
const (
	sgrReset   = "\x1b[0m"
	sgrRed     = "\x1b[31m"
	sgrYellow  = "\x1b[33m"
	sgrMagenta = "\x1b[35m"
	sgrCyan    = "\x1b[36m"
	sgrGray    = "\x1b[90m" // bright black: "dim" that Windows consoles show too
	sgrOwn     = "\x1b[1;32m"
)

var colors = [...]string{
	kindChat:    "",
	kindOwn:     sgrOwn,
	kindAction:  "",
	kindNotice:  sgrCyan,
	kindPrivate: sgrMagenta,
	kindEvent:   sgrGray,
	kindFrame:   sgrGray,
	kindHistory: sgrGray,
	kindError:   sgrRed,
	kindLocal:   sgrYellow,
}

// render returns line as shown: coloured by its kind when color is set.
// line must already be sanitized.
func render(k kind, line string, color bool) string {
	if !color || colors[k] == "" {
		return line
	}
	return colors[k] + line + sgrReset
}

// classify tells what a (sanitized) server line is, by the line classes of
// docs/protocol.md. nick is the user's nickname, "" before the handshake.
// Nicknames cannot contain "*", spaces or colons, start with "-" or be
// "ERROR", so no chat, action or membership line can pass for another kind.
func classify(line, nick string) kind {
	switch {
	case strings.HasPrefix(line, "ERROR "):
		return kindError
	case strings.HasPrefix(line, noticePrefix+"private from "), strings.HasPrefix(line, noticePrefix+"private to "):
		return kindPrivate
	case strings.HasPrefix(line, noticePrefix):
		return kindNotice
	case strings.HasPrefix(line, "* "):
		return kindAction
	case strings.HasPrefix(line, "--- "):
		return kindFrame
	case line == "Connected to server!":
		return kindEvent
	case isHistory(line):
		return kindHistory
	case isJoinLeave(line):
		return kindEvent
	case nick != "" && len(line) > len(nick)+1 && strings.EqualFold(line[:len(nick)], nick) &&
		strings.HasPrefix(line[len(nick):], ": "):
		return kindOwn
	}
	return kindChat
}

// isHistory reports whether line is a replayed history line: "[12:01] ..."
// or "[Nov 21 12:01] ...".
func isHistory(line string) bool {
	if !strings.HasPrefix(line, "[") {
		return false
	}
	end := strings.Index(line, "] ")
	if end < 0 || end > 16 {
		return false
	}
	ts := line[1:end]
	return len(ts) >= 5 && ts[len(ts)-3] == ':' && strings.IndexFunc(ts, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r == ':' || r == ' ' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z')
	}) < 0
}

// isJoinLeave reports whether line is "<nick> joined!" or "<nick> left!".
func isJoinLeave(line string) bool {
	var who string
	switch {
	case strings.HasSuffix(line, " joined!"):
		who = strings.TrimSuffix(line, " joined!")
	case strings.HasSuffix(line, " left!"):
		who = strings.TrimSuffix(line, " left!")
	default:
		return false
	}
	return who != "" && !strings.ContainsAny(who, " :")
}

// sanitize makes a line safe to print: the server already strips control
// characters, but the client does not rely on it (it may talk to another
// server, or through something that is not chatd). It is the server's own
// sanitizer (textsafe.Sanitize), except that a line keeps the white space
// at either end, as the server sent it.
func sanitize(line string) string {
	return textsafe.Options{KeepSpace: true}.Sanitize([]byte(line))
}
