package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is one gateway: it accepts classic TCP clients (Serve) and
// WebSocket clients (Handler) and joins them to rooms through the bus.
type Server struct {
	cfg    Config
	bus    Bus
	bursts bool // the bus ends bursts with KindFlush (BurstBus); fixed by New
	log    *slog.Logger
	nextID atomic.Uint64
	stats  stats
	wg     sync.WaitGroup // session and refusal goroutines
	auth   *authThrottle  // password attempts, every transport (guard.go)

	// Web: fixed by New.
	origins   []string        // hosts whose pages may open the WebSocket
	webHosts  map[string]bool // names the WebSocket is served under, besides IPs and localhost
	anyHost   bool            // WebHosts has "*"
	csp       string          // the page's Content-Security-Policy
	webConfig []byte          // the page's /config.json

	mu          sync.Mutex
	listeners   map[net.Listener]struct{}
	sessions    map[*Session]struct{}
	perIP       map[netip.Prefix]int // sessions by AddrKey
	nicks       map[string]*Session  // lower-cased nickname → session on this gateway
	rooms       map[string]*room
	closing     bool
	linkDown    bool // the bus link is lost; clients have been told
	stopPrivate func()
	stopSweep   chan struct{}           // ends sweepLoop (sweep.go)
	stopKicks   func()                  // ends the kick orders' subscription; nil without moderation
	mod         atomic.Pointer[modSnap] // bans and mutes (moderation.go)
	poller      *poller                 // parks idle TCP readers (park.go); nil: never
	memRelease  releaser                // returns memory when quiet (release.go)
}

// New returns a gateway that moves chat through b. It fills zero fields of
// cfg with defaults and reports invalid settings.
func New(cfg Config, b Bus) (*Server, error) {
	if b == nil {
		return nil, errors.New("gateway: no bus")
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		bus:       b,
		log:       cfg.Logger,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*Session]struct{}),
		auth:      newAuthThrottle(&cfg),
		perIP:     make(map[netip.Prefix]int),
		nicks:     make(map[string]*Session),
		rooms:     make(map[string]*room),
		stopSweep: make(chan struct{}),
		poller:    newPoller(cfg.Logger),
	}
	if bb, ok := b.(BurstBus); ok {
		s.bursts = bb.FlushesBursts()
	}
	if err := s.setupWeb(); err != nil {
		s.poller.close()
		return nil, err
	}
	stop, err := b.ReceivePrivate(s.deliverPrivate)
	if err != nil {
		s.poller.close()
		return nil, err
	}
	s.stopPrivate = stop
	if cfg.Mod != nil {
		s.refreshMod()
		if s.stopKicks, err = cfg.Mod.ReceiveKicks(s.receiveKick); err != nil {
			stop()
			s.poller.close()
			return nil, err
		}
	}
	go s.sweepLoop(s.stopSweep)
	if cfg.ReleaseAfter > 0 {
		s.memRelease.after, s.memRelease.growth = cfg.ReleaseAfter, uint64(cfg.ReleaseGrowth)
		go s.releaseLoop(s.stopSweep)
	}
	return s, nil
}

// Serve accepts clients on ln until Shutdown, then returns nil. Transient
// accept errors (such as running out of file descriptors) are retried with
// a back-off.
func (s *Server) Serve(ln net.Listener) error {
	return s.serve(ln, s.accept)
}

// serve accepts connections on ln and hands each to accept.
func (s *Server) serve(ln net.Listener, accept func(net.Conn)) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		accept(c)
	}
}

func (s *Server) accept(c net.Conn) {
	s.tune(c)
	sess := newSession(s, newTCPConn(c, &s.cfg, s.poller), c.RemoteAddr().String(), remoteIP(c.RemoteAddr()))
	if refusal := s.admit(sess); refusal != "" {
		go func() {
			defer s.wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
			_, _ = c.Write([]byte("ERROR " + refusal + "\n"))
			c.Close()
		}()
		return
	}
	go sess.run() // Done when the session ends (Session.end)
}

// admit counts sess against the connection limits, whatever its transport,
// and registers it; or returns why it is refused. Either way it adds one to
// s.wg, which the caller releases when the session or the refusal is over.
func (s *Server) admit(sess *Session) (refusal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wg.Add(1)
	var cause refusalCause
	switch {
	case s.closing:
		refusal, cause = "server is shutting down", refusedShutdown
	case s.cfg.Banned != nil && s.cfg.Banned(sess.ip):
		refusal, cause = "you are banned from this server", refusedBanned
	case s.bannedAddr(sess.key) != "":
		refusal, cause = s.bannedAddr(sess.key), refusedBanned
	case len(s.sessions) >= s.cfg.MaxConns:
		refusal, cause = "server is full, try again later", refusedMaxConns
	case s.perIP[sess.key] >= s.cfg.MaxConnsPerIP:
		refusal, cause = "too many connections from your address, close one and try again", refusedPerAddress
	}
	if refusal != "" {
		s.stats.refused[cause].Add(1)
		sess.log.Info("connection refused", "why", refusal)
		return refusal
	}
	s.sessions[sess] = struct{}{}
	s.perIP[sess.key]++
	return ""
}

