package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

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

// The classic Python tutorial client compares a whole recv() with "NAME",
// answers with its nickname and no newline, and sends "<nick>: <text>"
// without a newline.
func TestClassicClient(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	nc := join(t, addr, "nc")

	classic := dial(t, addr)
	buf := make([]byte, 1024)
	classic.Conn.SetReadDeadline(time.Now().Add(waitFor))
	n, err := classic.Conn.Read(buf)
	if err != nil || string(buf[:n]) != "NAME" {
		t.Fatalf("first recv = %q, %v; want exactly NAME", buf[:n], err)
	}
	classic.Send("pyuser") // no newline: the pause ends it
	classic.Nick = "pyuser"
	classic.Expect("Connected to server!")
	nc.Expect("pyuser joined!")

	classic.Send("pyuser: hello from python")
	nc.Expect("pyuser: hello from python") // the prefix is not doubled
	classic.Expect("pyuser: hello from python")

	nc.Send("hi python\n")
	classic.Expect("nc: hi python")

	// Commands work from the classic client, whose lines all carry its prefix.
	classic.Send("pyuser: /who")
	classic.Expect("*** in lobby (2): nc, pyuser")
}

func TestCommands(t *testing.T) {
	m := mustRunMain(t, "--rate", "1000", "--burst", "1000")
	addr := m.ChatAddr().String()
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.Expect("bob joined!")

	alice.Send("/help\n")
	for _, c := range []string{"/help", "/nick NEW", "/join ROOM", "/rooms", "/who", "/msg NICK TEXT", "/me ACTION", "/quit"} {
		alice.ExpectFunc(c, func(s string) bool { return strings.HasPrefix(s, "*** ") && strings.Contains(s, c) })
	}

	alice.Send("/who\n")
	alice.Expect("*** in lobby (2): alice, bob")

	alice.Send("/me waves\n")
	bob.Expect("* alice waves")

	alice.Send("/msg bob psst\n")
	alice.Expect("*** private to bob: psst")
	bob.Expect("*** private from alice: psst")
	alice.Send("/msg nobody hello\n")
	alice.Expect("ERROR no such nickname: nobody")

	alice.Send("//etc/passwd is a path\n")
	bob.Expect("alice: /etc/passwd is a path")

	alice.Send("/dance\n")
	alice.Expect("ERROR unknown command /dance; try /help")
	alice.Send("/join\n")
	alice.Expect("ERROR usage: /join ROOM")

	alice.Send("/nick bob\n")
	alice.Expect("ERROR nickname bob is taken, choose another")
	alice.Send("/nick al!ce\n")
	alice.ExpectPrefix("ERROR nickname may only contain")
	alice.Send("/nick alicia\n")
	bob.Expect("*** alice is now known as alicia")
	alice.Nick = "alicia"
	alice.Send("hi\n")
	bob.Expect("alicia: hi")
	// The old nickname is free, the new one is taken.
	join(t, addr, "alice").Send("/quit\n")
	bob.Expect("alice left!")

	bob.Send("/nick Bob\n") // only the case changes: the claim is kept
	alice.Expect("*** bob is now known as Bob")
	bob.Nick = "Bob"
	bob.Send("/who\n")
	bob.Expect("*** in lobby (2): alicia, Bob")
	bob.Send("/nick bob\n")
	alice.Expect("*** Bob is now known as bob")
	bob.Nick = "bob"

	alice.Send("/join Dev\n")
	alice.Expect("alicia joined!")
	bob.Expect("alicia left!")
	alice.Send("/join dev\n")
	alice.Expect("*** you are already in dev")
	alice.Send("/who\n")
	alice.Expect("*** in dev (1): alicia")
	bob.Send("/rooms\n")
	bob.Expect("*** rooms: dev (1), lobby (1)")
	bob.Send("/join dev\n")
	alice.Expect("bob joined!")
	bob.Send("in dev now\n")
	alice.Expect("bob: in dev now")
	alice.Send("/join bad.room\n")
	alice.ExpectPrefix("ERROR room")
}

