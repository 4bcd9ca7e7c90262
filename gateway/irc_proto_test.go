package gateway

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseIRC(t *testing.T) {
	for _, tc := range []struct {
		in      string
		cmd     string
		params  []string
		tooLong bool
		ok      bool
	}{
		{in: "PRIVMSG #dev :hi there", cmd: "PRIVMSG", params: []string{"#dev", "hi there"}, ok: true},
		{in: "privmsg #dev hi", cmd: "PRIVMSG", params: []string{"#dev", "hi"}, ok: true},
		{in: "@time=x;+a=b :nick!u@h PRIVMSG #dev ::colon", cmd: "PRIVMSG", params: []string{"#dev", ":colon"}, ok: true},
		{in: "NICK   bob  ", cmd: "NICK", params: []string{"bob"}, ok: true},
		{in: "USER a 0 * :", cmd: "USER", params: []string{"a", "0", "*", ""}, ok: true},
		{in: "001 x", cmd: "001", params: []string{"x"}, ok: true},
		{in: "CAP LS 302", cmd: "CAP", params: []string{"LS", "302"}, ok: true},
		{in: "A 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", cmd: "A", params: []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15 16"}, ok: true},
		{in: "G€T /", cmd: ircBadCommand, ok: true},
		{in: "", ok: false},
		{in: "   ", ok: false},
		{in: ":prefix-only", ok: false},
		{in: "@tags-only", ok: false},
		{in: "PRIVMSG #a :" + strings.Repeat("x", 498), cmd: "PRIVMSG", params: []string{"#a", strings.Repeat("x", 498)}, ok: true},
		{in: "PRIVMSG #a :" + strings.Repeat("x", 499), tooLong: true},
		{in: "@" + strings.Repeat("t", 4094) + " PING x", cmd: "PING", params: []string{"x"}, ok: true},
		{in: "@" + strings.Repeat("t", 4095) + " PING x", tooLong: true},
	} {
		m, tooLong, ok := parseIRC([]byte(tc.in))
		if tooLong != tc.tooLong || ok != tc.ok || m.command != tc.cmd || !slices.Equal(m.params, tc.params) {
			t.Errorf("parseIRC(%.40q) = %q %q tooLong=%v ok=%v, want %q %q %v %v", tc.in, m.command, m.params, tooLong, ok, tc.cmd, tc.params, tc.tooLong, tc.ok)
		}
	}
}

func TestIRCText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind ircTextKind
		text string
	}{
		{"hello", ircPlain, "hello"},
		{"\x01ACTION waves\x01", ircAction, "waves"},
		{"\x01action waves", ircAction, "waves"},
		{"\x01VERSION\x01", ircCTCP, "VERSION"},
		{"\x02bold\x02 \x0304,12red\x03 \x1ditalic\x0f \x04ff00ffhex", ircPlain, "bold red italic hex"},
		{"\x0399x", ircPlain, "x"},
		{"\x03,5x", ircPlain, ",5x"},
		{"a\x1b[2Jb\x07c\r\nd", ircPlain, "abcd"},
		{"bad \xff utf8", ircPlain, "bad \uFFFD utf8"},
	} {
		kind, text := ircText(tc.in)
		if kind != tc.kind || text != tc.text {
			t.Errorf("ircText(%q) = %v %q, want %v %q", tc.in, kind, text, tc.kind, tc.text)
		}
	}
}

// A chat line longer than an IRC line is split into lines of at most 512
// bytes without tags, at rune boundaries, and nothing is lost.
func TestIRCSplit(t *testing.T) {
	text := strings.Repeat("héllo wörld ", 400)
	ev := &event{kind: KindSay, room: "dev", nick: "alice", text: strings.TrimSpace(text), at: time.Now()}
	f := ircCodec{}.event(ev)
	var got strings.Builder
	for _, line := range strings.SplitAfter(string(f), "\r\n") {
		if line == "" {
			continue
		}
		body := untagged(line)
		if len(body) > ircMaxMsg {
			t.Fatalf("line of %d bytes", len(body))
		}
		_, msg, ok := strings.Cut(body, " :")
		if !ok || !strings.HasPrefix(body, ":alice!alice@chatd PRIVMSG #dev :") {
			t.Fatalf("line %q", body)
		}
		got.WriteString(strings.TrimSuffix(msg, "\r\n"))
		got.WriteByte(' ')
	}
	if strings.Join(strings.Fields(got.String()), " ") != strings.Join(strings.Fields(text), " ") {
		t.Errorf("split lost text")
	}
}

func untagged(line string) string {
	if strings.HasPrefix(line, "@") {
		_, rest, _ := strings.Cut(line, " ")
		return rest
	}
	return line
}

// FuzzIRCParse runs any bytes through the IRC framer and parser: no panic,
// lines without CR or LF and within the bound, and a parsed message is
// well-formed: a command of letters or three digits, at most 15
// parameters, only the last empty, holding a space or starting with ':';
// and the text made of the last is clean (CleanText).
func FuzzIRCParse(f *testing.F) {
	for _, s := range []string{
		"PRIVMSG #dev :hi\r\n",
		"@time=2026-01-01T00:00:00.000Z;+typing=active :a!b@c PRIVMSG #x :\x01ACTION y\x01\r\n",
		"NICK bob\nUSER b 0 * :B\r\nCAP LS 302\rCAP END\r\n",
		"PRIVMSG #a :\x00nul\x00\r\n",
		"PRIVMSG #a :cr\rinside\r\n",
		strings.Repeat("x", 9000) + "\r\nPING a\r\n",
		"@" + strings.Repeat("t", 5000) + " PING x\r\n",
		": \r\n@ \r\n:\r\n@\r\n",
		"A 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 :17\r\n",
	} {
		f.Add([]byte(s), 7)
	}
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		fr := ircFramer{max: ircMaxLine}
		emit := func(line []byte, tooLong bool) {
			if tooLong {
				if line != nil {
					t.Fatal("tooLong with a line")
				}
				return
			}
			if len(line) == 0 || len(line) > ircMaxLine || bytes.ContainsAny(line, "\r\n") {
				t.Fatalf("framer line %q", line)
			}
			m, long, ok := parseIRC(line)
			if long || !ok {
				return
			}
			if m.command != ircBadCommand {
				if !validCommand([]byte(m.command)) || strings.ToUpper(m.command) != m.command {
					t.Fatalf("command %q", m.command)
				}
			}
			if len(m.params) > ircMaxParams {
				t.Fatalf("%d params", len(m.params))
			}
			for i, p := range m.params {
				if i < len(m.params)-1 && (p == "" || strings.Contains(p, " ") || strings.HasPrefix(p, ":")) {
					t.Fatalf("middle param %q", p)
				}
			}
			if len(m.params) > 0 {
				kind, text := ircText(m.params[len(m.params)-1])
				if kind != ircCTCP && !CleanText(text) && text != "" {
					t.Fatalf("text %q is not clean", text)
				}
			}
		}
		if cut < 0 {
			cut = -cut
		}
		cut %= len(data) + 1
		fr.feed(data[:cut], emit)
		fr.feed(data[cut:], emit)
		if len(fr.buf) > ircMaxLine {
			t.Fatalf("framer holds %d bytes", len(fr.buf))
		}
	})
}
