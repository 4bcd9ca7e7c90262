package gateway

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// framerEvent is one call of a framer's emit.
type framerEvent struct {
	line    string
	tooLong bool
}

func (e framerEvent) String() string {
	if e.tooLong {
		return tooLongMark
	}
	return strconv.Quote(e.line)
}

// feedChunks feeds chunks to a new framer and returns what it emitted.
func feedChunks(max int, chunks [][]byte) (events []framerEvent, f *framer) {
	f = newFramer(max)
	emit := func(line []byte, tooLong bool) {
		events = append(events, framerEvent{string(line), tooLong})
	}
	for _, c := range chunks {
		f.feed(c, emit)
	}
	return events, f
}

// framerSeeds are inputs for FuzzFramer: every kind of line end, split or
// not, overlong lines, telnet commands and NUL bytes.
var framerSeeds = []string{
	"hi\n", "hi\r\n", "hi\r\x00", "a\nb\r\nc\r\x00d\n", "\n\r\n\r\x00", "a\rb\n", "a\r\r\n",
	"hi", "hi\r", "abcdefgh\nok\n", strings.Repeat("x", 300) + "\r\nok\r\n",
	"\xff\xfb\x01hi\n", "h\xff\xf1i\n", "a\xff\xffb\n", "a\xff\xfb\nb\n",
	"\xff\xfa\x1f\x00\x0a\x00\x0d\xff\xf0hi\n", "\xff\xfa\x1f\xff\xff\x00\xff\xff\x18\xff\xf0hi\n",
	"\xff\xfa" + strings.Repeat("a", 70) + "hi\n", "\xff\xfa\x18abc\xff\xf1hi\n",
	"hi\r\xff\xf1\nok\n", "a\r\xff\xf1b\n", "a\x00b\x00\n", "\x00\x00\n", "\xff", "\xff\xfa",
	"alice: \x1b[2Jhi\r\n", "caf\xc3\xa9\n",
}

func FuzzFramer(f *testing.F) {
	for i, s := range framerSeeds {
		f.Add([]byte(s), uint16(i%8), []byte{1, 2, 3})
		f.Add([]byte(s), uint16(4096), []byte{0, 7, 1})
	}
	f.Fuzz(func(t *testing.T, data []byte, max uint16, cuts []byte) {
		lim := 1 + int(max)%300
		whole, fr := feedChunks(lim, [][]byte{data})

		// Any cut of the stream into feeds yields the same lines.
		var chunks [][]byte
		rest := data
		for k := 0; len(rest) > 0; k++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, int(cuts[k%len(cuts)])%40)
			}
			if n == 0 { // an empty feed, then at least one byte
				chunks = append(chunks, rest[:0])
				n = 1
			}
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if split, _ := feedChunks(lim, chunks); !slices.Equal(split, whole) {
			t.Fatalf("max %d, feeds %q:\n got %v\nwant %v (one feed)", lim, chunks, split, whole)
		}
		var bytewise [][]byte
		for i := range data {
			bytewise = append(bytewise, data[i:i+1])
		}
		if one, _ := feedChunks(lim, bytewise); !slices.Equal(one, whole) {
			t.Fatalf("max %d, one byte per feed:\n got %v\nwant %v (one feed)", lim, one, whole)
		}

		for _, e := range whole {
			checkFramerLine(t, lim, e)
		}

		// Without CR, NUL or IAC, lines are what splitting at LF gives.
		if !bytes.ContainsAny(data, "\r\x00") && bytes.IndexByte(data, 0xff) < 0 {
			var want []framerEvent
			parts := bytes.Split(data, []byte("\n"))
			for _, p := range parts[:len(parts)-1] {
				if len(p) > lim {
					want = append(want, framerEvent{tooLong: true})
				} else {
					want = append(want, framerEvent{line: string(p)})
				}
			}
			if last := parts[len(parts)-1]; len(last) > lim {
				want = append(want, framerEvent{tooLong: true})
			}
			if !slices.Equal(whole, want) {
				t.Fatalf("max %d, %q:\n got %v\nwant %v", lim, data, whole, want)
			}
		}

		// A pause ends whatever is pending.
		var flushed []framerEvent
		fr.flush(func(line []byte, tooLong bool) {
			flushed = append(flushed, framerEvent{string(line), tooLong})
		})
		if len(flushed) > 1 {
			t.Fatalf("flush emitted %d lines", len(flushed))
		}
		for _, e := range flushed {
			if e.tooLong || e.line == "" {
				t.Fatalf("flush emitted %v", e)
			}
			checkFramerLine(t, lim, e)
		}
		if fr.pending() {
			t.Fatal("pending after flush")
		}
	})
}

func checkFramerLine(t *testing.T, lim int, e framerEvent) {
	t.Helper()
	if e.tooLong {
		if e.line != "" {
			t.Fatalf("tooLong with line %q", e.line)
		}
		return
	}
	if len(e.line) > lim {
		t.Fatalf("line of %d bytes, over the limit %d", len(e.line), lim)
	}
	if strings.ContainsAny(e.line, "\n\x00") || strings.IndexByte(e.line, 0xff) >= 0 {
		t.Fatalf("line %q holds LF, NUL or IAC", e.line)
	}
}
