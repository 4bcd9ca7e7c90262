//go:build reliability && docker

package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The compose cluster: docker-compose.yml as shipped, its gateways' chat
// ports on the host.
var composeGateways = []string{"127.0.0.1:5501", "127.0.0.1:5502", "127.0.0.1:5503"}

const composeLease = 6 * time.Second // docker-compose.yml

// composeCluster is a running compose project (its own name, removed with
// its volumes when the test ends).
type composeCluster struct {
	t       *testing.T
	project string
	run     func(args ...string) string // docker compose -p project ...
}

// startComposeCluster builds the binary and the image, starts the compose
// cluster as project name+pid and waits until all six nodes are healthy.
func startComposeCluster(t *testing.T, name string) *composeCluster {
	t.Helper()
	start := time.Now()
	cc := &composeCluster{t: t, project: fmt.Sprintf("%s%d", name, os.Getpid())}
	cc.run = composeProject(t, cc.project)
	cc.run("up", "-d", "--build")
	cc.healthy(t)
	t.Logf("cluster healthy after %v", time.Since(start).Round(time.Millisecond))
	return cc
}

// healthy waits until all six nodes report healthy.
func (cc *composeCluster) healthy(t *testing.T) {
	t.Helper()
	waitHealthy(t, cc.run, 6)
}

var composeURLRE = regexp.MustCompile(`url=nats://([^:/ ]+):4222`)

// brokerOf names the broker a gateway's link is on now, from its logs: the
// first connection names the broker, a reconnection its address on the
// project's network.
func (cc *composeCluster) brokerOf(gw string) string {
	m := composeURLRE.FindAllStringSubmatch(cc.run("logs", "--no-color", gw), -1)
	if len(m) == 0 {
		return "broker1"
	}
	host := m[len(m)-1][1]
	for _, b := range []string{"broker1", "broker2", "broker3"} {
		if host == b || host == cc.ip(b) {
			return b
		}
	}
	cc.t.Logf("%s's broker %s not found: broker1", gw, host)
	return "broker1"
}

