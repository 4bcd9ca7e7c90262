package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/time/rate"
)

const (
	// readBufSize is small on purpose: an idle client costs this much, and a
	// long line simply takes several reads.
	readBufSize = 512
	// closeWriteTimeout bounds the final flush to a client being closed.
	closeWriteTimeout = time.Second
)

// Fixed lines of the classic protocol.
var (
	lineName      = []byte("NAME")
	lineConnected = []byte("Connected to server!\n")
	lineBye       = []byte("* bye\n")
	lineShutdown  = []byte("* server shutting down, bye\n")
	lineSlow      = []byte("ERROR slow consumer: you were not reading fast enough, disconnected\n")
	lineFloodKick = []byte("ERROR flood: disconnected for sending too fast\n")
)

// Session is one connected client. Its reader goroutine (serve) owns the
// protocol state; any goroutine may queue output with deliver.
type Session struct {
	srv  *Server
	conn net.Conn
	id   uint64
	ip   netip.Addr
	log  *slog.Logger

	// Owned by the reader goroutine.
	fr         *framer
	emit       func(line []byte, tooLong bool)
	limiter    *rate.Limiter
	nick       string
	firstNick  string // the nickname the handshake accepted
	room       string
	attempts   int
	refused    int
	stopped    bool // no further input is handled
	hsDeadline time.Time
	started    time.Time

	mu        sync.Mutex // guards the fields below
	queued    bool       // handshake done: output goes through the queue
	out       [][]byte   // lines waiting for the writer; shared, never modified
	spare     [][]byte   // the writer's previous batch, reused
	outBytes  int        // bytes queued, held or being written
	writing   bool       // a writer goroutine is running
	closing   bool       // flush what is queued, then close; queue nothing more
	reason    CloseReason
	replaying bool     // joining a room: live lines wait in held
	held      [][]byte // live lines that arrived during a history replay
	heldIDs   []string // their event ids, to drop them from the replay
	closeOnce sync.Once
	closed    chan struct{} // closed with the connection
	writeFn   func()        // s.writeLoop, bound once: go s.writeFn() does not allocate
	swept     bool          // idle at the last sweep (sweep.go); any queued line clears it
}

func newSession(srv *Server, conn net.Conn, id uint64, ip netip.Addr) *Session {
	s := &Session{
		srv:     srv,
		conn:    conn,
		id:      id,
		ip:      ip,
		log:     sessionLogger(srv.log, id, conn.RemoteAddr()),
		fr:      newFramer(srv.cfg.MaxLine),
		limiter: rate.NewLimiter(rate.Limit(srv.cfg.Rate), srv.cfg.Burst),
		started: srv.cfg.Now(),
		closed:  make(chan struct{}),
	}
	s.emit = s.handleLine
	s.writeFn = s.writeLoop
	return s
}

// serve runs the session's reader until the client goes away, then tears
// the session down. It is the only goroutine that reads from the connection.
func (s *Session) serve() {
	s.hsDeadline = time.Now().Add(s.srv.cfg.HandshakeTimeout)
	if s.writeDirect(lineName) != nil {
		s.setReason(ReasonWriteError)
		s.end()
		return
	}
	s.read(false)
}

// read is serve's loop. It returns when the session has ended, or when it
// parks an idle session (park.go); the poller then calls read(true) on a
// new goroutine when the client sends something or goes away.
func (s *Session) read(resumed bool) {
	parked := false
	defer func() {
		if !parked {
			s.end()
		}
	}()
	buf := make([]byte, readBufSize)
	var armed time.Time // a parked session had no read deadline
	for !s.stopped {
		var deadline time.Time
		if s.nick == "" {
			deadline = s.hsDeadline
		}
		if s.fr.pending() {
			if p := time.Now().Add(s.srv.cfg.LinePause); deadline.IsZero() || p.Before(deadline) {
				deadline = p
			}
		}
		if !deadline.Equal(armed) {
			_ = s.conn.SetReadDeadline(deadline)
			armed = deadline
		}
		if deadline.IsZero() && !resumed && s.srv.park(s) {
			parked = true
			return
		}
		resumed = false
		n, err := s.conn.Read(buf)
		if n > 0 {
			s.fr.feed(buf[:n], s.emit)
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if s.fr.pending() {
				s.fr.flush(s.emit) // the client paused: that ends its line
				continue
			}
			if s.nick == "" && !time.Now().Before(s.hsDeadline) {
				s.writeDirect([]byte("ERROR no nickname received in time, closing\n"))
				s.setReason(ReasonHandshakeTimeout)
				return
			}
			continue
		}
		if errors.Is(err, io.EOF) && s.fr.pending() {
			s.fr.flush(s.emit) // the client's last words, sent without a newline
		}
		s.setReason(readReason(err))
		return
	}
}

