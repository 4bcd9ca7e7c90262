package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/chatd/chatd/bus"
	"github.com/chatd/chatd/cluster"
	"github.com/chatd/chatd/gateway"
)

// This file starts the parts a role runs and wires them together: the
// embedded NATS server (startNode), then the bus connection and the gateway
// on it (startGateway).

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
	if bcfg.IRCAddr, err = m.ircPublicAddr(publicAddr); err != nil {
		return err
	}
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
	bcfg.OnModeration = func() { withGateway((*gateway.Server).ApplyModeration) }
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
	gcfg.Mod = modBus{m.Bus}
	if m.Config.OperatorsFile != "" {
		m.opers = &operList{file: m.Config.OperatorsFile}
		n, err := m.opers.load()
		if err != nil {
			return err
		}
		gcfg.Operators = m.opers.check
		m.log.Info("operators loaded", "file", m.opers.file, "operators", n)
	}
	if m.Gateway, err = gateway.New(gcfg, m.Bus); err != nil {
		return err
	}
	gwMu.Lock()
	gw = m.Gateway
	gwMu.Unlock()

	m.serveDone = make(chan struct{})
	var serving sync.WaitGroup
	for _, l := range []struct {
		ln    net.Listener
		serve func(net.Listener) error
	}{{m.ln, m.Gateway.Serve}, {m.tlsLn, m.Gateway.Serve}, {m.ircLn, m.Gateway.ServeIRC}, {m.ircTLSLn, m.Gateway.ServeIRC}} {
		if l.ln == nil {
			continue
		}
		serving.Go(func() {
			if err := l.serve(l.ln); err != nil && !errors.Is(err, gateway.ErrServerClosed) {
				m.log.Error("serve", "addr", l.ln.Addr().String(), "err", err)
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
	m.log.Info("chatd started", "listen", m.ln.Addr().String(), "http", m.Config.HTTP, "irc", m.Config.IRC, "public", publicAddr,
		"nats", m.natsDesc(), "history", bcfg.History > 0)
	return nil
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

// ircPublicAddr is where the other gateways send this gateway's IRC
// clients when those shut down: the host of publicAddr and the IRC port;
// "" without a plain IRC port (a TLS-only one is not named: the notice
// could not say to use TLS).
func (m *Main) ircPublicAddr(publicAddr string) (string, error) {
	if m.ircLn == nil {
		return "", nil
	}
	host, _, err := net.SplitHostPort(publicAddr)
	if err != nil {
		return "", fmt.Errorf("public address %q: %w", publicAddr, err)
	}
	_, port, err := net.SplitHostPort(m.ircLn.Addr().String())
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, port), nil
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
