package gateway

import (
	"encoding/json"
	"math"
	"time"
)

// Unread counts (docs/protocol.md, "Unread"). A WebSocket client is in one
// room at a time; to show how many lines wait in rooms it was in before, it
// sends its positions there (resume tokens, resume.go) in an "unread"
// message, and the gateway counts, among each room's recent stored lines
// (the --history of a join), the chat lines after the position that others
// sent. A query costs what a join's history replay does per room; at most
// Config.UnreadRooms rooms a query and one query per Config.UnreadEvery
// bound it.

// unreadCount is one room's answer: count lines after the position, and
// more when there may be more than that (every recent line was after it).
type unreadCount struct {
	Room  string `json:"room"`
	Count int    `json:"count"`
	More  bool   `json:"more"`
}

// unread answers an "unread" message. Reader goroutine only.
func (t *wsConn) unread(s *Session, positions []string) {
	now := t.cfg.Now()
	switch {
	case t.cfg.UnreadRooms == 0:
		s.errorf(codeUsage, "unread: unread counts are off on this server")
		return
	case len(positions) > t.cfg.UnreadRooms:
		s.errorf(codeUsage, "unread: at most %d rooms at a time", t.cfg.UnreadRooms)
		return
	case !t.lastUnread.IsZero() && now.Sub(t.lastUnread) < t.cfg.UnreadEvery:
		s.errorf(codeUsage, "unread: at most one query every %v", t.cfg.UnreadEvery)
		return
	}
	t.lastUnread = now
	out := struct {
		Type  string        `json:"type"`
		Rooms []unreadCount `json:"rooms"`
	}{Type: "unread", Rooms: []unreadCount{}}
	n := t.cfg.History
	for _, tok := range positions {
		// Any age will do: only lines after the position count.
		p, err := parseResume(tok, now, math.MaxInt64)
		if err != nil {
			s.errorf(codeUsage, "unread: a position is a resume token, <room>:<unix ms>:<gateway>.<counter>,… (%v)", err)
			return
		}
		if p.room == s.room || n <= 0 {
			continue
		}
		c := unreadCount{Room: p.room}
		read, allAfter := 0, true
		ctx, cancel := s.busContext()
		err = s.srv.bus.History(ctx, p.room, n, func(id, kind, nick, text string, at time.Time) {
			read++
			after := at.After(p.since)
			if gw, k, ok := splitEventID(id); ok {
				if seen, known := p.last[gw]; known {
					after = k > seen
				}
			}
			allAfter = allAfter && after
			if after && (kind == KindSay || kind == KindMe) && nick != s.nick {
				c.Count++
			}
		})
		cancel()
		if err != nil {
			s.log.Warn("unread", "room", p.room, "err", err)
			continue
		}
		c.More = read >= n && allAfter
		out.Rooms = append(out.Rooms, c)
	}
	frame, err := json.Marshal(out)
	if err != nil {
		return
	}
	s.deliver(frame, "")
}
