package gateway

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Moderation (docs/protocol.md, "Moderation"): operators, kicks, bans,
// mutes and topics, the same on every gateway and transport. The state
// lives on the bus (Moderation); each gateway keeps a snapshot of the bans
// and mutes (modSnap), refreshed whenever the bus reports a change
// (ApplyModeration), and applies it to its own sessions: a banned one is
// closed, a muted one cannot send. A kick is an order to the target's
// gateway (Moderation.Kick), which removes the user and announces it.

// Ban is one cluster-wide ban: of a nickname (Nick) or of an address
// prefix (Net, valid). Until zero: no end.
type Ban struct {
	Nick       string
	Net        netip.Prefix
	By, Reason string
	At, Until  time.Time
}

// Mute is a muted nickname: the user reads but cannot send. Until zero: no
// end.
type Mute struct {
	Nick, By, Reason string
	At, Until        time.Time
}

// Topic is a room's topic.
type Topic struct {
	Text, By string
	At       time.Time
}

// Moderation is what a gateway needs from the bus for moderation; cmd/chatd
// adapts *bus.Conn to it. Methods are safe for concurrent use; Bans, Mutes
// and Topic read a local copy and do not block. The func given to
// ReceiveKicks runs on a bus goroutine and must not block.
type Moderation interface {
	// SetOper records (on) or removes that nick, a user of this gateway, is
	// an operator; Opers lists the operators across the cluster.
	SetOper(ctx context.Context, nick string, on bool) error
	Opers(ctx context.Context) ([]string, error)
	// PutBan bans b.Nick, or b.Net if valid; DeleteBan lifts it and
	// reports whether there was one; Bans lists those in force.
	PutBan(ctx context.Context, b Ban) error
	DeleteBan(ctx context.Context, b Ban) (bool, error)
	Bans() []Ban
	PutMute(ctx context.Context, m Mute) error
	DeleteMute(ctx context.Context, nick string) (bool, error)
	Mutes() []Mute
	// SetTopic sets room's topic (empty text: clears it) and announces it
	// to the room (KindTopic); Topic reads it.
	SetTopic(ctx context.Context, room string, t Topic) error
	Topic(room string) (Topic, bool)
	// Kick asks nick's gateway to remove nick from room; false: no gateway
	// did (not connected, or not in room).
	Kick(ctx context.Context, room, nick, by, reason string) (bool, error)
	ReceiveKicks(kick func(room, nick, by, reason string) bool) (stop func(), err error)
	// Registered reports whether nick is registered: whoever takes it must
	// give its password. CheckNick reports whether password is nick's (it
	// may be slow: a password hash). Register ties nick to password, Drop
	// releases it and reports whether it was registered.
	Registered(nick string) bool
	CheckNick(nick, password string) bool
	Register(ctx context.Context, nick, password string) error
	Drop(ctx context.Context, nick string) (bool, error)
	// PartKicked is Bus.Part for a kicked user: the room hears KindKick,
	// text "<by> <reason>".
	PartKicked(ctx context.Context, room, nick, by, reason string) error
}

// Room event kinds of moderation.
const (
	// KindKick: nick was removed from the room; text is "<operator>" or
	// "<operator> <reason>".
	KindKick = "kick"
	// KindTopic: nick set the room's topic to text (empty: cleared).
	KindTopic = "topic"
)

// Error codes of moderation.
const (
	codeNotOper   = "not_operator"
	codeBadOper   = "bad_operator"
	codeKicked    = "kicked"
	codeMuted     = "muted"
	codeBadTarget = "bad_target"
	codeNoMod     = "no_moderation"
	// codeNickRegistered: the nickname is registered and no password (or
	// no right one) was given for it.
	codeNickRegistered = "nick_registered"
)

// Limits of moderation input.
const (
	maxReason   = 300 // bytes of a reason
	maxTopic    = 390 // bytes of a topic
	maxDuration = 10 * 365 * 24 * time.Hour
)

// Moderation actions, counted in Stats.Moderation.
const (
	modOper = iota
	modOperFailed
	modKick
	modBan
	modUnban
	modMute
	modUnmute
	modTopic
	modRefused // a non-operator's attempt
	modRegister
	modDrop
	modNickFailed // a wrong password for a registered nickname
	numModActions
)

var modActionNames = [numModActions]string{"oper", "oper_failed", "kick", "ban", "unban", "mute", "unmute", "topic", "refused",
	"register", "drop", "nick_password_failed"}

// Bounds of a nickname's password, in bytes (bcrypt reads at most 72).
const (
	minNickPassword = 8
	maxNickPassword = 72
)

