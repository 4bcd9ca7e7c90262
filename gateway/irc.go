package gateway

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file is the IRC transport: registration (PASS, NICK, USER, CAP),
// the commands an IRC client sends, and its writer. The frames it is sent
// already fit its capabilities (irc_codec.go). An IRC session is a Session like
// any other (same nicknames, limits, rooms and bus), except that it may be
// in several rooms at once: its channels, Session.chans (multiroom.go).
// docs/protocol.md, "IRC clients", is the contract.

// processStart is when this gateway started, for 003.
var processStart = time.Now()

// ircMaxChannels bounds how many channels one IRC client may be in.
const ircMaxChannels = 50

// ircMaxTargets bounds the targets of one PRIVMSG, JOIN or PART.
const ircMaxTargets = 8

// ircMaxBad bad lines in a row before registration close the connection:
// whatever is talking to the port is not an IRC client.
const ircMaxBad = 10

// ircConn is one IRC client's connection.
type ircConn struct {
	ircCodec
	st   ircState
	conn net.Conn
	cfg  *Config

	// Owned by the reader goroutine.
	s          *Session
	fr         ircFramer
	pass       string
	passGiven  bool
	user       bool   // USER received
	wantNick   string // NICK received, not yet claimed
	capping    bool   // CAP negotiation holds registration
	sasl       bool   // AUTHENTICATE PLAIN received: its data comes next
	registered bool
	bad        int
	lastIn     time.Time
	pinged     bool // a PING is waiting for its PONG
}

func newIRCConn(c net.Conn, cfg *Config) *ircConn {
	t := &ircConn{conn: c, cfg: cfg, fr: ircFramer{max: ircMaxLine}}
	t.ircCodec.st = &t.st
	return t
}

// ServeIRC accepts IRC clients on ln until Shutdown, then returns nil, as
// Serve does for classic clients.
func (s *Server) ServeIRC(ln net.Listener) error {
	return s.serve(ln, s.acceptIRC)
}

func (s *Server) acceptIRC(c net.Conn) {
	s.tune(c)
	t := newIRCConn(c, &s.cfg)
	sess := newSession(s, t, c.RemoteAddr().String(), remoteIP(c.RemoteAddr()))
	sess.useQueue() // every frame goes through the queue
	sess.log = sess.log.With("transport", "irc")
	if refusal := s.admit(sess); refusal != "" {
		go func() {
			defer s.wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
			_, _ = c.Write([]byte("ERROR :Closing link: " + refusal + "\r\n"))
			c.Close()
		}()
		return
	}
	go sess.run()
}

// serve reads lines until the client goes away. Before registration the
// client has HandshakeTimeout; after it, an idle client is sent a PING
// after IRCPing and closed if it has not answered IRCPing later.
func (t *ircConn) serve(s *Session) (parked bool) {
	t.s = s
	hsDeadline := time.Now().Add(t.cfg.HandshakeTimeout)
	t.lastIn = time.Now()
	buf := make([]byte, 4096)
	emit := func(line []byte, tooLong bool) { t.line(line, tooLong) }
	for !s.stopped {
		deadline := hsDeadline
		if t.registered {
			deadline = t.lastIn.Add(t.cfg.IRCPing)
			if t.pinged {
				deadline = deadline.Add(t.cfg.IRCPing)
			}
		}
		_ = t.conn.SetReadDeadline(deadline)
		n, err := t.conn.Read(buf)
		if n > 0 {
			t.fr.feed(buf[:n], emit)
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			switch {
			case !t.registered:
				s.fail(ReasonHandshakeTimeout, codeTimeout, "registration timed out: no NICK and USER accepted in time, closing")
			case !t.pinged:
				t.pinged = true
				s.deliver([]byte("PING :"+ircServer+"\r\n"), "")
			default:
				s.fail(ReasonReadError, codeTimeout, fmt.Sprintf("ping timeout: no answer for %v, closing", 2*t.cfg.IRCPing))
			}
			continue
		}
		s.setReason(readReason(err))
		break
	}
	return false
}

