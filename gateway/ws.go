package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/chatd/chatd/internal/textsafe"
	"github.com/coder/websocket"
)

// maxBadMessages bad messages in a row (not JSON, binary, unknown type, too
// long, ...) close a WebSocket client.
const maxBadMessages = 10

// wsReadLimit is the largest WebSocket message read: room for a line of
// maxLine bytes however it is escaped (at worst six bytes per byte, \u0001),
// plus the message's other fields. A longer message closes the connection
// with status 1009 (message too big); one that fits but whose text is over
// maxLine gets an error and is dropped, as on TCP.
func wsReadLimit(maxLine int) int64 { return int64(6*maxLine + 1024) }

// wsWriteBufMax is the largest batch buffer a writer keeps between batches.
const wsWriteBufMax = 64 << 10

// wsConn is the WebSocket transport: JSON messages (json.go), one server
// message per WebSocket message, or a JSON array of them when the writer
// finds several queued.
type wsConn struct {
	jsonCodec
	c   *websocket.Conn
	nc  net.Conn // the hijacked connection: deadlines and the hard close
	cfg *Config

	hsTimer    *time.Timer  // the handshake timeout; reader goroutine only
	lastUnread time.Time    // the last unread query (unread.go); reader goroutine only
	rbuf       bytes.Buffer // the message being read; reader goroutine only
	wbuf       []byte       // a batch being written; writer only
}

// Handler returns the gateway's HTTP handler: the chat page at /, its
// settings at /config.json and the WebSocket endpoint at /ws. Connections
// upgraded on /ws are sessions like TCP ones; Shutdown ends them.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", s.serveWS)
	s.webRoutes(mux)
	return s.securityHeaders(mux)
}

// serveWS upgrades a request to a WebSocket session and serves it until it
// ends.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		s.log.Info("websocket refused: unknown host name", "remote", r.RemoteAddr, "host", r.Host)
		http.Error(w, fmt.Sprintf("403 forbidden: this chat is not served under the name %q; "+
			"if it should be (a reverse proxy's name), its operator can add the name with --web-hosts", hostOnly(r.Host)),
			http.StatusForbidden)
		return
	}
	hw := &hijackRecorder{ResponseWriter: w}
	c, err := websocket.Accept(hw, r, &websocket.AcceptOptions{OriginPatterns: s.origins})
	if err != nil {
		// Accept has answered with an HTTP error.
		s.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	if hw.conn == nil { // cannot happen: Accept hijacks through hw
		c.CloseNow()
		return
	}
	s.tune(hw.conn)
	c.SetReadLimit(wsReadLimit(s.cfg.MaxLine))
	t := &wsConn{jsonCodec: jsonCodec{maxLine: s.cfg.MaxLine}, c: c, nc: hw.conn, cfg: &s.cfg}
	sess := newSession(s, t, hw.conn.RemoteAddr().String(), remoteIP(hw.conn.RemoteAddr()))
	sess.useQueue() // no NAME dance: every frame goes through the queue
	sess.log = sess.log.With("transport", "ws")
	if refusal := s.admit(sess); refusal != "" {
		t.refuse(refusal, s.isClosing())
		s.wg.Done()
		return
	}
	sess.run() // Done when the session ends (Session.end)
}

// hijackRecorder keeps the connection websocket.Accept hijacks, so that the
// session can set deadlines on it and close it at once.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	h.conn = c
	return c, rw, err
}

// refuse tells a client over the connection limits why, then closes.
func (t *wsConn) refuse(why string, shuttingDown bool) {
	_ = t.nc.SetDeadline(time.Now().Add(closeWriteTimeout))
	code := websocket.StatusTryAgainLater
	if shuttingDown {
		code = websocket.StatusGoingAway
	}
	_ = t.c.Write(context.Background(), websocket.MessageText, t.errorMsg(codeRefused, why))
	_ = t.c.Close(code, why)
	t.close()
}

// serve reads messages until the client goes away. It never parks.
func (t *wsConn) serve(s *Session) (parked bool) {
	t.hsTimer = time.AfterFunc(t.cfg.HandshakeTimeout, func() {
		s.finish(ReasonHandshakeTimeout, t.errorMsg(codeTimeout, "no nickname received in time, closing"))
	})
	defer t.hsTimer.Stop()
	bad := 0
	for !s.stopped {
		typ, r, err := t.c.Reader(context.Background())
		if err == nil {
			t.rbuf.Reset()
			_, err = t.rbuf.ReadFrom(r)
		}
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				// The library has closed with 1009 (message too big).
				s.log.Info("websocket message too big", "nick", s.nick, "limit", wsReadLimit(t.cfg.MaxLine))
				s.setReason(ReasonProtocolError)
				return
			}
			s.setReason(wsReadReason(err))
			return
		}
		if t.message(s, typ, t.rbuf.Bytes()) {
			bad = 0
			continue
		}
		if bad++; bad >= maxBadMessages && !s.stopped {
			s.log.Info("too many bad messages", "nick", s.nick)
			s.fail(ReasonProtocolError, codeBadMessage, "too many bad messages, closing")
		}
	}
	return false
}

func wsReadReason(err error) CloseReason {
	if websocket.CloseStatus(err) != -1 || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) {
		return ReasonClientClosed
	}
	return ReasonReadError
}

