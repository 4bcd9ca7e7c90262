package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsMsg is any message the server sends a WebSocket client. Decoding
// refuses fields it does not list, so a test notices an undocumented one.
type wsMsg struct {
	Type    string   `json:"type"`
	V       int      `json:"v,omitempty"`
	Nick    string   `json:"nick,omitempty"`
	Room    string   `json:"room,omitempty"`
	MaxLine int      `json:"max_line,omitempty"`
	Kind    string   `json:"kind,omitempty"`
	ID      string   `json:"id,omitempty"`
	Missed  bool     `json:"missed,omitempty"`
	Skipped int      `json:"skipped,omitempty"`
	Gone    bool     `json:"gone,omitempty"`
	Text    string   `json:"text"`
	TS      int64    `json:"ts,omitempty"`
	Code    string   `json:"code,omitempty"`
	Cmd     string   `json:"cmd,omitempty"`
	Nicks   []string `json:"nicks,omitempty"`
	Ops     []string `json:"ops,omitempty"`
	By      string   `json:"by,omitempty"`
	Rooms   []struct {
		Room  string `json:"room"`
		Count int    `json:"count"`
		More  bool   `json:"more,omitempty"`
		Topic string `json:"topic,omitempty"`
	} `json:"rooms,omitempty"`
	From   string  `json:"from,omitempty"`
	To     string  `json:"to,omitempty"`
	Events []wsMsg `json:"events,omitempty"`
}

func (m wsMsg) String() string {
	b, _ := json.Marshal(m)
	return string(b)
}

// wsClient is a WebSocket chat client speaking the JSON protocol.
type wsClient struct {
	t       testing.TB
	c       *websocket.Conn
	nick    string
	pending []wsMsg // the rest of a batch already read
	seen    []string
	code    websocket.StatusCode // close status, once the server closed
	reason  string
}

// wsURL is the WebSocket endpoint of a running Main.
func wsURL(m *Main) string { return "ws://" + m.HTTPAddr().String() + "/ws" }

// wsDialOpts dials the endpoint with options and fails the test on error.
func wsDialOpts(t testing.TB, url string, opts *websocket.DialOptions) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, c: c}
}

func wsDial(t testing.TB, m *Main) *wsClient { return wsDialOpts(t, wsURL(m), nil) }

// wsDialFrom dials the endpoint from the local address ip.
func wsDialFrom(t testing.TB, m *Main, ip string) *wsClient {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return wsDialOpts(t, wsURL(m), &websocket.DialOptions{HTTPClient: &http.Client{
		Transport: &http.Transport{DialContext: d.DialContext},
	}})
}

// wsJoin connects and completes the handshake as nick.
func wsJoin(t testing.TB, m *Main, nick string) *wsClient {
	t.Helper()
	c := wsDial(t, m)
	c.nick = nick
	c.send(map[string]any{"type": "hello", "v": 1, "nick": nick})
	w := c.expectType("welcome")
	if w.Nick != nick || w.Room == "" || w.V != 1 || w.MaxLine <= 0 {
		t.Fatalf("welcome = %v", w)
	}
	c.expectType("history")
	c.expectEvent("join", nick, "")
	return c
}

// wsJoinURL is wsJoin for a server known by URL.
func wsJoinURL(t testing.TB, url, nick string) *wsClient {
	t.Helper()
	c := wsDialOpts(t, url, nil)
	c.nick = nick
	c.send(map[string]any{"type": "hello", "v": 1, "nick": nick})
	if w := c.expectType("welcome"); w.Nick != nick {
		t.Fatalf("welcome = %v", w)
	}
	c.expectEvent("join", nick, "")
	return c
}

func (c *wsClient) sendRaw(typ websocket.MessageType, b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.c.Write(ctx, typ, b); err != nil {
		c.t.Fatalf("%s: write: %v", c.nick, err)
	}
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(websocket.MessageText, b)
}

// line sends one line of chat or a command.
func (c *wsClient) line(text string) {
	c.t.Helper()
	c.send(map[string]string{"type": "line", "text": text})
}

