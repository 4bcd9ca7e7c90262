package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is one gateway: it accepts classic TCP clients and joins them to
// rooms through the bus.
type Server struct {
	cfg    Config
	bus    Bus
	log    *slog.Logger
	nextID atomic.Uint64
	wg     sync.WaitGroup // session and refusal goroutines

	mu          sync.Mutex
	listeners   map[net.Listener]struct{}
	sessions    map[*Session]struct{}
	perIP       map[netip.Addr]int
	nicks       map[string]*Session // lower-cased nickname → session on this gateway
	rooms       map[string]*room
	closing     bool
	stopPrivate func()
	stopSweep   chan struct{} // ends sweepLoop (sweep.go)
	poller      *poller       // parks idle sessions' readers (park.go); nil: never
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
		perIP:     make(map[netip.Addr]int),
		nicks:     make(map[string]*Session),
		rooms:     make(map[string]*room),
		stopSweep: make(chan struct{}),
		poller:    newPoller(cfg.Logger),
	}
	stop, err := b.ReceivePrivate(s.deliverPrivate)
	if err != nil {
		s.poller.close()
		return nil, err
	}
	s.stopPrivate = stop
	go s.sweepLoop(s.stopSweep)
	return s, nil
}

// Serve accepts clients on ln until Shutdown, then returns nil. Transient
// accept errors (such as running out of file descriptors) are retried with
// a back-off.
func (s *Server) Serve(ln net.Listener) error {
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
		s.accept(c)
	}
}

func (s *Server) accept(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{
			Enable:   true,
			Idle:     s.cfg.KeepAlive,
			Interval: s.cfg.KeepAlive / 3,
			Count:    3,
		})
	}
	ip := remoteIP(c)

	s.mu.Lock()
	var refusal string
	switch {
	case s.closing:
		refusal = "ERROR server is shutting down\n"
	case len(s.sessions) >= s.cfg.MaxConns:
		refusal = "ERROR server is full, try again later\n"
	case s.perIP[ip] >= s.cfg.MaxConnsPerIP:
		refusal = "ERROR too many connections from your address, close one and try again\n"
	}
	if refusal != "" {
		s.wg.Add(1)
		s.mu.Unlock()
		s.log.Info("connection refused", "remote", c.RemoteAddr().String(), "why", strings.TrimSpace(refusal))
		go s.refuse(c, refusal)
		return
	}
	sess := newSession(s, c, s.nextID.Add(1), ip)
	s.sessions[sess] = struct{}{}
	s.perIP[ip]++
	s.wg.Add(1)
	s.mu.Unlock()

	go sess.serve() // Done when the session ends (Session.end)
}

func (s *Server) refuse(c net.Conn, line string) {
	defer s.wg.Done()
	_ = c.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	_, _ = c.Write([]byte(line))
	c.Close()
}

func remoteIP(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

func (s *Server) removeSession(sess *Session) {
	s.mu.Lock()
	delete(s.sessions, sess)
	if s.perIP[sess.ip]--; s.perIP[sess.ip] <= 0 {
		delete(s.perIP, sess.ip)
	}
	s.mu.Unlock()
}

func (s *Server) addNick(sess *Session) {
	s.mu.Lock()
	s.nicks[strings.ToLower(sess.nick)] = sess
	s.mu.Unlock()
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
func (s *Server) deliverPrivate(to, from, text string, _ time.Time) bool {
	s.mu.Lock()
	sess := s.nicks[strings.ToLower(to)]
	s.mu.Unlock()
	if sess == nil {
		return false
	}
	sess.deliver(concat("* private from ", from, ": ", text, "\n"), "")
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
	sessions := make([]*Session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	for _, sess := range sessions {
		sess.finish(ReasonShutdown, lineShutdown)
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
