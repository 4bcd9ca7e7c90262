package cluster

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	sockaddr "github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/go-sockaddr/template"
)

// Candidate is one address at which this host may be reachable.
type Candidate struct {
	IP        string // textual IP, without brackets or zone
	Interface string // interface holding it; "" if not local (e.g. a NAT address)
	Chosen    bool   // the address Advertise picked
	Private   bool   // inside an RFC 6890 special-purpose block (RFC 1918, ULA, loopback, …)
}

// Advertise decides the address clients should dial. bindHost is the host
// part of the chat listener (e.g. "", "0.0.0.0", "::", "192.168.1.5",
// "127.0.0.1"); tmpl is an optional go-sockaddr template (e.g.
// "{{ GetPrivateIP }}", "{{ GetInterfaceIP \"eth0\" }}") or a literal IP.
//
// The rule, after memberlist's: a non-empty tmpl wins (the first IP it
// yields; none is an error wrapping ErrNoAddress). Otherwise a specific
// bindHost is the answer. Otherwise (unspecified bindHost) the candidates are
// the non-loopback IPv4 addresses of interfaces that are up and running, then
// their global-unicast IPv6 ones (Go listens dual-stack on "0.0.0.0" as on
// "::"); the chosen one is go-sockaddr's GetPrivateIP if it is a candidate,
// else the first candidate, else 127.0.0.1 on the loopback interface, so a
// host without a network still gets a usable address.
//
// all lists the candidates with exactly one Chosen; for a specific bindHost
// it holds only that address, and an address picked by tmpl that is not a
// candidate is put first. IPv6 addresses come without brackets: join them
// with net.JoinHostPort. Advertise reads the interface table (and may run
// the system's route command); resolve once at startup. Note that
// go-sockaddr's GetInterfaceIP skips non-forwardable addresses such as
// loopback; GetInterfaceIPs does not.
func Advertise(bindHost, tmpl string) (chosen string, all []Candidate, err error) {
	bindHost = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(bindHost), "["), "]")
	if i := strings.IndexByte(bindHost, '%'); i >= 0 { // drop an IPv6 zone
		bindHost = bindHost[:i]
	}
	ifs, err := sockaddr.GetAllInterfaces()
	if err != nil {
		return "", nil, fmt.Errorf("cluster: list interfaces: %w", err)
	}
	return advertise(bindHost, tmpl, ifs, sockaddr.GetPrivateIP)
}

// advertise is Advertise on a given interface table; getPrivateIP is
// go-sockaddr's GetPrivateIP, replaceable in tests.
func advertise(bindHost, tmpl string, ifs sockaddr.IfAddrs, getPrivateIP func() (string, error)) (chosen string, all []Candidate, err error) {
	unspecified := bindHost == "" || net.ParseIP(bindHost).IsUnspecified()

	if unspecified {
		all = candidates(ifs)
	} else {
		all = []Candidate{candidate(bindHost, ifs)}
	}

	switch {
	case strings.TrimSpace(tmpl) != "":
		chosen, err = fromTemplate(tmpl, ifs)
		if err != nil {
			return "", nil, err
		}
	case !unspecified:
		chosen = all[0].IP
	default:
		chosen = privateIP(all, getPrivateIP)
		if chosen == "" && len(all) > 0 {
			chosen = all[0].IP
		}
		if chosen == "" {
			chosen = "127.0.0.1"
			all = []Candidate{{IP: chosen, Interface: loopbackName(ifs), Private: true}}
		}
	}
	return chosen, markChosen(all, chosen, ifs), nil
}

// IsPublic reports whether ip is a valid IP address outside every RFC 6890
// special-purpose block, that is, probably reachable from the Internet.
// Main uses it to warn before advertising such an address.
func IsPublic(ip string) bool {
	a, err := sockaddr.NewIPAddr(ip)
	if err != nil || strings.Contains(ip, "/") {
		return false
	}
	return !sockaddr.IsRFC(6890, a)
}

