package gateway

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// This file turns what the protocol core says into frames: the bytes one
// client receives for one message. A codec is one wire encoding: lineCodec
// for classic TCP clients (one text line per frame), jsonCodec for WebSocket
// clients (one JSON object per frame). Frames are immutable once made: the
// same frame may sit in many sessions' queues.

// codec renders the core's messages in one wire encoding. Its methods are
// safe for concurrent use and never return a frame that is later modified.
type codec interface {
	// transportSlot is this codec's transport, an index of the per-transport
	// metrics (transportNames).
	transportSlot() int
	// encoding is the encoding of room events this client receives, an
	// index of event.frames (encLine...). Safe from any goroutine; it may
	// change while the session lives (an IRC client's capabilities).
	encoding() int
	// skips reports whether this client is not sent ev at all (an IRC
	// client's own lines without echo-message); called once per event
	// delivered to the client, before it is queued. Safe from any
	// goroutine; must not block.
	skips(ev *event) bool
	// history renders the replay of a room's recent chat lines on joining
	// it; evs may be empty.
	history(room string, evs []event, now time.Time) [][]byte
	// missed renders the replay, to a client that resumed (resume.go), of
	// the lines it missed; skipped older ones were left out, and gone says
	// the stored lines no longer reach back to the client's position.
	missed(room string, evs []event, skipped int, gone bool, now time.Time) [][]byte
	// welcome says the nickname was accepted and the client is joining room.
	welcome(nick, room string) []byte
	// notice is a reply or notice from the server; text has no prefix.
	notice(text string) []byte
	// errorMsg says something was refused; code is a short stable token
	// (may be empty), text says why and what to do.
	errorMsg(code, text string) []byte
	// who is the reply to /who (ops: the operators, of any room), rooms
	// the reply to /rooms (names sorted; topics by room, may be nil).
	who(room string, nicks, ops []string) []byte
	rooms(names []string, counts map[string]int, topics map[string]string) []byte
	// private is a private message; outgoing is the sender's own copy.
	private(from, to, text string, at time.Time, outgoing bool) []byte
}

// Error codes carried by jsonCodec error messages (docs/protocol.md).
const (
	codeNickInvalid    = "nick_invalid"
	codeNickTaken      = "nick_taken"
	codeTooLong        = "too_long"
	codeFlood          = "flood"
	codeUnavailable    = "unavailable"
	codeBadMessage     = "bad_message"
	codeUnknownCommand = "unknown_command"
	codeUsage          = "usage"
	codeNoSuchNick     = "no_such_nick"
	codeBadRoom        = "bad_room"
	codeSlowConsumer   = "slow_consumer"
	codeRefused        = "refused"
	codeTimeout        = "timeout"
	codeBadPassword    = "bad_password"
)

// numTransports is the number of transports (TCP, WebSocket, IRC), for
// metrics.
const numTransports = 3

// The encodings of a room event, the indexes of event.frames. A transport
// may have several: one per set of client options that changes the bytes
// sent, so that every frame is sent as it is, and a client's queue counts
// exactly the bytes it will be written (--max-pending).
const (
	encLine    = iota // TCP lines (lineCodec)
	encJSON           // WebSocket JSON (jsonCodec)
	encIRC            // IRC, without tags (ircCodec)
	encIRCTime        // IRC with the server-time tag (ircCodec)
	encPos            // TCP lines with positions (posCodec)

	numEncodings
)

// encodeEvent renders ev in encoding enc, or nil for a kind it does not know.
func encodeEvent(enc int, ev *event) []byte {
	switch enc {
	case encLine:
		return lineCodec{}.event(ev)
	case encJSON:
		return jsonCodec{}.event(ev)
	case encIRC:
		return ircEvent(ev, false)
	case encIRCTime:
		return ircEvent(ev, true)
	case encPos:
		return posCodec{}.event(ev)
	}
	return nil
}

