package main

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/chatd/chatd/internal/testkit"
)

// Two users chat through a whole chatd: the gateway, the bus and the
// embedded NATS server (the session transcripts are in gateway's tests).
func TestTwoClientsChat(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.Expect("bob joined!")

	alice.Send("hello bob\n")
	alice.Expect("alice: hello bob") // the sender gets its own line too
	bob.Expect("alice: hello bob")
	bob.Send("hi alice\r\n")
	alice.Expect("bob: hi alice")
	bob.Expect("bob: hi alice")
}

// A departure is announced once, however the client goes. It runs over the
// real bus, where the gateway and the bus's presence may both announce it.
func TestLeftExactlyOnce(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	alice := join(t, addr, "alice")

	for _, how := range []string{"close", "reset", "quit"} {
		t.Run(how, func(t *testing.T) {
			bob := join(t, addr, "bob-"+how)
			alice.Expect(bob.Nick + " joined!")
			switch how {
			case "close":
				bob.Conn.Close()
			case "reset":
				bob.Send("half a line") // then an abrupt reset mid-line
				bob.Reset()
			case "quit":
				bob.Send("/quit see you\n")
				if got := bob.ExpectClosed(); !strings.Contains(got, "*** bye") {
					t.Errorf("quit: got %q, want a bye line", got)
				}
			}
			alice.Expect(bob.Nick + " left!")
			lines := alice.Sync()
			if n := count(lines, bob.Nick+" left!"); n != 0 {
				t.Errorf("left! seen again %d more times", n)
			}
			if how == "reset" && count(lines, bob.Nick+": half a line") != 0 {
				t.Error("a line cut by a reset was delivered")
			}
			// The nickname is free again.
			join(t, addr, bob.Nick).Send("/quit\n")
		})
	}
}

func waitSessions(t *testing.T, m *Main, want int) {
	t.Helper()
	checkFor(t, waitFor, func() error {
		if n := m.Gateway.Sessions(); n != want {
			return fmt.Errorf("%d sessions, want %d", n, want)
		}
		return nil
	})
}

// chatd tells the person who started it how others join.
func TestJoinInstructions(t *testing.T) {
	for _, tc := range []struct {
		listen string
		want   []string
	}{
		{"127.0.0.1:0", []string{"nc 127.0.0.1 ", "<- advertised", "Browsers open http://127.0.0.1:", "Only this machine can join"}},
		{"127.0.0.1:0 --advertise 192.168.7.9", []string{"nc 192.168.7.9 ", "<- advertised",
			"forward TCP port", "to 192.168.7.9:", "nc <your public IP> "}},
	} {
		m := NewMain(RoleSingle)
		var out strings.Builder
		lw := &testLog{t: t}
		m.Stdout, m.Stderr = &out, lw
		args := append([]string{"--data", t.TempDir(), "--http", "127.0.0.1:0", "--listen"}, strings.Fields(tc.listen)...)
		if err := m.ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		if err := m.Run(t.Context()); err != nil {
			t.Fatal(err)
		}
		m.Close()
		lw.stop()
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("--listen %s: output lacks %q:\n%s", tc.listen, w, out.String())
			}
		}
	}
}

func TestFlagsAndEnvironment(t *testing.T) {
	t.Setenv("CHAT_MAX_CONNS", "7")
	t.Setenv("CHAT_HISTORY", "3")
	m := NewMain(RoleSingle)
	m.Stderr = io.Discard
	if err := m.ParseFlags([]string{"--history", "5"}); err != nil {
		t.Fatal(err)
	}
	if got := m.Config.Gateway.MaxConns; got != 7 {
		t.Errorf("CHAT_MAX_CONNS: MaxConns = %d, want 7", got)
	}
	if got := m.Config.Gateway.History; got != 5 {
		t.Errorf("a flag must win over the environment: History = %d, want 5", got)
	}
	t.Setenv("CHAT_RATE", "fast")
	if err := NewMain(RoleSingle).ParseFlags(nil); err == nil || !strings.Contains(err.Error(), "CHAT_RATE") {
		t.Errorf("a bad CHAT_RATE: err = %v, want one naming the variable", err)
	}
}

// checkFor polls until a condition holds (testkit.CheckFor).
var checkFor = testkit.CheckFor
