package gateway

import (
	"io"
	"sync"
)

// A TCP session's writer copies each batch of queued lines into a pooled
// buffer and writes it with one write per writeChunk bytes, instead of
// handing the lines to writev (net.Buffers): the runtime keeps a writev's
// iovec array with the connection for good (16 bytes per line of the
// largest batch it ever wrote, up to 16 KiB), so an idle connection would
// keep the memory of its busiest moment, where a pooled buffer goes back to
// the pool after each write.

// writeChunk is the size of the buffers a writer copies lines into.
const writeChunk = 16 << 10

var writeBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, writeChunk)
	return &b
}}

// writeLines writes lines to w in order, in as few writes as
// writeChunk-byte buffers allow. A line longer than writeChunk is written on
// its own.
func writeLines(w io.Writer, lines [][]byte) error {
	if len(lines) == 1 {
		_, err := w.Write(lines[0])
		return err
	}
	bp := writeBufPool.Get().(*[]byte)
	defer writeBufPool.Put(bp)
	buf := (*bp)[:0]
	for _, line := range lines {
		if len(buf)+len(line) > writeChunk && len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if len(line) > writeChunk {
			if _, err := w.Write(line); err != nil {
				return err
			}
			continue
		}
		buf = append(buf, line...)
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
