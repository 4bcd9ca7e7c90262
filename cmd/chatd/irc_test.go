package main

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
)

// Registration: CAP, NICK, USER, the welcome numerics, PING, and the
// errors of a client that is not registered or asks for a bad nickname.
func TestIRCRegistration(t *testing.T) {
	m := mustRunMain(t, "--irc", "127.0.0.1:0", "--rate", "1000", "--burst", "1000")
	join(t, m.ChatAddr().String(), "alice")

	c := ircDial(t, m)
	c.sendf("PRIVMSG #lobby :hi")
	c.expectLine(":chatd 451 * :You have not registered: send NICK and USER first")
	c.sendf("CAP LS 302")
	c.expectLine(":chatd CAP * LS :echo-message message-tags multi-prefix server-time sasl")
	c.sendf("NICK bad!nick")
	c.sendf("USER bob 0 * :Bob")
	c.sendf("CAP REQ :server-time bogus")
	c.sendf("CAP REQ :server-time")
	c.sendf("CAP END")
	c.expectLine(":chatd CAP * NAK :server-time bogus")
	c.expectLine(":chatd CAP * ACK :server-time")
	c.expectLine(":chatd 432 * bad!nick :nickname may only contain letters, digits and _-.[]{}|^, choose another")
	c.sendf("NICK ALICE") // held by an nc user
	c.expectLine(":chatd 433 * ALICE :nickname ALICE is taken, choose another")
	c.sendf("NICK")
	c.expectLine(":chatd 431 * :No nickname given")
	c.sendf("NICK bob")
	c.expectLine(":chatd 001 bob :Welcome to the chatd chat, bob; rooms are channels: /join #lobby")
	c.expectLine(":chatd 002 bob :Your host is chatd, a chatd gateway shared with nc and browser users")
	c.ExpectFunc("003", func(s string) bool { return strings.HasPrefix(s, ":chatd 003 bob :This server was created ") })
	c.expectLine(":chatd 004 bob chatd chatd i :n")
	isupport := c.ExpectFunc("005", func(s string) bool { return strings.HasPrefix(s, ":chatd 005 bob ") })
	_ = isupport
	line := c.Seen[len(c.Seen)-1]
	for _, want := range []string{"CASEMAPPING=ascii", "CHANTYPES=#", "NICKLEN=32", "CHANNELLEN=33", "NETWORK=chatd"} {
		if !strings.Contains(line, " "+want+" ") {
			t.Errorf("005 %q lacks %s", line, want)
		}
	}
	c.expectLine(":chatd 375 bob :- chatd message of the day -")
	c.expectLine(":chatd 376 bob :End of /MOTD command")

	c.sendf("PING :abc")
	c.expectLine(":chatd PONG chatd :abc")
	c.sendf("FROB x")
	c.expectLine(":chatd 421 bob FROB :Unknown command")
	c.sendf("JOIN")
	c.expectLine(":chatd 461 bob JOIN :Not enough parameters: JOIN #room[,#room]")
	c.sendf("USER bob 0 * :again")
	c.expectLine(":chatd 462 bob :You may not reregister")
	c.sendf("MODE bob +i")
	c.expectLine(":chatd 221 bob :+")

	// The nickname is taken for every transport.
	n := dial(t, m.ChatAddr().String())
	n.ExpectName()
	n.Send("bob\n")
	n.Expect("ERROR nickname bob is taken, choose another")

	c.sendf("QUIT :gone fishing")
	if got := c.ExpectClosed(); !strings.Contains(got, "ERROR :Closing link: Quit\r\n") {
		t.Errorf("after QUIT: %q", got)
	}
}

// A server password is asked with PASS, through the per-address throttle.
func TestIRCPassword(t *testing.T) {
	m := mustRunMain(t, "--irc", "127.0.0.1:0", "--rate", "1000", "--burst", "1000", "--password", "sesame", "--auth-delay", "10ms")
	c := ircDial(t, m)
	c.sendf("NICK bob")
	c.sendf("USER bob 0 * :Bob")
	c.expectLine(":chatd 464 * :this server needs a password: send PASS before NICK and USER (irssi: /connect host port PASSWORD), closing")
	c.expectLine("ERROR :Closing link: Connection closed")

	c = ircDial(t, m)
	c.sendf("PASS wrong")
	c.sendf("NICK bob")
	c.sendf("USER bob 0 * :Bob")
	c.expectLine(":chatd 464 * :wrong password for this server, closing")

	c = ircDial(t, m)
	c.sendf("PASS sesame")
	c.sendf("NICK bob")
	c.sendf("USER bob 0 * :Bob")
	c.expectLine(":chatd 001 bob :Welcome to the chatd chat, bob; rooms are channels: /join #lobby")
}

