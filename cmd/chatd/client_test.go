package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/chatd/chatd/internal/termclient"
	"github.com/chatd/chatd/internal/testca"
	"github.com/chatd/chatd/internal/testkit"
)

// termUser is a person at `chatd client` with its input and output piped:
// it drives the terminal client program, and waits on its output in a
// testkit.Output.
type termUser struct {
	t      testing.TB
	in     *io.PipeWriter
	out    *testkit.Output
	stderr *testkit.Output
	done   chan error
	next   int // output lines already matched
}

// startClientMain runs clientMain(args) (flags, environment, piped mode)
// until the test ends.
func startClientMain(t testing.TB, args ...string) *termUser {
	t.Helper()
	return startTermUser(t, func(ctx context.Context, u *termUser, in io.Reader) error {
		if code := clientMain(ctx, args, in, u.out, u.stderr); code != 0 {
			return fmt.Errorf("exit code %d: %s", code, u.stderr)
		}
		return nil
	})
}

// startTermClient runs termclient.Run(cfg) until the test ends, for
// settings that have no flag (short backoff).
func startTermClient(t testing.TB, cfg termclient.Config) *termUser {
	t.Helper()
	return startTermUser(t, func(ctx context.Context, u *termUser, in io.Reader) error {
		return termclient.Run(ctx, cfg, in, u.out)
	})
}

func startTermUser(t testing.TB, run func(context.Context, *termUser, io.Reader) error) *termUser {
	inR, inW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	u := &termUser{t: t, in: inW, out: &testkit.Output{}, stderr: &testkit.Output{}, done: make(chan error, 1)}
	go func() { u.done <- run(ctx, u, inR) }()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		select {
		case <-u.done:
		case <-time.After(waitFor):
			t.Errorf("the client did not stop")
		}
	})
	return u
}

func (u *termUser) typeLine(line string) {
	u.t.Helper()
	if _, err := io.WriteString(u.in, line+"\n"); err != nil {
		u.t.Fatalf("typing %q: %v", line, err)
	}
}

// expect waits for an output line equal to want, after those matched
// before.
func (u *termUser) expect(want string) {
	u.t.Helper()
	u.expectFunc(want, func(l string) bool { return l == want })
}

func (u *termUser) expectPrefix(prefix string) {
	u.t.Helper()
	u.expectFunc(prefix+"...", func(l string) bool { return strings.HasPrefix(l, prefix) })
}

func (u *termUser) expectFunc(desc string, match func(string) bool) {
	u.t.Helper()
	u.out.WaitUntil(u.t, fmt.Sprintf("client line %q", desc), func(out string) bool {
		lines := strings.Split(out, "\n")
		for i := u.next; i < len(lines)-1; i++ { // the last one is unfinished
			if match(lines[i]) {
				u.next = i + 1
				return true
			}
		}
		return false
	})
}

// wait waits for the client to stop and returns its error.
func (u *termUser) wait() error {
	u.t.Helper()
	select {
	case err := <-u.done:
		u.done <- err // for the cleanup
		return err
	case <-time.After(waitFor):
		u.t.Fatalf("the client did not stop; output:\n%s", u.out)
		return nil
	}
}

// The terminal client chats with an nc user both ways, asks for its
// nickname, shows command replies, and /quit ends it.
func TestClientChatsWithNC(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	bob := join(t, addr, "bob")

	alice := startClientMain(t, addr)
	alice.expect("-!- connected to " + addr)
	alice.expect("-!- choose a nickname")
	alice.typeLine("alice")
	alice.expect("Connected to server!")
	bob.Expect("alice joined!")

	alice.typeLine("hello bob")
	bob.Expect("alice: hello bob")
	alice.expect("alice: hello bob")
	bob.Send("hi alice\n")
	alice.expect("bob: hi alice")

	alice.typeLine("/who")
	alice.expect("*** in lobby (2): alice, bob")
	alice.typeLine("/msg bob psst")
	bob.Expect("*** private from alice: psst")

	alice.typeLine("/quit")
	if err := alice.wait(); err != nil {
		t.Fatalf("client after /quit: %v", err)
	}
	bob.Expect("alice left!")
	if out := alice.out.String(); strings.Contains(out, "\x1b") {
		t.Errorf("escape codes in piped output:\n%q", out)
	}
}

