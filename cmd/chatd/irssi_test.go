package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// irssi is a real IRC client, irssi in a tmux session, read from its screen.
type irssi struct {
	t    testing.TB
	tmux string
	sock string
}

// startIrssi starts irssi as nick, connected to addr. It is skipped when
// irssi or tmux is missing, unless CHATD_REQUIRE_IRC is set (CI sets it).
func startIrssi(t testing.TB, addr, nick string) *irssi {
	t.Helper()
	bin, err1 := exec.LookPath("irssi")
	tmux, err2 := exec.LookPath("tmux")
	if err1 != nil || err2 != nil {
		if os.Getenv("CHATD_REQUIRE_IRC") != "" {
			t.Fatal("CHATD_REQUIRE_IRC is set but irssi or tmux is missing (Debian: apt-get install irssi tmux)")
		}
		t.Skip("irssi or tmux is not installed (Debian: apt-get install irssi tmux); CHATD_REQUIRE_IRC=1 makes this a failure")
	}
	c := &irssi{t: t, tmux: tmux, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	host, port, _ := net.SplitHostPort(addr)
	c.run("new-session", "-d", "-s", "irc", "-x", "220", "-y", "50",
		bin+" --home="+t.TempDir()+" -n "+nick+" -c "+host+" -p "+port)
	t.Cleanup(func() { c.run("kill-server") })
	c.waitScreen("Welcome to the chatd chat, " + nick)
	return c
}

func (c *irssi) run(args ...string) string {
	out, _ := exec.Command(c.tmux, append([]string{"-S", c.sock}, args...)...).CombinedOutput()
	return string(out)
}

// screen is what irssi shows in its current window.
func (c *irssi) screen() string { return c.run("capture-pane", "-p", "-J", "-t", "irc") }

// waitScreen waits until the current window shows want.
func (c *irssi) waitScreen(want string) {
	c.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		if strings.Contains(c.screen(), want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("irssi never showed %q; its screen:\n%s", want, c.screen())
}

// typeLine types s and Enter.
func (c *irssi) typeLine(s string) {
	c.run("send-keys", "-t", "irc", "-l", s)
	c.run("send-keys", "-t", "irc", "Enter")
}

// A real IRC client, irssi in tmux, joins a room and exchanges lines, an
// action and private messages with an nc user.
func TestIRCIrssi(t *testing.T) {
	m := mustRunMain(t, "--irc", "127.0.0.1:0")
	alice := join(t, m.ChatAddr().String(), "alice")
	alice.Send("said before bob came\n")
	alice.Expect("alice: said before bob came")

	bob := startIrssi(t, m.IRCAddr().String(), "bob")
	bob.typeLine("/join #lobby")
	alice.Expect("bob joined!")
	bob.waitScreen("said before bob came") // the replay, between the server's NOTICEs
	bob.waitScreen("--- live ---")

	bob.typeLine("hello from irssi")
	alice.Expect("bob: hello from irssi")
	alice.Send("hello from nc\n")
	bob.waitScreen("hello from nc")
	bob.typeLine("/me waves")
	alice.Expect("* bob waves")
	alice.Send("/me dances\n")
	bob.waitScreen("alice dances")

	bob.typeLine("/msg alice a private word")
	alice.Expect("*** private from bob: a private word")
	alice.Send("/msg bob a private answer\n")
	bob.typeLine("/query alice")
	bob.waitScreen("a private answer")

	bob.typeLine("/window 2")
	alice.Send("/quit\n")
	bob.waitScreen("alice")
	bob.waitScreen("has quit")
}

// irssi, an nc user and a browser user share a room: lines, actions,
// private messages, joins and parts, each way between every two of them.
func TestIRCIrssiBrowser(t *testing.T) {
	b := newBrowser(t)
	m := mustRunMain(t, "--irc", "127.0.0.1:0")
	alice := join(t, m.ChatAddr().String(), "alice")
	b.login("http://"+m.HTTPAddr().String()+"/", "carol")
	alice.Expect("carol joined!")

	bob := startIrssi(t, m.IRCAddr().String(), "bob")
	bob.typeLine("/join #lobby")
	alice.Expect("bob joined!")
	b.waitJS("bob joined", `[...document.querySelectorAll('#log .msg.system')].some(d => d.dataset.kind === 'join' && d.dataset.nick === 'bob')`)
	bob.typeLine("/names")
	bob.waitScreen("carol")

	// Lines.
	bob.typeLine("hello from irssi")
	alice.Expect("bob: hello from irssi")
	b.waitJS("irssi's line", shows("say", "bob", "hello from irssi"))
	b.say("hello from the browser")
	alice.Expect("carol: hello from the browser")
	bob.waitScreen("hello from the browser")
	alice.Send("hello from nc\n")
	bob.waitScreen("hello from nc")
	b.waitJS("nc's line", shows("say", "alice", "hello from nc"))

	// Actions.
	bob.typeLine("/me waves at everyone")
	alice.Expect("* bob waves at everyone")
	b.waitJS("irssi's action", shows("me", "bob", "waves at everyone"))
	b.say("/me waves from the page")
	alice.Expect("* carol waves from the page")
	bob.waitScreen("carol waves from the page")

	// Parts and joins: the browser user goes to #dev and back; bob follows
	// it there and leaves again.
	b.do(chromedp.SetValue(chromedp.ID("join-room"), "dev"), chromedp.Click(chromedp.CSS("#join-form button")))
	alice.Expect("carol left!")
	bob.waitScreen("carol")
	bob.waitScreen("has left #lobby")
	b.waitJS("in #dev", `document.getElementById('room-name').textContent === '#dev'`)
	bob.typeLine("/join #dev")
	b.waitJS("bob joined #dev", `[...document.querySelectorAll('#log .msg.system')].some(d => d.dataset.kind === 'join' && d.dataset.nick === 'bob' && !d.classList.contains('history'))`)
	bob.typeLine("a line in #dev")
	b.waitJS("bob's line in #dev", shows("say", "bob", "a line in #dev"))
	bob.typeLine("/part #dev")
	b.waitJS("bob left #dev", `[...document.querySelectorAll('#log .msg.system')].some(d => d.dataset.kind === 'leave' && d.dataset.nick === 'bob')`)
	b.do(chromedp.SetValue(chromedp.ID("join-room"), "lobby"), chromedp.Click(chromedp.CSS("#join-form button")))
	alice.Expect("carol joined!")
	bob.waitScreen("has joined #lobby")

	// Private messages, both ways between irssi and the others.
	b.say("/msg bob a private word from the page")
	bob.typeLine("/query carol")
	bob.waitScreen("a private word from the page")
	bob.typeLine("a private answer to the page")
	b.waitJS("private from bob", fmt.Sprintf(`[...document.querySelectorAll('#log .msg.private')].some(d => d.dataset.nick === 'bob' && d.textContent.includes(%s))`,
		jsString("a private answer to the page")))
	bob.typeLine("/msg alice a private word for nc")
	alice.Expect("*** private from bob: a private word for nc")
	alice.Send("/msg bob a private answer from nc\n")
	bob.typeLine("/query alice")
	bob.waitScreen("a private answer from nc")

	// nc leaves: the others see it go.
	bob.typeLine("/window 2")
	alice.Send("/quit\n")
	bob.waitScreen("has quit")
	b.waitJS("alice left", `[...document.querySelectorAll('#log .msg.system')].some(d => d.dataset.kind === 'leave' && d.dataset.nick === 'alice')`)
	b.screenshot("irc-irssi-browser.png")
	b.checkNoErrors()
}
