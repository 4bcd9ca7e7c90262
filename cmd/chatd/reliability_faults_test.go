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

// faultDriver faults the nodes of a cluster, named broker1-3 and
// gateway1-3: processes (signals) or compose services (docker).
type faultDriver interface {
	kill(t *testing.T, nodes ...string)  // SIGKILL; returns once they are gone
	start(t *testing.T, nodes ...string) // start killed nodes again
	pause(t *testing.T, node string)     // SIGSTOP
	unpause(t *testing.T, node string)   // SIGCONT
	restart(t *testing.T, node string)   // SIGTERM, then start again
	ready(t *testing.T)                  // wait until every node is ready
	brokerOf(gw string) string           // the broker gw's link is on now
}

// faultNetwork is a driver that can cut a node off its network and
// connect it again.
type faultNetwork interface {
	disconnect(t *testing.T, node string)
	connect(t *testing.T, node string)
}

// faultSuite is a cluster the fault scenarios run on.
type faultSuite struct {
	faultPace
	faultDriver
	resume time.Duration // how long users may take to resume after a fault
	stall  time.Duration // ... after the broker every gateway is on is paused
	rejoin time.Duration // how long joins may take to work once the quorum is back
	// whoEverywhere: after the quorum is back, ask /who as every user until
	// each is answered (waitWhoEverywhere).
	whoEverywhere bool
}

