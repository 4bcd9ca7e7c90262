package gateway

import (
	"bytes"
	"testing"
)

// BenchmarkFramer feeds a 64 KiB stream of 60-byte lines, whole and in the
// 4 KiB reads a session's reader makes.
func BenchmarkFramer(b *testing.B) {
	line := []byte("alice: the quick brown fox jumps over the lazy dog, twice!\r\n")
	if len(line) != 60 {
		b.Fatalf("line is %d bytes", len(line))
	}
	stream := bytes.Repeat(line, 64<<10/len(line))
	var n int
	emit := func(line []byte, tooLong bool) { n += len(line) }
	for _, bc := range []struct {
		name string
		read int
	}{{"OneFeed", len(stream)}, {"Reads4KiB", 4 << 10}} {
		b.Run(bc.name, func(b *testing.B) {
			f := newFramer(4096)
			b.ReportAllocs()
			b.SetBytes(int64(len(stream)))
			for b.Loop() {
				for p := stream; len(p) > 0; {
					k := min(bc.read, len(p))
					f.feed(p[:k], emit)
					p = p[k:]
				}
			}
		})
	}
}

var sanitizeSink string

func BenchmarkSanitize(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"ASCII", "bob: see you at the meeting tomorrow at 10, room 4.2, ok?"},
		{"NonASCII", "chloé: ça marche, à demain 10h, salle 4.2 👍 — 你好!"},
		{"Escapes", "\x1b[1;31mmallory\x1b[0m: \x1b]0;pwned\x07look\x07\x08 here\x1b[2J"},
	} {
		line := []byte(bc.line)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				sanitizeSink = sanitize(line)
			}
		})
	}
}
