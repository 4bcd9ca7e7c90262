package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/chatd/chatd/cluster"
	"github.com/chatd/chatd/internal/testkit"
)

// busSecret is a cluster secret for tests.
const busSecret = "a test secret of some length"

// runRole parses args for role and runs it, returning the logs and Run's
// error; the node is closed when the test ends.
func runRole(t *testing.T, role Role, args ...string) (*Main, *testkit.Output, error) {
	t.Helper()
	m := NewMain(role)
	logs := &testkit.Output{}
	m.Stdout, m.Stderr = &strings.Builder{}, logs
	if role.runsNode() {
		args = append([]string{"--data", t.TempDir()}, args...)
	}
	if role.runsGateway() {
		args = append([]string{"--listen", "127.0.0.1:0", "--http", ""}, args...)
	}
	if err := m.ParseFlags(args); err != nil {
		t.Fatalf("ParseFlags: %v", err)
	}
	err := m.Run(t.Context())
	t.Cleanup(func() { m.Close() })
	return m, logs, err
}

// Every way of opening the embedded NATS server beyond loopback without
// credentials is refused before anything listens, with one line naming
// what to set.
func TestOpenBusRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		role Role
		args []string
		open string
	}{
		{"broker defaults", RoleBroker, []string{"--peers", "b1,b2,b3"}, "clients on :4222, routes on :6222"},
		{"broker on 0.0.0.0", RoleBroker, []string{"--nats-listen", "0.0.0.0:0", "--cluster-listen", ""}, "clients on 0.0.0.0:0"},
		{"broker routes beyond loopback", RoleBroker, []string{"--nats-listen", "127.0.0.1:0",
			"--cluster-listen", "0.0.0.0:0", "--peers", "127.0.0.1:1"}, "routes on 0.0.0.0:0"},
		{"single --nats-listen", RoleSingle, []string{"--nats-listen", "0.0.0.0:0"}, "clients on 0.0.0.0:0"},
		{"single --peers", RoleSingle, []string{"--peers", "127.0.0.1:1,127.0.0.1:2"}, "routes on :6222"},
		{"a user without a password", RoleBroker, []string{"--nats-user", "chatd", "--cluster-listen", ""}, "clients on :4222"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, err := runRole(t, tc.role, tc.args...)
			if err == nil {
				t.Fatal("Run succeeded")
			}
			msg := err.Error()
			for _, want := range []string{tc.open, "CHAT_CLUSTER_SECRET", "--cluster-secret", "--insecure-open-bus"} {
				if !strings.Contains(msg, want) {
					t.Errorf("refusal lacks %q: %s", want, msg)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("refusal is more than one line: %q", msg)
			}
			if m.Node != nil {
				t.Error("a node was made")
			}
		})
	}
}

// The process exits 1 with exactly one line on stderr.
func TestOpenBusRefusedProcess(t *testing.T) {
	cmd := exec.Command(chatdBinary(t), "broker", "--data", t.TempDir(), "--peers", "b1,b2,b3")
	cmd.Env = withoutChatEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("chatd broker without a secret: %v, want exit status 1", err)
	}
	out := stderr.String()
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "chatd: ") || !strings.Contains(out, "CHAT_CLUSTER_SECRET") {
		t.Errorf("stderr = %q, want one chatd: line naming CHAT_CLUSTER_SECRET", out)
	}
	t.Logf("%s", out)
}

func withoutChatEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHAT_") {
			env = append(env, kv)
		}
	}
	return env
}

// --insecure-open-bus starts an open bus on every interface and says so in
// a warning each start.
func TestInsecureOpenBus(t *testing.T) {
	m, logs, err := runRole(t, RoleBroker, "--insecure-open-bus", "--nats-listen", "0.0.0.0:0", "--cluster-listen", "")
	if err != nil {
		t.Fatal(err)
	}
	warn := logs.Line("level=WARN")
	for _, want := range []string{"without authentication", "clients on 0.0.0.0:0", "--insecure-open-bus"} {
		if !strings.Contains(warn, want) {
			t.Errorf("warning lacks %q: %q", want, warn)
		}
	}
	nc, err := nats.Connect(m.Node.ClientURL())
	if err != nil {
		t.Fatalf("open bus refused a client: %v", err)
	}
	nc.Close()
}

