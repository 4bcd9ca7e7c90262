package termclient

import (
	"strings"
	"unicode/utf8"
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

// sanitize makes a line from the server safe to print: the server already
// strips control characters, but the client does not rely on it (it may
// talk to another server, or through something that is not chatd). It
// removes whole terminal escape sequences (CSI, OSC, DCS/SOS/PM/APC strings
// and two-byte ESC sequences, in their 7-bit and 8-bit forms), every other
// C0 and C1 control and DEL, and the Unicode bidirectional controls; a TAB
// becomes a space and invalid UTF-8 becomes U+FFFD.
func sanitize(line string) string {
	clean := true
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return line
	}

	const (
		ground = iota
		esc    // after ESC
		inter  // ESC and intermediates
		csi    // control sequence
		osc    // OSC: ends at BEL or ST
		str    // DCS, SOS, PM, APC: end at ST
	)
	var b strings.Builder
	b.Grow(len(line))
	st := ground
	for i := 0; i < len(line); {
		r, size := utf8.DecodeRuneInString(line[i:])
		invalid := r == utf8.RuneError && size == 1
		i += size
	again:
		switch {
		case r == 0x1b:
			st = esc
			continue
		case r == 0x18 || r == 0x1a: // CAN, SUB cancel a sequence
			st = ground
			continue
		case r >= 0x80 && r <= 0x9f: // C1 controls
			switch r {
			case 0x9b:
				st = csi
			case 0x9d:
				st = osc
			case 0x90, 0x98, 0x9e, 0x9f:
				st = str
			default:
				st = ground
			}
			continue
		}
		switch st {
		case esc, inter:
			switch {
			case r >= 0x20 && r <= 0x2f:
				st = inter
			case st == esc && r == '[':
				st = csi
			case st == esc && r == ']':
				st = osc
			case st == esc && (r == 'P' || r == 'X' || r == '^' || r == '_'):
				st = str
			case r >= 0x30 && r <= 0x7e:
				st = ground
			case r < 0x20 || r == 0x7f:
			default:
				st = ground
				goto again
			}
			continue
		case csi:
			switch {
			case r >= 0x20 && r <= 0x3f:
			case r >= 0x40 && r <= 0x7e:
				st = ground
			case r < 0x20 || r == 0x7f:
			default:
				st = ground
				goto again
			}
			continue
		case osc:
			if r == 0x07 {
				st = ground
			}
			continue
		case str:
			continue
		}
		switch {
		case invalid:
			b.WriteRune(utf8.RuneError)
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f, r == 0x061c:
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
