package cluster

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// DefaultRoutePort is the NATS route port assumed for a peer given without
// one.
const DefaultRoutePort = 6222

// Config describes one node. Start from DefaultConfig and change fields;
// New fills the zero values of Name, DataDir, ClusterName and Logger, but a
// zero JetStream means "off". Each field is meant to become one flag.
type Config struct {
	// Name identifies this server in its cluster (NATS server_name). It must
	// be unique per cluster and contain no whitespace. Default: the host
	// name, with characters other than letters, digits, '-', '_' and '.'
	// replaced by '-'.
	Name string

	// DataDir is the folder for persistent state; JetStream keeps its store
	// in DataDir/jetstream. It is created on Start if missing. Default
	// "chatd-data".
	DataDir string

	// JetStream enables JetStream (history, KV). Default true.
	JetStream bool

	// ClientListen is the host:port where NATS clients may connect, e.g.
	// "0.0.0.0:4222". Port 0 picks a free port (see Node.ClientURL). Empty
	// means no client listener at all: only in-process connections
	// (Node.InProcessConn), the single-node default.
	ClientListen string

	// ClusterName is the NATS cluster name shared by all routed nodes.
	// JetStream needs a fixed one. Default "chatd" (used only when
	// ClusterListen is set).
	ClusterName string

	// ClusterListen is the host:port for routes from the other nodes, e.g.
	// "0.0.0.0:6222". Port 0 picks a free port. Empty means no clustering.
	// It requires ClientListen: nats-server opens its route listener only
	// after its client listener.
	ClusterListen string

	// Peers are the route addresses of the cluster's nodes: "host" (port
	// 6222), "host:port" or a URL such as "nats-route://host:6222". The list
	// may include this node itself, so every node can be given the same
	// list. With JetStream, a clustered node needs at least one peer.
	Peers []string

	// User and Password, when set, are required of every NATS client (the
	// gateways) and, without a Secret, of the routes between nodes.
	User, Password string

	// Secret, when set, is the cluster's shared secret: clients may
	// authenticate with SecretCredentials(Secret) (beside User, if set),
	// and routes authenticate with another pair derived from it. Every
	// node of a cluster needs the same one. At least MinSecretLen bytes.
	Secret string

	// InsecureOpen lets the client or route listener accept connections
	// from beyond loopback without authentication. Without it New refuses
	// such a config with ErrOpenBus (see OpenListeners). Listeners on
	// loopback addresses may always be open.
	InsecureOpen bool

	// MonitorListen, when set, is the host:port of the NATS server's HTTP
	// monitoring endpoint (/varz, /connz, /routez, /jsz, /healthz). Without
	// a host (":8222") it listens on loopback only. It shows connections,
	// subjects and account details, never messages; it has no
	// authentication. Empty: off.
	MonitorListen string

	// TLS, when set, makes the client listener require TLS with this
	// configuration (its Certificates; with ClientAuth and ClientCAs it
	// also verifies client certificates). In-process connections do not
	// use TLS.
	TLS *tls.Config

	// Logger receives the NATS server's log, as records with
	// component=nats. Debug records are produced when Logger is enabled at
	// slog.LevelDebug, protocol traces (attr trace=true, logged at debug
	// level) only when it is enabled at LevelTrace. Default slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the single-node configuration: JetStream on, data in
// ./chatd-data, in-process connections only, no clustering.
func DefaultConfig() Config {
	return Config{
		Name:        defaultName(),
		DataDir:     "chatd-data",
		JetStream:   true,
		ClusterName: "chatd",
	}
}

// defaultName returns the host name made into a valid server name.
func defaultName() string {
	h, err := os.Hostname()
	if err != nil {
		return "chatd"
	}
	return sanitizeName(h)
}

// sanitizeName keeps letters, digits, '-', '_' and '.', replaces any other
// rune by '-', and never returns "".
func sanitizeName(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)),
			r == '-', r == '_', r == '.':
			return r
		}
		return '-'
	}, s)
	s = strings.Trim(s, "-.")
	if s == "" {
		return "chatd"
	}
	return s
}