// message handles one message from the client; it reports false for a bad
// one. Every message counts toward the rate limit, except a hello before
// the handshake is done (the nickname attempts bound those).
func (t *wsConn) message(s *Session, typ websocket.MessageType, data []byte) bool {
	var m clientMsg
	var problem string
	if typ != websocket.MessageText {
		problem = "binary messages are not supported: send JSON text messages (see docs/protocol.md)"
	} else if decoded, err := decodeClientMsg(data); err != nil {
		problem = "a message must be one JSON object, such as {\"type\":\"line\",\"text\":\"hi\"}"
	} else {
		m = decoded
	}
	if !(problem == "" && m.Type == "hello" && s.nick == "") && !s.allow() {
		return true // dropped; allow has told the client, or closed it
	}
	if problem != "" {
		s.errorf(codeBadMessage, "%s", problem)
		return false
	}
	switch m.Type {
	case "hello":
		if s.nick != "" {
			s.errorf(codeBadMessage, "you are already %s; send the line /nick NEW to change nickname", s.nick)
			return false
		}
		if len(m.Nick) > t.cfg.MaxLine {
			s.refuseNick(codeNickInvalid, "nickname is too long")
			return false
		}
		if !s.checkPassword(m.Password) {
			return false
		}
		s.setResume(m.Resume)
		nick := textsafe.Sanitize([]byte(m.Nick))
		if !s.identify(nick, m.NickPassword) {
			return false
		}
		s.hello(nick)
		if s.nick != "" {
			t.hsTimer.Stop()
		}
		return true
	case "line":
		if s.nick == "" {
			s.errorf(codeBadMessage, "send {\"type\":\"hello\",\"nick\":\"...\"} first")
			return false
		}
		if len(m.Text) > t.cfg.MaxLine {
			s.errorf(codeTooLong, "line too long (limit %d bytes); it was dropped", t.cfg.MaxLine)
			return false
		}
		if text := textsafe.Sanitize([]byte(m.Text)); text != "" {
			s.handle(text)
		}
		return true
	case "ping":
		s.deliver(framePong, "")
		return true
	case "unread":
		if s.nick == "" {
			s.errorf(codeBadMessage, "send {\"type\":\"hello\",\"nick\":\"...\"} first")
			return false
		}
		t.unread(s, m.Rooms)
		return true
	}
	s.errorf(codeBadMessage, "unknown message type; this server knows hello, line, ping and unread (protocol version %d)", wsVersion)
	return false
}

// nickRefused: the error message was queued; the client may send another
// hello.
func (t *wsConn) nickRefused(*Session) {}

// writeEarly is never needed: a WebSocket session queues from the start.
func (t *wsConn) writeEarly(frame []byte) error {
	return t.c.Write(context.Background(), websocket.MessageText, frame)
}

// writeBatch writes one frame as one message, several as one message
// holding a JSON array of them, in order.
func (t *wsConn) writeBatch(frames [][]byte) error {
	if len(frames) == 1 {
		return t.c.Write(context.Background(), websocket.MessageText, frames[0])
	}
	n := len(frames) + 1
	for _, f := range frames {
		n += len(f)
	}
	b := t.wbuf[:0]
	if cap(b) < n {
		b = make([]byte, 0, n)
	}
	b = append(b, '[')
	for i, f := range frames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, f...)
	}
	b = append(b, ']')
	err := t.c.Write(context.Background(), websocket.MessageText, b)
	if cap(b) <= wsWriteBufMax {
		t.wbuf = b[:0]
	} else {
		t.wbuf = nil
	}
	return err
}

func (t *wsConn) setWriteDeadline(d time.Time) { _ = t.nc.SetWriteDeadline(d) }

// goodbye sends a close frame naming the reason and waits, briefly, for the
// client's.
func (t *wsConn) goodbye(reason CloseReason) {
	code, text := wsCloseStatus(reason)
	_ = t.nc.SetDeadline(time.Now().Add(closeWriteTimeout))
	_ = t.c.Close(code, text)
}

// close closes the connection at once: closing the hijacked connection
// first unblocks anything the library is waiting for.
func (t *wsConn) close() {
	t.nc.Close()
	_ = t.c.CloseNow()
}

// wsCloseStatus is the WebSocket close status and reason for a session's
// close reason (docs/protocol.md, "WebSocket").
func wsCloseStatus(r CloseReason) (websocket.StatusCode, string) {
	switch r {
	case ReasonQuit:
		return websocket.StatusNormalClosure, "bye"
	case ReasonShutdown:
		return websocket.StatusGoingAway, "server shutting down"
	case ReasonSlowConsumer:
		return websocket.StatusPolicyViolation, "slow consumer"
	case ReasonFlood:
		return websocket.StatusPolicyViolation, "flood"
	case ReasonHandshakeTimeout:
		return websocket.StatusPolicyViolation, "no nickname in time"
	case ReasonHandshakeFailed:
		return websocket.StatusPolicyViolation, "too many refused nicknames"
	case ReasonProtocolError:
		return websocket.StatusPolicyViolation, "too many bad messages"
	case ReasonBusError:
		return websocket.StatusInternalError, "chat unavailable"
	case ReasonBanned:
		return websocket.StatusPolicyViolation, "banned"
	case ReasonThrottled:
		return websocket.StatusPolicyViolation, "too many wrong passwords"
	case ReasonKicked:
		return websocket.StatusPolicyViolation, "kicked"
	}
	return websocket.StatusNormalClosure, ""
}
