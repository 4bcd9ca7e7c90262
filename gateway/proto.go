package gateway

import (
	"strings"
	"unicode/utf8"
)

// This file holds the client side of the classic line protocol: splitting a
// byte stream into lines (framer) and the nickname and room name rules.
// Making a line safe to show on other people's terminals is
// textsafe.Sanitize.
// See docs/protocol.md, "Handshake", "Chat" and "Bad input".

// Telnet command bytes (RFC 854, RFC 855) the framer knows about.
const (
	telnetSE   = 240 // end of subnegotiation
	telnetSB   = 250 // begin subnegotiation
	telnetWILL = 251
	telnetDONT = 254
	telnetIAC  = 255 // "interpret as command"
)

// maxSubneg bounds a telnet subnegotiation (IAC SB ... IAC SE), counted from
// the byte after SB. Real ones (NAWS, TTYPE, NEW-ENVIRON) are far shorter;
// past the bound the framer gives up and treats what follows as data.
const maxSubneg = 64

// defaultMaxLine is the line limit newFramer uses when given none.
const defaultMaxLine = 4096

// iacState is where the framer is inside a telnet command sequence.
type iacState uint8

const (
	iacNone  iacState = iota // plain data
	iacCmd                   // seen IAC
	iacOpt                   // seen IAC WILL/WONT/DO/DONT: the option byte follows
	iacSub                   // inside IAC SB ...
	iacSubIA                 // seen IAC inside a subnegotiation
)

// framerSpecial marks the bytes that stop the framer's fast scan: line ends,
// the NUL of telnet's CR NUL, and IAC.
var framerSpecial = [256]bool{'\n': true, '\r': true, 0: true, telnetIAC: true}

// framer splits a client's byte stream into lines. Not safe for concurrent
// use (one per session reader).
//
// A line ends at "\n", "\r\n" or telnet's "\r\x00". A "\r" followed by
// anything else stays in the line (textsafe.Sanitize drops it). Telnet IAC sequences
// and NUL bytes are removed and do not count toward the limit; they are
// transparent, so "\r", IAC NOP, "\n" is still one line end.
//
// The framer is a byte-at-a-time state machine (with a fast path for runs of
// ordinary bytes), so how the stream is cut into feed calls never changes the
// lines it yields.
type framer struct {
	max      int
	buf      []byte   // the current line, without removed bytes
	cr       bool     // a "\r" was seen and is not yet known to end the line
	dropping bool     // the current line passed max: skip it up to its end
	skipEnd  bool     // flush ended a line: a line end that follows at once belongs to it
	iac      iacState // telnet command parsing
	subneg   int      // bytes seen inside the current subnegotiation
}

// newFramer returns a framer for lines of at most max bytes; max < 1 means
// the default of 4096.
func newFramer(max int) *framer {
	if max < 1 {
		max = defaultMaxLine
	}
	// buf grows to the longest line seen: an idle client, which has sent
	// only its nickname, keeps a few bytes.
	return &framer{max: max}
}

// feed consumes p. For each complete line it calls emit(line, false); line
// excludes the terminator and is only valid during the call (the framer
// reuses its buffer: no allocation per line in steady state). Lines may be
// empty. When a line grows past max, it calls emit(nil, true) once and drops
// the rest of that line up to its end. emit must not call back into the
// framer.
func (f *framer) feed(p []byte, emit func(line []byte, tooLong bool)) {
	for i := 0; i < len(p); {
		c := p[i]
		if f.iac != iacNone {
			f.telnet(c)
			i++
			continue
		}
		switch c {
		case '\n':
			f.cr = false
			f.endLine(emit)
		case '\r':
			if f.cr { // the previous "\r" did not end the line
				f.data(crByte[:], emit)
			}
			f.cr = true
		case 0:
			if f.cr { // telnet's CR NUL
				f.cr = false
				f.endLine(emit)
			} // any other NUL is dropped
		case telnetIAC:
			f.iac = iacCmd
		default:
			j := i + 1
			for j < len(p) && !framerSpecial[p[j]] {
				j++
			}
			if f.cr {
				f.cr = false
				f.data(crByte[:], emit)
			}
			f.data(p[i:j], emit)
			i = j
			continue
		}
		i++
	}
}

var crByte = [1]byte{'\r'}

// telnet consumes one byte of a telnet command sequence.
func (f *framer) telnet(c byte) {
	switch f.iac {
	case iacCmd:
		switch {
		case c == telnetIAC: // IAC IAC: an escaped 0xFF data byte, never valid UTF-8 text: drop it
			f.iac = iacNone
		case c == telnetSB:
			f.iac, f.subneg = iacSub, 0
		case c >= telnetWILL && c <= telnetDONT:
			f.iac = iacOpt
		default: // a two-byte command: NOP, GA, AYT, a stray SE, ...
			f.iac = iacNone
		}
	case iacOpt:
		f.iac = iacNone
	case iacSub, iacSubIA:
		f.subneg++
		switch {
		case f.iac == iacSub && c == telnetIAC:
			f.iac = iacSubIA
		case f.iac == iacSubIA && c == telnetIAC: // escaped 0xFF inside the subnegotiation
			f.iac = iacSub
		case f.iac == iacSubIA: // IAC SE, or a malformed IAC x: either way the end
			f.iac = iacNone
			return
		}
		if f.subneg >= maxSubneg {
			f.iac = iacNone
		}
	}
}

