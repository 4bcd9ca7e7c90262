package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// ParseFlags fills m.Config from CHAT_* environment variables and then from
// args, so a flag on the command line wins over the environment, which wins
// over the default. Each flag's variable is CHAT_ and its name in upper case
// with dashes as underscores: --max-conns is CHAT_MAX_CONNS. Only the flags
// of m.Role exist.
func (m *Main) ParseFlags(args []string) error {
	fs := m.flagSet()
	name := fs.Name()
	if err := applyConfigFile(fs, args); err != nil {
		return err
	}
	if err := applyEnv(fs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see %s --help)", fs.Arg(0), name)
	}
	return nil
}

// flagSet is m.Role's flags, bound to m.Config.
func (m *Main) flagSet() *flag.FlagSet {
	c := &m.Config
	name := "chatd"
	if m.Role != RoleSingle {
		name += " " + string(m.Role)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() { usage(fs, fs.Output()) }

	var configFile string
	fs.StringVar(&configFile, "config", "", "read settings from this file: one 'flag-name = value' per line, # comments; flags and CHAT_* variables win over it")
	fs.StringVar(&c.Admin, "admin", c.Admin, "serve /healthz and /readyz at this address, e.g. 127.0.0.1:9090 (default off)")
	fs.StringVar(&c.ClusterSecret, "cluster-secret", c.ClusterSecret, "shared secret of the cluster, the same on every node and gateway: nodes require credentials derived from it of NATS clients and routes, gateways present them; prefer CHAT_CLUSTER_SECRET or --cluster-secret-file; 'chatd secret' prints a new one (default none)")
	fs.StringVar(&c.ClusterSecretFile, "cluster-secret-file", c.ClusterSecretFile, "read --cluster-secret from this file, e.g. one made by 'chatd secret --init FILE' (default none)")
	fs.StringVar(&c.NATSUser, "nats-user", c.NATSUser, "NATS user name: an embedded server that listens requires it of clients (and of routes, without --cluster-secret); gateways present it")
	fs.StringVar(&c.NATSPassword, "nats-password", c.NATSPassword, "NATS password (see --nats-user); prefer CHAT_NATS_PASSWORD or --config to keep it off the command line")
	fs.StringVar(&c.NATSTLSCert, "nats-tls-cert", c.NATSTLSCert, "TLS certificate (PEM): served on --nats-listen by a node; presented as a client certificate by a gateway")
	fs.StringVar(&c.NATSTLSKey, "nats-tls-key", c.NATSTLSKey, "TLS key (PEM) for --nats-tls-cert")
	fs.StringVar(&c.NATSTLSCA, "nats-tls-ca", c.NATSTLSCA, "TLS CA (PEM): a gateway verifies its NATS servers against it; a node then requires client certificates signed by it")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error (chat text is logged only at debug)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.DurationVar(&c.DrainDelay, "drain-delay", c.DrainDelay, "on SIGTERM, with --admin: how long /readyz answers 503 while chat still serves, so that load balancers stop sending clients here, before the clients are told to go and the listeners close (0: at once; a second signal cuts it short)")
	fs.StringVar(&c.Pprof, "pprof", c.Pprof, "serve Go runtime profiles (go tool pprof) on this loopback address, for measuring; default off")
	if m.Role.runsNode() {
		m.nodeFlags(fs)
	}
	if m.Role.runsGateway() {
		m.gatewayFlags(fs)
	}
	return fs
}

func (m *Main) nodeFlags(fs *flag.FlagSet) {
	c := &m.Config
	fs.StringVar(&c.Cluster.DataDir, "data", c.Cluster.DataDir, "folder for the embedded NATS server's JetStream data (history, nicknames)")
	fs.StringVar(&c.Cluster.Name, "name", c.Cluster.Name, "this node's name in its NATS cluster (unique per cluster)")
	fs.StringVar(&c.Cluster.ClientListen, "nats-listen", c.Cluster.ClientListen, "let NATS clients (gateways) connect to the embedded server at this address; beyond loopback it needs --cluster-secret or --nats-user (default: in-process only)")
	fs.StringVar(&c.Cluster.ClusterListen, "cluster-listen", c.Cluster.ClusterListen, "address for routes from the other nodes of the NATS cluster; beyond loopback it needs --cluster-secret or --nats-user")
	fs.StringVar(&c.Cluster.ClusterName, "cluster-name", c.Cluster.ClusterName, "NATS cluster name, the same on every node")
	fs.StringVar(&c.Peers, "peers", c.Peers, "comma-separated cluster nodes (host or host:port, route port 6222), this one included; joins the embedded servers by routes")
	fs.StringVar(&c.Cluster.MonitorListen, "nats-monitor", c.Cluster.MonitorListen, "serve the embedded NATS server's monitoring endpoint (/varz, /connz, /routez, /jsz) at this address; ':8222' listens on loopback only; it has no authentication (default off)")
	fs.BoolVar(&c.Cluster.InsecureOpen, "insecure-open-bus", c.Cluster.InsecureOpen, "let the embedded NATS server take clients and routes from beyond loopback without authentication, for trials only: anyone who reaches it reads every message and posts as anyone (default false)")
}

func (m *Main) gatewayFlags(fs *flag.FlagSet) {
	c := &m.Config
	fs.StringVar(&c.Listen, "listen", c.Listen, "chat TCP listen address (classic clients: nc, telnet)")
	fs.StringVar(&c.HTTP, "http", c.HTTP, "HTTP listen address for the chat web page and WebSocket endpoint (/ws); empty turns it off")
	fs.Var((*commaList)(&c.Gateway.WebHosts), "web-hosts", "comma-separated extra host names browsers reach the web listener by, e.g. a reverse proxy's chat.example.com; the WebSocket refuses other names (IP addresses, localhost, this machine's name, --web-gateways hosts and the names of --http, --advertise and --public-addr are always served); * allows any")
	fs.Var((*commaList)(&c.Gateway.WebGateways), "web-gateways", "comma-separated WebSocket URLs of the cluster's gateways, as browsers reach them (ws://a:8080/ws,ws://b:8080/ws); the page fails over between them")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "address to tell clients to dial: an IP or a go-sockaddr template such as '{{ GetPrivateIP }}' (default: found from the interfaces)")
	fs.StringVar(&c.PublicAddr, "public-addr", c.PublicAddr, "host:port the other gateways send this gateway's clients to when they shut down (default: advertised address and chat port)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a graceful shutdown may take before connections are cut")
	natsHelp := "comma-separated NATS server URLs to use instead of the embedded server"
	if m.Role == RoleGateway {
		natsHelp = "comma-separated NATS server URLs (brokers, or any NATS 2.9+ server)"
	}
	fs.StringVar(&c.NATS, "nats", c.NATS, natsHelp)
	fs.StringVar(&c.NATSCreds, "nats-creds", c.NATSCreds, "NATS credentials file (JWT and nkey seed) for the gateway's connection")
	fs.StringVar(&c.NATSNKey, "nats-nkey", c.NATSNKey, "file holding an nkey seed for the gateway's NATS connection")
	fs.StringVar(&c.TLSListen, "tls-listen", c.TLSListen, "also serve the chat over TLS at this address, e.g. :5543 (classic clients cannot speak TLS: keep --listen too)")
	fs.StringVar(&c.IRC, "irc", c.IRC, "IRC listen address (irssi, WeeChat, HexChat: rooms are channels); empty turns it off")
	fs.StringVar(&c.IRCTLSListen, "irc-tls-listen", c.IRCTLSListen, "also serve IRC over TLS at this address, e.g. :6697 (with --tls-cert and --tls-key)")
	fs.DurationVar(&c.Gateway.IRCPing, "irc-ping", c.Gateway.IRCPing, "an IRC client silent this long is sent a PING, and disconnected if silent as long again")
	fs.StringVar(&c.HTTPSListen, "https-listen", c.HTTPSListen, "also serve the web page and WebSocket endpoint over TLS (https, wss) at this address, e.g. :8443")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "TLS certificate (PEM) for --tls-listen, --https-listen and --irc-tls-listen")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "TLS key (PEM) for --tls-listen, --https-listen and --irc-tls-listen")
	fs.BoolVar(&c.ProxyProtocol, "proxy-protocol", c.ProxyProtocol, "chat connections start with a PROXY protocol header from a load balancer, giving the real client address; only when nothing else can reach the chat ports")
	fs.StringVar(&c.Gateway.Password, "password", c.Gateway.Password, "a server password every client must give before joining (TCP: the line after the nickname; WebSocket: in hello); prefer CHAT_PASSWORD or --config")
	fs.StringVar(&c.BansFile, "bans", c.BansFile, "file of banned IP addresses and CIDR prefixes, one per line (an IPv6 address bans its /64); re-read on SIGHUP, which also closes the open sessions it now bans")
	fs.StringVar(&c.OperatorsFile, "operators", c.OperatorsFile, "file of chat operators, one 'NAME HASH' per line (the bcrypt hash 'chatd passwd' prints); they use /oper NAME PASSWORD; re-read on SIGHUP (default: no operators)")
	fs.IntVar(&c.Bus.Replicas, "replicas", c.Bus.Replicas, "JetStream replicas for history and nickname data: 1, or 3 on a 3-broker cluster (default: 1, or up to 3 with --peers)")
	fs.IntVar(&c.Bus.Retain, "retain", c.Bus.Retain, "lines kept per room (at least --history) so that a gateway whose bus link comes back, or a client that reconnects, gets what it missed")
	fs.DurationVar(&c.Bus.RetainAge, "retain-age", c.Bus.RetainAge, "also drop stored lines older than this (0: kept until --retain newer ones push them out)")
	fs.DurationVar(&c.Bus.Lease, "lease", c.Bus.Lease, "a gateway not heard from for this long is taken as gone: its users are announced as left and their nicknames freed")
	fs.DurationVar(&c.Bus.Sweep, "sweep", c.Bus.Sweep, "how often a gateway purges the nickname and presence buckets' delete markers older than this")

	g := &c.Gateway
	fs.IntVar(&g.History, "history", g.History, "lines of a room's history kept and replayed on joining it (0 turns history off)")
	fs.IntVar(&g.ResumeLines, "resume-lines", g.ResumeLines, "most missed lines replayed to a client that reconnects and resumes (older ones are skipped, and it is told)")
	fs.DurationVar(&g.ResumeAge, "resume-age", g.ResumeAge, "oldest position a reconnecting client may resume from; older gets a normal join")
	fs.IntVar(&g.UnreadRooms, "unread-rooms", g.UnreadRooms, "most rooms one WebSocket unread-count query may ask about (each costs a history read); 0 turns unread counts off")
	fs.DurationVar(&g.UnreadEvery, "unread-every", g.UnreadEvery, "a WebSocket client may ask for unread counts once per this")
	fs.StringVar(&g.DefaultRoom, "room", g.DefaultRoom, "room a client joins after the handshake")
	fs.IntVar(&g.MaxLine, "max-line", g.MaxLine, "longest line a client may send, in bytes")
	fs.DurationVar(&g.LinePause, "line-pause", g.LinePause, "a pause this long ends a line sent without a newline")
	fs.DurationVar(&g.HandshakeTimeout, "handshake-timeout", g.HandshakeTimeout, "time a client has to choose an acceptable nickname")
	fs.IntVar(&g.NickAttempts, "nick-attempts", g.NickAttempts, "refused nicknames before the connection is closed")
	fs.IntVar(&g.MaxConns, "max-conns", g.MaxConns, "most concurrent client connections")
	fs.IntVar(&g.MaxConnsPerIP, "max-conns-per-ip", g.MaxConnsPerIP, "most concurrent client connections from one IP address (IPv6: from one /64)")
	fs.DurationVar(&g.AuthDelay, "auth-delay", g.AuthDelay, "after a wrong --password from an address (IPv6: a /64), its next verdict comes this much later, doubling with each further wrong one")
	fs.DurationVar(&g.AuthDelayMax, "auth-delay-max", g.AuthDelayMax, "the longest wait between password verdicts for one address; attempts that would wait longer are refused unjudged")
	fs.DurationVar(&g.AuthForget, "auth-forget", g.AuthForget, "an address's wrong passwords are forgotten this long after the last one")
	fs.IntVar(&g.AuthMaxAddrs, "auth-max-addrs", g.AuthMaxAddrs, "most addresses the password throttle remembers (the oldest is forgotten first)")
	fs.Float64Var(&g.Rate, "rate", g.Rate, "lines per second one client may send, sustained")
	fs.IntVar(&g.Burst, "burst", g.Burst, "lines one client may send in a burst above the rate")
	fs.DurationVar(&g.FloodTimeout, "flood-timeout", g.FloodTimeout, "lines over --rate are paced, never dropped; a client paced without a break for this long (it never stops sending too fast) is disconnected")
	fs.Int("flood-limit", 0, "no longer used (lines over --rate are paced, not refused: see --flood-timeout); accepted so that old command lines still start")
	fs.IntVar(&g.MaxPending, "max-pending", g.MaxPending, "bytes queued for one client before it is disconnected as a slow consumer")
	fs.IntVar(&g.SendBuffer, "send-buffer", g.SendBuffer, "kernel send buffer (SO_SNDBUF) of each client socket, at most --max-pending: what a client that stops reading holds in the kernel (doubled there for bookkeeping); negative: the kernel's autotuning, up to megabytes")
	fs.DurationVar(&g.WriteTimeout, "write-timeout", g.WriteTimeout, "longest a single write to a client may block")
	fs.IntVar(&g.QuietRoomSize, "quiet-room-size", g.QuietRoomSize, "above this many members on a gateway, a room's join and leave notices go only to the member they are about (negative: never)")
	fs.DurationVar(&g.ReleaseAfter, "release-after", g.ReleaseAfter, "after a burst (handshakes, replays, chat) grew the heap by --release-growth bytes, the gateway returns free memory to the system once it has been quiet this long: no session started or ended, no line, no room event (negative: never)")
	fs.IntVar(&g.ReleaseGrowth, "release-growth", g.ReleaseGrowth, "least heap growth, in bytes, since the last release that a quiet spell returns to the system (see --release-after)")
	fs.DurationVar(&g.KeepAlive, "keepalive", g.KeepAlive, "TCP keep-alive idle time; unresponsive peers are reaped after about twice this")
}

