package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
)

// "Connected to server!", a WebSocket welcome and the reply to /join are a
// promise: a line published to the room after the client has read it
// reaches the client, even when the client is the first member of the room
// on its gateway (whose subscription to the room is made by that join).
func TestJoinPromise(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	fast := []string{"--nats", ns.ClientURL(), "--rate", "100000", "--burst", "100000", "--history", "0"}
	g1 := mustRunMain(t, fast...)
	g2 := mustRunMain(t, fast...)
	a1, a2 := g1.ChatAddr().String(), g2.ChatAddr().String()
	alice := join(t, a1, "alice")
	const tries = 40
	deadline := time.Now().Add(20 * time.Second)

	t.Run("tcp", func(t *testing.T) {
		for i := range tries {
			nick := fmt.Sprintf("tcp%d", i)
			c := dial(t, a2)
			c.expectName()
			c.send(nick + "\n")
			c.nick = nick
			c.expect("Connected to server!")
			line := fmt.Sprintf("to %s", nick)
			alice.send(line + "\n")
			c.expectWithin(3*time.Second, "alice: "+line, func(s string) bool { return s == "alice: "+line })
			c.send("/quit\n")
			alice.expect(nick + " left!")
			if time.Now().After(deadline) {
				break
			}
		}
	})
	t.Run("join", func(t *testing.T) {
		bob := join(t, a2, "bob")
		for i := range tries {
			room := fmt.Sprintf("r%d", i)
			alice.send("/join " + room + "\n")
			alice.expect("alice joined!")
			bob.send("/join " + room + "\n")
			bob.expect("bob joined!")
			line := "in " + room
			alice.send(line + "\n")
			bob.expectWithin(3*time.Second, "alice: "+line, func(s string) bool { return s == "alice: "+line })
			if time.Now().After(deadline) {
				break
			}
		}
		bob.send("/quit\n")
		alice.send("/join lobby\n")
		alice.expect("alice joined!")
	})
	t.Run("websocket", func(t *testing.T) {
		for i := range tries {
			nick := fmt.Sprintf("web%d", i)
			w := wsDial(t, g2)
			w.nick = nick
			w.send(map[string]any{"type": "hello", "v": 1, "nick": nick})
			w.expectType("welcome")
			line := "to " + nick
			alice.send(line + "\n")
			w.expect("alice: "+line, func(m wsMsg) bool { return m.Type == "event" && m.Nick == "alice" && m.Text == line })
			w.c.CloseNow()
			alice.expect(nick + " left!")
			if time.Now().After(deadline) {
				break
			}
		}
	})
}

// A gateway pointed at a NATS server without JetStream refuses to start,
// at once, with one line that says how to enable it.
func TestGatewayRefusesNoJetStream(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{NoJetStream: true})
	checkRefusesNoJetStream(t, ns.ClientURL())
}

func checkRefusesNoJetStream(t *testing.T, url string) {
	t.Helper()
	m := NewMain(RoleGateway)
	m.Stdout, m.Stderr = io.Discard, &testLog{t: t}
	if err := m.ParseFlags([]string{"--nats", url, "--listen", "127.0.0.1:0", "--http", ""}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	start := time.Now()
	err := m.Run(ctx)
	m.Close()
	if err == nil {
		t.Fatal("Run succeeded on a NATS server without JetStream")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "nats-server -js") || !strings.Contains(msg, "chatd broker") {
		t.Errorf("refusal %q: want one line naming nats-server -js and chatd broker", msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused after %v, want at once", d)
	}
}
