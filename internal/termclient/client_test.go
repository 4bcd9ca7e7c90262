package termclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testca"
)

func TestChatAndQuit(t *testing.T) {
	srv := listenFake(t)
	s := start(t, testConfig(srv.addr()))
	s.expect("-!- connected to " + srv.addr())
	c := srv.accept()
	c.send("NAME")
	s.expect("-!- choose a nickname")
	s.typeLine("alice")
	c.expectLine("alice")
	c.Nick = "alice"
	c.send("Connected to server!\nalice joined!\n")
	s.expect("Connected to server!")
	s.expect("alice joined!")

	s.typeLine("hello")
	c.echo("hello")
	s.expect("alice: hello")
	c.send("bob: hi alice\n")
	s.expect("bob: hi alice")

	s.typeLine("")          // empty lines are not sent
	s.typeLine("/QUIT bye") // commands are case-insensitive
	c.expectLine("/QUIT bye")
	c.send("*** bye\n")
	c.Conn.Close()
	if err := s.wait(); err != nil {
		t.Fatalf("Run after /quit = %v, want nil", err)
	}
	if strings.Contains(s.out.String(), "reconnecting") {
		t.Errorf("reconnected after /quit:\n%s", s.out)
	}
}

// The end of the input (a script's last line, Ctrl-D) quits once the lines
// before it are sent.
func TestEndOfInputQuits(t *testing.T) {
	srv := listenFake(t)
	cfg := testConfig(srv.addr())
	cfg.Nick = "alice"
	s := start(t, cfg)
	s.typeLine("one") // typed before the handshake: kept until it is done
	s.typeLine("two")
	s.in.Close()
	c := srv.accept()
	c.handshake()
	c.echo("one")
	c.expectLine("two")
	c.send("bob: interleaved\n")
	c.send("alice: two\n") // only now, with its lines echoed, does it quit
	c.expectLine("/quit")
	c.Conn.Close()
	if err := s.wait(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	s.expect("alice: one")
	s.expect("alice: two")
}

// A refused nickname is shown, and the user is asked again, also when the
// refused one came from the configuration.
func TestNickRefused(t *testing.T) {
	srv := listenFake(t)
	cfg := testConfig(srv.addr())
	cfg.Nick = "alice"
	s := start(t, cfg)
	c := srv.accept()
	c.send("NAME")
	c.expectLine("alice")
	c.send("ERROR nickname alice is taken, choose another\n")
	c.send("NAME")
	s.expect("ERROR nickname alice is taken, choose another")
	s.expect("-!- choose a nickname")
	s.typeLine("  ")     // blank: asked again, nothing sent
	s.typeLine("alice2") // the server must get this one next
	c.expectLine("alice2")
	c.send("Connected to server!\nalice2 joined!\n")
	s.expect("alice2 joined!")
}

// After a drop the client reconnects with the same nickname, and keeps what
// was typed meanwhile.
func TestReconnect(t *testing.T) {
	srv := listenFake(t)
	cfg := testConfig(srv.addr())
	cfg.Nick = "alice"
	s := start(t, cfg)
	c := srv.accept()
	c.handshake()
	s.expect("alice joined!")
	c.Conn.Close() // the server drops the connection
	s.expect("-!- connection to " + srv.addr() + " lost (closed by the server)")
	s.expectFunc("reconnecting notice", func(l string) bool {
		return strings.HasPrefix(l, "-!- reconnecting in 10ms (attempt 1;")
	})

	c2 := srv.accept()
	if nick := c2.handshake(); nick != "alice" {
		t.Fatalf("reconnected as %q, want alice", nick)
	}
	s.expect("-!- connected to " + srv.addr())
	s.typeLine("still here")
	c2.echo("still here")
	s.expect("alice: still here")
}

// Reconnecting backs off and gives up after Retries attempts in a row.
func TestRetriesBound(t *testing.T) {
	srv := listenFake(t)
	cfg := testConfig(srv.addr())
	cfg.Nick = "alice"
	cfg.Retries = 3
	s := start(t, cfg)
	c := srv.accept()
	c.handshake()
	s.expect("alice joined!")
	srv.ln.Close()
	c.Conn.Close()
	err := s.wait()
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("Run = %v, want giving up after 3 attempts", err)
	}
	for i, want := range []string{"10ms (attempt 1 of 3", "20ms (attempt 2 of 3", "40ms (attempt 3 of 3"} {
		s.expectFunc(want, func(l string) bool { return strings.HasPrefix(l, "-!- reconnecting in "+want) })
		if i < 2 {
			s.expectFunc("cannot connect", func(l string) bool { return strings.HasPrefix(l, "-!- cannot connect: ") })
		}
	}
}

