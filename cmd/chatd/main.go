// Command chatd runs a chat server that people join with nc, telnet, the
// classic Python chat client or a web browser. With no arguments it is a
// single node: a gateway and an embedded NATS server in one process. See
// README.md.
//
//	chatd [flags]              single node (LAN mode)
//	chatd gateway [flags]      a stateless gateway on an existing NATS
//	chatd broker [flags]       one node of a NATS cluster, for gateways
//	chatd healthcheck [flags]  probe a running node's readiness
//	chatd client HOST[:PORT]   a terminal chat client (no nc needed)
//	chatd secret               print a new cluster secret
//	chatd passwd               print a password hash for --operators
//	chatd version              print the version, VCS revision and Go version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	args := os.Args[1:]
	role := RoleSingle
	if len(args) > 0 {
		switch args[0] {
		case "gateway", "broker":
			role, args = Role(args[0]), args[1:]
		case "client":
			os.Exit(runClient(args[1:]))
		case "secret":
			os.Exit(runSecret(args[1:], os.Stdout, os.Stderr))
		case "passwd":
			os.Exit(runPasswd(args[1:], os.Stdin, os.Stdout, os.Stderr))
		case "healthcheck":
			os.Exit(healthcheck(args[1:], os.Stdout, os.Stderr))
		case "version":
			readBuildInfo().write(os.Stdout)
			return
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	m := NewMain(role)
	if err := m.ParseFlags(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(2)
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "chatd:", err)
		m.Close()
		os.Exit(1)
	}
	// Under systemd (Type=notify): chatd serves now, and stays alive.
	if err := sdNotify("READY=1\nSTATUS=serving"); err != nil {
		m.log.Warn("cannot tell the service manager chatd is ready", "err", err)
	}
	stopWatchdog := make(chan struct{})
	if every := watchdogInterval(); every > 0 {
		go watchdog(every, stopWatchdog, func(err error) { m.log.Warn("watchdog", "err", err) })
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	for done := false; !done; {
		select {
		case <-hup:
			m.Reload()
		case <-ctx.Done():
			done = true
		}
	}
	// A signal during the drain delay cuts it short; one after it, while
	// closing, ends the process at once.
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	stop()
	_ = sdNotify("STOPPING=1\nSTATUS=draining")
	m.Drain(again)
	signal.Stop(again)
	err := m.Close()
	close(stopWatchdog)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatd:", err)
		os.Exit(1)
	}
}