// ip returns a service's address on the project's network.
func (cc *composeCluster) ip(svc string) string {
	return strings.TrimSpace(cc.docker(cc.t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", cc.container(svc)))
}

// docker runs the docker CLI.
func (cc *composeCluster) docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// container returns a service's container id.
func (cc *composeCluster) container(svc string) string {
	return strings.TrimSpace(cc.run("ps", "-q", svc))
}

// TestReliabilityZeroLossCompose runs the zero-loss scenarios
// (reliability_zeroloss_test.go) on the compose cluster: (a) the broker
// gateway1 is on killed, (b) the broker gateway1 is on paused past the
// ping interval, (c) gateway3's packets to and from the broker it is on
// dropped and let through again (its users stay connected; needs root),
// (c') gateway3 disconnected from the compose network and connected again,
// (d) gateway3 killed. Disconnecting a container from its network also
// closes its published ports, so in (c') gateway3's own users lose their
// connections as in (d): in both they speak the " +resume" extension and
// come back elsewhere with their position.
//
//	go test -tags 'reliability docker' -count=1 -run 'TestReliabilityZeroLossCompose$' -v ./cmd/chatd/
func TestReliabilityZeroLossCompose(t *testing.T) {
	start := time.Now()
	cc := startComposeCluster(t, "chatdzl")
	c := &zlCluster{
		env:      "compose",
		gateways: composeGateways,
		interval: 250 * time.Millisecond, // 4 lines/s per user: under --rate 5
		per:      2,
		lease:    composeLease,
		warm:     relScale(2*time.Second, 10*time.Second),
		during:   relScale(2*time.Second, 15*time.Second),
	}
	if relFull() {
		c.per = 3
	}
	heal := func(svc string) func(t *testing.T, probe string) {
		return func(t *testing.T, probe string) {
			cc.run("start", svc)
			cc.healthy(t)
			faultWaitJoin(t, composeGateways[0], probe)
		}
	}
	var broker string // the broker faulted, named when the fault starts
	c.brokerKill = zlFault{
		inject: func(t *testing.T) {
			broker = cc.brokerOf("gateway1")
			t.Logf("killing %s (gateway1's broker)", broker)
			cc.run("kill", "-s", "SIGKILL", broker)
		},
		heal: func(t *testing.T, probe string) { heal(broker)(t, probe) },
	}
	c.brokerPause = zlFault{
		inject: func(t *testing.T) {
			broker = cc.brokerOf("gateway1")
			t.Logf("pausing %s (gateway1's broker)", broker)
			cc.run("pause", broker)
		},
		heal: func(t *testing.T, probe string) {
			cc.run("unpause", broker)
			cc.healthy(t)
			faultWaitJoin(t, composeGateways[0], probe)
		},
	}
	// (c) drop every packet between gateway3 and the broker it is on,
	// inside its network namespace (its users stay connected; the other
	// brokers stay reachable), then let them through again.
	var cutRules [][]string
	iptables := func(t *testing.T, op string) {
		t.Helper()
		pid := strings.TrimSpace(cc.docker(t, "inspect", "-f", "{{.State.Pid}}", cc.container("gateway3")))
		for _, r := range cutRules {
			args := append([]string{"-t", pid, "-n", "iptables", op}, r...)
			if out, err := exec.Command("nsenter", args...).CombinedOutput(); err != nil {
				t.Fatalf("nsenter %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	}
	pid := strings.TrimSpace(cc.docker(t, "inspect", "-f", "{{.State.Pid}}", cc.container("gateway3")))
	if err := exec.Command("nsenter", "-t", pid, "-n", "iptables", "-S", "OUTPUT").Run(); err != nil {
		c.netCut.skip = "needs root, nsenter and iptables to drop gateway3's packets: " + err.Error()
	} else {
		c.netCut = zlFault{
			inject: func(t *testing.T) {
				broker = cc.brokerOf("gateway3")
				ip := cc.ip(broker)
				t.Logf("dropping gateway3's packets to and from %s (%s)", broker, ip)
				cutRules = [][]string{
					{"OUTPUT", "-d", ip, "-p", "tcp", "--dport", "4222", "-j", "DROP"},
					{"INPUT", "-s", ip, "-p", "tcp", "--sport", "4222", "-j", "DROP"},
				}
				iptables(t, "-I")
			},
			heal: func(t *testing.T, probe string) {
				iptables(t, "-D")
				faultWaitJoin(t, composeGateways[2], probe)
			},
			silent: true,
		}
	}
	// (c') docker network disconnect gateway3, then connect it again: this
	// also closes its published ports, so its users lose their
	// connections and resume elsewhere.
	network := cc.project + "_default"
	var cut string
	c.netDisconnect = zlFault{
		inject: func(t *testing.T) {
			cut = cc.container("gateway3")
			cc.docker(t, "network", "disconnect", network, cut)
		},
		heal: func(t *testing.T, probe string) {
			cc.docker(t, "network", "connect", "--alias", "gateway3", network, cut)
			cc.healthy(t)
			faultWaitJoin(t, composeGateways[2], probe)
		},
		silent: true,
		cuts:   []int{3},
	}
	c.gatewayKill = zlFault{
		inject: func(*testing.T) { cc.run("kill", "-s", "SIGKILL", "gateway3") },
		heal:   heal("gateway3"),
		cuts:   []int{3},
	}
	runZeroLoss(t, c)
	t.Logf("whole run: %v", time.Since(start).Round(time.Millisecond))
}

// TestReliabilityComposeFaults injects faults into the docker compose
// cluster (docker-compose.yml: three brokers, three gateways, lease 6s,
// the default --rate of 5 lines/s) while users on every gateway chat, and
// reports for each fault what was lost, duplicated or reordered and how
// long users waited:
//
//	go test -tags 'reliability docker' -run TestReliabilityComposeFaults -v ./cmd/chatd/
//
// CHATD_RELIABILITY=full runs it longer with more users.
func TestReliabilityComposeFaults(t *testing.T) {
	start := time.Now()
	cc := startComposeCluster(t, "chatdfault")
	run, project, gateways := cc.run, cc.project, composeGateways
	const lease = composeLease
	per := 2
	if relFull() {
		per = 3
	}
	interval := 250 * time.Millisecond // 4 lines/s per user: under --rate 5
	warm := relScale(2*time.Second, 10*time.Second)
	during := relScale(2*time.Second, 15*time.Second)
	group := func(t *testing.T, name, prefix string) *faultGroup {
		g := newFaultGroup(t, "compose", name, prefix, interval, per, gateways)
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
	healthy, brokerOf := cc.healthy, cc.brokerOf
	docker := func(args ...string) string { t.Helper(); return cc.docker(t, args...) }
	container := cc.container

	t.Run("gateway-kill", func(t *testing.T) {
		g := group(t, "gateway-kill", "gk")
		g.markFault()
		run("kill", "-s", "SIGKILL", "gateway3")
		g.waitResumed(2*time.Minute, g.fault)
		time.Sleep(during)
		run("start", "gateway3")
		healthy(t)
		g.finish(victims("gk", 3)...)
	})

	t.Run("broker-kill", func(t *testing.T) {
		g := group(t, "broker-kill", "bk")
		b := brokerOf("gateway1")
		g.note("killed=%s (gateway1's broker)", b)
		g.markFault()
		run("kill", "-s", "SIGKILL", b)
		g.waitResumed(2*time.Minute, g.fault)
		time.Sleep(during)
		run("start", b)
		healthy(t)
		g.finish()
	})

	t.Run("two-brokers-kill", func(t *testing.T) {
		g := group(t, "two-brokers-kill", "qk")
		g.markFault()
		run("kill", "-s", "SIGKILL", "broker2", "broker3")
		g.waitResumed(2*time.Minute, g.fault)
		time.Sleep(lease + during) // past a lease refresh without quorum
		g.note("join_without_quorum=%q", faultProbeJoin(gateways[0], "qprobe1"))
		g.note("who_without_quorum=%q", g.faultAsk(g.users[0], "/who", faultReply))
		// Private messages are core NATS requests: they still work.
		reply := g.faultAsk(g.users[0], "/msg "+g.users[len(g.users)-1].nick+" psst", faultReply)
		g.note("msg_without_quorum=%q", reply)
		if !strings.HasPrefix(reply, "*** private to ") {
			t.Errorf("/msg without quorum: %q", reply)
		}
		g.markHeal()
		run("start", "broker2", "broker3")
		var probe string
		checkFor(t, 3*time.Minute, func() error {
			probe = faultProbeJoin(gateways[1], "qprobe2")
			if probe != "Connected to server!" {
				return fmt.Errorf("join: %q", probe)
			}
			return nil
		})
		g.note("join_works_after_restart_ms=%d", time.Since(g.heal).Milliseconds())
		healthy(t)
		g.note("who_after_recovery=%q", g.faultAsk(g.users[0], "/who", faultReply))
		time.Sleep(during)
		g.finish()
	})

	t.Run("gateway-pause", func(t *testing.T) {
		g := group(t, "gateway-pause", "gp")
		// The lines its users sent while it was paused reach it at once,
		// over --rate's burst: some are refused as a flood.
		g.floodExpected = true
		g.markFault()
		run("pause", "gateway2")
		for _, v := range victims("gp", 2) {
			if _, ok := g.users[0].waitLine(time.Minute, 0, func(s string) bool { return s == v+" left!" }); !ok {
				t.Errorf("%s never heard %s leave", g.users[0].nick, v)
			}
		}
		time.Sleep(during)
		from := len(g.users[0].snapshot())
		g.markHeal()
		run("unpause", "gateway2")
		g.waitResumed(2*time.Minute, g.heal)
		for _, v := range victims("gp", 2) {
			if _, ok := g.users[0].waitLine(time.Minute, from, func(s string) bool { return s == v+" joined!" }); !ok {
				t.Errorf("%s never heard %s join again", g.users[0].nick, v)
			}
		}
		time.Sleep(during)
		g.finish(victims("gp", 2)...)
	})

	t.Run("broker-pause", func(t *testing.T) {
		g := group(t, "broker-pause", "bp")
		// Since two-brokers-kill every gateway's link is on broker1.
		b := "broker1"
		g.note("paused=%s (gateway1's broker: %s)", b, brokerOf("gateway1"))
		g.markFault()
		run("pause", b)
		g.waitResumed(3*time.Minute, g.fault)
		time.Sleep(during)
		g.markHeal()
		run("unpause", b)
		healthy(t)
		time.Sleep(during)
		g.finish()
	})

	t.Run("network-cut", func(t *testing.T) {
		g := group(t, "network-cut", "nc")
		network := project + "_default"
		id := container("gateway3")
		g.markFault()
		docker("network", "disconnect", network, id)
		time.Sleep(lease + during)
		g.markHeal()
		docker("network", "connect", "--alias", "gateway3", network, id)
		healthy(t)
		g.waitResumed(2*time.Minute, g.heal)
		time.Sleep(during)
		g.finish(victims("nc", 3)...)
	})

	t.Run("rolling-restart", func(t *testing.T) {
		g := group(t, "rolling-restart", "rr")
		g.markFault()
		for i, svc := range []string{"broker1", "broker2", "broker3", "gateway1", "gateway2", "gateway3"} {
			run("restart", "-t", "10", svc)
			healthy(t)
			g.waitResumed(2*time.Minute, time.Now())
			if strings.HasPrefix(svc, "broker") {
				faultWaitJoin(t, gateways[0], fmt.Sprintf("rrprobe%d", i)) // JetStream answers again
			}
		}
		g.note("rolling_total_ms=%d", time.Since(g.fault).Milliseconds())
		g.finish()
	})
	t.Logf("whole run: %v", time.Since(start).Round(time.Millisecond))
}