func TestBackoff(t *testing.T) {
	c := &client{cfg: Config{MinBackoff: time.Second, MaxBackoff: 30 * time.Second}}
	var got []time.Duration
	for n := 1; n <= 7; n++ {
		got = append(got, c.backoff(n))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("backoff = %v, want 1s doubling to 30s", got)
		}
	}
}

// A server shutting down names other servers; the client goes there at
// once, with the same nickname.
func TestShutdownRedirect(t *testing.T) {
	a, b := listenFake(t), listenFake(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	cfg := testConfig(a.addr())
	cfg.Nick = "alice"
	cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour // only the redirect is immediate
	s := start(t, cfg)
	ca := a.accept()
	ca.handshake()
	ca.send("*** server shutting down; reconnect to " + deadAddr + " or " + b.addr() + "\n")
	ca.Conn.Close()
	s.expect("-!- the server is shutting down; trying " + deadAddr + ", then " + b.addr())

	cb := b.accept()
	if nick := cb.handshake(); nick != "alice" {
		t.Fatalf("redirected as %q, want alice", nick)
	}
	s.expect("-!- connected to " + b.addr())
	s.typeLine("moved")
	cb.echo("moved")
	s.expect("alice: moved")
}

func TestNoNameFromServer(t *testing.T) {
	srv := listenFake(t)
	cfg := testConfig(srv.addr())
	cfg.NameTimeout = 100 * time.Millisecond
	s := start(t, cfg)
	srv.accept() // says nothing
	err := s.wait()
	if err == nil || !strings.Contains(err.Error(), "did not ask for a nickname") || !strings.Contains(err.Error(), "--tls") {
		t.Fatalf("Run = %v, want a hint about the port", err)
	}
}

func TestFirstConnectFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := start(t, testConfig(addr))
	if err := s.wait(); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Run = %v, want the dial error", err)
	}
}

// A server that refuses before NAME (full, shutting down): its reason.
func TestRefusedBeforeName(t *testing.T) {
	srv := listenFake(t)
	s := start(t, testConfig(srv.addr()))
	c := srv.accept()
	c.send("ERROR server is full, try again later\n")
	c.Conn.Close()
	err := s.wait()
	if err == nil || !strings.HasSuffix(err.Error(), ": server is full, try again later") {
		t.Fatalf("Run = %v, want the server's reason", err)
	}
	s.expect("ERROR server is full, try again later")
}

// Control characters and escape sequences from the server never reach the
// user's terminal.
func TestServerControlsNeutralised(t *testing.T) {
	srv := listenFake(t)
	cfg := testConfig(srv.addr())
	cfg.Nick = "alice"
	for _, color := range []bool{false, true} {
		cfg.Color = color
		s := start(t, cfg)
		c := srv.accept()
		c.handshake()
		c.send("mallory: hi\x1b]0;pwned\x07\x1b[2J\x1b[31m there\a\b\r\n")
		c.send("mallory: \u202eevil\u009b1;1H!\n")
		want := "mallory: hi there"
		s.expectFunc(want, func(l string) bool { return strings.Contains(l, want) })
		s.expectFunc("mallory: evil!", func(l string) bool { return strings.Contains(l, "mallory: evil!") })
		out := s.out.String()
		for _, bad := range []string{"\x1b]", "\x1b[2J", "\x1b[31m there", "\a", "\b", "\r", "\u202e", "\u009b", "pwned"} {
			if strings.Contains(out, bad) {
				t.Errorf("color=%v: output has %q:\n%q", color, bad, out)
			}
		}
		s.cancel()
		s.wait()
	}
}