// modSnap is a gateway's copy of the bans and mutes, rebuilt whole on
// every change.
type modSnap struct {
	nickBans map[string]Ban // lower-cased nickname
	netBans  []Ban
	mutes    map[string]Mute // lower-cased nickname
}

func (m *modSnap) nickBan(nick string, now time.Time) (Ban, bool) {
	if m == nil || len(m.nickBans) == 0 {
		return Ban{}, false
	}
	b, ok := m.nickBans[strings.ToLower(nick)]
	return b, ok && active(b.Until, now)
}

func (m *modSnap) netBan(key netip.Prefix, now time.Time) (Ban, bool) {
	if m == nil || !key.IsValid() {
		return Ban{}, false
	}
	for _, b := range m.netBans {
		if b.Net.Overlaps(key) && active(b.Until, now) {
			return b, true
		}
	}
	return Ban{}, false
}

func (m *modSnap) mute(nick string, now time.Time) *Mute {
	if m == nil || len(m.mutes) == 0 {
		return nil
	}
	if mu, ok := m.mutes[strings.ToLower(nick)]; ok && active(mu.Until, now) {
		return &mu
	}
	return nil
}

func active(until, now time.Time) bool { return until.IsZero() || now.Before(until) }

// refreshMod rebuilds the snapshot from the bus.
func (srv *Server) refreshMod() *modSnap {
	snap := &modSnap{nickBans: map[string]Ban{}, mutes: map[string]Mute{}}
	for _, b := range srv.cfg.Mod.Bans() {
		if b.Net.IsValid() {
			snap.netBans = append(snap.netBans, b)
		} else {
			snap.nickBans[strings.ToLower(b.Nick)] = b
		}
	}
	for _, m := range srv.cfg.Mod.Mutes() {
		snap.mutes[strings.ToLower(m.Nick)] = m
	}
	srv.mod.Store(snap)
	return snap
}

// ApplyModeration brings this gateway's sessions in line with the
// moderation state on the bus: it closes those a ban now covers, by
// nickname or address, and tells those newly muted or unmuted. Call it
// after the state changed; it does not block.
func (srv *Server) ApplyModeration() {
	if srv.cfg.Mod == nil {
		return
	}
	snap := srv.refreshMod()
	now := srv.cfg.Now()
	srv.mu.Lock()
	sessions := srv.sessionList()
	srv.mu.Unlock()
	for _, s := range sessions {
		if b, ok := snap.netBan(s.key, now); ok {
			s.log.Info("banned: closing", "addr", s.ip.String(), "ban", b.Net.String())
			s.kick(ReasonBanned, codeBanned, banText(b, "your address"))
			continue
		}
		nick := s.publicNick()
		if nick == "" {
			continue
		}
		if b, ok := snap.nickBan(nick, now); ok {
			s.log.Info("banned: closing", "nick", nick)
			s.kick(ReasonBanned, codeBanned, banText(b, "the nickname "+b.Nick))
			continue
		}
		m := snap.mute(nick, now)
		old := s.muted.Swap(m)
		switch {
		case m != nil && old == nil:
			s.errorf(codeMuted, "%s", muteText(m))
		case m == nil && old != nil:
			s.notice("you are no longer muted")
		}
	}
}

// banText tells a banned client why it is closed.
func banText(b Ban, what string) string {
	t := what + " is banned from this chat by " + b.By
	if !b.Until.IsZero() {
		t += " until " + b.Until.UTC().Format("2006-01-02 15:04 UTC")
	}
	if b.Reason != "" {
		t += ": " + b.Reason
	}
	return t + ", closing"
}

func muteText(m *Mute) string {
	t := "you are muted by " + m.By
	if !m.Until.IsZero() {
		t += " until " + m.Until.UTC().Format("15:04:05 UTC")
	}
	if m.Reason != "" {
		t += " (" + m.Reason + ")"
	}
	return t + ": you can read but not send"
}

// publicNick is the session's nickname, safe from any goroutine ("" before
// the handshake).
func (s *Session) publicNick() string {
	if p := s.shownNick.Load(); p != nil {
		return *p
	}
	return ""
}

func (s *Session) setPublicNick(nick string) {
	s.shownNick.Store(&nick)
	if m := s.srv.mod.Load(); m != nil {
		s.muted.Store(m.mute(nick, s.srv.cfg.Now()))
	}
}

// bannedNick reports why nick may not be used, or "".
func (srv *Server) bannedNick(nick string) string {
	if b, ok := srv.mod.Load().nickBan(nick, srv.cfg.Now()); ok {
		return strings.TrimSuffix(banText(b, "the nickname "+nick), ", closing")
	}
	return ""
}