// event is one room event on its way to a room's local members. The room's
// bus callback builds one per event and asks it for each member's frame:
// each encoding is made at most once, on first use, and the same bytes are
// queued to every member that uses it. A room's callback runs on one
// goroutine and the event never leaves it, so the lazy fields need no lock.
type event struct {
	id, kind, room, nick, text string
	at                         time.Time

	frames [numEncodings][]byte
	made   [numEncodings]bool
}

// frame returns ev in c's encoding, encoding it on first use, or nil when
// the client is not sent it (codec.skips).
func (ev *event) frame(c codec) []byte {
	if c.skips(ev) {
		return nil
	}
	i := c.encoding()
	if !ev.made[i] {
		ev.frames[i] = encodeEvent(i, ev)
		ev.made[i] = true
	}
	return ev.frames[i]
}

// lineCodec is the classic line protocol: every frame is one line ending in
// "\n". Its lines fall in classes that no user input can cross
// (docs/protocol.md, "Line classes"): the server's notices and replies start
// with "*** ", errors with "ERROR ", history frames with "--- " and history
// lines with "[", which no nickname can; a user's lines start with its
// nickname ("bob: hi", "bob joined!") or with "* " and its nickname (an
// action). Nicknames hold no "*", ":" or space, do not start with "-", and
// never read as the server (validNick).
type lineCodec struct{}

func (lineCodec) transportSlot() int { return 0 }
func (lineCodec) encoding() int      { return encLine }
func (lineCodec) skips(*event) bool  { return false }

func (lineCodec) event(ev *event) []byte { return formatEvent(ev.kind, ev.nick, ev.text) }

func (lineCodec) history(room string, evs []event, now time.Time) [][]byte {
	if len(evs) == 0 {
		return nil
	}
	frames := make([][]byte, 0, len(evs)+2)
	frames = append(frames, fmt.Appendf(nil, "--- last %d lines of %s ---\n", len(evs), room))
	for i := range evs {
		if line := formatHistory(evs[i].kind, evs[i].nick, evs[i].text, evs[i].at, now); line != nil {
			frames = append(frames, line)
		}
	}
	return append(frames, lineLive)
}

func (lineCodec) missed(room string, evs []event, skipped int, gone bool, now time.Time) [][]byte {
	return missedLines(room, evs, skipped, gone, func(ev *event) []byte {
		return formatHistory(ev.kind, ev.nick, ev.text, ev.at, now)
	})
}

// missedLines frames the lines a resuming client missed: a "--- " header
// saying how many (and what was left out), the lines, "--- live ---".
// Nothing when there is nothing to say.
func missedLines(room string, evs []event, skipped int, gone bool, line func(*event) []byte) [][]byte {
	if len(evs) == 0 && skipped == 0 && !gone {
		return nil
	}
	head := fmt.Sprintf("--- %d lines you missed in %s", len(evs), room)
	if skipped > 0 {
		head += fmt.Sprintf(" (%d older ones skipped)", skipped)
	}
	if gone {
		head += " (older ones are no longer stored)"
	}
	frames := make([][]byte, 0, len(evs)+2)
	frames = append(frames, []byte(head+" ---\n"))
	for i := range evs {
		if l := line(&evs[i]); l != nil {
			frames = append(frames, l)
		}
	}
	return append(frames, lineLive)
}

// posCodec is lineCodec for a TCP client that asked for positions (the
// " +resume" extension, resume.go): each room event line, live or
// replayed, starts with "@<room>/<id>/<unix ms> ", which no user line can
// (nicknames hold no "@"). Only clients that asked get it.
type posCodec struct{ lineCodec }

func (posCodec) encoding() int { return encPos }

