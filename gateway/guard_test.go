package gateway

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestAddrKey(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"}, // IPv4-mapped counts as IPv4
		{"127.0.0.1", "127.0.0.1/32"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::1", "2001:db8:1:2::/64"},
		{"2001:db8:1:3::1", "2001:db8:1:3::/64"},
		{"::1", "::/64"},
		{"fe80::1%eth0", "fe80::/64"}, // the zone does not matter
	} {
		got := AddrKey(netip.MustParseAddr(tc.ip))
		if got.String() != tc.want {
			t.Errorf("AddrKey(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
	if AddrKey(netip.MustParseAddr("2001:db8:1:2::1")) != AddrKey(netip.MustParseAddr("2001:db8:1:2:ffff::")) {
		t.Error("two addresses of one /64 have different keys")
	}
	if k := AddrKey(netip.Addr{}); k.IsValid() {
		t.Errorf("AddrKey of no address = %v", k)
	}
}

func newTestThrottle(limit int) *authThrottle {
	return newAuthThrottle(&Config{AuthDelay: 250 * time.Millisecond, AuthDelayMax: 4 * time.Second,
		AuthForget: 15 * time.Minute, AuthMaxAddrs: limit})
}

func TestAuthThrottle(t *testing.T) {
	a := newTestThrottle(100)
	t0 := time.Unix(1e9, 0)
	now := t0
	key := AddrKey(netip.MustParseAddr("192.0.2.1"))
	other := AddrKey(netip.MustParseAddr("192.0.2.2"))

	// Sequential wrong passwords, each sent when the last was answered: the
	// k-th waits 250ms·2^(k-2), at most 4s.
	wantWait := []time.Duration{0, 250, 500, 1000, 2000, 4000, 4000, 4000}
	for i, w := range wantWait {
		at, fails, judged := a.attempt(key, false, now)
		if !judged || fails != i+1 || at.Sub(now) != w*time.Millisecond {
			t.Fatalf("wrong password %d: wait %v, fails %d, judged %v; want wait %v", i+1, at.Sub(now), fails, judged, w*time.Millisecond)
		}
		now = at
	}
	// Another address is judged at once, right or wrong.
	if at, _, judged := a.attempt(other, true, now); !judged || !at.Equal(now) {
		t.Errorf("other address, right password: at %v, judged %v", at.Sub(now), judged)
	}
	// The right password from the guessing address waits for its turn.
	if at, _, judged := a.attempt(key, true, now); !judged || at.Sub(now) != 4*time.Second {
		t.Errorf("right password after wrong ones: wait %v, judged %v", at.Sub(now), judged)
	}
	// Parallel attempts wait in line; past the cap they get no verdict.
	at1, _, ok1 := a.attempt(key, false, now) // its turn is in 4s, the next then 8s away
	at2, _, ok2 := a.attempt(key, false, now)
	if !ok1 || ok2 || at1.Sub(now) != 4*time.Second || !at2.IsZero() {
		t.Errorf("parallel: %v %v, %v %v", at1.Sub(now), ok1, at2, ok2)
	}
	// Long after the last wrong password, the address is forgotten.
	now = now.Add(16 * time.Minute)
	a.prune(now)
	if n := a.tracked(); n != 0 {
		t.Errorf("%d addresses remembered after forget, want 0", n)
	}
	if at, fails, _ := a.attempt(key, false, now); fails != 1 || !at.Equal(now) {
		t.Errorf("after forget: fails %d, wait %v", fails, at.Sub(now))
	}
}

// The throttle remembers at most its limit of addresses, dropping the one
// whose last wrong password is oldest.
func TestAuthThrottleBounded(t *testing.T) {
	a := newTestThrottle(10)
	now := time.Unix(1e9, 0)
	for i := range 50 {
		now = now.Add(time.Second)
		a.attempt(AddrKey(netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i))), false, now)
		if n := a.tracked(); n > 10 {
			t.Fatalf("%d addresses remembered, limit 10", n)
		}
	}
	// The most recent one is still held back.
	if at, fails, _ := a.attempt(AddrKey(netip.MustParseAddr("192.0.2.49")), false, now); fails != 2 || !at.After(now) {
		t.Errorf("latest address: fails %d, wait %v", fails, at.Sub(now))
	}
	// Right passwords cost no memory.
	b := newTestThrottle(10)
	for i := range 50 {
		b.attempt(AddrKey(netip.MustParseAddr(fmt.Sprintf("192.0.2.%d", i))), true, now)
	}
	if n := b.tracked(); n != 0 {
		t.Errorf("right passwords left %d entries", n)
	}
}