// bannedAddr reports why a client from key may not connect, or "".
func (srv *Server) bannedAddr(key netip.Prefix) string {
	if b, ok := srv.mod.Load().netBan(key, srv.cfg.Now()); ok {
		return strings.TrimSuffix(banText(b, "your address"), ", closing")
	}
	return ""
}

// nickBlocked says why the session may not take nick: it is banned, or
// the session is muted (a new name would shed the mute); "" if it may.
func (s *Session) nickBlocked(nick string) string {
	if why := s.srv.bannedNick(nick); why != "" {
		return why
	}
	if s.mutedNow() != nil {
		return "you cannot change nickname while muted"
	}
	return ""
}

// mutedNow is the mute in force on the session, or nil. Reader goroutine.
func (s *Session) mutedNow() *Mute {
	m := s.muted.Load()
	if m != nil && !active(m.Until, s.srv.cfg.Now()) {
		s.muted.CompareAndSwap(m, nil)
		return nil
	}
	return m
}

// refuseMuted tells a muted client its line was not sent, and reports
// whether it is muted.
func (s *Session) refuseMuted() bool {
	m := s.mutedNow()
	if m == nil {
		return false
	}
	s.errorf(codeMuted, "%s; your line was not sent", muteText(m))
	return true
}

// modStats counts one moderation action.
func (srv *Server) modCount(action int) { srv.stats.mod[action].Add(1) }

// moderation returns the bus's moderation, or tells the client there is
// none and returns nil.
func (s *Session) moderation() Moderation {
	if s.srv.cfg.Mod == nil {
		s.errorf(codeNoMod, "moderation is not available on this server")
	}
	return s.srv.cfg.Mod
}

// requireOper reports whether the session is an operator; if not, the
// client gets one ERROR line and the attempt is counted and logged.
func (s *Session) requireOper(cmd string) bool {
	if s.oper {
		return true
	}
	s.srv.modCount(modRefused)
	s.log.Info("moderation refused: not an operator", "nick", s.nick, "command", cmd)
	s.errorf(codeNotOper, "/%s is for operators; see /oper", cmd)
	return false
}

// cmdOper makes the session an operator: /oper NAME PASSWORD. Wrong
// passwords are throttled per address like the server password (guard.go).
func (s *Session) cmdOper(arg string) {
	name, pw, _ := strings.Cut(arg, " ")
	pw = strings.TrimSpace(pw)
	if name == "" || pw == "" {
		s.usage("oper")
		return
	}
	s.becomeOper(name, pw)
}

// becomeOper checks an operator's name and password and, if right, makes the
// session an operator; it reports whether it did.
func (s *Session) becomeOper(name, pw string) bool {
	mod := s.moderation()
	if mod == nil {
		return false
	}
	if s.oper {
		s.notice("you are already an operator")
		return true
	}
	check := s.srv.cfg.Operators
	right := !s.srv.auth.backlogged(s.key, s.srv.cfg.Now()) && check != nil && check(name, pw)
	if !s.verdict(right, "operator") {
		s.srv.modCount(modOperFailed)
		if !s.stopped {
			s.errorf(codeThrottled, "too many wrong passwords from your address; wait a few seconds before trying again")
		}
		return false
	}
	if !right {
		s.srv.modCount(modOperFailed)
		s.log.Warn("wrong operator name or password", "nick", s.nick, "name", name, "addr", s.ip.String())
		s.errorf(codeBadOper, "wrong operator name or password")
		return false
	}
	ctx, cancel := s.busContext()
	defer cancel()
	if err := mod.SetOper(ctx, s.nick, true); err != nil {
		s.log.Warn("set operator", "err", err)
		s.unavailable("you are not an operator")
		return false
	}
	s.oper = true
	s.srv.modCount(modOper)
	s.log.Info("moderation: operator", "actor", s.nick, "operator", name)
	s.noticef("you are now an operator (%s)", name)
	return true
}

// verdict waits, on the reader goroutine, for the address's turn to be
// answered about a password (guard.go), as for the server password, right
// or wrong. It reports false when the attempt is refused unjudged (too
// many waiting from the address) or the session closed meanwhile
// (s.stopped is then set).
func (s *Session) verdict(right bool, what string) bool {
	now := s.srv.cfg.Now()
	at, fails, judged := s.srv.auth.attempt(s.key, right, now)
	if !judged {
		s.log.Warn(what+" password attempt refused: too many wrong passwords from this address",
			"addr", s.ip.String(), "key", s.key.String(), "failures", fails)
		return false
	}
	if !right {
		s.log.Warn("wrong "+what+" password", "addr", s.ip.String(), "key", s.key.String(), "failures", fails,
			"answer_in", at.Sub(now))
	}
	if wait := at.Sub(now); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.closed:
			t.Stop()
			s.stopped = true
			return false
		}
	}
	return true
}

