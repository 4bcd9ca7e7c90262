package gateway

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/textsafe"
	"github.com/coder/websocket"
)

// This file checks the classic protocol's line classes (docs/protocol.md,
// "Line classes"). lineClassify is written from the documented grammar, not
// from the formatters: one matcher per class. The tests check that no line
// matches two classes, that every line the server sends matches one, and
// that whatever users do, every line another user receives because of them
// is that user's chat, action or membership line under the nickname the
// server knows (or a private message from it, or its change of nickname),
// never a server line.

// lineClass is one class of the grammar.
type lineClass uint8

const (
	classNone       lineClass = iota // no class: not a line of the protocol
	classFixed                       // Connected to server!
	classNotice                      // *** text
	classError                       // ERROR text
	classFrame                       // --- last N lines of ROOM --- / --- live ---
	classHistory                     // [stamp] chat or action
	classChat                        // nick: text
	classAction                      // * nick text
	classMembership                  // nick joined! / nick left!
)

var lineClassNames = [...]string{"none", "fixed", "notice", "error", "frame", "history", "chat", "action", "membership"}

func (c lineClass) String() string { return lineClassNames[c] }

// Notices the grammar names.
const (
	noticeOther       = "other"
	noticePrivateFrom = "private from"
	noticePrivateTo   = "private to"
	noticeNickChange  = "nick change"
	noticeShutdown    = "shutdown"
)

// parsedLine is a line and what its class says of it.
type parsedLine struct {
	class  lineClass
	notice string // classNotice: which notice
	nick   string // who: chat, action, membership, history; the peer of a private message; the old nickname
	nick2  string // the new nickname of a nick change
	text   string
}

// Grammar pieces, from docs/protocol.md.
var (
	grammarNick  = regexp.MustCompile(`^[A-Za-z0-9_.\[\]{}|^][A-Za-z0-9_.\[\]{}|^-]{0,31}$`)
	grammarRoom  = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	grammarStamp = regexp.MustCompile(`^(\d\d:\d\d|[A-Z][a-z][a-z] [ 1-3]\d \d\d:\d\d)$`)
	grammarFrame = regexp.MustCompile(`^--- last ([1-9][0-9]*) lines of ([^ ]+) ---$`)
	reservedNick = []string{"error", "name", "server", "chatd"}
)

// isGrammarNick reports whether s is a nickname of the grammar.
func isGrammarNick(s string) bool {
	return grammarNick.MatchString(s) && !slices.Contains(reservedNick, strings.ToLower(s))
}

// hasControl reports whether s holds a character no line may hold.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || textsafe.IsBidiControl(r)
	})
}

// lineMatchers are the classes' matchers, one per class.
var lineMatchers = []func(string) (parsedLine, bool){
	func(l string) (parsedLine, bool) {
		return parsedLine{class: classFixed}, l == "Connected to server!"
	},
	matchNotice,
	func(l string) (parsedLine, bool) {
		text, ok := strings.CutPrefix(l, "ERROR ")
		return parsedLine{class: classError, text: text}, ok && text != ""
	},
	func(l string) (parsedLine, bool) {
		if l == "--- live ---" {
			return parsedLine{class: classFrame}, true
		}
		m := grammarFrame.FindStringSubmatch(l)
		return parsedLine{class: classFrame}, m != nil && grammarRoom.MatchString(m[2])
	},
	func(l string) (parsedLine, bool) {
		rest, ok := strings.CutPrefix(l, "[")
		stamp, rest, ok2 := strings.Cut(rest, "] ")
		if !ok || !ok2 || !grammarStamp.MatchString(stamp) {
			return parsedLine{}, false
		}
		p, ok := matchChat(rest)
		if !ok {
			p, ok = matchAction(rest)
		}
		p.class = classHistory
		return p, ok
	},
	matchChat,
	matchAction,
	func(l string) (parsedLine, bool) {
		nick, ok := strings.CutSuffix(l, " joined!")
		if !ok {
			nick, ok = strings.CutSuffix(l, " left!")
		}
		return parsedLine{class: classMembership, nick: nick, text: l[len(nick):]}, ok && isGrammarNick(nick)
	},
}

func matchChat(l string) (parsedLine, bool) {
	nick, text, ok := strings.Cut(l, ": ")
	return parsedLine{class: classChat, nick: nick, text: text}, ok && isGrammarNick(nick) && text != ""
}

