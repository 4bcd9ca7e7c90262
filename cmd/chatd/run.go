package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/chatd/chatd/bus"
	"github.com/chatd/chatd/cluster"
	"github.com/chatd/chatd/gateway"
)

// The bus must give the gateway everything it needs.
var _ gateway.Bus = (*bus.Conn)(nil)

// Role is what one chatd process runs.
type Role string

const (
	RoleSingle  Role = "single"  // gateway + embedded NATS server (LAN mode)
	RoleGateway Role = "gateway" // gateway on an existing NATS
	RoleBroker  Role = "broker"  // embedded NATS server only
)

func (r Role) runsNode() bool    { return r != RoleGateway }
func (r Role) runsGateway() bool { return r != RoleBroker }

// Config is everything chatd needs to run, merged from flags and CHAT_*
// environment variables.
type Config struct {
	Listen          string // chat TCP listener
	HTTP            string // web page and WebSocket listener; empty turns it off
	HTTPSListen     string // the same over TLS (--tls-cert, --tls-key); empty turns it off
	Advertise       string // address or go-sockaddr template clients should dial
	PublicAddr      string // host:port other gateways' clients are sent to on shutdown
	NATS            string // comma-separated NATS URLs; empty runs the embedded server
	Peers           string // comma-separated cluster peers of the embedded server
	Admin           string // health endpoints listener; empty turns it off
	TLSListen       string // chat over TLS; empty turns it off
	TLSCert         string
	TLSKey          string
	ProxyProtocol   bool   // chat listeners expect a PROXY protocol header
	BansFile        string // banned IPs and CIDRs, reloaded on SIGHUP
	NATSUser        string
	NATSPassword    string
	NATSCreds       string
	NATSNKey        string
	NATSTLSCert     string
	NATSTLSKey      string
	NATSTLSCA       string
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
	Pprof           string // loopback address for net/http/pprof; empty: off

	// The bus's shared secret: nodes require credentials derived from it,
	// gateways present them. The file, if named, holds it.
	ClusterSecret, ClusterSecretFile string

	Cluster cluster.Config
	Bus     bus.Config
	Gateway gateway.Config
}

// Main is one chatd process: an embedded NATS server, the bus connection
// and a gateway (as the role says), started by Run and stopped by Close.
type Main struct {
	Role   Role
	Config Config
	Stdout io.Writer // where the join instructions go
	Stderr io.Writer // logs

	Node    *cluster.Node
	Bus     *bus.Conn
	Gateway *gateway.Server

	log       *slog.Logger
	ln        net.Listener
	tlsLn     net.Listener
	bans      *banList
	admin     *http.Server
	pprof     *http.Server
	adminLn   net.Listener
	serveDone chan struct{}
	web       *http.Server
	webLn     net.Listener
	webTLSLn  net.Listener
	webDone   chan struct{}
	closeOnce sync.Once
	closeErr  error
	secret    string // the cluster secret, resolved by Run
	started   bool   // Run succeeded
}

// NewMain returns a Main for role with the default configuration.
func NewMain(role Role) *Main {
	m := &Main{
		Role: role,
		Config: Config{
			Listen:          ":5500",
			HTTP:            ":8080",
			ShutdownTimeout: 10 * time.Second,
			LogLevel:        "info",
			LogFormat:       "text",
			Cluster:         cluster.DefaultConfig(),
			Bus:             bus.DefaultConfig(),
			Gateway:         gateway.DefaultConfig(),
		},
		Stdout: os.Stdout,
		Stderr: os.Stderr,
	}
	switch role {
	case RoleGateway:
		m.Config.NATS = "nats://127.0.0.1:4222"
	case RoleBroker:
		m.Config.Cluster.ClientListen = ":4222"
		m.Config.Cluster.ClusterListen = ":6222"
	}
	return m
}

