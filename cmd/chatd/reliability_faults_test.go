//go:build reliability

package main

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// faultNode is one chatd process of a multi-process cluster, restartable
// with the same arguments (ports, data folder).
type faultNode struct {
	name  string
	args  []string
	admin string
	chat  string // a gateway's chat address
	nats  string // a broker's client URL
	p     *process
}

func (n *faultNode) start(t testing.TB) {
	t.Helper()
	n.p = startChatd(t, n.args...)
	if n.p.addr != "" {
		n.chat = n.p.addr
	}
}

func (n *faultNode) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := n.p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: %v: %v", n.name, sig, err)
	}
}

// wait waits until the process has exited.
func (n *faultNode) wait(t testing.TB, total time.Duration) {
	t.Helper()
	select {
	case err := <-n.p.exited:
		n.p.exited <- err
	case <-time.After(total):
		t.Fatalf("%s did not exit within %v", n.name, total)
	}
}

// ready reports whether the node's /readyz answers ready.
func (n *faultNode) ready() error {
	var out, errOut strings.Builder
	if healthcheck([]string{"--admin", n.admin, "--timeout", "1s"}, &out, &errOut) != 0 {
		return fmt.Errorf("%s: %s", n.name, strings.TrimSpace(errOut.String()))
	}
	return nil
}

// faultCluster is three brokers (chatd broker) and three gateways
// (chatd gateway), each a process of the real binary, on loopback, with a
// cluster secret as in production.
type faultCluster struct {
	t        *testing.T
	brokers  []*faultNode
	gateways []*faultNode
	lease    time.Duration
}

// faultClusterConfig shapes a faultCluster: lease is every gateway's
// --lease; gateways is how many gateways (3 if 0); gatewayArgs are more
// flags for every gateway; via, if set, gives the NATS URL gateway i (from
// 0) is started with, from its broker's.
type faultClusterConfig struct {
	lease       time.Duration
	gateways    int
	gatewayArgs []string
	via         func(i int, url string) string
}

func startFaultCluster(t *testing.T, lease time.Duration) *faultCluster {
	return startFaultClusterWith(t, faultClusterConfig{lease: lease})
}

func startFaultClusterWith(t *testing.T, cfg faultClusterConfig) *faultCluster {
	if cfg.gateways == 0 {
		cfg.gateways = 3
	}
	fc := &faultCluster{t: t, lease: cfg.lease}
	ports := freePorts(t, 9+2*cfg.gateways)
	var peers []string
	for i := range 3 {
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(ports[3+i]))
	}
	for i := range 3 {
		n := &faultNode{name: fmt.Sprintf("broker%d", i+1), admin: "127.0.0.1:" + strconv.Itoa(ports[6+i]),
			nats: "nats://127.0.0.1:" + strconv.Itoa(ports[i])}
		n.args = []string{"broker", "--name", n.name, "--data", t.TempDir(),
			"--nats-listen", "127.0.0.1:" + strconv.Itoa(ports[i]),
			"--cluster-listen", "127.0.0.1:" + strconv.Itoa(ports[3+i]),
			"--peers", strings.Join(peers, ","), "--admin", n.admin, "--log-level", "warn",
			"--cluster-secret", busSecret}
		n.start(t)
		fc.brokers = append(fc.brokers, n)
	}
	fc.waitReady(fc.brokers...)
	for i := range cfg.gateways {
		// Each gateway is given its own broker; it learns the others from
		// it and fails over to them.
		n := &faultNode{name: fmt.Sprintf("gateway%d", i+1), admin: "127.0.0.1:" + strconv.Itoa(ports[9+i])}
		url := fc.brokers[i%3].nats
		if cfg.via != nil {
			url = cfg.via(i, url)
		}
		n.args = append([]string{"gateway", "--nats", url,
			"--listen", "127.0.0.1:" + strconv.Itoa(ports[9+cfg.gateways+i]), "--admin", n.admin,
			"--replicas", "3", "--lease", cfg.lease.String(), "--rate", "200", "--burst", "200",
			"--shutdown-timeout", "5s", "--cluster-secret", busSecret}, cfg.gatewayArgs...)
		n.start(t)
		fc.gateways = append(fc.gateways, n)
	}
	fc.waitReady(fc.gateways...)
	return fc
}