// A bus on loopback only may stay open, without a warning.
func TestLoopbackBusOpen(t *testing.T) {
	m, logs, err := runRole(t, RoleBroker, "--nats-listen", "127.0.0.1:0", "--cluster-listen", "")
	if err != nil {
		t.Fatal(err)
	}
	if w := logs.Line("level=WARN"); w != "" {
		t.Errorf("unexpected warning: %s", w)
	}
	nc, err := nats.Connect(m.Node.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

func TestClusterSecretFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(file, []byte(busSecret+"\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"too short", []string{"--cluster-secret", "hunter2"}, "cluster secret is too short"},
		{"both", []string{"--cluster-secret", busSecret, "--cluster-secret-file", file}, "not both"},
		{"missing file", []string{"--cluster-secret-file", file + ".missing"}, "cluster secret:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runRole(t, RoleBroker, append([]string{"--nats-listen", "127.0.0.1:0", "--cluster-listen", ""}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Run = %v, want an error with %q", err, tc.want)
			}
		})
	}
	// The file's secret is the flag's: a gateway with one reaches a broker
	// with the other, and the environment variable works too.
	b, _, err := runRole(t, RoleBroker, "--nats-listen", "127.0.0.1:0", "--cluster-listen", "", "--cluster-secret-file", file)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHAT_CLUSTER_SECRET", busSecret)
	g := mustRunRole(t, RoleGateway, "--nats", b.Node.ClientURL())
	join(t, g.ChatAddr().String(), "envsecret")
}

// chatd secret prints a new secret; --init writes one to a file once.
func TestSecretCommand(t *testing.T) {
	var out, errOut strings.Builder
	if code := runSecret(nil, &out, &errOut); code != 0 {
		t.Fatalf("chatd secret = %d: %s", code, errOut.String())
	}
	s := strings.TrimSuffix(out.String(), "\n")
	if len(s) < 40 || strings.ContainsAny(s, " \n\t") {
		t.Errorf("secret %q", s)
	}
	out.Reset()
	runSecret(nil, &out, &errOut)
	if strings.TrimSpace(out.String()) == s {
		t.Error("two secrets are the same")
	}

	file := filepath.Join(t.TempDir(), "sub", "cluster")
	os.MkdirAll(filepath.Dir(file), 0o700)
	if code := runSecret([]string{"--init", file}, &out, &errOut); code != 0 {
		t.Fatalf("--init = %d: %s", code, errOut.String())
	}
	first, _ := os.ReadFile(file)
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 || len(strings.TrimSpace(string(first))) < 40 {
		t.Fatalf("secret file: %v %v %q", st, err, first)
	}
	if code := runSecret([]string{"--init", file}, &out, &errOut); code != 0 {
		t.Fatalf("second --init = %d: %s", code, errOut.String())
	}
	if again, _ := os.ReadFile(file); !bytes.Equal(again, first) {
		t.Error("a second --init replaced the secret")
	}
	os.WriteFile(file, []byte("short\n"), 0o600)
	if code := runSecret([]string{"--init", file}, &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "too short") {
		t.Errorf("--init over a bad secret = %d: %s", code, errOut.String())
	}
}

// A broker with a secret refuses a raw NATS client without credentials and
// a gateway without the secret, at once and for good.
func TestBusSecretRefusesStrangers(t *testing.T) {
	b, _, err := runRole(t, RoleBroker, "--nats-listen", "127.0.0.1:0", "--cluster-listen", "", "--cluster-secret", busSecret)
	if err != nil {
		t.Fatal(err)
	}
	url := b.Node.ClientURL()
	if nc, err := nats.Connect(url, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected")
	}
	user, pass := cluster.SecretCredentials(busSecret)
	nc, err := nats.Connect(url, nats.UserInfo(user, pass))
	if err != nil {
		t.Fatalf("derived credentials: %v", err)
	}
	nc.Close()
	for _, args := range [][]string{nil, {"--cluster-secret", "another secret of some length"}} {
		_, _, err := runRole(t, RoleGateway, append([]string{"--nats", url}, args...)...)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Errorf("gateway %q: Run = %v, want an authorization error", args, err)
		}
	}
}