// Run starts every part of the role and returns once it serves. Cancelling
// ctx does not stop chatd: call Close.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() { m.started = err == nil }()
	log, err := newLogger(m.Stderr, m.Config.LogLevel, m.Config.LogFormat)
	if err != nil {
		return err
	}
	if m.secret, err = m.clusterSecret(); err != nil {
		return err
	}
	m.log = log.With("role", string(m.Role))
	if m.Config.Pprof != "" {
		if err := m.startPprof(m.Config.Pprof); err != nil {
			return err
		}
	}

	if m.Role.runsNode() && m.Config.NATS == "" {
		if err := m.startNode(ctx); err != nil {
			return err
		}
	}
	if m.Role.runsGateway() {
		if err := m.startGateway(ctx); err != nil {
			return err
		}
	}
	if err := m.startAdmin(); err != nil {
		return err
	}
	if m.Role == RoleBroker {
		m.log.Info("broker started", "name", m.Node.Name(), "clients", m.Config.Cluster.ClientListen,
			"routes", m.Config.Cluster.ClusterListen, "peers", m.Config.Peers, "auth", m.busAuth())
		return nil
	}
	return m.printJoin()
}

func (m *Main) startNode(ctx context.Context) error {
	ccfg := m.Config.Cluster
	ccfg.Logger = m.log
	if m.Config.Peers != "" {
		ccfg.Peers = splitList(m.Config.Peers)
		if ccfg.ClusterListen == "" {
			ccfg.ClusterListen = ":6222"
		}
		if ccfg.ClientListen == "" {
			// nats-server opens its route listener only after a client one.
			ccfg.ClientListen = "127.0.0.1:0"
		}
	}
	ccfg.User, ccfg.Password = m.Config.NATSUser, m.Config.NATSPassword
	ccfg.Secret = m.secret
	var err error
	if m.Config.NATSTLSCert != "" && ccfg.ClientListen != "" {
		if ccfg.TLS, err = serverTLS(m.Config.NATSTLSCert, m.Config.NATSTLSKey, m.Config.NATSTLSCA); err != nil {
			return fmt.Errorf("NATS listener: %w", err)
		}
	}
	node, err := cluster.New(ccfg)
	if errors.Is(err, cluster.ErrOpenBus) {
		return fmt.Errorf("%w; set CHAT_CLUSTER_SECRET or --cluster-secret to the same secret on every node and gateway "+
			"(chatd secret prints a new one), or --nats-user and --nats-password; --insecure-open-bus starts it open, for trials only", err)
	}
	if err != nil {
		return err
	}
	m.Node = node
	if err := m.Node.Start(ctx); err != nil {
		return fmt.Errorf("start embedded NATS: %w", err)
	}
	if open := ccfg.OpenListeners(); len(open) > 0 {
		m.log.Warn("the NATS bus accepts connections from beyond loopback without authentication: anyone who reaches it "+
			"reads every message and posts as anyone; drop --insecure-open-bus and set CHAT_CLUSTER_SECRET",
			"open", strings.Join(open, ", "))
	}
	return nil
}

// busAuth names how the embedded server authenticates clients and routes.
func (m *Main) busAuth() string {
	c := m.Config
	switch {
	case m.secret != "" && c.NATSUser != "":
		return "cluster secret, user"
	case m.secret != "":
		return "cluster secret"
	case c.NATSUser != "":
		return "user"
	case c.NATSTLSCA != "":
		return "client certificates"
	}
	return "none"
}