// applyConfigFile sets flags from the file named by --config (or
// CHAT_CONFIG): lines of "name = value", # comments, names as the flags'.
func applyConfigFile(fs *flag.FlagSet, args []string) error {
	file := os.Getenv("CHAT_CONFIG")
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "config" || !strings.HasPrefix(a, "-") {
			continue
		}
		switch {
		case hasValue:
			file = value
		case i+1 < len(args):
			file = args[i+1]
		}
	}
	if file == "" {
		return nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for n, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.Trim(strings.TrimSpace(value), `"`)
		if !ok || name == "" {
			return fmt.Errorf("config %s:%d: want name = value, got %q", file, n+1, line)
		}
		if name == "config" || fs.Lookup(name) == nil {
			return fmt.Errorf("config %s:%d: no setting %q here (see --help)", file, n+1, name)
		}
		if err := fs.Set(name, value); err != nil {
			return fmt.Errorf("config %s:%d: %s: %v", file, n+1, name, err)
		}
	}
	return nil
}

// commaList is a flag holding a comma-separated list.
type commaList []string

func (l *commaList) String() string { return strings.Join(*l, ",") }

func (l *commaList) Set(v string) error {
	*l = nil
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// applyEnv sets every flag of fs whose CHAT_* variable is set.
func applyEnv(fs *flag.FlagSet) error {
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", name, v, err)
			}
		}
	})
	return envErr
}

func envName(flagName string) string {
	return "CHAT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, `chatd: a chat server for nc, telnet and classic chat clients, on NATS.

Usage:
  chatd [flags]              single node: chat gateway and embedded NATS server
  chatd gateway [flags]      stateless gateway on existing NATS servers (--nats)
  chatd broker [flags]       one node of a NATS cluster with JetStream, for gateways
  chatd healthcheck [--admin ADDR]
                             exit 0 if the node at ADDR is ready (its --admin)
  chatd client [flags] HOST[:PORT]
                             terminal chat client (see chatd client --help)
  chatd secret [--init FILE] print a new cluster secret (or create FILE with one)
  chatd passwd               print the bcrypt hash of a password, for --operators
  chatd version              print the version

Every flag can also be set with an environment variable: CHAT_ and the flag
name in upper case, dashes as underscores (--max-conns → CHAT_MAX_CONNS), or
in a file given with --config (lines of "max-conns = 500"). A flag on the
command line wins over the environment, which wins over the file.

Flags of %s:
`, fs.Name())
	fs.PrintDefaults()
}
