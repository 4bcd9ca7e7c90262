package gateway

import (
	"slices"
	"strings"
	"testing"
)

// flushMark in a framer test's input calls flush instead of feed.
const flushMark = "<flush>"

// tooLongMark stands for emit(nil, true) in a framer test's output.
const tooLongMark = "<too long>"

// runFramer feeds each element of in to a new framer of the given limit (or
// flushes at flushMark) and returns what it emitted.
func runFramer(t testing.TB, max int, in []string) (got []string, f *framer) {
	t.Helper()
	f = newFramer(max)
	emit := func(line []byte, tooLong bool) {
		if tooLong {
			if line != nil {
				t.Errorf("emit(%q, true): want a nil line with tooLong", line)
			}
			got = append(got, tooLongMark)
			return
		}
		got = append(got, string(line))
	}
	for _, s := range in {
		if s == flushMark {
			f.flush(emit)
			continue
		}
		f.feed([]byte(s), emit)
	}
	return got, f
}

func TestFramer(t *testing.T) {
	sb64 := "\xff\xfa" + strings.Repeat("a", maxSubneg)
	tests := []struct {
		name    string
		max     int // 0: 4096
		in      []string
		want    []string
		pending bool
	}{
		// Line ends.
		{name: "LF", in: []string{"hi\n"}, want: []string{"hi"}},
		{name: "CRLF", in: []string{"hi\r\n"}, want: []string{"hi"}},
		{name: "CR NUL", in: []string{"hi\r\x00"}, want: []string{"hi"}},
		{name: "CRLF split", in: []string{"hi\r", "\n"}, want: []string{"hi"}},
		{name: "CR NUL split", in: []string{"hi\r", "\x00"}, want: []string{"hi"}},
		{name: "lone CR then NUL", in: []string{"\r", "\x00"}, want: []string{""}},
		{name: "CR then LF in third feed", in: []string{"h", "i\r", "", "\n"}, want: []string{"hi"}},
		{name: "bare CR stays in line", in: []string{"a\rb\n"}, want: []string{"a\rb"}},
		{name: "bare CR split", in: []string{"a\r", "b\n"}, want: []string{"a\rb"}},
		{name: "CR CR LF", in: []string{"a\r\r\n"}, want: []string{"a\r"}},
		{name: "LF CR", in: []string{"a\n\rb\n"}, want: []string{"a", "\rb"}},
		{name: "several lines in one feed", in: []string{"a\nb\r\nc\r\x00d\n"}, want: []string{"a", "b", "c", "d"}},
		{name: "empty lines", in: []string{"\n\r\n\r\x00"}, want: []string{"", "", ""}},
		{name: "line split over feeds", in: []string{"he", "ll", "o\nwor", "ld\n"}, want: []string{"hello", "world"}},

		// Partial lines and pauses.
		{name: "partial", in: []string{"hi"}, want: nil, pending: true},
		{name: "partial CR", in: []string{"hi\r"}, want: nil, pending: true},
		{name: "partial then flush", in: []string{"hi", flushMark}, want: []string{"hi"}},
		{name: "partial CR then flush", in: []string{"hi\r", flushMark}, want: []string{"hi"}},
		{name: "flush then late LF", in: []string{"hi", flushMark, "\n", "next\n"}, want: []string{"hi", "next"}},
		{name: "flush then late CRLF", in: []string{"hi\r", flushMark, "\n", "next\n"}, want: []string{"hi", "next"}},
		{name: "flush then late CR NUL", in: []string{"hi", flushMark, "\r\x00\n"}, want: []string{"hi", ""}},
		{name: "flush then text", in: []string{"al", flushMark, "ice", flushMark}, want: []string{"al", "ice"}},
		{name: "flush with nothing pending", in: []string{flushMark, "\n"}, want: []string{""}},
		{name: "classic client", in: []string{"alice", flushMark, "alice: hi", flushMark}, want: []string{"alice", "alice: hi"}},
		{name: "nothing", in: []string{""}, want: nil},

		// Line limit.
		{name: "exactly max", max: 5, in: []string{"abcde\n"}, want: []string{"abcde"}},
		{name: "exactly max CRLF", max: 5, in: []string{"abcde\r\n"}, want: []string{"abcde"}},
		{name: "exactly max CR NUL", max: 5, in: []string{"abcde\r\x00"}, want: []string{"abcde"}},
		{name: "exactly max then flush", max: 5, in: []string{"abcde", flushMark}, want: []string{"abcde"}},
		{name: "max+1", max: 5, in: []string{"abcdef\nnext\n"}, want: []string{tooLongMark, "next"}},
		{name: "max+1 by bare CR", max: 5, in: []string{"abcde\rx\nok\n"}, want: []string{tooLongMark, "ok"}},
		{name: "overlong over feeds", max: 5, in: []string{"abc", "def", "ghij", "klm\nok\n"}, want: []string{tooLongMark, "ok"}},
		{name: "overlong much longer", max: 5, in: []string{strings.Repeat("x", 100) + "\r\nok\r\n"}, want: []string{tooLongMark, "ok"}},
		{name: "overlong pending", max: 5, in: []string{"abcdefgh"}, want: []string{tooLongMark}, pending: true},
		{name: "overlong then flush resets", max: 5, in: []string{"abcdefgh", flushMark, "ok", flushMark}, want: []string{tooLongMark, "ok"}},
		{name: "overlong flush late LF", max: 5, in: []string{"abcdefgh", flushMark, "\nok\n"}, want: []string{tooLongMark, "ok"}},
		{name: "two overlong", max: 3, in: []string{"abcd\nefgh\nij\n"}, want: []string{tooLongMark, tooLongMark, "ij"}},

		// Telnet.
		{name: "IAC WILL ECHO", in: []string{"\xff\xfb\x01hi\n"}, want: []string{"hi"}},
		{name: "IAC DO DONT WONT", in: []string{"\xff\xfd\x03\xff\xfe\x22\xff\xfc\x1fhi\n"}, want: []string{"hi"}},
		{name: "IAC NOP in text", in: []string{"h\xff\xf1i\n"}, want: []string{"hi"}},
		{name: "IAC IAC", in: []string{"a\xff\xffb\n"}, want: []string{"ab"}},
		{name: "IAC option is a line end byte", in: []string{"a\xff\xfb\nb\n"}, want: []string{"ab"}},
		{name: "IAC split", in: []string{"h\xff", "\xfd", "\x03i\n"}, want: []string{"hi"}},
		{name: "IAC IAC split", in: []string{"a\xff", "\xffb\n"}, want: []string{"ab"}},
		{name: "NAWS", in: []string{"\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0hi\n"}, want: []string{"hi"}},
		{name: "NAWS with line end bytes", in: []string{"\xff\xfa\x1f\x00\x0a\x00\x0d\xff\xf0hi\n"}, want: []string{"hi"}},
		{name: "SB with escaped IAC", in: []string{"\xff\xfa\x1f\xff\xff\x00\xff\xff\x18\xff\xf0hi\n"}, want: []string{"hi"}},
		{name: "SB split", in: []string{"x\xff\xfa\x18\x00xt", "erm\xff", "\xf0y\n"}, want: []string{"xy"}},
		{name: "SB bounded", in: []string{sb64 + "hi\n"}, want: []string{"hi"}},
		{name: "SB malformed end", in: []string{"\xff\xfa\x18abc\xff\xf1hi\n"}, want: []string{"hi"}},
		{name: "IAC between CR and LF", in: []string{"hi\r\xff\xf1\nok\n"}, want: []string{"hi", "ok"}},
		{name: "IAC between CR and text", in: []string{"a\r\xff\xf1b\n"}, want: []string{"a\rb"}},
		{name: "IAC does not count", max: 2, in: []string{"\xff\xfb\x01a\xff\xffb\xff\xf1\n"}, want: []string{"ab"}},
		{name: "IAC in overlong line", max: 2, in: []string{"abc\xff\xfa\x0a\xff\xf0d\nok\n"}, want: []string{tooLongMark, "ok"}},
		{name: "IAC alone not pending", in: []string{"\xff\xfa\x1f"}, want: nil, pending: false},

		// NUL.
		{name: "NUL dropped", in: []string{"a\x00b\x00\n"}, want: []string{"ab"}},
		{name: "NUL does not count", max: 2, in: []string{"a\x00\x00\x00b\n"}, want: []string{"ab"}},
		{name: "NUL alone", in: []string{"\x00\x00\n"}, want: []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, f := runFramer(t, tt.max, tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("feed %q:\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if p := f.pending(); p != tt.pending {
				t.Errorf("pending() = %v, want %v", p, tt.pending)
			}
		})
	}
}