// Piped input is a script: its lines are sent, and at its end the client
// quits once the server has echoed them.
func TestClientScript(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	bob := join(t, addr, "bob")
	bot := startClientMain(t, "--nick", "bot", addr)
	bot.typeLine("line one")
	bot.typeLine("line two")
	bot.in.Close()
	if err := bot.wait(); err != nil {
		t.Fatal(err)
	}
	bot.expect("bot: line one")
	bot.expect("bot: line two")
	bot.expect("*** bye")
	bob.Expect("bot: line one")
	bob.Expect("bot: line two")
	bob.Expect("bot left!")
}

// A refused nickname (from --nick here, via CHAT_NICK) shows the server's
// reason, and the client asks again.
func TestClientNickRefused(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	bob := join(t, addr, "bob")
	t.Setenv("CHAT_NICK", "BOB")

	u := startClientMain(t, addr)
	u.expectPrefix("ERROR nickname BOB is taken")
	u.expect("-!- choose a nickname")
	u.typeLine("robert")
	u.expect("Connected to server!")
	bob.Expect("robert joined!")
	bob.Send("welcome\n")
	u.expect("bob: welcome")
}

// When the server goes away and comes back on the same port, the client
// reconnects by itself with the same nickname.
func TestClientReconnectsAfterRestart(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	m1 := mustRunMain(t, "--listen", addr)

	cfg := termclient.DefaultConfig()
	cfg.Addr, cfg.Nick = addr, "alice"
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	alice := startTermClient(t, cfg)
	alice.expect("Connected to server!")

	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	alice.expect("*** server shutting down, bye")
	alice.expectPrefix("-!- connection to " + addr + " lost")

	mustRunMain(t, "--listen", addr)
	alice.expect("Connected to server!")
	bob := join(t, addr, "bob")
	alice.typeLine("back again")
	bob.Expect("alice: back again")
}

// A gateway that shuts down names another one; the client goes there with
// the same nickname, at once.
func TestClientFollowsRollingRestart(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	a2 := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	g1 := mustRunRole(t, RoleGateway, "--nats", ns.ClientURL())
	mustRunRole(t, RoleGateway, "--nats", ns.ClientURL(), "--listen", a2, "--public-addr", a2)
	bob := join(t, a2, "bob")

	cfg := termclient.DefaultConfig()
	cfg.Addr, cfg.Nick = g1.ChatAddr().String(), "alice"
	cfg.MinBackoff = time.Hour // only the move to the named gateway is immediate
	alice := startTermClient(t, cfg)
	alice.expect("Connected to server!")
	bob.Expect("alice joined!")

	go g1.Close()
	alice.expect("*** server shutting down; reconnect to " + a2)
	alice.expectPrefix("-!- the server is shutting down; trying " + a2)
	alice.expect("-!- connected to " + a2)
	alice.expect("Connected to server!")
	// The old session's "left!" and the new one's "joined!" come from two
	// gateways: either may arrive first.
	left, joined := 0, 0
	bob.ExpectFunc("alice left! and joined!", func(l string) bool {
		left += count([]string{l}, "alice left!")
		joined += count([]string{l}, "alice joined!")
		return left == 1 && joined == 1
	})
	alice.typeLine("moved over")
	bob.Expect("alice: moved over")
}