// fill sets defaults for zero fields and validates c; it returns the route
// URLs parsed from c.Peers.
func (c *Config) fill() ([]*url.URL, error) {
	if c.Name == "" {
		c.Name = defaultName()
	}
	if strings.IndexFunc(c.Name, unicode.IsSpace) >= 0 {
		return nil, fmt.Errorf("%w: Name %q contains whitespace", ErrConfig, c.Name)
	}
	if c.DataDir == "" {
		c.DataDir = "chatd-data"
	}
	if c.ClusterName == "" {
		c.ClusterName = "chatd"
	}
	if strings.IndexFunc(c.ClusterName, unicode.IsSpace) >= 0 {
		return nil, fmt.Errorf("%w: ClusterName %q contains whitespace", ErrConfig, c.ClusterName)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ClientListen != "" {
		if _, _, err := splitListen(c.ClientListen); err != nil {
			return nil, fmt.Errorf("%w: ClientListen: %v", ErrConfig, err)
		}
	}
	if c.Secret != "" && len(c.Secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: Secret is %d bytes, want at least %d", ErrConfig, len(c.Secret), MinSecretLen)
	}
	if c.Secret != "" && c.User == SecretUser {
		return nil, fmt.Errorf("%w: User %q is the secret's own user; choose another", ErrConfig, c.User)
	}
	routes, err := c.fillRoutes()
	if err != nil {
		return nil, err
	}
	if open := c.OpenListeners(); len(open) > 0 && !c.InsecureOpen {
		return nil, fmt.Errorf("%w (%s)", ErrOpenBus, strings.Join(open, ", "))
	}
	return routes, nil
}

// fillRoutes validates the cluster fields of c and returns the route URLs.
func (c *Config) fillRoutes() ([]*url.URL, error) {
	if c.ClusterListen == "" {
		if len(c.Peers) > 0 {
			return nil, fmt.Errorf("%w: Peers given without ClusterListen", ErrConfig)
		}
		return nil, nil
	}
	if _, _, err := splitListen(c.ClusterListen); err != nil {
		return nil, fmt.Errorf("%w: ClusterListen: %v", ErrConfig, err)
	}
	if c.ClientListen == "" {
		return nil, fmt.Errorf("%w: ClusterListen needs ClientListen (routes start after the client listener)", ErrConfig)
	}
	if c.JetStream && len(c.Peers) == 0 {
		return nil, fmt.Errorf("%w: clustered JetStream needs Peers (the list may include this node)", ErrConfig)
	}
	routes := make([]*url.URL, 0, len(c.Peers))
	for _, p := range c.Peers {
		u, err := routeURL(p)
		if err != nil {
			return nil, fmt.Errorf("%w: Peers: %v", ErrConfig, err)
		}
		routes = append(routes, u)
	}
	c.Peers = append([]string(nil), c.Peers...) // do not alias the caller's slice
	return routes, nil
}

// splitListen parses a listen address "host:port". Port 0 becomes -1, the
// value that makes nats-server pick a free port.
func splitListen(hostport string) (host string, port int, err error) {
	host, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q in %q", ps, hostport)
	}
	if port == 0 {
		port = -1
	}
	return host, port, nil
}

// routeURL normalises one peer: "host" → nats-route://host:6222,
// "host:port" → nats-route://host:port; a URL keeps its scheme and gets
// port 6222 if it has none. IPv6 literals may be bracketed or not.
func routeURL(peer string) (*url.URL, error) {
	p := strings.TrimSpace(peer)
	if p == "" {
		return nil, fmt.Errorf("empty peer")
	}
	scheme := "nats-route"
	if strings.Contains(p, "://") {
		u, err := url.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("peer %q: %v", peer, err)
		}
		if u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("peer %q: want scheme://host[:port]", peer)
		}
		scheme, p = u.Scheme, u.Host
	}
	host, port, err := net.SplitHostPort(p)
	if err != nil {
		// No port: a bare name, an IPv4 address or an IPv6 literal.
		host, port = strings.TrimSuffix(strings.TrimPrefix(p, "["), "]"), strconv.Itoa(DefaultRoutePort)
	}
	if host == "" || strings.ContainsAny(host, "/[] \t") ||
		(strings.Contains(host, ":") && net.ParseIP(host) == nil) {
		return nil, fmt.Errorf("peer %q: bad host %q", peer, host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("peer %q: bad port %q", peer, port)
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}, nil
}