func (m *Main) startGateway(ctx context.Context) error {
	if err := m.listen(); err != nil {
		return err
	}
	publicAddr, err := m.publicAddr()
	if err != nil {
		return err
	}

	bcfg := m.Config.Bus
	bcfg.Logger = m.log
	// What a gateway accepts from the bus is what it accepts from its own
	// clients: the gateway owns the rules, the bus applies them.
	bcfg.Rules = bus.Rules{Nick: gateway.ValidNickname, Text: gateway.CleanText, MaxText: m.Config.Gateway.MaxLine}
	bcfg.Addr = publicAddr
	bcfg.User, bcfg.Password = m.Config.NATSUser, m.Config.NATSPassword
	if bcfg.User == "" && m.secret != "" {
		bcfg.User, bcfg.Password = cluster.SecretCredentials(m.secret)
	}
	bcfg.CredsFile, bcfg.NKeyFile = m.Config.NATSCreds, m.Config.NATSNKey
	if m.Node == nil && (m.Config.NATSTLSCA != "" || m.Config.NATSTLSCert != "") {
		if bcfg.TLS, err = clientTLS(m.Config.NATSTLSCA, m.Config.NATSTLSCert, m.Config.NATSTLSKey); err != nil {
			return fmt.Errorf("NATS connection: %w", err)
		}
	}
	if bcfg.History = m.Config.Gateway.History; bcfg.History < 0 {
		bcfg.History = 0
	}
	if bcfg.Replicas == 0 {
		bcfg.Replicas = m.replicas()
	}
	if m.Node != nil {
		bcfg.InProcess = m.Node
	} else {
		bcfg.Servers = splitList(m.Config.NATS)
	}
	// The gateway exists only after the bus connects; the hooks find it then.
	var gw *gateway.Server
	var gwMu sync.Mutex
	withGateway := func(f func(*gateway.Server)) {
		gwMu.Lock()
		g := gw
		gwMu.Unlock()
		if g != nil {
			f(g)
		}
	}
	bcfg.OnDisconnect = func() { withGateway((*gateway.Server).LinkDown) }
	bcfg.OnReconnect = func() { withGateway((*gateway.Server).LinkUp) }
	bcfg.OnNickLost = func(nick string) {
		withGateway(func(g *gateway.Server) {
			g.Evict(nick, "your nickname was taken while the chat link was down; reconnect and choose another")
		})
	}
	// A gateway may start before its brokers, and a node of a LAN cluster
	// before a majority of its peers: wait for them. A lone node fails fast.
	retry := m.Node == nil || m.Config.Peers != ""
	if m.Bus, err = connectBus(ctx, bcfg, retry, m.log); err != nil {
		return err
	}

	gcfg := m.Config.Gateway
	gcfg.Logger = m.log.With("gateway", m.Bus.ID())
	gcfg.WebHosts = append(m.servedNames(), gcfg.WebHosts...)
	if m.bans != nil {
		gcfg.Banned = m.bans.banned
	}
	if m.Gateway, err = gateway.New(gcfg, m.Bus); err != nil {
		return err
	}
	gwMu.Lock()
	gw = m.Gateway
	gwMu.Unlock()

	m.serveDone = make(chan struct{})
	var serving sync.WaitGroup
	for _, ln := range []net.Listener{m.ln, m.tlsLn} {
		if ln == nil {
			continue
		}
		serving.Go(func() {
			if err := m.Gateway.Serve(ln); err != nil && !errors.Is(err, gateway.ErrServerClosed) {
				m.log.Error("serve", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	go func() {
		serving.Wait()
		close(m.serveDone)
	}()
	if m.Config.HTTP != "" {
		if err := m.serveWeb(); err != nil {
			return err
		}
	}
	m.log.Info("chatd started", "listen", m.ln.Addr().String(), "http", m.Config.HTTP, "public", publicAddr,
		"nats", m.natsDesc(), "jetstream", m.Bus.JetStream(), "history", bcfg.History > 0 && m.Bus.JetStream())
	return nil
}

// serveWeb starts the HTTP server for the web page and WebSocket clients.
// Its timeouts bound requests; connections upgraded to WebSocket leave
// them and are the gateway's sessions from then on.
func (m *Main) serveWeb() error {
	var err error
	if m.webLn, err = listenTCP(m.Config.HTTP, m.Config.Gateway.KeepAlive); err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	m.web = &http.Server{
		Handler:           m.Gateway.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(m.log.With("component", "http").Handler(), slog.LevelWarn),
	}
	listeners := []net.Listener{m.webLn}
	if m.Config.HTTPSListen != "" {
		cfg, err := serverTLS(m.Config.TLSCert, m.Config.TLSKey, "")
		if err != nil {
			return fmt.Errorf("https listener: %w", err)
		}
		ln, err := listenTCP(m.Config.HTTPSListen, m.Config.Gateway.KeepAlive)
		if err != nil {
			return fmt.Errorf("https listener: %w", err)
		}
		m.webTLSLn = tls.NewListener(ln, cfg)
		listeners = append(listeners, m.webTLSLn)
	}
	m.webDone = make(chan struct{})
	var serving sync.WaitGroup
	for _, ln := range listeners {
		serving.Go(func() {
			if err := m.web.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.log.Error("http serve", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	go func() {
		serving.Wait()
		close(m.webDone)
	}()
	return nil
}

// HTTPSAddr is the address of the HTTPS listener, or nil.
func (m *Main) HTTPSAddr() net.Addr {
	if m.webTLSLn == nil {
		return nil
	}
	return m.webTLSLn.Addr()
}

// HTTPAddr is the address the web listener is bound to, or nil when it is
// off.
func (m *Main) HTTPAddr() net.Addr {
	if m.webLn == nil {
		return nil
	}
	return m.webLn.Addr()
}

// listen opens the chat listeners: plain TCP and, if configured, TLS, both
// behind the PROXY protocol if asked; and loads the ban list.
func (m *Main) listen() error {
	c := m.Config
	if c.BansFile != "" {
		m.bans = &banList{file: c.BansFile}
		n, err := m.bans.load()
		if err != nil {
			return err
		}
		m.log.Info("bans loaded", "file", c.BansFile, "entries", n)
	}
	var err error
	if m.ln, err = listenTCP(c.Listen, c.Gateway.KeepAlive); err != nil {
		return fmt.Errorf("chat listener: %w", err)
	}
	if c.ProxyProtocol {
		m.ln = withProxyProtocol(m.ln)
	}
	if c.TLSListen == "" {
		return nil
	}
	cfg, err := serverTLS(c.TLSCert, c.TLSKey, "")
	if err != nil {
		return fmt.Errorf("chat TLS listener: %w", err)
	}
	ln, err := listenTCP(c.TLSListen, c.Gateway.KeepAlive)
	if err != nil {
		return fmt.Errorf("chat TLS listener: %w", err)
	}
	if c.ProxyProtocol {
		ln = withProxyProtocol(ln)
	}
	m.tlsLn = tls.NewListener(ln, cfg)
	m.log.Info("chat TLS listener", "addr", ln.Addr().String())
	return nil
}

// Reload re-reads what can change without a restart (the ban list); chatd
// calls it on SIGHUP. On error the old settings stay.
func (m *Main) Reload() {
	if m.bans == nil {
		return
	}
	n, err := m.bans.load()
	if err != nil {
		m.log.Error("reload bans: keeping the old list", "err", err)
		return
	}
	closed := 0
	if m.Gateway != nil {
		closed = m.Gateway.ApplyBans()
	}
	m.log.Info("bans reloaded", "file", m.bans.file, "entries", n, "sessions_closed", closed)
}

// ChatTLSAddr is the address of the TLS chat listener, or nil.
func (m *Main) ChatTLSAddr() net.Addr {
	if m.tlsLn == nil {
		return nil
	}
	return m.tlsLn.Addr()
}

// connectBus connects to NATS; with retry, it tries again while NATS is not
// up or JetStream has no majority yet, until ctx ends.
func connectBus(ctx context.Context, cfg bus.Config, retry bool, log *slog.Logger) (*bus.Conn, error) {
	for wait := 500 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		c, err := bus.Connect(ctx, cfg)
		if err == nil {
			return c, nil
		}
		if !retry || bus.IsFatalConnectError(err) {
			return nil, fmt.Errorf("connect to NATS: %w", err)
		}
		log.Warn("NATS not ready yet (brokers down, or fewer than a majority of peers up); retrying",
			"servers", cfg.Servers, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to NATS: %w", err)
		case <-time.After(wait):
		}
	}
}

// replicas is the JetStream replica count: 1 for a single embedded server,
// up to 3 when the embedded server has peers.
func (m *Main) replicas() int {
	if m.Node != nil && m.Config.Peers != "" {
		return min(3, len(splitList(m.Config.Peers)))
	}
	return 1
}

// publicAddr is where this gateway's clients are sent by the other
// gateways when those shut down: --public-addr, or the advertised address
// and the chat port.
func (m *Main) publicAddr() (string, error) {
	if m.Config.PublicAddr != "" {
		return m.Config.PublicAddr, nil
	}
	host, port, err := net.SplitHostPort(m.ln.Addr().String())
	if err != nil {
		return "", err
	}
	chosen, _, err := cluster.Advertise(host, m.Config.Advertise)
	if err != nil {
		return "", fmt.Errorf("advertise address: %w", err)
	}
	return net.JoinHostPort(chosen, port), nil
}

// servedNames are the host names, besides IP addresses and localhost,
// that browsers may use for this gateway's web listener without
// --web-hosts: the names of --http, --https-listen, --advertise and
// --public-addr, and this machine's name (bare and under .local).
func (m *Main) servedNames() []string {
	var names []string
	add := func(hostport string) {
		host := hostport
		if h, _, err := net.SplitHostPort(hostport); err == nil {
			host = h
		}
		if host != "" && !strings.ContainsAny(host, "{} ") && net.ParseIP(host) == nil {
			names = append(names, strings.ToLower(host))
		}
	}
	c := m.Config
	add(c.HTTP)
	add(c.HTTPSListen)
	add(c.Advertise)
	add(c.PublicAddr)
	if h, err := os.Hostname(); err == nil && h != "" {
		add(h)
		if !strings.Contains(h, ".") {
			add(h + ".local")
		}
	}
	return names
}

func (m *Main) natsDesc() string {
	if m.Node != nil {
		return "embedded, data in " + m.Config.Cluster.DataDir
	}
	return m.Config.NATS
}

// ChatAddr is the address the chat listener is bound to.
func (m *Main) ChatAddr() net.Addr { return m.ln.Addr() }

// AdminAddr is the address of the health listener, or nil.
func (m *Main) AdminAddr() net.Addr {
	if m.adminLn == nil {
		return nil
	}
	return m.adminLn.Addr()
}

// printJoin tells the person who started chatd how others can join.
func (m *Main) printJoin() error {
	host, port, err := net.SplitHostPort(m.ln.Addr().String())
	if err != nil {
		return err
	}
	chosen, all, err := cluster.Advertise(host, m.Config.Advertise)
	if err != nil {
		return fmt.Errorf("advertise address: %w", err)
	}
	if cluster.IsPublic(chosen) {
		m.log.Warn("the advertised address is public: anyone on the internet may reach this chat", "address", chosen)
	}
	w := m.Stdout
	fmt.Fprintf(w, "chatd is running. People join with nc (or telnet, or a classic chat client):\n")
	listed := false
	for _, c := range all {
		mark := ""
		if c.Chosen {
			mark = "  <- advertised"
			listed = true
		}
		fmt.Fprintf(w, "  %-34s %-10s%s\n", "nc "+c.IP+" "+port, c.Interface, mark)
	}
	if !listed {
		fmt.Fprintf(w, "  %-34s %-10s  <- advertised\n", "nc "+chosen+" "+port, "")
	}
	if m.webLn != nil {
		if _, webPort, err := net.SplitHostPort(m.webLn.Addr().String()); err == nil {
			fmt.Fprintf(w, "Browsers open http://%s/\n", net.JoinHostPort(chosen, webPort))
		}
	}
	if ip := net.ParseIP(chosen); ip != nil && ip.IsLoopback() {
		fmt.Fprintf(w, "Only this machine can join: the chat listens on a loopback address (use --listen :%s for your network).\n", port)
		return nil
	}
	fmt.Fprintf(w, "From the internet: forward TCP port %s on your router to %s, then people use: nc <your public IP> %s\n",
		port, net.JoinHostPort(chosen, port), port)
	return nil
}

// Close stops chatd in order: the health listener, the gateway (clients
// are told and their departures published), the bus (drained), then the
// embedded server. It is safe to call more than once and after a failed
// Run.
func (m *Main) Close() error {
	m.closeOnce.Do(func() {
		var errs []error
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		defer cancel()
		if m.admin != nil {
			m.admin.Close()
		}
		if m.web != nil {
			// Stop taking requests; WebSocket sessions are the gateway's and
			// end with it, each told why in a last message and close frame.
			if err := m.web.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			}
			<-m.webDone
		} else if m.webLn != nil {
			m.webLn.Close()
		}
		if m.Gateway != nil {
			if err := m.Gateway.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("gateway shutdown: %w", err))
			}
			if m.serveDone != nil {
				<-m.serveDone
			}
		} else {
			for _, ln := range []net.Listener{m.ln, m.tlsLn} {
				if ln != nil {
					ln.Close()
				}
			}
		}
		if m.Bus != nil {
			if err := m.Bus.Close(); err != nil {
				errs = append(errs, fmt.Errorf("bus close: %w", err))
			}
		}
		if m.Node != nil {
			if err := m.Node.Close(); err != nil {
				errs = append(errs, fmt.Errorf("embedded NATS: %w", err))
			}
		}
		if m.pprof != nil {
			_ = m.pprof.Close()
		}
		if m.log != nil && m.started {
			m.log.Info("chatd stopped")
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
