package gateway

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// This file renders what the protocol core says as IRC lines (ircCodec).
// Every line a client receives starts with a prefix the server writes:
// ":chatd" for the server's own lines (numerics, NOTICEs, PING), and
// ":nick!nick@chatd" for what a user did. No nickname holds "!", "@", ":"
// or a space, and "chatd" is a reserved nickname, so no user's line can
// read as the server's or as another user's (docs/protocol.md, "IRC
// clients"); text is sanitized, so it holds no line end.

// ircServer is the server's name in every server line and users' host.
const ircServer = "chatd"

// Capabilities (IRCv3 CAP) a client may ask for, as bits of ircState.caps.
const (
	capServerTime uint32 = 1 << iota
	capEchoMessage
	capMessageTags
	capMultiPrefix
	capSASL
)

var ircCaps = []struct {
	name string
	bit  uint32
}{
	{"echo-message", capEchoMessage},
	{"message-tags", capMessageTags},
	{"multi-prefix", capMultiPrefix},
	{"server-time", capServerTime},
	{"sasl", capSASL},
}

// ircState is what an IRC session's frames depend on: its nickname (for
// numerics) and the capabilities it negotiated. The reader sets them; the
// codec reads them from any goroutine.
type ircState struct {
	nick  atomic.Pointer[string] // "*" until registered
	tried atomic.Pointer[string] // the last nickname offered, for 432 and 433
	caps  atomic.Uint32

	mu     sync.Mutex  // guards recent; held only by skips
	recent []ircRecent // NICK and QUIT events sent lately: one per user, not one per shared channel
}

// ircRecent is a NICK or QUIT event, as far as it matters for dedupe.
type ircRecent struct{ kind, nick, text string }

// ircRecentMax bounds ircState.recent.
const ircRecentMax = 32

func (st *ircState) me() string {
	if p := st.nick.Load(); p != nil {
		return *p
	}
	return "*"
}

func (st *ircState) has(c uint32) bool { return st.caps.Load()&c != 0 }

// ircCodec is the IRC encoding. Its event method depends on the event
// alone (the same frame goes to every IRC member of a room); the others
// answer one session and may use its state.
type ircCodec struct {
	st *ircState
}

func (ircCodec) transportSlot() int { return 2 }

// encoding is encIRCTime for a client that asked for server-time, else
// encIRC: each is sent its frames as they are.
func (c ircCodec) encoding() int {
	if c.st.has(capServerTime) {
		return encIRCTime
	}
	return encIRC
}

// skips leaves out of the client's queue, so that it is neither sent nor
// counted against --max-pending: its own chat lines without echo-message
// (it shows them itself); its own JOIN and its new nickname (it was told
// directly); another user's NICK or QUIT after the first, however many
// channels it shares with the user. Any JOIN ends the dedupe: a user who
// joins again is new.
func (c ircCodec) skips(ev *event) bool {
	st := c.st
	me := st.me()
	self := strings.EqualFold(ev.nick, me)
	switch ev.kind {
	case KindSay, KindMe:
		return self && !st.has(capEchoMessage)
	case KindJoin:
		st.mu.Lock()
		clear(st.recent)
		st.recent = st.recent[:0]
		st.mu.Unlock()
		return self
	case KindNick:
		if strings.EqualFold(ev.text, me) {
			return true
		}
		return st.seen(ircRecent{ev.kind, ev.nick, ev.text})
	case KindLeave:
		if ev.text == "" {
			return false // a PART: per channel
		}
		return st.seen(ircRecent{ev.kind, ev.nick, ev.text})
	}
	return false
}

// seen reports whether r was sent lately, and remembers it.
func (st *ircState) seen(r ircRecent) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, x := range st.recent {
		if x == r {
			return true
		}
	}
	if len(st.recent) == ircRecentMax {
		copy(st.recent, st.recent[1:])
		st.recent = st.recent[:ircRecentMax-1]
	}
	st.recent = append(st.recent, r)
	return false
}

