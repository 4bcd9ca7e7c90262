package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatd/chatd/bus"
	"github.com/chatd/chatd/cluster"
	"github.com/chatd/chatd/gateway"
)

// This file is a chatd process's lifecycle: its Config, Main, and Run,
// Reload and Close. Run starts the parts (start.go) on the listeners
// (listeners.go), then prints how to join (banner.go).

// The bus must give the gateway everything it needs.
var (
	_ gateway.Bus      = (*bus.Conn)(nil)
	_ gateway.Resumer  = (*bus.Conn)(nil)
	_ gateway.BurstBus = (*bus.Conn)(nil)
)

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
	IRC             string // IRC listener; empty turns it off
	IRCTLSListen    string // IRC over TLS; empty turns it off
	TLSCert         string
	TLSKey          string
	ProxyProtocol   bool   // chat listeners expect a PROXY protocol header
	BansFile        string // banned IPs and CIDRs, reloaded on SIGHUP
	OperatorsFile   string // operators' names and password hashes, reloaded on SIGHUP
	NATSUser        string
	NATSPassword    string
	NATSCreds       string
	NATSNKey        string
	NATSTLSCert     string
	NATSTLSKey      string
	NATSTLSCA       string
	ShutdownTimeout time.Duration
	DrainDelay      time.Duration // with Admin: how long /readyz fails before Close starts
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
	ircLn     net.Listener
	ircTLSLn  net.Listener
	bans      *banList
	opers     *operList
	admin     *http.Server
	pprof     *http.Server
	adminLn   net.Listener
	serveDone chan struct{}
	web       *http.Server
	webLn     net.Listener
	webTLSLn  net.Listener
	webDone   chan struct{}
	draining  atomic.Bool // Drain or Close was called: /readyz fails
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
			IRC:             ":6667",
			ShutdownTimeout: 10 * time.Second,
			DrainDelay:      5 * time.Second,
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

// Reload re-reads what can change without a restart (the ban list, the
// operators); chatd calls it on SIGHUP. On error the old settings stay.
func (m *Main) Reload() {
	if m.opers != nil {
		if n, err := m.opers.load(); err != nil {
			m.log.Error("reload operators: keeping the old list", "err", err)
		} else {
			m.log.Info("operators reloaded", "file", m.opers.file, "operators", n)
		}
	}
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

// Drain starts a graceful stop, before Close: from now on /readyz answers
// 503 while every listener still serves, for --drain-delay (or until skip
// receives), so that load balancers and orchestrators polling /readyz send
// no new clients here before Close tells the connected ones where to go.
// Without --admin nothing can see it, and Drain returns at once.
func (m *Main) Drain(skip <-chan os.Signal) {
	m.draining.Store(true)
	d := m.Config.DrainDelay
	if m.admin == nil || d <= 0 {
		return
	}
	if m.log != nil {
		m.log.Info("draining: /readyz answers 503; the listeners close after the drain delay", "drain_delay", d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-skip:
	}
}

// Close stops chatd in order: the web listener, the gateway (clients are
// told where to go and their departures published), the bus (drained),
// the embedded server, and last the health listener, so that /readyz
// answers 503 throughout. It is safe to call more than once and after a
// failed Run.
func (m *Main) Close() error {
	m.closeOnce.Do(func() {
		var errs []error
		m.draining.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
		defer cancel()
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
			for _, ln := range []net.Listener{m.ln, m.tlsLn, m.ircLn, m.ircTLSLn} {
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
		if m.admin != nil {
			m.admin.Close()
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
