package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// testSecret is long enough for MinSecretLen.
const testSecret = "correct horse battery staple"

func TestIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"[::1]", true},
		{"localhost", true},
		{"LocalHost", true},
		{"localhost.", true},
		{"::ffff:127.0.0.1", true},
		{"", false}, // every interface
		{"0.0.0.0", false},
		{"::", false},
		{"[::]", false},
		{"192.168.1.20", false},
		{"10.0.0.1", false},
		{"fe80::1", false},
		{"203.0.113.9", false},
		{"chat.example.com", false}, // a name could resolve anywhere
		{"localhost.example.com", false},
		{"broker1", false},
	} {
		if got := IsLoopback(tc.host); got != tc.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

// A node whose NATS ports reach beyond loopback refuses to be built
// without credentials, and says which listener is open.
func TestNewRefusesOpenBus(t *testing.T) {
	verify := &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert}
	for _, tc := range []struct {
		name    string
		set     func(*Config)
		refused string // "" when New must succeed
	}{
		{"clients on every interface", func(c *Config) { c.ClientListen = ":4222" }, "clients on :4222"},
		{"clients on 0.0.0.0", func(c *Config) { c.ClientListen = "0.0.0.0:0" }, "clients on 0.0.0.0:0"},
		{"clients on a LAN address", func(c *Config) { c.ClientListen = "192.168.1.20:4222" }, "clients on 192.168.1.20:4222"},
		{"routes on every interface", func(c *Config) {
			c.ClientListen, c.ClusterListen, c.Peers = "127.0.0.1:0", ":6222", []string{"a", "b"}
		}, "routes on :6222"},
		{"both", func(c *Config) {
			c.ClientListen, c.ClusterListen, c.Peers = "[::]:4222", "0.0.0.0:6222", []string{"a"}
		}, "clients on [::]:4222, routes on 0.0.0.0:6222"},
		{"a user without a password", func(c *Config) { c.ClientListen, c.User = ":4222", "chatd" }, "clients on :4222"},
		{"client certificates do not guard routes", func(c *Config) {
			c.ClientListen, c.ClusterListen, c.Peers, c.TLS = ":4222", ":6222", []string{"a"}, verify
		}, "routes on :6222"},

		{"in-process only", func(c *Config) {}, ""},
		{"loopback", func(c *Config) {
			c.ClientListen, c.ClusterListen, c.Peers = "127.0.0.1:0", "localhost:0", []string{"a"}
		}, ""},
		{"IPv6 loopback", func(c *Config) { c.ClientListen = "[::1]:4222" }, ""},
		{"a secret", func(c *Config) {
			c.ClientListen, c.ClusterListen, c.Peers, c.Secret = ":4222", ":6222", []string{"a"}, testSecret
		}, ""},
		{"a user and password", func(c *Config) {
			c.ClientListen, c.ClusterListen, c.Peers, c.User, c.Password = ":4222", ":6222", []string{"a"}, "chat", "s3cret"
		}, ""},
		{"client certificates, no routes", func(c *Config) { c.ClientListen, c.TLS = ":4222", verify }, ""},
		{"open on purpose", func(c *Config) {
			c.ClientListen, c.ClusterListen, c.Peers, c.InsecureOpen = ":4222", ":6222", []string{"a"}, true
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.set(&cfg)
			_, err := New(cfg)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.refused != "" && !errors.Is(err, ErrOpenBus):
				t.Fatalf("New = %v, want ErrOpenBus", err)
			case tc.refused != "" && !strings.Contains(err.Error(), tc.refused):
				t.Fatalf("New = %q, want it to name %q", err, tc.refused)
			}
		})
	}
}

func TestNewSecretRules(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Secret = "short"
	if _, err := New(cfg); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short secret: New = %v, want ErrConfig naming the minimum", err)
	}
	cfg.Secret, cfg.User, cfg.Password = testSecret, SecretUser, "x"
	if _, err := New(cfg); !errors.Is(err, ErrConfig) {
		t.Errorf("User %q beside a secret: New = %v, want ErrConfig", SecretUser, err)
	}
}

// Client and route credentials are derived from the secret, differ from
// each other and from the secret, and change with it.
func TestSecretCredentials(t *testing.T) {
	u, p := SecretCredentials(testSecret)
	ru, rp := routeCredentials(testSecret)
	_, p2 := SecretCredentials(testSecret + "!")
	if u != SecretUser || u == ru || p == rp || p == testSecret || p == p2 || len(p) != 64 {
		t.Errorf("client %q/%q, route %q/%q, other secret %q", u, p, ru, rp, p2)
	}
	if _, again := SecretCredentials(testSecret); again != p {
		t.Error("the derivation is not stable")
	}
}

