package gateway

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"
)

// readBufSize is small on purpose: an idle client costs this much, and a
// long line simply takes several reads.
const readBufSize = 512

// tcpConn is the classic transport: the NAME handshake, lines framed by the
// framer, and queued lines written in one writev per batch.
type tcpConn struct {
	lineCodec
	conn net.Conn
	cfg  *Config
	fr   *framer // reader goroutine only
}

func newTCPConn(c net.Conn, cfg *Config) *tcpConn {
	return &tcpConn{conn: c, cfg: cfg, fr: newFramer(cfg.MaxLine)}
}

// serve reads lines until the client goes away. A line ends at a line end
// or when the client pauses (the classic client sends no newline).
func (t *tcpConn) serve(s *Session) {
	s.stripPrefix = true
	hsDeadline := time.Now().Add(t.cfg.HandshakeTimeout)
	if t.writeEarly(lineName) != nil {
		s.setReason(ReasonWriteError)
		return
	}
	emit := func(line []byte, tooLong bool) { t.line(s, line, tooLong) }
	buf := make([]byte, readBufSize)
	var armed time.Time
	for !s.stopped {
		var deadline time.Time
		if s.nick == "" {
			deadline = hsDeadline
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
		n, err := t.conn.Read(buf)
		if n > 0 {
			t.fr.feed(buf[:n], emit)
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
					t.fr.flush(emit) // the client paused: that ends its line
				}
				continue
			}
			if s.nick == "" && !time.Now().Before(hsDeadline) {
				s.fail(ReasonHandshakeTimeout, codeTimeout, "no nickname received in time, closing")
				return
			}
			continue
		}
		if errors.Is(err, io.EOF) && t.fr.pending() {
			t.fr.flush(emit) // the client's last words, sent without a newline
		}
		s.setReason(readReason(err))
		return
	}
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
	text := sanitize(line)
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

// writeBatch coalesces the batch into one writev.
func (t *tcpConn) writeBatch(frames [][]byte) error {
	bufs := net.Buffers(frames)
	_, err := bufs.WriteTo(t.conn)
	return err
}

func (t *tcpConn) setWriteDeadline(d time.Time) { _ = t.conn.SetWriteDeadline(d) }

// goodbye has nothing to add: the last line was the goodbye.
func (t *tcpConn) goodbye(CloseReason) {}

func (t *tcpConn) close() { t.conn.Close() }
