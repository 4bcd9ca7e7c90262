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

// weechat is a real IRC client, WeeChat without a terminal
// (weechat-headless): commands go in through its FIFO, and what it shows
// is read from its logs, one file per buffer, written at once.
type weechat struct {
	t    testing.TB
	home string
	fifo string
}

// startWeeChat starts WeeChat as nick, connected to addr and joining
// #lobby. It is skipped when weechat-headless is missing, unless
// CHATD_REQUIRE_IRC is set (CI sets it).
func startWeeChat(t testing.TB, addr, nick string) *weechat {
	t.Helper()
	bin, err := exec.LookPath("weechat-headless")
	if err != nil {
		if os.Getenv("CHATD_REQUIRE_IRC") != "" {
			t.Fatal("CHATD_REQUIRE_IRC is set but weechat-headless is missing (Debian: apt-get install weechat-headless)")
		}
		t.Skip("weechat-headless is not installed (Debian: apt-get install weechat-headless); CHATD_REQUIRE_IRC=1 makes this a failure")
	}
	home := t.TempDir()
	w := &weechat{t: t, home: home, fifo: filepath.Join(home, "fifo")}
	host, port, _ := net.SplitHostPort(addr)
	setup := strings.Join([]string{
		"/set logger.file.flush_delay 0",
		"/set logger.file.path " + filepath.Join(home, "logs"),
		"/set fifo.file.path " + w.fifo,
		"/set fifo.file.enabled on",
		"/server add chatd " + host + "/" + port + " -notls -nicks=" + nick + " -username=" + nick + " -realname=" + nick + " -autojoin=#lobby",
		"/connect chatd",
	}, ";")
	cmd := exec.Command(bin, "--dir", home, "--plugins", "irc,logger,fifo", "--run-command", setup)
	cmd.Stdout, cmd.Stderr = &testLog{t: t}, &testLog{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	w.waitLog("irc.server.chatd", "Welcome to the chatd chat, "+nick)
	return w
}

// do runs command (or says text) in buffer (e.g. "irc.chatd.#lobby",
// "irc.server.chatd"), as if typed there.
func (w *weechat) do(buffer, command string) {
	w.t.Helper()
	f, err := os.OpenFile(w.fifo, os.O_WRONLY, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(buffer + " *" + command + "\n"); err != nil {
		w.t.Fatal(err)
	}
}

// log is what WeeChat logged in buffer so far.
func (w *weechat) log(buffer string) string {
	b, _ := os.ReadFile(filepath.Join(w.home, "logs", buffer+".weechatlog"))
	return string(b)
}

// waitLog waits until buffer's log shows a line containing every one of
// want, in that order.
func (w *weechat) waitLog(buffer string, want ...string) {
	w.t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		for line := range strings.SplitSeq(w.log(buffer), "\n") {
			if containsInOrder(line, want) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.t.Fatalf("WeeChat's %s never showed %q; its log:\n%s", buffer, want, w.log(buffer))
}

func containsInOrder(s string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return true
}

// A second real IRC client, WeeChat, negotiates its capabilities, joins a
// room and exchanges lines, actions and private messages with an nc user.
func TestIRCWeeChat(t *testing.T) {
	m := mustRunMain(t, "--irc", "127.0.0.1:0")
	alice := join(t, m.ChatAddr().String(), "alice")
	alice.Send("said before carl came\n")
	alice.Expect("alice: said before carl came")

	carl := startWeeChat(t, m.IRCAddr().String(), "carl")
	carl.waitLog("irc.server.chatd", "client capability, enabled:", "server-time")
	alice.Expect("carl joined!")
	const lobby = "irc.chatd.#lobby"
	carl.waitLog(lobby, "alice", "said before carl came") // the replay
	carl.waitLog(lobby, "--- live ---")

	carl.do(lobby, "hello from weechat")
	alice.Expect("carl: hello from weechat")
	alice.Send("hello from nc\n")
	carl.waitLog(lobby, "\talice\thello from nc")

	carl.do(lobby, "/me waves")
	alice.Expect("* carl waves")
	alice.Send("/me dances\n")
	carl.waitLog(lobby, "alice dances")

	carl.do(lobby, "/msg alice a private word")
	alice.Expect("*** private from carl: a private word")
	alice.Send("/msg carl a private answer\n")
	carl.waitLog("irc.chatd.alice", "alice", "a private answer")

	carl.do(lobby, "/names")
	carl.waitLog(lobby, "alice", "carl")

	alice.Send("/quit\n")
	carl.waitLog(lobby, "alice", "has quit")
	carl.do(lobby, "/part")
	carl.waitLog(lobby, "carl", "has left #lobby")
}
