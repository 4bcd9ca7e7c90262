package bus

import (
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Every envelope read from the bus — a room event, a private message, a
// line of history read back from the stream — is untrusted input: any NATS
// client that may publish on chat.v1.> can write one. Conn.accept checks
// each one, once, before it touches any state or reaches a callback; what
// fails is dropped and counted by reason (Conn.Rejected), and logged at most
// once per rejectLogEvery. docs/protocol.md, "What a gateway accepts from
// the bus", is the contract.

// Rules are the content rules an envelope's user-visible fields must pass:
// the same ones a gateway applies to its own clients. The gateway owns them
// (gateway.ValidNickname, gateway.CleanText, gateway.Config.MaxLine);
// cmd/chatd hands them to the bus, so that the two sides cannot drift.
// Both funcs are required; they must be safe for concurrent use, fast and
// should not allocate: they run once per envelope received.
type Rules struct {
	// Nick reports whether s is a valid nickname (a sender, a recipient, a
	// new nickname).
	Nick func(s string) bool
	// Text reports whether s is safe to show as it is: what the gateway's
	// sanitizer would leave unchanged.
	Text func(s string) bool
	// MaxText bounds a text, in characters (Unicode code points): a line
	// of at most MaxText bytes never sanitizes to more. Zero means 4096.
	MaxText int
}

// defaultMaxText is Rules.MaxText when zero: the gateway's default line
// limit.
const defaultMaxText = 4096

// Reason says why an envelope was rejected. The set is fixed: it is the
// reason label of chatd_bus_rejected_total, never taken from input.
type Reason uint8

// Reasons an envelope is rejected.
const (
	ReasonMalformed Reason = iota + 1 // not a JSON object of the envelope's shape, not UTF-8, no time
	ReasonVersion                     // "v" is not Version
	ReasonKind                        // unknown kind, or one that does not belong on its subject
	ReasonID                          // "id" or "gw" is not what a gateway writes
	ReasonRoom                        // "room" is not the room of the subject
	ReasonRecipient                   // "to" is not a nickname, or not the subject's recipient
	ReasonNick                        // a sender or new nickname breaks the nickname rule
	ReasonText                        // text is empty where it must not be, or not clean
	ReasonTooLong                     // the text or the whole envelope is over its bound
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonMalformed: "malformed", ReasonVersion: "version", ReasonKind: "kind", ReasonID: "id",
	ReasonRoom: "room", ReasonRecipient: "recipient", ReasonNick: "nick", ReasonText: "text",
	ReasonTooLong: "too_long",
}

func (r Reason) String() string {
	if r == 0 || r >= numReasons {
		return "unknown"
	}
	return reasonNames[r]
}

// Reasons lists every Reason, in order.
func Reasons() []Reason {
	out := make([]Reason, 0, numReasons-1)
	for r := ReasonMalformed; r < numReasons; r++ {
		out = append(out, r)
	}
	return out
}

// envelopeOverhead bounds everything in an envelope but its text: the
// field names, a nickname, a room, ids and the time, with room to spare.
const envelopeOverhead = 1024

// maxEnvelope is the largest envelope a gateway with these rules can have
// written: Encode writes at most 6 bytes per character of text (U+2028 as
// \u2028).
func (r *Rules) maxEnvelope() int { return 6*r.MaxText + envelopeOverhead }

// rejectLogEvery is the least time between two logs of a rejected envelope.
const rejectLogEvery = 10 * time.Second

// rejects counts and logs rejected envelopes. Safe for concurrent use.
type rejects struct {
	count      [numReasons]atomic.Uint64
	nextLog    atomic.Int64  // unix nanoseconds before which nothing is logged
	suppressed atomic.Uint64 // rejections not logged since the last log
}

// Rejected returns how many envelopes received from the bus this Conn has
// dropped, by reason, for every Reason (zeros included).
func (c *Conn) Rejected() map[Reason]uint64 {
	out := make(map[Reason]uint64, numReasons-1)
	for _, r := range Reasons() {
		out[r] = c.rejects.count[r].Load()
	}
	return out
}

// reject counts one rejected envelope and logs it, unless another was
// logged less than rejectLogEvery ago.
func (c *Conn) reject(r Reason, subject string, size int) {
	c.rejects.count[r].Add(1)
	now := time.Now().UnixNano()
	next := c.rejects.nextLog.Load()
	if now < next || !c.rejects.nextLog.CompareAndSwap(next, now+int64(rejectLogEvery)) {
		c.rejects.suppressed.Add(1)
		return
	}
	c.log.Warn("bus: dropped an invalid envelope (a NATS client that is not a chatd gateway, or a bug)",
		"reason", r.String(), "subject", subject, "bytes", size,
		"also_dropped_since_last_log", c.rejects.suppressed.Swap(0))
}

// What a subject carries, for accept.
type carrier uint8

const (
	onRoom carrier = iota // chat.v1.room.<room>.msg or .event (live or from history)
	onUser                // chat.v1.user.<nickkey>
	onMod                 // chat.v1.mod.<nickkey>
)

// accept decodes data, which arrived on subject, and checks it against the
// contract. It reports false, having counted and maybe logged the reason,
// for anything a gateway of this version does not write. It allocates what
// Decode does, and nothing more for a room event.
func (c *Conn) accept(on carrier, subject string, data []byte) (Envelope, bool) {
	e, r := c.check(on, subject, data)
	if r != 0 {
		c.reject(r, subject, len(data))
		return Envelope{}, false
	}
	return e, true
}

func (c *Conn) check(on carrier, subject string, data []byte) (Envelope, Reason) {
	rules := &c.cfg.Rules
	if len(data) > rules.maxEnvelope() {
		return Envelope{}, ReasonTooLong
	}
	// Encode writes only UTF-8; encoding/json would quietly repair it.
	if !utf8.Valid(data) {
		return Envelope{}, ReasonMalformed
	}
	e, err := Decode(data)
	switch {
	case errors.Is(err, ErrUnknownVersion):
		return e, ReasonVersion
	case err != nil:
		return e, ReasonMalformed
	}
	return e, c.checkFields(on, subject, &e)
}

// checkFields checks a decoded envelope's fields: check without the
// decoding. It does not allocate for a room event.
func (c *Conn) checkFields(on carrier, subject string, e *Envelope) Reason {
	rules := &c.cfg.Rules
	if e.TS <= 0 {
		return ReasonMalformed
	}
	if !validGatewayID(e.GW) || !validEventID(e.ID, e.GW) {
		return ReasonID
	}
	if on == onRoom {
		room, suffix, ok := splitRoomSubject(subject)
		if !ok {
			return ReasonRoom
		}
		switch e.Kind {
		case KindSay, KindMe:
			if suffix != "msg" {
				return ReasonKind
			}
		case KindJoin, KindLeave, KindNick, KindKick, KindTopic:
			if suffix != "event" {
				return ReasonKind
			}
		default:
			return ReasonKind
		}
		if e.Room != room {
			return ReasonRoom
		}
	} else {
		want, kind := UserSubject, KindMsg
		if on == onMod {
			want, kind = ModSubject, KindKick
			if ValidRoom(e.Room) != nil {
				return ReasonRoom
			}
		}
		if e.Kind != kind {
			return ReasonKind
		}
		if !rules.Nick(e.To) {
			return ReasonRecipient
		}
		if w, err := want(e.To); err != nil || w != subject {
			return ReasonRecipient
		}
	}
	if !rules.Nick(e.Nick) {
		return ReasonNick
	}
	switch e.Kind {
	case KindNick: // text is the new nickname
		if !rules.Nick(e.Text) {
			return ReasonNick
		}
		return 0
	case KindKick: // text is the operator, then the reason
		if on == onRoom {
			by, _, _ := strings.Cut(e.Text, " ")
			if !rules.Nick(by) {
				return ReasonNick
			}
		}
	case KindSay, KindMe, KindMsg:
		if e.Text == "" {
			return ReasonText
		}
	}
	if len(e.Text) > rules.MaxText && utf8.RuneCountInString(e.Text) > rules.MaxText {
		return ReasonTooLong
	}
	if !rules.Text(e.Text) {
		return ReasonText
	}
	return 0
}

// gatewayIDLen is the length of a gateway id (newID): 16 lower-case hex
// digits.
const gatewayIDLen = 16

// validGatewayID reports whether gw is a gateway id as newID makes them.
func validGatewayID(gw string) bool {
	if len(gw) != gatewayIDLen {
		return false
	}
	for i := 0; i < len(gw); i++ {
		if c := gw[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validEventID reports whether id is "<gw>.<counter>", the counter a
// decimal number from 1 that fits in a uint64, as stamp writes it.
func validEventID(id, gw string) bool {
	if !strings.HasPrefix(id, gw) || len(id) < len(gw)+2 || id[len(gw)] != '.' {
		return false
	}
	_, n, ok := splitID(id)
	num := id[len(gw)+1:]
	return ok && n > 0 && num[0] != '0'
}

// splitRoomSubject splits chat.v1.room.<room>.<suffix>.
func splitRoomSubject(subject string) (room, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(subject, roomPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.IndexByte(rest, '.')
	if i < 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// A lease record's address (leases.go) reaches clients in the shutdown
// notice, so it is checked like any other input from the bus.

// maxAddrLen bounds a gateway's address in a lease record.
const maxAddrLen = 255

// validAddr reports whether addr is what a gateway writes as its address:
// host:port in printable ASCII, at most maxAddrLen bytes.
func validAddr(addr string) bool {
	if addr == "" || len(addr) > maxAddrLen {
		return false
	}
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	host, port, err := net.SplitHostPort(addr)
	return err == nil && host != "" && port != ""
}
