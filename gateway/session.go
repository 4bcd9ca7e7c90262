package gateway

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/internal/busctx"
	"golang.org/x/time/rate"
)

// closeWriteTimeout bounds the final flush to a client being closed.
const closeWriteTimeout = time.Second

// transport is what differs between a classic TCP client and a WebSocket
// client: how input is read and framed, how frames are written, and how the
// conversation ends. Everything else — nickname claim, rooms, commands, rate
// limit, the bounded queue and its writer, close reasons, teardown — is the
// Session's and is shared.
type transport interface {
	// codec is the transport's wire encoding.
	codec
	// serve is the session's reader goroutine: it reads the client's input
	// and hands it to the session (hello, allow, handle) until the client
	// goes away or s.stopped is set, recording why with s.setReason. The
	// session ends after it returns false. It returns true when it parked
	// an idle reader (park.go): the reader goes on later on another
	// goroutine, which ends the session itself (Session.end).
	serve(s *Session) (parked bool)
	// nickRefused runs on the reader goroutine after a refused nickname was
	// answered, when the client may offer another.
	nickRefused(s *Session)
	// writeEarly writes a frame at once, before the session's queue is in
	// use (the TCP handshake); reader goroutine only, but for kick's last
	// line (a write to a net.Conn is never interleaved with another).
	writeEarly(frame []byte) error
	// writeBatch writes frames in order within the write deadline already
	// set. Only the session's writer calls it.
	writeBatch(frames [][]byte) error
	// setWriteDeadline bounds the write in progress and later ones. Safe
	// from any goroutine.
	setWriteDeadline(t time.Time)
	// goodbye ends the conversation after the last frame was written, for
	// reason (a WebSocket close frame); at most closeWriteTimeout. Writer
	// goroutine only.
	goodbye(reason CloseReason)
	// close closes the connection at once; Session calls it once.
	close()
}

// Session is one connected client. Its reader goroutine (the transport's
// serve) owns the protocol state; any goroutine may queue output with
// deliver.
type Session struct {
	srv *Server
	t   transport
	enc codec // the transport's encoding
	id  uint64
	ip  netip.Addr
	key netip.Prefix // AddrKey(ip): what limits, bans and the password throttle count
	log *slog.Logger

	// Owned by the reader goroutine.
	limiter     *rate.Limiter
	nick        string
	firstNick   string // the nickname the handshake accepted
	pendingNick string // held while the server password is asked (TCP)
	authed      bool   // the server password was given
	room        string
	chans       []string     // rooms of a client that is in several at once (IRC, multiroom.go); room stays ""
	partText    string       // what its rooms are told when the session ends, if not the close reason (IRC QUIT)
	stripPrefix bool         // the client may put "<nick>: " before its lines (classic TCP)
	resume      *resumeToken // the position to resume from at the first join
	resumeNote  string       // why the client's resume token was not used
	// What the resume replay left out (resume.go), for endReplay.
	missedSkipped int
	missedGone    bool
	attempts      int
	pacedSince    time.Time // when the current run of paced lines began (allow); zero: not paced
	pacingTold    time.Time // when the client was last told its lines are paced
	stopped       bool      // no further input is handled
	started       time.Time
	oper          bool   // an operator (moderation.go)
	identified    string // the registered nickname whose password was given
	regNick       string // held while its password is asked (TCP)

	shownNick atomic.Pointer[string] // nick, for other goroutines (moderation.go)
	muted     atomic.Pointer[Mute]   // the mute in force, if any (moderation.go)

	kickMu     sync.Mutex // guards the three below; taken before outbox.mu
	kickedFrom *kickRec   // the kick that closes a classic or web session
	kicks      []string   // rooms an IRC session was kicked from, not yet out of chans
	ending     bool       // teardown has begun: no more kicks

	// The outbound side: queue, writer, replay hold, close (outbox.go).
	outbox
}

func newSession(srv *Server, t transport, remote string, ip netip.Addr) *Session {
	id := srv.nextID.Add(1)
	s := &Session{
		srv:     srv,
		t:       t,
		enc:     t,
		id:      id,
		ip:      ip,
		key:     AddrKey(ip),
		log:     sessionLogger(srv.log, id, remote),
		limiter: rate.NewLimiter(rate.Limit(srv.cfg.Rate), srv.cfg.Burst),
		started: srv.cfg.Now(),
	}
	s.outbox.init(t, s.log, srv.cfg.MaxPending, srv.cfg.WriteTimeout)
	return s
}