// backlogged reports whether key's attempts already wait in line for more
// than the longest delay: its next attempt will be refused unjudged, so a
// slow password hash need not be computed for it (a stranger cannot make
// the gateway compute hashes faster than the throttle lets it guess).
func (a *authThrottle) backlogged(key netip.Prefix, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.keys[key]
	return e != nil && e.free.Sub(now) > a.max
}

// registered reports whether nick is a registered nickname.
func (s *Session) registered(nick string) bool {
	return s.srv.cfg.Mod != nil && s.srv.cfg.Mod.Registered(nick)
}

// identify checks, in the handshake, the password given for nick, if nick
// is registered: right, the session may take nick (claim); wrong, the
// client is told and the session closes, as after a wrong server
// password. It reports false if the session is closing.
func (s *Session) identify(nick, pw string) bool {
	if pw == "" || validNick(nick) != "" || !s.registered(nick) {
		return true
	}
	right := !s.srv.auth.backlogged(s.key, s.srv.cfg.Now()) && s.srv.cfg.Mod.CheckNick(nick, pw)
	if !s.verdict(right, "nickname") {
		if !s.stopped {
			s.fail(ReasonThrottled, codeThrottled, "too many wrong passwords from your address; wait a few seconds before trying again, closing")
		}
		return false
	}
	if !right {
		s.srv.modCount(modNickFailed)
		s.fail(ReasonHandshakeFailed, codeBadPassword, "wrong password for the nickname "+nick+", closing")
		return false
	}
	s.identified = nick
	return true
}

// nickRegistered says why the session may not take nick without its
// password, or "".
func (s *Session) nickRegistered(nick string) string {
	if strings.EqualFold(s.identified, nick) || !s.registered(nick) {
		return ""
	}
	how := "send it as the line after your nickname"
	switch {
	case s.isIRC():
		how = "send PASS with it before NICK (with a server password: PASS :SERVERPASSWORD NICKPASSWORD)"
	case s.enc.transportSlot() == 1:
		how = `put it in the hello as "nick_password"`
	}
	return "the nickname " + nick + " is registered: give its password (" + how + ")"
}

// regLine handles a TCP client's handshake line once the server password,
// if any, is given: a nickname, or the password of the registered one it
// asked for (the line after it, like the server password).
func (s *Session) regLine(text string) {
	if nick := s.regNick; nick != "" {
		s.regNick = ""
		pw := strings.TrimSpace(stripSelfPrefix(text, nick))
		if pw == "" {
			pw = "\x00" // a wrong one
		}
		if s.identify(nick, pw) {
			s.hello(nick)
		}
		return
	}
	if validNick(text) == "" && s.nickRegistered(text) != "" {
		s.regNick = text
		if s.sendEarly(s.enc.notice("the nickname "+text+" is registered: send its password as your next line")) != nil {
			s.stopped = true
		}
		return
	}
	s.hello(text)
}

// cmdRegister ties the session's nickname to a password: /register PASSWORD.
func (s *Session) cmdRegister(arg string) {
	mod := s.moderation()
	if mod == nil {
		return
	}
	switch {
	case arg == "":
		s.usage("register")
		return
	case len(arg) < minNickPassword || len(arg) > maxNickPassword:
		s.errorf(codeUsage, "a password must be %d to %d bytes", minNickPassword, maxNickPassword)
		return
	case s.nickRegistered(s.nick) != "":
		s.errorf(codeNickRegistered, "the nickname %s is registered already", s.nick)
		return
	}
	ctx, cancel := s.busContext()
	defer cancel()
	if err := mod.Register(ctx, s.nick, arg); err != nil {
		s.log.Warn("register", "err", err)
		s.unavailable("nickname not registered")
		return
	}
	s.identified = s.nick
	s.srv.modCount(modRegister)
	s.log.Info("moderation: register", "actor", s.nick, "target", s.nick)
	s.noticef("the nickname %s is registered: from now on it needs this password, on every gateway; /drop releases it", s.nick)
}

