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

func TestTwoClientsChat(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.expect("bob joined!")

	alice.send("hello bob\n")
	alice.expect("alice: hello bob") // the sender gets its own line too
	bob.expect("alice: hello bob")
	bob.send("hi alice\r\n")
	alice.expect("bob: hi alice")
	bob.expect("bob: hi alice")
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
	classic.conn.SetReadDeadline(time.Now().Add(waitFor))
	n, err := classic.conn.Read(buf)
	if err != nil || string(buf[:n]) != "NAME" {
		t.Fatalf("first recv = %q, %v; want exactly NAME", buf[:n], err)
	}
	classic.send("pyuser") // no newline: the pause ends it
	classic.nick = "pyuser"
	classic.expect("Connected to server!")
	nc.expect("pyuser joined!")

	classic.send("pyuser: hello from python")
	nc.expect("pyuser: hello from python") // the prefix is not doubled
	classic.expect("pyuser: hello from python")

	nc.send("hi python\n")
	classic.expect("nc: hi python")

	// Commands work from the classic client, whose lines all carry its prefix.
	classic.send("pyuser: /who")
	classic.expect("*** in lobby (2): nc, pyuser")
}

func TestLeftExactlyOnce(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	alice := join(t, addr, "alice")

	for _, how := range []string{"close", "reset", "quit"} {
		t.Run(how, func(t *testing.T) {
			bob := join(t, addr, "bob-"+how)
			alice.expect(bob.nick + " joined!")
			switch how {
			case "close":
				bob.conn.Close()
			case "reset":
				bob.send("half a line") // then an abrupt reset mid-line
				bob.reset()
			case "quit":
				bob.send("/quit see you\n")
				if got := bob.expectClosed(); !strings.Contains(got, "*** bye") {
					t.Errorf("quit: got %q, want a bye line", got)
				}
			}
			alice.expect(bob.nick + " left!")
			lines := alice.sync()
			if n := count(lines, bob.nick+" left!"); n != 0 {
				t.Errorf("left! seen again %d more times", n)
			}
			if how == "reset" && count(lines, bob.nick+": half a line") != 0 {
				t.Error("a line cut by a reset was delivered")
			}
			// The nickname is free again.
			join(t, addr, bob.nick).send("/quit\n")
		})
	}
}

func TestCommands(t *testing.T) {
	m := mustRunMain(t, "--rate", "1000", "--burst", "1000")
	addr := m.ChatAddr().String()
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.expect("bob joined!")

	alice.send("/help\n")
	for _, c := range []string{"/help", "/nick NEW", "/join ROOM", "/rooms", "/who", "/msg NICK TEXT", "/me ACTION", "/quit"} {
		alice.expectFunc(c, func(s string) bool { return strings.HasPrefix(s, "*** ") && strings.Contains(s, c) })
	}

	alice.send("/who\n")
	alice.expect("*** in lobby (2): alice, bob")

	alice.send("/me waves\n")
	bob.expect("* alice waves")

	alice.send("/msg bob psst\n")
	alice.expect("*** private to bob: psst")
	bob.expect("*** private from alice: psst")
	alice.send("/msg nobody hello\n")
	alice.expect("ERROR no such nickname: nobody")

	alice.send("//etc/passwd is a path\n")
	bob.expect("alice: /etc/passwd is a path")

	alice.send("/dance\n")
	alice.expect("ERROR unknown command /dance; try /help")
	alice.send("/join\n")
	alice.expect("ERROR usage: /join ROOM")

	alice.send("/nick bob\n")
	alice.expect("ERROR nickname bob is taken, choose another")
	alice.send("/nick al!ce\n")
	alice.expectPrefix("ERROR nickname may only contain")
	alice.send("/nick alicia\n")
	bob.expect("*** alice is now known as alicia")
	alice.nick = "alicia"
	alice.send("hi\n")
	bob.expect("alicia: hi")
	// The old nickname is free, the new one is taken.
	join(t, addr, "alice").send("/quit\n")
	bob.expect("alice left!")

	bob.send("/nick Bob\n") // only the case changes: the claim is kept
	alice.expect("*** bob is now known as Bob")
	bob.nick = "Bob"
	bob.send("/who\n")
	bob.expect("*** in lobby (2): alicia, Bob")
	bob.send("/nick bob\n")
	alice.expect("*** Bob is now known as bob")
	bob.nick = "bob"

	alice.send("/join Dev\n")
	alice.expect("alicia joined!")
	bob.expect("alicia left!")
	alice.send("/join dev\n")
	alice.expect("*** you are already in dev")
	alice.send("/who\n")
	alice.expect("*** in dev (1): alicia")
	bob.send("/rooms\n")
	bob.expect("*** rooms: dev (1), lobby (1)")
	bob.send("/join dev\n")
	alice.expect("bob joined!")
	bob.send("in dev now\n")
	alice.expect("bob: in dev now")
	alice.send("/join bad.room\n")
	alice.expectPrefix("ERROR room")
}