func (fc *faultCluster) waitReady(nodes ...*faultNode) {
	fc.t.Helper()
	checkFor(fc.t, 2*time.Minute, func() error {
		for _, n := range nodes {
			if err := n.ready(); err != nil {
				return err
			}
		}
		return nil
	})
}

func (fc *faultCluster) chatAddrs() []string {
	var out []string
	for _, g := range fc.gateways {
		out = append(out, g.chat)
	}
	return out
}

// TestReliabilityFaults injects faults into a multi-process cluster (three
// brokers, three gateways, each a chatd process) while users on every
// gateway chat, and reports for each fault what was lost, duplicated or
// reordered and how long users waited. Run with -tags reliability;
// CHATD_RELIABILITY=full runs it longer with more users.
func TestReliabilityFaults(t *testing.T) {
	start := time.Now()
	lease := 3 * time.Second
	fc := startFaultCluster(t, lease)
	t.Logf("cluster ready after %v", time.Since(start).Round(time.Millisecond))
	per := 2
	if relFull() {
		per = 4
	}
	interval := 50 * time.Millisecond // 20 lines/s per user
	warm := relScale(time.Second, 5*time.Second)
	during := relScale(2*time.Second, 10*time.Second)
	group := func(t *testing.T, name, prefix string) *faultGroup {
		g := newFaultGroup(t, "process", name, prefix, interval, per, fc.chatAddrs())
		time.Sleep(warm) // steady chat before the fault: a duration, not a condition
		return g
	}
	victims := func(prefix string, gw int) []string {
		var out []string
		for j := range per {
			out = append(out, fmt.Sprintf("%s%c%d", prefix, 'a'+j, gw))
		}
		return out
	}

	// kill -9 a gateway: its users are cut off and reconnect to another
	// gateway (with the same nickname, once the lease has freed it); the
	// others hear each of them leave once.
	t.Run("gateway-kill", func(t *testing.T) {
		g := group(t, "gateway-kill", "gk")
		g3 := fc.gateways[2]
		g.markFault()
		g3.signal(t, syscall.SIGKILL)
		g3.wait(t, 10*time.Second)
		g.waitResumed(time.Minute, g.fault)
		time.Sleep(during)
		g3.start(fc.t)
		fc.waitReady(g3)
		g.finish(victims("gk", 3)...)
	})

	// kill -9 a broker: the gateway on it reconnects to another broker.
	t.Run("broker-kill", func(t *testing.T) {
		g := group(t, "broker-kill", "bk")
		b2 := fc.brokers[1]
		g.markFault()
		b2.signal(t, syscall.SIGKILL)
		b2.wait(t, 10*time.Second)
		g.waitResumed(time.Minute, g.fault)
		time.Sleep(during)
		b2.start(fc.t)
		fc.waitReady(fc.brokers...)
		g.note("broker_back_ready_ms=%d", time.Since(g.fault).Milliseconds())
		g.finish()
	})

	// kill -9 two brokers: JetStream loses its quorum. Chat lines still
	// flow through the last broker; what needs JetStream (joining,
	// /who) is refused until a second broker is back.
	t.Run("two-brokers-kill", func(t *testing.T) {
		g := group(t, "two-brokers-kill", "qk")
		b2, b3 := fc.brokers[1], fc.brokers[2]
		g.markFault()
		b2.signal(t, syscall.SIGKILL)
		b3.signal(t, syscall.SIGKILL)
		b2.wait(t, 10*time.Second)
		b3.wait(t, 10*time.Second)
		g.waitResumed(time.Minute, g.fault)
		time.Sleep(fc.lease + during) // past a lease refresh without quorum
		g.note("join_without_quorum=%q", faultProbeJoin(fc.gateways[0].chat, "qprobe1"))
		g.note("who_without_quorum=%q", g.faultAsk(g.users[0], "/who", faultReply))
		// Private messages are core NATS requests: they still work.
		reply := g.faultAsk(g.users[0], "/msg "+g.users[len(g.users)-1].nick+" psst", faultReply)
		g.note("msg_without_quorum=%q", reply)
		if !strings.HasPrefix(reply, "*** private to ") {
			t.Errorf("/msg without quorum: %q", reply)
		}
		g.markHeal()
		b2.start(fc.t)
		b3.start(fc.t)
		fc.waitReady(fc.brokers...)
		g.note("brokers_ready_after_restart_ms=%d", time.Since(g.heal).Milliseconds())
		healed := time.Now()
		var probe string
		checkFor(t, 2*time.Minute, func() error {
			probe = faultProbeJoin(fc.gateways[1].chat, "qprobe2")
			if probe != "Connected to server!" {
				return fmt.Errorf("join: %q", probe)
			}
			return nil
		})
		g.note("join_works_after_restart_ms=%d", time.Since(healed).Milliseconds())
		g.note("who_after_recovery=%q", g.faultAsk(g.users[0], "/who", faultReply))
		g.waitWhoEverywhere(t)
		g.note("who_everywhere_after_restart_ms=%d", time.Since(healed).Milliseconds())
		time.Sleep(during)
		g.finish()
	})

	// SIGSTOP a gateway for longer than the lease, then SIGCONT: the
	// others hear its users leave; when it wakes it takes them back (the
	// room hears them join) and their lines, held meanwhile, go out.
	t.Run("gateway-pause", func(t *testing.T) {
		g := group(t, "gateway-pause", "gp")
		// Its users' held lines reach it at once when it wakes: in the
		// full form (10 s paused) more than --burst, paced.
		g.floodExpected = true
		g2 := fc.gateways[1]
		g.markFault()
		g2.signal(t, syscall.SIGSTOP)
		for _, v := range victims("gp", 2) {
			if _, ok := g.users[0].waitLine(time.Minute, 0, func(s string) bool { return s == v+" left!" }); !ok {
				t.Errorf("%s never heard %s leave", g.users[0].nick, v)
			}
		}
		time.Sleep(during)
		from := len(g.users[0].snapshot())
		g.markHeal()
		g2.signal(t, syscall.SIGCONT)
		g.waitResumed(time.Minute, g.heal)
		for _, v := range victims("gp", 2) {
			if _, ok := g.users[0].waitLine(time.Minute, from, func(s string) bool { return s == v+" joined!" }); !ok {
				t.Errorf("%s never heard %s join again", g.users[0].nick, v)
			}
		}
		time.Sleep(during)
		g.finish(victims("gp", 2)...)
	})

	// SIGSTOP a broker, then SIGCONT: gateways linked to it notice the
	// silent link and move to another broker.
	t.Run("broker-pause", func(t *testing.T) {
		g := group(t, "broker-pause", "bp")
		b1 := fc.brokers[0] // after two-brokers-kill every gateway is on it
		g.markFault()
		b1.signal(t, syscall.SIGSTOP)
		g.waitResumed(5*time.Minute, g.fault)
		time.Sleep(during)
		g.markHeal()
		b1.signal(t, syscall.SIGCONT)
		fc.waitReady(fc.brokers...)
		time.Sleep(during)
		g.finish()
	})

	// Restart every node in turn (SIGTERM, start again, wait until ready):
	// brokers first, then gateways, whose users move to another gateway.
	t.Run("rolling-restart", func(t *testing.T) {
		g := group(t, "rolling-restart", "rr")
		g.markFault()
		for i, n := range append(append([]*faultNode(nil), fc.brokers...), fc.gateways...) {
			n.signal(t, syscall.SIGTERM)
			n.wait(t, 30*time.Second)
			n.start(fc.t)
			fc.waitReady(fc.brokers...)
			fc.waitReady(fc.gateways...)
			g.waitResumed(time.Minute, time.Now())
			if n.args[0] == "broker" {
				// /readyz says the broker is in the cluster; a gateway
				// should be stopped only once JetStream answers again
				// (leaders elected): a gateway stopped while it cannot
				// release its users' presence has them announced twice.
				faultWaitJoin(t, fc.gateways[0].chat, fmt.Sprintf("rrprobe%d", i))
			}
		}
		g.note("rolling_total_ms=%d", time.Since(g.fault).Milliseconds())
		g.finish()
	})
	t.Logf("whole run: %v", time.Since(start).Round(time.Millisecond))
}

// faultReply matches a command's reply line.
func faultReply(s string) bool { return strings.HasPrefix(s, "*** ") || strings.HasPrefix(s, "ERROR ") }

// faultWaitJoin waits until a join as nick at addr is accepted: JetStream
// answers.
func faultWaitJoin(t *testing.T, addr, nick string) {
	t.Helper()
	checkFor(t, 2*time.Minute, func() error {
		if got := faultProbeJoin(addr, nick); got != "Connected to server!" {
			return fmt.Errorf("join as %s: %q", nick, got)
		}
		return nil
	})
}
