package gateway

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/chatd/chatd/internal/jsonstr"
)

// This file holds the WebSocket JSON protocol's messages (docs/protocol.md,
// "WebSocket"): jsonCodec renders server messages, decodeClientMsg reads
// client messages.

// wsVersion is the version of the WebSocket JSON protocol; welcome carries
// it and a client's hello may name the version it speaks.
const wsVersion = 1

// jsonCodec renders server messages as JSON objects, one per frame. Server
// messages are written by hand rather than with encoding/json: it is faster,
// and the text is left as it is (encoding/json would turn < > & into \u003c
// escapes, making frames up to six times longer; the page shows text with
// textContent, so they need no escaping).
type jsonCodec struct {
	maxLine int
}

func (jsonCodec) transportSlot() int { return 1 }
func (jsonCodec) encoding() int      { return encJSON }
func (jsonCodec) skips(*event) bool  { return false }

func (jsonCodec) event(ev *event) []byte {
	switch ev.kind {
	case KindSay, KindMe, KindJoin, KindLeave, KindNick, KindTopic:
	case KindKick:
		// "by" is the operator; text the reason.
		by, reason, _ := strings.Cut(ev.text, " ")
		kick := *ev
		kick.text = reason
		b := make([]byte, 0, 96+len(ev.room)+len(ev.nick)+len(ev.text))
		b = append(b, `{"type":"event",`...)
		b = appendEventFields(b, &kick, true)
		b = append(b, `,"by":`...)
		b = appendJSONString(b, by)
		return append(b, '}')
	default:
		return nil // a kind this gateway does not know
	}
	b := make([]byte, 0, 80+len(ev.room)+len(ev.nick)+len(ev.text))
	b = append(b, `{"type":"event",`...)
	b = appendEventFields(b, ev, true)
	return append(b, '}')
}

// appendEventFields appends the fields of an event object, without braces.
func appendEventFields(b []byte, ev *event, room bool) []byte {
	b = append(b, `"kind":`...)
	b = appendJSONString(b, ev.kind)
	if ev.id != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, ev.id)
	}
	if room {
		b = append(b, `,"room":`...)
		b = appendJSONString(b, ev.room)
	}
	b = append(b, `,"nick":`...)
	b = appendJSONString(b, ev.nick)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, ev.text)
	b = append(b, `,"ts":`...)
	return strconv.AppendInt(b, ev.at.UnixMilli(), 10)
}

func (jsonCodec) history(room string, evs []event, _ time.Time) [][]byte {
	n := 64 + len(room)
	for i := range evs {
		n += 64 + len(evs[i].nick) + len(evs[i].text)
	}
	b := make([]byte, 0, n)
	b = append(b, `{"type":"history","room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"events":[`...)
	first := true
	for i := range evs {
		if evs[i].kind != KindSay && evs[i].kind != KindMe {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '{')
		b = appendEventFields(b, &evs[i], false)
		b = append(b, '}')
	}
	return [][]byte{append(b, "]}"...)}
}

func (c jsonCodec) missed(room string, evs []event, skipped int, gone bool, now time.Time) [][]byte {
	f := c.history(room, evs, now)[0]
	b := make([]byte, 0, len(f)+48)
	b = append(b, `{"type":"history","missed":true,"skipped":`...)
	b = strconv.AppendInt(b, int64(skipped), 10)
	b = append(b, `,"gone":`...)
	b = strconv.AppendBool(b, gone)
	b = append(b, ',')
	b = append(b, f[len(`{"type":"history",`):]...)
	return [][]byte{b}
}

func (c jsonCodec) welcome(nick, room string) []byte {
	b := append([]byte(nil), `{"type":"welcome","v":`...)
	b = strconv.AppendInt(b, wsVersion, 10)
	b = append(b, `,"nick":`...)
	b = appendJSONString(b, nick)
	b = append(b, `,"room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"max_line":`...)
	b = strconv.AppendInt(b, int64(c.maxLine), 10)
	return append(b, '}')
}

func (jsonCodec) notice(text string) []byte {
	b := append([]byte(nil), `{"type":"notice","text":`...)
	b = appendJSONString(b, text)
	return append(b, '}')
}

func (jsonCodec) errorMsg(code, text string) []byte {
	b := append([]byte(nil), `{"type":"error",`...)
	if code != "" {
		b = append(b, `"code":`...)
		b = appendJSONString(b, code)
		b = append(b, ',')
	}
	b = append(b, `"text":`...)
	b = appendJSONString(b, text)
	return append(b, '}')
}

func (jsonCodec) who(room string, nicks, ops []string) []byte {
	b := append([]byte(nil), `{"type":"notice","cmd":"who","text":`...)
	b = appendJSONString(b, whoText(room, nicks, ops))
	b = append(b, `,"ops":[`...)
	first := true
	for _, n := range nicks {
		if containsFold(ops, n) {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, n)
		}
	}
	b = append(b, ']')
	b = append(b, `,"room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"nicks":[`...)
	for i, n := range nicks {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, n)
	}
	return append(b, "]}"...)
}

func (jsonCodec) rooms(names []string, counts map[string]int, topics map[string]string) []byte {
	b := append([]byte(nil), `{"type":"notice","cmd":"rooms","text":`...)
	b = appendJSONString(b, roomsText(names, counts, topics))
	b = append(b, `,"rooms":[`...)
	for i, n := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"room":`...)
		b = appendJSONString(b, n)
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(counts[n]), 10)
		if t := topics[n]; t != "" {
			b = append(b, `,"topic":`...)
			b = appendJSONString(b, t)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func (jsonCodec) private(from, to, text string, at time.Time, _ bool) []byte {
	b := append([]byte(nil), `{"type":"private","from":`...)
	b = appendJSONString(b, from)
	b = append(b, `,"to":`...)
	b = appendJSONString(b, to)
	b = append(b, `,"text":`...)
	b = appendJSONString(b, text)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, at.UnixMilli(), 10)
	return append(b, '}')
}

// framePong answers a client's ping.
var framePong = []byte(`{"type":"pong"}`)

// appendJSONString appends s as a JSON string, as encoding/json writes it
// with HTML escaping off (jsonstr.Append): quotes, backslashes, control
// characters, U+2028 and U+2029 are escaped; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte { return jsonstr.Append(b, s) }

// clientMsg is one message from a WebSocket client. Unknown fields are
// ignored, so later versions may add some.
type clientMsg struct {
	Type     string `json:"type"`
	V        int    `json:"v"`
	Nick     string `json:"nick"`
	Text     string `json:"text"`
	Password string `json:"password"` // hello only, on servers with --password
	// NickPassword is the password of a registered nickname (hello only).
	NickPassword string   `json:"nick_password"`
	Resume       string   `json:"resume"` // hello only: a resume token (resume.go)
	Rooms        []string `json:"rooms"`  // unread only: positions in other rooms (unread.go)
}

// decodeClientMsg parses one client message. encoding/json turns invalid
// UTF-8 and lone surrogates into U+FFFD; the core sanitizes the rest.
func decodeClientMsg(data []byte) (clientMsg, error) {
	var m clientMsg
	err := json.Unmarshal(data, &m)
	return m, err
}