// cmdDrop releases a registered nickname: /drop (one's own) or, for
// operators, /drop NICK.
func (s *Session) cmdDrop(arg string) {
	mod := s.moderation()
	if mod == nil {
		return
	}
	nick := arg
	if nick == "" {
		nick = s.nick
	}
	if validNick(nick) != "" {
		s.usage("drop")
		return
	}
	if !strings.EqualFold(nick, s.nick) && !s.requireOper("drop") {
		return
	}
	ctx, cancel := s.busContext()
	defer cancel()
	ok, err := mod.Drop(ctx, nick)
	switch {
	case err != nil:
		s.log.Warn("drop", "err", err)
		s.unavailable("nickname not dropped")
	case !ok:
		s.errorf(codeBadTarget, "the nickname %s is not registered", nick)
	default:
		s.srv.modCount(modDrop)
		s.log.Info("moderation: drop", "actor", s.nick, "target", nick)
		s.noticef("the nickname %s is no longer registered", nick)
	}
}

// nickPassword checks, for /nick NEW PASSWORD, the password of a
// registered NEW; it reports whether the session may take NEW, having
// told the client if not.
func (s *Session) nickPassword(nick, pw string) bool {
	if s.nickRegistered(nick) == "" {
		return true
	}
	if pw == "" {
		s.errorf(codeNickRegistered, "the nickname %s is registered: /nick %s PASSWORD", nick, nick)
		return false
	}
	right := !s.srv.auth.backlogged(s.key, s.srv.cfg.Now()) && s.srv.cfg.Mod.CheckNick(nick, pw)
	if !s.verdict(right, "nickname") {
		if !s.stopped {
			s.errorf(codeThrottled, "too many wrong passwords from your address; wait a few seconds before trying again")
		}
		return false
	}
	if !right {
		s.srv.modCount(modNickFailed)
		s.errorf(codeBadPassword, "wrong password for the nickname %s", nick)
		return false
	}
	s.identified = nick
	return true
}

// endOper drops the session's operator record (the session ends or
// changes nickname from old).
func (s *Session) endOper(old string) {
	if !s.oper || s.srv.cfg.Mod == nil {
		return
	}
	ctx, cancel := s.busContext()
	defer cancel()
	if err := s.srv.cfg.Mod.SetOper(ctx, old, false); err != nil {
		s.log.Warn("drop operator record", "nick", old, "err", err)
	}
}

// renamedOper moves the operator record from old to the session's nickname.
func (s *Session) renamedOper(old string) {
	if !s.oper || s.srv.cfg.Mod == nil {
		return
	}
	s.endOper(old)
	ctx, cancel := s.busContext()
	defer cancel()
	if err := s.srv.cfg.Mod.SetOper(ctx, s.nick, true); err != nil {
		s.log.Warn("move operator record", "nick", s.nick, "err", err)
	}
}

// opers lists the operators across the cluster; nil when unknown.
func (s *Session) opers() []string {
	if s.srv.cfg.Mod == nil {
		return nil
	}
	ctx, cancel := s.busContext()
	defer cancel()
	ops, err := s.srv.cfg.Mod.Opers(ctx)
	if err != nil {
		s.log.Warn("operators", "err", err)
	}
	return ops
}

func containsFold(list []string, v string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, v) })
}

// parseDuration reads a duration: Go's form (90s, 10m, 1h30m) or a number
// of days (2d) or weeks (1w).
func parseDuration(s string) (time.Duration, bool) {
	var d time.Duration
	var err error
	switch {
	case strings.HasSuffix(s, "d") || strings.HasSuffix(s, "w"):
		n, perr := strconv.Atoi(s[:len(s)-1])
		if perr != nil || n <= 0 || n > 3650 {
			return 0, false
		}
		d = time.Duration(n) * 24 * time.Hour
		if s[len(s)-1] == 'w' {
			d *= 7
		}
	default:
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, false
		}
	}
	return d, d > 0 && d <= maxDuration
}

// durationAndReason splits "[duration] [reason]". A first word that starts
// with a digit must be a duration. It reports a problem for the client.
func durationAndReason(arg string) (d time.Duration, reason, problem string) {
	first, rest, _ := strings.Cut(arg, " ")
	if first != "" && isDigit(first[0]) {
		var ok bool
		if d, ok = parseDuration(first); !ok {
			return 0, "", fmt.Sprintf("bad duration %q: use a number and s, m, h, d or w (such as 10m, 2h, 7d), at most 10 years", first)
		}
		arg = rest
	}
	reason = strings.TrimSpace(arg)
	if len(reason) > maxReason {
		return 0, "", fmt.Sprintf("reason too long (limit %d bytes)", maxReason)
	}
	return d, reason, ""
}

func untilOf(now time.Time, d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return now.Add(d)
}

func forText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return " for " + d.String()
}

// cmdKick removes a user from the room: /kick NICK [REASON].
func (s *Session) cmdKick(arg string) {
	nick, reason, _ := strings.Cut(arg, " ")
	if nick == "" {
		s.usage("kick")
		return
	}
	s.kickFrom(s.room, nick, strings.TrimSpace(reason), func(code, text string) { s.errorf(code, "%s", text) })
}

