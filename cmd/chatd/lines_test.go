package main

import (
	"bufio"
	"fmt"
	"net"
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
