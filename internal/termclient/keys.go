package termclient

import (
	"bytes"
	"io"
)

// The line editor (x/term's Terminal) knows Home and End as ESC [ H and
// ESC [ F only. Terminals send others: ESC [ 1 ~ and ESC [ 4 ~ (tmux,
// screen, the Linux console), ESC [ 7 ~ and ESC [ 8 ~ (rxvt), ESC O H and
// ESC O F (xterm's application cursor mode). keyReader rewrites those into
// the editor's.

var keyRewrites = []struct{ from, to []byte }{
	{[]byte("\x1b[1~"), []byte("\x1b[H")},
	{[]byte("\x1b[7~"), []byte("\x1b[H")},
	{[]byte("\x1bOH"), []byte("\x1b[H")},
	{[]byte("\x1b[4~"), []byte("\x1b[F")},
	{[]byte("\x1b[8~"), []byte("\x1b[F")},
	{[]byte("\x1bOF"), []byte("\x1b[F")},
}

// keyReader is the terminal's input with Home and End rewritten. A
// sequence split across reads is held (at most 3 bytes) until the rest
// comes. Read is not safe for concurrent use (the editor reads from one
// goroutine).
type keyReader struct {
	r    io.Reader
	buf  [256]byte
	held []byte // the start of a possible sequence, from the last read
	out  []byte // rewritten input not yet returned
	err  error  // the input's error, returned once out is empty
}

func newKeyReader(r io.Reader) *keyReader { return &keyReader{r: r} }

func (k *keyReader) Read(p []byte) (int, error) {
	for len(k.out) == 0 {
		if k.err != nil {
			if len(k.held) > 0 { // the input ended within a sequence: pass it on
				k.out, k.held = k.held, nil
				break
			}
			return 0, k.err
		}
		n, err := k.r.Read(k.buf[:])
		k.err = err
		data := append(k.held, k.buf[:n]...)
		k.out, k.held = rewriteKeys(data)
	}
	n := copy(p, k.out)
	k.out = k.out[n:]
	return n, nil
}

// rewriteKeys rewrites the Home and End sequences of data. When data ends
// with what may be the start of one, that part is returned as held.
func rewriteKeys(data []byte) (out, held []byte) {
	if bytes.IndexByte(data, 0x1b) < 0 {
		return data, nil
	}
	out = make([]byte, 0, len(data))
	for i := 0; i < len(data); {
		if data[i] != 0x1b {
			out = append(out, data[i])
			i++
			continue
		}
		rest, matched, partial := data[i:], false, false
		for _, rw := range keyRewrites {
			switch {
			case bytes.HasPrefix(rest, rw.from):
				out = append(out, rw.to...)
				i += len(rw.from)
				matched = true
			case len(rest) < len(rw.from) && bytes.HasPrefix(rw.from, rest):
				partial = true
			}
			if matched {
				break
			}
		}
		switch {
		case matched:
		case partial:
			return out, append([]byte(nil), rest...)
		default:
			out = append(out, 0x1b)
			i++
		}
	}
	return out, nil
}