func matchAction(l string) (parsedLine, bool) {
	rest, ok := strings.CutPrefix(l, "* ")
	nick, text, ok2 := strings.Cut(rest, " ")
	return parsedLine{class: classAction, nick: nick, text: text}, ok && ok2 && isGrammarNick(nick) && text != ""
}

// matchNotice matches a server notice and says which one it is.
func matchNotice(l string) (parsedLine, bool) {
	text, ok := strings.CutPrefix(l, "*** ")
	if !ok || text == "" {
		return parsedLine{}, false
	}
	p := parsedLine{class: classNotice, notice: noticeOther, text: text}
	for _, pm := range []string{noticePrivateFrom, noticePrivateTo} {
		if rest, ok := strings.CutPrefix(text, pm+" "); ok {
			if nick, msg, ok := strings.Cut(rest, ": "); ok && isGrammarNick(nick) && msg != "" {
				p.notice, p.nick, p.text = pm, nick, msg
			}
			return p, true
		}
	}
	if old, nick, ok := strings.Cut(text, " is now known as "); ok && isGrammarNick(old) && isGrammarNick(nick) {
		p.notice, p.nick, p.nick2 = noticeNickChange, old, nick
	}
	if strings.HasPrefix(text, "server shutting down") {
		p.notice = noticeShutdown
	}
	return p, true
}

// lineClassify classifies one line (without its newline). It returns
// classNone for a line of no class, and reports every class that matched.
func lineClassify(l string) (parsedLine, []lineClass) {
	if hasControl(l) {
		return parsedLine{}, nil
	}
	var got parsedLine
	var classes []lineClass
	for _, m := range lineMatchers {
		if p, ok := m(l); ok {
			got = p
			classes = append(classes, p.class)
		}
	}
	if len(classes) != 1 {
		return parsedLine{}, classes
	}
	return got, classes
}

// mustClassify classifies a line the server sent: it must be of exactly one
// class.
func mustClassify(t testing.TB, ctx string, l string) parsedLine {
	t.Helper()
	p, classes := lineClassify(l)
	if len(classes) != 1 {
		t.Fatalf("%s: line %q is of %d classes %v, want exactly one", ctx, l, len(classes), classes)
	}
	return p
}

// hostileLines are lines a user would like another user to receive.
var hostileLines = []string{
	"* server shutting down; reconnect to 127.0.0.1:7301",
	"*** server shutting down; reconnect to 127.0.0.1:7301",
	"*** server shutting down, bye", "* in lobby (2): alice, bob", "*** in lobby (2): alice, bob",
	"* private from bob: hi", "*** private from bob: hi", "* rooms: lobby (2)", "*** rooms: lobby (2)",
	"* the chat link is down: your lines cannot be sent until it is back",
	"ERROR nickname taken", "ERROR joined!", "ERROR: hi", "error joined!", "NAME joined!",
	"--- live ---", "--- last 3 lines of lobby ---", "--- joined!", "---: hi", "-x joined!",
	"[12:01] bob: hi", "[12:01] * bob waves", "[Nov 21 12:01] bob: hi", "[12:01]: hi", "[12: 01] x",
	"[x] joined!", "[Nov joined!", "Connected to server!", "Connected: to server!", "bob joined!",
	"bob left!", "bob: joined!", "* bob joined!", "*** bob is now known as eve", "* bob is now known as eve",
	"server: hi", "* server waves", "***: hi", "**: hi", "* * x", "bob: *** server shutting down",
	"", " ", "*** ", "ERROR ", "* bob", "bob: ", "[12:01] ", "\x1b[2J*** x", "*** x\u202e",
}

// Every line matches at most one class, and the server's own lines exactly
// one: the classes are disjoint.
func TestLineClassesDisjoint(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.Local)
	c := lineCodec{}
	var genuine [][]byte
	genuine = append(genuine, lineConnected, lineLive,
		c.notice("you are already in dev"), c.errorMsg(codeUsage, "usage: /me ACTION"),
		c.who("lobby", []string{"alice", "bob"}, []string{"bob"}), c.rooms([]string{"dev", "lobby"}, map[string]int{"dev": 1, "lobby": 2}, map[string]string{"dev": "the topic"}),
		c.private("bob", "alice", "psst: it is *** me", now, false), c.private("alice", "bob", "x", now, true),
		formatEvent(KindSay, "bob", "hi: there"), formatEvent(KindMe, "bob", "waves"),
		formatEvent(KindJoin, "[x]", ""), formatEvent(KindLeave, "Connected", ""),
		formatEvent(KindNick, "bob", "eve"), formatEvent(KindKick, "bob", "alice spam: *** x"),
		formatEvent(KindTopic, "alice", "read the rules"), formatEvent(KindTopic, "alice", ""),
		formatHistory(KindSay, "bob", "hi", now.Add(-time.Minute), now),
		formatHistory(KindMe, "bob", "waves", now.Add(-48*time.Hour), now),
		formatHistory(KindSay, "[12]x", "hi", now.Add(-24*time.Hour-time.Minute), now))
	genuine = append(genuine, c.history("lobby", []event{{kind: KindSay, nick: "a", text: "b", at: now}}, now)...)
	for _, g := range genuine {
		if p := mustClassify(t, "genuine", strings.TrimSuffix(string(g), "\n")); p.class == classNone {
			t.Errorf("genuine line %q has no class", g)
		}
	}
	for _, l := range hostileLines {
		if _, classes := lineClassify(l); len(classes) > 1 {
			t.Errorf("line %q is of classes %v", l, classes)
		}
	}
}

