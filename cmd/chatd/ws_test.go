package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A WebSocket user and an nc user share a room: lines both ways, /me, /who,
// /msg, /nick, /join and /quit, and each one's nickname is taken for the
// other transport.
func TestWebSocketWithTCP(t *testing.T) {
	m := mustRunMain(t, "--rate", "1000", "--burst", "1000")
	nc := join(t, m.ChatAddr().String(), "ncuser")
	web := wsJoin(t, m, "webuser")
	nc.Expect("webuser joined!")

	web.line("hello from the web")
	web.expectEvent("say", "webuser", "hello from the web") // the sender gets its own line too
	nc.Expect("webuser: hello from the web")
	nc.Send("hello from nc\n")
	ev, _ := web.expect("nc line", func(m wsMsg) bool { return m.Type == "event" && m.Kind == "say" && m.Nick == "ncuser" })
	if ev.Text != "hello from nc" || ev.Room != "lobby" || time.Since(time.UnixMilli(ev.TS)).Abs() > time.Minute {
		t.Errorf("event = %v", ev)
	}

	web.line("/me waves")
	nc.Expect("* webuser waves")
	web.expectEvent("me", "webuser", "waves")
	web.line("webuser: not stripped") // only the classic client's prefix is stripped
	nc.Expect("webuser: webuser: not stripped")
	web.line("//etc/passwd is a path")
	nc.Expect("webuser: /etc/passwd is a path")

	// /who and /rooms carry the list as fields too.
	web.line("/who")
	who := web.expectNotice("in lobby")
	if who.Cmd != "who" || who.Room != "lobby" || !slices.Equal(who.Nicks, []string{"ncuser", "webuser"}) ||
		who.Text != "in lobby (2): ncuser, webuser" {
		t.Errorf("/who = %v", who)
	}
	nc.Send("/who\n")
	nc.Expect("*** in lobby (2): ncuser, webuser")
	web.line("/rooms")
	rooms := web.expectNotice("rooms:")
	if rooms.Cmd != "rooms" || len(rooms.Rooms) != 1 || rooms.Rooms[0].Room != "lobby" || rooms.Rooms[0].Count != 2 {
		t.Errorf("/rooms = %v", rooms)
	}

	// Private messages, both ways.
	web.line("/msg ncuser psst")
	nc.Expect("*** private from webuser: psst")
	out, _ := web.expect("own private copy", func(m wsMsg) bool { return m.Type == "private" })
	if out.From != "webuser" || out.To != "ncuser" || out.Text != "psst" || out.TS == 0 {
		t.Errorf("sender's copy = %v", out)
	}
	nc.Send("/msg webuser back at you\n")
	in, _ := web.expect("private", func(m wsMsg) bool { return m.Type == "private" })
	if in.From != "ncuser" || in.To != "webuser" || in.Text != "back at you" {
		t.Errorf("private = %v", in)
	}

	// Errors are errors, with a code.
	web.line("/dance")
	web.expectError("unknown_command", "unknown command /dance; try /help")
	web.line("/msg nobody hi")
	web.expectError("no_such_nick", "no such nickname: nobody")
	web.line("/help")
	web.expectNotice("commands")
	web.expectNotice("  /help")

	// Nicknames are unique across transports, ignoring case.
	c := dial(t, m.ChatAddr().String())
	c.ExpectName()
	c.Send("WebUser\n")
	c.Expect("ERROR nickname WebUser is taken, choose another")
	c.Conn.Close()
	w2 := wsDial(t, m)
	w2.send(map[string]string{"type": "hello", "nick": "NCUSER"})
	w2.expectError("nick_taken", "nickname NCUSER is taken, choose another")
	w2.send(map[string]string{"type": "hello", "nick": "webuser2"})
	w2.nick = "webuser2"
	w2.expectType("welcome")
	nc.Expect("webuser2 joined!")
	web.line("/nick ncuser")
	web.expectError("nick_taken", "nickname ncuser is taken")

	// /nick is an event with the old nick and the new one.
	web.line("/nick webby")
	web.expectEvent("nick", "webuser", "webby")
	nc.Expect("*** webuser is now known as webby")
	web.nick = "webby"

	// /join: the old room hears left, the new one joined; history follows.
	web.line("/join Dev")
	h := web.expectType("history")
	if h.Room != "dev" || len(h.Events) != 0 {
		t.Errorf("history on joining dev = %v", h)
	}
	web.expectEvent("join", "webby", "")
	nc.Expect("webby left!")
	nc.Send("/join dev\n")
	web.expectEvent("join", "ncuser", "")
	nc.Send("in dev\n")
	web.expectEvent("say", "ncuser", "in dev")

	// /quit: a last notice, then a normal close; the room hears left once.
	web.line("/quit")
	msgs, code, reason := web.expectClosed()
	if code != websocket.StatusNormalClosure || reason != "bye" || len(msgs) == 0 || msgs[len(msgs)-1].Text != "bye" {
		t.Errorf("quit: close %d %q after %v", code, reason, msgs)
	}
	nc.Expect("webby left!")
	if n := count(nc.Sync(), "webby left!"); n != 0 {
		t.Errorf("left! seen %d more times", n)
	}
	wsJoin(t, m, "webby") // the nickname is free again
}