func TestClientFlags(t *testing.T) {
	t.Setenv("CHAT_RETRIES", "5")
	cfg, opts, err := parseClientFlags([]string{"--nick", "x", "chat.example", "--retries", "2", "--no-color"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "chat.example" || cfg.Nick != "x" || cfg.Retries != 2 || !opts.noColor || cfg.TLS != nil {
		t.Errorf("flags after the host: %+v %+v", cfg, opts)
	}
	if cfg, _, _ := parseClientFlags([]string{"h"}, io.Discard); cfg.Retries != 5 {
		t.Errorf("CHAT_RETRIES: Retries = %d, want 5", cfg.Retries)
	}

	ca := testca.New(t).CertFile(t)
	cfg, _, err = parseClientFlags([]string{"--tls-ca", ca, "h:6000"}, io.Discard)
	if err != nil || cfg.TLS == nil || cfg.TLS.RootCAs == nil || cfg.TLS.InsecureSkipVerify {
		t.Errorf("--tls-ca: %+v, %v", cfg.TLS, err)
	}

	for _, bad := range [][]string{{}, {"a", "b"}, {"--tls-ca", "/nonexistent", "h"}, {"--tls-ca", "/dev/null", "h"}, {"--retries", "x", "h"}, {"a b"}} {
		if _, _, err := parseClientFlags(bad, io.Discard); err == nil {
			t.Errorf("parseClientFlags(%q): no error", bad)
		}
	}

	var stderr bytes.Buffer
	if code := clientMain(context.Background(), []string{"--help"}, nil, io.Discard, &stderr); code != 0 || !strings.Contains(stderr.String(), "CHAT_TLS_CA") {
		t.Errorf("--help: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	if code := clientMain(context.Background(), nil, nil, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "HOST[:PORT]") {
		t.Errorf("no host: exit %d, %q", code, stderr.String())
	}
}

func TestClientColorWanted(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	for _, c := range []struct {
		term, flag bool
		env        map[string]string
		want       bool
	}{
		{true, false, nil, true},
		{false, false, nil, false},                               // a pipe or a file
		{true, true, nil, false},                                 // --no-color
		{true, false, map[string]string{"NO_COLOR": "1"}, false}, // no-color.org
		{true, false, map[string]string{"NO_COLOR": ""}, true},   // set but empty: no effect
		{true, false, map[string]string{"TERM": "dumb"}, false},  // no escapes at all
		{true, false, map[string]string{"TERM": "xterm-256color"}, true},
	} {
		if got := colorWanted(c.term, c.flag, env(c.env)); got != c.want {
			t.Errorf("colorWanted(term=%v, --no-color=%v, %v) = %v", c.term, c.flag, c.env, got)
		}
	}
}

// --tls with a private CA, and --tls-insecure with its warning, against a
// TLS chat port (a plain tls.Listen server speaking the protocol, until
// chatd has its own).
func TestClientTLS(t *testing.T) {
	ca := testca.New(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveClassic(ln)
	caFile := ca.CertFile(t)
	addr := ln.Addr().String()

	u := startClientMain(t, "--resume=false", "--tls-ca", caFile, "--nick", "alice", addr)
	u.expect("-!- connected to " + addr + " (TLS)")
	u.expect("Connected to server!")
	u.typeLine("over tls")
	u.expect("alice: over tls")
	u.typeLine("/quit")
	if err := u.wait(); err != nil {
		t.Fatal(err)
	}

	u = startClientMain(t, "--resume=false", "--tls", "--nick", "alice", addr) // the system CAs do not know it
	if err := u.wait(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}

	u = startClientMain(t, "--resume=false", "--tls-insecure", "--nick", "alice", addr)
	u.expect("Connected to server!")
	if !strings.Contains(u.stderr.String(), "WARNING") {
		t.Errorf("no warning for --tls-insecure: %q", u.stderr)
	}
}

// serveClassic is a minimal server of the classic protocol on ln: NAME,
// "Connected to server!", every line echoed as "<nick>: <line>", /quit.
func serveClassic(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(2 * waitFor))
			r := bufio.NewReader(conn)
			if _, err := io.WriteString(conn, "NAME"); err != nil {
				return // e.g. the client refused the certificate
			}
			nick, err := r.ReadString('\n')
			if err != nil {
				return
			}
			nick = strings.TrimSpace(nick)
			fmt.Fprintf(conn, "Connected to server!\n%s joined!\n", nick)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimSpace(line)
				if isQuitLine(line) {
					io.WriteString(conn, "*** bye\n")
					return
				}
				fmt.Fprintf(conn, "%s: %s\n", nick, line)
			}
		}()
	}
}