// fromTemplate evaluates tmpl, or passes an IP literal through, and returns
// the first IP it yields.
func fromTemplate(tmpl string, ifs sockaddr.IfAddrs) (string, error) {
	tmpl = strings.TrimSpace(tmpl)
	if ip := net.ParseIP(tmpl); ip != nil {
		return ip.String(), nil
	}
	out, err := template.ParseIfAddrs(tmpl, ifs)
	if err != nil {
		return "", fmt.Errorf("cluster: advertise template %q: %w", tmpl, err)
	}
	fields := strings.Fields(out)
	if len(fields) == 0 {
		return "", fmt.Errorf("%w: template %q yields nothing", ErrNoAddress, tmpl)
	}
	ip := net.ParseIP(strings.Trim(fields[0], "[]"))
	if ip == nil {
		return "", fmt.Errorf("%w: template %q yields %q, not an IP", ErrNoAddress, tmpl, fields[0])
	}
	return ip.String(), nil
}

// candidates returns the up, non-loopback IPv4 addresses, then the
// global-unicast IPv6 ones, in interface order.
func candidates(ifs sockaddr.IfAddrs) []Candidate {
	var v4, v6 []Candidate
	for _, ifa := range ifs {
		if ifa.Flags&(net.FlagUp|net.FlagRunning) != net.FlagUp|net.FlagRunning || ifa.Flags&net.FlagLoopback != 0 {
			continue
		}
		ip := sockaddr.ToIPAddr(ifa.SockAddr)
		if ip == nil {
			continue
		}
		nip := (*ip).NetIP()
		if nip == nil || nip.IsLoopback() {
			continue
		}
		c := Candidate{IP: nip.String(), Interface: ifa.Name, Private: sockaddr.IsRFC(6890, ifa.SockAddr)}
		switch {
		case nip.To4() != nil:
			v4 = append(v4, c)
		case nip.IsGlobalUnicast():
			v6 = append(v6, c)
		}
	}
	return append(v4, v6...)
}

// candidate describes one given host, naming its interface if it is local.
func candidate(host string, ifs sockaddr.IfAddrs) Candidate {
	c := Candidate{IP: host}
	ip := net.ParseIP(host)
	if ip == nil {
		return c // a host name: neither interface nor class known
	}
	c.IP = ip.String()
	if a, err := sockaddr.NewIPAddr(c.IP); err == nil {
		c.Private = sockaddr.IsRFC(6890, a)
	}
	for _, ifa := range ifs {
		if a := sockaddr.ToIPAddr(ifa.SockAddr); a != nil && (*a).NetIP().Equal(ip) {
			c.Interface = ifa.Name
			break
		}
	}
	return c
}

// privateIP returns getPrivateIP's answer if it is among all, else "".
//
// An IPv6 address (a ULA, fc00::/7) gives way to a private IPv4 address of
// the machine, if it has one: that is what people on a LAN type, and what
// a home router forwards to.
func privateIP(all []Candidate, getPrivateIP func() (string, error)) string {
	var v4 string
	for _, c := range all {
		if ip, err := netip.ParseAddr(c.IP); err == nil && ip.Is4() && ip.IsPrivate() {
			v4 = c.IP
			break
		}
	}
	ip, err := getPrivateIP()
	if err != nil || ip == "" {
		return ""
	}
	for _, c := range all {
		if c.IP == ip {
			if a, err := netip.ParseAddr(ip); err == nil && !a.Is4() && v4 != "" {
				return v4
			}
			return ip
		}
	}
	return ""
}

// loopbackName returns the name of the loopback interface ("lo" if none).
func loopbackName(ifs sockaddr.IfAddrs) string {
	for _, ifa := range ifs {
		if ifa.Flags&net.FlagLoopback != 0 {
			return ifa.Name
		}
	}
	return "lo"
}

// markChosen sets Chosen on the candidate equal to chosen, putting one
// first if there is none.
func markChosen(all []Candidate, chosen string, ifs sockaddr.IfAddrs) []Candidate {
	for i := range all {
		if all[i].IP == chosen {
			all[i].Chosen = true
			return all
		}
	}
	c := candidate(chosen, ifs)
	c.Chosen = true
	return append([]Candidate{c}, all...)
}