// Lines sent before a WebSocket user joins are replayed to it, oldest first,
// in one history message; live lines follow.
func TestWebSocketHistory(t *testing.T) {
	m := mustRunMain(t, "--history", "3")
	nc := join(t, m.ChatAddr().String(), "ncuser")
	for i := 1; i <= 4; i++ {
		nc.Send(fmt.Sprintf("line %d\n", i))
		nc.Expect(fmt.Sprintf("ncuser: line %d", i))
	}
	nc.Send("/me waves\n")
	nc.Expect("* ncuser waves")

	web := wsDial(t, m)
	web.nick = "webuser"
	web.send(map[string]string{"type": "hello", "nick": "webuser"})
	web.expectType("welcome")
	h := web.expectType("history")
	var got []string
	for _, e := range h.Events {
		got = append(got, e.Kind+" "+e.Nick+" "+e.Text)
		if e.TS == 0 || e.Type != "" || e.Room != "" {
			t.Errorf("history event %v", e)
		}
	}
	if want := []string{"say ncuser line 3", "say ncuser line 4", "me ncuser waves"}; h.Room != "lobby" || !slices.Equal(got, want) {
		t.Errorf("history of %q = %q, want %q", h.Room, got, want)
	}
	web.expectEvent("join", "webuser", "")
	nc.Send("live\n")
	web.expectEvent("say", "ncuser", "live")
}