// timeTag is the server-time tag for t, with its trailing space, for a
// client that asked for server-time.
func timeTag(b []byte, t time.Time) []byte {
	b = append(b, "@time="...)
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	return append(b, ' ')
}

// appendSource appends ":nick!nick@chatd ".
func appendSource(b []byte, nick string) []byte {
	b = append(b, ':')
	b = append(b, nick...)
	b = append(b, '!')
	b = append(b, nick...)
	b = append(b, "@"+ircServer+" "...)
	return b
}

// event renders ev with the server-time tag (encIRCTime).
func (ircCodec) event(ev *event) []byte { return ircEvent(ev, true) }

// ircEvent renders a live room event, with the server-time tag if tagged,
// or nil for a kind it does not know. The frame depends on the event
// alone: it goes to every IRC member of the room with that encoding.
func ircEvent(ev *event, tagged bool) []byte {
	b := make([]byte, 0, 96+len(ev.nick)*2+len(ev.room)+len(ev.text))
	if tagged {
		b = timeTag(b, ev.at)
	}
	switch ev.kind {
	case KindSay:
		return appendPrivmsg(b, ev.nick, "#"+ev.room, ev.text, false, "PRIVMSG")
	case KindMe:
		return appendPrivmsg(b, ev.nick, "#"+ev.room, ev.text, true, "PRIVMSG")
	case KindJoin:
		b = appendSource(b, ev.nick)
		b = append(b, "JOIN #"...)
		b = append(b, ev.room...)
	case KindLeave:
		b = appendSource(b, ev.nick)
		if ev.text == "" {
			b = append(b, "PART #"...)
			b = append(b, ev.room...)
		} else {
			b = append(b, "QUIT :"...)
			b = append(b, ev.text...)
		}
	case KindNick:
		b = appendSource(b, ev.nick)
		b = append(b, "NICK "...)
		b = append(b, ev.text...)
	case KindKick:
		by, reason, _ := strings.Cut(ev.text, " ")
		b = appendSource(b, by)
		b = append(b, "KICK #"...)
		b = append(b, ev.room...)
		b = append(b, ' ')
		b = append(b, ev.nick...)
		b = append(b, " :"...)
		b = append(b, reason...)
	case KindTopic:
		b = appendSource(b, ev.nick)
		b = append(b, "TOPIC #"...)
		b = append(b, ev.room...)
		b = append(b, " :"...)
		b = append(b, ev.text...)
	default:
		return nil
	}
	return append(b, "\r\n"...)
}

// appendPrivmsg appends the lines of one message from nick to target,
// split so that each is at most 512 bytes without its tags: text from the
// other transports may be longer than an IRC line. b holds the tags (or
// nothing); each line repeats them.
func appendPrivmsg(b []byte, nick, target, text string, action bool, verb string) []byte {
	tags := string(b)
	over := 1 + 2*len(nick) + len("!@"+ircServer+" ") + len(verb) + 1 + len(target) + 2 + 2
	if action {
		over += len("\x01ACTION \x01")
	}
	room := max(ircMaxMsg-over, 16)
	for first := true; first || text != ""; first = false {
		chunk := text
		if len(chunk) > room {
			cut := room
			for cut > 0 && !utf8.RuneStart(chunk[cut]) {
				cut--
			}
			if sp := strings.LastIndexByte(chunk[:cut], ' '); sp > cut/2 {
				cut = sp + 1
			}
			chunk = chunk[:cut]
		}
		text = text[len(chunk):]
		if !first {
			b = append(b, tags...)
		}
		b = appendSource(b, nick)
		b = append(b, verb...)
		b = append(b, ' ')
		b = append(b, target...)
		b = append(b, " :"...)
		if action {
			b = append(b, "\x01ACTION "...)
		}
		b = append(b, strings.TrimRight(chunk, " ")...)
		if action {
			b = append(b, '\x01')
		}
		b = append(b, "\r\n"...)
	}
	return b
}

