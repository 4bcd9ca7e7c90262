package gateway

import (
	"unicode"
	"unicode/utf8"
)

// This file exports the gateway's content rules as predicates, for the
// bus side: what a gateway accepts from another gateway is what it would
// have accepted from a client of its own. cmd/chatd hands these to the bus,
// which applies them to every envelope it receives (docs/protocol.md,
// "What a gateway accepts from the bus"). They are the rules themselves,
// not copies: ValidNickname is validNick, and CleanText is tested against
// sanitize (FuzzCleanText), so the two sides cannot drift.

// ValidNickname reports whether nick is a nickname this gateway would give a
// client (validNick). It does not allocate.
func ValidNickname(nick string) bool { return validNick(nick) == "" }

// CleanText reports whether text is exactly what sanitize leaves of it:
// valid UTF-8 with no C0 or C1 control character, DEL, escape sequence
// (they start with ESC or a C1 control) or bidirectional control, and no
// white space at either end. The empty string is clean. Such text is safe
// to show on a terminal as it is. It does not allocate.
func CleanText(text string) bool {
	for i := 0; i < len(text); {
		c := text[i]
		if isPrintableASCII(c) {
			i++
			continue
		}
		if c < utf8.RuneSelf { // C0 control or DEL
			return false
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == utf8.RuneError && size == 1 || r <= 0x9f || isBidiControl(r) {
			return false
		}
		i += size
	}
	if text == "" {
		return true
	}
	first, _ := utf8.DecodeRuneInString(text)
	last, _ := utf8.DecodeLastRuneInString(text)
	return !unicode.IsSpace(first) && !unicode.IsSpace(last)
}
