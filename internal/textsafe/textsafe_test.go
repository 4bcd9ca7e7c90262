package textsafe

import "testing"

func TestSanitize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"ASCII", "hello, world", "hello, world"},
		{"ASCII trimmed", "  hello  ", "hello"},
		{"empty", "", ""},
		{"spaces", "    ", ""},
		{"accents", "héllo wörld, ça va ?", "héllo wörld, ça va ?"},
		{"emoji", "ok 👍🏽 🇫🇷 👨‍👩‍👧", "ok 👍🏽 🇫🇷 👨‍👩‍👧"},
		{"CJK and RTL text", "你好 שלום مرحبا", "你好 שלום مرحبا"},
		{"U+FFFD kept", "a\uFFFDb", "a\uFFFDb"},
		{"invalid byte", "a\xffb", "a\uFFFDb"},
		{"invalid run", "a\xff\xfe\xc0b", "a\uFFFDb"},
		{"truncated rune", "caf\xc3", "caf\uFFFD"},
		{"surrogate", "a\xed\xa0\x80b", "a\uFFFDb"},
		{"overlong encoding", "\xc0\xafetc", "\uFFFDetc"},
		{"Latin-1", "caf\xe9 cr\xe8me", "caf\uFFFD cr\uFFFDme"},
		{"clear screen", "\x1b[2J\x1b[Hhi", "hi"},
		{"colours", "\x1b[1;31mred\x1b[0m text", "red text"},
		{"CSI private", "\x1b[?1049hx\x1b[?25l", "x"},
		{"CSI intermediate", "a\x1b[1 qb", "ab"},
		{"window title BEL", "\x1b]0;title\x07hello", "hello"},
		{"window title ST", "\x1b]2;pwned\x1b\\hello", "hello"},
		{"OSC 8 hyperlink", "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"OSC 52 clipboard", "a\x1b]52;c;cm0gLXJmIH4K\x07b", "ab"},
		{"unterminated OSC", "hi \x1b]0;rest of line", "hi"},
		{"DCS", "a\x1bPq#0;2;0;0;0#0~~@@\x1b\\b", "ab"},
		{"APC PM SOS", "1\x1b_x\x1b\\2\x1b^y\x1b\\3\x1bXz\x1b\\4", "1234"},
		{"two-byte ESC", "a\x1bcb\x1b7c\x1b8d\x1bMe", "abcde"},
		{"ESC charset", "a\x1b(0lqqk\x1b(Bb", "alqqkb"},
		{"DECALN", "a\x1b#8b", "ab"},
		{"ESC ESC", "a\x1b\x1b[2Jb", "ab"},
		{"ESC at end", "abc\x1b", "abc"},
		{"ESC then non-ASCII", "a\x1bé", "aé"},
		{"ESC control in CSI", "a\x1b[2\x08J", "a"},
		{"CAN cancels", "a\x1b[2\x18Jb", "aJb"},
		{"SUB cancels OSC", "a\x1b]0;t\x1ab", "ab"},
		{"C1 CSI", "\xc2\x9b31mred", "red"},
		{"C1 OSC", "\xc2\x9d0;title\xc2\x9chi", "hi"},
		{"C1 DCS", "a\xc2\x90junk\xc2\x9cb", "ab"},
		{"C1 NEL IND", "a\xc2\x85b\xc2\x84c", "abc"},
		{"raw 8-bit CSI is invalid UTF-8", "\x9b2Jx", "\uFFFD2Jx"},
		{"BEL", "ding\x07\x07", "ding"},
		{"backspace overwrite", "evil\b\b\b\bgood", "evilgood"},
		{"CR overwrite", "I agree\rI refuse", "I agreeI refuse"},
		{"VT FF NUL DEL", "a\vb\fc\x00d\x7fe", "abcde"},
		{"tab", "a\tb", "a b"},
		{"tabs trimmed", "\t\ta\t\t", "a"},
		{"bidi override", "abc\u202edcb\u202c", "abcdcb"},
		{"bidi embeddings", "\u202aa\u202bb\u202c", "ab"},
		{"bidi isolates", "\u2066a\u2067b\u2068c\u2069", "abc"},
		{"bidi marks", "a\u200eb\u200fc\u061cd", "abcd"},
		{"zero width joiner kept", "a\u200db", "a\u200db"},
		{"only controls", "\x1b[2J\x07\x08\r\x00", ""},
		{"only bidi and spaces", " \u202e \u2066 ", ""},
		{"unicode spaces trimmed", "\u00a0\u3000hi\u2003", "hi"},
		{"control then spaces", "\x07  hi  \x1b[0m", "hi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sanitize([]byte(tt.in)); got != tt.want {
				t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSanitizeASCIIOneAlloc(t *testing.T) {
	line := []byte("bob: see you at the meeting tomorrow at 10, room 4.2")
	var s string
	if a := testing.AllocsPerRun(100, func() { s = Sanitize(line) }); a != 1 {
		t.Errorf("Sanitize(ASCII) allocates %v times, want 1", a)
	}
	line[0] = 'B' // the result must not alias the caller's buffer
	if s[0] != 'b' {
		t.Error("sanitize result shares memory with its argument")
	}
}

// The terminal client keeps the white space at either end; everything else
// is as Sanitize.
func TestKeepSpace(t *testing.T) {
	keep := Options{KeepSpace: true}
	for in, want := range map[string]string{
		"plain text":                       "plain text",
		"  indented  ":                     "  indented  ",
		"a\tb":                             "a b",
		"\x1b[1;31mred\x1b[0m":             "red",
		"title\x1b]0;x\x07!":               "title!",
		"title\x1b]8;;http://x\x1b\\link":  "titlelink",
		"dcs\x1bPq#0;2;0;0;0\x1b\\end":     "dcsend",
		"bell\a back\b cr\r del\x7f":       "bell back cr del",
		"c1 \u009b2J csi \u0085nel":        "c1  csi nel",
		"bidi \u202etxt.exe\u202c \u2066x": "bidi txt.exe x",
		"bad \xff\xfe utf8":                "bad \ufffd utf8",
		"esc then é \x1bé":                 "esc then é é",
		"unterminated \x1b]0;rest":         "unterminated ",
		"héllo wörld ✓":                    "héllo wörld ✓",
	} {
		if got := keep.Sanitize([]byte(in)); got != want {
			t.Errorf("KeepSpace: Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}