// IRC, nc and WebSocket users in the same rooms see each other's lines,
// actions, private messages, joins, parts, nickname changes and quits, each
// in their own protocol's form; IRC users in several rooms at once.
func TestIRCChat(t *testing.T) {
	m := mustRunMain(t, "--irc", "127.0.0.1:0", "--rate", "1000", "--burst", "1000")
	alice := join(t, m.ChatAddr().String(), "alice")
	alice.Send("before\n")
	alice.Expect("alice: before")

	bob := ircRegister(t, m, "bob", "server-time")
	bob.sendf("JOIN #lobby")
	bob.expectLine(":bob!bob@chatd JOIN #lobby")
	bob.expectLine(":chatd 353 bob = #lobby :alice bob")
	bob.expectLine(":chatd 366 bob #lobby :End of /NAMES list")
	bob.expectLine(":chatd NOTICE #lobby :--- last 1 lines of #lobby ---")
	hist := bob.expectUntagged(":alice!alice@chatd PRIVMSG #lobby :before")
	if tag := strings.TrimSuffix(hist, untag(hist)); !timeTagRE.MatchString(tag) {
		t.Errorf("replayed line %q has no server-time tag", hist)
	}
	bob.expectLine(":chatd NOTICE #lobby :--- live ---")
	alice.Expect("bob joined!")

	carol := wsJoin(t, m, "carol")
	bob.expectUntagged(":carol!carol@chatd JOIN #lobby")

	bob.sendf("PRIVMSG #lobby :hello from irc")
	alice.Expect("bob: hello from irc")
	carol.expectEvent("say", "bob", "hello from irc")
	alice.Send("hi irc\n")
	bob.expectUntagged(":alice!alice@chatd PRIVMSG #lobby :hi irc")
	carol.line("hi from the web")
	bob.expectUntagged(":carol!carol@chatd PRIVMSG #lobby :hi from the web")

	bob.sendf("PRIVMSG #lobby :\x01ACTION waves\x01")
	alice.Expect("* bob waves")
	carol.expectEvent("me", "bob", "waves")
	alice.Send("/me dances\n")
	bob.expectUntagged(":alice!alice@chatd PRIVMSG #lobby :\x01ACTION dances\x01")

	alice.Send("/msg bob psst\n")
	bob.expectUntagged(":alice!alice@chatd PRIVMSG bob :psst")
	bob.sendf("PRIVMSG alice :back at you")
	alice.Expect("*** private from bob: back at you")
	bob.sendf("PRIVMSG carol :\x01ACTION nods\x01")
	if msg, _ := carol.expect("private", func(m wsMsg) bool { return m.Type == "private" }); msg.From != "bob" || msg.Text != "* bob nods" {
		t.Errorf("private action: %v", msg)
	}
	bob.sendf("PRIVMSG nobody :hello?")
	bob.expectLine(":chatd 401 bob nobody :No such nick")
	// Without echo-message, bob's own lines do not come back.
	for _, l := range bob.ircSync() {
		if strings.Contains(l, ":bob!bob@chatd PRIVMSG") {
			t.Errorf("bob got his own line back: %q", l)
		}
	}

	// Two rooms at once.
	bob.sendf("JOIN #dev,#Lobby,nochan")
	bob.expectLine(":bob!bob@chatd JOIN #dev")
	bob.expectLine(":chatd 403 bob nochan :No such channel: channel names start with #, as #lobby")
	alice.Send("/join dev\n")
	bob.expectUntaggedAll(":alice!alice@chatd PART #lobby", ":alice!alice@chatd JOIN #dev")
	alice.Send("in dev\n")
	bob.expectUntagged(":alice!alice@chatd PRIVMSG #dev :in dev")
	carol.line("still in lobby")
	bob.expectUntagged(":carol!carol@chatd PRIVMSG #lobby :still in lobby")
	bob.sendf("PRIVMSG #dev :to dev")
	alice.Expect("bob: to dev")
	bob.sendf("PRIVMSG #lobby :to lobby")
	carol.expectEvent("say", "bob", "to lobby")

	bob.sendf("NAMES #dev")
	bob.expectLine(":chatd 353 bob = #dev :alice bob")
	bob.expectLine(":chatd 366 bob #dev :End of /NAMES list")
	bob.sendf("WHO #dev")
	bob.expectLine(":chatd 352 bob #dev alice chatd chatd alice H :0 alice")
	bob.expectLine(":chatd 352 bob #dev bob chatd chatd bob H :0 bob")
	bob.expectLine(":chatd 315 bob #dev :End of /WHO list")
	bob.sendf("LIST")
	bob.expectLine(":chatd 321 bob Channel :Users  Name")
	bob.expectLine(":chatd 322 bob #dev 2 :")
	bob.expectLine(":chatd 322 bob #lobby 2 :")
	bob.expectLine(":chatd 323 bob :End of /LIST")
	bob.sendf("TOPIC #dev")
	bob.expectLine(":chatd 331 bob #dev :No topic is set")
	bob.sendf("WHOIS alice")
	bob.expectLine(":chatd 311 bob alice alice chatd * :alice")
	bob.expectLine(":chatd 319 bob alice :#dev")
	bob.expectLine(":chatd 318 bob alice :End of /WHOIS list")
	bob.sendf("WHOIS nobody")
	bob.expectLine(":chatd 401 bob nobody :No such nick")

	// A nickname change: once for bob though he is in two rooms.
	bob.sendf("NICK robert")
	bob.expectLine(":bob!bob@chatd NICK robert")
	alice.Expect("*** bob is now known as robert")
	carol.expectEvent("nick", "bob", "robert")
	carol.line("after the rename")
	bob.expectUntagged(":carol!carol@chatd PRIVMSG #lobby :after the rename")
	for _, l := range bob.ircSync() {
		if strings.Contains(l, " NICK ") {
			t.Errorf("NICK twice: %q", l)
		}
	}

	// Someone else's nickname change and quit, in two shared rooms: once.
	dave := join(t, m.ChatAddr().String(), "dave")
	bob.expectUntagged(":dave!dave@chatd JOIN #lobby")
	dave.Send("/join dev\n")
	bob.expectUntagged(":dave!dave@chatd JOIN #dev")
	dave.Send("/nick david\n")
	bob.expectUntagged(":dave!dave@chatd NICK david")
	dave.Send("/quit\n")
	bob.expectUntagged(":david!david@chatd QUIT :Quit")
	alice.Send("/join lobby\n")
	bob.expectUntagged(":alice!alice@chatd JOIN #lobby")
	alice.Send("/nick alicia\n")
	bob.expectUntagged(":alice!alice@chatd NICK alicia")
	lines := bob.ircSync()
	if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, " NICK ") || strings.Contains(l, " QUIT ") }) {
		t.Errorf("a NICK or QUIT twice: %q", lines)
	}

	bob.sendf("PART #dev")
	bob.expectLine(":robert!robert@chatd PART #dev")
	bob.sendf("PRIVMSG #dev :still here?")
	bob.expectLine(":chatd 404 robert #dev :Cannot send to channel: JOIN it first")
	bob.sendf("PART #dev")
	bob.expectLine(":chatd 442 robert #dev :You're not on that channel")

	// echo-message: the sender gets its line back, as everyone does.
	erin := ircRegister(t, m, "erin", "echo-message")
	erin.sendf("JOIN #lobby")
	erin.expectLine(":chatd 366 erin #lobby :End of /NAMES list")
	erin.sendf("PRIVMSG #lobby :echo me")
	erin.expectLine(":erin!erin@chatd PRIVMSG #lobby :echo me")
	alice.Expect("erin: echo me")
	// Without server-time, the history is server NOTICEs with the time.
	frank := ircRegister(t, m, "frank")
	frank.sendf("JOIN #lobby")
	frank.expectLine(":chatd NOTICE #lobby :--- last 10 lines of #lobby ---")
	got := frank.ExpectFunc("replayed echo me", func(s string) bool {
		return strings.HasPrefix(s, ":chatd NOTICE #lobby :[") && strings.HasSuffix(s, "] erin: echo me\r")
	})
	_ = got
	frank.expectLine(":chatd NOTICE #lobby :--- live ---")

	// QUIT: the rooms hear it with its message.
	bob.sendf("QUIT :see you")
	alice.Expect("robert left!")
	carol.expectEvent("leave", "robert", "Quit: see you")
	frank.expectLine(":robert!robert@chatd QUIT :Quit: see you")
}