// line handles one line from the client.
func (t *ircConn) line(line []byte, tooLong bool) {
	s := t.s
	if s.stopped {
		return
	}
	s.takeKicks()
	t.lastIn, t.pinged = time.Now(), false
	var m ircMsg
	var ok bool
	if !tooLong {
		m, tooLong, ok = parseIRC(line)
	}
	if tooLong {
		s.deliver(t.numeric("417", "Input line was too long (limit 512 bytes, tags 4096); it was dropped"), "")
		return
	}
	if !ok {
		return
	}
	if m.command != "PING" && m.command != "PONG" && !s.allow() {
		return
	}
	h, known := ircCommands[m.command]
	switch {
	case !t.registered && (!known || !h.early):
		t.bad++
		if t.bad >= ircMaxBad {
			s.fail(ReasonProtocolError, codeBadMessage, "this is an IRC port and those were not IRC registration commands (NICK, USER), closing")
			return
		}
		s.deliver(t.numeric("451", "You have not registered: send NICK and USER first"), "")
		return
	case !known:
		s.deliver(t.numeric("421", safeParam(m.command), "Unknown command"), "")
		return
	case len(m.params) < h.min:
		s.deliver(t.numeric("461", m.command, "Not enough parameters: "+h.usage), "")
		return
	}
	t.bad = 0
	h.run(t, m.params)
}

// safeParam is a client's word as it may appear in a reply: "*" unless it
// is a plain token.
func safeParam(p string) string {
	if p == "" || p == ircBadCommand || strings.ContainsAny(p, " :\x00\r\n") || len(p) > 64 {
		return "*"
	}
	return p
}

// ircCommand is one command of the IRC table.
type ircCommand struct {
	min   int  // parameters it needs
	early bool // allowed before registration
	usage string
	run   func(t *ircConn, params []string)
}

var ircCommands map[string]ircCommand

func init() {
	ircCommands = map[string]ircCommand{
		"CAP":          {1, true, "CAP LS|REQ|LIST|END", (*ircConn).cmdCap},
		"PASS":         {1, true, "PASS password", (*ircConn).cmdPass},
		"AUTHENTICATE": {1, true, "AUTHENTICATE PLAIN|data|*", (*ircConn).cmdAuthenticate},
		"NICK":         {0, true, "NICK nickname", (*ircConn).cmdNick},
		"USER":         {4, true, "USER user 0 * :realname", (*ircConn).cmdUser},
		"PING":         {0, true, "PING token", (*ircConn).cmdPing},
		"PONG":         {0, true, "PONG token", func(*ircConn, []string) {}},
		"QUIT":         {0, true, "QUIT [:reason]", (*ircConn).cmdQuit},
		"JOIN":         {1, false, "JOIN #room[,#room]", (*ircConn).cmdJoin},
		"PART":         {1, false, "PART #room[,#room]", (*ircConn).cmdPart},
		"PRIVMSG":      {0, false, "PRIVMSG target :text", (*ircConn).cmdPrivmsg},
		"NOTICE":       {0, false, "NOTICE target :text", (*ircConn).cmdNotice},
		"NAMES":        {0, false, "NAMES #room", (*ircConn).cmdNames},
		"WHO":          {0, false, "WHO #room|nick", (*ircConn).cmdWho},
		"WHOIS":        {1, false, "WHOIS nick", (*ircConn).cmdWhois},
		"LIST":         {0, false, "LIST", (*ircConn).cmdList},
		"TOPIC":        {1, false, "TOPIC #room", (*ircConn).cmdTopic},
		"MODE":         {1, false, "MODE target", (*ircConn).cmdMode},
		"MOTD":         {0, false, "MOTD", (*ircConn).motd},
		"TAGMSG":       {0, false, "TAGMSG target", func(*ircConn, []string) {}},
		"USERHOST":     {1, false, "USERHOST nick", (*ircConn).cmdUserhost},
		"OPER":         {2, false, "OPER name password", (*ircConn).cmdOper},
		"KICK":         {2, false, "KICK #room nick [:reason]", (*ircConn).cmdKick},
		// The chat-wide moderation commands, as raw lines (irssi: /quote
		// BAN bob 1h spam); replies are NOTICEs.
		"BAN":    {1, false, "BAN nick|ip|cidr [duration] [:reason]", ircLine((*Session).cmdBan)},
		"UNBAN":  {1, false, "UNBAN nick|ip|cidr", ircLine((*Session).cmdUnban)},
		"BANS":   {0, false, "BANS", ircLine((*Session).cmdBans)},
		"MUTE":   {1, false, "MUTE nick [duration] [:reason]", ircLine((*Session).cmdMute)},
		"UNMUTE": {1, false, "UNMUTE nick", ircLine((*Session).cmdUnmute)},
	}
}