// Text that would be markup, script or terminal control reaches everyone as
// plain text: the same sanitizing as TCP, and no HTML escaping needed on the
// wire (the page uses textContent).
func TestWebSocketBadInput(t *testing.T) {
	m := mustRunMain(t, "--max-line", "128", "--rate", "1000", "--burst", "1000")
	nc := join(t, m.ChatAddr().String(), "ncuser")
	web := wsJoin(t, m, "eve")
	other := wsJoin(t, m, "other")
	nc.Expect("other joined!")

	payload := `<img src=x onerror="alert(1)"><script>alert(2)</script> & "quotes" \ back`
	for _, tc := range []struct {
		name, send, want string
	}{
		{"html and script", payload, payload},
		{"terminal escapes", "\x1b[2J\x1b[Hhi\x07 there\x1b]0;pwned\x07", "hi there"},
		{"controls and newlines", "a\x00b\x01c\x7fd\ne\rf", "abcdef"},
		{"bidi override", "abc\u202edef", "abcdef"},
		{"unicode kept", "héllo wörld ✓ 😀", "héllo wörld ✓ 😀"},
		{"line separators", "a\u2028b", "a\u2028b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			web.line(tc.send)
			nc.Expect("eve: " + tc.want)
			other.expectEvent("say", "eve", tc.want)
		})
	}
	t.Run("nc sends html", func(t *testing.T) {
		nc.Send(payload + "\n")
		other.expectEvent("say", "ncuser", payload)
	})
	t.Run("invalid UTF-8 and lone surrogates", func(t *testing.T) {
		web.sendRaw(websocket.MessageText, []byte("{\"type\":\"line\",\"text\":\"caf\xe9 ok\"}"))
		other.expectEvent("say", "eve", "caf\uFFFD ok")
		web.sendRaw(websocket.MessageText, []byte(`{"type":"line","text":"x\ud800y"}`))
		other.expectEvent("say", "eve", "x\uFFFDy")
	})
	t.Run("too long", func(t *testing.T) {
		web.line(strings.Repeat("x", 129))
		web.expectError("too_long", "line too long (limit 128 bytes)")
		web.line("after")
		for _, m := range other.expectEvent("say", "eve", "after") {
			if strings.Contains(m.Text, "xxx") {
				t.Errorf("part of a long line was delivered: %v", m)
			}
		}
	})
	t.Run("not JSON, binary, unknown type", func(t *testing.T) {
		web.sendRaw(websocket.MessageText, []byte("hello?"))
		web.expectError("bad_message", "a message must be one JSON object")
		web.sendRaw(websocket.MessageText, []byte(`["line"]`))
		web.expectError("bad_message", "a message must be one JSON object")
		web.sendRaw(websocket.MessageBinary, []byte{1, 2, 3})
		web.expectError("bad_message", "binary messages are not supported")
		web.send(map[string]string{"type": "shout", "text": "hi"})
		web.expectError("bad_message", "unknown message type")
		web.send(map[string]string{"type": "hello", "nick": "eve2"})
		web.expectError("bad_message", "you are already eve")
		web.send(map[string]any{"type": "line", "text": "extra fields are ignored", "color": "red"})
		other.expectEvent("say", "eve", "extra fields are ignored")
		web.send(map[string]string{"type": "ping"})
		web.expectType("pong")
	})
	t.Run("empty lines ignored", func(t *testing.T) {
		web.line("")
		web.line("   \t ")
		for _, m := range other.sync() {
			if m.Type == "event" && m.Nick == "eve" {
				t.Errorf("empty line delivered: %v", m)
			}
		}
	})
	t.Run("persistent bad messages close", func(t *testing.T) {
		for range 10 {
			web.sendRaw(websocket.MessageText, []byte("{"))
		}
		_, code, reason := web.expectClosed()
		if code != websocket.StatusPolicyViolation || reason != "too many bad messages" {
			t.Errorf("close %d %q", code, reason)
		}
		nc.Expect("eve left!")
	})
	t.Run("message too big closes", func(t *testing.T) {
		big := wsJoin(t, m, "big")
		big.line(strings.Repeat("y", 6*128+2048))
		_, code, _ := big.expectClosed()
		if code != websocket.StatusMessageTooBig {
			t.Errorf("close %d, want 1009", code)
		}
		nc.Expect("big left!")
	})
	other.sync()
	nc.Sync()
}

func TestWebSocketHandshake(t *testing.T) {
	m := mustRunMain(t, "--handshake-timeout", "500ms")
	holder := join(t, m.ChatAddr().String(), "Alice")

	c := wsDial(t, m)
	c.line("hi")
	c.expectError("bad_message", `send {"type":"hello"`)
	c.send(map[string]string{"type": "hello", "nick": "bad nick!"})
	c.expectError("nick_invalid", "nickname may only contain")
	c.send(map[string]string{"type": "hello", "nick": ""})
	c.expectError("nick_invalid", "nickname must be 1-32 characters")
	c.send(map[string]string{"type": "hello", "nick": "alice"})
	msgs, code, reason := c.expectClosed()
	if len(msgs) != 1 || msgs[0].Code != "nick_taken" || !strings.Contains(msgs[0].Text, "too many attempts") ||
		code != websocket.StatusPolicyViolation || reason != "too many refused nicknames" {
		t.Errorf("third refusal: %v, close %d %q", msgs, code, reason)
	}
	for _, l := range holder.Sync() {
		if strings.Contains(l, "joined!") || strings.Contains(l, "left!") {
			t.Errorf("the room heard of a refused client: %q", l)
		}
	}

	slow := wsDial(t, m)
	msgs, code, _ = slow.expectClosed()
	if len(msgs) != 1 || msgs[0].Code != "timeout" || code != websocket.StatusPolicyViolation {
		t.Errorf("handshake timeout: %v, close %d", msgs, code)
	}
	wsJoin(t, m, "fresh")
}