// Bad input: overlong lines, control characters, formatting, invalid
// UTF-8, CTCP other than ACTION, garbage before registration, an endless
// line, a registration that never ends.
func TestIRCBadInput(t *testing.T) {
	m := mustRunMain(t, "--irc", "127.0.0.1:0", "--rate", "1000", "--burst", "1000", "--handshake-timeout", "1s")
	alice := join(t, m.ChatAddr().String(), "alice")
	bob := ircRegister(t, m, "bob")
	bob.sendf("JOIN #lobby")
	bob.expectLine(":chatd 366 bob #lobby :End of /NAMES list")
	alice.Expect("bob joined!")

	bob.sendf("PRIVMSG #lobby :%s", strings.Repeat("x", 600))
	bob.expectLine(":chatd 417 bob :Input line was too long (limit 512 bytes, tags 4096); it was dropped")
	bob.Send("PRIVMSG #lobby :" + strings.Repeat("y", 100000)) // no line end yet
	bob.expectLine(":chatd 417 bob :Input line was too long (limit 512 bytes, tags 4096); it was dropped")
	bob.Send("\r\n")
	bob.sendf("PRIVMSG #lobby :plain \x1b[31mred\x0304,12colour\x02bold\x1b]0;title\x07\xff \x00end")
	alice.Expect("bob: plain redcolourbold\uFFFD end")
	bob.sendf("PRIVMSG alice :\x01VERSION\x01")
	bob.expectLine(":chatd 421 bob CTCP :CTCP VERSION is not supported here; only ACTION (/me) is passed on")
	bob.sendf("PRIVMSG #lobby :\x02\x03\x1b[0m")
	bob.expectLine(":chatd 412 bob :No text to send (after removing control characters)")
	bob.sendf("@+typing=active;+x=%s TAGMSG #lobby", strings.Repeat("t", 3000))
	bob.sendf("@+x=y :alice!alice@chatd PRIVMSG #lobby :the prefix is never believed")
	alice.Expect("bob: the prefix is never believed")
	for _, l := range alice.Sync() {
		if strings.Contains(l, "VERSION") || strings.Contains(l, "xxx") || strings.Contains(l, "yyy") {
			t.Errorf("alice got %q", l)
		}
	}

	// Garbage before registration: one error per line, then one ERROR and
	// the close.
	g := ircDial(t, m)
	g.Send(strings.Repeat("GET / HTTP/1.1\r\n", 12))
	out := g.ExpectClosed()
	if strings.Count(out, " 451 ") != 9 || !strings.HasSuffix(out, "ERROR :Closing link: Connection closed\r\n") ||
		!strings.Contains(out, "this is an IRC port") {
		t.Errorf("garbage: %q", out)
	}
	// A registration that never ends, sent slowly.
	s := ircDial(t, m)
	s.sendf("NICK slow")
	s.Send("USER slow 0")
	out = s.ExpectClosed()
	if !strings.Contains(out, "registration timed out") || !strings.HasSuffix(out, "ERROR :Closing link: Connection closed\r\n") {
		t.Errorf("slow registration: %q", out)
	}
	bob.sendf("PRIVMSG #lobby :unharmed")
	alice.Expect("bob: unharmed")
}