// Colours only when asked; each kind of line styled.
func TestColor(t *testing.T) {
	lines := []string{
		"bob: hi",
		"alice: mine",
		"*** in lobby (2): alice, bob",
		"*** private from bob: psst",
		"--- last 1 lines of lobby ---",
		"[12:01] bob: old",
		"--- live ---",
		"carol joined!",
		"ERROR unknown command /x; try /help",
	}
	srv := listenFake(t)
	for _, color := range []bool{false, true} {
		cfg := testConfig(srv.addr())
		cfg.Nick, cfg.Color = "alice", color
		s := start(t, cfg)
		c := srv.accept()
		c.handshake()
		c.send(strings.Join(lines, "\n") + "\n")
		s.expectFunc("the error", func(l string) bool { return strings.Contains(l, "ERROR unknown command") })
		out := s.out.String()
		if !color {
			if strings.Contains(out, "\x1b") {
				t.Errorf("escape codes without color:\n%q", out)
			}
			for _, l := range lines {
				if !strings.Contains(out, "\n"+l+"\n") {
					t.Errorf("no plain line %q in\n%s", l, out)
				}
			}
		} else {
			for _, want := range []string{
				"\nbob: hi\n", // chat lines stay plain
				"\n" + sgrOwn + "alice: mine" + sgrReset + "\n",
				"\n" + sgrCyan + "*** in lobby (2): alice, bob" + sgrReset + "\n",
				"\n" + sgrMagenta + "*** private from bob: psst" + sgrReset + "\n",
				"\n" + sgrGray + "--- last 1 lines of lobby ---" + sgrReset + "\n",
				"\n" + sgrGray + "[12:01] bob: old" + sgrReset + "\n",
				"\n" + sgrGray + "carol joined!" + sgrReset + "\n",
				"\n" + sgrRed + "ERROR unknown command /x; try /help" + sgrReset + "\n",
				sgrYellow + "-!- connected to ",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("no %q in\n%q", want, out)
				}
			}
		}
		s.cancel()
		s.wait()
	}
}

// /nick changes the nickname used for highlighting and for reconnecting.
func TestNickChangeFollowed(t *testing.T) {
	srv := listenFake(t)
	cfg := testConfig(srv.addr())
	cfg.Nick = "alice"
	s := start(t, cfg)
	c := srv.accept()
	c.handshake()
	s.typeLine("/nick alicia")
	c.expectLine("/nick alicia")
	c.send("*** alice is now known as alicia\n")
	s.expect("*** alice is now known as alicia")
	c.Conn.Close()
	c2 := srv.accept()
	if nick := c2.handshake(); nick != "alicia" {
		t.Fatalf("reconnected as %q, want alicia", nick)
	}
}

func TestTLS(t *testing.T) {
	ca := testca.New(t)
	listenTLS := func(t *testing.T) *fakeServer {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.ServerConfig())
		if err != nil {
			t.Fatal(err)
		}
		return serveFake(t, ln)
	}

	t.Run("trusted", func(t *testing.T) {
		srv := listenTLS(t)
		cfg := testConfig(srv.addr())
		cfg.Nick = "alice"
		cfg.TLS = &tls.Config{RootCAs: ca.Pool}
		s := start(t, cfg)
		c := srv.accept()
		c.handshake()
		s.expect("-!- connected to " + srv.addr() + " (TLS)")
		s.typeLine("secret")
		c.echo("secret")
		s.expect("alice: secret")
		if st := c.Conn.(*tls.Conn).ConnectionState(); !st.HandshakeComplete {
			t.Error("no TLS handshake")
		}
	})

	t.Run("unknown CA", func(t *testing.T) {
		srv := listenTLS(t)
		cfg := testConfig(srv.addr())
		cfg.Nick = "alice"
		cfg.TLS = &tls.Config{RootCAs: x509.NewCertPool()}
		s := start(t, cfg)
		c := srv.accept()
		go c.Conn.(*tls.Conn).Handshake() // fails: the client hangs up
		err := s.wait()
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("Run = %v, want an unknown authority error", err)
		}
	})

	t.Run("by name", func(t *testing.T) { // the host name is checked too
		srv := listenTLS(t)
		_, port, _ := net.SplitHostPort(srv.addr())
		cfg := testConfig("localhost:" + port)
		cfg.Nick = "alice"
		cfg.TLS = &tls.Config{RootCAs: ca.Pool}
		cfg.Dialer = dialerFunc(func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, srv.addr()) // localhost may be ::1
		})
		s := start(t, cfg)
		srv.accept().handshake()
		s.expect("alice joined!")
	})
}

type dialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

