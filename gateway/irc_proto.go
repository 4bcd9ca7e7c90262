package gateway

import (
	"bytes"
	"strings"

	"github.com/chatd/chatd/internal/textsafe"
)

// This file holds the client side of the IRC protocol (RFC 1459, RFC 2812
// and the IRCv3 message format): splitting the byte stream into lines
// (ircFramer), parsing a line (parseIRC), and what a PRIVMSG's text becomes
// (ircText). See docs/protocol.md, "IRC clients".

// IRC limits on what a client sends: the message proper, CRLF included,
// is at most 512 bytes; its tags ("@" up to the space) at most 4096.
const (
	ircMaxMsg    = 512
	ircMaxTags   = 4096
	ircMaxLine   = ircMaxMsg + ircMaxTags // what the framer keeps of one line
	ircMaxParams = 15
)

// ircFramer splits a client's byte stream into lines. A line ends at "\n"
// or "\r" (so CRLF, and the bare LF or CR some clients send); empty lines
// are skipped. A line longer than max is reported once with tooLong and
// dropped up to its end, so memory stays bounded whatever the client
// sends. Not safe for concurrent use.
type ircFramer struct {
	max      int
	buf      []byte
	dropping bool
}

// feed consumes p, calling emit for each line; line is only valid during
// the call.
func (f *ircFramer) feed(p []byte, emit func(line []byte, tooLong bool)) {
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\r\n")
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !f.dropping {
			if len(f.buf)+len(chunk) > f.max {
				f.dropping = true
				f.buf = f.buf[:0]
				emit(nil, true)
			} else {
				f.buf = append(f.buf, chunk...)
			}
		}
		if i < 0 {
			return
		}
		p = p[i+1:]
		if !f.dropping && len(f.buf) > 0 {
			emit(f.buf, false)
		}
		f.buf, f.dropping = f.buf[:0], false
	}
}

// ircMsg is one parsed client message. Tags and the prefix are read and
// ignored: a client's tags are not passed on, and its prefix is never
// believed.
type ircMsg struct {
	command string   // upper case; letters, or three digits
	params  []string // at most ircMaxParams; only the last may hold spaces or start with ':'
}

// parseIRC parses one line without its line end. ok is false for a line
// with no command (blank, or a prefix alone); tooLong for a line whose
// tags or message is over the IRC limits.
func parseIRC(line []byte) (m ircMsg, tooLong, ok bool) {
	rest := line
	if len(rest) > 0 && rest[0] == '@' {
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			return m, len(rest)+1 > ircMaxTags, false
		}
		if sp+1 > ircMaxTags {
			return m, true, false
		}
		rest = rest[sp+1:]
	}
	rest = bytes.TrimLeft(rest, " ")
	if len(rest)+2 > ircMaxMsg {
		return m, true, false
	}
	if len(rest) > 0 && rest[0] == ':' {
		sp := bytes.IndexByte(rest, ' ')
		if sp < 0 {
			return m, false, false
		}
		rest = bytes.TrimLeft(rest[sp+1:], " ")
	}
	cmd := rest
	if sp := bytes.IndexByte(rest, ' '); sp >= 0 {
		cmd, rest = rest[:sp], rest[sp+1:]
	} else {
		rest = nil
	}
	if len(cmd) == 0 {
		return m, false, false
	}
	if !validCommand(cmd) {
		m.command = ircBadCommand
		return m, false, true
	}
	m.command = strings.ToUpper(string(cmd))
	for len(rest) > 0 {
		rest = bytes.TrimLeft(rest, " ")
		if len(rest) == 0 {
			break
		}
		if rest[0] == ':' || len(m.params) == ircMaxParams-1 {
			if rest[0] == ':' {
				rest = rest[1:]
			}
			m.params = append(m.params, string(rest))
			break
		}
		p := rest
		if sp := bytes.IndexByte(rest, ' '); sp >= 0 {
			p, rest = rest[:sp], rest[sp+1:]
		} else {
			rest = nil
		}
		m.params = append(m.params, string(p))
	}
	return m, false, true
}

// ircBadCommand stands for a command word that is neither letters nor
// three digits: it is answered like an unknown command, never echoed.
const ircBadCommand = "?"

func validCommand(b []byte) bool {
	letters, digits := 0, 0
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letters++
		case c >= '0' && c <= '9':
			digits++
		default:
			return false
		}
	}
	return letters == len(b) && letters <= 32 || digits == 3 && len(b) == 3
}

// ircTextKind is what a PRIVMSG's or NOTICE's text is.
type ircTextKind int

const (
	ircPlain  ircTextKind = iota // a chat line
	ircAction                    // CTCP ACTION: /me
	ircCTCP                      // any other CTCP request or reply: not passed on
)

// ircText makes a PRIVMSG's text safe (formatting codes removed, then
// textsafe rules) and says what it is. For ircCTCP, text is the CTCP
// command's name, sanitized.
func ircText(raw string) (kind ircTextKind, text string) {
	if strings.HasPrefix(raw, "\x01") {
		inner := strings.TrimSuffix(raw[1:], "\x01")
		name, arg, _ := strings.Cut(inner, " ")
		if strings.EqualFold(name, "ACTION") {
			return ircAction, sanitizeIRC(arg)
		}
		return ircCTCP, sanitizeIRC(name)
	}
	return ircPlain, sanitizeIRC(raw)
}

// sanitizeIRC removes mIRC formatting (bold, colours with their numbers,
// italics, ...) and then applies the one stripper, textsafe.Sanitize.
func sanitizeIRC(s string) string {
	return textsafe.Sanitize([]byte(stripFormatting(s)))
}

// stripFormatting removes IRC formatting codes: ^B ^] ^_ ^^ ^Q ^V ^O, ^C
// with up to two digits of foreground and ",NN" of background, and ^D
// with a hex colour. Other bytes are left to the sanitizer.
func stripFormatting(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 }) < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case 0x02, 0x1d, 0x1f, 0x1e, 0x11, 0x16, 0x0f:
			continue
		case 0x03:
			i += colourLen(s[i+1:], isDigit, 2)
			continue
		case 0x04:
			i += colourLen(s[i+1:], isHex, 6)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// colourLen is how many bytes of s are a colour code's numbers: up to n
// bytes of fg, optionally "," and up to n more.
func colourLen(s string, ok func(byte) bool, n int) int {
	i := 0
	for i < len(s) && i < n && ok(s[i]) {
		i++
	}
	if i > 0 && i+1 < len(s) && s[i] == ',' && ok(s[i+1]) {
		j := i + 1
		for j < len(s) && j-i-1 < n && ok(s[j]) {
			j++
		}
		i = j
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// ircChannel turns a channel name into a room name: "#Dev" is room "dev".
// reason is why it is not one.
func ircChannel(name string) (room, reason string) {
	if !strings.HasPrefix(name, "#") {
		return "", "channel names start with #, as #lobby"
	}
	return roomName(name[1:])
}