func (t *ircConn) reply(code string, params ...string) {
	t.s.deliver(t.numeric(code, params...), "")
}

// Registration.

func (t *ircConn) cmdCap(p []string) {
	sub := strings.ToUpper(p[0])
	switch sub {
	case "LS":
		if !t.registered {
			t.capping = true
		}
		names := make([]string, len(ircCaps))
		for i, c := range ircCaps {
			names[i] = c.name
		}
		t.capReply("LS", strings.Join(names, " "))
	case "LIST":
		var names []string
		for _, c := range ircCaps {
			if t.st.has(c.bit) {
				names = append(names, c.name)
			}
		}
		t.capReply("LIST", strings.Join(names, " "))
	case "REQ":
		if !t.registered {
			t.capping = true
		}
		var want string
		if len(p) > 1 {
			want = p[1]
		}
		caps := t.st.caps.Load()
		for _, name := range strings.Fields(want) {
			off := strings.HasPrefix(name, "-")
			bit := uint32(0)
			for _, c := range ircCaps {
				if c.name == strings.TrimPrefix(name, "-") {
					bit = c.bit
				}
			}
			if bit == 0 {
				t.capReply("NAK", sanitizeIRC(want))
				return
			}
			if off {
				caps &^= bit
			} else {
				caps |= bit
			}
		}
		t.st.caps.Store(caps)
		t.capReply("ACK", sanitizeIRC(want))
	case "END":
		t.capping = false
		t.register()
	default:
		t.reply("410", safeParam(p[0]), "Invalid CAP command")
	}
}

func (t *ircConn) capReply(sub, text string) {
	t.s.deliver(appendServerLine(nil, "CAP", t.st.me()+" "+sub, text), "")
}

func (t *ircConn) cmdPass(p []string) {
	if t.registered {
		t.reply("462", "You may not reregister")
		return
	}
	t.pass, t.passGiven = p[0], true
}

// cmdAuthenticate is SASL PLAIN (IRCv3), for a registered nickname:
// AUTHENTICATE PLAIN, then the base64 of "\x00NICK\x00PASSWORD" (an
// authorization identity, if any, must be NICK). Wrong passwords go
// through the password throttle; the client may try again, or register
// without (then the nickname's password is asked for as without SASL).
func (t *ircConn) cmdAuthenticate(p []string) {
	s := t.s
	switch {
	case t.registered:
		t.reply("907", "You have already authenticated using SASL")
		return
	case !t.st.has(capSASL):
		t.reply("904", "SASL authentication failed: request the sasl capability first")
		return
	case p[0] == "*":
		t.sasl = false
		t.reply("906", "SASL authentication aborted")
		return
	case !t.sasl:
		if !strings.EqualFold(p[0], "PLAIN") {
			t.reply("908", "PLAIN", "are the available SASL mechanisms")
			t.reply("904", "SASL authentication failed")
			return
		}
		t.sasl = true
		s.deliver([]byte("AUTHENTICATE +\r\n"), "")
		return
	}
	t.sasl = false
	raw, err := base64.StdEncoding.DecodeString(p[0])
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 || (parts[0] != "" && parts[0] != parts[1]) || validNick(parts[1]) != "" {
		t.reply("904", "SASL authentication failed: send the base64 of \\0NICK\\0PASSWORD")
		return
	}
	nick, pw := parts[1], parts[2]
	right := s.registered(nick) && !s.srv.auth.backlogged(s.key, s.srv.cfg.Now()) && s.srv.cfg.Mod.CheckNick(nick, pw)
	if !s.verdict(right, "nickname") {
		if !s.stopped {
			t.reply("904", "SASL authentication failed: too many wrong passwords from your address; wait a few seconds")
		}
		return
	}
	if !right {
		s.srv.modCount(modNickFailed)
		t.reply("904", "SASL authentication failed: no registered nickname "+nick+" with that password")
		return
	}
	s.identified = nick
	t.reply("900", nick+"!"+nick+"@"+ircServer, nick, "You are now logged in as "+nick)
	t.reply("903", "SASL authentication successful")
}