func TestNicknameRules(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	holder := join(t, addr, "Alice")

	c := dial(t, addr)
	c.ExpectName()
	c.Send("alice\n") // taken, case-insensitively
	c.Expect("ERROR nickname alice is taken, choose another")
	c.ExpectName() // NAME again, alone in its own write
	c.Send("\n")   // empty
	c.ExpectPrefix("ERROR nickname must be")
	c.ExpectName()
	c.Send("bad nick!\n")
	got := c.ExpectClosed()
	if !strings.HasPrefix(got, "ERROR ") || !strings.Contains(got, "too many attempts") {
		t.Errorf("third refusal: got %q", got)
	}
	// The holder was not touched, and the room never heard of the refused client.
	lines := holder.Sync()
	for _, l := range lines {
		if strings.Contains(l, "joined!") || strings.Contains(l, "left!") {
			t.Errorf("room heard of a refused client: %q", l)
		}
	}

	// A refused-then-accepted client sees NAME as a read of its own.
	c = dial(t, addr)
	c.ExpectName()
	c.Send("Alice")
	buf := make([]byte, 1024)
	for _, want := range []string{"ERROR nickname Alice is taken, choose another\n", "NAME"} {
		c.Conn.SetReadDeadline(time.Now().Add(waitFor))
		n, err := c.Conn.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("recv = %q, %v; want %q", buf[:n], err, want)
		}
	}
	c.Send("Alice2")
	c.Nick = "Alice2"
	c.Expect("Connected to server!")
}

func TestHandshakeTimeout(t *testing.T) {
	m := mustRunMain(t, "--handshake-timeout", "300ms")
	c := dial(t, m.ChatAddr().String())
	c.ExpectName()
	if got := c.ExpectClosed(); got != "ERROR no nickname received in time, closing\n" {
		t.Errorf("got %q", got)
	}
	join(t, m.ChatAddr().String(), "fresh")
}

func TestBadInput(t *testing.T) {
	m := mustRunMain(t, "--max-line", "128", "--rate", "1000", "--burst", "1000")
	addr := m.ChatAddr().String()
	eve := join(t, addr, "eve")
	bob := join(t, addr, "bob")
	eve.Expect("bob joined!")

	cases := []struct {
		name, send, want string
	}{
		{"clear screen and title", "\x1b[2J\x1b[Hhi\x07 there\x1b]0;pwned\x07\n", "eve: hi there"},
		{"backspace overwrite", "evil\b\b\b\bgood\n", "eve: evilgood"},
		{"invalid UTF-8", "caf\xe9 ok\n", "eve: caf\uFFFD ok"},
		{"NUL and controls", "a\x00b\x01c\x7fd\n", "eve: abcd"},
		{"carriage return inside", "fake\rreal\n", "eve: fakereal"},
		{"telnet negotiation", "\xff\xfb\x01\xff\xfd\x03telnet\r\n", "eve: telnet"},
		{"telnet CR NUL", "crnul\r\x00", "eve: crnul"},
		{"bidi override", "abc\u202edef\n", "eve: abcdef"},
		{"unicode kept", "héllo wörld ✓\n", "eve: héllo wörld ✓"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eve.Send(tc.send)
			bob.Expect(tc.want)
		})
	}

	t.Run("overlong line", func(t *testing.T) {
		eve.Send(strings.Repeat("x", 300) + "\nafter\n")
		eve.Expect("ERROR line too long (limit 128 bytes); the rest of it was dropped")
		lines := bob.Expect("eve: after")
		for _, l := range lines {
			if strings.Contains(l, "xxx") {
				t.Errorf("part of an overlong line reached another client: %q", l)
			}
		}
	})
	t.Run("binary garbage", func(t *testing.T) {
		garbage := make([]byte, 2000)
		for i := range garbage {
			garbage[i] = byte(i*7 + i/3)
		}
		eve.Send(string(garbage) + "\n")
		eve.Send("still here\n")
		for _, l := range bob.Expect("eve: still here") {
			for _, r := range l {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
					t.Fatalf("control character %U reached another client in %q", r, l)
				}
			}
		}
	})
	t.Run("empty lines ignored", func(t *testing.T) {
		eve.Send("\n\r\n   \n")
		for _, l := range bob.Sync() {
			if strings.HasPrefix(l, "eve:") {
				t.Errorf("empty line delivered: %q", l)
			}
		}
	})
	join(t, addr, "fresh").Sync()
}