// FuzzLineClasses: no line is of two classes.
func FuzzLineClasses(f *testing.F) {
	for _, l := range hostileLines {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, l string) {
		if _, classes := lineClassify(l); len(classes) > 1 {
			t.Fatalf("line %q is of classes %v", l, classes)
		}
	})
}

// linesWorld is one gateway on a memBus (newChatBus) with two passive users in the
// lobby, one on each transport, who receive what the others do.
type linesWorld struct {
	t       testing.TB
	bus     *memBus
	srv     *Server
	watcher *Session // classic TCP
	web     *Session // WebSocket
	held    []string // every nickname a user has held, for history lines

	sessions []*Session
	ended    map[*Session]bool
}

func newLinesWorld(t testing.TB) *linesWorld {
	w := &linesWorld{t: t, bus: newChatBus(), ended: map[*Session]bool{}}
	srv, err := New(Config{History: 5, Rate: 1e9, Burst: 1 << 30}, w.bus)
	if err != nil {
		t.Fatal(err)
	}
	w.srv = srv
	w.watcher = w.session(false)
	w.watcher.hello("watcher")
	w.web = w.session(true)
	w.web.hello("webwatcher")
	if w.watcher.nick == "" || w.web.nick == "" {
		t.Fatal("the watchers were refused")
	}
	w.held = []string{"watcher", "webwatcher"}
	w.drain(w.watcher)
	w.drain(w.web)
	return w
}

// session returns a session with no connection; its output stays queued
// for drain.
func (w *linesWorld) session(ws bool) *Session {
	var c codec = lineCodec{}
	if ws {
		c = jsonCodec{maxLine: w.srv.cfg.MaxLine}
	}
	s := newSession(w.srv, &fuzzTransport{codec: c}, "test", netip.Addr{})
	if refusal := w.srv.admit(s); refusal != "" {
		w.t.Fatalf("session refused: %s", refusal)
	}
	w.sessions = append(w.sessions, s)
	s.stripPrefix = !ws
	s.queued = ws
	s.writing = true // no writer goroutine: frames stay in s.frames
	return s
}

// drain returns and forgets what s was sent.
func (w *linesWorld) drain(s *Session) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.frames)
	clear(s.frames)
	s.frames, s.bytes = s.frames[:0], 0
	return out
}

// user is someone acting on the gateway: its input goes through the
// transport's reader code (the framer and tcpConn.line, or
// wsConn.message), as from a socket.
type user struct {
	w  *linesWorld
	s  *Session
	ws *wsConn
	tc *tcpConn
}

func (w *linesWorld) newUser(ws bool) *user {
	u := &user{w: w, s: w.session(ws)}
	if ws {
		u.ws = &wsConn{jsonCodec: jsonCodec{maxLine: w.srv.cfg.MaxLine}, cfg: &w.srv.cfg, hsTimer: time.NewTimer(time.Hour)}
	} else {
		u.tc = &tcpConn{cfg: &w.srv.cfg, fr: newFramer(w.srv.cfg.MaxLine)}
	}
	return u
}