// A ping the client never answers closes it; the room hears it quit.
func TestIRCPingTimeout(t *testing.T) {
	m := mustRunMain(t, "--irc", "127.0.0.1:0", "--rate", "1000", "--burst", "1000", "--irc-ping", "300ms")
	alice := join(t, m.ChatAddr().String(), "alice")
	bob := ircRegister(t, m, "bob")
	bob.sendf("JOIN #lobby")
	alice.Expect("bob joined!")
	bob.expectLine("PING :chatd")
	bob.sendf("PONG :chatd")
	bob.expectLine("PING :chatd")
	out := bob.ExpectClosed()
	if !strings.Contains(out, "ping timeout") || !strings.HasSuffix(out, "ERROR :Closing link: Ping timeout\r\n") {
		t.Errorf("ping timeout: %q", out)
	}
	alice.Expect("bob left!")
}

// Across gateways: a nickname held on another gateway, lines between IRC,
// nc and WebSocket users on different gateways, and a QUIT for the users of
// a gateway that is killed.
func TestIRCAcrossGateways(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	lease := []string{"--lease", "1s", "--rate", "1000", "--burst", "1000"}
	g1 := mustRunMain(t, append([]string{"--nats", ns.ClientURL(), "--irc", "127.0.0.1:0"}, lease...)...)
	g2 := mustRunMain(t, append([]string{"--nats", ns.ClientURL()}, lease...)...)
	g3 := startChatd(t, append([]string{"gateway", "--nats", ns.ClientURL(), "--listen", "127.0.0.1:0"}, lease...)...)

	alice := join(t, g2.ChatAddr().String(), "alice")
	c := ircDial(t, g1)
	c.sendf("NICK alice")
	c.sendf("USER alice 0 * :A")
	c.expectLine(":chatd 433 * alice :nickname alice is taken, choose another")

	bob := ircRegister(t, g1, "bob")
	bob.sendf("JOIN #lobby")
	bob.expectLine(":chatd 366 bob #lobby :End of /NAMES list")
	alice.Expect("bob joined!")
	carol := wsJoin(t, g2, "carol")
	bob.expectLine(":carol!carol@chatd JOIN #lobby")

	alice.Send("across\n")
	bob.expectLine(":alice!alice@chatd PRIVMSG #lobby :across")
	bob.sendf("PRIVMSG #lobby :and back")
	alice.Expect("bob: and back")
	carol.expectEvent("say", "bob", "and back")
	carol.line("from the web")
	bob.expectLine(":carol!carol@chatd PRIVMSG #lobby :from the web")
	bob.sendf("PRIVMSG alice :private across")
	alice.Expect("*** private from bob: private across")

	victim := join(t, g3.addr, "victim")
	bob.expectLine(":victim!victim@chatd JOIN #lobby")
	victim.Send("last words\n")
	bob.expectLine(":victim!victim@chatd PRIVMSG #lobby :last words")
	start := time.Now()
	g3.cmd.Process.Signal(syscall.SIGKILL)
	bob.expectLine(":victim!victim@chatd QUIT :gateway lost")
	t.Logf("SIGKILL to QUIT: %v", time.Since(start).Round(time.Millisecond))
}

