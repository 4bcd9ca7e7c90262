package gateway

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatd/chatd/internal/textsafe"
	"github.com/coder/websocket"
)

// fuzzTransport is a transport with no connection: output stays in the
// session's queue, where the test reads it.
type fuzzTransport struct{ codec }

func (fuzzTransport) serve(*Session) bool        { return false }
func (fuzzTransport) nickRefused(*Session)       {}
func (fuzzTransport) writeEarly([]byte) error    { return nil }
func (fuzzTransport) writeBatch([][]byte) error  { return nil }
func (fuzzTransport) setWriteDeadline(time.Time) {}
func (fuzzTransport) goodbye(CloseReason)        {}
func (fuzzTransport) close()                     {}

var commandSeeds = []string{
	"/help", "/nick", "/nick carol", "/nick Fuzzer", "/nick bob", "/nick a b", "/nick \x1b[2J",
	"/join", "/join #games", "/join lobby", "/join a/b", "/join " + strings.Repeat("r", 100),
	"/rooms", "/who", "/msg", "/msg bob", "/msg bob hi there", "/msg nobody hi", "/msg \x07 x",
	"/me", "/me waves", "/quit", "/quit bye now", "/QUIT", "/Nick x", "/unknown", "/", "//literal",
	"/nick carol\n/join x\n/msg bob hi\n/who\n/rooms\n/nick fuzzer",
	"hello", "fuzzer: /who", "/join x\n/join y\n/join x", "/me \u202eevil", "/msg bob \xff\xfe",
	"/nick caf\xc3\xa9", "/join \u00e9t\u00e9", "/msg bob " + strings.Repeat("z", 500),
}

// FuzzCommand feeds lines (split at newlines) to a joined session, as its
// reader would after the sanitizer: parsing and running any command must
// not panic, every reply is one well-formed frame with no control
// characters, and leaving afterwards leaves the gateway with no nickname,
// room or subscription behind.
func FuzzCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, ws bool) {
		b := newFuzzBus()
		srv, err := New(Config{History: 5}, b)
		if err != nil {
			t.Fatal(err)
		}
		s := fuzzSession(t, srv, ws, netip.Addr{})
		frames := feedLines(s, data, 8)
		for _, fr := range frames {
			checkFrame(t, data, fr, ws)
		}
		b.mu.Lock()
		for _, p := range b.published {
			checkClean(t, data, "published", p)
		}
		b.mu.Unlock()

		s.teardown()
		srv.mu.Lock()
		nicks, rooms := len(srv.nicks), len(srv.rooms)
		srv.mu.Unlock()
		b.mu.Lock()
		claimed, subs := len(b.nicks), len(b.subs)
		b.mu.Unlock()
		if nicks != 0 || rooms != 0 || claimed != 0 || subs != 0 {
			t.Fatalf("after %q and leaving: %d nicknames, %d rooms, %d claims, %d subscriptions left",
				data, nicks, rooms, claimed, subs)
		}
	})
}

// checkFrame checks one frame: a TCP line is one line of clean text; a
// WebSocket message is one JSON object (or array) whose strings are clean.
func checkFrame(t *testing.T, in, fr []byte, ws bool) {
	t.Helper()
	if !ws {
		if len(fr) == 0 || fr[len(fr)-1] != '\n' {
			t.Fatalf("input %q: frame %q does not end a line", in, fr)
		}
		checkClean(t, in, "frame", string(fr[:len(fr)-1]))
		return
	}
	var v any
	if err := json.Unmarshal(fr, &v); err != nil {
		t.Fatalf("input %q: frame %q is not JSON: %v", in, fr, err)
	}
	if bytes.ContainsAny(fr, "\n\r") {
		t.Fatalf("input %q: frame %q holds a raw line end", in, fr)
	}
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			checkClean(t, in, "JSON string", v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				checkClean(t, in, "JSON key", k)
				walk(e)
			}
		}
	}
	walk(v)
}

// checkClean fails if s is not valid UTF-8 or holds a control character.
func checkClean(t *testing.T, in []byte, what, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("input %q: %s %q is not valid UTF-8", in, what, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || textsafe.IsBidiControl(r) {
			t.Fatalf("input %q: %s %q holds %U", in, what, s, r)
		}
	}
}

