package termclient

import (
	"strings"
)

// What is on the user's screen already, so that it is not shown twice:
//
//   - The user's own lines. On a terminal the line editor leaves each line
//     the user typed on the screen ("alice> hi"), so the server's echo of
//     it ("alice: hi", or "* alice waves" for /me) is not shown again. A
//     line the server refused is followed by its ERROR, and no echo comes.
//     Lines typed while offline are sent after the reconnection and their
//     echoes are left out the same way.
//   - The room's lines. After a reconnect the server replays the room's
//     history (or, when it resumes, the lines missed); replayed lines
//     already shown are left out. With positions (resume.go) a line is
//     known by its id; without, what follows the latest line shown that
//     the replay holds (and the line before it) is new.

// maxTyped bounds the own lines waiting for their echo, maxSeen the room
// lines remembered, maxReplay the replayed lines held until a replay's end.
const (
	maxTyped  = 100
	maxSeen   = 500
	maxReplay = 1000
)

// seenLine is a room line on the screen: its id, when the server gave
// positions, and its text without stamp or position ("bob: hi").
type seenLine struct{ id, text string }

// screen is the room lines shown, oldest first.
type screen struct {
	room  string
	lines []seenLine
}

func (s *screen) add(id, text string) {
	s.lines = append(s.lines, seenLine{id, text})
	if len(s.lines) > maxSeen {
		s.lines = append(s.lines[:0], s.lines[len(s.lines)-maxSeen:]...)
	}
}

func (s *screen) hasID(id string) bool {
	for _, l := range s.lines {
		if l.id == id {
			return true
		}
	}
	return false
}

func (s *screen) anyID() bool {
	for _, l := range s.lines {
		if l.id != "" {
			return true
		}
	}
	return false
}

// unseen returns the lines of a replay of s.room that are not on the
// screen yet, and how many were left out.
func (s *screen) unseen(r []replayLine) (keep []replayLine, skipped int) {
	if len(s.lines) == 0 || len(r) == 0 {
		return r, 0
	}
	if s.anyID() && r[0].id != "" {
		for _, l := range r {
			if l.id != "" && s.hasID(l.id) {
				skipped++
				continue
			}
			keep = append(keep, l)
		}
		return keep, skipped
	}
	// No ids: the replay is the room's last lines, oldest first; what
	// follows the latest line shown that it holds is new. That is
	// usually the last line shown, but the replay may end before it: the
	// server stores a line a moment after it delivers it, so a replay read
	// right after a reconnect can lack the last lines already shown.
	for p := len(s.lines) - 1; p >= 0; p-- {
		for j := len(r) - 1; j >= 0; j-- {
			if r[j].text != s.lines[p].text {
				continue
			}
			if j > 0 && p > 0 && r[j-1].text != s.lines[p-1].text {
				continue
			}
			return r[j+1:], j + 1
		}
	}
	return r, 0
}

// replayLine is a line of a history replay: as shown, and as remembered.
type replayLine struct {
	line string
	seenLine
}

// replay is a history replay being read: its opening frame, the room it
// names, its lines.
type replay struct {
	frame string
	room  string
	lines []replayLine
}

// replayRoom returns the room a replay's opening frame names:
// "--- last 20 lines of lobby ---", "--- 2 lines you missed in lobby ---",
// "--- 500 lines you missed in lobby (120 older ones skipped) ---".
func replayRoom(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "--- ")
	if !ok || !strings.HasSuffix(rest, " ---") {
		return "", false
	}
	rest = strings.TrimSuffix(rest, " ---")
	for _, sep := range []string{" lines of ", " lines you missed in "} {
		if _, room, ok := strings.Cut(rest, sep); ok {
			room, _, _ = strings.Cut(room, " ")
			return room, room != ""
		}
	}
	return "", false
}

const liveFrame = "--- live ---"

