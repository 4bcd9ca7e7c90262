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
	project := fmt.Sprintf("chatdfault%d", os.Getpid())
	run := composeProject(t, project)
	run("up", "-d", "--build")
	waitHealthy(t, run, 6)
	t.Logf("cluster healthy after %v", time.Since(start).Round(time.Millisecond))

	gateways := []string{"127.0.0.1:5501", "127.0.0.1:5502", "127.0.0.1:5503"}
	const lease = 6 * time.Second // docker-compose.yml
	per := 2
	if faultFull() {
		per = 3
	}
	interval := 250 * time.Millisecond // 4 lines/s per user: under --rate 5
	warm := faultScaled(2*time.Second, 10*time.Second)
	during := faultScaled(2*time.Second, 15*time.Second)
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
	healthy := func(t *testing.T) {
		t.Helper()
		waitHealthy(t, run, 6)
	}
	// brokerOf names the broker a gateway's link is on now, from its logs.
	urlRE := regexp.MustCompile(`url=nats://(broker\d):4222`)
	brokerOf := func(gw string) string {
		m := urlRE.FindAllStringSubmatch(run("logs", "--no-color", gw), -1)
		if len(m) == 0 {
			return "broker1"
		}
		return m[len(m)-1][1]
	}
	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	container := func(svc string) string { return strings.TrimSpace(run("ps", "-q", svc)) }

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
		g.waitWhoEverywhere(t)
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