func readReason(err error) CloseReason {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) {
		return ReasonClientClosed
	}
	return ReasonReadError
}

// handleLine is called by the framer for every line the client sends.
func (s *Session) handleLine(line []byte, tooLong bool) {
	if s.stopped {
		return
	}
	if tooLong {
		if s.nick == "" {
			s.refuseNick("nickname is too long")
			return
		}
		s.sendf("ERROR line too long (limit %d bytes); the rest of it was dropped", s.srv.cfg.MaxLine)
		return
	}
	text := sanitize(line)
	if s.nick == "" {
		s.tryNick(text)
		return
	}
	if text == "" || !s.allow() {
		return
	}
	s.log.Debug("line", "nick", s.nick, "room", s.room, "text", text)
	// The classic client puts "<nick>: " before every line it sends, commands
	// included, and keeps the nickname it started with after a /nick.
	text = stripSelfPrefix(text, s.nick)
	if s.firstNick != s.nick {
		text = stripSelfPrefix(text, s.firstNick)
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

// allow applies the flood limit to one line.
func (s *Session) allow() bool {
	if s.limiter.AllowN(s.srv.cfg.Now(), 1) {
		s.refused = 0
		return true
	}
	s.refused++
	switch {
	case s.refused >= s.srv.cfg.FloodLimit:
		s.log.Info("flood", "nick", s.nick, "refused", s.refused)
		s.finish(ReasonFlood, lineFloodKick)
		s.stopped = true
	case s.refused == 1:
		s.sendf("ERROR flood: you are sending too fast (limit %g lines/s); lines are being dropped", s.srv.cfg.Rate)
	}
	return false
}

// tryNick handles one answer to NAME.
func (s *Session) tryNick(nick string) {
	if reason := validNick(nick); reason != "" {
		s.refuseNick(reason)
		return
	}
	ctx, cancel := s.busContext()
	ok, err := s.srv.bus.ClaimNick(ctx, nick)
	cancel()
	if err != nil {
		s.log.Warn("claim nickname", "err", err)
		s.writeDirect([]byte("ERROR the chat is unavailable right now, try again later\n"))
		s.setReason(ReasonBusError)
		s.stopped = true
		return
	}
	if !ok {
		s.refuseNick("nickname " + nick + " is taken")
		return
	}
	s.nick, s.firstNick = nick, nick
	s.hsDeadline = time.Time{}
	s.srv.addNick(s)
	s.mu.Lock()
	s.queued = true
	s.mu.Unlock()
	s.deliver(lineConnected, "")
	if err := s.join(s.srv.cfg.DefaultRoom); err != nil {
		s.log.Warn("join default room", "err", err)
		s.finish(ReasonBusError, []byte("ERROR the chat is unavailable right now, try again later\n"))
		s.stopped = true
		return
	}
	s.log.Info("session started", "nick", nick)
}

// refuseNick answers a refused nickname with one ERROR line and, a moment
// later, NAME again as its own write; or closes after the last attempt.
func (s *Session) refuseNick(reason string) {
	s.attempts++
	if s.attempts >= s.srv.cfg.NickAttempts {
		s.writeDirect([]byte("ERROR " + reason + "; too many attempts, closing\n"))
		s.setReason(ReasonHandshakeFailed)
		s.stopped = true
		return
	}
	if s.writeDirect([]byte("ERROR "+reason+", choose another\n")) != nil {
		s.stopped = true
		return
	}
	time.Sleep(s.srv.cfg.RetryDelay)
	if s.writeDirect(lineName) != nil {
		s.stopped = true
	}
}

// say publishes a chat line to the session's room.
func (s *Session) say(kind, text string) {
	if text == "" {
		return
	}
	if err := s.srv.bus.Publish(s.room, kind, s.nick, text); err != nil {
		s.log.Warn("publish", "err", err)
		s.send("ERROR your line was not sent: the chat link is down")
	}
}

// join moves the session into room: it leaves the current room, starts
// holding live lines, replays the room's history, then releases the held
// lines after it, dropping any the replay already showed.
func (s *Session) join(room string) error {
	if s.room != "" {
		s.leave()
	}
	s.mu.Lock()
	s.replaying = true
	s.mu.Unlock()
	if err := s.srv.enter(s, room); err != nil {
		s.endReplay(nil)
		return err
	}
	s.room = room
	ctx, cancel := s.busContext()
	defer cancel()
	if err := s.srv.bus.Enter(ctx, room, s.nick); err != nil {
		s.log.Warn("presence enter", "room", room, "err", err)
	}
	if err := s.srv.bus.Publish(room, KindJoin, s.nick, ""); err != nil {
		s.log.Warn("publish join", "room", room, "err", err)
	}
	var hist []replayed
	if n := s.srv.cfg.History; n > 0 {
		err := s.srv.bus.History(ctx, room, n, func(id, kind, nick, text string, at time.Time) {
			if line := formatHistory(kind, nick, text, at, s.srv.cfg.Now()); line != nil {
				hist = append(hist, replayed{id: id, line: line})
			}
		})
		if err != nil {
			s.log.Warn("history", "room", room, "err", err)
		}
	}
	s.endReplay(hist)
	return nil
}

// leave takes the session out of its room and tells the room.
func (s *Session) leave() {
	room := s.room
	s.room = ""
	s.srv.exit(s, room)
	ctx, cancel := s.busContext()
	defer cancel()
	if err := s.srv.bus.Leave(ctx, room, s.nick); err != nil {
		s.log.Warn("presence leave", "room", room, "err", err)
	}
	if err := s.srv.bus.Publish(room, KindLeave, s.nick, ""); err != nil {
		s.log.Warn("publish leave", "room", room, "err", err)
	}
}

type replayed struct {
	id   string
	line []byte
}

// endReplay queues the replayed history, framed, then the live lines held
// while it was read.
func (s *Session) endReplay(hist []replayed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replaying = false
	if s.closing {
		return
	}
	kept := hist[:0]
	for _, h := range hist {
		if !containsString(s.heldIDs, h.id) {
			kept = append(kept, h)
		}
	}
	if len(kept) > 0 {
		s.queueLocked([]byte(fmt.Sprintf("--- last %d lines of %s ---\n", len(kept), s.room)))
		for _, h := range kept {
			s.queueLocked(h.line)
		}
		s.queueLocked([]byte("--- live ---\n"))
	}
	s.out = append(s.out, s.held...) // already counted in outBytes
	clear(s.held)
	s.held, s.heldIDs = s.held[:0], s.heldIDs[:0]
	s.kickLocked()
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// end tears the session down and tells the server its goroutine is done.
func (s *Session) end() {
	s.teardown()
	s.srv.wg.Done()
}

// teardown runs once, on the reader goroutine, after serve returns.
func (s *Session) teardown() {
	if s.nick != "" {
		// Free the nickname before the room hears "left!", so whoever
		// reads that can take the name at once.
		ctx, cancel := s.busContext()
		if err := s.srv.bus.ReleaseNick(ctx, s.nick); err != nil {
			s.log.Warn("release nickname", "nick", s.nick, "err", err)
		}
		cancel()
		s.srv.dropNick(s)
		if s.room != "" {
			s.leave()
		}
	}
	// Let the writer flush a final line, but not for long.
	s.mu.Lock()
	s.closing = true
	reason, writing := s.reason, s.writing
	s.mu.Unlock()
	if writing {
		select {
		case <-s.closed:
		case <-time.After(closeWriteTimeout + 100*time.Millisecond):
		}
	}
	s.closeConn()
	s.srv.removeSession(s)
	s.log.Info("session closed", "nick", s.nick, "reason", reason.String(),
		"duration", s.srv.cfg.Now().Sub(s.started).Round(time.Millisecond))
}

// deliver queues one line for the client. It never blocks: a client whose
// queue is over the limit is closed as a slow consumer. line is shared with
// other sessions and must not be modified. id names the bus event, if any.
func (s *Session) deliver(line []byte, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || !s.queued {
		return
	}
	if s.outBytes+len(line) > s.srv.cfg.MaxPending {
		s.overflowLocked()
		return
	}
	if s.replaying {
		s.outBytes += len(line)
		s.held = append(s.held, line)
		s.heldIDs = append(s.heldIDs, id)
		return
	}
	s.queueLocked(line)
	s.kickLocked()
}

// send queues one notice line (a newline is added).
func (s *Session) send(text string) {
	s.deliver([]byte(text+"\n"), "")
}

func (s *Session) sendf(format string, args ...any) {
	s.send(fmt.Sprintf(format, args...))
}

func (s *Session) queueLocked(line []byte) {
	s.swept = false
	s.outBytes += len(line)
	s.out = append(s.out, line)
}

// kickLocked starts a writer if none is running. Writers exist only while
// there is output, so an idle session costs no goroutine for writing.
func (s *Session) kickLocked() {
	if !s.writing && len(s.out) > 0 {
		s.writing = true
		go s.writeFn()
	}
}

// overflowLocked drops what is queued, queues one last line and closes.
func (s *Session) overflowLocked() {
	s.reason = ReasonSlowConsumer
	s.closing = true
	clear(s.out)
	clear(s.held)
	s.out, s.held, s.heldIDs = s.out[:0], nil, nil
	s.outBytes = 0
	s.queueLocked(lineSlow)
	_ = s.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	s.log.Info("slow consumer", "nick", s.nick)
	if s.writing {
		return
	}
	s.kickLocked()
}

// finish closes the session for reason after flushing what is queued and
// one last line. Safe from any goroutine; the first reason wins.
func (s *Session) finish(reason CloseReason, last []byte) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.reason = reason
	s.closing = true
	if !s.queued {
		s.mu.Unlock()
		s.closeConn()
		return
	}
	if last != nil {
		s.queueLocked(last)
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	if s.writing {
		s.mu.Unlock()
		return // the writer closes the connection when it has drained
	}
	if len(s.out) > 0 {
		s.kickLocked()
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.closeConn()
}

// writeLoop writes queued lines, coalescing each batch into one write,
// until the queue is empty. It is the only writer once the handshake is done.
func (s *Session) writeLoop() {
	// Let the goroutine that started this writer (a fan-out loop, most
	// often) queue more before the first write: fewer, larger writes.
	runtime.Gosched()
	for {
		s.mu.Lock()
		if len(s.out) == 0 {
			s.writing = false
			closing := s.closing
			s.mu.Unlock()
			if closing {
				s.closeConn()
			}
			return
		}
		batch := s.out
		s.out, s.spare = s.spare[:0], nil
		timeout := s.srv.cfg.WriteTimeout
		if s.closing {
			timeout = closeWriteTimeout
		}
		s.mu.Unlock()

		size := 0
		for _, b := range batch {
			size += len(b)
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
		err := writeBatch(s.conn, batch)
		clear(batch)

		s.mu.Lock()
		s.spare = batch[:0]
		s.outBytes -= size
		if err != nil {
			if s.reason == ReasonNone {
				s.reason = ReasonWriteError
			}
			s.closing = true
			s.writing = false
			clear(s.out)
			s.out = s.out[:0]
			s.mu.Unlock()
			s.closeConn()
			return
		}
		s.mu.Unlock()
	}
}

// writeDirect writes during the handshake, before the queue takes over;
// only the reader goroutine calls it.
func (s *Session) writeDirect(b []byte) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout))
	_, err := s.conn.Write(b)
	return err
}

func (s *Session) setReason(r CloseReason) {
	s.mu.Lock()
	if s.reason == ReasonNone {
		s.reason = r
	}
	s.mu.Unlock()
}

func (s *Session) closeConn() {
	s.closeOnce.Do(func() {
		s.srv.unpark(s) // a parked reader resumes, reads the close and ends
		s.conn.Close()
		close(s.closed)
	})
}

func (s *Session) busContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.srv.cfg.BusTimeout)
}