// roomText is what a chat, action or history line says, without the
// history stamp: "[12:01] bob: hi" and "bob: hi" are both "bob: hi". ok is
// false for other lines.
func roomText(line, nick string) (string, bool) {
	switch classify(line, nick) {
	case kindChat, kindOwn, kindAction:
		return line, true
	case kindHistory:
		_, rest, _ := strings.Cut(line, "] ")
		return rest, true
	}
	return "", false
}

// ownEcho is the line the server echoes for a line the user typed, or ""
// for a command without an echo of that form.
func ownEcho(typed, nick string) string {
	text := strings.TrimSpace(typed)
	// The server strips one "<nick>: " the user put first.
	if rest, ok := strings.CutPrefix(text, nick+": "); ok {
		text = strings.TrimSpace(rest)
	}
	switch {
	case text == "":
		return ""
	case strings.HasPrefix(text, "//"):
		return nick + ": " + text[1:]
	case len(text) > 4 && strings.EqualFold(text[:4], "/me "):
		if action := strings.TrimSpace(text[4:]); action != "" {
			return "* " + nick + " " + action
		}
		return ""
	case text[0] == '/':
		return ""
	}
	return nick + ": " + text
}

// typedLine notes a line the user typed and that was sent: a /join
// changes rooms; its echo is left out when the editor left the line on the
// screen.
func (c *client) typedLine(line string) {
	if f := strings.Fields(line); len(f) == 2 && strings.EqualFold(f[0], "/join") {
		c.screen = screen{room: strings.ToLower(strings.TrimPrefix(f[1], "#"))}
	}
	if !c.cfg.Terminal {
		return
	}
	if echo := ownEcho(line, c.nick); echo != "" {
		c.typed = append(c.typed, echo)
		if len(c.typed) > maxTyped {
			c.typed = c.typed[1:]
		}
	}
}

// isTypedEcho reports whether line is the echo of a line the user typed
// (still on the screen as typed), and forgets it; earlier typed lines
// without their echo (refused) are forgotten too.
func (c *client) isTypedEcho(line string) bool {
	for i, t := range c.typed {
		if t == line {
			c.typed = c.typed[i+1:]
			return true
		}
	}
	return false
}

// display shows a line the server sent while chatting: replays are held
// until their end to leave out what is on the screen already, echoes of
// typed lines are left out, and room lines shown are remembered.
func (c *client) display(line, id string) {
	if c.replay != nil {
		if text, ok := roomText(line, c.nick); ok && classify(line, c.nick) == kindHistory {
			c.replay.lines = append(c.replay.lines, replayLine{line, seenLine{id, text}})
			if len(c.replay.lines) >= maxReplay { // shown as it comes from here on
				c.endReplay(false)
			}
			return
		}
		live := line == liveFrame
		c.endReplay(live)
		if live {
			return
		}
	}
	if room, ok := replayRoom(line); ok {
		c.replay = &replay{frame: line, room: room}
		return
	}
	text, isRoom := roomText(line, c.nick)
	if isRoom {
		if id != "" && c.pos.room != c.screen.room { // a position names the room
			c.screen = screen{room: c.pos.room}
		}
		c.screen.add(id, text)
	}
	if isRoom && c.isTypedEcho(line) {
		return
	}
	c.show(line)
}

// endReplay shows the replay held, without the lines on the screen
// already, and its closing frame when live is set.
func (c *client) endReplay(live bool) {
	r := c.replay
	c.replay = nil
	if r == nil {
		return
	}
	keep, skipped := r.lines, 0
	if c.screen.room == "" { // the room joined without a replay
		c.screen.room = r.room
	}
	if r.room == c.screen.room {
		keep, skipped = c.screen.unseen(r.lines)
	} else {
		c.screen = screen{room: r.room}
	}
	if skipped > 0 && len(keep) == 0 {
		c.tell("back in %s: its last %d lines are on the screen already", r.room, skipped)
		return
	}
	c.show(r.frame)
	if skipped > 0 {
		c.tell("%d older lines are on the screen already", skipped)
	}
	for _, l := range keep {
		c.screen.add(l.id, l.text)
		c.show(l.line)
	}
	if live {
		c.show(liveFrame)
	}
}