// A WebSocket client that never reads is dropped when its queue overflows;
// a TCP reader and a WebSocket reader in the room get every line, in order.
func TestWebSocketSlowConsumer(t *testing.T) {
	m := mustRunMain(t, "--max-pending", "262144", "--rate", "1000000", "--burst", "1000000")
	talker := join(t, m.ChatAddr().String(), "talker")
	tcpReader := join(t, m.ChatAddr().String(), "tcpreader")
	webReader := wsJoin(t, m, "webreader")
	// The slow client's socket buffer is small, and it never reads.
	slow := wsDialOpts(t, wsURL(m), &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(4096)
			}
			return c, err
		},
	}}})
	slow.send(map[string]string{"type": "hello", "nick": "slow"})
	talker.Expect("slow joined!")
	tcpReader.Expect("slow joined!")

	// 8,000 lines of 1 KB are more than the slow client's socket buffers
	// and its 256 KiB queue hold. The talker keeps at most a window of
	// lines ahead of the slower of the two readers, so that on a loaded
	// machine the readers, not only the slow client, never fall 256 KiB
	// behind.
	const n, window = 8000, 32
	line := strings.Repeat("z", 1000)
	var tcpRead, webRead atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	talker.Conn.SetDeadline(time.Time{}) // join set a write deadline; the run may take a while under -race
	go io.Copy(io.Discard, talker.Conn)
	go func() {
		for i := range n {
			for int64(i)-min(tcpRead.Load(), webRead.Load()) > window {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
			if _, err := fmt.Fprintf(talker.Conn, "%d %s\n", i, line); err != nil {
				return
			}
		}
	}()

	done := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(tcpReader.Conn, 64<<10)
		for i := 0; i < n; {
			tcpReader.Conn.SetReadDeadline(time.Now().Add(waitFor))
			s, err := r.ReadString('\n')
			if err != nil {
				done <- fmt.Errorf("tcp reader: %v after line %d", err, i)
				return
			}
			if s = strings.TrimSuffix(s, "\n"); strings.HasPrefix(s, "talker: ") {
				if want := fmt.Sprintf("talker: %d %s", i, line); s != want {
					done <- fmt.Errorf("tcp reader: line %d is %.40q", i, s)
					return
				}
				i++
				tcpRead.Store(int64(i))
			}
		}
		done <- nil
	}()
	sawLeft := false
	for i := 0; i < n; {
		msg, err := webReader.next()
		if err != nil {
			t.Fatalf("web reader: %v after line %d", err, i)
		}
		switch {
		case msg.Type == "event" && msg.Kind == "leave" && msg.Nick == "slow":
			sawLeft = true
		case msg.Type == "event" && msg.Nick == "talker":
			if want := fmt.Sprintf("%d %s", i, line); msg.Text != want {
				t.Fatalf("web reader: line %d is %d bytes %.40q...%q, want %d bytes", i, len(msg.Text), msg.Text, msg.Text[max(0, len(msg.Text)-20):], len(want))
			}
			i++
			webRead.Store(int64(i))
		case msg.Type == "error":
			t.Fatalf("web reader: %s: %s after line %d", msg.Code, msg.Text, i)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !sawLeft {
		webReader.expectEvent("leave", "slow", "Slow consumer")
	}
	waitSessions(t, m, 3)
	wsJoin(t, m, "fresh")
}

// WebSocket connections count in the same limits as TCP ones, and a refused
// one is told why before the close.
func TestWebSocketConnectionLimits(t *testing.T) {
	t.Run("per IP", func(t *testing.T) {
		m := mustRunMain(t, "--max-conns-per-ip", "2")
		join(t, m.ChatAddr().String(), "a")
		b := wsJoin(t, m, "b")
		c := wsDial(t, m)
		msgs, code, _ := c.expectClosed()
		if len(msgs) != 1 || msgs[0].Code != "refused" || msgs[0].Text != "too many connections from your address, close one and try again" ||
			code != websocket.StatusTryAgainLater {
			t.Errorf("refused: %v, close %d", msgs, code)
		}
		d := dial(t, m.ChatAddr().String())
		if got := d.ExpectClosed(); got != "ERROR too many connections from your address, close one and try again\n" {
			t.Errorf("tcp: got %q", got)
		}
		b.c.Close(websocket.StatusNormalClosure, "")
		waitSessions(t, m, 1)
		wsJoin(t, m, "e")
	})
	t.Run("total", func(t *testing.T) {
		m := mustRunMain(t, "--max-conns", "1")
		wsJoin(t, m, "a")
		c := dial(t, m.ChatAddr().String())
		if got := c.ExpectClosed(); got != "ERROR server is full, try again later\n" {
			t.Errorf("tcp: got %q", got)
		}
		w := wsDial(t, m)
		if msgs, code, _ := w.expectClosed(); len(msgs) != 1 || msgs[0].Text != "server is full, try again later" || code != websocket.StatusTryAgainLater {
			t.Errorf("ws: %v, close %d", msgs, code)
		}
	})
}

// On shutdown a WebSocket client gets a last notice and close 1001, and the
// room hears it leave.
func TestWebSocketShutdown(t *testing.T) {
	m := mustRunMain(t)
	nc := join(t, m.ChatAddr().String(), "ncuser")
	web := wsJoin(t, m, "webuser")
	nc.Expect("webuser joined!")
	closed := make(chan error, 1)
	go func() { closed <- m.Close() }()
	msgs, code, reason := web.expectClosed()
	if len(msgs) == 0 || msgs[len(msgs)-1].Text != "server shutting down, bye" || code != websocket.StatusGoingAway || reason != "server shutting down" {
		t.Errorf("web got %v, close %d %q", msgs, code, reason)
	}
	if got := nc.ExpectClosed(); !strings.HasSuffix(got, "*** server shutting down, bye\n") {
		t.Errorf("nc got %q", got)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(waitFor):
		t.Fatal("Close did not return")
	}
}

// The page, its settings and its headers; the WebSocket's origin check.
func TestWebPage(t *testing.T) {
	other := "ws://chat2.example:8080/ws"
	m := mustRunMain(t, "--web-gateways", other+", wss://chat3.example/ws")

	resp, body := httpGet(t, m, "/")
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(body, `<script src="app.js"`) {
		t.Fatalf("GET / = %d %.80q", resp.StatusCode, body)
	}
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "require-trusted-types-for 'script'",
		"connect-src 'self' ws://chat2.example:8080 wss://chat3.example", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows something unsafe: %q", csp)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
	for _, p := range []string{"/app.js", "/style.css", "/favicon.svg"} {
		if r, b := httpGet(t, m, p); r.StatusCode != 200 || len(b) == 0 {
			t.Errorf("GET %s = %d", p, r.StatusCode)
		}
	}
	_, js := httpGet(t, m, "/app.js")
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(js, sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
	_, cfg := httpGet(t, m, "/config.json")
	if want := `{"v":1,"ws_path":"/ws","gateways":["ws://chat2.example:8080/ws","wss://chat3.example/ws"],"max_line":4096,"resume_age_ms":3600000}`; cfg != want {
		t.Errorf("config.json = %s, want %s", cfg, want)
	}

	// Pages of listed gateways may open the WebSocket; others may not.
	for origin, ok := range map[string]bool{
		"http://" + m.HTTPAddr().String(): true,
		"http://chat2.example:8080":       true,
		"http://evil.example":             false,
	} {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		c, resp, err := websocket.Dial(ctx, wsURL(m), &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {origin}}})
		cancel()
		if ok != (err == nil) {
			t.Errorf("origin %s: err %v", origin, err)
		}
		if err == nil {
			c.CloseNow()
		} else if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %s: want 403, got %v", origin, resp)
		}
	}

	if err := NewMain(RoleSingle).ParseFlags([]string{"--web-gateways", "http://x/ws"}); err != nil {
		t.Fatal(err)
	}
	bad := NewMain(RoleSingle)
	bad.Stderr = io.Discard
	bad.ParseFlags([]string{"--http", "127.0.0.1:0", "--web-gateways", "http://x/ws", "--listen", "127.0.0.1:0", "--data", t.TempDir()})
	if err := bad.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "ws://") {
		t.Errorf("an http:// web gateway: err = %v", err)
	}
	bad.Close()
}

// --http "" turns the web listener off.
func TestHTTPOff(t *testing.T) {
	m := mustRunMain(t, "--http", "")
	if m.HTTPAddr() != nil {
		t.Errorf("HTTPAddr = %v", m.HTTPAddr())
	}
	join(t, m.ChatAddr().String(), "alice")
}