// faultScenarios are the faults, each written once and run on every
// cluster, in this order: a scenario may rely on where the ones before
// left the gateways' links.
var faultScenarios = []struct {
	name, prefix string
	network      bool // needs a faultNetwork
	run          func(t *testing.T, s *faultSuite, g *faultGroup)
}{
	// kill -9 a gateway: its users are cut off and reconnect to another
	// gateway (with the same nickname, once the lease has freed it); the
	// others hear each of them leave once.
	{"gateway-kill", "gk", false, func(t *testing.T, s *faultSuite, g *faultGroup) {
		g.markFault()
		s.kill(t, "gateway3")
		g.waitResumed(s.resume, g.fault)
		time.Sleep(s.during)
		s.start(t, "gateway3")
		s.ready(t)
		g.finish(g.on(3)...)
	}},
	// kill -9 the broker a gateway is on: it reconnects to another broker.
	{"broker-kill", "bk", false, func(t *testing.T, s *faultSuite, g *faultGroup) {
		b := s.brokerOf("gateway2")
		g.note("killed=%s (gateway2's broker)", b)
		g.markFault()
		s.kill(t, b)
		g.waitResumed(s.resume, g.fault)
		time.Sleep(s.during)
		s.start(t, b)
		s.ready(t)
		g.note("broker_back_ready_ms=%d", time.Since(g.fault).Milliseconds())
		g.finish()
	}},
	// kill -9 two brokers: JetStream loses its quorum. Chat lines still
	// flow through the last broker; what needs JetStream (joining, /who)
	// is refused until a second broker is back.
	{"two-brokers-kill", "qk", false, func(t *testing.T, s *faultSuite, g *faultGroup) {
		g.markFault()
		s.kill(t, "broker2", "broker3")
		g.waitResumed(s.resume, g.fault)
		time.Sleep(s.lease + s.during) // past a lease refresh without quorum
		g.note("join_without_quorum=%q", faultProbeJoin(t, s.gateways[0], "qprobe1"))
		g.note("who_without_quorum=%q", g.faultAsk(g.users[0], "/who", faultReply))
		// Private messages are core NATS requests: they still work.
		reply := g.faultAsk(g.users[0], "/msg "+g.users[len(g.users)-1].nick+" psst", faultReply)
		g.note("msg_without_quorum=%q", reply)
		if !strings.HasPrefix(reply, "*** private to ") {
			t.Errorf("/msg without quorum: %q", reply)
		}
		g.markHeal()
		s.start(t, "broker2", "broker3")
		s.ready(t)
		g.note("brokers_ready_after_restart_ms=%d", time.Since(g.heal).Milliseconds())
		healed := time.Now()
		faultWaitJoin(t, s.rejoin, s.gateways[1], "qprobe2")
		g.note("join_works_after_restart_ms=%d", time.Since(healed).Milliseconds())
		g.note("who_after_recovery=%q", g.faultAsk(g.users[0], "/who", faultReply))
		if s.whoEverywhere {
			g.waitWhoEverywhere(t)
			g.note("who_everywhere_after_restart_ms=%d", time.Since(healed).Milliseconds())
		}
		time.Sleep(s.during)
		g.finish()
	}},
	// SIGSTOP a gateway for longer than the lease, then SIGCONT: the others
	// hear its users leave; when it wakes it takes them back (the room
	// hears them join) and their lines, held meanwhile, go out.
	{"gateway-pause", "gp", false, func(t *testing.T, s *faultSuite, g *faultGroup) {
		// Its users' held lines reach it at once when it wakes: over
		// --burst (compose; the full process form, 10 s paused), paced.
		g.floodExpected = true
		g.markFault()
		s.pause(t, "gateway2")
		for _, v := range g.on(2) {
			if _, ok := g.users[0].waitLine(time.Minute, 0, func(l string) bool { return l == v+" left!" }); !ok {
				t.Errorf("%s never heard %s leave", g.users[0].nick, v)
			}
		}
		time.Sleep(s.during)
		from := len(g.users[0].snapshot())
		g.markHeal()
		s.unpause(t, "gateway2")
		g.waitResumed(s.resume, g.heal)
		for _, v := range g.on(2) {
			if _, ok := g.users[0].waitLine(time.Minute, from, func(l string) bool { return l == v+" joined!" }); !ok {
				t.Errorf("%s never heard %s join again", g.users[0].nick, v)
			}
		}
		time.Sleep(s.during)
		g.finish(g.on(2)...)
	}},
	// SIGSTOP a broker, then SIGCONT: gateways linked to it notice the
	// silent link and move to another broker.
	{"broker-pause", "bp", false, func(t *testing.T, s *faultSuite, g *faultGroup) {
		b := "broker1" // since two-brokers-kill every gateway's link is on it
		g.note("paused=%s (gateway1's broker: %s)", b, s.brokerOf("gateway1"))
		g.markFault()
		s.pause(t, b)
		g.waitResumed(s.stall, g.fault)
		time.Sleep(s.during)
		g.markHeal()
		s.unpause(t, b)
		s.ready(t)
		time.Sleep(s.during)
		g.finish()
	}},
	// Disconnect a gateway from its network, then connect it again: its
	// published ports go too, so its users lose their connections and
	// rejoin elsewhere.
	{"network-cut", "nc", true, func(t *testing.T, s *faultSuite, g *faultGroup) {
		n := s.faultDriver.(faultNetwork)
		g.markFault()
		n.disconnect(t, "gateway3")
		time.Sleep(s.lease + s.during)
		g.markHeal()
		n.connect(t, "gateway3")
		s.ready(t)
		g.waitResumed(s.resume, g.heal)
		time.Sleep(s.during)
		g.finish(g.on(3)...)
	}},
	// Restart every node in turn (SIGTERM, start again, wait until ready):
	// brokers first, then gateways, whose users move to another gateway.
	{"rolling-restart", "rr", false, func(t *testing.T, s *faultSuite, g *faultGroup) {
		g.markFault()
		for i, node := range []string{"broker1", "broker2", "broker3", "gateway1", "gateway2", "gateway3"} {
			s.restart(t, node)
			s.ready(t)
			g.waitResumed(s.resume, time.Now())
			if strings.HasPrefix(node, "broker") {
				// /readyz says the broker is in the cluster; a gateway
				// should be stopped only once JetStream answers again
				// (leaders elected): a gateway stopped while it cannot
				// release its users' presence has them announced twice.
				faultWaitJoin(t, 2*time.Minute, s.gateways[0], fmt.Sprintf("rrprobe%d", i))
			}
		}
		g.note("rolling_total_ms=%d", time.Since(g.fault).Milliseconds())
		g.finish()
	}},
}

