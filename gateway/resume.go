package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Client resume (docs/protocol.md, "Resume"). A client that lost its
// gateway (a crash, a restart, a network drop) and connects again presents
// the position it had reached in its room: the time of the newest event it
// saw and, per publishing gateway, the highest event counter it saw (event
// ids are "<gateway>.<counter>"). The gateway replays from the room's
// stored lines what the client missed, exactly once and marked as missed,
// before live lines. The token is
//
//	<room>:<unix ms>:<gw>.<n>,<gw>.<n>,...
//
// A WebSocket client sends it in hello's "resume"; a TCP client adds
// " +resume=<token>" to its nickname line (" +resume" alone asks for
// positions without resuming), which also makes the gateway prefix each
// room event line it sends that client with "@<room>/<id>/<unix ms> ".
// Plain clients never send it and never see either.
//
// A token is untrusted: one that is malformed, names an invalid room, is
// older than Config.ResumeAge or from the future gets a normal join (with
// history) and one notice. A valid one only ever compares its positions
// with the lines of the room it names, which anyone may join; the replay
// reads a bounded range and sends at most Config.ResumeLines lines,
// telling the client how many older ones it skipped.

// Resumer is what a Bus offers for client resume; *bus.Conn implements it.
// Without it, a resume token gets a normal join.
type Resumer interface {
	// Missed calls fn, oldest first, for room's stored chat lines that a
	// client whose newest event was at since, and whose highest counter
	// per publishing gateway is last, has not seen: at most max of the
	// newest. skipped counts the missed lines left out by max; gone
	// reports that the room's stored lines no longer reach back to since.
	Missed(ctx context.Context, room string, since time.Time, last map[string]uint64, max int, fn DeliverFunc) (skipped int, gone bool, err error)
}

// Resume token bounds.
const (
	maxResumeToken   = 2048
	maxResumeSenders = 64
	maxGatewayID     = 64
)

// resumeToken is a parsed resume token.
type resumeToken struct {
	room  string
	since time.Time
	last  map[string]uint64
}

var errResumeMalformed = errors.New("it is malformed")

// parseResume parses and checks a resume token against now and maxAge.
func parseResume(tok string, now time.Time, maxAge time.Duration) (*resumeToken, error) {
	if len(tok) > maxResumeToken {
		return nil, errResumeMalformed
	}
	parts := strings.Split(tok, ":")
	if len(parts) != 3 {
		return nil, errResumeMalformed
	}
	room, reason := roomName(parts[0])
	if reason != "" || room != parts[0] {
		return nil, errResumeMalformed
	}
	ms, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || ms <= 0 {
		return nil, errResumeMalformed
	}
	since := time.UnixMilli(ms)
	if since.After(now.Add(time.Minute)) {
		return nil, errors.New("it is from the future")
	}
	if now.Sub(since) > maxAge {
		return nil, fmt.Errorf("it is older than %v", maxAge)
	}
	t := &resumeToken{room: room, since: since, last: make(map[string]uint64)}
	if parts[2] == "" {
		return t, nil
	}
	ids := strings.Split(parts[2], ",")
	if len(ids) > maxResumeSenders {
		return nil, errResumeMalformed
	}
	for _, id := range ids {
		gw, n, ok := splitEventID(id)
		if !ok {
			return nil, errResumeMalformed
		}
		t.last[gw] = max(t.last[gw], n)
	}
	return t, nil
}

// splitEventID splits an event id "<gateway>.<counter>"; the gateway part
// is 1-64 of [0-9a-z].
func splitEventID(id string) (gw string, n uint64, ok bool) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 || i > maxGatewayID {
		return "", 0, false
	}
	for _, c := range []byte(id[:i]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
			return "", 0, false
		}
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	return id[:i], n, err == nil
}

// takeResume reads the " +resume[=TOKEN]" extension off a TCP nickname
// line: it returns the nickname, whether the extension was there, and the
// token (may be empty).
func takeResume(line string) (nick string, ext bool, token string) {
	nick, rest, found := strings.Cut(line, " ")
	if !found {
		return line, false, ""
	}
	rest = strings.TrimSpace(rest)
	if rest == "+resume" {
		return nick, true, ""
	}
	if tok, ok := strings.CutPrefix(rest, "+resume="); ok {
		return nick, true, tok
	}
	return line, false, ""
}

// setResume records the client's resume token, if any, for the join that
// follows the handshake; a bad one is noted for one notice after it.
func (s *Session) setResume(token string) {
	s.resume, s.resumeNote = nil, ""
	if token == "" {
		return
	}
	t, err := parseResume(token, s.srv.cfg.Now(), s.srv.cfg.ResumeAge)
	if err != nil {
		s.resumeNote = "your resume position was not used (" + err.Error() + "): you joined without it"
		return
	}
	s.resume = t
}

// firstRoom is the room a new session joins: its resume token's, or the
// default room.
func (s *Session) firstRoom() string {
	if s.resume != nil {
		return s.resume.room
	}
	return s.srv.cfg.DefaultRoom
}

// missedLines reads what the client of a resume token missed in room. ok
// is false when it cannot (no Resumer, the stream unreachable): the join
// then replays history, and the client is told.
func (s *Session) missedLines(ctx context.Context, room string, t *resumeToken) (evs []event, ok bool) {
	rb, can := s.srv.bus.(Resumer)
	if !can {
		s.notice("this server cannot resume: you joined without your missed lines")
		return nil, false
	}
	skipped, gone, err := rb.Missed(ctx, room, t.since, t.last, s.srv.cfg.ResumeLines, func(id, kind, nick, text string, at time.Time) {
		if kind == KindSay || kind == KindMe {
			evs = append(evs, event{id: id, kind: kind, room: room, nick: nick, text: text, at: at})
		}
	})
	if err != nil {
		s.log.Warn("resume", "room", room, "err", err)
		s.notice("your missed lines could not be read: you joined without them")
		return nil, false
	}
	s.missedSkipped, s.missedGone = skipped, gone
	return evs, true
}

// IRC clients do not resume (they never send a token): a replay of missed
// lines, were it asked for, is a history replay.

func (c ircCodec) missed(room string, evs []event, _ int, _ bool, now time.Time) [][]byte {
	return c.history(room, evs, now)
}
