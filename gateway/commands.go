package gateway

import (
	"slices"
	"strings"
)

// command is one slash command. run gets the text after the command name,
// trimmed.
type command struct {
	name  string
	usage string
	help  string
	run   func(s *Session, arg string)
}

// commandList is the table of slash commands, in the order /help shows
// them; init fills it to break the reference cycle through cmdHelp.
var (
	commandList []command
	commands    map[string]command
)

func init() {
	commandList = []command{
		{"help", "/help", "list commands", (*Session).cmdHelp},
		{"nick", "/nick NEW [PASSWORD]", "change your nickname (PASSWORD: a registered one's)", (*Session).cmdNick},
		{"join", "/join ROOM", "leave this room and join (or create) ROOM", (*Session).cmdJoin},
		{"rooms", "/rooms", "list rooms in use and their sizes", (*Session).cmdRooms},
		{"who", "/who", "list everyone in this room", (*Session).cmdWho},
		{"msg", "/msg NICK TEXT", "send TEXT to NICK only", (*Session).cmdMsg},
		{"me", "/me ACTION", "show an action: * you ACTION", (*Session).cmdMe},
		{"quit", "/quit [REASON]", "leave the chat", (*Session).cmdQuit},
		{"topic", "/topic [TEXT|-]", "show, set or (-) clear this room's topic", (*Session).cmdTopic},
		{"register", "/register PASSWORD", "keep your nickname: it then needs PASSWORD, on every gateway", (*Session).cmdRegister},
		{"drop", "/drop [NICK]", "release your registered nickname (operators: anyone's)", (*Session).cmdDrop},
		{"oper", "/oper NAME PASSWORD", "become an operator", (*Session).cmdOper},
		{"kick", "/kick NICK [REASON]", "operators: put NICK out of this room", (*Session).cmdKick},
		{"ban", "/ban NICK|IP|CIDR [DURATION] [REASON]", "operators: ban from the chat (10m, 2h, 7d; none: until /unban)", (*Session).cmdBan},
		{"unban", "/unban NICK|IP|CIDR", "operators: lift a ban", (*Session).cmdUnban},
		{"bans", "/bans", "operators: list the bans", (*Session).cmdBans},
		{"mute", "/mute NICK [DURATION] [REASON]", "operators: NICK can read but not send", (*Session).cmdMute},
		{"unmute", "/unmute NICK", "operators: lift a mute", (*Session).cmdUnmute},
	}
	commands = make(map[string]command, len(commandList))
	for _, c := range commandList {
		commands[c.name] = c
	}
}

// command runs one line that starts with '/'.
func (s *Session) command(line string) {
	name, arg, _ := strings.Cut(line[1:], " ")
	cmd, ok := commands[strings.ToLower(name)]
	if !ok {
		s.errorf(codeUnknownCommand, "unknown command /%s; try /help", name)
		return
	}
	cmd.run(s, strings.TrimSpace(arg))
}

func (s *Session) usage(name string) {
	s.errorf(codeUsage, "usage: %s", commands[name].usage)
}

func (s *Session) cmdHelp(string) {
	s.notice("commands (a line starting with // sends a literal /):")
	for _, c := range commandList {
		s.noticef("  %-16s %s", c.usage, c.help)
	}
}

func (s *Session) cmdNick(arg string) {
	arg, pw, _ := strings.Cut(arg, " ")
	pw = strings.TrimSpace(pw)
	if arg == "" {
		s.usage("nick")
		return
	}
	if arg == s.nick {
		s.noticef("you are already %s", arg)
		return
	}
	if reason := validNick(arg); reason != "" {
		s.errorf(codeNickInvalid, "%s", reason)
		return
	}
	if why := s.nickBlocked(arg); why != "" {
		s.errorf(codeBanned, "%s", why)
		return
	}
	if !s.nickPassword(arg, pw) {
		return
	}
	s.renameTo(arg, func() { s.errorf(codeNickTaken, "nickname %s is taken, choose another", arg) }, nil)
}

