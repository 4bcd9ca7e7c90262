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
// with dashes as underscores: --max-conns is CHAT_MAX_CONNS.
func (m *Main) ParseFlags(args []string) error {
	c := &m.Config
	fs := flag.NewFlagSet("chatd", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() { usage(fs, fs.Output()) }

	fs.StringVar(&c.Listen, "listen", c.Listen, "chat TCP listen address (classic clients: nc, telnet)")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "address to tell clients to dial: an IP or a go-sockaddr template such as '{{ GetPrivateIP }}' (default: found from the interfaces)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long a graceful shutdown may take before connections are cut")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error (chat text is logged only at debug)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.Pprof, "pprof", c.Pprof, "serve Go runtime profiles (go tool pprof) on this loopback address, for measuring; default off")

	fs.StringVar(&c.NATS, "nats", c.NATS, "comma-separated NATS server URLs to use instead of the embedded server")
	fs.StringVar(&c.Cluster.DataDir, "data", c.Cluster.DataDir, "folder for the embedded NATS server's JetStream data (history, nicknames)")
	fs.StringVar(&c.Cluster.Name, "name", c.Cluster.Name, "this node's name on the bus")
	fs.StringVar(&c.Cluster.ClientListen, "nats-listen", c.Cluster.ClientListen, "also let NATS clients connect to the embedded server at this address (default: in-process only)")

	g := &c.Gateway
	fs.IntVar(&g.History, "history", g.History, "lines of a room's history kept and replayed on joining it (0 turns history off)")
	fs.StringVar(&g.DefaultRoom, "room", g.DefaultRoom, "room a client joins after the handshake")
	fs.IntVar(&g.MaxLine, "max-line", g.MaxLine, "longest line a client may send, in bytes")
	fs.DurationVar(&g.LinePause, "line-pause", g.LinePause, "a pause this long ends a line sent without a newline")
	fs.DurationVar(&g.HandshakeTimeout, "handshake-timeout", g.HandshakeTimeout, "time a client has to choose an acceptable nickname")
	fs.IntVar(&g.NickAttempts, "nick-attempts", g.NickAttempts, "refused nicknames before the connection is closed")
	fs.IntVar(&g.MaxConns, "max-conns", g.MaxConns, "most concurrent client connections")
	fs.IntVar(&g.MaxConnsPerIP, "max-conns-per-ip", g.MaxConnsPerIP, "most concurrent client connections from one IP address")
	fs.Float64Var(&g.Rate, "rate", g.Rate, "lines per second one client may send, sustained")
	fs.IntVar(&g.Burst, "burst", g.Burst, "lines one client may send in a burst above the rate")
	fs.IntVar(&g.FloodLimit, "flood-limit", g.FloodLimit, "lines refused in a row by the rate limit before the client is disconnected")
	fs.IntVar(&g.MaxPending, "max-pending", g.MaxPending, "bytes queued for one client before it is disconnected as a slow consumer")
	fs.DurationVar(&g.WriteTimeout, "write-timeout", g.WriteTimeout, "longest a single write to a client may block")
	fs.IntVar(&g.QuietRoomSize, "quiet-room-size", g.QuietRoomSize, "above this many members on a gateway, a room's join and leave notices go only to the member they are about (negative: never)")
	fs.DurationVar(&g.KeepAlive, "keepalive", g.KeepAlive, "TCP keep-alive idle time; unresponsive peers are reaped after about twice this")

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok && envErr == nil {
			if err := f.Value.Set(v); err != nil {
				envErr = fmt.Errorf("%s=%q: %v", name, v, err)
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see chatd --help)", fs.Arg(0))
	}
	return nil
}

func envName(flagName string) string {
	return "CHAT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, `chatd: a chat server for nc, telnet and classic chat clients, on NATS.

Usage:
  chatd [flags]     run a single node: chat gateway and embedded NATS server

Every flag can also be set with an environment variable: CHAT_ and the flag
name in upper case, dashes as underscores (--max-conns → CHAT_MAX_CONNS).
A flag given on the command line wins over the environment.

Flags:
`)
	fs.PrintDefaults()
}