func TestConnectionLimits(t *testing.T) {
	t.Run("per IP", func(t *testing.T) {
		m := mustRunMain(t, "--max-conns-per-ip", "2")
		addr := m.ChatAddr().String()
		a := join(t, addr, "a")
		b := dial(t, addr)
		b.ExpectName()
		c := dial(t, addr)
		if got := c.ExpectClosed(); got != "ERROR too many connections from your address, close one and try again\n" {
			t.Errorf("got %q", got)
		}
		b.Conn.Close()
		waitSessions(t, m, 1)
		a.Sync()
		join(t, addr, "d")
	})
	t.Run("total", func(t *testing.T) {
		m := mustRunMain(t, "--max-conns", "2")
		addr := m.ChatAddr().String()
		a := join(t, addr, "a")
		b := dial(t, addr)
		b.ExpectName()
		c := dial(t, addr)
		if got := c.ExpectClosed(); got != "ERROR server is full, try again later\n" {
			t.Errorf("got %q", got)
		}
		b.Conn.Close()
		waitSessions(t, m, 1)
		a.Sync()
		join(t, addr, "d")
	})
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

// A client that never reads is disconnected when its queue overflows, and
// everyone else in the room keeps getting every line.
func TestSlowConsumer(t *testing.T) {
	m := mustRunMain(t, "--max-pending", "1048576", "--rate", "1000000", "--burst", "1000000")
	addr := m.ChatAddr().String()
	talker := join(t, addr, "talker")
	reader := join(t, addr, "reader")
	slow := join(t, addr, "slow")
	slow.Conn.(*net.TCPConn).SetReadBuffer(4096)
	reader.Expect("slow joined!")
	talker.Expect("slow joined!")

	// The talker keeps a window of 32 unechoed lines, as a real sender
	// would; 15,000 lines of 1 KB are more than any socket buffers hold.
	const n, window = 15000, 32
	line := strings.Repeat("z", 1000)
	talker.Conn.SetDeadline(time.Time{}) // the run may take a while under -race
	go func() {
		echoes := bufio.NewReader(talker.Conn)
		for i := range n {
			if i >= window {
				if _, err := echoes.ReadString('\n'); err != nil {
					return
				}
			}
			if _, err := fmt.Fprintf(talker.Conn, "%d %s\n", i, line); err != nil {
				return
			}
		}
		io.Copy(io.Discard, echoes)
	}()

	sawLeft := false
	r := bufio.NewReaderSize(reader.Conn, 64<<10)
	for i := 0; i < n; {
		// A stress test: on a loaded machine allow more than waitFor.
		reader.Conn.SetReadDeadline(time.Now().Add(3 * waitFor))
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reader: %v after line %d", err, i)
		}
		switch s = strings.TrimSuffix(s, "\n"); {
		case s == "slow left!":
			sawLeft = true
		case strings.HasPrefix(s, "talker: "):
			if want := fmt.Sprintf("talker: %d %s", i, line); s != want {
				t.Fatalf("reader: line %d is %.40q", i, s)
			}
			i++
		}
	}
	if !sawLeft {
		// Its last line is given up to a second, so its departure may come
		// after the talker's last line.
		reader.R = r
		reader.Expect("slow left!")
	}
	waitSessions(t, m, 2)
	join(t, addr, "fresh")
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
