package bus

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/chatd/chatd/internal/jsonstr"
)

// Version is the envelope version this package writes and reads. Later
// versions of chatd may add fields to the envelope but never change the
// meaning of one; an envelope with another "v" is skipped.
const Version = 1

// Event kinds. The room kinds match the gateway's; KindMsg is a private
// message.
const (
	KindSay   = "say"   // chat line; stored in history
	KindMe    = "me"    // /me action; stored in history
	KindJoin  = "join"  // nick joined the room
	KindLeave = "leave" // nick left the room; text is the reason, if any
	KindNick  = "nick"  // nick is now known as text
	KindMsg   = "msg"   // private message from nick to To
	// KindKick, on a room's subject: nick was removed from the room by an
	// operator; text is "<operator>" or "<operator> <reason>" (announced by
	// PartKicked). On chat.v1.mod.<nickkey>: an order from nick (an
	// operator) to the gateway of To to remove To from Room, for reason
	// Text (sent by Kick).
	KindKick = "kick"
	// KindTopic: nick set the room's topic to text (empty: cleared).
	KindTopic = "topic"
)

// Envelope is what travels on every chat subject: one JSON object,
//
//	{"v":1,"id":"<gwid>.<seq>","gw":"<gwid>","kind":"say","room":"lobby",
//	 "nick":"alice","text":"hi","ts":1700000000000000000}
//
// Private messages carry kind "msg", no room, and "to" (nick is the sender).
// Decoding ignores fields it does not know.
type Envelope struct {
	V    int    `json:"v"`              // Version
	ID   string `json:"id"`             // unique across the cluster: <gw>.<counter>
	GW   string `json:"gw"`             // id of the publishing gateway
	Kind string `json:"kind"`           // one of the Kind constants
	Room string `json:"room,omitempty"` // room name; empty for private messages
	Nick string `json:"nick"`           // who did it (sender of a private message)
	Text string `json:"text"`           // line, action, reason or new nick
	To   string `json:"to,omitempty"`   // recipient of a private message
	TS   int64  `json:"ts"`             // Unix nanoseconds at the publishing gateway
}

// Encode appends the JSON form of e to dst and returns the result. It writes
// the same bytes as encoding/json with HTML escaping off (jsonstr.Append):
// invalid UTF-8 becomes \ufffd and control characters are escaped.
func Encode(dst []byte, e *Envelope) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(e.V), 10)
	dst = appendField(dst, "id", e.ID)
	dst = appendField(dst, "gw", e.GW)
	dst = appendField(dst, "kind", e.Kind)
	if e.Room != "" {
		dst = appendField(dst, "room", e.Room)
	}
	dst = appendField(dst, "nick", e.Nick)
	dst = appendField(dst, "text", e.Text)
	if e.To != "" {
		dst = appendField(dst, "to", e.To)
	}
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, e.TS, 10)
	return append(dst, '}')
}

func appendField(dst []byte, name, value string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return jsonstr.Append(dst, value)
}

// Decode parses one envelope. Unknown fields are ignored. It fails with
// ErrMalformed if data is not a JSON object of the envelope's shape, and with
// ErrUnknownVersion if its version is not Version.
func Decode(data []byte) (Envelope, error) {
	if e, ok := decodeFast(data); ok && e.V == Version {
		return e, nil
	}
	e := new(Envelope)
	if err := decodeStd(data, e); err != nil {
		return Envelope{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if e.V != Version {
		return Envelope{}, fmt.Errorf("%w: %d", ErrUnknownVersion, e.V)
	}
	return *e, nil
}

// decodeStd is Decode's general path: encoding/json, for whatever
// decodeFast does not take (fields of a newer version, odd formatting,
// errors).
func decodeStd(data []byte, e *Envelope) error {
	*e = Envelope{}
	return json.Unmarshal(data, e)
}