func (t *ircConn) cmdUser(p []string) {
	if t.registered {
		t.reply("462", "You may not reregister")
		return
	}
	t.user = true
	t.register()
}

func (t *ircConn) cmdNick(p []string) {
	if len(p) == 0 || p[0] == "" {
		t.reply("431", "No nickname given")
		return
	}
	nick := sanitizeIRC(p[0])
	if len(p[0]) > 64 {
		nick = nick[:64]
	}
	t.st.tried.Store(&nick)
	if !t.registered {
		t.wantNick = nick
		t.register()
		return
	}
	t.changeNick(nick)
}

// register completes registration once NICK and USER are in and CAP
// negotiation is over: the server password, then the nickname claim, then
// the welcome.
func (t *ircConn) register() {
	s := t.s
	if t.registered || t.capping || !t.user || t.wantNick == "" {
		return
	}
	// PASS is the server's password, or a registered nickname's; with a
	// server password, both: PASS :SERVERPASSWORD NICKPASSWORD.
	serverPw, nickPw := "", t.pass
	if t.cfg.Password != "" {
		serverPw, nickPw, _ = strings.Cut(t.pass, " ")
	}
	if t.cfg.Password != "" && !s.authed {
		if !t.passGiven {
			s.fail(ReasonHandshakeFailed, codeBadPassword, "this server needs a password: send PASS before NICK and USER (irssi: /connect host port PASSWORD), closing")
			return
		}
		if !s.checkPassword(serverPw) {
			return
		}
		s.authed = true
	}
	nick := t.wantNick
	t.wantNick = ""
	if !s.identify(nick, nickPw) {
		return
	}
	if !s.claim(nick) {
		return
	}
	t.registered = true
	t.st.nick.Store(&nick)
	s.srv.stats.opened[t.transportSlot()].Add(1)
	s.srv.stats.connected[t.transportSlot()].Add(1)
	s.log.Info("session started", "nick", nick)

	t.reply("001", "Welcome to the "+ircServer+" chat, "+nick+"; rooms are channels: /join #"+t.cfg.DefaultRoom)
	t.reply("002", "Your host is "+ircServer+", a chatd gateway shared with nc and browser users")
	t.reply("003", "This server was created "+processStart.UTC().Format(time.RFC1123))
	t.reply("004", ircServer, "chatd", "i", "n")
	t.reply("005", "CASEMAPPING=ascii", "CHANTYPES=#", "NICKLEN=32", "CHANNELLEN=33",
		"NETWORK="+ircServer, "CHANLIMIT=#:"+strconv.Itoa(ircMaxChannels), "PREFIX=(o)@", "CHANMODES=,,,n",
		"TARGMAX=PRIVMSG:"+strconv.Itoa(ircMaxTargets)+",NOTICE:"+strconv.Itoa(ircMaxTargets)+",JOIN:,PART:",
		"are supported by this server")
	t.motd(nil)
}

func (t *ircConn) motd([]string) {
	t.reply("375", "- "+ircServer+" message of the day -")
	for _, l := range []string{
		"IRC, nc and browser users share these rooms; a room is a channel: #lobby is room lobby.",
		"Lines from nc and the browser reach you as PRIVMSG, /me as ACTION, joins and parts as JOIN, PART and QUIT.",
		"Room history is replayed on JOIN between two NOTICEs from " + ircServer + ".",
	} {
		t.reply("372", "- "+l)
	}
	t.reply("376", "End of /MOTD command")
}

