package termclient

import (
	"fmt"
	"net"
	"strings"
)

// DefaultPort is the classic chat port.
const DefaultPort = "5500"

// NormalizeAddr turns HOST, HOST:PORT, an IPv6 address or [IPv6]:PORT into
// host:port, with DefaultPort when none is given.
func NormalizeAddr(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return "", fmt.Errorf("no server address given")
	}
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if host == "" {
			return "", fmt.Errorf("server address %q has no host", addr)
		}
		if port == "" {
			port = DefaultPort
		}
		return net.JoinHostPort(host, port), nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	if strings.Contains(host, ":") && net.ParseIP(host) == nil {
		return "", fmt.Errorf("bad server address %q: want HOST or HOST:PORT", addr)
	}
	if strings.ContainsAny(host, "[] /") {
		return "", fmt.Errorf("bad server address %q: want HOST or HOST:PORT", addr)
	}
	return net.JoinHostPort(host, DefaultPort), nil
}

// noticePrefix starts every notice from the server; no chat user can make
// a line start with it (docs/protocol.md, "Line classes").
const noticePrefix = "*** "

// redirectPrefix starts the notice a chatd gateway sends its clients when
// it shuts down while other gateways are alive.
const redirectPrefix = noticePrefix + "server shutting down; reconnect to "

// parseRedirect returns the addresses of a shutdown notice
// "*** server shutting down; reconnect to A or B", or nil for any other
// line. The client follows them only when the server closes the connection
// right after that line.
func parseRedirect(line string) []string {
	rest, ok := strings.CutPrefix(line, redirectPrefix)
	if !ok {
		return nil
	}
	var addrs []string
	for _, a := range strings.Split(rest, " or ") {
		for _, a := range strings.Split(a, ",") {
			if a, err := NormalizeAddr(a); err == nil {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs
}

// prepend returns first followed by rest, without repeats.
func prepend(first []string, rest []string) []string {
	out := make([]string, 0, len(first)+len(rest))
	seen := make(map[string]bool)
	for _, list := range [][]string{first, rest} {
		for _, a := range list {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}
