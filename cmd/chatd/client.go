package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/chatd/chatd/internal/termclient"
)

// runClient is `chatd client [flags] HOST[:PORT]`: a terminal chat client.
func runClient(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return clientMain(ctx, args, os.Stdin, os.Stdout, os.Stderr)
}

// clientMain runs the client with the given streams: with line editing and
// colours when they are a terminal, plain lines otherwise. It returns the
// exit code.
func clientMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, opts, err := parseClientFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "chatd client:", err)
		return 2
	}
	if opts.insecure {
		fmt.Fprintln(stderr, "chatd client: WARNING: --tls-insecure: the server's certificate is NOT checked.\n"+
			"  Anyone on the network between you and the server can pretend to be it and read\n"+
			"  or change everything you send and receive. Use --tls-ca FILE for a private CA instead.")
	}

	inFile, _ := stdin.(*os.File)
	outFile, _ := stdout.(*os.File)
	outIsTerm := outFile != nil && term.IsTerminal(int(outFile.Fd())) && enableVT(outFile)
	cfg.Color = colorWanted(outIsTerm, opts.noColor, os.Getenv)
	restore := func() {}
	if outIsTerm && inFile != nil && term.IsTerminal(int(inFile.Fd())) {
		old, err := term.MakeRaw(int(inFile.Fd()))
		if err != nil {
			fmt.Fprintln(stderr, "chatd client: no line editing:", err)
		} else {
			restore = func() { term.Restore(int(inFile.Fd()), old) }
			cfg.Terminal = true
			cfg.TermSize = func() (int, int, error) { return term.GetSize(int(outFile.Fd())) }
		}
	}

	err = termclient.Run(ctx, cfg, stdin, stdout)
	restore()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(stderr, "chatd client:", err)
		return 1
	}
	return 0
}

// colorWanted says whether to colour the output: only on a terminal, and
// never with NO_COLOR set to anything (https://no-color.org), --no-color,
// or TERM=dumb.
func colorWanted(outIsTerm, noColor bool, getenv func(string) string) bool {
	return outIsTerm && !noColor && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// clientOpts are the client's flags that are not in termclient.Config.
type clientOpts struct {
	insecure bool
	noColor  bool
}

// parseClientFlags reads the client's CHAT_* variables and then args, where
// flags may come before or after HOST[:PORT].
func parseClientFlags(args []string, stderr io.Writer) (termclient.Config, clientOpts, error) {
	cfg := termclient.DefaultConfig()
	var opts clientOpts
	var useTLS bool
	var caFile string

	fs := flag.NewFlagSet("chatd client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { clientUsage(fs, fs.Output()) }
	fs.StringVar(&cfg.Nick, "nick", "", "nickname to use (default: ask); asked again if refused")
	fs.BoolVar(&useTLS, "tls", false, "connect to a TLS chat port, checking its certificate against the system's CAs")
	fs.StringVar(&caFile, "tls-ca", "", "PEM file of the CA that signed the server's certificate, for a private CA (implies --tls)")
	fs.BoolVar(&opts.insecure, "tls-insecure", false, "do not check the server's certificate at all (implies --tls; unsafe: for tests only)")
	cfg.Resume = true
	fs.BoolVar(&cfg.Resume, "resume", cfg.Resume, "after a reconnect, get the lines missed meanwhile (a chatd extension; plain servers are spoken to without it)")
	fs.IntVar(&cfg.Retries, "retries", cfg.Retries, "reconnect attempts in a row before giving up when the connection drops; -1: until Ctrl-C, 0: never")
	fs.BoolVar(&opts.noColor, "no-color", false, "no colours (also off when NO_COLOR is set or the output is not a terminal)")

	if err := applyEnv(fs); err != nil {
		return cfg, opts, err
	}

	var hosts []string
	for {
		if err := fs.Parse(args); err != nil {
			return cfg, opts, err
		}
		if fs.NArg() == 0 {
			break
		}
		hosts = append(hosts, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(hosts) {
	case 0:
		return cfg, opts, fmt.Errorf("which server? usage: chatd client [flags] HOST[:PORT] (see chatd client --help)")
	case 1:
		cfg.Addr = hosts[0]
	default:
		return cfg, opts, fmt.Errorf("unexpected argument %q: give one HOST[:PORT] (see chatd client --help)", hosts[1])
	}
	if _, err := termclient.NormalizeAddr(cfg.Addr); err != nil {
		return cfg, opts, err
	}

	if useTLS || caFile != "" || opts.insecure {
		cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opts.insecure}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return cfg, opts, fmt.Errorf("--tls-ca: %v", err)
			}
			cfg.TLS.RootCAs = x509.NewCertPool()
			if !cfg.TLS.RootCAs.AppendCertsFromPEM(pem) {
				return cfg, opts, fmt.Errorf("--tls-ca: no PEM certificate in %s", caFile)
			}
		}
	}
	return cfg, opts, nil
}

func clientUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, `chatd client: a terminal chat client, for people without nc (Windows too).

Usage:
  chatd client [flags] HOST[:PORT]      port %s unless given

It asks for a nickname (or takes --nick), then sends each line you type to
the room and shows what others say. On a terminal the line can be edited
(arrows, Home/End, Ctrl-W, history with up/down) and notices, history and
errors are coloured (not with NO_COLOR set). /help lists the server's
commands; /quit, Ctrl-D or Ctrl-C leaves. A dropped connection is retried
by itself (1s, doubling to 30s), to the servers a shutting-down server names
first, with the same nickname.

Every flag can also be set with an environment variable: CHAT_ and the flag
name in upper case, dashes as underscores (--tls-ca → CHAT_TLS_CA).

Flags:
`, termclient.DefaultPort)
	fs.PrintDefaults()
}