func (t *ircConn) cmdPing(p []string) {
	token := ""
	if len(p) > 0 {
		token = sanitizeIRC(p[len(p)-1])
	}
	t.s.deliver(appendServerLine(nil, "PONG", ircServer, token), "")
}

func (t *ircConn) cmdQuit(p []string) {
	s := t.s
	s.partText = "Quit"
	if len(p) > 0 {
		if why := sanitizeIRC(p[0]); why != "" {
			s.partText = "Quit: " + truncateText(why, 200)
		}
	}
	s.finish(ReasonQuit, nil)
	s.stopped = true
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return strings.TrimSpace(s[:n])
}

// cmdUserhost answers for the client itself only.
func (t *ircConn) cmdUserhost(p []string) {
	var out []string
	for _, n := range p {
		if strings.EqualFold(n, t.s.nick) {
			out = append(out, t.s.nick+"=+"+t.s.nick+"@"+ircServer)
		}
	}
	t.reply("302", strings.Join(out, " "))
}

// Nicknames.

func (t *ircConn) changeNick(nick string) {
	s := t.s
	if nick == s.nick {
		return
	}
	if reason := validNick(nick); reason != "" {
		t.reply("432", safeParam(nick), reason)
		return
	}
	if why := s.nickBlocked(nick); why != "" {
		t.reply("432", nick, why)
		return
	}
	if why := s.nickRegistered(nick); why != "" {
		t.reply("433", nick, "the nickname "+nick+" is registered: reconnect with its password (PASS)")
		return
	}
	s.renameTo(nick, func() { t.reply("433", nick, "nickname "+nick+" is taken, choose another") }, func(old string) {
		t.st.nick.Store(&nick)
		// The client learns its new name at once, whatever rooms it is
		// in; the copies its rooms send back are not queued
		// (ircCodec.skips).
		b := appendSource(nil, old)
		s.deliver(append(append(b, "NICK "+nick...), "\r\n"...), "")
	})
}

// Channels.

func (t *ircConn) cmdJoin(p []string) {
	if p[0] == "0" {
		for _, room := range slices.Clone(t.s.chans) {
			t.part(room)
		}
		return
	}
	for i, name := range strings.Split(p[0], ",") {
		if i == ircMaxTargets {
			t.reply("407", "*", "Too many channels at once")
			return
		}
		room, reason := ircChannel(name)
		switch {
		case reason != "":
			t.reply("403", safeParam(name), "No such channel: "+reason)
		case slices.Contains(t.s.chans, room):
		case len(t.s.chans) >= ircMaxChannels:
			t.reply("405", "#"+room, "You have joined too many channels")
		default:
			t.join(room)
		}
	}
}

// join enters room: the client's JOIN and the member list come first,
// then the room's history between two server NOTICEs, then live lines.
func (t *ircConn) join(room string) {
	s := t.s
	ctx, cancel := s.busContext()
	nicks, err := s.srv.bus.Who(ctx, room)
	cancel()
	if err != nil {
		s.log.Warn("who", "room", room, "err", err)
	}
	if !slices.Contains(nicks, s.nick) {
		nicks = append(nicks, s.nick)
		slices.Sort(nicks)
	}
	ch := "#" + room
	b := appendSource(nil, s.nick)
	b = append(append(b, "JOIN "+ch...), "\r\n"...)
	if s.srv.cfg.Mod != nil {
		if tp, ok := s.srv.cfg.Mod.Topic(room); ok {
			b = append(b, t.numeric("332", ch, tp.Text)...)
			b = append(b, t.numeric("333", ch, tp.By, strconv.FormatInt(tp.At.Unix(), 10))...)
		}
	}
	b = t.appendNames(b, ch, markOps(nicks, s.opers()))
	if err := s.joinRoom(room, b); err != nil {
		s.log.Warn("join", "room", room, "err", err)
		s.unavailable("could not join " + ch)
	}
}

