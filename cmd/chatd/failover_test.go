package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/chatd/chatd/internal/testkit"
)

// Three gateways, each on its own node of a three-node NATS cluster, share
// rooms, order, nicknames and /who; history is replicated.
func TestThreeNodeCluster(t *testing.T) {
	nodes := clustertest.StartCluster(t, 3)
	var addrs []string
	for _, n := range nodes {
		g := mustRunRole(t, RoleGateway, "--nats", n.ClientURL(), "--replicas", "3", "--rate", "1000", "--burst", "1000")
		addrs = append(addrs, g.ChatAddr().String())
	}
	var cs []*client
	for i, a := range addrs {
		c := join(t, a, fmt.Sprintf("u%d", i))
		for _, prev := range cs {
			prev.Expect(c.Nick + " joined!")
		}
		cs = append(cs, c)
	}
	chatInOrder(t, cs, 200)
	cs[2].Send("/who\n")
	cs[2].Expect("*** in lobby (3): u0, u1, u2")
	c := dial(t, addrs[1])
	c.ExpectName()
	c.Send("U0\n")
	c.Expect("ERROR nickname U0 is taken, choose another")
}

// The broker role forms a NATS cluster by itself, guarded by a cluster
// secret (given as a flag or a file); gateways with the secret use it, a
// NATS client without it is refused.
func TestBrokerRole(t *testing.T) {
	ports := freePorts(t, 6)
	var peers, urls []string
	for i := range 3 {
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(ports[3+i]))
		urls = append(urls, "nats://127.0.0.1:"+strconv.Itoa(ports[i]))
	}
	secretFile := filepath.Join(t.TempDir(), "cluster")
	if code := runSecret([]string{"--init", secretFile}, io.Discard, io.Discard); code != 0 {
		t.Fatal("chatd secret --init failed")
	}
	data, _ := os.ReadFile(secretFile)
	secret := strings.TrimSpace(string(data))
	var brokers []*Main
	for i := range 3 {
		auth := []string{"--cluster-secret", secret}
		if i == 2 {
			auth = []string{"--cluster-secret-file", secretFile}
		}
		brokers = append(brokers, mustRunRole(t, RoleBroker, append([]string{"--name", fmt.Sprintf("b%d", i+1),
			"--nats-listen", "127.0.0.1:" + strconv.Itoa(ports[i]),
			"--cluster-listen", "127.0.0.1:" + strconv.Itoa(ports[3+i]),
			"--peers", strings.Join(peers, ","), "--admin", "127.0.0.1:0"}, auth...)...))
	}
	// A normal start-up, peers coming up one after another (routes to them
	// refused until they listen), logs no error.
	checkFor(t, waitFor, func() error { return brokers[0].ready() })
	for _, m := range brokers {
		if logs := logsOf(t, m); strings.Contains(logs, "level=ERROR") {
			t.Errorf("broker start-up logged errors:\n%s", logs)
		}
	}
	if nc, err := nats.Connect(urls[1], nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a NATS client without the secret connected to a broker")
	}
	g1 := mustRunRole(t, RoleGateway, "--nats", urls[0], "--replicas", "3", "--admin", "127.0.0.1:0", "--cluster-secret", secret)
	g2 := mustRunRole(t, RoleGateway, "--nats", urls[2], "--replicas", "3", "--cluster-secret-file", secretFile)
	var out, errOut strings.Builder
	if code := healthcheck([]string{"--admin", g1.AdminAddr().String()}, &out, &errOut); code != 0 {
		t.Errorf("healthcheck = %d: %s", code, errOut.String())
	}
	a := join(t, g1.ChatAddr().String(), "a")
	b := join(t, g2.ChatAddr().String(), "b")
	a.Expect("b joined!")
	b.Send("over brokers\n")
	a.Expect("b: over brokers")
}

// A gateway killed with SIGKILL: the others announce its users' departure
// once, within a bounded time, and their nicknames are free again.
func TestGatewayKilled(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	lease := []string{"--lease", "1s"}
	g1 := startChatd(t, append([]string{"gateway", "--nats", ns.ClientURL(), "--listen", "127.0.0.1:0"}, lease...)...)
	g2 := startChatd(t, append([]string{"gateway", "--nats", ns.ClientURL(), "--listen", "127.0.0.1:0"}, lease...)...)
	alice := join(t, g1.addr, "alice")
	victim := join(t, g2.addr, "victim")
	alice.Expect("victim joined!")
	victim.Send("/who\n")
	victim.Expect("*** in lobby (2): alice, victim")

	start := time.Now()
	g2.cmd.Process.Signal(syscall.SIGKILL)
	alice.Expect("victim left!")
	t.Logf("SIGKILL to left!: %v", time.Since(start).Round(time.Millisecond))
	if n := count(alice.Sync(), "victim left!"); n != 0 {
		t.Errorf("left! announced %d more times", n)
	}
	join(t, g1.addr, "victim")
	alice.Expect("victim joined!")
}

// A gateway that loses its NATS link keeps its clients, tells them once,
// refuses lines meanwhile, and says so when the link is back.
func TestLinkLoss(t *testing.T) {
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	ns := clustertest.Start(t, clustertest.Options{StoreDir: dir, Port: port})
	g := mustRunRole(t, RoleGateway, "--nats", ns.ClientURL())
	alice := join(t, g.ChatAddr().String(), "alice")

	ns.Shutdown()
	ns.WaitForShutdown()
	alice.Expect("*** the chat link is down: your lines cannot be sent until it is back")
	alice.Send("into the void\n")
	alice.Expect("ERROR your line was not sent: the chat link is down")

	clustertest.Start(t, clustertest.Options{StoreDir: dir, Port: port})
	alice.Expect("*** the chat link is back")
	checkFor(t, waitFor, func() error { // the first lines may race the resubscription
		alice.Send("hello again\n")
		s, err := alice.Line()
		if err != nil || s != "alice: hello again" {
			return fmt.Errorf("got %q, %v", s, err)
		}
		return nil
	})
	for _, l := range alice.Sync() {
		if l == "alice: into the void" {
			t.Error("a line refused while the link was down arrived later")
		}
	}
}

