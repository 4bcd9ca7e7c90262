// Package clustertest starts real NATS servers for tests in other packages.
package clustertest

import (
	"testing"
	"time"

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