// appendNames appends 353 lines (as many as fit in 512 bytes each) and 366.
func (t *ircConn) appendNames(b []byte, ch string, nicks []string) []byte {
	var line []string
	size := 0
	flush := func() {
		if len(line) > 0 {
			b = append(b, t.numeric("353", "=", ch, strings.Join(line, " "))...)
			line, size = line[:0], 0
		}
	}
	for _, n := range nicks {
		if size+len(n)+1 > 400 {
			flush()
		}
		line = append(line, n)
		size += len(n) + 1
	}
	flush()
	return append(b, t.numeric("366", ch, "End of /NAMES list")...)
}

func (t *ircConn) cmdPart(p []string) {
	for _, name := range strings.Split(p[0], ",") {
		room, reason := ircChannel(name)
		switch {
		case reason != "":
			t.reply("403", safeParam(name), "No such channel: "+reason)
		case !slices.Contains(t.s.chans, room):
			t.reply("442", "#"+room, "You're not on that channel")
		default:
			t.part(room)
		}
	}
}

// part leaves room; the client is told at once, as it no longer receives
// the room's events.
func (t *ircConn) part(room string) {
	s := t.s
	s.partRoom(room)
	b := appendSource(nil, s.nick)
	s.deliver(append(b, "PART #"+room+"\r\n"...), "")
}

func (t *ircConn) cmdNames(p []string) {
	if len(p) == 0 {
		t.reply("366", "*", "End of /NAMES list")
		return
	}
	for _, name := range strings.Split(p[0], ",") {
		room, reason := ircChannel(name)
		if reason != "" {
			t.reply("366", safeParam(name), "End of /NAMES list")
			continue
		}
		if nicks, ok := t.members(room); ok {
			t.s.deliver(t.appendNames(nil, "#"+room, markOps(nicks, t.s.opers())), "")
		}
	}
}

// members lists room's members across the cluster; false: the client was told
// why not.
func (t *ircConn) members(room string) ([]string, bool) {
	ctx, cancel := t.s.busContext()
	defer cancel()
	nicks, err := t.s.srv.bus.Who(ctx, room)
	if err != nil {
		t.s.log.Warn("who", "err", err)
		t.s.unavailable("member list unavailable")
		return nil, false
	}
	return nicks, true
}

func (t *ircConn) cmdWho(p []string) {
	mask := "*"
	if len(p) > 0 {
		mask = p[0]
	}
	if room, reason := ircChannel(mask); reason == "" {
		if nicks, ok := t.members(room); ok {
			var b []byte
			ops := t.s.opers()
			for _, n := range nicks {
				flags := "H"
				if containsFold(ops, n) {
					flags = "H@"
				}
				b = append(b, t.numeric("352", "#"+room, n, ircServer, ircServer, n, flags, "0 "+n)...)
			}
			t.s.deliver(append(b, t.numeric("315", "#"+room, "End of /WHO list")...), "")
		}
		return
	}
	if validNick(mask) == "" {
		if found, rooms := t.locate(mask); found != "" {
			ch := "*"
			if len(rooms) > 0 {
				ch = "#" + rooms[0]
			}
			t.reply("352", ch, found, ircServer, ircServer, found, "H", "0 "+found)
		}
	}
	t.reply("315", safeParam(mask), "End of /WHO list")
}

// locate finds nick across the cluster, in a room or not. It returns the
// nickname as its owner spells it ("" if not found) and the rooms it is in.
func (t *ircConn) locate(nick string) (string, []string) {
	s := t.s
	ctx, cancel := s.busContext()
	defer cancel()
	found, rooms, err := s.srv.bus.Whois(ctx, nick)
	if err != nil {
		s.log.Warn("whois", "nick", nick, "err", err)
		return "", nil
	}
	return found, rooms
}