// run serves the session until the client goes away, then ends it; or
// until its reader is parked, and whoever resumes it ends it.
func (s *Session) run() {
	if !s.t.serve(s) {
		s.end()
	}
}

// end tears the session down and releases its count in Server.wg.
func (s *Session) end() {
	s.teardown()
	s.srv.wg.Done()
}

// handle runs one line of input after the handshake: a chat line or a
// command. text is sanitized and the rate limit already applied.
func (s *Session) handle(text string) {
	s.log.Debug("line", "nick", s.nick, "room", s.room, "text", text)
	if s.stripPrefix {
		// The classic client puts "<nick>: " before every line it sends,
		// commands included, and keeps the nickname it started with after a
		// /nick.
		text = stripSelfPrefix(text, s.nick)
		if s.firstNick != s.nick {
			text = stripSelfPrefix(text, s.firstNick)
		}
	}
	text = strings.TrimSpace(text)
	switch {
	case text == "":
	case strings.HasPrefix(text, "//"):
		s.say(KindSay, text[1:])
	case text[0] == '/':
		s.command(text)
	default:
		s.say(KindSay, text)
	}
}

// allow applies the rate limit to one line or message, on the reader
// goroutine, before it is handled. A line within the budget (Rate, Burst)
// goes at once. A line over it is paced, never dropped: allow waits until
// the budget has room, and the reader reads nothing meanwhile, so the
// client's further lines wait in its socket (TCP back-pressure) and are
// handled in order as the budget refills; what the session holds of them is
// bounded by its read buffer and one line. The first paced line of a run
// tells the client, at most once per FloodTimeout. A client paced without
// a break (it never paused for a line's worth of budget: its backlog never
// drained) for FloodTimeout is disconnected as a flood. allow reports false
// when the line must not be handled: the session is ending.
func (s *Session) allow() bool {
	cfg := &s.srv.cfg
	now := cfg.Now()
	r := s.limiter.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait <= 0 {
		// A run of paced lines ends when the client has fallen behind its
		// budget by a whole line: it paused. A line that merely finds the
		// budget refilled while the previous one was handled (a slow
		// moment of the gateway's) does not end it.
		if cfg.Burst == 1 || s.limiter.TokensAt(now) >= 1 {
			s.pacedSince = time.Time{}
		}
		return true
	}
	s.srv.stats.floodPaced.Add(1)
	if s.pacedSince.IsZero() {
		s.pacedSince = now
		if s.pacingTold.IsZero() || now.Sub(s.pacingTold) >= cfg.FloodTimeout {
			s.pacingTold = now
			s.log.Info("pacing", "nick", s.nick)
			s.noticef("you are sending faster than %g lines/s: your lines are paced, none is dropped, they go out in order", cfg.Rate)
		}
	}
	if now.Sub(s.pacedSince) >= cfg.FloodTimeout {
		r.CancelAt(now)
		s.log.Info("flood", "nick", s.nick, "paced_for", now.Sub(s.pacedSince).Round(time.Millisecond))
		s.fail(ReasonFlood, codeFlood, fmt.Sprintf("flood: you kept sending faster than %g lines/s for %v, disconnected", cfg.Rate, cfg.FloodTimeout))
		return false
	}
	t := time.NewTimer(wait)
	select {
	case <-t.C:
		return !s.stopped
	case <-s.closed: // shutdown, a ban, a slow consumer, the handshake timeout
		t.Stop()
		s.stopped = true
		return false
	}
}