var wsMessageSeeds = []string{
	`{"type":"hello","v":1,"nick":"fuzzer"}`, `{"type":"hello","nick":"bob"}`, `{"type":"hello","nick":""}`,
	`{"type":"hello","nick":"a\u001b[2Jb"}`, `{"type":"hello","nick":"\ud800"}`, `{"type":"line","text":"hi"}`,
	`{"type":"ping"}`, `{"type":"line","text":"/who"}`, `{"type":"line","text":"/nick x\u0007"}`,
	`{"type":"bogus"}`, `[]`, `null`, `"hello"`, `{"type":1}`, `{"type":"line","text":"` + "\xff\xfe" + `"}`,
	"{\"type\":\"hello\",\"nick\":\"f\"}\x00{\"type\":\"line\",\"text\":\"/msg bob hi\"}\x00{\"type\":\"line\",\"text\":\"/quit\"}",
	`{"type":"hello","nick":"fuzzer","password":"x"}`, `{"type":"line","text":"` + strings.Repeat("é", 3000) + `"}`,
}

// FuzzWSMessage feeds WebSocket messages (split at NUL bytes; the first is
// binary if asked) to a new WebSocket session: decoding and handling them
// must not panic, every reply is a clean JSON frame, and the session leaves
// nothing behind.
func FuzzWSMessage(f *testing.F) {
	for _, s := range wsMessageSeeds {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("\x00\x01binary"), true)
	f.Fuzz(func(t *testing.T, data []byte, binary bool) {
		b := newFuzzBus()
		srv, err := New(Config{History: 5}, b)
		if err != nil {
			t.Fatal(err)
		}
		ws := &wsConn{jsonCodec: jsonCodec{maxLine: srv.cfg.MaxLine}, cfg: &srv.cfg, hsTimer: time.NewTimer(time.Hour)}
		defer ws.hsTimer.Stop()
		s := newSession(srv, &fuzzTransport{codec: ws.jsonCodec}, "fuzz", netip.Addr{})
		s.queued = true
		s.writing = true // no writer goroutine: frames stay in s.frames
		msgs := bytes.Split(data, []byte{0})
		if len(msgs) > 8 {
			msgs = msgs[:8]
		}
		for i, m := range msgs {
			if s.stopped {
				break
			}
			typ := websocket.MessageText
			if binary && i == 0 {
				typ = websocket.MessageBinary
			}
			ws.message(s, typ, m)
		}
		s.mu.Lock()
		frames := slices.Clone(s.frames)
		s.writing = false
		s.mu.Unlock()
		for _, fr := range frames {
			checkFrame(t, data, fr, true)
		}
		b.mu.Lock()
		for _, p := range b.published {
			checkClean(t, data, "published", p)
		}
		b.mu.Unlock()

		s.teardown()
		srv.mu.Lock()
		nicks, rooms := len(srv.nicks), len(srv.rooms)
		srv.mu.Unlock()
		b.mu.Lock()
		claimed, subs := len(b.nicks), len(b.subs)
		b.mu.Unlock()
		if nicks != 0 || rooms != 0 || claimed != 0 || subs != 0 {
			t.Fatalf("after %q and leaving: %d nicknames, %d rooms, %d claims, %d subscriptions left",
				data, nicks, rooms, claimed, subs)
		}
	})
}

// fuzzSession is a session past its handshake as "fuzzer" on a transport
// with no connection, classic or WebSocket: its frames stay in its outbox.
func fuzzSession(t *testing.T, srv *Server, ws bool, ip netip.Addr) *Session {
	t.Helper()
	var c codec = lineCodec{}
	if ws {
		c = jsonCodec{maxLine: srv.cfg.MaxLine}
	}
	s := newSession(srv, &fuzzTransport{codec: c}, "fuzz", ip)
	s.stripPrefix = !ws
	s.writing = true // no writer goroutine: frames stay in s.frames
	s.hello("fuzzer")
	if s.nick != "fuzzer" {
		t.Fatalf("hello: nick = %q", s.nick)
	}
	return s
}

// feedLines handles up to max lines of data as s's input, made safe as a
// transport makes it, and returns the frames queued for s.
func feedLines(s *Session, data []byte, max int) [][]byte {
	lines := bytes.Split(data, []byte("\n"))
	if len(lines) > max {
		lines = lines[:max]
	}
	for _, l := range lines {
		if s.stopped {
			break
		}
		if text := textsafe.Sanitize(l); text != "" {
			s.handle(text)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	frames := slices.Clone(s.frames)
	s.writing = false
	return frames
}