func (t *ircConn) cmdWhois(p []string) {
	nick := p[len(p)-1]
	if validNick(nick) != "" {
		t.reply("401", safeParam(nick), "No such nick")
		t.reply("318", safeParam(nick), "End of /WHOIS list")
		return
	}
	found, rooms := t.locate(nick)
	if found == "" {
		t.reply("401", nick, "No such nick")
		t.reply("318", nick, "End of /WHOIS list")
		return
	}
	t.reply("311", found, found, ircServer, "*", found)
	if len(rooms) > 0 {
		chans := make([]string, len(rooms))
		for i, r := range rooms {
			chans[i] = "#" + r
		}
		t.reply("319", found, strings.Join(chans, " "))
	}
	t.reply("312", found, ircServer, "a chatd gateway (IRC, nc and browser users share rooms)")
	if containsFold(t.s.opers(), found) {
		t.reply("313", found, "is a chat operator")
	}
	t.reply("318", found, "End of /WHOIS list")
}

func (t *ircConn) cmdList([]string) {
	s := t.s
	names, counts, ok := s.roomList()
	if !ok {
		return
	}
	topics := s.srv.roomTopics(names)
	b := t.numeric("321", "Channel", "Users  Name")
	for _, n := range names {
		b = append(b, t.numeric("322", "#"+n, strconv.Itoa(counts[n]), topics[n])...)
	}
	s.deliver(append(b, t.numeric("323", "End of /LIST")...), "")
}

// cmdTopic shows a channel's topic, or sets it (an empty text clears it):
// the rule of /topic (moderation.go).
func (t *ircConn) cmdTopic(p []string) {
	s := t.s
	room, reason := ircChannel(p[0])
	if reason != "" {
		t.reply("403", safeParam(p[0]), "No such channel: "+reason)
		return
	}
	ch := "#" + room
	mod := s.srv.cfg.Mod
	if len(p) > 1 {
		if mod == nil {
			t.reply("482", ch, "Rooms on this server have no topics")
			return
		}
		if !slices.Contains(s.chans, room) {
			t.reply("442", ch, "You're not on that channel")
			return
		}
		if problem := s.setTopic(room, sanitizeIRC(p[1])); problem != "" {
			t.reply("482", ch, problem)
		}
		return
	}
	if mod != nil {
		if tp, ok := mod.Topic(room); ok {
			t.reply("332", ch, tp.Text)
			t.reply("333", ch, tp.By, strconv.FormatInt(tp.At.Unix(), 10))
			return
		}
	}
	t.reply("331", ch, "No topic is set")
}

// ircLine runs a chat command with the IRC parameters as its argument.
func ircLine(cmd func(*Session, string)) func(*ircConn, []string) {
	return func(t *ircConn, p []string) {
		for i := range p {
			p[i] = sanitizeIRC(p[i])
		}
		cmd(t.s, strings.TrimSpace(strings.Join(p, " ")))
	}
}

// cmdOper is /oper: OPER name password.
func (t *ircConn) cmdOper(p []string) {
	if t.s.becomeOper(p[0], p[1]) {
		t.reply("381", "You are now an IRC operator")
	}
}

// cmdKick is /kick: KICK #room nick [:reason].
func (t *ircConn) cmdKick(p []string) {
	s := t.s
	room, reason := ircChannel(p[0])
	if reason != "" {
		t.reply("403", safeParam(p[0]), "No such channel: "+reason)
		return
	}
	if !slices.Contains(s.chans, room) {
		t.reply("442", "#"+room, "You're not on that channel")
		return
	}
	why := ""
	if len(p) > 2 {
		why = sanitizeIRC(p[2])
	}
	nick := p[1]
	s.kickFrom(room, nick, why, func(code, text string) {
		switch code {
		case codeNoSuchNick:
			t.reply("441", safeParam(nick), "#"+room, text)
		case codeNotOper:
			t.reply("482", "#"+room, text)
		default:
			s.errorf(code, "%s", text)
		}
	})
}

func (t *ircConn) cmdMode(p []string) {
	target := p[0]
	if room, reason := ircChannel(target); reason == "" {
		switch {
		case len(p) == 1:
			t.reply("324", "#"+room, "+n")
		case strings.Trim(p[1], "+") == "b":
			t.reply("368", "#"+room, "End of channel ban list")
		default:
			t.reply("482", "#"+room, "Rooms on this server have no modes to change")
		}
		return
	}
	if !strings.EqualFold(target, t.s.nick) {
		t.reply("502", "Can't change mode for other users")
		return
	}
	t.reply("221", "+")
}

