// Package clustertest starts real NATS servers for tests in other packages.
package clustertest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster"
	"github.com/nats-io/nats-server/v2/server"
)

// Options describes a test server; the zero value is a JetStream server on a
// random loopback port with its store in a temporary folder.
type Options struct {
	NoJetStream bool
	StoreDir    string // reuse a store across restarts; default t.TempDir()
	Port        int    // default: random (-1)
}

// Start runs a NATS server until the test ends and returns it. Its client
// URL is s.ClientURL().
func Start(t testing.TB, o Options) *server.Server {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	if o.Port == 0 {
		o.Port = -1
	}
	opts := &server.Options{
		ServerName: "test",
		Host:       "127.0.0.1",
		Port:       o.Port,
		NoLog:      true,
		NoSigs:     true,
		JetStream:  !o.NoJetStream,
		StoreDir:   o.StoreDir,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("clustertest: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("clustertest: NATS server not ready in 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// StartCluster runs n routed JetStream servers (cluster.Node, names n1…nN)
// on loopback until the test ends. It returns once every server has routes
// to the n-1 others and a JetStream meta leader sees all n peers. Client
// URLs are s.ClientURL() (random ports); stores are in t.TempDir().
func StartCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	if n < 1 {
		t.Fatalf("clustertest: StartCluster(%d): need at least 1 server", n)
	}
	var err error
	for range 3 { // the picked ports may be taken before the servers bind them
		var nodes []*cluster.Node
		if nodes, err = startNodes(t, n); err == nil {
			servers := make([]*server.Server, n)
			for i, nd := range nodes {
				t.Cleanup(func() { _ = nd.Close() })
				servers[i] = nd.Server()
			}
			if err = waitCluster(servers, 20*time.Second); err != nil {
				t.Fatalf("clustertest: %v", err)
			}
			return servers
		}
	}
	t.Fatalf("clustertest: StartCluster(%d): %v", n, err)
	return nil
}

// startNodes starts n nodes routed to each other, or none.
func startNodes(t testing.TB, n int) ([]*cluster.Node, error) {
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	peers := make([]string, n)
	for i, p := range ports {
		peers[i] = fmt.Sprintf("127.0.0.1:%d", p)
	}
	nodes := make([]*cluster.Node, 0, n)
	closeAll := func() {
		for _, nd := range nodes {
			_ = nd.Close()
		}
	}
	for i := range n {
		cfg := cluster.DefaultConfig()
		cfg.Name = fmt.Sprintf("n%d", i+1)
		cfg.DataDir = t.TempDir()
		cfg.ClientListen = "127.0.0.1:0"
		cfg.ClusterName = "clustertest"
		cfg.ClusterListen = peers[i]
		cfg.Peers = peers
		cfg.Logger = slog.New(slog.DiscardHandler)
		nd, err := cluster.New(cfg)
		if err == nil {
			nodes = append(nodes, nd)
			err = nd.Start(context.Background())
		}
		if err != nil {
			closeAll()
			return nil, err
		}
	}
	return nodes, nil
}

// waitCluster polls until every server has len(servers)-1 remotes and a
// meta leader sees every peer.
func waitCluster(servers []*server.Server, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := clusterReady(servers)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not ready after %s: %w", timeout, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func clusterReady(servers []*server.Server) error {
	for _, s := range servers {
		if got := s.NumRemotes(); got != len(servers)-1 {
			return fmt.Errorf("%s routes to %d servers, want %d", s.Name(), got, len(servers)-1)
		}
	}
	for _, s := range servers {
		if s.JetStreamIsLeader() {
			if p := s.JetStreamClusterPeers(); len(p) != len(servers) {
				return fmt.Errorf("meta leader %s sees peers %v", s.Name(), p)
			}
			return nil
		}
	}
	return errors.New("no JetStream meta leader")
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close() // hold every port until all are picked
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}
