package cluster

import (
	"errors"
	"net"
	"slices"
	"testing"

	sockaddr "github.com/hashicorp/go-sockaddr"
)

// chosenOf checks that all has exactly one Chosen entry, equal to chosen.
func chosenOf(t *testing.T, chosen string, all []Candidate) {
	t.Helper()
	n := 0
	for _, c := range all {
		if c.Chosen {
			n++
			if c.IP != chosen {
				t.Errorf("Chosen candidate %q, but Advertise returned %q", c.IP, chosen)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d Chosen candidates in %+v, want 1", n, all)
	}
}

func TestAdvertiseLiteral(t *testing.T) {
	for _, tmpl := range []string{"10.1.2.3", " 10.1.2.3 ", "{{ \"10.1.2.3\" }}", "{{ \"10.1.2.3 10.9.9.9\" }}"} {
		got, all, err := Advertise("0.0.0.0", tmpl)
		if err != nil || got != "10.1.2.3" {
			t.Errorf("Advertise(0.0.0.0, %q) = %q, %v; want 10.1.2.3", tmpl, got, err)
			continue
		}
		chosenOf(t, got, all)
		if all[0].IP != "10.1.2.3" || !all[0].Private {
			t.Errorf("first candidate = %+v, want the template's private address", all[0])
		}
	}
	// The template also wins over a specific bind host.
	if got, _, err := Advertise("127.0.0.1", "203.0.113.7"); err != nil || got != "203.0.113.7" {
		t.Errorf("template over bind host = %q, %v", got, err)
	}
}

func TestAdvertiseBadTemplate(t *testing.T) {
	if _, _, err := Advertise("", "{{ GetNoSuchThing }}"); err == nil {
		t.Errorf("bad template: no error")
	}
	if _, _, err := Advertise("", `{{ GetInterfaceIP "no-such-if0" }}`); !errors.Is(err, ErrNoAddress) {
		t.Errorf("empty template result = %v, want ErrNoAddress", err)
	}
	if _, _, err := Advertise("", `{{ "not-an-ip" }}`); !errors.Is(err, ErrNoAddress) {
		t.Errorf("non-IP template result = %v, want ErrNoAddress", err)
	}
}

func TestAdvertiseSpecificBind(t *testing.T) {
	for _, tt := range []struct{ bind, want string }{
		{"127.0.0.1", "127.0.0.1"},
		{"192.168.1.5", "192.168.1.5"},
		{"[::1]", "::1"},
	} {
		got, all, err := Advertise(tt.bind, "")
		if err != nil || got != tt.want {
			t.Errorf("Advertise(%q) = %q, %v; want %q", tt.bind, got, err, tt.want)
			continue
		}
		if len(all) != 1 {
			t.Errorf("Advertise(%q) candidates = %+v, want only the bind host", tt.bind, all)
		}
		chosenOf(t, got, all)
	}
	_, all, _ := Advertise("127.0.0.1", "")
	if all[0].Interface == "" || !all[0].Private {
		t.Errorf("127.0.0.1 candidate = %+v, want a named loopback interface, private", all[0])
	}
}

func TestAdvertiseUnspecified(t *testing.T) {
	for _, bind := range []string{"", "0.0.0.0", "::"} {
		got, all, err := Advertise(bind, "")
		if err != nil {
			t.Fatalf("Advertise(%q): %v", bind, err)
		}
		if len(all) == 0 {
			t.Fatalf("Advertise(%q): no candidates", bind)
		}
		if net.ParseIP(got) == nil {
			t.Errorf("Advertise(%q) = %q, not an IP", bind, got)
		}
		chosenOf(t, got, all)
		for _, c := range all {
			if c.Interface == "" {
				t.Errorf("candidate without interface: %+v", c)
			}
		}
		t.Logf("bind %q → %s of %+v", bind, got, all)
	}
}

func TestAdvertiseInterfaceTemplate(t *testing.T) {
	if _, err := net.InterfaceByName("lo"); err != nil {
		t.Skipf("no interface named lo here: %v", err)
	}
	// GetInterfaceIPs yields "127.0.0.1 ::1": the first one is taken.
	got, all, err := Advertise("", `{{ GetInterfaceIPs "lo" }}`)
	if err != nil || got != "127.0.0.1" {
		t.Fatalf(`GetInterfaceIPs "lo" = %q, %v; want 127.0.0.1`, got, err)
	}
	chosenOf(t, got, all)
	if all[0].IP != "127.0.0.1" || all[0].Interface != "lo" || !all[0].Private {
		t.Errorf("first candidate = %+v, want 127.0.0.1 on lo, private", all[0])
	}
	// go-sockaddr v1.0.7's GetInterfaceIP keeps forwardable addresses only,
	// so it finds nothing on loopback: that must be a clear error.
	if _, _, err := Advertise("", `{{ GetInterfaceIP "lo" }}`); !errors.Is(err, ErrNoAddress) {
		t.Errorf(`GetInterfaceIP "lo" = %v, want ErrNoAddress`, err)
	}
}

func TestIsPublic(t *testing.T) {
	for ip, want := range map[string]bool{
		"8.8.8.8":      true,
		"2a00:1450::1": true,
		"10.0.0.1":     false,
		"192.168.1.5":  false,
		"172.16.0.1":   false,
		"127.0.0.1":    false,
		"100.64.0.1":   false,
		"fd00::2":      false,
		"::1":          false,
		"":             false,
		"nonsense":     false,
		"10.0.0.0/8":   false,
	} {
		if got := IsPublic(ip); got != want {
			t.Errorf("IsPublic(%q) = %v, want %v", ip, got, want)
		}
	}
}

// ifAddr builds one interface address for advertise tests.
func ifAddr(name, cidr string, flags net.Flags) sockaddr.IfAddr {
	ip, err := sockaddr.NewIPAddr(cidr)
	if err != nil {
		panic(err)
	}
	return sockaddr.IfAddr{SockAddr: ip, Interface: net.Interface{Name: name, Flags: flags}}
}

func TestAdvertiseRule(t *testing.T) {
	const up = net.FlagUp | net.FlagRunning
	lo := ifAddr("lo", "127.0.0.1/8", up|net.FlagLoopback)
	lo6 := ifAddr("lo", "::1/128", up|net.FlagLoopback)
	eth := ifAddr("eth0", "192.168.1.5/24", up)
	wlan := ifAddr("wlan0", "10.0.0.9/8", up)
	pub := ifAddr("eth1", "1.2.3.4/24", up)
	down := ifAddr("docker0", "172.17.0.1/16", net.FlagUp) // up, no carrier
	v6 := ifAddr("eth0", "2a00:1450::5/64", up)
	v6ll := ifAddr("eth0", "fe80::1/64", up)
	ula := ifAddr("eth0", "fd12:3456::7/64", up)
	private := func(ip string) func() (string, error) {
		return func() (string, error) { return ip, nil }
	}

	tests := []struct {
		name    string
		ifs     sockaddr.IfAddrs
		private string
		want    string
		ips     []string
	}{
		{"private IP preferred", sockaddr.IfAddrs{lo, wlan, eth}, "192.168.1.5", "192.168.1.5", []string{"10.0.0.9", "192.168.1.5"}},
		{"first candidate without private IP", sockaddr.IfAddrs{lo, pub, eth}, "", "1.2.3.4", []string{"1.2.3.4", "192.168.1.5"}},
		{"private IP not a candidate", sockaddr.IfAddrs{lo, pub}, "172.17.0.1", "1.2.3.4", []string{"1.2.3.4"}},
		{"IPv6 after IPv4, no link-local, no down", sockaddr.IfAddrs{v6, v6ll, down, lo6, pub}, "", "1.2.3.4", []string{"1.2.3.4", "2a00:1450::5"}},
		{"IPv6 only", sockaddr.IfAddrs{lo, v6}, "", "2a00:1450::5", []string{"2a00:1450::5"}},
		{"private IPv4 preferred over an IPv6 ULA", sockaddr.IfAddrs{lo, ula, eth}, "fd12:3456::7", "192.168.1.5", []string{"192.168.1.5", "fd12:3456::7"}},
		{"ULA alone", sockaddr.IfAddrs{lo, ula, pub}, "fd12:3456::7", "fd12:3456::7", []string{"1.2.3.4", "fd12:3456::7"}},
		{"no network at all", sockaddr.IfAddrs{lo, lo6, down}, "", "127.0.0.1", []string{"127.0.0.1"}},
		{"no interfaces", nil, "", "127.0.0.1", []string{"127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, all, err := advertise("0.0.0.0", "", tt.ifs, private(tt.private))
			if err != nil || got != tt.want {
				t.Fatalf("advertise = %q, %v; want %q", got, err, tt.want)
			}
			chosenOf(t, got, all)
			var ips []string
			for _, c := range all {
				ips = append(ips, c.IP)
			}
			if !slices.Equal(ips, tt.ips) {
				t.Errorf("candidates %v, want %v", ips, tt.ips)
			}
		})
	}

	_, all, _ := advertise("", "", sockaddr.IfAddrs{lo}, private(""))
	if want := (Candidate{IP: "127.0.0.1", Interface: "lo", Chosen: true, Private: true}); all[0] != want {
		t.Errorf("fallback candidate = %+v, want %+v", all[0], want)
	}
	_, all, _ = advertise("", "", sockaddr.IfAddrs{lo, pub, eth}, private("192.168.1.5"))
	if all[0].Private || !all[1].Private || all[1].Interface != "eth0" {
		t.Errorf("Private/Interface marks wrong: %+v", all)
	}
	// A specific bind host is named by its interface.
	got, all, _ := advertise("192.168.1.5", "", sockaddr.IfAddrs{lo, wlan, eth}, private("10.0.0.9"))
	if got != "192.168.1.5" || len(all) != 1 || all[0].Interface != "eth0" {
		t.Errorf("bind 192.168.1.5 = %q %+v", got, all)
	}
	// A template answer that is not local goes first, without interface.
	got, all, _ = advertise("", "198.51.100.7", sockaddr.IfAddrs{lo, eth}, private("192.168.1.5"))
	if got != "198.51.100.7" || len(all) != 2 || !all[0].Chosen || all[0].Interface != "" || all[1].Chosen {
		t.Errorf("template answer = %q %+v", got, all)
	}
}
