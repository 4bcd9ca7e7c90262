package bus

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds on what one subscription may buffer before nats.go drops messages
// for it and reports nats.ErrSlowConsumer (which Conn logs). Delivery
// callbacks must not block, so reaching them means the process is starved.
const (
	PendingMsgsLimit  = 65536
	PendingBytesLimit = 64 << 20
)

const (
	reconnectWait   = time.Second
	reconnectJitter = 500 * time.Millisecond
	drainTimeout    = 5 * time.Second
	setupTimeout    = 10 * time.Second // JetStream setup at Connect, if ctx has no deadline
)

// Config configures a Conn. Start from DefaultConfig: Connect fills a zero
// Replicas, Lease or RequestTimeout with its default, but a zero History
// means history off.
type Config struct {
	// Servers are NATS URLs. Ignored when InProcess is set.
	Servers []string
	// InProcess, when set, connects to an embedded NATS server without a
	// socket (nats.InProcessServer).
	InProcess interface{ InProcessConn() (net.Conn, error) }
	// User and Password, or CredsFile (a NATS .creds file with a JWT and an
	// nkey seed), or NKeyFile (a file holding an nkey seed), authenticate
	// to NATS; empty means none.
	User, Password string
	CredsFile      string
	NKeyFile       string
	// TLS, when set, is used to connect to NATS (RootCAs to verify the
	// servers; Certificates for a client certificate).
	TLS *tls.Config
	// Name is the NATS connection name, shown by the server's monitoring,
	// and stored in this gateway's lease record.
	Name string
	// Logger receives the bus's logs; nil discards them.
	Logger *slog.Logger
	// Rules are the content rules every envelope received must pass
	// (validate.go); required.
	Rules Rules

	// History is how many chat lines per room the history stream keeps.
	// Zero turns history off: no stream is created and History calls fn
	// never. The stream is shared by all gateways: the last to connect sets
	// its limit.
	History int
	// Retain is how many chat lines per room the history stream keeps at
	// least (it keeps max(History, Retain)): the window from which a
	// gateway whose link came back fills its gap, and a client that
	// reconnects resumes (gapfill.go, resume.go). RetainAge, if not zero,
	// also drops lines older than it. Like History, the last gateway to
	// connect sets them for the whole stream.
	Retain    int
	RetainAge time.Duration
	// Replicas is the JetStream replica count of the history stream and the
	// KV buckets (3 on a 3-broker cluster).
	Replicas int
	// Lease is how long this gateway's record in chat_gateways outlives its
	// last refresh (the bucket's TTL); it is refreshed every Lease/3. When it
	// lapses, other gateways treat this gateway's nicknames and presence as
	// stale and may take them over, so a gateway cut off from NATS for longer
	// than Lease can lose its users' nicknames. The bucket is shared: the
	// last gateway to connect sets its TTL. At least 300ms.
	Lease time.Duration
	// RequestTimeout bounds each KV operation and each private-message
	// request.
	RequestTimeout time.Duration
	// Sweep is how often this gateway purges, from the nickname and
	// presence buckets, the delete markers older than Sweep (see sweep.go).
	// Zero means a minute.
	Sweep time.Duration
	// Addr is where chat clients reach this gateway ("host:port"), shared
	// with the other gateways so that a gateway shutting down can tell its
	// clients where to go (see Gateways).
	Addr string
	// IRCAddr is where IRC clients reach this gateway ("host:port"; empty:
	// it has no IRC port), shared in the same way (see IRCGateways).
	IRCAddr string

	// OnDisconnect and OnReconnect, if set, are called when the connection
	// to NATS is lost and when it is back. They run on nats.go's callback
	// goroutine and must not block. They are not called during Close.
	OnDisconnect func()
	OnReconnect  func()
	// OnNickLost, if set, is called when a nickname this gateway held was
	// taken by another gateway while this one was cut off from the bus for
	// longer than Lease. The gateway should disconnect that user. It must
	// not block.
	OnNickLost func(nick string)
	// OnModeration, if set, is called after the moderation bucket changed
	// (an operator, a ban, a mute or a topic; see mod.go). It must not
	// block.
	OnModeration func()
}

