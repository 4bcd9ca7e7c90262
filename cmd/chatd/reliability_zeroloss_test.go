//go:build reliability

package main

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// freezeProxy stands between a gateway and its broker: while frozen it
// holds every byte both ways, with the sockets open, as a cut network
// does; thawed, it forwards again.
type freezeProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func startFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go p.serve()
	return p
}

func (p *freezeProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *freezeProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		for p.frozen.Load() {
			time.Sleep(10 * time.Millisecond) // holding the bytes: a cut link
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// TestReliabilityZeroLoss injects the faults a user should not notice
// into a multi-process cluster (three brokers, three gateways) while users
// on every gateway chat: (a) a broker killed, (b) a broker paused past the
// ping interval, (c) a gateway's network cut and restored, (d) a gateway
// killed while its users' clients resume elsewhere. Every receiver that
// stays connected, and every resuming client, must end with every line
// told sent exactly once, in per-sender order: 0 lost, 0 duplicated. In
// (d) the users speak the " +resume" extension, as `chatd client` does; in
// the others they are plain nc users.
func TestReliabilityZeroLoss(t *testing.T) {
	start := time.Now()
	lease := 3 * time.Second
	var proxy *freezeProxy
	fc := startFaultClusterWith(t, faultClusterConfig{lease: lease,
		via: func(i int, url string) string {
			if i != 2 {
				return url
			}
			proxy = startFreezeProxy(t, strings.TrimPrefix(url, "nats://"))
			return "nats://" + proxy.ln.Addr().String()
		},
		gatewayArgs: []string{"--retain", "10000"}, // 120 lines/s in one room: 80 s kept
	})
	t.Logf("cluster ready after %v", time.Since(start).Round(time.Millisecond))
	per := 2
	if faultFull() {
		per = 4
	}
	interval := 50 * time.Millisecond
	warm := faultScaled(time.Second, 5*time.Second)
	during := faultScaled(3*time.Second, 10*time.Second)
	group := func(t *testing.T, name, prefix string, resume bool) *faultGroup {
		g := newFaultGroupZ(t, "process", name, prefix, interval, per, fc.chatAddrs(), true, resume)
		time.Sleep(warm) // steady chat before the fault: a duration, not a condition
		return g
	}

	// (a) kill -9 the broker gateway2 is on: it reconnects to another and
	// fills its rooms' gap from the stream.
	t.Run("broker-kill", func(t *testing.T) {
		g := group(t, "zl-broker-kill", "zk", false)
		b2 := fc.brokers[1]
		g.markFault()
		b2.signal(t, syscall.SIGKILL)
		b2.wait(t, 10*time.Second)
		g.waitResumed(time.Minute, g.fault)
		time.Sleep(during)
		b2.start(fc.t)
		fc.waitReady(fc.brokers...)
		faultWaitJoin(t, fc.gateways[0].chat, "zkprobe")
		g.finish()
	})

	// (b) SIGSTOP the broker gateway1 is on, past the ping interval: it
	// notices the silent link, moves to another broker and fills the gap.
	t.Run("broker-pause", func(t *testing.T) {
		g := group(t, "zl-broker-pause", "zp", false)
		b1 := fc.brokers[0]
		g.markFault()
		b1.signal(t, syscall.SIGSTOP)
		g.waitResumed(time.Minute, g.fault)
		time.Sleep(during)
		g.markHeal()
		b1.signal(t, syscall.SIGCONT)
		fc.waitReady(fc.brokers...)
		faultWaitJoin(t, fc.gateways[0].chat, "zpprobe")
		time.Sleep(during)
		g.finish()
	})

	// (c) cut gateway3's network to its broker (every byte held, no reset)
	// and restore it: it notices, reaches another broker and fills the
	// gap.
	t.Run("net-cut", func(t *testing.T) {
		g := group(t, "zl-net-cut", "zc", false)
		g.markFault()
		proxy.frozen.Store(true)
		time.Sleep(fc.lease + during) // past the ping timeout
		g.markHeal()
		proxy.frozen.Store(false)
		g.waitResumed(time.Minute, g.heal)
		time.Sleep(during)
		g.finish()
	})

	// (d) kill -9 gateway3: its users reconnect to another gateway with
	// their position and get what they missed; the others hear them leave.
	t.Run("gateway-kill", func(t *testing.T) {
		g := group(t, "zl-gateway-kill", "zg", true)
		g3 := fc.gateways[2]
		g.markFault()
		g3.signal(t, syscall.SIGKILL)
		g3.wait(t, 10*time.Second)
		g.waitResumed(time.Minute, g.fault)
		time.Sleep(during)
		g3.start(fc.t)
		fc.waitReady(g3)
		var victims []string
		for j := range per {
			victims = append(victims, "zg"+string(rune('a'+j))+"3")
		}
		g.finish(victims...)
	})

	t.Logf("whole run: %v", time.Since(start).Round(time.Millisecond))
}