// input sends what a user typed: for TCP, raw bytes and a newline, line by
// line as the framer cuts them; for WebSocket, one line message (or hello,
// before the handshake). After each line it checks what the watchers got.
func (u *user) input(raw string) {
	if u.ws != nil {
		typ := "line"
		if u.s.nick == "" {
			typ = "hello"
		}
		msg, _ := json.Marshal(map[string]string{"type": typ, "text": raw, "nick": raw})
		before := u.s.nick
		u.ws.message(u.s, websocket.MessageText, msg)
		u.check(raw, before)
		return
	}
	var lines [][]byte
	u.tc.fr.feed([]byte(raw+"\n"), func(l []byte, tooLong bool) {
		if !tooLong {
			l = slices.Clone(l)
		}
		lines = append(lines, l)
	})
	for _, l := range lines {
		before := u.s.nick
		u.tc.line(u.s, l, l == nil)
		u.check(string(l), before)
	}
}

// check checks what the watchers received because of one line of the user,
// who was before (possibly "") and is now u.s.nick.
func (u *user) check(in, before string) {
	w := u.w
	after := u.s.nick
	if after != "" && !slices.Contains(w.held, after) {
		w.held = append(w.held, after)
	}
	ctx := fmt.Sprintf("user %q (now %q) sent %q", before, after, in)
	is := func(nick string) bool { return nick != "" && (nick == before || nick == after) }
	for _, fr := range w.drain(w.watcher) {
		l := strings.TrimSuffix(string(fr), "\n")
		p := mustClassify(w.t, ctx, l)
		ok := false
		switch p.class {
		case classChat, classAction, classMembership:
			ok = is(p.nick)
		case classNotice:
			switch p.notice {
			case noticePrivateFrom:
				ok = p.nick == before && before != ""
			case noticeNickChange:
				ok = p.nick == before && p.nick2 == after && before != after
			}
		}
		if !ok {
			w.t.Fatalf("%s: the watcher got %q, a %v line (%+v), not this user's", ctx, l, p.class, p)
		}
	}
	for _, fr := range w.drain(w.web) {
		for _, m := range decodeFrames(w.t, fr) {
			ok := false
			switch m["type"] {
			case "event":
				if m["kind"] == KindNick {
					ok = m["nick"] == before && m["text"] == after
				} else {
					ok = is(m["nick"])
				}
			case "private":
				ok = m["from"] == before && before != ""
			}
			if !ok {
				w.t.Fatalf("%s: the web watcher got %s, not this user's", ctx, fr)
			}
		}
	}
	// The user's own lines are of the grammar too.
	if u.ws == nil && u.s.queued {
		for _, fr := range w.drain(u.s) {
			mustClassify(w.t, ctx+", reply", strings.TrimSuffix(string(fr), "\n"))
		}
	} else {
		w.drain(u.s)
	}
}

// decodeFrames reads a WebSocket frame: one object or an array of them,
// keeping the string fields.
func decodeFrames(t testing.TB, fr []byte) []map[string]string {
	var raw []map[string]any
	if fr[0] == '[' {
		if err := json.Unmarshal(fr, &raw); err != nil {
			t.Fatalf("frame %s: %v", fr, err)
		}
	} else {
		var one map[string]any
		if err := json.Unmarshal(fr, &one); err != nil {
			t.Fatalf("frame %s: %v", fr, err)
		}
		raw = append(raw, one)
	}
	var out []map[string]string
	for _, r := range raw {
		m := map[string]string{}
		for k, v := range r {
			if s, ok := v.(string); ok {
				m[k] = s
			}
		}
		out = append(out, m)
	}
	return out
}

// rejoin has the TCP watcher leave for another room and come back: it gets
// the room's history, whose lines must name nicknames users really held.
func (w *linesWorld) rejoin(room string) {
	for _, r := range []string{room, "lobby"} {
		if r == "lobby" && w.watcher.room == "lobby" {
			continue
		}
		w.watcher.handle("/join " + r)
		w.checkOwn(w.watcher, "/join "+r)
	}
}

// checkOwn checks what s received after its own command: lines of the
// grammar; history and membership lines name nicknames users held.
func (w *linesWorld) checkOwn(s *Session, cmd string) []parsedLine {
	var got []parsedLine
	for _, fr := range w.drain(s) {
		l := strings.TrimSuffix(string(fr), "\n")
		p := mustClassify(w.t, s.nick+" "+cmd, l)
		switch p.class {
		case classHistory, classChat, classAction, classMembership:
			if !slices.Contains(w.held, p.nick) {
				w.t.Fatalf("%s %s: got %q, from %q who never was", s.nick, cmd, l, p.nick)
			}
		}
		got = append(got, p)
	}
	w.drain(w.web)
	return got
}