func TestNicknameRules(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	holder := join(t, addr, "Alice")

	c := dial(t, addr)
	c.expectName()
	c.send("alice\n") // taken, case-insensitively
	c.expect("ERROR nickname alice is taken, choose another")
	c.expectName() // NAME again, alone in its own write
	c.send("\n")   // empty
	c.expectPrefix("ERROR nickname must be")
	c.expectName()
	c.send("bad nick!\n")
	got := c.expectClosed()
	if !strings.HasPrefix(got, "ERROR ") || !strings.Contains(got, "too many attempts") {
		t.Errorf("third refusal: got %q", got)
	}
	// The holder was not touched, and the room never heard of the refused client.
	lines := holder.sync()
	for _, l := range lines {
		if strings.Contains(l, "joined!") || strings.Contains(l, "left!") {
			t.Errorf("room heard of a refused client: %q", l)
		}
	}

	// A refused-then-accepted client sees NAME as a read of its own.
	c = dial(t, addr)
	c.expectName()
	c.send("Alice")
	buf := make([]byte, 1024)
	for _, want := range []string{"ERROR nickname Alice is taken, choose another\n", "NAME"} {
		c.conn.SetReadDeadline(time.Now().Add(waitFor))
		n, err := c.conn.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("recv = %q, %v; want %q", buf[:n], err, want)
		}
	}
	c.send("Alice2")
	c.nick = "Alice2"
	c.expect("Connected to server!")
}

func TestHandshakeTimeout(t *testing.T) {
	m := mustRunMain(t, "--handshake-timeout", "300ms")
	c := dial(t, m.ChatAddr().String())
	c.expectName()
	if got := c.expectClosed(); got != "ERROR no nickname received in time, closing\n" {
		t.Errorf("got %q", got)
	}
	join(t, m.ChatAddr().String(), "fresh")
}

func TestBadInput(t *testing.T) {
	m := mustRunMain(t, "--max-line", "128", "--rate", "1000", "--burst", "1000")
	addr := m.ChatAddr().String()
	eve := join(t, addr, "eve")
	bob := join(t, addr, "bob")
	eve.expect("bob joined!")

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
			eve.send(tc.send)
			bob.expect(tc.want)
		})
	}

	t.Run("overlong line", func(t *testing.T) {
		eve.send(strings.Repeat("x", 300) + "\nafter\n")
		eve.expect("ERROR line too long (limit 128 bytes); the rest of it was dropped")
		lines := bob.expect("eve: after")
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
		eve.send(string(garbage) + "\n")
		eve.send("still here\n")
		for _, l := range bob.expect("eve: still here") {
			for _, r := range l {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
					t.Fatalf("control character %U reached another client in %q", r, l)
				}
			}
		}
	})
	t.Run("empty lines ignored", func(t *testing.T) {
		eve.send("\n\r\n   \n")
		for _, l := range bob.sync() {
			if strings.HasPrefix(l, "eve:") {
				t.Errorf("empty line delivered: %q", l)
			}
		}
	})
	join(t, addr, "fresh").sync()
}

func TestConnectionLimits(t *testing.T) {
	t.Run("per IP", func(t *testing.T) {
		m := mustRunMain(t, "--max-conns-per-ip", "2")
		addr := m.ChatAddr().String()
		a := join(t, addr, "a")
		b := dial(t, addr)
		b.expectName()
		c := dial(t, addr)
		if got := c.expectClosed(); got != "ERROR too many connections from your address, close one and try again\n" {
			t.Errorf("got %q", got)
		}
		b.conn.Close()
		waitSessions(t, m, 1)
		a.sync()
		join(t, addr, "d")
	})
	t.Run("total", func(t *testing.T) {
		m := mustRunMain(t, "--max-conns", "2")
		addr := m.ChatAddr().String()
		a := join(t, addr, "a")
		b := dial(t, addr)
		b.expectName()
		c := dial(t, addr)
		if got := c.expectClosed(); got != "ERROR server is full, try again later\n" {
			t.Errorf("got %q", got)
		}
		b.conn.Close()
		waitSessions(t, m, 1)
		a.sync()
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
	slow.conn.(*net.TCPConn).SetReadBuffer(4096)
	reader.expect("slow joined!")
	talker.expect("slow joined!")

	// The talker keeps a window of 32 unechoed lines, as a real sender
	// would; 15,000 lines of 1 KB are more than any socket buffers hold.
	const n, window = 15000, 32
	line := strings.Repeat("z", 1000)
	talker.conn.SetDeadline(time.Time{}) // the run may take a while under -race
	go func() {
		echoes := bufio.NewReader(talker.conn)
		for i := range n {
			if i >= window {
				if _, err := echoes.ReadString('\n'); err != nil {
					return
				}
			}
			if _, err := fmt.Fprintf(talker.conn, "%d %s\n", i, line); err != nil {
				return
			}
		}
		io.Copy(io.Discard, echoes)
	}()

	sawLeft := false
	r := bufio.NewReaderSize(reader.conn, 64<<10)
	for i := 0; i < n; {
		// A stress test: on a loaded machine allow more than waitFor.
		reader.conn.SetReadDeadline(time.Now().Add(3 * waitFor))
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
		reader.r = r
		reader.expect("slow left!")
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