// hello handles a nickname the client offers in its handshake (sanitized).
func (s *Session) hello(nick string) {
	if !s.claim(nick) {
		return
	}
	// The welcome is queued by join once the room's subscription is in
	// place: a line published after the client reads it reaches it. A
	// client that resumes goes back to its room (resume.go).
	room := s.firstRoom()
	if err := s.join(room, s.enc.welcome(nick, room)); err != nil {
		s.log.Warn("join default room", "err", err)
		s.fail(ReasonBusError, codeUnavailable, "the chat is unavailable right now, try again later")
		return
	}
	if s.resumeNote != "" {
		s.notice(s.resumeNote)
		s.resumeNote = ""
	}
	s.srv.stats.opened[s.enc.transportSlot()].Add(1)
	s.srv.stats.connected[s.enc.transportSlot()].Add(1)
	s.log.Info("session started", "nick", nick)
}

// claim makes nick the session's, cluster-wide, and reports whether it
// did; if not, the client has been told why (refuseNick), or the session
// is closing.
func (s *Session) claim(nick string) bool {
	if reason := validNick(nick); reason != "" {
		s.refuseNick(codeNickInvalid, reason)
		return false
	}
	if why := s.srv.bannedNick(nick); why != "" {
		s.refuseNick(codeBanned, why)
		return false
	}
	if why := s.nickRegistered(nick); why != "" {
		s.refuseNick(codeNickRegistered, why)
		return false
	}
	ctx, cancel := s.busContext()
	ok, err := s.srv.bus.ClaimNick(ctx, nick)
	cancel()
	if err != nil {
		s.log.Warn("claim nickname", "err", err)
		s.fail(ReasonBusError, codeUnavailable, "the chat is unavailable right now, try again later")
		return false
	}
	if !ok {
		s.refuseNick(codeNickTaken, "nickname "+nick+" is taken")
		return false
	}
	s.nick, s.firstNick = nick, nick
	s.srv.addNick(s)
	s.useQueue()
	return true
}

// handshakeLine handles a TCP client's line before its nickname is
// accepted. On a server with a password, the first acceptable nickname is
// held while the next line, the password, is checked; a classic client
// sends it prefixed with "<nick>: ", like any line.
func (s *Session) handshakeLine(text string) {
	if s.pendingNick == "" && s.regNick == "" && s.nick == "" {
		// The terminal client's extension (resume.go); a plain client
		// never sends it, and its nickname line is left as it is.
		if nick, ext, token := takeResume(text); ext {
			text = nick
			s.enc = posCodec{}
			s.setResume(token)
		}
	}
	if s.srv.cfg.Password == "" || s.authed {
		s.regLine(text)
		return
	}
	if s.pendingNick == "" {
		if reason := validNick(text); reason != "" {
			s.refuseNick(codeNickInvalid, reason)
			return
		}
		s.pendingNick = text
		if s.sendEarly(s.enc.notice("this server needs a password: send it as your next line")) != nil {
			s.stopped = true
		}
		return
	}
	if !s.checkPassword(strings.TrimSpace(stripSelfPrefix(text, s.pendingNick))) {
		return
	}
	s.authed = true
	s.regLine(s.pendingNick)
}

// checkPassword judges a password attempt. It waits, on the reader
// goroutine, for the address's turn (guard.go), then reports whether the
// client may go on; if not, the client has been told why and the session
// is closing. Any password is fine on a server without one.
func (s *Session) checkPassword(pw string) bool {
	want := s.srv.cfg.Password
	if want == "" {
		return true
	}
	right := subtle.ConstantTimeCompare([]byte(pw), []byte(want)) == 1
	now := s.srv.cfg.Now()
	at, fails, judged := s.srv.auth.attempt(s.key, right, now)
	slot := s.enc.transportSlot()
	if !judged {
		s.srv.stats.authThrottled[slot].Add(1)
		s.log.Warn("password attempt refused: too many wrong passwords from this address",
			"addr", s.ip.String(), "key", s.key.String(), "failures", fails)
		s.fail(ReasonThrottled, codeThrottled, "too many wrong passwords from your address; wait a few seconds before trying again, closing")
		return false
	}
	if !right {
		s.srv.stats.authFailures[slot].Add(1)
		s.log.Warn("wrong password", "addr", s.ip.String(), "key", s.key.String(), "failures", fails,
			"answer_in", at.Sub(now))
	}
	if wait := at.Sub(now); wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.closed: // shutdown, a ban, the handshake timeout
			t.Stop()
			s.stopped = true
			return false
		}
	}
	if !right {
		s.fail(ReasonHandshakeFailed, codeBadPassword, "wrong password for this server, closing")
		return false
	}
	return true
}

