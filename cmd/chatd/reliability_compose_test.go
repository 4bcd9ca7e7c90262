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
	cc.ready(t)
	t.Logf("cluster healthy after %v", time.Since(start).Round(time.Millisecond))
	return cc
}

// ready waits until all six nodes report healthy.
func (cc *composeCluster) ready(t *testing.T) {
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
	c := &zlCluster{faultPace: faultPace{
		env:      "compose",
		gateways: composeGateways,
		interval: 250 * time.Millisecond, // 4 lines/s per user: under --rate 5
		per:      relScale(2, 3),
		lease:    composeLease,
		warm:     relScale(2*time.Second, 10*time.Second),
		during:   relScale(2*time.Second, 15*time.Second),
	}}
	heal := func(svc string) func(t *testing.T, probe string) {
		return func(t *testing.T, probe string) {
			cc.start(t, svc)
			cc.ready(t)
			faultWaitJoin(t, 2*time.Minute, composeGateways[0], probe)
		}
	}
	var broker string // the broker faulted, named when the fault starts
	c.brokerKill = zlFault{
		inject: func(t *testing.T) {
			broker = cc.brokerOf("gateway1")
			t.Logf("killing %s (gateway1's broker)", broker)
			cc.kill(t, broker)
		},
		heal: func(t *testing.T, probe string) { heal(broker)(t, probe) },
	}
	c.brokerPause = zlFault{
		inject: func(t *testing.T) {
			broker = cc.brokerOf("gateway1")
			t.Logf("pausing %s (gateway1's broker)", broker)
			cc.pause(t, broker)
		},
		heal: func(t *testing.T, probe string) {
			cc.unpause(t, broker)
			cc.ready(t)
			faultWaitJoin(t, 2*time.Minute, composeGateways[0], probe)
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
				faultWaitJoin(t, 2*time.Minute, composeGateways[2], probe)
			},
			silent: true,
		}
	}
	// (c') docker network disconnect gateway3, then connect it again: this
	// also closes its published ports, so its users lose their
	// connections and resume elsewhere.
	c.netDisconnect = zlFault{
		inject: func(t *testing.T) { cc.disconnect(t, "gateway3") },
		heal: func(t *testing.T, probe string) {
			cc.connect(t, "gateway3")
			cc.ready(t)
			faultWaitJoin(t, 2*time.Minute, composeGateways[2], probe)
		},
		silent: true,
		cuts:   []int{3},
	}
	c.gatewayKill = zlFault{
		inject: func(t *testing.T) { cc.kill(t, "gateway3") },
		heal:   heal("gateway3"),
		cuts:   []int{3},
	}
	runZeroLoss(t, c)
	t.Logf("whole run: %v", time.Since(start).Round(time.Millisecond))
}

// TestReliabilityComposeFaults runs the fault scenarios
// (reliability_faults_test.go) on the docker compose cluster
// (docker-compose.yml: three brokers, three gateways, lease 6s, the
// default --rate of 5 lines/s; faults are docker compose kill, pause,
// restart and docker network disconnect) while users on every gateway
// chat:
//
//	go test -tags 'reliability docker' -run TestReliabilityComposeFaults -v ./cmd/chatd/
//
// CHATD_RELIABILITY=full runs it longer with more users.
func TestReliabilityComposeFaults(t *testing.T) {
	start := time.Now()
	cc := startComposeCluster(t, "chatdfault")
	runFaults(t, &faultSuite{
		faultPace: faultPace{
			env:      "compose",
			gateways: composeGateways,
			interval: 250 * time.Millisecond, // 4 lines/s per user: under --rate 5
			per:      relScale(2, 3),
			lease:    composeLease,
			warm:     relScale(2*time.Second, 10*time.Second),
			during:   relScale(2*time.Second, 15*time.Second),
		},
		faultDriver: cc,
		resume:      2 * time.Minute,
		stall:       3 * time.Minute,
		rejoin:      3 * time.Minute,
		// Its retries count against the users' --rate: 5 lines/s cannot
		// take them beside the steady chat.
		whoEverywhere: false,
	})
	t.Logf("whole run: %v", time.Since(start).Round(time.Millisecond))
}

func (cc *composeCluster) kill(_ *testing.T, svcs ...string) {
	cc.run(append([]string{"kill", "-s", "SIGKILL"}, svcs...)...)
}

func (cc *composeCluster) start(_ *testing.T, svcs ...string) {
	cc.run(append([]string{"start"}, svcs...)...)
}

func (cc *composeCluster) pause(_ *testing.T, svc string)   { cc.run("pause", svc) }
func (cc *composeCluster) unpause(_ *testing.T, svc string) { cc.run("unpause", svc) }
func (cc *composeCluster) restart(_ *testing.T, svc string) { cc.run("restart", "-t", "10", svc) }

// disconnect disconnects svc from the project's network; connect connects
// it again, under its name.
func (cc *composeCluster) disconnect(t *testing.T, svc string) {
	cc.docker(t, "network", "disconnect", cc.project+"_default", cc.container(svc))
}

func (cc *composeCluster) connect(t *testing.T, svc string) {
	cc.docker(t, "network", "connect", "--alias", svc, cc.project+"_default", cc.container(svc))
}
