package gateway

import (
	"bytes"
	"strings"
	"testing"
)

type countWriter struct {
	bytes.Buffer
	writes int
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// writeLines keeps the lines in order and writes at most writeChunk bytes
// at a time, except a longer line, written on its own.
func TestWriteLines(t *testing.T) {
	short := []byte("alice: hello\n")
	long := []byte(strings.Repeat("x", writeChunk+10) + "\n")
	for _, tc := range []struct {
		name   string
		lines  [][]byte
		writes int
	}{
		{"one", [][]byte{short}, 1},
		{"few", [][]byte{short, short, short}, 1},
		{"chunks", bytes.SplitAfter(bytes.Repeat(short, 2*writeChunk/len(short)), []byte("\n")), 2},
		{"long", [][]byte{short, long, short}, 3},
	} {
		var w countWriter
		if err := writeLines(&w, tc.lines); err != nil {
			t.Fatal(err)
		}
		if want := bytes.Join(tc.lines, nil); !bytes.Equal(w.Bytes(), want) {
			t.Errorf("%s: wrote %d bytes, want %d in order", tc.name, w.Len(), len(want))
		}
		if w.writes != tc.writes {
			t.Errorf("%s: %d writes, want %d", tc.name, w.writes, tc.writes)
		}
	}
}