// A gateway shutting down sends its classic clients to another gateway.
func TestRollingRestart(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	g1 := mustRunRole(t, RoleGateway, "--nats", ns.ClientURL(), "--public-addr", "chat1.example:5501")
	g2 := mustRunRole(t, RoleGateway, "--nats", ns.ClientURL(), "--public-addr", "chat2.example:5502")
	bob := join(t, g2.ChatAddr().String(), "bob")
	alice := join(t, g1.ChatAddr().String(), "alice")
	bob.Expect("alice joined!")
	go g1.Close()
	if got := alice.ExpectClosed(); !strings.Contains(got, "*** server shutting down; reconnect to chat2.example:5502\n") {
		t.Errorf("alice got %q", got)
	}
	bob.Expect("alice left!")
}

// A stock NATS server (Debian's nats-server, 2.9) works with JetStream;
// without it (no -js) a gateway refuses to start, saying how to enable it.
func TestStockNATSServer(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("no nats-server binary (Debian package nats-server); .ci/run installs it")
	}
	for _, js := range []bool{true, false} {
		t.Run(fmt.Sprintf("jetstream=%v", js), func(t *testing.T) {
			port := freePorts(t, 1)[0]
			args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(port)}
			if js {
				args = append(args, "-js", "-sd", t.TempDir())
			}
			cmd := exec.Command(bin, args...)
			cmd.Stderr = &testLog{t: t}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			url := "nats://127.0.0.1:" + strconv.Itoa(port)
			checkFor(t, waitFor, func() error {
				c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
				if err == nil {
					c.Close()
				}
				return err
			})
			if !js {
				checkRefusesNoJetStream(t, url)
				return
			}
			g1 := mustRunRole(t, RoleGateway, "--nats", url)
			g2 := mustRunRole(t, RoleGateway, "--nats", url)
			alice := join(t, g1.ChatAddr().String(), "alice")
			bob := join(t, g2.ChatAddr().String(), "bob")
			alice.Expect("bob joined!")
			bob.Send("hi\n")
			alice.Expect("bob: hi")
			alice.Send("/who\n")
			alice.Expect("*** in lobby (2): alice, bob")
			c := dial(t, g2.ChatAddr().String())
			c.ExpectName()
			c.Send("Alice\n")
			c.Expect("ERROR nickname Alice is taken, choose another")
			{
				alice.Send("history check\n")
				alice.Expect("alice: history check")
				carol := dial(t, g2.ChatAddr().String())
				carol.ExpectName()
				carol.Send("carol\n")
				carol.Nick = "carol"
				carol.Expect("--- last 2 lines of lobby ---")
				carol.ExpectFunc("[hh:mm] alice: history check", func(s string) bool {
					return strings.HasPrefix(s, "[") && strings.HasSuffix(s, "] alice: history check")
				})
			}
		})
	}
}

// Single nodes joined with --peers and one cluster secret share rooms,
// nicknames and history, with no other install: the LAN cluster.
func TestLANPeers(t *testing.T) {
	ports := freePorts(t, 3)
	var peers []string
	for _, p := range ports {
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(p))
	}
	// Each node waits for a majority of its peers: start them together.
	nodes := make([]*Main, len(ports))
	errs := make(chan error, len(ports))
	for i, p := range ports {
		dir := t.TempDir() // removed after the node is closed below
		m := NewMain(RoleSingle)
		lw := &testLog{t: t}
		m.Stdout, m.Stderr = io.Discard, lw
		t.Cleanup(func() { m.Close(); lw.stop() })
		err := m.ParseFlags([]string{"--data", dir, "--listen", "127.0.0.1:0", "--http", "", "--name", fmt.Sprintf("laptop%d", i+1),
			"--cluster-listen", "127.0.0.1:" + strconv.Itoa(p), "--peers", strings.Join(peers, ","), "--cluster-secret", busSecret})
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = m
		go func() { errs <- m.Run(t.Context()) }()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
	if r := nodes[0].replicas(); r != 3 {
		t.Errorf("replicas = %d, want 3", r)
	}
	a := join(t, nodes[0].ChatAddr().String(), "ann")
	b := join(t, nodes[2].ChatAddr().String(), "ben")
	a.Expect("ben joined!")
	b.Send("across the LAN\n")
	a.Expect("ben: across the LAN")
	c := dial(t, nodes[1].ChatAddr().String())
	c.ExpectName()
	c.Send("ANN\n")
	c.Expect("ERROR nickname ANN is taken, choose another")
	c.ExpectName()
	c.Send("cat\n")
	c.Nick = "cat"
	c.Expect("Connected to server!")
	// The replicated stream stores the line a moment after it is delivered.
	attempt := 0
	checkFor(t, waitFor, func() error {
		attempt++
		d := dial(t, nodes[1].ChatAddr().String())
		d.ExpectName()
		d.Nick = fmt.Sprintf("dog%d", attempt)
		d.Send(d.Nick + "\n")
		defer d.Send("/quit\n")
		for _, l := range d.Expect(d.Nick + " joined!") {
			if strings.HasSuffix(l, "] ben: across the LAN") {
				return nil
			}
		}
		return fmt.Errorf("no replay of ben's line yet")
	})
}

// freePorts picks ports outside the ephemeral range (testkit.FreePorts).
var freePorts = testkit.FreePorts