// DefaultRetain is the default Config.Retain: lines kept per room for
// gap-fill and resume.
const DefaultRetain = 1000

// DefaultConfig returns the defaults: a local NATS server, 20 lines of
// history per room replayed on join, 1000 kept, one replica, a 15s lease and a 2s request timeout.
func DefaultConfig() Config {
	return Config{
		Servers:        []string{nats.DefaultURL},
		Name:           "chatd",
		History:        20,
		Retain:         DefaultRetain,
		Replicas:       1,
		Lease:          15 * time.Second,
		RequestTimeout: 2 * time.Second,
		Sweep:          time.Minute,
	}
}

func (cfg *Config) fill() error {
	d := DefaultConfig()
	if cfg.InProcess == nil && len(cfg.Servers) == 0 {
		return fmt.Errorf("%w: no Servers and no InProcess server", ErrConfig)
	}
	if cfg.History < 0 || cfg.Retain < 0 || cfg.RetainAge < 0 || cfg.Replicas < 0 || cfg.Lease < 0 || cfg.RequestTimeout < 0 || cfg.Sweep < 0 {
		return fmt.Errorf("%w: negative History, Retain, RetainAge, Replicas, Lease, RequestTimeout or Sweep", ErrConfig)
	}
	if cfg.Sweep == 0 {
		cfg.Sweep = d.Sweep
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = d.Replicas
	}
	if cfg.Lease == 0 {
		cfg.Lease = d.Lease
	}
	if cfg.Lease < 300*time.Millisecond {
		return fmt.Errorf("%w: Lease %v is shorter than 300ms", ErrConfig, cfg.Lease)
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = d.RequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rules.Nick == nil || cfg.Rules.Text == nil {
		return fmt.Errorf("%w: no Rules.Nick or Rules.Text: envelopes from the bus must be checked against the gateway's rules", ErrConfig)
	}
	if cfg.Rules.MaxText < 0 {
		return fmt.Errorf("%w: negative Rules.MaxText", ErrConfig)
	}
	if cfg.Rules.MaxText == 0 {
		cfg.Rules.MaxText = defaultMaxText
	}
	return nil
}

// Conn is a gateway's connection to the bus. Its methods are safe for
// concurrent use.
type Conn struct {
	cfg Config
	log *slog.Logger
	id  string
	nc  *nats.Conn
	seq atomic.Uint64
	// pubMu keeps room events published in the order of their ids.
	pubMu sync.Mutex

	startedAt time.Time
	ops       opStats // JetStream calls and history replays, for metrics

	// JetStream handles; history is nil when Config.History is 0.
	js       jetstream.JetStream
	kvp      *kvPipe // every write of kvwrite.go (kvpipe.go)
	history  jetstream.Stream
	reads    historyReads // History reads in progress, shared by joins (history.go)
	gateways jetstream.KeyValue
	nicks    jetstream.KeyValue
	presence jetstream.KeyValue
	modKV    jetstream.KeyValue

	mod modState // this gateway's copy of chat_mod (mod.go)

	m *membership // leases, nicknames, presence, reaping: see members.go

	fills fills // room subscriptions, for gap-fill (gapfill.go)
	rings rings // this gateway's own recent lines per room (replay.go)

	rejects rejects // envelopes received and dropped (validate.go)

	closing   atomic.Bool   // set first thing in Close
	done      chan struct{} // closed by Close: stops background goroutines
	kick      chan struct{} // asks the lease loop to refresh now
	natsDone  chan struct{} // closed by nats.go's ClosedHandler
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	disconnected atomic.Int64 // unix nanoseconds of the last disconnect, 0 if none pending
}

// Connect dials NATS, sets up the JetStream stream and buckets and starts
// this gateway's lease. ctx bounds the JetStream setup. A server without
// JetStream is refused with ErrNoJetStream.
func Connect(ctx context.Context, cfg Config) (*Conn, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, fmt.Errorf("bus: gateway id: %w", err)
	}
	c := &Conn{
		cfg:       cfg,
		log:       cfg.Logger.With("gw", id),
		id:        id,
		startedAt: time.Now(),
		done:      make(chan struct{}),
		kick:      make(chan struct{}, 1),
		natsDone:  make(chan struct{}),
		kvp:       &kvPipe{waits: make(map[uint64]chan *nats.Msg)},
	}
	c.m = newMembership(c)
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectJitter(reconnectJitter, reconnectJitter),
		nats.DrainTimeout(drainTimeout),
		// Publishing while disconnected fails at once instead of queueing
		// lines that would arrive late, as a flood, after the link is back.
		nats.ReconnectBufSize(-1),
		// A link that goes silent (a frozen broker, a cut network: no
		// reset reaches this side) is noticed within about half a lease,
		// not nats.go's default of minutes: the gateway tells its clients,
		// refuses their lines and moves to another server before the other
		// gateways take it for gone.
		nats.PingInterval(pingInterval(cfg.Lease)),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.ErrorHandler(c.onError),
		nats.DisconnectErrHandler(c.onDisconnect),
		nats.ReconnectHandler(c.onReconnect),
		nats.ClosedHandler(func(*nats.Conn) {
			c.kvp.failAll()
			close(c.natsDone)
		}),
	}
	if cfg.InProcess != nil {
		opts = append(opts, nats.InProcessServer(cfg.InProcess))
	}
	switch {
	case cfg.CredsFile != "":
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	case cfg.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(cfg.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("bus: nkey: %w", err)
		}
		opts = append(opts, opt)
	case cfg.User != "":
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.TLS != nil && cfg.InProcess == nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	nc, err := nats.Connect(strings.Join(cfg.Servers, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect: %w", err)
	}
	c.nc = nc
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, setupTimeout)
		defer cancel()
	}
	if err := c.setupJetStream(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.watchMod(ctx); err != nil {
		close(c.done) // ends the moderation watch, if it started
		c.wg.Wait()
		nc.Close()
		return nil, err
	}
	if err := c.serveReplay(); err != nil {
		close(c.done) // ends the moderation watch
		c.wg.Wait()
		nc.Close()
		return nil, fmt.Errorf("bus: subscribe %s: %w", ReplaySubjects, err)
	}
	c.wg.Add(3)
	go c.m.leaseLoop()
	go c.m.followGateways()
	go c.sweepLoop()
	url := nc.ConnectedUrlRedacted()
	if cfg.InProcess != nil {
		url = "in-process"
	}
	c.log.Info("bus: connected", "url", url, "history", c.history != nil)
	return c, nil
}