// refuseNick answers a refused nickname; after the last attempt it closes.
func (s *Session) refuseNick(code, reason string) {
	s.attempts++
	if s.attempts >= s.srv.cfg.NickAttempts {
		s.fail(ReasonHandshakeFailed, code, reason+"; too many attempts, closing")
		return
	}
	if s.sendEarly(s.enc.errorMsg(code, reason+", choose another")) != nil {
		s.stopped = true
		return
	}
	s.t.nickRefused(s)
}

// fail tells the client why in one error message, then closes the session
// for reason. Reader goroutine only.
func (s *Session) fail(reason CloseReason, code, text string) {
	frame := s.enc.errorMsg(code, text)
	if s.isQueued() {
		s.finish(reason, frame)
	} else {
		_ = s.t.writeEarly(frame)
		s.setReason(reason)
	}
	s.stopped = true
}

// kick closes the session for reason with one last error message. Safe
// from any goroutine; it never blocks, and the first reason wins.
func (s *Session) kick(reason CloseReason, code, text string) {
	s.outbox.kick(reason, s.enc.errorMsg(code, text))
}

// sendEarly sends a frame during the handshake: straight to the socket
// while the queue is not in use yet, else through the queue.
func (s *Session) sendEarly(frame []byte) error {
	if s.isQueued() {
		s.deliver(frame, "")
		return nil
	}
	return s.t.writeEarly(frame)
}

// say publishes a chat line to the session's room.
func (s *Session) say(kind, text string) { s.sayTo(s.room, kind, text) }

// sayTo publishes a chat line to room.
func (s *Session) sayTo(room, kind, text string) {
	if text == "" || s.refuseMuted() {
		return
	}
	s.srv.stats.linesIn.Add(1)
	if err := s.srv.bus.Publish(room, kind, s.nick, text); err != nil {
		s.log.Warn("publish", "err", err)
		s.errorf(codeUnavailable, "your line was not sent: the chat link is down")
	}
}

// join moves the session into room: it leaves the current room, starts
// holding live frames, replays the room's history, then releases the held
// frames after it, dropping any the replay already showed. welcome, if not
// nil, is queued ahead of everything else as soon as the gateway's
// subscription to the room is in place (see Bus.Subscribe), never before:
// the client may take it as the promise that every line published to the
// room from then on reaches it.
func (s *Session) join(room string, welcome []byte) error {
	if s.room != "" {
		s.leave()
	}
	if err := s.enter(room, welcome); err != nil {
		return err
	}
	s.room = room
	return nil
}

// enter is join without leaving a room first: the session is in room
// besides any it was in.
func (s *Session) enter(room string, welcome []byte) error {
	s.hold()
	if err := s.srv.enter(s, room); err != nil {
		s.endReplay("", nil, false)
		return err
	}
	if welcome != nil {
		s.deliverFirst(welcome)
	}
	// The session receives the room's live lines from here on: a history
	// read that starts now or later, its own or one it shares with other
	// joins of the room (busctx.WithLiveSince), misses nothing.
	live := time.Now()
	ctx, cancel := s.busContext()
	defer cancel()
	var hist []event
	readHistory := func() {
		err := s.srv.bus.History(busctx.WithLiveSince(ctx, live), room, s.srv.cfg.History, func(id, kind, nick, text string, at time.Time) {
			if kind == KindSay || kind == KindMe {
				hist = append(hist, event{id: id, kind: kind, room: room, nick: nick, text: text, at: at})
			}
		})
		if err != nil {
			s.log.Warn("history", "room", room, "err", err)
		}
	}
	// Without a resume token the history is read while the join is
	// recorded: the hold on live frames lasts one round trip, not two.
	var histDone chan struct{}
	if s.srv.cfg.History > 0 && s.resume == nil {
		histDone = make(chan struct{})
		go func() {
			defer close(histDone)
			readHistory()
		}()
	}
	if err := s.srv.bus.Join(ctx, room, s.nick); err != nil {
		s.log.Warn("join", "room", room, "err", err)
	}
	missed := false
	if histDone != nil {
		<-histDone
	} else if t := s.resume; t != nil {
		s.resume = nil
		hist, missed = s.missedLines(ctx, room, t)
		if s.srv.cfg.History > 0 && !missed {
			readHistory()
		}
	}
	s.endReplay(room, hist, missed)
	if !s.isIRC() {
		s.showTopic(room)
	}
	return nil
}

