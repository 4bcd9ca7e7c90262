package termclient

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// Home and End work in the line editor whichever sequence the terminal
// sends for them (tmux, screen, the Linux console, rxvt, xterm), also when
// a sequence arrives split across reads.
func TestHomeEndKeys(t *testing.T) {
	keys := []struct{ name, home, end string }{
		{"xterm", "\x1b[H", "\x1b[F"},
		{"tmux, screen, linux console", "\x1b[1~", "\x1b[4~"},
		{"rxvt", "\x1b[7~", "\x1b[8~"},
		{"application cursor mode", "\x1bOH", "\x1bOF"},
	}
	for _, k := range keys {
		for _, split := range []bool{false, true} {
			name := k.name
			if split {
				name += ", one byte a read"
			}
			t.Run(name, func(t *testing.T) {
				typed := "bc" + k.home + "a" + k.end + "d\r" + "xy" + k.home + k.home + "w" + k.end + "z\r"
				var in io.Reader = strings.NewReader(typed)
				if split {
					in = iotest.OneByteReader(in)
				}
				con := newTermConsole(in, io.Discard, "> ")
				for _, want := range []string{"abcd", "wxyz"} {
					got, err := con.ReadLine()
					if err != nil || got != want {
						t.Fatalf("ReadLine = %q, %v; want %q", got, err, want)
					}
				}
			})
		}
	}
}

// Other escape sequences pass through untouched: the editor's own keys
// (arrows, Delete, bracketed paste) and keys it ignores (F5).
func TestRewriteKeysLeavesOthers(t *testing.T) {
	for _, s := range []string{"\x1b[A\x1b[D", "\x1b[3~", "\x1b[15~", "\x1b[200~pasted\x1b[201~", "\x1b[1;3C", "plain", "\x1bx"} {
		out, held := rewriteKeys([]byte(s))
		if string(out) != s || held != nil {
			t.Errorf("rewriteKeys(%q) = %q, held %q", s, out, held)
		}
	}
	out, held := rewriteKeys([]byte("ab\x1b[1"))
	if string(out) != "ab" || !bytes.Equal(held, []byte("\x1b[1")) {
		t.Errorf("a split Home: %q, held %q", out, held)
	}
	// The input ends within what might have been a sequence: it is passed on.
	k := newKeyReader(strings.NewReader("x\x1bO"))
	got, err := io.ReadAll(k)
	if string(got) != "x\x1bO" || err != nil {
		t.Errorf("ReadAll = %q, %v", got, err)
	}
}