// maxPingsOut is how many pings may go unanswered: the link is taken as
// lost at the next ping after that, so between maxPingsOut and
// maxPingsOut+1 ping intervals after it went silent.
const maxPingsOut = 2

// pingInterval is how often the connection pings its server: a quarter of
// the lease, so that a silent link is noticed within three quarters of it,
// between 100ms and 10s.
func pingInterval(lease time.Duration) time.Duration {
	return min(max(lease/4, 100*time.Millisecond), 10*time.Second)
}

// newID returns a random gateway id: 16 lower-case hex digits.
func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// ID returns this gateway's id, random per Conn.
func (c *Conn) ID() string { return c.id }

func (c *Conn) onError(_ *nats.Conn, sub *nats.Subscription, err error) {
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	if errors.Is(err, nats.ErrSlowConsumer) {
		dropped := 0
		if sub != nil {
			dropped, _ = sub.Dropped()
		}
		c.log.Warn("bus: slow consumer, messages dropped", "subject", subject, "dropped", dropped)
		return
	}
	c.log.Error("bus: NATS error", "subject", subject, "err", err)
}

func (c *Conn) onDisconnect(_ *nats.Conn, err error) {
	c.kvp.failAll() // as nats.go fails its requests in flight
	if c.closing.Load() {
		return
	}
	c.log.Warn("bus: disconnected from NATS", "err", err)
	c.disconnected.CompareAndSwap(0, time.Now().UnixNano())
	c.linkDown()
	if c.cfg.OnDisconnect != nil {
		c.cfg.OnDisconnect()
	}
}