// history frames a room's replay: with server-time, the lines as they were
// sent, each with its time; without, as the server's NOTICEs to the
// channel, each with the time in front. A server NOTICE before and after
// says where the replay starts and ends, so no replayed line passes for a
// new one.
func (c ircCodec) history(room string, evs []event, now time.Time) [][]byte {
	if len(evs) == 0 {
		return nil
	}
	ch := "#" + room
	b := appendServerLine(nil, "NOTICE", ch, "--- last "+strconv.Itoa(len(evs))+" lines of "+ch+" ---")
	stamped := c.st.has(capServerTime)
	for i := range evs {
		ev := &evs[i]
		if ev.kind != KindSay && ev.kind != KindMe {
			continue
		}
		if stamped {
			b = appendPrivmsg(timeTag(b, ev.at), ev.nick, ch, ev.text, ev.kind == KindMe, "PRIVMSG")
			continue
		}
		line := formatHistory(ev.kind, ev.nick, ev.text, ev.at, now)
		b = appendServerLine(b, "NOTICE", ch, strings.TrimSuffix(string(line), "\n"))
	}
	b = appendServerLine(b, "NOTICE", ch, "--- live ---")
	return [][]byte{b}
}

// appendServerLine appends ":chatd VERB target :text".
func appendServerLine(b []byte, verb, target, text string) []byte {
	b = append(b, ":"+ircServer+" "...)
	b = append(b, verb...)
	b = append(b, ' ')
	b = append(b, target...)
	b = append(b, " :"...)
	b = append(b, text...)
	return append(b, "\r\n"...)
}

// numeric renders ":chatd NNN <me> params... :text".
func (c ircCodec) numeric(code string, params ...string) []byte {
	b := append([]byte(nil), ":"+ircServer+" "...)
	b = append(b, code...)
	b = append(b, ' ')
	b = append(b, c.st.me()...)
	for i, p := range params {
		b = append(b, ' ')
		if i == len(params)-1 {
			b = append(b, ':')
		}
		b = append(b, p...)
	}
	return append(b, "\r\n"...)
}

func (c ircCodec) welcome(nick, _ string) []byte {
	return c.numeric("001", "Welcome to the "+ircServer+" chat, "+nick)
}

func (c ircCodec) notice(text string) []byte {
	return appendServerLine(nil, "NOTICE", c.st.me(), text)
}

// errorMsg renders a refusal as its IRC numeric where there is one, else
// as a server NOTICE. A refusal that closes the session is followed by
// ERROR (ircConn.goodbye).
func (c ircCodec) errorMsg(code, text string) []byte {
	tried := "*"
	if p := c.st.tried.Load(); p != nil {
		tried = *p
	}
	switch code {
	case codeNickInvalid:
		return c.numeric("432", tried, text)
	case codeNickTaken, codeNickRegistered:
		return c.numeric("433", tried, text)
	case codeTooLong:
		return c.numeric("417", text)
	case codeBadPassword:
		return c.numeric("464", text)
	}
	return c.notice(text)
}

func (c ircCodec) who(room string, nicks, ops []string) []byte {
	return c.notice(whoText(room, nicks, ops))
}

func (c ircCodec) rooms(names []string, counts map[string]int, topics map[string]string) []byte {
	return c.notice(roomsText(names, counts, topics))
}

// private renders a private message; the sender's own copy only for a
// client that asked for echo-message (others show their line themselves).
func (c ircCodec) private(from, to, text string, at time.Time, outgoing bool) []byte {
	if outgoing && !c.st.has(capEchoMessage) {
		return nil
	}
	var b []byte
	if c.st.has(capServerTime) {
		b = timeTag(nil, at)
	}
	return appendPrivmsg(b, from, to, text, false, "PRIVMSG")
}
