package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startTimeout bounds how long Start waits for the server to accept
// connections.
const startTimeout = 10 * time.Second

// Node is one embedded NATS server. Its lifecycle is New → Start → Close; a
// Node is started at most once. All methods are safe for concurrent use.
type Node struct {
	cfg  Config
	opts *server.Options
	log  *slog.Logger

	fatal     chan string   // first fatal message from the server's logger
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	mu     sync.Mutex // guards srv and closed
	srv    *server.Server
	closed bool
}

// New validates cfg, fills its zero values (see Config) and returns a Node
// that is not running yet. It touches neither the network nor the disk.
func New(cfg Config) (*Node, error) {
	routes, err := cfg.fill()
	if err != nil {
		return nil, err
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		NoSigs:     true,
		JetStream:  cfg.JetStream,
		StoreDir:   filepath.Join(cfg.DataDir, "jetstream"),
		DontListen: cfg.ClientListen == "",
	}
	if cfg.ClientListen != "" {
		opts.Host, opts.Port, _ = splitListen(cfg.ClientListen) // validated by fill
	}
	if cfg.MonitorListen != "" {
		host, port, err := splitListen(cfg.MonitorListen)
		if err != nil {
			return nil, fmt.Errorf("%w: MonitorListen: %v", ErrConfig, err)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		opts.HTTPHost, opts.HTTPPort = host, port
	}
	if cfg.User != "" {
		opts.Users = append(opts.Users, &server.User{Username: cfg.User, Password: cfg.Password})
	}
	if cfg.Secret != "" {
		user, pass := SecretCredentials(cfg.Secret)
		opts.Users = append(opts.Users, &server.User{Username: user, Password: pass})
	}
	if cfg.TLS != nil {
		opts.TLS, opts.TLSConfig = true, cfg.TLS
		opts.TLSVerify = cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert
		opts.TLSTimeout = 5
	}
	if cfg.ClusterListen != "" {
		opts.Cluster.Name = cfg.ClusterName
		opts.Cluster.Host, opts.Cluster.Port, _ = splitListen(cfg.ClusterListen)
		user, pass := cfg.User, cfg.Password
		if cfg.Secret != "" {
			user, pass = routeCredentials(cfg.Secret)
		}
		if user != "" {
			opts.Cluster.Username, opts.Cluster.Password = user, pass
			for _, r := range routes {
				r.User = url.UserPassword(user, pass)
			}
		}
		opts.Routes = routes
	}
	return &Node{
		cfg:   cfg,
		opts:  opts,
		log:   cfg.Logger.With("component", "nats", "node", cfg.Name),
		fatal: make(chan string, 1),
		done:  make(chan struct{}),
	}, nil
}

// Start creates DataDir if JetStream is on, starts the server and waits,
// at most 10s or until ctx ends, until it accepts connections (and routes,
// when clustered). It does not wait for peers or for a JetStream leader. On
// error the server has been shut down; call Close anyway.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrClosed
	}
	if n.srv != nil {
		n.mu.Unlock()
		return ErrStarted
	}
	if n.cfg.JetStream {
		if err := os.MkdirAll(n.opts.StoreDir, 0o750); err != nil {
			n.mu.Unlock()
			return fmt.Errorf("cluster: data dir: %w", err)
		}
	}
	srv, err := server.NewServer(n.opts.Clone())
	if err != nil {
		n.mu.Unlock()
		return fmt.Errorf("cluster: %w", err)
	}
	logger := &natsLogger{log: n.log, onFatal: n.onFatal}
	debug, trace := logger.flags()
	srv.SetLoggerV2(logger, debug, trace, false)
	n.srv = srv
	n.mu.Unlock()

	go srv.Start()
	if err := n.waitReady(ctx, srv); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return err
	}
	return nil
}

// onFatal records the first fatal message. It never blocks.
func (n *Node) onFatal(msg string) {
	select {
	case n.fatal <- msg:
	default:
	}
}

// waitReady polls srv until it is ready, reports a fatal error, ctx ends,
// the node is closed, or startTimeout passes.
func (n *Node) waitReady(ctx context.Context, srv *server.Server) error {
	deadline := time.Now().Add(startTimeout)
	for {
		ready := srv.ReadyForConnections(50 * time.Millisecond)
		select {
		case msg := <-n.fatal:
			return fmt.Errorf("%w: %s", ErrNotReady, msg)
		case <-n.done:
			return ErrClosed
		case <-ctx.Done():
			return fmt.Errorf("cluster: start: %w", ctx.Err())
		default:
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s", ErrNotReady, startTimeout)
		}
	}
}

// Close shuts the server down and waits until it has stopped. It is safe
// to call more than once and from several goroutines; every call returns
// after the shutdown is complete.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		srv := n.srv
		n.mu.Unlock()
		close(n.done)
		if srv != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
		}
	})
	return nil
}

// running returns the server, or an error if the node is not started or
// closed.
func (n *Node) running() (*server.Server, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.closed:
		return nil, ErrClosed
	case n.srv == nil:
		return nil, ErrNotStarted
	}
	return n.srv, nil
}

// ClientURL returns a nats:// URL at which this process can reach the
// client listener, or "" when there is none (no ClientListen, not started,
// or closed). A listener on an unspecified address (0.0.0.0, ::) is given
// as loopback; for the address remote clients should use, see Advertise.
func (n *Node) ClientURL() string {
	srv, err := n.running()
	if err != nil || n.opts.DontListen {
		return ""
	}
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok || addr == nil {
		return ""
	}
	ip := addr.IP
	if ip.IsUnspecified() {
		// Go reports a dual-stack "0.0.0.0" listener as [::]: pick the
		// loopback of the family that was asked for.
		ip = net.IPv4(127, 0, 0, 1)
		if h := net.ParseIP(n.opts.Host); h != nil && h.To4() == nil {
			ip = net.IPv6loopback
		}
	}
	u := url.URL{Scheme: "nats", Host: net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))}
	return u.String()
}

// InProcessConn returns a connection to the server that uses no socket, so
// it works without ClientListen. It implements nats.InProcessConnProvider:
// nats.Connect("", nats.InProcessServer(node)).
func (n *Node) InProcessConn() (net.Conn, error) {
	srv, err := n.running()
	if err != nil {
		return nil, err
	}
	c, err := srv.InProcessConn()
	if err != nil {
		return nil, fmt.Errorf("cluster: in-process connection: %w", err)
	}
	return c, nil
}

// Server returns the embedded server for tests and metrics, or nil before
// Start. Do not shut it down directly: use Close.
func (n *Node) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Name returns the node's server name (Config.Name after defaults).
func (n *Node) Name() string { return n.cfg.Name }

// Ready reports whether the node can serve the bus: the server runs and
// accepts connections and, with JetStream, JetStream is up and (in a
// cluster) its meta group has a leader this node follows.
func (n *Node) Ready() error {
	srv, err := n.running()
	if err != nil {
		return err
	}
	if !srv.Running() { // Start returned only once it accepted connections
		return ErrNotReady
	}
	if !n.cfg.JetStream {
		return nil
	}
	if !srv.JetStreamEnabled() {
		return fmt.Errorf("%w: JetStream is not enabled", ErrNotReady)
	}
	if n.cfg.ClusterListen != "" && !srv.JetStreamIsCurrent() {
		return fmt.Errorf("%w: JetStream has no meta leader (fewer than a quorum of nodes?)", ErrNotReady)
	}
	return nil
}
