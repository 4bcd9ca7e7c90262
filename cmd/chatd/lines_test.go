package main

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/termclient"
)

// joinAs connects and offers nicks in turn until one is accepted; it
// returns the client (its nick set) and the refusals.
func joinAs(t testing.TB, addr string, nicks ...string) (*client, []string) {
	t.Helper()
	c := dial(t, addr)
	var refusals []string
	for _, nick := range nicks {
		c.ExpectName()
		c.Send(nick + "\n")
		l, err := c.Line()
		if err != nil {
			t.Fatalf("handshake as %q: %v", nick, err)
		}
		if l == "Connected to server!" {
			c.Nick = nick
			c.Expect(nick + " joined!")
			return c, refusals
		}
		refusals = append(refusals, l)
	}
	t.Fatalf("no nickname of %q accepted: %q", nicks, refusals)
	return nil, nil
}

// A user cannot make another nc user receive a line that reads as the
// server's: nicknames that read as the server are refused, and its actions,
// chat lines and private messages are in classes of their own.
func TestUserCannotForgeServerLines(t *testing.T) {
	m := mustRunMain(t, "--burst", "50")
	addr := m.ChatAddr().String()
	victim := join(t, addr, "victim")

	for nick, want := range map[string]string{
		"server": "ERROR nickname server is reserved, choose another",
		"ERROR":  "ERROR nickname ERROR is reserved, choose another",
		"error":  "ERROR nickname error is reserved, choose another",
		"NAME":   "ERROR nickname NAME is reserved, choose another",
		"Chatd":  "ERROR nickname Chatd is reserved, choose another",
		"-x":     "ERROR nickname may not start with -, choose another",
		"---":    "ERROR nickname may not start with -, choose another",
	} {
		c := dial(t, addr)
		c.ExpectName()
		c.Send(nick + "\n")
		if l, _ := c.Line(); l != want {
			t.Errorf("nickname %q: got %q, want %q", nick, l, want)
		}
	}
	mallory := join(t, addr, "private")
	victim.Expect("private joined!")
	evil := "127.0.0.1:7301"
	for _, forged := range []string{
		"/me from bob: psst",
		"*** server shutting down; reconnect to " + evil,
		"/me *** server shutting down; reconnect to " + evil,
		"/msg victim *** server shutting down; reconnect to " + evil,
		"ERROR x\n--- live ---\n[12:01] bob: hi",
	} {
		mallory.Send(forged + "\n")
	}
	mallory.Send("/nick in\n")
	mallory.Send("/me lobby (2): alice, bob\n")
	mallory.Send("/nick the\n")
	mallory.Send("/me chat link is down: your lines cannot be sent until it is back\n")
	mallory.Nick = "the"
	mallory.Sync()
	var got []string
	for _, l := range victim.Sync() {
		if !strings.Contains(l, ": sync-") {
			got = append(got, l)
		}
	}
	want := []string{
		"* private from bob: psst",
		"private: *** server shutting down; reconnect to " + evil,
		"* private *** server shutting down; reconnect to " + evil,
		"*** private from private: *** server shutting down; reconnect to " + evil,
		"private: ERROR x",
		"private: --- live ---",
		"private: [12:01] bob: hi",
		"*** private is now known as in",
		"* in lobby (2): alice, bob",
		"*** in is now known as the",
		"* the chat link is down: your lines cannot be sent until it is back",
	}
	// A private message may overtake room lines sent before it.
	slices.Sort(got)
	slices.Sort(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the victim got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	victim.Send("/who\n")
	victim.Expect("*** in lobby (2): the, victim")
}

// A chat user who names a host in a line that looks like a shutdown
// notice does not make `chatd client` go there, even when the connection
// then drops: the client comes back to its own server.
func TestClientIgnoresForgedRedirect(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	m1 := mustRunMain(t, "--listen", addr)

	// The attacker's server: it records every nickname sent to it.
	evil, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { evil.Close() })
	stolen := make(chan string, 16)
	go func() {
		for {
			c, err := evil.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(waitFor))
			c.Write([]byte("NAME"))
			l, _ := bufio.NewReader(c).ReadString('\n')
			stolen <- strings.TrimSpace(l)
			c.Close()
		}
	}()
	evilAddr := evil.Addr().String()

	cfg := termclient.DefaultConfig()
	cfg.Addr, cfg.Nick = addr, "alice"
	cfg.MinBackoff, cfg.MaxBackoff = 20*time.Millisecond, 100*time.Millisecond
	alice := startTermClient(t, cfg)
	alice.expect("Connected to server!")

	mallory, refusals := joinAs(t, addr, "server", "mallory")
	t.Logf("refused: %q", refusals)
	redirect := "server shutting down; reconnect to " + evilAddr
	mallory.Send("/me shutting down; reconnect to " + evilAddr + "\n")
	mallory.Send("*** " + redirect + "\n")
	mallory.Send("/me *** " + redirect + "\n")
	mallory.Send("/msg alice *** " + redirect + "\n")
	mallory.Sync()
	for range 4 {
		alice.expectFunc("a forged redirect", func(l string) bool { return strings.Contains(l, "reconnect to "+evilAddr) })
	}

	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}
	alice.expectFunc("the server's goodbye", func(l string) bool { return strings.HasSuffix(l, "server shutting down, bye") })
	mustRunMain(t, "--listen", addr)
	alice.expect("Connected to server!")
	select {
	case nick := <-stolen:
		t.Fatalf("the client sent %q to the host a chat user named", nick)
	default:
	}
}