// With a secret, a NATS client without credentials is refused; with the
// derived ones it connects, and so does the in-process connection.
func TestSecretClientAuth(t *testing.T) {
	cfg := testConfig(t, "auth")
	cfg.ClientListen = "127.0.0.1:0"
	cfg.Secret = testSecret
	n := mustStart(t, cfg)

	if nc, err := nats.Connect(n.ClientURL(), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected")
	} else if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("no credentials: %v, want an authorization error", err)
	}
	if nc, err := nats.Connect(n.ClientURL(), nats.UserInfo(SecretUser, testSecret), nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("the raw secret was accepted as a password")
	}
	user, pass := SecretCredentials(testSecret)
	for name, url := range map[string]string{"socket": n.ClientURL(), "in-process": ""} {
		opts := []nats.Option{nats.UserInfo(user, pass)}
		if url == "" {
			opts = append(opts, nats.InProcessServer(n))
		}
		nc, err := nats.Connect(url, opts...)
		if err != nil {
			t.Fatalf("%s with the derived credentials: %v", name, err)
		}
		nc.Close()
	}
}

// startRouted starts a node without JetStream routed to peers, with secret,
// logging to h.
func startRouted(t *testing.T, name, listen, secret string, peers []string, h *recordHandler) *Node {
	cfg := testConfig(t, name)
	cfg.JetStream = false
	cfg.ClientListen = "127.0.0.1:0"
	cfg.ClusterName = "auth"
	cfg.ClusterListen = listen
	cfg.Peers = peers
	cfg.Secret = secret
	if h != nil {
		cfg.Logger = slog.New(h)
	}
	return mustStart(t, cfg)
}

// Two nodes with the same secret form a cluster; a node with another
// secret (or none) is refused as a route by both sides.
func TestSecretRoutes(t *testing.T) {
	ports := freePorts(t, 3)
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	peers := []string{addr(0), addr(1), addr(2)}
	h := &recordHandler{level: slog.LevelDebug}
	a := startRouted(t, "a", addr(0), testSecret, peers, h)
	b := startRouted(t, "b", addr(1), testSecret, peers, nil)
	stranger := startRouted(t, "stranger", addr(2), "another secret of some length", peers, nil)

	// The stranger tries a's route port and is refused.
	checkFor(t, 10*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, r := range h.recs {
			if strings.Contains(r.Message, "authentication error") && strings.Contains(r.Message, routeUser) {
				return nil
			}
		}
		return errors.New("a logged no refused route yet")
	})
	// a and b are routed to each other and the stranger to no one. (A
	// refused attempt may show as a remote for the moment it lasts: the
	// stranger retries every second.)
	checkFor(t, 10*time.Second, func() error {
		for _, n := range []*Node{a, b, stranger} {
			want := 1
			if n == stranger {
				want = 0
			}
			if got := n.Server().NumRemotes(); got != want {
				return fmt.Errorf("%s has %d remotes, want %d", n.Name(), got, want)
			}
		}
		return nil
	})

	// Messages cross the cluster between a's and b's clients only.
	user, pass := SecretCredentials(testSecret)
	sub, err := nats.Connect(b.ClientURL(), nats.UserInfo(user, pass))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan string, 1)
	sub.Subscribe("x", func(m *nats.Msg) { got <- string(m.Data) })
	sub.Flush()
	pub, err := nats.Connect(a.ClientURL(), nats.UserInfo(user, pass))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	checkFor(t, 5*time.Second, func() error {
		pub.Publish("x", []byte("across"))
		select {
		case s := <-got:
			if s == "across" {
				return nil
			}
		case <-time.After(50 * time.Millisecond):
		}
		return errors.New("no message across the routes")
	})
}

// Starting open on purpose binds every interface and works; the node
// reports which listeners are open.
func TestInsecureOpen(t *testing.T) {
	cfg := testConfig(t, "open")
	cfg.JetStream = false
	cfg.ClientListen = "0.0.0.0:0"
	cfg.InsecureOpen = true
	n := mustStart(t, cfg)
	if got := cfg.OpenListeners(); len(got) != 1 || got[0] != "clients on 0.0.0.0:0" {
		t.Errorf("OpenListeners = %q", got)
	}
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := n.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v", err)
	}
}