// data appends b to the current line, or starts dropping it when it gets too
// long.
func (f *framer) data(b []byte, emit func([]byte, bool)) {
	f.skipEnd = false
	if f.dropping {
		return
	}
	if len(f.buf)+len(b) > f.max {
		f.buf = f.buf[:0]
		f.dropping = true
		emit(nil, true)
		return
	}
	f.buf = append(f.buf, b...)
}

// endLine handles a line end.
func (f *framer) endLine(emit func([]byte, bool)) {
	switch {
	case f.dropping:
		f.dropping = false
	case f.skipEnd && len(f.buf) == 0:
		// The late terminator of a line flush already ended.
	default:
		line := f.buf
		f.buf = f.buf[:0]
		emit(line, false)
	}
	f.skipEnd = false
}

// pending reports whether a partial line (bytes not yet ended) is buffered;
// the reader then arms a short read deadline, and if the client pauses,
// calls flush. It is also true while the framer drops the rest of a line
// that was too long, so that a pause ends that line too.
func (f *framer) pending() bool {
	return len(f.buf) > 0 || f.cr || f.dropping
}

// flush ends the partial line because the client paused (classic clients
// send no newline): emits it if it has any bytes and resets the too-long
// state. A line end arriving right after a flush (the client's newline was
// merely late) ends nothing more: it does not yield an extra empty line. An
// unfinished telnet command is kept, as it may be completed later.
func (f *framer) flush(emit func(line []byte, tooLong bool)) {
	if !f.pending() {
		return
	}
	f.cr = false
	f.dropping = false
	f.skipEnd = true
	if len(f.buf) > 0 {
		line := f.buf
		f.buf = f.buf[:0]
		emit(line, false)
	}
}

// Reasons validNick and roomName give.
const (
	nickLenReason   = "nickname must be 1-32 characters"
	nickCharsReason = "nickname may only contain letters, digits and _-.[]{}|^"
	nickDashReason  = "nickname may not start with -"
	roomLenReason   = "room name must be 1-32 characters"
	roomCharsReason = "room name may only contain letters, digits, _ and -"
)

// maxNameLen bounds nicknames and room names.
const maxNameLen = 32

// reservedNicks are nicknames that read as the server, refused whatever
// their case: "ERROR" would make "ERROR joined!" an error line, "NAME" the
// handshake's prompt, and the others a notice's speaker. Lower case.
var reservedNicks = []string{"error", "name", "server", "chatd"}

// validNick checks a nickname: 1-32 characters of ASCII letters, digits and
// _-.[]{}|^, not starting with "-" (a history frame starts with "--- "), and
// not a reserved name. It returns "" when valid, else a short reason for the
// ERROR line.
//
// The classic protocol's line classes rest on these rules
// (docs/protocol.md, "Line classes"): a nickname holds no "*", ":" or
// space, so no line that starts with one is a notice, and no line it starts
// can be taken for another user's.
func validNick(nick string) string {
	if n := utf8.RuneCountInString(nick); n < 1 || n > maxNameLen {
		return nickLenReason
	}
	for i := 0; i < len(nick); i++ {
		c := nick[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("_-.[]{}|^", c) >= 0:
		default:
			return nickCharsReason
		}
	}
	if nick[0] == '-' {
		return nickDashReason
	}
	for _, r := range reservedNicks {
		if equalFoldASCII(nick, r) {
			return "nickname " + nick + " is reserved"
		}
	}
	return ""
}

// roomName lower-cases and checks a room name: 1-32 of [a-z0-9_-] after an
// optional leading '#', which is not part of the name. It returns the name
// and "", or "" and a short reason for the ERROR line.
func roomName(s string) (name string, reason string) {
	s = strings.TrimPrefix(s, "#")
	if n := utf8.RuneCountInString(s); n < 1 || n > maxNameLen {
		return "", roomLenReason
	}
	buf := []byte(s)
	for i, c := range buf {
		switch {
		case 'A' <= c && c <= 'Z':
			buf[i] = c + ('a' - 'A')
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return "", roomCharsReason
		}
	}
	return string(buf), ""
}

// stripSelfPrefix removes exactly one leading "<nick>: " (ASCII
// case-insensitive match of nick), which the classic client puts before its
// own lines; the result is what remains (may be ""). A text that is only
// "<nick>:" (what textsafe.Sanitize leaves of "<nick>: ") also gives "".
func stripSelfPrefix(text, nick string) string {
	n := len(nick)
	if n == 0 || len(text) < n+1 || text[n] != ':' || !equalFoldASCII(text[:n], nick) {
		return text
	}
	switch {
	case len(text) == n+1:
		return ""
	case text[n+1] == ' ':
		return text[n+2:]
	}
	return text
}

// equalFoldASCII reports whether a and b are equal under ASCII case folding.
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
