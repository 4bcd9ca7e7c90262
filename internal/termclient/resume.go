package termclient

import (
	"strconv"
	"strings"
)

// Resume (chatd's TCP extension, docs/protocol.md "Resume"). With
// Config.Resume the client adds " +resume" to its nickname line; the server
// then starts each room event line it sends with "@<room>/<id>/<unix ms> ",
// which the client strips and records. After a reconnect it adds
// "=<room>:<ms>:<gw>.<n>,..." (its position), and the server replays what
// it missed. A server without the extension refuses the nickname line; the
// client then goes on without it.

// maxPositionSenders is how many publishing gateways a position keeps.
const maxPositionSenders = 32

// position is where the client is in its room: the newest event time and,
// per publishing gateway, the highest event counter seen.
type position struct {
	room  string
	ts    int64
	last  map[string]uint64
	order []string // gateways, least recently heard first
}

// take strips a position prefix from a server line and records it, and
// returns the rest and the line's id ("<gateway>.<counter>"); a line
// without one is returned as it is, with no id.
func (p *position) take(line string) (rest, id string) {
	if !strings.HasPrefix(line, "@") {
		return line, ""
	}
	head, rest, ok := strings.Cut(line[1:], " ")
	if !ok {
		return line, ""
	}
	f := strings.Split(head, "/")
	if len(f) != 3 {
		return line, ""
	}
	room, id := f[0], f[1]
	ms, err := strconv.ParseInt(f[2], 10, 64)
	dot := strings.LastIndexByte(id, '.')
	if err != nil || dot <= 0 || room == "" || strings.ContainsAny(room, ":,") {
		return line, ""
	}
	n, err := strconv.ParseUint(id[dot+1:], 10, 64)
	if err != nil {
		return line, ""
	}
	gw := id[:dot]
	if room != p.room || p.last == nil {
		*p = position{room: room, last: make(map[string]uint64)}
	}
	p.ts = max(p.ts, ms)
	if old, ok := p.last[gw]; ok {
		n = max(n, old)
		for i, g := range p.order {
			if g == gw {
				p.order = append(p.order[:i], p.order[i+1:]...)
				break
			}
		}
	}
	p.last[gw] = n
	p.order = append(p.order, gw)
	if len(p.order) > maxPositionSenders {
		delete(p.last, p.order[0])
		p.order = p.order[1:]
	}
	return rest, id
}

// token is the resume token for the position, or "" before any.
func (p *position) token() string {
	if p.room == "" || p.ts == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(p.room)
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(p.ts, 10))
	b.WriteByte(':')
	for i, gw := range p.order {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(gw)
		b.WriteByte('.')
		b.WriteString(strconv.FormatUint(p.last[gw], 10))
	}
	return b.String()
}

// nickLine is what the client answers NAME with: the nickname, with the
// resume extension when asked for and not refused.
func (c *client) nickLine() string {
	c.sentExt = c.cfg.Resume && !c.noExt
	if !c.sentExt {
		return c.nick
	}
	if tok := c.pos.token(); tok != "" {
		return c.nick + " +resume=" + tok
	}
	return c.nick + " +resume"
}