func remoteIP(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (s *Server) removeSession(sess *Session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	if s.perIP[sess.key]--; s.perIP[sess.key] <= 0 {
		delete(s.perIP, sess.key)
	}
	s.mu.Unlock()
}

func (s *Server) addNick(sess *Session) {
	s.mu.Lock()
	s.nicks[strings.ToLower(sess.nick)] = sess
	s.mu.Unlock()
	sess.setPublicNick(sess.nick)
}

func (s *Server) dropNick(sess *Session) {
	key := strings.ToLower(sess.nick)
	s.mu.Lock()
	if s.nicks[key] == sess {
		delete(s.nicks, key)
	}
	s.mu.Unlock()
}

// deliverPrivate is the bus callback for private messages to this gateway's
// users. It never blocks.
func (s *Server) deliverPrivate(to, from, text string, at time.Time) bool {
	s.mu.Lock()
	sess := s.nicks[strings.ToLower(to)]
	s.mu.Unlock()
	if sess == nil {
		return false
	}
	sess.deliver(sess.enc.private(from, to, text, at, false), "")
	return true
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Sessions reports how many clients are connected.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// isLinkDown reports whether the bus link is down (LinkDown without LinkUp
// since).
func (s *Server) isLinkDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.linkDown
}

// LinkDown tells every client, once, that the link to the other gateways is
// lost: lines cannot be sent until LinkUp. It does not block.
func (s *Server) LinkDown() {
	s.notifyLink(true, "the chat link is down: your lines cannot be sent until it is back")
}

// LinkUp tells every client, once after LinkDown, that the link is back.
func (s *Server) LinkUp() {
	s.notifyLink(false, "the chat link is back")
}

func (s *Server) notifyLink(down bool, text string) {
	s.mu.Lock()
	if s.linkDown == down {
		s.mu.Unlock()
		return
	}
	s.linkDown = down
	sessions := s.sessionList()
	s.mu.Unlock()
	s.log.Warn("bus link", "down", down, "clients", len(sessions))
	for _, sess := range sessions {
		sess.notice(text)
	}
}

// Evict disconnects the user of nick, if on this gateway, with one last
// line saying why. It does not block.
func (s *Server) Evict(nick, why string) {
	s.mu.Lock()
	sess := s.nicks[strings.ToLower(nick)]
	s.mu.Unlock()
	if sess != nil {
		sess.log.Info("evicted", "nick", nick, "why", why)
		sess.finish(ReasonBusError, sess.enc.errorMsg("nick_lost", why))
	}
}

// ApplyBans closes every session, in the handshake or chatting, whose
// address Config.Banned now refuses, each with one last error line; the
// rooms hear them leave as after any close. Call it after the ban list
// changes. It does not block, and returns how many sessions it closed.
func (s *Server) ApplyBans() int {
	if s.cfg.Banned == nil {
		return 0
	}
	s.mu.Lock()
	sessions := s.sessionList()
	s.mu.Unlock()
	n := 0
	for _, sess := range sessions {
		if s.cfg.Banned(sess.ip) {
			sess.log.Info("banned: closing", "nick", sess.nick, "addr", sess.ip.String())
			sess.kick(ReasonBanned, codeBanned, "you are banned from this server, closing")
			n++
		}
	}
	return n
}

func (s *Server) sessionList() []*Session {
	list := make([]*Session, 0, len(s.sessions))
	for sess := range s.sessions {
		list = append(list, sess)
	}
	return list
}

// Shutdown stops accepting, tells every client one line, lets each session
// publish its departure, and waits for them until ctx is done; then it
// closes whatever is left. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closing
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	sessions := s.sessionList()
	s.mu.Unlock()

	// Say where to go: classic clients cannot reconnect by themselves, and
	// an IRC client reconnects only to the address it was given.
	bye, ircBye := "server shutting down, bye", "server shutting down, bye"
	if len(sessions) > 0 {
		gctx, cancel := context.WithTimeout(ctx, s.cfg.BusTimeout)
		if others, err := s.bus.Gateways(gctx); err == nil && len(others) > 0 {
			bye = "server shutting down; reconnect to " + strings.Join(others, " or ")
		}
		if slices.ContainsFunc(sessions, (*Session).isIRC) {
			if others, err := s.bus.IRCGateways(gctx); err == nil && len(others) > 0 {
				ircBye = "server shutting down; reconnect to " + strings.Join(others, " or ")
			}
		}
		cancel()
	}
	for _, sess := range sessions {
		text := bye
		if sess.isIRC() {
			text = ircBye
		}
		sess.finish(ReasonShutdown, sess.enc.notice(text))
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, sess := range sessions {
			sess.closeConn()
		}
		<-done
	}
	if first {
		s.stopPrivate()
		if s.stopKicks != nil {
			s.stopKicks()
		}
		close(s.stopSweep)
		s.poller.close()
	}
	return err
}

// Close shuts the server down, waiting at most ten seconds for sessions.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}
