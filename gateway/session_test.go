package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// Session transcripts: a real Server on 127.0.0.1:0 over the in-memory bus
// (newChatBus), spoken to through raw sockets by the test kit's line
// client, as nc would.

// waitFor is how long a test waits for something that should happen.
const waitFor = testkit.WaitFor

// dial and join connect clients (testkit.Dial, testkit.Join).
var (
	dial = testkit.Dial
	join = testkit.Join
)

// chatServer runs a Server over newChatBus on 127.0.0.1:0 until the test
// ends: DefaultConfig with a short line pause, as chatd's own tests run it,
// changed by set (if not nil). It returns the server and its address.
func chatServer(t testing.TB, set func(*Config)) (*Server, string) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.LinePause = 50 * time.Millisecond
	if set != nil {
		set(&cfg)
	}
	srv, err := New(cfg, newChatBus())
	if err != nil {
		t.Fatal(err)
	}
	return srv, serveTCP(t, srv)
}

// serveTCP serves srv's classic port on 127.0.0.1:0 until the test ends,
// and returns the address.
func serveTCP(t testing.TB, srv *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ln.Addr().String()
}

// waitSessions waits until srv has want sessions.
func waitSessions(t testing.TB, srv *Server, want int) {
	t.Helper()
	testkit.CheckFor(t, waitFor, func() error {
		if n := srv.Sessions(); n != want {
			return fmt.Errorf("%d sessions, want %d", n, want)
		}
		return nil
	})
}

// The classic Python tutorial client compares a whole recv() with "NAME",
// answers with its nickname and no newline, and sends "<nick>: <text>"
// without a newline.
func TestClassicClient(t *testing.T) {
	_, addr := chatServer(t, nil)
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
	_, addr := chatServer(t, func(c *Config) { c.Rate, c.Burst = 1000, 1000 })
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
	_, addr := chatServer(t, nil)
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
	_, addr := chatServer(t, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	c := dial(t, addr)
	c.ExpectName()
	if got := c.ExpectClosed(); got != "ERROR no nickname received in time, closing\n" {
		t.Errorf("got %q", got)
	}
	join(t, addr, "fresh")
}

func TestBadInput(t *testing.T) {
	_, addr := chatServer(t, func(c *Config) { c.MaxLine, c.Rate, c.Burst = 128, 1000, 1000 })
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
		srv, addr := chatServer(t, func(c *Config) { c.MaxConnsPerIP = 2 })
		a := join(t, addr, "a")
		b := dial(t, addr)
		b.ExpectName()
		c := dial(t, addr)
		if got := c.ExpectClosed(); got != "ERROR too many connections from your address, close one and try again\n" {
			t.Errorf("got %q", got)
		}
		b.Conn.Close()
		waitSessions(t, srv, 1)
		a.Sync()
		join(t, addr, "d")
	})
	t.Run("total", func(t *testing.T) {
		srv, addr := chatServer(t, func(c *Config) { c.MaxConns = 2 })
		a := join(t, addr, "a")
		b := dial(t, addr)
		b.ExpectName()
		c := dial(t, addr)
		if got := c.ExpectClosed(); got != "ERROR server is full, try again later\n" {
			t.Errorf("got %q", got)
		}
		b.Conn.Close()
		waitSessions(t, srv, 1)
		a.Sync()
		join(t, addr, "d")
	})
}

// A client that never reads is disconnected when its queue overflows, and
// everyone else in the room keeps getting every line.
func TestSlowConsumer(t *testing.T) {
	srv, addr := chatServer(t, func(c *Config) { c.MaxPending, c.Rate, c.Burst = 1048576, 1000000, 1000000 })
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
	waitSessions(t, srv, 2)
	join(t, addr, "fresh")
}

// A user cannot make another nc user receive a line that reads as the
// server's: nicknames that read as the server are refused, and its actions,
// chat lines and private messages are in classes of their own.
func TestUserCannotForgeServerLines(t *testing.T) {
	_, addr := chatServer(t, func(c *Config) { c.Burst = 50 })
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

// Past Config.QuietRoomSize (--quiet-room-size) members, joins and departures are announced only
// to the newcomer; below it, to everyone.
func TestQuietRoom(t *testing.T) {
	_, addr := chatServer(t, func(c *Config) { c.QuietRoomSize, c.History = 2, 0 })

	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob") // two members: not quiet yet
	alice.Expect("bob joined!")

	carol := join(t, addr, "carol") // three: carol alone hears of it
	carol.Send("hi\n")
	for _, c := range []*testkit.Client{alice, bob} {
		if skipped := c.Expect("carol: hi"); slices.Contains(skipped, "carol joined!") {
			t.Errorf("%s heard carol join a quiet room: %q", c.Nick, skipped)
		}
	}

	carol.Send("/quit\n")
	carol.ExpectClosed()
	bob.Send("still here\n")
	if skipped := alice.Expect("bob: still here"); slices.Contains(skipped, "carol left!") {
		t.Errorf("alice heard carol leave a quiet room: %q", skipped)
	}

	// Back to two members: notices are heard again.
	bob.Send("/quit\n")
	bob.ExpectClosed()
	alice.Expect("bob left!")
	dave := join(t, addr, "dave")
	alice.Expect("dave joined!")
	_ = dave
}

// A negative size turns the policy off.
func TestQuietRoomOff(t *testing.T) {
	_, addr := chatServer(t, func(c *Config) { c.QuietRoomSize, c.History = -1, 0 })
	alice := join(t, addr, "alice")
	for _, n := range []string{"bob", "carol", "dave"} {
		join(t, addr, n)
		alice.Expect(n + " joined!")
	}
}