func isQuitLine(line string) bool {
	f := strings.Fields(line)
	return len(f) > 0 && strings.EqualFold(f[0], "/quit")
}

// On a terminal the line editor leaves the line typed on the screen
// ("alice> hello there"); the server's echo of it is not shown again.
func TestClientOwnLineOnce(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	bob := join(t, addr, "bob")
	cfg := termclient.DefaultConfig()
	cfg.Addr, cfg.Nick, cfg.Terminal = addr, "alice", true
	alice := startTermClient(t, cfg)
	bob.Expect("alice joined!")
	// Typed once the prompt names her (before, it is "> ").
	alice.expectFunc("the welcome", func(l string) bool { return strings.Contains(l, "Connected to server!") })
	alice.typeLine("hello there")
	bob.Expect("alice: hello there")
	alice.typeLine("/me waves")
	bob.Expect("* alice waves")
	bob.Send("ack\n")
	alice.expectFunc("bob's ack", func(l string) bool { return strings.Contains(l, "bob: ack") })
	out := alice.out.String()
	if strings.Contains(out, "alice: hello there") || strings.Contains(out, "* alice waves") {
		t.Errorf("the server's echo of a typed line was shown:\n%s", out)
	}
	if n := strings.Count(out, "alice> hello there"); n != 1 {
		t.Errorf("the typed line shows %d times:\n%s", n, out)
	}
}

// After a reconnect the room's history already on the screen is not shown
// again; what was said meanwhile is. With positions (the resume extension;
// the gateway reconnected to does not take the resume token, too old for
// its --resume-age, and replays the room's last lines) and without them
// (the last lines matched by their text).
func TestClientHistoryNotRepeated(t *testing.T) {
	for _, resume := range []bool{true, false} {
		t.Run(fmt.Sprintf("resume=%v", resume), func(t *testing.T) {
			ns := clustertest.Start(t, clustertest.Options{})
			a2 := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
			g1 := mustRunRole(t, RoleGateway, "--nats", ns.ClientURL())
			mustRunRole(t, RoleGateway, "--nats", ns.ClientURL(), "--listen", a2, "--public-addr", a2, "--resume-age", "1ms")
			bob := join(t, a2, "bob")

			cfg := termclient.DefaultConfig()
			cfg.Addr, cfg.Nick, cfg.Resume = g1.ChatAddr().String(), "alice", resume
			cfg.MinBackoff = time.Hour // only the move to the named gateway is immediate
			alice := startTermClient(t, cfg)
			bob.Expect("alice joined!")
			bob.Send("one\ntwo\nthree\n")
			alice.expect("bob: three")

			go g1.Close()
			alice.expectPrefix("-!- the server is shutting down; trying " + a2)
			bob.Send("four\n")
			alice.expect("-!- connected to " + a2)
			alice.expectFunc("four", func(l string) bool { return strings.HasSuffix(l, "bob: four") })
			bob.Send("five\n")
			alice.expect("bob: five")
			out := alice.out.String()
			for _, w := range []string{"one", "two", "three", "four", "five"} {
				n := 0
				for _, l := range strings.Split(out, "\n") {
					if strings.HasSuffix(l, "bob: "+w) {
						n++
					}
				}
				if n != 1 {
					t.Errorf("bob's %q shows %d times:\n%s", w, n, out)
				}
			}
		})
	}
}
