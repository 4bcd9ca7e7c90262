package main

import (
	"fmt"
	"net"

	"github.com/chatd/chatd/cluster"
)

// This file prints the start-up banner: how people join.

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
	if m.ircLn != nil {
		if _, ircPort, err := net.SplitHostPort(m.ircLn.Addr().String()); err == nil {
			fmt.Fprintf(w, "IRC clients: irssi -c %s -p %s  (rooms are channels: /join #%s)\n", chosen, ircPort, m.Config.Gateway.DefaultRoom)
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