// A gateway shutting down sends its IRC clients to another gateway's IRC
// port, and its nc clients to that gateway's chat port; a gateway without
// an IRC port is not named to IRC clients.
func TestIRCRollingRestart(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	g1 := mustRunRole(t, RoleGateway, "--nats", ns.ClientURL(), "--irc", "127.0.0.1:0", "--public-addr", "chat1.example:5501")
	g2 := mustRunRole(t, RoleGateway, "--nats", ns.ClientURL(), "--irc", "127.0.0.1:0", "--public-addr", "chat2.example:5502")
	mustRunRole(t, RoleGateway, "--nats", ns.ClientURL(), "--irc", "", "--public-addr", "chat3.example:5503")
	_, ircPort, _ := net.SplitHostPort(g2.IRCAddr().String())

	alice := join(t, g1.ChatAddr().String(), "alice")
	bob := ircRegister(t, g1, "bob")
	go g1.Close()
	if got := alice.ExpectClosed(); !strings.Contains(got, "*** server shutting down; reconnect to chat2.example:5502 or chat3.example:5503\n") {
		t.Errorf("alice got %q", got)
	}
	got := bob.ExpectClosed()
	if want := ":chatd NOTICE bob :server shutting down; reconnect to chat2.example:" + ircPort + "\r\nERROR :Closing link: Server shutting down\r\n"; !strings.HasSuffix(got, want) {
		t.Errorf("bob got %q, want it to end with %q", got, want)
	}
}

// WHOIS and WHO find a user on another gateway, in rooms or in none (an
// IRC client that joined no channel yet), spelled as its owner spells it.
func TestIRCWhoisAcrossGateways(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	g1 := mustRunMain(t, "--nats", ns.ClientURL(), "--irc", "127.0.0.1:0")
	g2 := mustRunMain(t, "--nats", ns.ClientURL(), "--irc", "127.0.0.1:0")

	idle := ircRegister(t, g1, "Idler") // in no room
	alice := join(t, g1.ChatAddr().String(), "alice")
	alice.Send("/join dev\n")
	alice.Expect("alice joined!")

	bob := ircRegister(t, g2, "bob")
	bob.sendf("WHOIS idler")
	bob.expectLine(":chatd 311 bob Idler Idler chatd * :Idler")
	bob.expectLine(":chatd 318 bob Idler :End of /WHOIS list")
	bob.sendf("WHOIS alice")
	bob.expectLine(":chatd 311 bob alice alice chatd * :alice")
	bob.expectLine(":chatd 319 bob alice :#dev")
	bob.sendf("WHO idler")
	bob.expectLine(":chatd 352 bob * Idler chatd chatd Idler H :0 Idler")
	bob.expectLine(":chatd 315 bob idler :End of /WHO list")
	bob.sendf("WHOIS nobody")
	bob.expectLine(":chatd 401 bob nobody :No such nick")

	// Gone from the cluster: no longer found.
	idle.sendf("QUIT :bye")
	checkFor(t, waitFor, func() error {
		bob.sendf("WHOIS Idler")
		for _, l := range bob.ircSync() {
			if strings.Contains(l, " 401 bob Idler ") {
				return nil
			}
		}
		return fmt.Errorf("Idler still found")
	})
}
