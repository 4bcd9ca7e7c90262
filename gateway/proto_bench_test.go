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