// leave takes the session out of its room and tells the room.
func (s *Session) leave() {
	room := s.room
	s.room = ""
	s.exit(room, "")
}

// exit takes the session out of room and tells the room, with reason (a
// session that ended) or without (a user who left only this room).
func (s *Session) exit(room, reason string) {
	s.srv.exit(s, room)
	ctx, cancel := s.busContext()
	defer cancel()
	if err := s.srv.bus.Part(ctx, room, s.nick, reason); err != nil {
		s.log.Warn("part", "room", room, "err", err)
	}
}

// exitKicked is exit for a session an operator kicked out of room: the
// room hears the kick.
func (s *Session) exitKicked(room string, k *kickRec) {
	s.srv.exit(s, room)
	ctx, cancel := s.busContext()
	defer cancel()
	if err := s.srv.cfg.Mod.PartKicked(ctx, room, s.nick, k.by, k.reason); err != nil {
		s.log.Warn("kick: part", "room", room, "err", err)
	}
}

// endReplay queues the replayed history of room (room "": the join
// failed), or with missed the lines a resuming client missed, then the live
// frames held while it was read.
func (s *Session) endReplay(room string, hist []event, missed bool) {
	s.release(func(heldLive func(id string) bool) [][]byte {
		if room == "" {
			return nil
		}
		kept := hist[:0]
		for _, h := range hist {
			if !heldLive(h.id) {
				kept = append(kept, h)
			}
		}
		if missed {
			return s.enc.missed(room, kept, s.missedSkipped, s.missedGone, s.srv.cfg.Now())
		}
		return s.enc.history(room, kept, s.srv.cfg.Now())
	})
}

// teardown runs once, on the reader goroutine, when the reader is done. The
// room hears "left!" here and nowhere else, so exactly once.
func (s *Session) teardown() {
	why := s.closeReason().quitText()
	s.kickMu.Lock()
	s.ending = true
	kicked := s.kickedFrom
	s.kickMu.Unlock()
	s.takeKicks()
	if s.partText != "" {
		why = s.partText
	}
	if s.nick != "" {
		s.endOper(s.nick)
		// Free the nickname before the room hears "left!", so whoever
		// reads that can take the name at once.
		ctx, cancel := s.busContext()
		if err := s.srv.bus.ReleaseNick(ctx, s.nick); err != nil {
			s.log.Warn("release nickname", "nick", s.nick, "err", err)
		}
		cancel()
		s.srv.dropNick(s)
		if s.room != "" {
			room := s.room
			s.room = ""
			if kicked != nil && kicked.room == room {
				s.exitKicked(room, kicked)
			} else {
				s.exit(room, why)
			}
		}
		for _, room := range s.chans {
			s.exit(room, why)
		}
		s.chans = nil
	}
	// Let the writer flush a final frame, but not for long.
	reason := s.drain()
	s.srv.removeSession(s)
	slot := s.enc.transportSlot()
	if s.firstNick != "" { // it was counted as connected
		s.srv.stats.connected[slot].Add(-1)
	}
	if int(reason) < len(reasonNames) {
		s.srv.stats.closed[slot][reason].Add(1)
	}
	s.log.Info("session closed", "nick", s.nick, "reason", reason.String(),
		"duration", s.srv.cfg.Now().Sub(s.started).Round(time.Millisecond))
}

// notice queues a reply or notice from the server.
func (s *Session) notice(text string) {
	s.deliver(s.enc.notice(text), "")
}

func (s *Session) noticef(format string, args ...any) {
	s.notice(fmt.Sprintf(format, args...))
}

// errorf queues an error message; the session goes on.
func (s *Session) errorf(code, format string, args ...any) {
	s.deliver(s.enc.errorMsg(code, fmt.Sprintf(format, args...)), "")
}

func (s *Session) busContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.srv.cfg.BusTimeout)
}