// kickFrom asks the gateway of nick to remove it from room; fail reports
// a problem to the client.
func (s *Session) kickFrom(room, nick, reason string, fail func(code, text string)) {
	mod := s.moderation()
	if mod == nil || !s.requireOper("kick") {
		return
	}
	switch {
	case validNick(nick) != "":
		fail(codeNoSuchNick, "no such nickname: "+nick)
		return
	case strings.EqualFold(nick, s.nick):
		fail(codeBadTarget, "you cannot kick yourself")
		return
	case len(reason) > maxReason:
		fail(codeTooLong, fmt.Sprintf("reason too long (limit %d bytes)", maxReason))
		return
	}
	ctx, cancel := s.busContext()
	defer cancel()
	ok, err := mod.Kick(ctx, room, nick, s.nick, reason)
	switch {
	case err != nil:
		s.log.Warn("kick", "err", err)
		s.unavailable("nobody kicked")
	case !ok:
		fail(codeNoSuchNick, "no such nickname in "+room+": "+nick)
	default:
		s.srv.modCount(modKick)
		s.log.Info("moderation: kick", "actor", s.nick, "target", nick, "room", room, "reason", reason)
	}
}

// receiveKick is the bus callback for kick orders: it removes nick from
// room if nick is a user of this gateway in room. It does not block.
func (srv *Server) receiveKick(room, nick, by, reason string) bool {
	srv.mu.Lock()
	s := srv.nicks[strings.ToLower(nick)]
	r := srv.rooms[room]
	srv.mu.Unlock()
	if s == nil || r == nil {
		return false
	}
	r.mu.RLock()
	_, in := r.slots[s]
	r.mu.RUnlock()
	if !in {
		return false
	}
	text := "you were kicked from " + room + " by " + by
	if reason != "" {
		text += ": " + reason
	}
	s.log.Info("moderation: kicked", "target", nick, "actor", by, "room", room, "reason", reason)
	if !s.isIRC() {
		// A classic or web client is in one room: being put out of it
		// ends the connection; the room hears the kick when it ends.
		s.kickMu.Lock()
		if s.isClosing() {
			s.kickMu.Unlock()
			return false
		}
		s.kickedFrom = &kickRec{room: room, by: by, reason: reason}
		s.kickMu.Unlock()
		s.kick(ReasonKicked, codeKicked, text+", closing")
		return true
	}
	// An IRC client leaves the channel and stays.
	s.kickMu.Lock()
	if s.ending || s.isClosing() {
		s.kickMu.Unlock()
		return false
	}
	s.kicks = append(s.kicks, room)
	s.kickMu.Unlock()
	srv.exit(s, room)
	b := appendSource(nil, by)
	b = append(b, "KICK #"+room+" "+s.publicNick()+" :"...)
	b = append(b, reason...)
	s.deliver(append(b, "\r\n"...), "")
	go func() {
		ctx, cancel := s.busContext()
		defer cancel()
		if err := srv.cfg.Mod.PartKicked(ctx, room, nick, by, reason); err != nil {
			s.log.Warn("kick: part", "room", room, "err", err)
		}
	}()
	return true
}

// kickRec is the kick that ends a classic or web session.
type kickRec struct{ room, by, reason string }

// takeKicks drops from the session's rooms those it was kicked from (the
// kick took it out of them already). Reader goroutine.
func (s *Session) takeKicks() {
	s.kickMu.Lock()
	kicks := s.kicks
	s.kicks = nil
	s.kickMu.Unlock()
	for _, room := range kicks {
		if i := slices.Index(s.chans, room); i >= 0 {
			s.chans = slices.Delete(s.chans, i, i+1)
		}
	}
}

// cmdBan bans a nickname or an address: /ban NICK|ADDRESS|CIDR [DURATION] [REASON].
func (s *Session) cmdBan(arg string) {
	mod := s.moderation()
	if mod == nil || !s.requireOper("ban") {
		return
	}
	target, rest, _ := strings.Cut(arg, " ")
	if target == "" {
		s.usage("ban")
		return
	}
	b, problem := s.banTarget(target)
	if problem != "" {
		s.errorf(codeBadTarget, "%s", problem)
		return
	}
	d, reason, problem := durationAndReason(strings.TrimSpace(rest))
	if problem != "" {
		s.errorf(codeUsage, "%s", problem)
		return
	}
	now := s.srv.cfg.Now()
	b.By, b.Reason, b.At, b.Until = s.nick, reason, now, untilOf(now, d)
	what := b.Nick
	if b.Net.IsValid() {
		what = b.Net.String()
	} else if ops := s.opers(); containsFold(ops, b.Nick) {
		s.errorf(codeBadTarget, "%s is an operator: operators cannot be banned", b.Nick)
		return
	}
	ctx, cancel := s.busContext()
	defer cancel()
	if err := mod.PutBan(ctx, b); err != nil {
		s.log.Warn("ban", "err", err)
		s.unavailable("nobody banned")
		return
	}
	s.srv.ApplyModeration()
	s.srv.modCount(modBan)
	s.log.Info("moderation: ban", "actor", s.nick, "target", what, "reason", reason, "duration", d)
	s.noticef("banned %s%s", what, forText(d))
}