// With Terminal set, input goes through x/term's line editor: a prompt,
// editing keys, and incoming lines printed above the prompt.
func TestTerminalMode(t *testing.T) {
	srv := listenFake(t)
	cfg := testConfig(srv.addr())
	cfg.Terminal, cfg.Color = true, true
	s := start(t, cfg)
	c := srv.accept()
	c.send("NAME")
	s.out.WaitUntil(t, "nickname prompt", func(o string) bool { return strings.HasSuffix(o, "nickname: ") })
	s.in.Write([]byte("alixe\x7f\x7fce\r")) // two backspaces
	c.expectLine("alice")
	c.Nick = "alice"
	c.send("Connected to server!\nalice joined!\n")
	s.out.WaitUntil(t, "chat prompt", func(o string) bool { return strings.HasSuffix(o, "alice> ") })

	s.in.Write([]byte("hi bob")) // half typed when bob's line comes
	s.out.WaitUntil(t, "typed text", func(o string) bool { return strings.HasSuffix(o, "alice> hi bob") })
	c.send("bob: hello\n")
	s.out.WaitUntil(t, "bob's line above the prompt, then the prompt and typed text again", func(o string) bool {
		return strings.Contains(o, "bob: hello\r\nalice> hi bob")
	})
	s.in.Write([]byte("\r"))
	c.echo("hi bob")
	// The editor left "alice> hi bob" on the screen: the echo is not shown
	// again. An own line not typed here is, highlighted.
	c.send("alice: from elsewhere\n")
	s.out.WaitUntil(t, "own line highlighted", func(o string) bool {
		return strings.Contains(o, sgrOwn+"alice: from elsewhere"+sgrReset+"\r\n")
	})
	if o := s.out.String(); strings.Contains(o, "alice: hi bob") || strings.Count(o, "alice> hi bob\r\n") != 1 {
		t.Errorf("the typed line is not shown exactly once:\n%s", o)
	}
	s.in.Write([]byte("\x1b[A\r")) // up arrow: the last line again
	c.expectLine("hi bob")
	s.in.Write([]byte{3}) // Ctrl-C ends the client
	c.expectLine("/quit")
	c.Conn.Close()
	if err := s.wait(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestNormalizeAddr(t *testing.T) {
	for in, want := range map[string]string{
		"example.org":      "example.org:5500",
		"example.org:6000": "example.org:6000",
		" 10.0.0.1 ":       "10.0.0.1:5500",
		"::1":              "[::1]:5500",
		"[::1]":            "[::1]:5500",
		"[::1]:7000":       "[::1]:7000",
		"host:":            "host:5500",
	} {
		if got, err := NormalizeAddr(in); got != want || err != nil {
			t.Errorf("NormalizeAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ":5500", "a b", "fe80::1::2"} {
		if got, err := NormalizeAddr(bad); err == nil {
			t.Errorf("NormalizeAddr(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParseRedirect(t *testing.T) {
	got := parseRedirect("*** server shutting down; reconnect to chat2.example:5502 or 10.0.0.3:5500")
	if strings.Join(got, ",") != "chat2.example:5502,10.0.0.3:5500" {
		t.Errorf("got %q", got)
	}
	for _, l := range []string{"*** server shutting down, bye", "* server shutting down; reconnect to evil:1", "bob: *** server shutting down; reconnect to evil:1", "*** private from bob: *** server shutting down; reconnect to evil:1"} {
		if got := parseRedirect(l); got != nil {
			t.Errorf("parseRedirect(%q) = %q, want nil", l, got)
		}
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":                       "plain text",
		"a\tb":                             "a b",
		"\x1b[1;31mred\x1b[0m":             "red",
		"title\x1b]0;x\x07!":               "title!",
		"title\x1b]8;;http://x\x1b\\link":  "titlelink",
		"dcs\x1bPq#0;2;0;0;0\x1b\\end":     "dcsend",
		"bell\a back\b cr\r del\x7f":       "bell back cr del",
		"c1 \u009b2J csi \u0085nel":        "c1  csi nel",
		"bidi \u202etxt.exe\u202c \u2066x": "bidi txt.exe x",
		"bad \xff\xfe utf8":                "bad \ufffd utf8", // one per run of invalid bytes, as on the server
		"esc then é \x1bé":                 "esc then é é",
		"unterminated \x1b]0;rest":         "unterminated ",
		"héllo wörld ✓":                    "héllo wörld ✓",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClassify(t *testing.T) {
	for line, want := range map[string]kind{
		"bob: hi":                    kindChat,
		"Alice: mine":                kindOwn, // the server may keep another case
		"alicex: not mine":           kindChat,
		"bob: alice: not mine":       kindChat,
		"ERROR: a nick called ERROR": kindChat,
		"ERROR line too long":        kindError,
		"* bob waves":                kindAction,
		"* server shutting down":     kindAction,
		"*** server shutting down":   kindNotice,
		"*** in lobby (1): alice":    kindNotice,
		"*** private to bob: x":      kindPrivate,
		"* private to bob: x":        kindAction,
		"-!- connected to x":         kindChat, // never from the server
		"--- live ---":               kindFrame,
		"---: a nick called ---":     kindChat,
		"[12:01] bob: hi":            kindHistory,
		"[Nov 21 12:01] bob: hi":     kindHistory,
		"[x]: a nick called [x]":     kindChat,
		"bob joined!":                kindEvent,
		"bob left!":                  kindEvent,
		"bob: joined!":               kindChat,
		"Connected to server!":       kindEvent,
		"Connected to server!!":      kindChat,
		"alice joined!":              kindEvent,
	} {
		if got := classify(line, "alice"); got != want {
			t.Errorf("classify(%q) = %d, want %d", line, got, want)
		}
	}
}

// After a drop, the server may still hold the nickname for the lost
// connection: the client tries it once more before asking the user.
func TestReconnectNickStillHeld(t *testing.T) {
	srv := listenFake(t)
	cfg := testConfig(srv.addr())
	cfg.Nick = "alice"
	s := start(t, cfg)
	c := srv.accept()
	c.handshake()
	c.Conn.Close()

	c2 := srv.accept()
	for range 2 {
		c2.send("NAME")
		c2.expectLine("alice")
		c2.send("ERROR nickname alice is taken, choose another\n")
	}
	c2.send("NAME")
	s.expect("-!- choose a nickname")
	s.typeLine("alice_")
	c2.expectLine("alice_")
	c2.send("Connected to server!\n")
	s.expect("Connected to server!")
	if n := strings.Count(s.out.String(), "alice may still be held by the lost connection; trying it again"); n != 1 {
		t.Errorf("%d retry notices, want 1:\n%s", n, s.out)
	}
}

// A redirect is followed only when it is genuine: a server notice (which
// no chat user can produce), and the last line before the server closes
// the connection. Otherwise the client reconnects where it was.
func TestRedirectOnlyWhenGenuine(t *testing.T) {
	a, evil := listenFake(t), listenFake(t)
	redirect := "server shutting down; reconnect to " + evil.addr()
	for _, lines := range [][]string{
		{"* " + redirect},                             // an action of a user named server
		{"mallory: *** " + redirect},                  // a chat line
		{"* mallory *** " + redirect},                 // an action
		{"*** private from mallory: *** " + redirect}, // a private message
		{"[12:01] * " + redirect},                     // history
		{"*** " + redirect, "bob: hi"},                // not the last line
	} {
		cfg := testConfig(a.addr())
		cfg.Nick = "alice"
		s := start(t, cfg)
		c := a.accept()
		c.handshake()
		for _, l := range lines {
			c.send(l + "\n")
		}
		last := lines[len(lines)-1]
		s.expect(last)
		c.Conn.Close()
		s.expect("-!- connection to " + a.addr() + " lost (closed by the server)")
		if c2 := a.accept(); c2.handshake() != "alice" {
			t.Fatalf("%q: reconnected as %q", lines, c2.Nick)
		}
		if out := s.out.String(); strings.Contains(out, "trying") {
			t.Errorf("%q: the client took it for a redirect:\n%s", lines, out)
		}
		s.cancel()
		s.wait()
	}
	select {
	case <-evil.conns:
		t.Fatal("the client connected to the host a chat line named")
	default:
	}
}

// With Resume the client asks for positions, strips them from the lines it
// shows, and after a reconnect presents the last position it saw.
func TestResumeExtension(t *testing.T) {
	srv := listenFake(t)
	cfg := testConfig(srv.addr())
	cfg.Nick = "alice"
	cfg.Resume = true
	s := start(t, cfg)
	c := srv.accept()
	c.send("NAME")
	c.expectLine("alice +resume")
	c.send("Connected to server!\n@lobby/aa.1/1000 alice joined!\n@lobby/bb.7/2000 bob: hi\n@lobby/aa.3/3000 * carol waves\n")
	s.expect("alice joined!")
	s.expect("bob: hi")
	s.expect("* carol waves")
	c.Conn.Close()

	c2 := srv.accept()
	c2.send("NAME")
	c2.expectLine("alice +resume=lobby:3000:bb.7,aa.3")
	c2.send("Connected to server!\n--- 1 lines you missed in lobby ---\n@lobby/bb.8/4000 [12:00] bob: missed\n--- live ---\n")
	s.expect("[12:00] bob: missed")
	c2.Conn.Close()

	// A server without the extension refuses the nickname line: the
	// client goes on without it.
	c3 := srv.accept()
	c3.send("NAME")
	c3.expectLine("alice +resume=lobby:4000:aa.3,bb.8")
	c3.send("ERROR a nickname is 1-32 letters, digits or _-.[]{}|^, choose another\n")
	c3.send("NAME")
	c3.expectLine("alice")
	c3.Nick = "alice"
	c3.send("Connected to server!\nalice joined!\n")
	s.expect("-!- this server does not resume; going on without")
	s.typeLine("plain")
	c3.echo("plain")
	s.expect("alice: plain")
}