func TestFramerDefaultMax(t *testing.T) {
	for _, max := range []int{0, -1} {
		if f := newFramer(max); f.max != defaultMaxLine {
			t.Errorf("newFramer(%d).max = %d, want %d", max, f.max, defaultMaxLine)
		}
	}
	long := strings.Repeat("x", defaultMaxLine)
	got, _ := runFramer(t, 0, []string{long + "\n" + long + "x\nok\n"})
	if len(got) != 3 || got[0] != long || got[1] != tooLongMark || got[2] != "ok" {
		t.Errorf("default limit: got %d lines %.20q", len(got), got)
	}
}

func TestFramerNoAllocs(t *testing.T) {
	f := newFramer(4096)
	in := []byte("alice: a line of chat of a quite ordinary length\r\nsecond\n\xff\xf1third\r\x00")
	n := 0
	emit := func(line []byte, tooLong bool) { n += len(line) }
	f.feed(in, emit) // warm up: the buffer grows once
	if a := testing.AllocsPerRun(100, func() { f.feed(in, emit) }); a != 0 {
		t.Errorf("feed allocates %v times per call, want 0", a)
	}
}

func TestValidNick(t *testing.T) {
	tests := []struct {
		nick, want string
	}{
		{"alice", ""},
		{"Alice", ""},
		{"a", ""},
		{"x_y-z.[w]{v}|u^", ""},
		{"007", ""},
		{strings.Repeat("n", 32), ""},
		{"", nickLenReason},
		{strings.Repeat("n", 33), nickLenReason},
		{"al ice", nickCharsReason},
		{"alice!", nickCharsReason},
		{"al:ce", nickCharsReason},
		{"alice*", nickCharsReason},
		{"a>b", nickCharsReason},
		{"ålice", nickCharsReason},
		{"alice\x00", nickCharsReason},
		{"\xff", nickCharsReason},
	}
	for _, tt := range tests {
		if got := validNick(tt.nick); got != tt.want {
			t.Errorf("validNick(%q) = %q, want %q", tt.nick, got, tt.want)
		}
	}
}