// finale checks the server's own lines to the TCP watcher: replies,
// notices of the link, and the shutdown with its redirect, all notices. It
// ends every session and the server.
func (w *linesWorld) finale() {
	for _, cmd := range []string{"/who", "/rooms", "/help", "/join lobby", "/nick watcher", "/msg nobody hi", "/bogus"} {
		w.watcher.handle(cmd)
		for _, p := range w.checkOwn(w.watcher, cmd) {
			if p.class != classNotice && p.class != classError {
				w.t.Fatalf("%s: a %v line, want a server line", cmd, p.class)
			}
		}
	}
	w.watcher.handle("/msg webwatcher psst")
	if ps := w.checkOwn(w.watcher, "/msg"); len(ps) != 1 || ps[0].notice != noticePrivateTo || ps[0].nick != "webwatcher" {
		w.t.Fatalf("/msg: got %+v, want one private to webwatcher", ps)
	}
	w.srv.LinkDown()
	w.srv.LinkUp()
	if ps := w.checkOwn(w.watcher, "link down and up"); len(ps) != 2 || ps[0].class != classNotice || ps[1].class != classNotice {
		w.t.Fatalf("link down and up: %+v, want two notices", ps)
	}

	// Shutdown tells every session, then waits for them to end.
	done := make(chan error, 1)
	go func() { done <- w.srv.Close() }()
	deadline := time.Now().Add(5 * time.Second)
	for !w.isClosing(w.watcher) {
		if time.Now().After(deadline) {
			w.t.Fatal("shutdown did not reach the watcher")
		}
		time.Sleep(time.Millisecond)
	}
	ps := w.checkOwn(w.watcher, "shutdown")
	if len(ps) != 1 || ps[0].notice != noticeShutdown ||
		ps[0].text != "server shutting down; reconnect to chat2.example:5500 or 10.0.0.3:5500" {
		w.t.Fatalf("shutdown: got %+v, want the redirect notice", ps)
	}
	w.endAll()
	if err := <-done; err != nil {
		w.t.Fatalf("Close: %v", err)
	}
}

func (w *linesWorld) isClosing(s *Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// endAll ends every session that is not over yet, as its reader would.
func (w *linesWorld) endAll() {
	for _, s := range w.sessions {
		w.endSession(s)
	}
}

func (w *linesWorld) endSession(s *Session) {
	if w.ended[s] {
		return
	}
	w.ended[s] = true
	s.mu.Lock()
	s.writing = false // frames queued from now on are written (and dropped) by a writer
	s.mu.Unlock()
	s.end()
}

// Pools the property test draws from: nicknames and texts that read as
// server lines, and commands that put them on other users' screens.
var (
	forgedNicks = []string{
		"server", "SERVER", "Server", "ERROR", "error", "NAME", "name", "chatd", "private", "in", "rooms",
		"the", "you", "commands", "bye", "this", "Connected", "-", "---", "--", "-x", "[12:01]", "[12",
		"[Nov", "[x]", "x.y", "|", "^", "{}", "*", "***", "* x", "ERROR:", "a b", "mallory", "Mallory",
		"watcher", "WATCHER", "\x1b[2Jserver", "server\r", "se\x00rver", "\u202eserver", "\tserver",
	}
	forgedTexts = []string{
		"shutting down; reconnect to 127.0.0.1:7301", "server shutting down; reconnect to 127.0.0.1:7301",
		"*** server shutting down; reconnect to 127.0.0.1:7301", "* server shutting down, bye",
		"lobby (2): alice, bob", "in lobby (2): alice, bob", "private from bob: psst", "from bob: psst",
		"rooms: lobby (2)", "chat link is down: your lines cannot be sent until it is back",
		"joined!", "left!", "is now known as bob", "ERROR nickname alice is taken", "--- live ---",
		"--- last 3 lines of lobby ---", "[12:01] bob: hi", "Connected to server!", "NAME", "bob: hi",
		"watcher: hi", "x\n*** server shutting down", "x\r\n*** forged", "x\r*** forged", "\x1b[2K\r*** forged",
		"\u202e***", "\u0085*** x", "\t*** x", "  ", "", "/me waves", "//me waves", "*** ", "*",
	}
	forgedRooms = []string{"lobby", "games", "#Lobby", "-", "lobby ---", "*", "LOBBY"}
	forgedCmds  = []string{
		"%t", "/me %t", "//%t", "/msg watcher %t", "/msg webwatcher %t", "/msg WATCHER %t", "/nick %n",
		"/join %r", "/join lobby", "/quit %t", "%n: %t", "%n: /me %t", "/ME %t", "/who", "/rooms", "/help",
		"/bogus %t", "%t\n%t", "/me %t\n/nick %n",
	}
)

// genScript makes a user's session: a nickname, then commands.
func genScript(r *rand.Rand) (nick string, cmds []string) {
	pick := func(l []string) string { return l[r.IntN(len(l))] }
	nick = pick(forgedNicks)
	for range 1 + r.IntN(12) {
		if r.IntN(8) == 0 {
			cmds = append(cmds, "\x01"+pick(forgedRooms)) // the watcher rejoins
			continue
		}
		cmd := pick(forgedCmds)
		for strings.ContainsAny(cmd, "%") {
			i := strings.IndexByte(cmd, '%')
			var v string
			switch cmd[i+1] {
			case 'n':
				v = pick(forgedNicks)
			case 'r':
				v = pick(forgedRooms)
			default:
				v = pick(forgedTexts)
			}
			cmd = cmd[:i] + v + cmd[i+2:]
		}
		cmds = append(cmds, cmd)
	}
	return nick, cmds
}

// runScript runs one user's session: it asks for nick (and, refused,
// "mallory"), sends cmds ("\x01ROOM": the TCP watcher goes to ROOM and
// back), leaves, and checks every line the watchers and the user got.
func runScript(t testing.TB, nick string, cmds []string, ws bool) {
	w := newLinesWorld(t)
	u := w.newUser(ws)
	u.input(nick)
	if u.s.nick == "" && !u.s.stopped {
		u.input("mallory")
	}
	for _, c := range cmds {
		if u.s.stopped {
			break
		}
		if room, ok := strings.CutPrefix(c, "\x01"); ok {
			w.rejoin(room)
			continue
		}
		u.input(c)
	}
	before := u.s.nick
	w.endSession(u.s) // the user leaves: its "left!"
	u.check("(gone)", before)
	w.finale()
}

// Whatever a user does, on either transport, with whatever nickname and
// text, the lines it causes others to receive are its own chat, action and
// membership lines under the nickname the server knows (or its private
// messages and nickname changes), never a server line; and every line the
// server sends is of exactly one class.
func TestUserLinesNeverServerLines(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 50
	}
	for seed := range n {
		r := rand.New(rand.NewPCG(uint64(seed), 11))
		nick, cmds := genScript(r)
		ws := seed%3 == 0
		ok := t.Run(fmt.Sprint(seed), func(t *testing.T) { runScript(t, nick, cmds, ws) })
		if !ok {
			t.Fatalf("seed %d: nick %q, ws %v, commands %q", seed, nick, ws, cmds)
		}
	}
}

