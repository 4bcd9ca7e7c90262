package gateway

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/chatd/chatd/internal/textsafe"
)

// readBufSize is small on purpose: an idle client costs this much, and a
// long line simply takes several reads.
const readBufSize = 512

// tcpConn is the classic transport: the NAME handshake, lines framed by the
// framer, and queued lines coalesced into few writes per batch. On Linux its
// reader is parked while the client is idle (park.go).
type tcpConn struct {
	lineCodec
	conn net.Conn
	cfg  *Config
	p    *poller // parks the idle reader; nil: never

	closing bool // close has begun: never park again; guarded by the poller's mu

	// Owned by the reader goroutine (handed over by the poller).
	s          *Session
	fr         *framer
	emit       func(line []byte, tooLong bool) // t.line bound to s, once
	hsDeadline time.Time
}

func newTCPConn(c net.Conn, cfg *Config, p *poller) *tcpConn {
	return &tcpConn{conn: c, cfg: cfg, p: p, fr: newFramer(cfg.MaxLine)}
}

// readBufPool holds readers' buffers: a parked reader gives its buffer
// back, so an idle client costs none.
var readBufPool = sync.Pool{New: func() any {
	b := make([]byte, readBufSize)
	return &b
}}

// serve sends NAME and reads lines until the client goes away, or until the
// reader is parked (it then reports true).
func (t *tcpConn) serve(s *Session) (parked bool) {
	s.stripPrefix = true
	t.s = s
	t.emit = func(line []byte, tooLong bool) { t.line(s, line, tooLong) }
	t.hsDeadline = time.Now().Add(t.cfg.HandshakeTimeout)
	if t.writeEarly(lineName) != nil {
		s.setReason(ReasonWriteError)
		return false
	}
	return t.read(false)
}

// resume is a parked session's reader, started by the poller when the
// client sent something or went away, or by close.
func (t *tcpConn) resume() {
	if !t.read(true) {
		t.s.end()
	}
}

// read reads lines until the client goes away, or parks the reader when it
// would wait with no deadline (handshake done, no partial line) and reports
// true: the caller must then return at once, without touching the session.
// A line ends at a line end or when the client pauses (the classic client
// sends no newline). resumed: the poller has seen input, read it first.
func (t *tcpConn) read(resumed bool) (parked bool) {
	s := t.s
	bp := readBufPool.Get().(*[]byte)
	buf := *bp
	var armed time.Time // a parked reader had no deadline
	for !s.stopped {
		var deadline time.Time
		if s.nick == "" {
			deadline = t.hsDeadline
		}
		if t.fr.pending() {
			if p := time.Now().Add(t.cfg.LinePause); deadline.IsZero() || p.Before(deadline) {
				deadline = p
			}
		}
		if !deadline.Equal(armed) {
			_ = t.conn.SetReadDeadline(deadline)
			armed = deadline
		}
		if deadline.IsZero() && !resumed && t.p != nil {
			readBufPool.Put(bp) // before parking: a resumed reader may take it
			if t.p.park(t) {
				return true
			}
			bp = readBufPool.Get().(*[]byte)
			buf = *bp
		}
		resumed = false
		n, err := t.conn.Read(buf)
		if n > 0 {
			t.fr.feed(buf[:n], t.emit)
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if t.fr.pending() {
				// A Read whose deadline passed before it was called (this
				// goroutine ran late) fails without reading; only bytes
				// that are not there yet make a pause.
				_ = t.conn.SetReadDeadline(time.Time{})
				armed = time.Time{}
				if !bytesWaiting(t.conn) {
					t.fr.flush(t.emit) // the client paused: that ends its line
				}
				continue
			}
			if s.nick == "" && !time.Now().Before(t.hsDeadline) {
				s.fail(ReasonHandshakeTimeout, codeTimeout, "no nickname received in time, closing")
				break
			}
			continue
		}
		if errors.Is(err, io.EOF) && t.fr.pending() {
			t.fr.flush(t.emit) // the client's last words, sent without a newline
		}
		s.setReason(readReason(err))
		break
	}
	readBufPool.Put(bp)
	return false
}

func readReason(err error) CloseReason {
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) {
		return ReasonClientClosed
	}
	return ReasonReadError
}

// line is called by the framer for every line the client sends.
func (t *tcpConn) line(s *Session, line []byte, tooLong bool) {
	if s.stopped {
		return
	}
	if tooLong {
		if s.nick == "" {
			s.refuseNick(codeNickInvalid, "nickname is too long")
			return
		}
		s.errorf(codeTooLong, "line too long (limit %d bytes); the rest of it was dropped", t.cfg.MaxLine)
		return
	}
	text := textsafe.Sanitize(line)
	if s.nick == "" {
		s.handshakeLine(text)
		return
	}
	if text == "" || !s.allow() {
		return
	}
	s.handle(text)
}

// nickRefused sends NAME again a moment after the ERROR line, as a write of
// its own, so a client that compares whole reads with "NAME" sees it alone.
func (t *tcpConn) nickRefused(s *Session) {
	time.Sleep(t.cfg.RetryDelay)
	if t.writeEarly(lineName) != nil {
		s.stopped = true
	}
}

func (t *tcpConn) writeEarly(b []byte) error {
	_ = t.conn.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	_, err := t.conn.Write(b)
	return err
}

// writeBatch coalesces the batch into as few writes as it can (writebuf.go).
func (t *tcpConn) writeBatch(frames [][]byte) error {
	return writeLines(t.conn, frames)
}

func (t *tcpConn) setWriteDeadline(d time.Time) { _ = t.conn.SetWriteDeadline(d) }

// goodbye has nothing to add: the last line was the goodbye.
func (t *tcpConn) goodbye(CloseReason) {}

// close closes the connection; a parked reader is resumed first, so that
// it reads the close and ends the session as any reader does.
func (t *tcpConn) close() {
	if t.p.unpark(t) {
		go t.resume()
	}
	t.conn.Close()
}
