package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A real IRC client, irssi in tmux, joins a room and exchanges lines, an
// action and private messages with an nc user. It is skipped when irssi or
// tmux is missing, unless CHATD_REQUIRE_IRC is set (CI sets it).
func TestIRCIrssi(t *testing.T) {
	irssi, err1 := exec.LookPath("irssi")
	tmux, err2 := exec.LookPath("tmux")
	if err1 != nil || err2 != nil {
		if os.Getenv("CHATD_REQUIRE_IRC") != "" {
			t.Fatal("CHATD_REQUIRE_IRC is set but irssi or tmux is missing (Debian: apt-get install irssi tmux)")
		}
		t.Skip("irssi or tmux is not installed (Debian: apt-get install irssi tmux); CHATD_REQUIRE_IRC=1 makes this a failure")
	}
	m := mustRunMain(t, "--irc", "127.0.0.1:0")
	alice := join(t, m.ChatAddr().String(), "alice")
	alice.send("said before bob came\n")
	alice.expect("alice: said before bob came")

	home := t.TempDir()
	sock := filepath.Join(t.TempDir(), "tmux.sock")
	run := func(args ...string) string {
		out, _ := exec.Command(tmux, append([]string{"-S", sock}, args...)...).CombinedOutput()
		return string(out)
	}
	_, port, _ := net.SplitHostPort(m.IRCAddr().String())
	run("new-session", "-d", "-s", "irc", "-x", "220", "-y", "50",
		irssi+" --home="+home+" -n bob -c 127.0.0.1 -p "+port)
	t.Cleanup(func() { run("kill-server") })
	screen := func() string { return run("capture-pane", "-p", "-J", "-t", "irc") }
	waitScreen := func(want string) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for time.Now().Before(deadline) {
			if strings.Contains(screen(), want) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("irssi never showed %q; its screen:\n%s", want, screen())
	}
	typeLine := func(s string) {
		run("send-keys", "-t", "irc", "-l", s)
		run("send-keys", "-t", "irc", "Enter")
	}

	waitScreen("Welcome to the chatd chat, bob")
	typeLine("/join #lobby")
	alice.expect("bob joined!")
	waitScreen("said before bob came") // the replay, between the server's NOTICEs
	waitScreen("--- live ---")

	typeLine("hello from irssi")
	alice.expect("bob: hello from irssi")
	alice.send("hello from nc\n")
	waitScreen("hello from nc")
	typeLine("/me waves")
	alice.expect("* bob waves")
	alice.send("/me dances\n")
	waitScreen("alice dances")

	typeLine("/msg alice a private word")
	alice.expect("*** private from bob: a private word")
	alice.send("/msg bob a private answer\n")
	typeLine("/query alice")
	waitScreen("a private answer")

	typeLine("/window 2")
	alice.send("/quit\n")
	waitScreen("alice")
	waitScreen("has quit")
}