// banTarget reads the target of /ban and /unban: an IP address (an IPv6
// one stands for its /64), a CIDR prefix, or a nickname.
func (s *Session) banTarget(target string) (Ban, string) {
	if a, err := netip.ParseAddr(target); err == nil {
		return s.netTarget(AddrKey(a))
	}
	if p, err := netip.ParsePrefix(target); err == nil {
		return s.netTarget(p.Masked())
	}
	if strings.ContainsAny(target, "/:") {
		return Ban{}, fmt.Sprintf("%q is neither an IP address nor a CIDR prefix (such as 192.0.2.7, 192.0.2.0/24, 2001:db8::/48)", target)
	}
	if validNick(target) != "" {
		return Ban{}, "no such nickname: " + target
	}
	if strings.EqualFold(target, s.nick) {
		return Ban{}, "you cannot ban yourself"
	}
	return Ban{Nick: target}, ""
}

func (s *Session) netTarget(p netip.Prefix) (Ban, string) {
	if p.Bits() < 8 && p.Addr().Is4() || p.Bits() < 16 && p.Addr().Is6() {
		return Ban{}, "prefix " + p.String() + " is too wide (at least /8 for IPv4, /16 for IPv6)"
	}
	if p.Overlaps(s.key) {
		return Ban{}, "you cannot ban yourself: " + p.String() + " holds your own address"
	}
	return Ban{Net: p}, ""
}

// cmdUnban lifts a ban: /unban NICK|ADDRESS|CIDR.
func (s *Session) cmdUnban(arg string) {
	mod := s.moderation()
	if mod == nil || !s.requireOper("unban") {
		return
	}
	if arg == "" || strings.ContainsRune(arg, ' ') {
		s.usage("unban")
		return
	}
	var b Ban
	if a, err := netip.ParseAddr(arg); err == nil {
		b.Net = AddrKey(a)
	} else if p, err := netip.ParsePrefix(arg); err == nil {
		b.Net = p.Masked()
	} else if validNick(arg) == "" {
		b.Nick = arg
	} else {
		s.errorf(codeBadTarget, "%q is neither a nickname, an IP address nor a CIDR prefix", arg)
		return
	}
	ctx, cancel := s.busContext()
	defer cancel()
	ok, err := mod.DeleteBan(ctx, b)
	switch {
	case err != nil:
		s.log.Warn("unban", "err", err)
		s.unavailable("ban not lifted")
	case !ok:
		s.errorf(codeBadTarget, "%s is not banned", arg)
	default:
		s.srv.ApplyModeration()
		s.srv.modCount(modUnban)
		s.log.Info("moderation: unban", "actor", s.nick, "target", arg)
		s.noticef("lifted the ban of %s", arg)
	}
}

// cmdBans lists the bans in force.
func (s *Session) cmdBans(string) {
	mod := s.moderation()
	if mod == nil || !s.requireOper("bans") {
		return
	}
	bans := mod.Bans()
	if len(bans) == 0 {
		s.notice("bans: none")
		return
	}
	parts := make([]string, len(bans))
	for i, b := range bans {
		what := b.Nick
		if b.Net.IsValid() {
			what = b.Net.String()
		}
		p := what + " by " + b.By
		if !b.Until.IsZero() {
			p += " until " + b.Until.UTC().Format("2006-01-02 15:04 UTC")
		}
		if b.Reason != "" {
			p += " (" + b.Reason + ")"
		}
		parts[i] = p
	}
	s.noticef("bans (%d): %s", len(bans), strings.Join(parts, "; "))
}

