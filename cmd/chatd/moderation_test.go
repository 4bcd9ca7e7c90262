package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/chatd/chatd/bus"
	"github.com/chatd/chatd/cluster/clustertest"
)

// operatorsFile writes an operators file with one operator per name, each
// password "pw-" + name, and returns its path.
func operatorsFile(t testing.TB, names ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# chat operators\n")
	for _, n := range names {
		h, err := bcrypt.GenerateFromPassword([]byte("pw-"+n), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(n + " " + string(h) + "\n")
	}
	f := filepath.Join(t.TempDir(), "operators")
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// twoModGateways starts two gateways on one NATS server, with the same
// operators file and an IRC port each.
func twoModGateways(t testing.TB, extra ...string) (a, b *Main) {
	t.Helper()
	ns := clustertest.Start(t, clustertest.Options{})
	ops := operatorsFile(t, "root", "admin")
	args := append([]string{"--nats", ns.ClientURL(), "--operators", ops, "--irc", "127.0.0.1:0",
		"--rate", "1000", "--burst", "1000", "--auth-delay", "10ms"}, extra...)
	return mustRunMain(t, args...), mustRunMain(t, args...)
}

// waitMod waits until gateway m's copy of the moderation bucket satisfies
// ok: another gateway's write reaches it through a watch, a moment later.
func waitMod(t testing.TB, m *Main, what string, ok func(b *bus.Conn) bool) {
	t.Helper()
	checkFor(t, waitFor, func() error {
		if !ok(m.Bus) {
			return fmt.Errorf("gateway has not seen %s", what)
		}
		return nil
	})
}

func isOper(nick string) func(*bus.Conn) bool {
	return func(b *bus.Conn) bool {
		ops, _ := b.Opers(context.Background())
		return slices.Contains(ops, nick)
	}
}

// oper makes c an operator with the right password.
func oper(c *client, name string) {
	c.T.Helper()
	c.Send("/oper " + name + " pw-" + name + "\n")
	c.Expect("*** you are now an operator (" + name + ")")
}

// An operator logs in with /oper and is marked with @ in /who on every
// gateway and transport; a wrong password gets an ERROR and changes
// nothing; a non-operator's moderation commands are refused, one ERROR
// each, and change nothing.
func TestOperators(t *testing.T) {
	ga, gb := twoModGateways(t, "--admin", "127.0.0.1:0")
	alice := join(t, ga.ChatAddr().String(), "alice")
	bob := join(t, gb.ChatAddr().String(), "bob")
	alice.Expect("bob joined!")

	alice.Send("/oper root wrong\n")
	alice.Expect("ERROR wrong operator name or password")
	alice.Send("/oper nobody pw-nobody\n")
	alice.Expect("ERROR wrong operator name or password")
	alice.Send("/oper root\n")
	alice.Expect("ERROR usage: /oper NAME PASSWORD")
	bob.Send("/who\n")
	bob.Expect("*** in lobby (2): alice, bob")

	oper(alice, "root")
	waitMod(t, gb, "alice as an operator", isOper("alice"))
	bob.Send("/who\n")
	bob.Expect("*** in lobby (2): @alice, bob")
	web := wsJoin(t, gb, "webby")
	web.line("/who")
	if who := web.expectNotice("in lobby (3): @alice, bob, webby"); strings.Join(who.Ops, ",") != "alice" ||
		strings.Join(who.Nicks, ",") != "alice,bob,webby" {
		t.Errorf("/who on the web = %v", who)
	}
	bob.Expect("webby joined!")

	// A non-operator: one ERROR per attempt, nothing changes.
	for _, cmd := range []string{"/kick alice", "/ban alice 1h", "/ban 127.0.0.9", "/unban alice", "/bans", "/mute alice", "/unmute alice"} {
		bob.Send(cmd + "\n")
		name, _, _ := strings.Cut(cmd[1:], " ")
		if skipped := bob.Expect("ERROR /" + name + " is for operators; see /oper"); len(skipped) > 0 {
			t.Errorf("%s: also got %q", cmd, skipped)
		}
	}
	lines := bob.Sync()
	if len(lines) != 0 {
		t.Errorf("bob got %q after the refusals", lines)
	}
	alice.Sync()
	alice.Send("/bans\n")
	alice.Expect("*** bans: none")
	if got := gb.Gateway.Stats().Moderation["refused"]; got != 7 {
		t.Errorf("refused attempts counted: %d, want 7", got)
	}
	if got := ga.Gateway.Stats().Moderation["oper_failed"]; got != 2 {
		t.Errorf("failed /oper counted: %d, want 2", got)
	}
	if !strings.Contains(logsOf(t, gb), "moderation refused: not an operator") {
		t.Error("no log of the refused attempts")
	}
	code, body, err := get("http://" + gb.AdminAddr().String() + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET /metrics: %d, %v", code, err)
	}
	for name, want := range map[string]float64{
		`chatd_moderation_total{action="refused"}`: 7,
		`chatd_moderation_total{action="kick"}`:    0,
		`chatd_bus_mod_rejected_total`:             0,
	} {
		if got, ok := metric(body, name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}

	// Operator status ends with the session.
	alice.Send("/quit\n")
	bob.Expect("alice left!")
	bob.Send("/who\n")
	bob.Expect("*** in lobby (2): bob, webby")
}

// An operator on gateway A kicks users of gateway B, classic and web: each
// is told why and closed; the room hears who kicked whom and why.
func TestKickAcrossGateways(t *testing.T) {
	ga, gb := twoModGateways(t)
	alice := join(t, ga.ChatAddr().String(), "alice")
	bob := join(t, gb.ChatAddr().String(), "bob")
	web := wsJoin(t, gb, "webby")
	alice.Expect("webby joined!")
	oper(alice, "root")

	alice.Send("/kick nobody\n")
	alice.Expect("ERROR no such nickname in lobby: nobody")
	alice.Send("/kick alice\n")
	alice.Expect("ERROR you cannot kick yourself")
	alice.Send("/kick bob " + strings.Repeat("x", 301) + "\n")
	alice.Expect("ERROR reason too long (limit 300 bytes)")

	alice.Send("/kick bob flooding the room\n")
	bob.Expect("ERROR you were kicked from lobby by alice: flooding the room, closing")
	bob.ExpectClosed()
	alice.Expect("*** bob was kicked by alice: flooding the room")
	web.expect("kick event", func(m wsMsg) bool {
		return m.Type == "event" && m.Kind == "kick" && m.Nick == "bob" && m.By == "alice" && m.Text == "flooding the room"
	})

	alice.Send("/kick webby\n")
	_, code, _ := web.expectClosed()
	if code != websocket.StatusPolicyViolation {
		t.Errorf("kicked web client closed with %d", code)
	}
	alice.Expect("*** webby was kicked by alice")
	alice.Send("/who\n")
	alice.Expect("*** in lobby (1): @alice")
	if got := ga.Gateway.Stats().Moderation["kick"]; got != 2 {
		t.Errorf("kicks counted: %d, want 2", got)
	}
	if logs := logsOf(t, ga); !strings.Contains(logs, `msg="moderation: kick"`) ||
		!strings.Contains(logs, `actor=alice target=bob room=lobby reason="flooding the room"`) {
		t.Error("no log of the kick")
	}
	// Kicked is not banned: bob comes back.
	join(t, gb.ChatAddr().String(), "bob")
}

// A ban made on gateway A closes the banned users on gateway B within a
// second, holds against reconnects to either gateway, and lifts itself
// when it expires; /unban lifts one at once.
func TestBanAcrossGateways(t *testing.T) {
	ga, gb := twoModGateways(t)
	a, b := ga.ChatAddr().String(), gb.ChatAddr().String()
	alice := join(t, a, "alice")
	oper(alice, "root")

	// Bad input.
	for cmd, want := range map[string]string{
		"/ban":             "ERROR usage: /ban NICK|IP|CIDR [DURATION] [REASON]",
		"/ban alice":       "ERROR you cannot ban yourself",
		"/ban 127.0.0.1":   "ERROR you cannot ban yourself: 127.0.0.1/32 holds your own address",
		"/ban 127.0.0.0/8": "ERROR you cannot ban yourself: 127.0.0.0/8 holds your own address",
		"/ban 10.0.0.0/33": `ERROR "10.0.0.0/33" is neither an IP address nor a CIDR prefix (such as 192.0.2.7, 192.0.2.0/24, 2001:db8::/48)`,
		"/ban 0.0.0.0/0":   "ERROR prefix 0.0.0.0/0 is too wide (at least /8 for IPv4, /16 for IPv6)",
		"/ban bob 5x":      `ERROR bad duration "5x": use a number and s, m, h, d or w (such as 10m, 2h, 7d), at most 10 years`,
		"/ban bob 99999d":  `ERROR bad duration "99999d": use a number and s, m, h, d or w (such as 10m, 2h, 7d), at most 10 years`,
		"/ban bob 1h " + strings.Repeat("y", 301): "ERROR reason too long (limit 300 bytes)",
		"/unban carol":       "ERROR carol is not banned",
		"/unban 10.0.0.0/99": `ERROR "10.0.0.0/99" is neither a nickname, an IP address nor a CIDR prefix`,
	} {
		alice.Send(cmd + "\n")
		alice.Expect(want)
	}

	// An address ban, for a short time.
	bob := dialFrom(t, "127.0.0.2", b)
	bob.ExpectName()
	bob.Send("bob\n")
	bob.Nick = "bob"
	bob.Expect("Connected to server!")
	alice.Expect("bob joined!")
	start := time.Now()
	alice.Send("/ban 127.0.0.2 1h spamming\n")
	alice.Expect("*** banned 127.0.0.2/32 for 1h0m0s")
	got := bob.ExpectPrefix("ERROR your address is banned from this chat by alice until ")
	if d := time.Since(start); d > time.Second {
		t.Errorf("the ban took %v to reach bob on the other gateway", d)
	}
	if !strings.HasSuffix(got, ": spamming, closing") {
		t.Errorf("banned bob got %q", got)
	}
	bob.ExpectClosed()
	alice.Expect("bob left!")
	for _, addr := range []string{a, b} {
		c := dialFrom(t, "127.0.0.2", addr)
		if got := c.ExpectClosed(); !strings.HasPrefix(got, "ERROR your address is banned from this chat by alice") {
			t.Errorf("reconnect to %s: %q", addr, got)
		}
	}
	alice.Send("/bans\n")
	alice.ExpectPrefix("*** bans (1): 127.0.0.2/32 by alice until ")
	// A short ban in its place lifts itself.
	start = time.Now()
	alice.Send("/ban 127.0.0.2 2s\n")
	alice.Expect("*** banned 127.0.0.2/32 for 2s")
	for deadline := time.Now().Add(waitFor); ; {
		c := dialFrom(t, "127.0.0.2", a)
		buf := make([]byte, 4)
		c.Conn.SetReadDeadline(time.Now().Add(waitFor))
		n, _ := c.R.Read(buf)
		if string(buf[:n]) == "NAME" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ban did not expire")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("the ban lifted after %v, before its 2s", d)
	}

	// A nickname ban, web user on the other gateway; /unban lifts it.
	web := wsJoin(t, gb, "dave")
	alice.Expect("dave joined!")
	alice.Send("/ban dave\n")
	alice.Expect("*** banned dave")
	web.expectError("banned", "the nickname dave is banned from this chat by alice, closing")
	if _, code, _ := web.expectClosed(); code != websocket.StatusPolicyViolation {
		t.Errorf("banned web client closed with %d", code)
	}
	for _, addr := range []string{a, b} {
		c := dial(t, addr)
		c.ExpectName()
		c.Send("DAVE\n")
		c.Expect("ERROR the nickname DAVE is banned from this chat by alice, choose another")
	}
	carol := join(t, b, "carol")
	carol.Send("/nick dave\n")
	carol.Expect("ERROR the nickname dave is banned from this chat by alice")
	alice.Send("/unban dave\n")
	alice.Expect("*** lifted the ban of dave")
	for deadline := time.Now().Add(waitFor); ; {
		carol.Send("/nick dave\n")
		l, err := carol.Line()
		if err != nil {
			t.Fatal(err)
		}
		if l == "*** carol is now known as dave" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/unban not applied: %q", l)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := ga.Gateway.Stats().Moderation; got["ban"] != 3 || got["unban"] != 1 {
		t.Errorf("bans counted: %v", got)
	}
}

// A user muted from gateway A on gateway B reads but cannot send, is told
// why, and speaks again when the mute expires.
func TestMuteAcrossGateways(t *testing.T) {
	ga, gb := twoModGateways(t)
	alice := join(t, ga.ChatAddr().String(), "alice")
	bob := join(t, gb.ChatAddr().String(), "bob")
	web := wsJoin(t, gb, "webby")
	alice.Expect("webby joined!")
	oper(alice, "root")

	alice.Send("/mute bob 1h be calm\n")
	alice.Expect("*** muted bob for 1h0m0s")
	bob.ExpectPrefix("ERROR you are muted by alice until ")
	bob.Send("still here\n")
	bob.ExpectPrefix("ERROR you are muted by alice until ")
	bob.Send("/me waves\n")
	bob.ExpectPrefix("ERROR you are muted by alice until ")
	bob.Send("/msg alice psst\n")
	bob.ExpectPrefix("ERROR you are muted by alice until ")
	bob.Send("/nick bobby\n")
	bob.Expect("ERROR you cannot change nickname while muted")
	alice.Send("reading?\n")
	bob.Expect("alice: reading?")

	alice.Send("/mute webby\n")
	web.expectError("muted", "you are muted by alice: you can read but not send")
	web.line("hello")
	web.expectError("muted", "you are muted by alice")
	alice.Send("/unmute webby\n")
	alice.Expect("*** webby is no longer muted")
	web.expectNotice("you are no longer muted")

	// A short mute in its place runs out.
	alice.Send("/mute bob 1s\n")
	alice.Expect("*** muted bob for 1s")
	for deadline := time.Now().Add(waitFor); ; {
		bob.Send("back\n")
		l, err := bob.Line()
		if err != nil {
			t.Fatal(err)
		}
		if l == "bob: back" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mute did not expire: %q", l)
		}
		time.Sleep(100 * time.Millisecond)
	}
	alice.Expect("bob: back")
	for _, l := range alice.Sync() {
		if strings.Contains(l, "still here") || strings.Contains(l, "waves") {
			t.Errorf("a muted line got through: %q", l)
		}
	}
	if got := ga.Gateway.Stats().Moderation; got["mute"] != 3 || got["unmute"] != 1 {
		t.Errorf("mutes counted: %v", got)
	}
}

// A topic set on gateway A is shown on B: to the room at once, to whoever
// joins, in /topic and /rooms, on every transport. Anyone may set it while
// no operator is in the room; then only operators may.
func TestTopicAcrossGateways(t *testing.T) {
	ga, gb := twoModGateways(t)
	alice := join(t, ga.ChatAddr().String(), "alice")
	bob := join(t, gb.ChatAddr().String(), "bob")
	alice.Expect("bob joined!")

	bob.Send("/topic\n")
	bob.Expect("*** lobby has no topic")
	bob.Send("/topic welcome, all\n")
	alice.Expect("*** bob set the topic: welcome, all")
	bob.Expect("*** bob set the topic: welcome, all")
	bob.Send("/topic " + strings.Repeat("t", 391) + "\n")
	bob.Expect("ERROR topic too long (limit 390 bytes)")

	oper(alice, "root")
	waitMod(t, gb, "alice as an operator", isOper("alice"))
	bob.Send("/topic mine now\n")
	bob.Expect("ERROR an operator is in lobby: only operators may change its topic")
	alice.Send("/topic read the rules\n")
	bob.Expect("*** alice set the topic: read the rules")

	waitMod(t, gb, "the topic", func(b *bus.Conn) bool { tp, _ := b.Topic("lobby"); return tp.Text == "read the rules" })
	// The topic comes after the (empty) history; "carol joined!" is a live
	// event: either may come first.
	carol := dial(t, gb.ChatAddr().String())
	carol.ExpectName()
	carol.Send("carol\n")
	carol.Nick = "carol"
	carol.Expect("Connected to server!")
	seen := 0
	carol.ExpectFunc("the topic and carol joined!", func(s string) bool {
		if s == "*** topic of lobby: read the rules (set by alice)" || s == "carol joined!" {
			seen++
		}
		return seen == 2
	})
	carol.Send("/rooms\n")
	carol.Expect("*** rooms: lobby (3) [read the rules]")
	web := wsDial(t, gb)
	web.send(map[string]any{"type": "hello", "v": 1, "nick": "webby"})
	web.expectNotice("topic of lobby: read the rules (set by alice)")
	irc := ircRegister(t, gb, "ircy")
	irc.sendf("JOIN #lobby")
	irc.expectLine(":chatd 332 ircy #lobby :read the rules")
	irc.sendf("TOPIC #lobby")
	irc.expectLine(":chatd 332 ircy #lobby :read the rules")
	irc.sendf("LIST")
	irc.expectLine(":chatd 322 ircy #lobby 5 :read the rules")

	alice.Send("/topic -\n")
	carol.Expect("*** alice cleared the topic")
	irc.expectUntagged(":alice!alice@chatd TOPIC #lobby :")
	carol.Send("/topic\n")
	carol.Expect("*** lobby has no topic")
}

// IRC: OPER, KICK (the kicked IRC user leaves the channel and stays
// connected), TOPIC, and operators marked in NAMES and WHO.
func TestIRCModeration(t *testing.T) {
	ga, gb := twoModGateways(t)
	op := ircRegister(t, ga, "opy")
	op.sendf("OPER admin wrong")
	op.expectLine(":chatd NOTICE opy :wrong operator name or password")
	op.sendf("OPER admin pw-admin")
	op.expectLine(":chatd 381 opy :You are now an IRC operator")
	op.sendf("JOIN #dev")
	op.expectLine(":chatd 353 opy = #dev :@opy")
	op.ircSync() // the JOIN is done: opy is in #dev's members on every gateway
	waitMod(t, gb, "opy as an operator", isOper("opy"))
	victim := ircRegister(t, gb, "vic")
	victim.sendf("JOIN #dev,#lobby")
	victim.expectLine(":chatd 353 vic = #dev :@opy vic")
	nc := join(t, gb.ChatAddr().String(), "ncuser")
	nc.Send("/join dev\n")
	op.expectUntagged(":ncuser!ncuser@chatd JOIN #dev")
	op.sendf("WHO #dev")
	op.expectLine(":chatd 352 opy #dev opy chatd chatd opy H@ :0 opy")
	victim.sendf("WHOIS opy")
	victim.expectLine(":chatd 313 vic opy :is a chat operator")

	nc.Send("/kick vic\n")
	nc.Expect("ERROR /kick is for operators; see /oper")
	op.sendf("KICK #dev nobody :bye")
	op.expectLine(":chatd 441 opy nobody #dev :no such nickname in dev: nobody")
	op.sendf("KICK #dev vic :off topic")
	victim.expectUntagged(":opy!opy@chatd KICK #dev vic :off topic")
	op.expectUntagged(":opy!opy@chatd KICK #dev vic :off topic")
	nc.Expect("*** vic was kicked by opy: off topic")
	// vic is still connected, in #lobby, out of #dev.
	victim.sendf("PRIVMSG #dev :hello?")
	victim.expectLine(":chatd 404 vic #dev :Cannot send to channel: JOIN it first")
	victim.sendf("PRIVMSG #lobby :still here")
	for _, l := range victim.ircSync() {
		if strings.Contains(l, " 404 ") {
			t.Errorf("vic was put out of #lobby too: %q", l)
		}
	}
	op.sendf("NAMES #dev")
	op.expectLine(":chatd 353 opy = #dev :ncuser @opy")

	op.sendf("TOPIC #dev :irc topic")
	nc.Expect("*** opy set the topic: irc topic")
	waitMod(t, gb, "the topic", func(b *bus.Conn) bool { _, ok := b.Topic("dev"); return ok })
	nc.Send("/topic\n")
	nc.Expect("*** topic of dev: irc topic (set by opy)")
	victim.sendf("JOIN #dev")
	victim.expectLine(":chatd 332 vic #dev :irc topic")
	victim.sendf("TOPIC #dev :mine")
	victim.expectLine(":chatd 482 vic #dev :an operator is in dev: only operators may change its topic")

	// The chat-wide commands as raw lines.
	op.sendf("MUTE ncuser 1m :be quiet")
	op.expectLine(":chatd NOTICE opy :muted ncuser for 1m0s")
	nc.ExpectPrefix("ERROR you are muted by opy until ")
	victim.sendf("BAN opy")
	victim.expectLine(":chatd NOTICE vic :/ban is for operators; see /oper")
	op.sendf("BAN vic :go away")
	op.expectLine(":chatd NOTICE opy :banned vic")
	victim.expectLine("ERROR :Closing link: Banned")
	op.sendf("BANS")
	op.expectLine(":chatd NOTICE opy :bans (1): vic by opy (go away)")
}

// `chatd passwd` prints a bcrypt hash that the operators file takes.
func TestPasswdHash(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("correct horse\n")
	w.Close()
	var out, errs bytes.Buffer
	if code := runPasswd([]string{"--cost", "10"}, r, &out, &errs); code != 0 {
		t.Fatalf("chatd passwd: %d: %s", code, errs.String())
	}
	hash := strings.TrimSpace(out.String())
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")) != nil {
		t.Fatalf("hash %q does not match", hash)
	}
	f := filepath.Join(t.TempDir(), "ops")
	os.WriteFile(f, []byte("root "+hash+"\n"), 0o600)
	ol := &operList{file: f}
	if n, err := ol.load(); err != nil || n != 1 {
		t.Fatalf("load: %d, %v", n, err)
	}
	if !ol.check("ROOT", "correct horse") || ol.check("root", "wrong") || ol.check("nobody", "correct horse") {
		t.Error("check judged wrong")
	}
	os.WriteFile(f, []byte("root notahash\n"), 0o600)
	if _, err := ol.load(); err == nil || !strings.Contains(err.Error(), "not a bcrypt hash") {
		t.Errorf("a bad hash: %v", err)
	}
	if !ol.check("root", "correct horse") {
		t.Error("a failed reload dropped the old list")
	}
	r2, w2, _ := os.Pipe()
	w2.WriteString("short\n")
	w2.Close()
	if code := runPasswd(nil, r2, &out, &errs); code == 0 {
		t.Error("a 5-byte password was hashed")
	}
}

// A registered nickname cannot be taken on another gateway, on any
// transport, without its password; wrong passwords are counted, logged
// and close the attempt, as a wrong server password does; /drop releases
// it (its holder, or an operator).
func TestRegisteredNicknames(t *testing.T) {
	ga, gb := twoModGateways(t)
	a, b := ga.ChatAddr().String(), gb.ChatAddr().String()
	alice := join(t, a, "alice")
	alice.Send("/register short\n")
	alice.Expect("ERROR a password must be 8 to 72 bytes")
	alice.Send("/register open sesame\n")
	alice.Expect("*** the nickname alice is registered: from now on it needs this password, on every gateway; /drop releases it")
	alice.Send("/register again and again\n")
	alice.Expect("*** the nickname alice is registered: from now on it needs this password, on every gateway; /drop releases it")
	alice.Send("/quit\n")
	alice.ExpectClosed()
	waitMod(t, gb, "the new password", func(b *bus.Conn) bool {
		want, _ := ga.Bus.Reg("alice")
		got, ok := b.Reg("alice")
		return ok && got == want
	})

	// TCP, on the other gateway: asked after the nickname.
	c := dial(t, b)
	c.ExpectName()
	c.Send("alice\n")
	c.Expect("*** the nickname alice is registered: send its password as your next line")
	c.Send("open sesame\n") // the old password
	if got := c.ExpectClosed(); got != "ERROR wrong password for the nickname alice, closing\n" {
		t.Errorf("wrong password: %q", got)
	}
	c = dial(t, b)
	c.ExpectName()
	c.Send("alice\n")
	c.Expect("*** the nickname alice is registered: send its password as your next line")
	c.Send("alice: again and again") // a classic client: its prefix, no newline
	c.Nick = "alice"
	c.Expect("Connected to server!")
	c.Expect("alice joined!")

	// WebSocket, while alice is connected: taken; then without, with a
	// wrong and with the right password.
	c.Send("/quit\n")
	c.ExpectClosed()
	w := wsDial(t, ga)
	w.send(map[string]any{"type": "hello", "nick": "alice"})
	w.expectError("nick_registered", `the nickname alice is registered: give its password (put it in the hello as "nick_password"), choose another`)
	w.send(map[string]any{"type": "hello", "nick": "alice", "nick_password": "wrong one"})
	w.expectError("bad_password", "wrong password for the nickname alice, closing")
	w.expectClosed()
	w = wsDial(t, ga)
	w.send(map[string]any{"type": "hello", "nick": "alice", "nick_password": "again and again"})
	w.expectType("welcome")
	w.line("/quit")
	w.expectClosed()

	// IRC: PASS before NICK.
	irc := ircDial(t, ga)
	irc.sendf("NICK alice")
	irc.sendf("USER alice 0 * :x")
	irc.expectLine(":chatd 433 * alice :the nickname alice is registered: give its password (send PASS with it before NICK (with a server password: PASS :SERVERPASSWORD NICKPASSWORD)), choose another")
	irc = ircDial(t, gb)
	irc.Nick = "alice"
	irc.sendf("PASS :again and again")
	irc.sendf("NICK alice")
	irc.sendf("USER alice 0 * :x")
	irc.expectLine(":chatd 001 alice :Welcome to the chatd chat, alice; rooms are channels: /join #lobby")
	irc.sendf("QUIT")
	irc.ExpectClosed()
	// IRC: SASL PLAIN.
	irc = ircDial(t, ga)
	irc.Nick = "alice"
	irc.sendf("CAP LS 302")
	irc.sendf("NICK alice")
	irc.sendf("USER alice 0 * :x")
	irc.sendf("CAP REQ :sasl")
	irc.expectLine(":chatd CAP * ACK :sasl")
	irc.sendf("AUTHENTICATE PLAIN")
	irc.expectLine("AUTHENTICATE +")
	irc.sendf("AUTHENTICATE %s", base64.StdEncoding.EncodeToString([]byte("\x00alice\x00not it")))
	irc.expectLine(":chatd 904 * :SASL authentication failed: no registered nickname alice with that password")
	irc.sendf("AUTHENTICATE PLAIN")
	irc.sendf("AUTHENTICATE %s", base64.StdEncoding.EncodeToString([]byte("alice\x00alice\x00again and again")))
	irc.expectLine(":chatd 903 * :SASL authentication successful")
	irc.sendf("CAP END")
	irc.expectLine(":chatd 001 alice :Welcome to the chatd chat, alice; rooms are channels: /join #lobby")
	irc.sendf("QUIT")
	irc.ExpectClosed()

	// /nick to a registered nickname needs its password.
	bob := join(t, a, "bob")
	bob.Send("/nick alice\n")
	bob.Expect("ERROR the nickname alice is registered: /nick alice PASSWORD")
	bob.Send("/nick alice guessing\n")
	bob.Expect("ERROR wrong password for the nickname alice")
	bob.Send("/drop alice\n")
	bob.Expect("ERROR /drop is for operators; see /oper")
	bob.Send("/nick alice again and again\n")
	bob.Expect("*** bob is now known as alice")
	bob.Nick = "alice"
	bob.Send("/drop\n")
	bob.Expect("*** the nickname alice is no longer registered")
	bob.Send("/quit\n")
	bob.ExpectClosed()
	waitMod(t, gb, "the drop", func(b *bus.Conn) bool { _, ok := b.Reg("alice"); return !ok })
	join(t, b, "alice") // free for anyone now

	// An operator drops anyone's.
	carol := join(t, b, "carol")
	carol.Send("/register carols secret\n")
	carol.ExpectPrefix("*** the nickname carol is registered")
	op := join(t, a, "op")
	oper(op, "admin")
	op.Send("/drop carol\n")
	op.Expect("*** the nickname carol is no longer registered")
	op.Send("/drop carol\n")
	op.Expect("ERROR the nickname carol is not registered")

	if got := ga.Gateway.Stats().Moderation["nick_password_failed"] + gb.Gateway.Stats().Moderation["nick_password_failed"]; got != 4 {
		t.Errorf("wrong nickname passwords counted: %d, want 4", got)
	}
	if !strings.Contains(logsOf(t, gb), "wrong nickname password") {
		t.Error("no log of a wrong nickname password")
	}
}

// The web page marks operators in its member list, shows kicks and topic
// changes, and drops a kicked user from the list.
func TestBrowserModeration(t *testing.T) {
	b := newBrowser(t)
	m := mustRunMain(t, "--operators", operatorsFile(t, "root"), "--rate", "100", "--burst", "100", "--auth-delay", "10ms")
	alice := join(t, m.ChatAddr().String(), "alice")
	oper(alice, "root")
	carol := join(t, m.ChatAddr().String(), "carol")
	alice.Expect("carol joined!")

	b.login("http://"+m.HTTPAddr().String()+"/", "webby")
	alice.Expect("webby joined!")
	b.waitJS("alice marked as an operator", `(() => {
		const li = document.querySelector('#who li[data-nick="alice"]');
		return li && li.dataset.op === 'true' && li.textContent.includes('@alice');
	})()`)
	b.waitJS("carol not an operator", `(() => {
		const li = document.querySelector('#who li[data-nick="carol"]');
		return li && !li.dataset.op && !li.textContent.includes('@');
	})()`)

	alice.Send("/topic read the rules\n")
	b.waitJS("the topic change", `[...document.querySelectorAll('#log .msg.system')].some(d => d.dataset.kind === 'topic' && d.textContent.includes('alice set the topic: read the rules'))`)

	alice.Send("/kick carol spam\n")
	carol.ExpectClosed()
	b.waitJS("the kick", `[...document.querySelectorAll('#log .msg.system')].some(d => d.dataset.kind === 'kick' && d.textContent.includes('carol was kicked by alice: spam'))`)
	b.waitJS("carol off the member list", `!document.querySelector('#who li[data-nick="carol"]')`)
	b.checkNoErrors()
}
