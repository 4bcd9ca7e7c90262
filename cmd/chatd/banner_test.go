package main

import (
	"strings"
	"testing"
)

// The port-forwarding advice fits the advertised address's family.
func TestForwardAdvice(t *testing.T) {
	for _, tc := range []struct{ ip, want, not string }{
		{"192.168.1.23", "forward TCP port 5500 on your router to 192.168.1.23:5500", "IPv6"},
		{"fd12:3456::7", "private IPv6 address, never reachable", "nc fd12"},
		{"2a00:1450::5", "allow TCP port 5500 to 2a00:1450::5 in your router's IPv6 firewall (IPv6 needs no forwarding), then people use: nc 2a00:1450::5 5500", "forward TCP port"},
		{"chat.example.org", "nc chat.example.org 5500", "forward"},
	} {
		got := forwardAdvice(tc.ip, "5500")
		if !strings.Contains(got, tc.want) || strings.Contains(got, tc.not) {
			t.Errorf("%s: %q; want %q, not %q", tc.ip, got, tc.want, tc.not)
		}
	}
}

// With --public-addr (a gateway behind NAT, port mapping or in a
// container) the banner names that address, not the interfaces'.
func TestBannerPublicAddr(t *testing.T) {
	m := NewMain(RoleSingle)
	var out strings.Builder
	lw := &testLog{t: t}
	m.Stdout, m.Stderr = &out, lw
	if err := m.ParseFlags([]string{"--data", t.TempDir(), "--http", "127.0.0.1:0", "--listen", "0.0.0.0:0",
		"--public-addr", "chat.example.org:5501"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	m.Close()
	lw.stop()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 || !strings.Contains(lines[1], "nc chat.example.org 5501") || !strings.Contains(lines[1], "<- --public-addr") {
		t.Errorf("banner:\n%s", out.String())
	}
	for _, l := range lines[2:] {
		if strings.HasPrefix(l, "  nc ") || strings.HasPrefix(l, "From the internet") {
			t.Errorf("banner names other addresses than --public-addr:\n%s", out.String())
		}
	}
}
