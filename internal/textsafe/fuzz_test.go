package textsafe

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

// seeds are inputs for FuzzSanitize.
var seeds = []string{
	"hello, world", "  hello  ", "", "héllo wörld", "ok 👍🏽 🇫🇷 👨‍👩‍👧", "你好 שלום مرحبا",
	"a\uFFFDb", "a\xff\xfe\xc0b", "caf\xc3", "a\xed\xa0\x80b", "caf\xe9",
	"\x1b[2J\x1b[Hhi", "\x1b[1;31mred\x1b[0m", "\x1b[?1049h", "\x1b]0;title\x07hello",
	"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "\x1b]52;c;cm0K\x07", "hi \x1b]0;rest",
	"a\x1bPq#0~~\x1b\\b", "1\x1b_x\x1b\\2\x1b^y\x1b\\3\x1bXz\x1b\\4", "a\x1bcb\x1b7c", "a\x1b(0lqk\x1b(Bb",
	"a\x1b#8b", "a\x1b\x1b[2Jb", "abc\x1b", "a\x1bé", "a\x1b[2\x08J", "a\x1b[2\x18Jb",
	"\xc2\x9b31mred", "\xc2\x9d0;t\xc2\x9chi", "a\xc2\x90x\xc2\x9cb", "\x9b2J", "ding\x07",
	"evil\b\b\b\bgood", "I agree\rI refuse", "a\vb\fc\x00d\x7fe", "\ta\tb\t",
	"abc\u202edcb\u202c", "\u2066a\u2069", "a\u200eb\u200fc\u061cd", " \u202e ", "\u00a0\u3000hi\u2003",
	"\x1b \u00a0x", "\xff \x1b[m\xff",
}

func FuzzSanitize(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out := Sanitize(data)
		if !utf8.ValidString(out) {
			t.Fatalf("Sanitize(%q) = %q: invalid UTF-8", data, out)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("Sanitize(%q) = %q: holds byte %#x", data, out, c)
			}
		}
		for _, r := range out {
			if r >= 0x80 && r <= 0x9f || IsBidiControl(r) {
				t.Fatalf("Sanitize(%q) = %q: holds %U", data, out, r)
			}
		}
		if strings.TrimSpace(out) != out {
			t.Fatalf("Sanitize(%q) = %q: not trimmed", data, out)
		}
		if again := Sanitize([]byte(out)); again != out {
			t.Fatalf("Sanitize(%q) = %q, but Sanitize of that = %q", data, out, again)
		}
		if slow := sanitizeSlow(data, true); slow != out {
			t.Fatalf("Sanitize(%q) = %q, but the slow path gives %q", data, out, slow)
		}
		// KeepSpace differs only in the white space it keeps.
		if kept := (Options{KeepSpace: true}).Sanitize(data); strings.TrimSpace(kept) != out {
			t.Fatalf("Sanitize(%q) = %q, but with KeepSpace %q", data, out, kept)
		}
		// Text with nothing to remove is only trimmed.
		if utf8.Valid(data) && !bytes.ContainsFunc(data, func(r rune) bool {
			return r < 0x20 || r >= 0x7f && r <= 0x9f || IsBidiControl(r)
		}) {
			if want := strings.TrimSpace(string(data)); out != want {
				t.Fatalf("Sanitize(%q) = %q, want %q", data, out, want)
			}
		}
	})
}

// Clean is exactly "Sanitize would leave it as it is": the bus side accepts
// no text the gateway side would have changed, and refuses none it would
// have kept.
func FuzzClean(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := string(data)
		if got, want := Clean(s), Sanitize(data) == s; got != want {
			t.Fatalf("Clean(%q) = %v, but Sanitize gives %q", s, got, Sanitize(data))
		}
		if Clean(s) && !utf8.ValidString(s) {
			t.Fatalf("Clean(%q): invalid UTF-8 accepted", s)
		}
	})
}