func (c *Conn) onReconnect(nc *nats.Conn) {
	if c.closing.Load() {
		return
	}
	c.log.Info("bus: reconnected to NATS", "url", nc.ConnectedUrlRedacted())
	c.linkUp()
	select { // refresh the lease at once
	case c.kick <- struct{}{}:
	default:
	}
	if c.cfg.OnReconnect != nil {
		c.cfg.OnReconnect()
	}
}

// opContext bounds one bus operation by RequestTimeout.
func (c *Conn) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}

// Publish sends one chat line (KindSay or KindMe) or a nickname change
// (KindNick) with a core NATS publish; it does not wait for the server. Chat
// lines go to chat.v1.room.<room>.msg, where the history stream captures
// them, notices to chat.v1.room.<room>.event. Joins and departures are
// announced by Join and Part only (KindJoin and KindLeave are refused
// here), and a change of nickname is better made with Rename, which moves
// the user's presence too.
func (c *Conn) Publish(room, kind, nick, text string) error {
	subject, err := EventSubject(room, kind)
	if err != nil {
		return err
	}
	if kind == KindJoin || kind == KindLeave {
		return fmt.Errorf("%w: %s is announced by Join and Part", ErrInvalidKind, kind)
	}
	if c.closing.Load() {
		return ErrClosed
	}
	e := Envelope{Kind: kind, Room: room, Nick: nick, Text: text}
	return c.publish(subject, &e)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// publish stamps e with an id and time and publishes it.
func (c *Conn) publish(subject string, e *Envelope) error {
	return c.publishWith(subject, e, nil)
}

// publishWith is publish calling stamped, if not nil, with e's id before
// e can come back.
func (c *Conn) publishWith(subject string, e *Envelope, stamped func(id string)) error {
	bp := bufPool.Get().(*[]byte)
	// Ids leave in the order they are given: receivers drop an event
	// whose id is not above the last they had from this gateway.
	c.pubMu.Lock()
	n := c.stamp(e)
	if e.Kind == KindSay || e.Kind == KindMe {
		// Until the line comes back, replies for its room say they may
		// be missing it (replay.go).
		c.rings.published(e.Room, n, e.TS)
	}
	if stamped != nil {
		stamped(e.ID)
	}
	data := Encode((*bp)[:0], e)
	err := c.nc.Publish(subject, data) // copies data
	c.pubMu.Unlock()
	if cap(data) <= 64<<10 {
		*bp = data
		bufPool.Put(bp)
	}
	if err != nil {
		if e.Kind == KindSay || e.Kind == KindMe {
			c.rings.unpublished(e.Room, n)
		}
		return fmt.Errorf("bus: publish %s: %w", subject, err)
	}
	return nil
}

// splitID splits an envelope id "<gateway>.<counter>".
func splitID(id string) (gw string, n uint64, ok bool) {
	i := strings.LastIndexByte(id, '.')
	if i <= 0 {
		return "", 0, false
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	return id[:i], n, err == nil
}

// stamp gives e its version, gateway, id and time, and returns the
// counter of its id.
func (c *Conn) stamp(e *Envelope) uint64 {
	n := c.seq.Add(1)
	e.V = Version
	e.GW = c.id
	e.ID = c.id + "." + strconv.FormatUint(n, 10)
	e.TS = time.Now().UnixNano()
	return n
}

// DeliverFunc receives one room event; it is gateway.DeliverFunc.
type DeliverFunc = func(id, kind, nick, text string, at time.Time)

// maxSenders bounds the gateways a subscription remembers the last event id
// of; past it, it forgets them all (a late event may then pass once).
const maxSenders = 1024

// FlushesBursts reports that Subscribe ends every burst of events with
// KindFlush (gateway.BurstBus).
func (c *Conn) FlushesBursts() bool { return true }

// Subscribe calls deliver for every room event published to room, from one
// subscription on chat.v1.room.<room>.*, until unsubscribe is called. Events
// from one publisher arrive in publish order. When Subscribe returns, the
// server has the subscription (it flushes), so this gateway's own later
// publishes come back to it. deliver runs on one nats.go goroutine per
// subscription and must not block. After the events that arrived in one
// burst it is called with KindFlush, once none is waiting (KindFilled ends
// a fill's). Envelopes that break the contract
// (validate.go) are dropped and counted, never delivered.
func (c *Conn) Subscribe(room string, deliver func(id, kind, nick, text string, at time.Time)) (unsubscribe func(), err error) {
	subject, err := RoomSubject(room)
	if err != nil {
		return nil, err
	}
	if deliver == nil {
		return nil, errors.New("bus: Subscribe: nil deliver func")
	}
	if c.closing.Load() {
		return nil, ErrClosed
	}
	// The subscription delivers each sender's events in the order of
	// their ids and drops the others: a NATS server that was frozen can
	// forward, when it wakes, what a gateway published on a connection it
	// has since given up (it went on through another server, and its
	// clients were never shown those lines). After a reconnect it fills
	// the gap from the stream (gapfill.go).
	rs, err := newRoomSub(c, room, deliver)
	if err != nil {
		return nil, err
	}
	c.fills.add(rs)
	sub, err := c.nc.Subscribe(subject, rs.onMsg)
	if err != nil {
		c.fills.remove(rs)
		return nil, fmt.Errorf("bus: subscribe %s: %w", subject, err)
	}
	if err := sub.SetPendingLimits(PendingMsgsLimit, PendingBytesLimit); err != nil {
		c.fills.remove(rs)
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("bus: subscribe %s: %w", subject, err)
	}
	c.flush()
	var once sync.Once
	return func() {
		once.Do(func() {
			c.fills.remove(rs)
			if err := sub.Unsubscribe(); err != nil && !c.closing.Load() {
				c.log.Debug("bus: unsubscribe", "subject", subject, "err", err)
			}
		})
	}, nil
}

// flush waits until the server has processed what this Conn sent so far.
// When it cannot (disconnected), the subscriptions already made are still
// sent ahead of any later publish, on reconnect, so nothing is lost by going
// on.
func (c *Conn) flush() {
	if err := c.nc.FlushTimeout(c.cfg.RequestTimeout); err != nil {
		c.log.Debug("bus: flush", "err", err)
	}
}

// Close ends this gateway's session on the bus: it deletes the lease,
// releases (best effort) the nicknames and presence entries still held,
// drains the subscriptions and closes the connection, all within a bounded
// time. It is safe to call more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Conn) close() error {
	c.m.mu.Lock() // so that no reaper starts after wg.Wait below
	c.closing.Store(true)
	c.m.mu.Unlock()
	close(c.done)
	c.wg.Wait() // lease loop and reapers

	if !c.nc.IsClosed() {
		c.m.release()
	}

	if c.nc.IsClosed() {
		return nil
	}
	if err := c.nc.Drain(); err != nil {
		// Not connected (NATS is down or being reconnected to): there is
		// nothing to drain.
		c.log.Debug("bus: drain", "err", err)
		c.nc.Close()
		return nil
	}
	select {
	case <-c.natsDone:
	case <-time.After(drainTimeout + time.Second):
		c.nc.Close()
	}
	c.log.Info("bus: closed")
	return nil
}

// Connected reports whether the connection to NATS is up.
func (c *Conn) Connected() bool { return c.nc.IsConnected() }

// Reconnects counts how many times the connection to NATS was re-established.
func (c *Conn) Reconnects() uint64 { return c.nc.Stats().Reconnects }