// The forgeries of issue 11, each by hand.
func TestForgedServerLines(t *testing.T) {
	for _, tc := range []struct {
		nick string
		cmds []string
	}{
		{"server", []string{"/me shutting down; reconnect to 127.0.0.1:7301"}},
		{"private", []string{"/me from bob: psst"}},
		{"in", []string{"/me lobby (2): alice, bob"}},
		{"rooms", []string{"/me : lobby (9)"}},
		{"the", []string{"/me chat link is down: your lines cannot be sent until it is back"}},
		{"ERROR", []string{"hi", "/join games", "/join lobby"}},
		{"---", []string{"hi"}},
		{"-x", []string{"hi"}},
		{"alice", []string{"/nick server", "/nick ERROR", "/nick -", "/nick NAME", "/nick Chatd"}},
	} {
		for _, ws := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/ws=%v", tc.nick, ws), func(t *testing.T) { runScript(t, tc.nick, tc.cmds, ws) })
		}
	}
}

// FuzzUserLines is TestUserLinesNeverServerLines with the fuzzer's
// nickname and commands (separated by NUL bytes).
func FuzzUserLines(f *testing.F) {
	f.Add("server", []byte("/me shutting down; reconnect to 127.0.0.1:7301"), false)
	f.Add("in", []byte("/me lobby (2): alice, bob\x00/nick private\x00/me from bob: hi"), true)
	f.Add("ERROR", []byte("x\x00\x01games\x00/nick -x"), false)
	for seed := range 20 {
		nick, cmds := genScript(rand.New(rand.NewPCG(uint64(seed), 11)))
		f.Add(nick, []byte(strings.Join(cmds, "\x00")), seed%2 == 0)
	}
	f.Fuzz(func(t *testing.T, nick string, script []byte, ws bool) {
		cmds := strings.Split(string(script), "\x00")
		if len(cmds) > 16 {
			cmds = cmds[:16]
		}
		runScript(t, nick, cmds, ws)
	})
}