// next returns the next server message, unpacking batches.
func (c *wsClient) next() (wsMsg, error) {
	if len(c.pending) > 0 {
		m := c.pending[0]
		c.pending = c.pending[1:]
		return m, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	typ, data, err := c.c.Read(ctx)
	if err != nil {
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			c.code, c.reason = ce.Code, ce.Reason
		}
		return wsMsg{}, err
	}
	if typ != websocket.MessageText {
		return wsMsg{}, fmt.Errorf("a %v message", typ)
	}
	var batch []wsMsg
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '[' {
		if err := decodeStrict(data, &batch); err != nil {
			return wsMsg{}, err
		}
		if len(batch) < 2 {
			return wsMsg{}, fmt.Errorf("a batch of %d messages: %s", len(batch), data)
		}
	} else {
		var m wsMsg
		if err := decodeStrict(data, &m); err != nil {
			return wsMsg{}, err
		}
		batch = []wsMsg{m}
	}
	for _, m := range batch {
		c.seen = append(c.seen, m.String())
	}
	c.pending = batch[1:]
	return batch[0], nil
}

func decodeStrict(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", data, err)
	}
	return nil
}

// expect reads messages until one matches; it returns those skipped.
func (c *wsClient) expect(desc string, match func(wsMsg) bool) (wsMsg, []wsMsg) {
	c.t.Helper()
	var skipped []wsMsg
	for {
		m, err := c.next()
		if err != nil {
			c.t.Fatalf("%s: waiting for %s: %v; read so far: %q", c.nick, desc, err, c.seen)
		}
		if match(m) {
			return m, skipped
		}
		skipped = append(skipped, m)
	}
}

func (c *wsClient) expectType(typ string) wsMsg {
	c.t.Helper()
	m, _ := c.expect(typ, func(m wsMsg) bool { return m.Type == typ })
	return m
}

// expectEvent waits for a room event; it returns the events skipped.
func (c *wsClient) expectEvent(kind, nick, text string) []wsMsg {
	c.t.Helper()
	_, skipped := c.expect(fmt.Sprintf("event %s %s %q", kind, nick, text), func(m wsMsg) bool {
		return m.Type == "event" && m.Kind == kind && m.Nick == nick && m.Text == text
	})
	return skipped
}

func (c *wsClient) expectNotice(prefix string) wsMsg {
	c.t.Helper()
	m, _ := c.expect("notice "+prefix, func(m wsMsg) bool { return m.Type == "notice" && strings.HasPrefix(m.Text, prefix) })
	return m
}

func (c *wsClient) expectError(code, prefix string) wsMsg {
	c.t.Helper()
	m, _ := c.expect("error "+code+" "+prefix, func(m wsMsg) bool {
		return m.Type == "error" && m.Code == code && strings.HasPrefix(m.Text, prefix)
	})
	return m
}

// expectClosed reads until the server closes, and returns the messages
// read and the close status.
func (c *wsClient) expectClosed() ([]wsMsg, websocket.StatusCode, string) {
	c.t.Helper()
	var got []wsMsg
	for {
		m, err := c.next()
		if err != nil {
			if c.code == 0 && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "EOF") {
				c.t.Fatalf("%s: want the server to close, got %v after %q", c.nick, err, c.seen)
			}
			return got, c.code, c.reason
		}
		got = append(got, m)
	}
}

// sync sends a marker line and reads up to its echo, returning the
// messages before it.
func (c *wsClient) sync() []wsMsg {
	c.t.Helper()
	marker := "sync-" + time.Now().Format("150405.000000000")
	c.line(marker)
	return c.expectEvent("say", c.nick, marker)
}

// httpGet fetches a path of a running Main's web listener.
func httpGet(t testing.TB, m *Main, path string) (*http.Response, string) {
	t.Helper()
	cl := &http.Client{Timeout: waitFor}
	resp, err := cl.Get("http://" + m.HTTPAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
