package main

import (
	"fmt"
	"net"
	"net/netip"

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
	if pub := m.Config.PublicAddr; pub != "" {
		// Behind NAT, port mapping or a container, the interfaces' addresses
		// are not what people dial: the public address is.
		if pubHost, pubPort, err := net.SplitHostPort(pub); err == nil {
			fmt.Fprintf(w, "  %-34s %-10s  <- --public-addr\n", "nc "+pubHost+" "+pubPort, "")
		}
		fmt.Fprintf(w, "This gateway listens on %s for chat", m.ln.Addr())
		if m.webLn != nil {
			fmt.Fprintf(w, ", %s for browsers", m.webLn.Addr())
		}
		if m.ircLn != nil {
			fmt.Fprintf(w, ", %s for IRC", m.ircLn.Addr())
		}
		fmt.Fprintf(w, "; people reach it through %s.\n", pub)
		return nil
	}
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
	fmt.Fprintln(w, forwardAdvice(chosen, port))
	return nil
}

// forwardAdvice tells how people on the internet can reach the advertised
// address, by its family: an IPv4 address needs a port forwarding on the
// router (NAT); a global IPv6 address needs no forwarding, only the
// router's firewall to let the port in; an IPv6 ULA (fc00::/7) or a
// link-local address is never reachable from the internet.
func forwardAdvice(chosen, port string) string {
	ip, err := netip.ParseAddr(chosen)
	switch {
	case err != nil: // a host name from --advertise
		return fmt.Sprintf("From the internet: people use: nc %s %s, if that name and port reach this machine", chosen, port)
	case ip.Unmap().Is4():
		return fmt.Sprintf("From the internet: forward TCP port %s on your router to %s, then people use: nc <your public IP> %s",
			port, net.JoinHostPort(chosen, port), port)
	case ip.IsPrivate() || ip.IsLinkLocalUnicast():
		return fmt.Sprintf("From the internet: %s is a private IPv6 address, never reachable from there: forward TCP port %s "+
			"on your router to this machine's IPv4 address, or open it in the router's firewall to a global IPv6 address (--advertise)", chosen, port)
	}
	return fmt.Sprintf("From the internet: allow TCP port %s to %s in your router's IPv6 firewall (IPv6 needs no forwarding), then people use: nc %s %s",
		port, chosen, chosen, port)
}