// cmdMute mutes a nickname: /mute NICK [DURATION] [REASON].
func (s *Session) cmdMute(arg string) {
	mod := s.moderation()
	if mod == nil || !s.requireOper("mute") {
		return
	}
	nick, rest, _ := strings.Cut(arg, " ")
	switch {
	case nick == "":
		s.usage("mute")
		return
	case validNick(nick) != "":
		s.errorf(codeNoSuchNick, "no such nickname: %s", nick)
		return
	case strings.EqualFold(nick, s.nick):
		s.errorf(codeBadTarget, "you cannot mute yourself")
		return
	}
	d, reason, problem := durationAndReason(strings.TrimSpace(rest))
	if problem != "" {
		s.errorf(codeUsage, "%s", problem)
		return
	}
	now := s.srv.cfg.Now()
	ctx, cancel := s.busContext()
	defer cancel()
	if err := mod.PutMute(ctx, Mute{Nick: nick, By: s.nick, Reason: reason, At: now, Until: untilOf(now, d)}); err != nil {
		s.log.Warn("mute", "err", err)
		s.unavailable("nobody muted")
		return
	}
	s.srv.ApplyModeration()
	s.srv.modCount(modMute)
	s.log.Info("moderation: mute", "actor", s.nick, "target", nick, "reason", reason, "duration", d)
	s.noticef("muted %s%s", nick, forText(d))
}

// cmdUnmute lifts a mute: /unmute NICK.
func (s *Session) cmdUnmute(arg string) {
	mod := s.moderation()
	if mod == nil || !s.requireOper("unmute") {
		return
	}
	if validNick(arg) != "" {
		s.usage("unmute")
		return
	}
	ctx, cancel := s.busContext()
	defer cancel()
	ok, err := mod.DeleteMute(ctx, arg)
	switch {
	case err != nil:
		s.log.Warn("unmute", "err", err)
		s.unavailable("mute not lifted")
	case !ok:
		s.errorf(codeBadTarget, "%s is not muted", arg)
	default:
		s.srv.ApplyModeration()
		s.srv.modCount(modUnmute)
		s.log.Info("moderation: unmute", "actor", s.nick, "target", arg)
		s.noticef("%s is no longer muted", arg)
	}
}

// cmdTopic shows or sets the room's topic: /topic [TEXT], /topic - clears.
func (s *Session) cmdTopic(arg string) {
	mod := s.moderation()
	if mod == nil {
		return
	}
	if arg == "" {
		if t, ok := mod.Topic(s.room); ok {
			s.notice(topicText(s.room, t))
		} else {
			s.noticef("%s has no topic", s.room)
		}
		return
	}
	if arg == "-" {
		arg = ""
	}
	if problem := s.setTopic(s.room, arg); problem != "" {
		s.errorf(codeNotOper, "%s", problem)
	}
}

func topicText(room string, t Topic) string {
	return "topic of " + room + ": " + t.Text + " (set by " + t.By + ")"
}

// setTopic sets room's topic, if the session may: an operator may always;
// anyone may in a room no operator is in. It returns a problem for the
// client, or "".
func (s *Session) setTopic(room, text string) string {
	mod := s.srv.cfg.Mod
	if len(text) > maxTopic {
		return fmt.Sprintf("topic too long (limit %d bytes)", maxTopic)
	}
	if s.mutedNow() != nil {
		return "you are muted"
	}
	ctx, cancel := s.busContext()
	defer cancel()
	if !s.oper {
		nicks, err := s.srv.bus.Who(ctx, room)
		if err != nil {
			s.log.Warn("who", "err", err)
			return "the chat is unavailable right now, try again later"
		}
		for _, op := range s.opers() {
			if containsFold(nicks, op) {
				s.srv.modCount(modRefused)
				s.log.Info("moderation refused: topic with an operator present", "nick", s.nick, "room", room)
				return "an operator is in " + room + ": only operators may change its topic"
			}
		}
	}
	if err := mod.SetTopic(ctx, room, Topic{Text: text, By: s.nick, At: s.srv.cfg.Now()}); err != nil {
		s.log.Warn("topic", "err", err)
		return "the chat is unavailable right now, try again later"
	}
	s.srv.modCount(modTopic)
	s.log.Info("moderation: topic", "actor", s.nick, "room", room, "text", text)
	return ""
}

// showTopic tells a client that joined room its topic, if any.
func (s *Session) showTopic(room string) {
	if s.srv.cfg.Mod == nil {
		return
	}
	if t, ok := s.srv.cfg.Mod.Topic(room); ok {
		s.deliver(s.enc.notice(topicText(room, t)), "")
	}
}

// roomTopics returns the topics of names, for /rooms.
func (srv *Server) roomTopics(names []string) map[string]string {
	if srv.cfg.Mod == nil {
		return nil
	}
	out := make(map[string]string)
	for _, n := range names {
		if t, ok := srv.cfg.Mod.Topic(n); ok {
			out[n] = t.Text
		}
	}
	return out
}
