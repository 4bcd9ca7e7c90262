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
	"time"

	"github.com/chatd/chatd/bus"
	"github.com/chatd/chatd/cluster"
	"github.com/chatd/chatd/gateway"
)

// The bus must give the gateway everything it needs.
var _ gateway.Bus = (*bus.Conn)(nil)

// Config is everything chatd needs to run, merged from flags and CHAT_*
// environment variables.
type Config struct {
	Listen          string // chat TCP listener
	NATS            string // comma-separated NATS URLs; empty runs the embedded server
	Advertise       string // address or go-sockaddr template clients should dial
	ShutdownTimeout time.Duration
	LogLevel        string
	LogFormat       string
	Pprof           string // loopback address for net/http/pprof; empty: off

	Cluster cluster.Config
	Bus     bus.Config
	Gateway gateway.Config
}

// Main is one chatd process: an embedded NATS server, the bus connection
// and a gateway, started by Run and stopped by Close.
type Main struct {
	Config Config
	Stdout io.Writer // where the join instructions go
	Stderr io.Writer // logs

	Node    *cluster.Node
	Bus     *bus.Conn
	Gateway *gateway.Server

	log       *slog.Logger
	ln        net.Listener
	pprof     *http.Server
	serveDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{
		Config: Config{
			Listen:          ":5500",
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
}

// Run starts every part and returns once clients can connect. Cancelling
// ctx does not stop chatd: call Close.
func (m *Main) Run(ctx context.Context) error {
	log, err := newLogger(m.Stderr, m.Config.LogLevel, m.Config.LogFormat)
	if err != nil {
		return err
	}
	m.log = log
	if m.Config.Pprof != "" {
		if err := m.startPprof(m.Config.Pprof); err != nil {
			return err
		}
	}

	bcfg := m.Config.Bus
	if m.Config.NATS != "" {
		bcfg.Servers = strings.Split(m.Config.NATS, ",")
	} else {
		ccfg := m.Config.Cluster
		ccfg.Logger = log
		if m.Node, err = cluster.New(ccfg); err != nil {
			return err
		}
		if err := m.Node.Start(ctx); err != nil {
			return fmt.Errorf("start embedded NATS: %w", err)
		}
		bcfg.InProcess = m.Node
	}
	bcfg.Logger = log.With("component", "bus")
	if bcfg.History = m.Config.Gateway.History; bcfg.History < 0 {
		bcfg.History = 0
	}
	if m.Bus, err = bus.Connect(ctx, bcfg); err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}

	gcfg := m.Config.Gateway
	gcfg.Logger = log.With("component", "gateway", "gateway", m.Bus.ID())
	if m.Gateway, err = gateway.New(gcfg, m.Bus); err != nil {
		return err
	}
	if m.ln, err = net.Listen("tcp", m.Config.Listen); err != nil {
		return fmt.Errorf("chat listener: %w", err)
	}
	m.serveDone = make(chan struct{})
	go func() {
		defer close(m.serveDone)
		if err := m.Gateway.Serve(m.ln); err != nil && !errors.Is(err, gateway.ErrServerClosed) {
			m.log.Error("serve", "err", err)
		}
	}()
	log.Info("chatd started", "listen", m.ln.Addr().String(), "nats", m.natsDesc(),
		"jetstream", m.Bus.JetStream(), "history", bcfg.History)
	return m.printJoin()
}

func (m *Main) natsDesc() string {
	if m.Node != nil {
		return "embedded, data in " + m.Config.Cluster.DataDir
	}
	return m.Config.NATS
}

// ChatAddr is the address the chat listener is bound to.
func (m *Main) ChatAddr() net.Addr { return m.ln.Addr() }

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
	if ip := net.ParseIP(chosen); ip != nil && ip.IsLoopback() {
		fmt.Fprintf(w, "Only this machine can join: the chat listens on a loopback address (use --listen :%s for your network).\n", port)
		return nil
	}
	fmt.Fprintf(w, "From the internet: forward TCP port %s on your router to %s, then people use: nc <your public IP> %s\n",
		port, net.JoinHostPort(chosen, port), port)
	return nil
}

// Close stops chatd in order: the gateway (clients are told and their
// departures published), the bus (drained), then the embedded server. It is
// safe to call more than once and after a failed Run.
func (m *Main) Close() error {
	m.closeOnce.Do(func() {
		var errs []error
		if m.Gateway != nil {
			ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
			if err := m.Gateway.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("gateway shutdown: %w", err))
			}
			cancel()
			if m.serveDone != nil {
				<-m.serveDone
			}
		} else if m.ln != nil {
			m.ln.Close()
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
		if m.log != nil {
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