// runFaults runs every fault scenario on s, each with its own users: for
// each fault it reports what was lost, duplicated or reordered and how
// long users waited, and checks the guarantees (faultGroup.report).
func runFaults(t *testing.T, s *faultSuite) {
	for _, sc := range faultScenarios {
		t.Run(sc.name, func(t *testing.T) {
			if _, ok := s.faultDriver.(faultNetwork); sc.network && !ok {
				t.Skip("no network to disconnect on the " + s.env + " cluster")
			}
			sc.run(t, s, newFaultGroup(t, &s.faultPace, sc.name, sc.prefix, false, false))
		})
	}
}

// node returns the node named name.
func (fc *faultCluster) node(t *testing.T, name string) *faultNode {
	t.Helper()
	for _, n := range fc.nodes() {
		if n.name == name {
			return n
		}
	}
	t.Fatalf("no node %q", name)
	return nil
}

func (fc *faultCluster) nodes() []*faultNode {
	return append(append([]*faultNode(nil), fc.brokers...), fc.gateways...)
}

func (fc *faultCluster) kill(t *testing.T, nodes ...string) {
	for _, n := range nodes {
		fc.node(t, n).signal(t, syscall.SIGKILL)
	}
	for _, n := range nodes {
		fc.node(t, n).wait(t, 10*time.Second)
	}
}

func (fc *faultCluster) start(t *testing.T, nodes ...string) {
	for _, n := range nodes {
		fc.node(t, n).start(fc.t) // the process lives as long as the cluster
	}
}

func (fc *faultCluster) pause(t *testing.T, node string) { fc.node(t, node).signal(t, syscall.SIGSTOP) }
func (fc *faultCluster) unpause(t *testing.T, node string) {
	fc.node(t, node).signal(t, syscall.SIGCONT)
}

func (fc *faultCluster) restart(t *testing.T, node string) {
	n := fc.node(t, node)
	n.signal(t, syscall.SIGTERM)
	n.wait(t, 30*time.Second)
	n.start(fc.t)
}

func (fc *faultCluster) ready(*testing.T) { fc.waitReady(fc.nodes()...) }

// brokerOf names the broker gw was started on. A process gateway leaves it
// only when that broker fails, and the scenarios ask before any has left
// theirs: gateway2 before broker-kill, gateway1 (which no fault has moved)
// before broker-pause.
func (fc *faultCluster) brokerOf(gw string) string {
	for i, g := range fc.gateways {
		if g.name == gw {
			return fc.brokers[i%3].name
		}
	}
	return ""
}

// TestReliabilityFaults runs the fault scenarios on a multi-process
// cluster (three brokers, three gateways, each a chatd process; faults
// are signals: SIGKILL, SIGSTOP/SIGCONT, SIGTERM) while users on every
// gateway chat. TestReliabilityComposeFaults runs the same scenarios on
// the compose cluster. Run with -tags reliability; CHATD_RELIABILITY=full
// runs it longer with more users.
func TestReliabilityFaults(t *testing.T) {
	start := time.Now()
	lease := 3 * time.Second
	fc := startFaultClusterWith(t, faultClusterConfig{lease: lease})
	t.Logf("cluster ready after %v", time.Since(start).Round(time.Millisecond))
	runFaults(t, &faultSuite{
		faultPace: faultPace{
			env:      "process",
			gateways: fc.chatAddrs(),
			interval: 50 * time.Millisecond, // 20 lines/s per user
			per:      relScale(2, 4),
			lease:    lease,
			warm:     relScale(time.Second, 5*time.Second),
			during:   relScale(2*time.Second, 10*time.Second),
		},
		faultDriver:   fc,
		resume:        time.Minute,
		stall:         5 * time.Minute,
		rejoin:        2 * time.Minute,
		whoEverywhere: true,
	})
	t.Logf("whole run: %v", time.Since(start).Round(time.Millisecond))
}

// faultReply matches a command's reply line.
func faultReply(s string) bool { return strings.HasPrefix(s, "*** ") || strings.HasPrefix(s, "ERROR ") }

// faultWaitJoin waits until a join as nick at addr is accepted: JetStream
// answers.
func faultWaitJoin(t *testing.T, total time.Duration, addr, nick string) {
	t.Helper()
	checkFor(t, total, func() error {
		if got := faultProbeJoin(t, addr, nick); got != "Connected to server!" {
			return fmt.Errorf("join as %s: %q", nick, got)
		}
		return nil
	})
}