func TestRoomName(t *testing.T) {
	tests := []struct {
		in, name, reason string
	}{
		{"lobby", "lobby", ""},
		{"#lobby", "lobby", ""},
		{"Go-Nuts_2", "go-nuts_2", ""},
		{"#GO", "go", ""},
		{strings.Repeat("r", 32), strings.Repeat("r", 32), ""},
		{"#" + strings.Repeat("r", 32), strings.Repeat("r", 32), ""},
		{"", "", roomLenReason},
		{"#", "", roomLenReason},
		{strings.Repeat("r", 33), "", roomLenReason},
		{"##lobby", "", roomCharsReason},
		{"a.b", "", roomCharsReason},
		{"a b", "", roomCharsReason},
		{"a*", "", roomCharsReason},
		{"a>", "", roomCharsReason},
		{"café", "", roomCharsReason},
		{"lobby#", "", roomCharsReason},
	}
	for _, tt := range tests {
		name, reason := roomName(tt.in)
		if name != tt.name || reason != tt.reason {
			t.Errorf("roomName(%q) = %q, %q; want %q, %q", tt.in, name, reason, tt.name, tt.reason)
		}
	}
}

func TestStripSelfPrefix(t *testing.T) {
	tests := []struct {
		text, nick, want string
	}{
		{"alice: hi", "alice", "hi"},
		{"ALICE: hi", "alice", "hi"},
		{"Alice: hi", "aLiCe", "hi"},
		{"alice: alice: hi", "alice", "alice: hi"},
		{"alice: ", "alice", ""},
		{"alice:", "alice", ""},
		{"alice:  hi", "alice", " hi"},
		{"hi alice: there", "alice", "hi alice: there"},
		{"alice:hi", "alice", "alice:hi"},
		{"alice hi", "alice", "alice hi"},
		{"alic: hi", "alice", "alic: hi"},
		{"alicex: hi", "alice", "alicex: hi"},
		{"bob: hi", "alice", "bob: hi"},
		{" alice: hi", "alice", " alice: hi"},
		{"al", "alice", "al"},
		{"", "alice", ""},
		{": hi", "", ": hi"},
		{"[a]: x", "[A]", "x"},
	}
	for _, tt := range tests {
		if got := stripSelfPrefix(tt.text, tt.nick); got != tt.want {
			t.Errorf("stripSelfPrefix(%q, %q) = %q, want %q", tt.text, tt.nick, got, tt.want)
		}
	}
}
