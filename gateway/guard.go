package gateway

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// The guards against abuse from outside: the address key that limits,
// bans and the password throttle count clients by; the password throttle;
// the kernel send buffer of client sockets.

// Error codes of the guards (docs/protocol.md).
const (
	codeThrottled = "throttled"
	codeBanned    = "banned"
)

// AddrKey is the unit in which the gateway tells clients apart: an IPv4
// address as itself (a /32), an IPv6 address by its /64, the smallest
// network an ISP hands a single customer, so that one customer cannot
// multiply its allowance by using many addresses. IPv4-mapped IPv6
// addresses count as IPv4. An invalid address gives the zero Prefix.
func AddrKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	switch {
	case !ip.IsValid():
		return netip.Prefix{}
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// authThrottle spaces out the verdicts on server passwords per address key,
// for every transport of a gateway. After a wrong password from a key, the
// next verdict for that key comes delay(1) later, the one after delay(2)
// later, and so on: base doubling with each wrong password, at most max.
// Attempts made at once wait in line for their turns, so parallel
// connections do not multiply the rate; an attempt whose turn would be more
// than max away is refused without a verdict. A right password waits for
// its turn too: answering it early would tell a guesser that a slow answer
// means a wrong password.
//
// Memory is bounded: a key is forgotten forget after its last wrong
// password, and at most limit keys are kept (when full, the one whose last
// wrong password is oldest is dropped). Safe for concurrent use.
type authThrottle struct {
	base, max, forget time.Duration
	limit             int

	mu   sync.Mutex
	keys map[netip.Prefix]*authEntry
}

type authEntry struct {
	fails int       // wrong passwords
	free  time.Time // the earliest the next verdict may be given
	last  time.Time // the last wrong password
}

func newAuthThrottle(cfg *Config) *authThrottle {
	return &authThrottle{
		base:   cfg.AuthDelay,
		max:    cfg.AuthDelayMax,
		forget: cfg.AuthForget,
		limit:  cfg.AuthMaxAddrs,
		keys:   make(map[netip.Prefix]*authEntry),
	}
}

// delay is the wait after the n-th wrong password.
func (a *authThrottle) delay(n int) time.Duration {
	d := a.base
	for i := 1; i < n && d < a.max; i++ {
		d *= 2
	}
	return min(d, a.max)
}

// attempt records a password attempt from key at now, right or wrong, and
// returns when its verdict may be given and how many wrong passwords key
// has made, this one included. judged is false when key's line of attempts
// reaches more than max ahead: the attempt gets no verdict and is not
// counted.
func (a *authThrottle) attempt(key netip.Prefix, right bool, now time.Time) (at time.Time, fails int, judged bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.keys[key]
	if e != nil && a.expired(e, now) {
		delete(a.keys, key)
		e = nil
	}
	if e == nil {
		if right {
			return now, 0, true
		}
		e = a.add(key, now)
	}
	if e.free.Sub(now) > a.max {
		return time.Time{}, e.fails, false
	}
	at = now
	if e.free.After(now) {
		at = e.free
	}
	if !right {
		e.fails++
		e.free = at.Add(a.delay(e.fails))
		e.last = now
	}
	return at, e.fails, true
}

func (a *authThrottle) expired(e *authEntry, now time.Time) bool {
	return !e.free.After(now) && now.Sub(e.last) >= a.forget
}

// add makes an entry for key, making room if the table is full. a.mu is
// held.
func (a *authThrottle) add(key netip.Prefix, now time.Time) *authEntry {
	if len(a.keys) >= a.limit {
		a.pruneLocked(now)
	}
	if len(a.keys) >= a.limit {
		var oldest netip.Prefix
		var oldestAt time.Time
		for k, e := range a.keys {
			if oldestAt.IsZero() || e.last.Before(oldestAt) {
				oldest, oldestAt = k, e.last
			}
		}
		delete(a.keys, oldest)
	}
	e := &authEntry{last: now}
	a.keys[key] = e
	return e
}

// prune forgets every expired key.
func (a *authThrottle) prune(now time.Time) {
	a.mu.Lock()
	a.pruneLocked(now)
	a.mu.Unlock()
}

func (a *authThrottle) pruneLocked(now time.Time) {
	for k, e := range a.keys {
		if a.expired(e, now) {
			delete(a.keys, k)
		}
	}
}

// tracked is the number of keys remembered.
func (a *authThrottle) tracked() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys)
}

// tcpOf returns the TCP connection under c (TLS, the PROXY protocol), or
// nil.
func tcpOf(c net.Conn) *net.TCPConn {
	for range 4 {
		switch v := c.(type) {
		case *net.TCPConn:
			return v
		case interface{ NetConn() net.Conn }: // *tls.Conn
			c = v.NetConn()
		case interface{ Raw() net.Conn }: // the PROXY protocol's conn
			c = v.Raw()
		default:
			return nil
		}
	}
	return nil
}

// tune sets up a client's TCP connection: keep-alive probes, so that a
// peer that vanished is reaped about twice KeepAlive later (by the probes
// when nothing was on its way to it, by the user timeout when lines were);
// and a fixed kernel send buffer, so that a client that stops reading holds
// at most SendBuffer (doubled by the kernel for its bookkeeping) besides
// its queue, instead of the megabytes the kernel's autotuning grows to.
func (s *Server) tune(c net.Conn) {
	tc := tcpOf(c)
	if tc == nil {
		return
	}
	_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{
		Enable:   true,
		Idle:     s.cfg.KeepAlive,
		Interval: s.cfg.KeepAlive / 3,
		Count:    3,
	})
	setUserTimeout(tc, 2*s.cfg.KeepAlive)
	if s.cfg.SendBuffer > 0 {
		_ = tc.SetWriteBuffer(s.cfg.SendBuffer)
	}
}
