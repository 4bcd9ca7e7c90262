package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatd/chatd/internal/testkit"
)

// testLogger sends records at level and above to t.Log, and drops them once
// the test's cleanups (registered later) have run.
func testLogger(t testing.TB, level slog.Level) *slog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) }) // registered first, so runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// testConfig is a node config for tests: named, storing in a temp dir,
// logging warnings to t.Log.
func testConfig(t testing.TB, name string) Config {
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.DataDir = t.TempDir()
	cfg.Logger = testLogger(t, slog.LevelWarn)
	return cfg
}

// mustStart starts a node and closes it when the test ends.
func mustStart(t testing.TB, cfg Config) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	if err := n.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return n
}

func TestNodeInProcessJetStream(t *testing.T) {
	cfg := testConfig(t, "single")
	n := mustStart(t, cfg)

	if u := n.ClientURL(); u != "" {
		t.Errorf("ClientURL without ClientListen = %q, want empty", u)
	}
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "jetstream")); err != nil || !fi.IsDir() {
		t.Errorf("store dir not created: %v", err)
	}

	nc, err := nats.Connect("", nats.InProcessServer(n))
	if err != nil {
		t.Fatalf("connect in-process: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("chat.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("chat.test", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(2 * time.Second)
	if err != nil || string(msg.Data) != "hello" {
		t.Fatalf("NextMsg = %v, %v; want hello", msg, err)
	}

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("JetStream AccountInfo: %v", err)
	}
	if err := n.Ready(); err != nil {
		t.Errorf("Ready = %v", err)
	}
	n.Close()
	if err := n.Ready(); err == nil {
		t.Error("Ready after Close = nil")
	}
}

func TestNodeClientListen(t *testing.T) {
	cfg := testConfig(t, "listen")
	cfg.JetStream = false
	cfg.ClientListen = "127.0.0.1:0"
	n := mustStart(t, cfg)

	u := n.ClientURL()
	if !strings.HasPrefix(u, "nats://127.0.0.1:") || strings.HasSuffix(u, ":0") || strings.HasSuffix(u, ":-1") {
		t.Fatalf("ClientURL = %q, want nats://127.0.0.1:<port>", u)
	}
	nc, err := nats.Connect(u)
	if err != nil {
		t.Fatalf("connect %s: %v", u, err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(cfg.DataDir, "jetstream")); err == nil && fi.IsDir() {
		t.Errorf("store dir created with JetStream off")
	}
}

func TestNodeUnspecifiedClientURL(t *testing.T) {
	cfg := testConfig(t, "any")
	cfg.JetStream = false
	cfg.ClientListen = "0.0.0.0:0"
	cfg.Secret = testSecret // beyond loopback: not open
	n := mustStart(t, cfg)
	if u := n.ClientURL(); !strings.HasPrefix(u, "nats://127.0.0.1:") {
		t.Fatalf("ClientURL = %q, want a loopback URL", u)
	}
}

func TestNodeLifecycle(t *testing.T) {
	n, err := New(testConfig(t, "life"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.InProcessConn(); !errors.Is(err, ErrNotStarted) {
		t.Errorf("InProcessConn before Start = %v, want ErrNotStarted", err)
	}
	if n.Server() != nil {
		t.Errorf("Server before Start is not nil")
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v, want ErrStarted", err)
	}
	if n.Server() == nil || !n.Server().Running() {
		t.Fatalf("server not running after Start")
	}

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := n.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
	if err := n.Close(); err != nil {
		t.Errorf("third Close: %v", err)
	}
	if n.Server().Running() {
		t.Errorf("server still running after Close")
	}
	if _, err := n.InProcessConn(); !errors.Is(err, ErrClosed) {
		t.Errorf("InProcessConn after Close = %v, want ErrClosed", err)
	}
	if err := n.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v, want ErrClosed", err)
	}

	// Close without Start is fine too.
	n2, err := New(testConfig(t, "never"))
	if err != nil {
		t.Fatal(err)
	}
	if err := n2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNodeStartPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t, "busy")
	cfg.JetStream = false
	cfg.ClientListen = ln.Addr().String()
	cfg.Logger = slog.New(slog.DiscardHandler) // the failure is logged at error level
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	start := time.Now()
	err = n.Start(context.Background())
	if !errors.Is(err, ErrNotReady) {
		t.Fatalf("Start on a busy port = %v, want ErrNotReady", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Start took %s to report a busy port", d)
	}
	t.Logf("Start: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
}

func TestNewValidates(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.Name = "v"
		return c
	}
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"space in name", func(c *Config) { c.Name = "my host" }},
		{"space in cluster name", func(c *Config) {
			c.ClusterName = "a b"
			c.ClientListen, c.ClusterListen, c.Peers = ":4222", ":6222", []string{"a"}
		}},
		{"bad client listen", func(c *Config) { c.ClientListen = "4222" }},
		{"bad client port", func(c *Config) { c.ClientListen = "localhost:http" }},
		{"bad cluster listen", func(c *Config) { c.ClientListen, c.ClusterListen = ":4222", "x" }},
		{"cluster without client listener", func(c *Config) { c.ClusterListen, c.Peers = ":6222", []string{"a"} }},
		{"peers without cluster", func(c *Config) { c.Peers = []string{"a"} }},
		{"clustered JetStream without peers", func(c *Config) { c.ClientListen, c.ClusterListen = ":4222", ":6222" }},
		{"bad peer", func(c *Config) { c.ClientListen, c.ClusterListen, c.Peers = ":4222", ":6222", []string{"a:b:c"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.edit(&c)
			if _, err := New(c); !errors.Is(err, ErrConfig) {
				t.Fatalf("New = %v, want ErrConfig", err)
			}
		})
	}

	// Zero values are filled.
	n, err := New(Config{})
	if err != nil {
		t.Fatalf("New(Config{}) = %v", err)
	}
	if n.cfg.Name == "" || n.cfg.DataDir != "chatd-data" || n.cfg.Logger == nil || !n.opts.DontListen {
		t.Errorf("zero config not filled: %+v", n.cfg)
	}
	// Clustering without JetStream needs no peers.
	c := base()
	c.JetStream, c.ClientListen, c.ClusterListen = false, "127.0.0.1:0", "127.0.0.1:0"
	if _, err := New(c); err != nil {
		t.Errorf("cluster without JetStream and peers: %v", err)
	}
}

func TestRouteURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nats1", "nats-route://nats1:6222"},
		{"nats1:7000", "nats-route://nats1:7000"},
		{" 10.0.0.2 ", "nats-route://10.0.0.2:6222"},
		{"nats-route://nats1:6222", "nats-route://nats1:6222"},
		{"nats-route://nats1", "nats-route://nats1:6222"},
		{"nats://10.0.0.2:7000/", "nats://10.0.0.2:7000"},
		{"::1", "nats-route://[::1]:6222"},
		{"[::1]", "nats-route://[::1]:6222"},
		{"[fd00::2]:7000", "nats-route://[fd00::2]:7000"},
	}
	for _, tt := range tests {
		u, err := routeURL(tt.in)
		if err != nil || u.String() != tt.want {
			t.Errorf("routeURL(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
		}
	}
	for _, bad := range []string{"", " ", "a:b:c", "host:0", "host:70000", "host:x", "nats-route://", "nats-route://h:1/path", "a b"} {
		if u, err := routeURL(bad); err == nil {
			t.Errorf("routeURL(%q) = %v, want error", bad, u)
		}
	}
}

func TestSanitizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"host", "host"},
		{"my-host.local", "my-host.local"},
		{"Bob's MacBook", "Bob-s-MacBook"},
		{"  ", "chatd"},
		{"", "chatd"},
		{"héllo", "h-llo"},
	}
	for _, tt := range tests {
		if got := sanitizeName(tt.in); got != tt.want {
			t.Errorf("sanitizeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// recordHandler keeps every record it is given.
type recordHandler struct {
	level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

func TestNatsLogger(t *testing.T) {
	h := &recordHandler{level: LevelTrace}
	var fatal string
	l := &natsLogger{log: slog.New(h), onFatal: func(m string) { fatal = m }}
	if d, tr := l.flags(); !d || !tr {
		t.Errorf("flags = %v, %v; want both on at LevelTrace", d, tr)
	}
	l.Noticef("n %d", 1)
	l.Warnf("w %d", 2)
	l.Errorf("e %d", 3)
	l.Fatalf("f %d", 4)
	l.Debugf("d %d", 5)
	l.Tracef("t %d", 6)
	want := []struct {
		level slog.Level
		msg   string
		trace bool
	}{
		{slog.LevelDebug, "n 1", false}, {slog.LevelWarn, "w 2", false}, {slog.LevelError, "e 3", false},
		{slog.LevelError, "f 4", false}, {slog.LevelDebug, "d 5", false}, {slog.LevelDebug, "t 6", true},
	}
	if len(h.recs) != len(want) {
		t.Fatalf("got %d records, want %d", len(h.recs), len(want))
	}
	for i, w := range want {
		r := h.recs[i]
		trace := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "trace" {
				trace = a.Value.Bool()
			}
			return true
		})
		if r.Level != w.level || r.Message != w.msg || trace != w.trace {
			t.Errorf("record %d = %v %q trace=%v; want %v %q trace=%v", i, r.Level, r.Message, trace, w.level, w.msg, w.trace)
		}
	}
	if fatal != "f 4" {
		t.Errorf("onFatal got %q", fatal)
	}

	info := &natsLogger{log: slog.New(&recordHandler{level: slog.LevelInfo})}
	if d, tr := info.flags(); d || tr {
		t.Errorf("flags at info = %v, %v; want off", d, tr)
	}
}

func TestThreeNodeCluster(t *testing.T) {
	start := time.Now()
	ports := freePorts(t, 3)
	// The same peer list for every node, in the three accepted forms; each
	// node finds itself in it and skips that route.
	peers := []string{
		fmt.Sprintf("127.0.0.1:%d", ports[0]),
		fmt.Sprintf("nats-route://127.0.0.1:%d", ports[1]),
		fmt.Sprintf("nats://127.0.0.1:%d", ports[2]),
	}
	nodes := make([]*Node, 3)
	for i := range nodes {
		cfg := testConfig(t, fmt.Sprintf("n%d", i+1))
		cfg.ClientListen = "127.0.0.1:0"
		cfg.ClusterName = "test"
		cfg.ClusterListen = fmt.Sprintf("127.0.0.1:%d", ports[i])
		cfg.Peers = peers
		nodes[i] = mustStart(t, cfg)
	}

	checkFor(t, 10*time.Second, func() error {
		for _, n := range nodes {
			// NumRoutes counts pooled connections (3 per peer by
			// default); NumRemotes counts peers.
			if got := n.Server().NumRemotes(); got != 2 {
				return fmt.Errorf("%s has %d remotes (%d route conns), want 2", n.Name(), got, n.Server().NumRoutes())
			}
		}
		return nil
	})
	t.Logf("routes up after %s", time.Since(start).Round(time.Millisecond))

	checkFor(t, 15*time.Second, func() error {
		for _, n := range nodes {
			s := n.Server()
			if s.JetStreamIsLeader() {
				if p := s.JetStreamClusterPeers(); len(p) != 3 {
					return fmt.Errorf("meta leader %s sees peers %v", n.Name(), p)
				}
				return nil
			}
		}
		return errors.New("no JetStream meta leader")
	})
	t.Logf("meta leader after %s", time.Since(start).Round(time.Millisecond))
	checkFor(t, 10*time.Second, func() error {
		for _, n := range nodes {
			if err := n.Ready(); err != nil {
				return fmt.Errorf("%s: %w", n.Name(), err)
			}
		}
		return nil
	})

	nc, err := nats.Connect(nodes[2].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.StreamInfo
	checkFor(t, 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		s, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "HISTORY", Subjects: []string{"chat.history.>"}, Replicas: 3,
		})
		if err != nil {
			return err
		}
		info, err = s.Info(ctx)
		return err
	})
	if info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster info = %+v, want a leader and 2 replicas", info.Cluster)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Publish(ctx, "chat.history.lobby", []byte("hi")); err != nil {
		t.Fatalf("publish to R3 stream: %v", err)
	}
	t.Logf("R3 stream (leader %s) after %s", info.Cluster.Leader, time.Since(start).Round(time.Millisecond))
}

// checkFor polls until a condition holds (testkit.CheckFor).
var checkFor = testkit.CheckFor

// freePorts picks ports outside the ephemeral range (testkit.FreePorts).
var freePorts = testkit.FreePorts