// Messages.

func (t *ircConn) cmdPrivmsg(p []string) { t.message(p, false) }
func (t *ircConn) cmdNotice(p []string)  { t.message(p, true) }

// message sends a PRIVMSG or NOTICE to channels and nicknames. A NOTICE is
// never answered with an error (RFC 2812), only dropped.
func (t *ircConn) message(p []string, notice bool) {
	s := t.s
	fail := func(code string, params ...string) {
		if !notice {
			t.reply(code, params...)
		}
	}
	if len(p) == 0 {
		fail("411", "No recipient given (PRIVMSG target :text)")
		return
	}
	if len(p) < 2 || p[1] == "" {
		fail("412", "No text to send")
		return
	}
	kind, text := ircText(p[1])
	if kind == ircCTCP {
		fail("421", "CTCP", "CTCP "+safeParam(text)+" is not supported here; only ACTION (/me) is passed on")
		return
	}
	if text == "" {
		fail("412", "No text to send (after removing control characters)")
		return
	}
	if len(text) > t.cfg.MaxLine {
		fail("417", fmt.Sprintf("line too long (limit %d bytes); it was dropped", t.cfg.MaxLine))
		return
	}
	for i, target := range strings.Split(p[0], ",") {
		if i == ircMaxTargets {
			fail("407", "*", "Too many targets")
			return
		}
		if strings.HasPrefix(target, "#") {
			room, reason := ircChannel(target)
			switch {
			case reason != "":
				fail("403", safeParam(target), "No such channel: "+reason)
			case !slices.Contains(s.chans, room):
				fail("404", "#"+room, "Cannot send to channel: JOIN it first")
			case kind == ircAction:
				s.sayTo(room, KindMe, text)
			default:
				s.sayTo(room, KindSay, text)
			}
			continue
		}
		t.privateTo(target, kind, text, notice)
	}
}

// private sends a private message. Other transports have no private
// action: one arrives as "* nick action".
func (t *ircConn) privateTo(to string, kind ircTextKind, text string, notice bool) {
	s := t.s
	if validNick(to) != "" {
		if !notice {
			t.reply("401", safeParam(to), "No such nick")
		}
		return
	}
	if kind == ircAction {
		text = "* " + s.nick + " " + text
	}
	if s.refuseMuted() {
		return
	}
	ctx, cancel := s.busContext()
	defer cancel()
	ok, err := s.srv.bus.SendPrivate(ctx, to, s.nick, text)
	switch {
	case err != nil:
		s.log.Warn("private message", "err", err)
		s.unavailable("message not sent")
	case !ok:
		if !notice {
			t.reply("401", to, "No such nick")
		}
	default:
		if f := t.ircCodec.private(s.nick, to, text, s.srv.cfg.Now(), true); f != nil {
			s.deliver(f, "")
		}
	}
}

// The transport's side of the Session.

func (t *ircConn) nickRefused(*Session) {}

func (t *ircConn) writeEarly(frame []byte) error {
	_ = t.conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	_, err := t.conn.Write(frame)
	return err
}

func (t *ircConn) setWriteDeadline(d time.Time) { _ = t.conn.SetWriteDeadline(d) }

func (t *ircConn) close() { t.conn.Close() }

// goodbye ends the conversation as IRC servers do: ERROR and the reason.
func (t *ircConn) goodbye(reason CloseReason) {
	_ = t.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	_, _ = t.conn.Write([]byte("ERROR :Closing link: " + reason.quitText() + "\r\n"))
}

// writeBatch coalesces the batch into as few writes as it can
// (writebuf.go). Every frame is written as it was queued: what the client
// is not sent was left out when it was queued (ircCodec.skips).
func (t *ircConn) writeBatch(frames [][]byte) error {
	return writeLines(t.conn, frames)
}