// renameTo makes nick (valid and allowed) the session's nickname, for
// every transport: it claims nick cluster-wide (a change of case keeps the
// claim this gateway holds), releases the old one, indexes the session
// under the new one, calls told (if not nil) so that the client learns it
// first, then tells every room the session is in. When nick is taken it
// calls taken; when the bus cannot answer it says so. Reader goroutine.
func (s *Session) renameTo(nick string, taken func(), told func(old string)) {
	ctx, cancel := s.busContext()
	defer cancel()
	old := s.nick
	if !strings.EqualFold(nick, old) {
		ok, err := s.srv.bus.ClaimNick(ctx, nick)
		switch {
		case err != nil:
			s.log.Warn("claim nickname", "err", err)
			s.unavailable("nickname not changed")
			return
		case !ok:
			taken()
			return
		}
		if err := s.srv.bus.ReleaseNick(ctx, old); err != nil {
			s.log.Warn("release nickname", "nick", old, "err", err)
		}
	}
	s.srv.dropNick(s)
	s.nick = nick
	s.srv.addNick(s)
	if told != nil {
		told(old)
	}
	rooms := s.chans
	if s.room != "" {
		rooms = append([]string{s.room}, rooms...)
	}
	for _, room := range rooms {
		if err := s.srv.bus.Rename(ctx, room, old, nick); err != nil {
			s.log.Warn("rename", "room", room, "err", err)
		}
	}
	s.renamedOper(old)
	s.log.Info("nickname changed", "from", old, "to", nick)
}

func (s *Session) cmdJoin(arg string) {
	if arg == "" {
		s.usage("join")
		return
	}
	name, reason := roomName(arg)
	if reason != "" {
		s.errorf(codeBadRoom, "%s", reason)
		return
	}
	if name == s.room {
		s.noticef("you are already in %s", name)
		return
	}
	if err := s.join(name, nil); err != nil {
		s.log.Warn("join", "room", name, "err", err)
		s.unavailable("could not join " + name)
	}
}

func (s *Session) cmdRooms(string) {
	if names, counts, ok := s.roomList(); ok {
		s.deliver(s.enc.rooms(names, counts, s.srv.roomTopics(names)), "")
	}
}

// roomList asks the bus for the rooms in use across the cluster and their
// member counts, names sorted. When the bus cannot answer it tells the
// client so and reports false.
func (s *Session) roomList() (names []string, counts map[string]int, ok bool) {
	ctx, cancel := s.busContext()
	defer cancel()
	counts, err := s.srv.bus.Rooms(ctx)
	if err != nil {
		s.log.Warn("rooms", "err", err)
		s.unavailable("room list unavailable")
		return nil, nil, false
	}
	names = make([]string, 0, len(counts))
	for name := range counts {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, counts, true
}

func (s *Session) cmdWho(string) {
	ctx, cancel := s.busContext()
	defer cancel()
	nicks, err := s.srv.bus.Who(ctx, s.room)
	if err != nil {
		s.log.Warn("who", "err", err)
		s.unavailable("member list unavailable")
		return
	}
	s.deliver(s.enc.who(s.room, nicks, s.opers()), "")
}

func (s *Session) cmdMsg(arg string) {
	to, text, _ := strings.Cut(arg, " ")
	text = strings.TrimSpace(text)
	if to == "" || text == "" {
		s.usage("msg")
		return
	}
	if validNick(to) != "" {
		s.errorf(codeNoSuchNick, "no such nickname: %s", to)
		return
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
		s.errorf(codeNoSuchNick, "no such nickname: %s", to)
	default:
		s.deliver(s.enc.private(s.nick, to, text, s.srv.cfg.Now(), true), "")
	}
}

func (s *Session) cmdMe(arg string) {
	if arg == "" {
		s.usage("me")
		return
	}
	s.say(KindMe, arg)
}

func (s *Session) cmdQuit(arg string) {
	if arg != "" {
		s.log.Info("quit", "nick", s.nick, "message", arg)
	}
	s.finish(ReasonQuit, s.enc.notice("bye"))
	s.stopped = true
}

// unavailable refuses a command whose bus call failed, saying why: the
// link to the bus is down, or the bus could not answer (for instance while
// JetStream has lost its quorum, with the link up).
func (s *Session) unavailable(what string) {
	why := "the chat is unavailable right now, try again later"
	if s.srv.isLinkDown() {
		why = "the chat link is down"
	}
	s.errorf(codeUnavailable, "%s: %s", what, why)
}