func posPrefix(ev *event, line []byte) []byte {
	if line == nil || ev.id == "" {
		return line
	}
	b := make([]byte, 0, len(ev.room)+len(ev.id)+24+len(line))
	b = append(b, '@')
	b = append(b, ev.room...)
	b = append(b, '/')
	b = append(b, ev.id...)
	b = append(b, '/')
	b = strconv.AppendInt(b, ev.at.UnixMilli(), 10)
	b = append(b, ' ')
	return append(b, line...)
}

func (posCodec) event(ev *event) []byte { return posPrefix(ev, formatEvent(ev.kind, ev.nick, ev.text)) }

func (posCodec) history(room string, evs []event, now time.Time) [][]byte {
	if len(evs) == 0 {
		return nil
	}
	frames := make([][]byte, 0, len(evs)+2)
	frames = append(frames, fmt.Appendf(nil, "--- last %d lines of %s ---\n", len(evs), room))
	for i := range evs {
		if line := formatHistory(evs[i].kind, evs[i].nick, evs[i].text, evs[i].at, now); line != nil {
			frames = append(frames, posPrefix(&evs[i], line))
		}
	}
	return append(frames, lineLive)
}

func (posCodec) missed(room string, evs []event, skipped int, gone bool, now time.Time) [][]byte {
	return missedLines(room, evs, skipped, gone, func(ev *event) []byte {
		return posPrefix(ev, formatHistory(ev.kind, ev.nick, ev.text, ev.at, now))
	})
}

func (lineCodec) welcome(string, string) []byte { return lineConnected }

// noticePrefix starts every server notice and reply of the classic
// protocol. A user's action starts with "* " and a nickname, which holds no
// "*": no user line starts with it.
const noticePrefix = "*** "

func (lineCodec) notice(text string) []byte { return concat(noticePrefix, text, "\n") }

func (lineCodec) errorMsg(_, text string) []byte { return concat("ERROR ", text, "\n") }

func (c lineCodec) who(room string, nicks, ops []string) []byte {
	return c.notice(whoText(room, nicks, ops))
}

func (c lineCodec) rooms(names []string, counts map[string]int, topics map[string]string) []byte {
	return c.notice(roomsText(names, counts, topics))
}

func (lineCodec) private(from, to, text string, _ time.Time, outgoing bool) []byte {
	if outgoing {
		return concat(noticePrefix, "private to ", to, ": ", text, "\n")
	}
	return concat(noticePrefix, "private from ", from, ": ", text, "\n")
}

// whoText lists nicks, operators marked with "@" (which no nickname
// holds).
func whoText(room string, nicks, ops []string) string {
	return fmt.Sprintf("in %s (%d): %s", room, len(nicks), strings.Join(markOps(nicks, ops), ", "))
}

func markOps(nicks, ops []string) []string {
	if len(ops) == 0 {
		return nicks
	}
	out := make([]string, len(nicks))
	for i, n := range nicks {
		if containsFold(ops, n) {
			n = "@" + n
		}
		out[i] = n
	}
	return out
}

// roomsText lists the rooms, their sizes and topics: "lobby (2) [topic]".
func roomsText(names []string, counts map[string]int, topics map[string]string) string {
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s (%d)", name, counts[name])
		if t := topics[name]; t != "" {
			parts[i] += " [" + t + "]"
		}
	}
	return "rooms: " + strings.Join(parts, ", ")
}

// Fixed lines of the classic protocol.
var (
	lineName      = []byte("NAME")
	lineConnected = []byte("Connected to server!\n")
	lineLive      = []byte("--- live ---\n")
)

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
		return concat(noticePrefix, nick, " is now known as ", text, "\n")
	case KindKick:
		by, reason, _ := strings.Cut(text, " ")
		if reason != "" {
			reason = ": " + reason
		}
		return concat(noticePrefix, nick, " was kicked by ", by, reason, "\n")
	case KindTopic:
		if text == "" {
			return concat(noticePrefix, nick, " cleared the topic\n")
		}
		return concat(noticePrefix, nick, " set the topic: ", text, "\n")
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
