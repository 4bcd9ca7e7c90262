package gateway

import (
	"strings"
	"unicode/utf8"
)

// This file holds the client side of the classic line protocol: splitting a
// byte stream into lines (framer), making a line safe to show on other
// people's terminals (sanitize), and the nickname and room name rules.
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
// anything else stays in the line (sanitize drops it). Telnet IAC sequences
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

// sanitize returns the text of one line as safe, valid UTF-8 for other
// people's terminals, with surrounding white space trimmed; "" when nothing
// is left.
//
//   - Invalid UTF-8 becomes U+FFFD, one per run of invalid bytes.
//   - Terminal escape sequences are removed whole: CSI (ESC [ ... final),
//     OSC (ESC ] ... BEL or ST), DCS, SOS, PM and APC (ESC P, X, ^, _ ... ST),
//     ESC with intermediates and a final byte (ESC ( 0, ESC # 8), and any
//     other ESC x; also their 8-bit C1 forms (U+009B, U+009D, ...). CAN and
//     SUB cancel a sequence, as on a VT. An unterminated string sequence
//     removes the rest of the line.
//   - Every other C0 control, DEL and every C1 control (U+0080-U+009F) is
//     dropped; TAB becomes a space.
//   - Bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E,
//     U+2066-U+2069) are dropped.
//
// A line of printable ASCII costs one allocation. sanitize is idempotent.
func sanitize(line []byte) string {
	for _, c := range line {
		if !isPrintableASCII(c) {
			return sanitizeSlow(line)
		}
	}
	i, j := 0, len(line)
	for i < j && line[i] == ' ' {
		i++
	}
	for j > i && line[j-1] == ' ' {
		j--
	}
	if i == j {
		return ""
	}
	return string(line[i:j])
}

// escState is where sanitize is inside a terminal escape sequence, following
// the states of the DEC/ECMA-48 parser (vt100.net/emu/dec_ansi_parser).
type escState uint8

const (
	escGround escState = iota // text
	escEsc                    // seen ESC
	escInter                  // ESC followed by intermediates (0x20-0x2F)
	escCSI                    // control sequence: parameters, intermediates, final
	escOSC                    // operating system command string: ends at BEL or ST
	escStr                    // DCS/SOS/PM/APC string: ends at ST
)

// sanitizeSlow is sanitize for lines that are not plain printable ASCII.
func sanitizeSlow(line []byte) string {
	var b strings.Builder
	b.Grow(len(line))
	st := escGround
	prevInvalid := false
	for i := 0; i < len(line); {
		if st == escGround && isPrintableASCII(line[i]) { // a run of plain text
			j := i + 1
			for j < len(line) && isPrintableASCII(line[j]) {
				j++
			}
			b.Write(line[i:j])
			i = j
			prevInvalid = false
			continue
		}
		r, size := utf8.DecodeRune(line[i:])
		invalid := r == utf8.RuneError && size == 1
		i += size

	again:
		// Transitions that apply in every state.
		switch {
		case r == 0x1b: // ESC starts a new sequence, ending any other
			st = escEsc
			prevInvalid = false
			continue
		case r == 0x18 || r == 0x1a: // CAN, SUB cancel a sequence
			st = escGround
			prevInvalid = false
			continue
		case r >= 0x80 && r <= 0x9f: // C1 controls
			switch r {
			case 0x9b:
				st = escCSI
			case 0x9d:
				st = escOSC
			case 0x90, 0x98, 0x9e, 0x9f: // DCS, SOS, PM, APC
				st = escStr
			default: // ST (0x9C) and the rest
				st = escGround
			}
			prevInvalid = false
			continue
		}

		switch st {
		case escEsc, escInter:
			switch {
			case r >= 0x20 && r <= 0x2f:
				st = escInter
			case st == escEsc && r == '[':
				st = escCSI
			case st == escEsc && r == ']':
				st = escOSC
			case st == escEsc && (r == 'P' || r == 'X' || r == '^' || r == '_'):
				st = escStr
			case r >= 0x30 && r <= 0x7e: // final byte; ESC \ (ST) included
				st = escGround
			case r < 0x20 || r == 0x7f:
				// A VT executes C0 controls inside a sequence: drop them.
			default: // not part of a sequence: show it
				st = escGround
				goto again
			}
			continue
		case escCSI:
			switch {
			case r >= 0x20 && r <= 0x3f: // parameters and intermediates
			case r >= 0x40 && r <= 0x7e: // final byte
				st = escGround
			case r < 0x20 || r == 0x7f:
			default:
				st = escGround
				goto again
			}
			continue
		case escOSC:
			if r == 0x07 { // BEL ends an OSC, as xterm allows
				st = escGround
			}
			continue
		case escStr:
			continue
		}

		// Ground: text.
		switch {
		case invalid:
			if !prevInvalid {
				b.WriteRune(utf8.RuneError)
			}
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f:
		case isBidiControl(r):
		default:
			b.Write(line[i-size : i])
		}
		prevInvalid = invalid
	}
	return strings.TrimSpace(b.String())
}

func isPrintableASCII(c byte) bool { return c >= 0x20 && c < 0x7f }

// isBidiControl reports whether r is a Unicode bidirectional formatting
// character: embeddings and overrides, isolates, and the implicit marks.
func isBidiControl(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 ||
		r == 0x200e || r == 0x200f || r == 0x061c
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
// "<nick>:" (what sanitize leaves of "<nick>: ") also gives "".
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
