package gateway

import "github.com/chatd/chatd/internal/textsafe"

// This file exports the gateway's content rules as predicates, for the
// bus side: what a gateway accepts from another gateway is what it would
// have accepted from a client of its own. cmd/chatd hands these to the bus,
// which applies them to every envelope it receives (docs/protocol.md,
// "What a gateway accepts from the bus"). They are the rules themselves,
// not copies: ValidNickname is validNick, and CleanText is textsafe.Clean,
// tested against textsafe.Sanitize (FuzzClean), so the two sides cannot
// drift.

// ValidNickname reports whether nick is a nickname this gateway would give a
// client (validNick). It does not allocate.
func ValidNickname(nick string) bool { return validNick(nick) == "" }

// CleanText reports whether text is exactly what the gateway's sanitizer
// leaves of it (textsafe.Clean): valid UTF-8 with no control character,
// escape sequence or bidirectional control, and no white space at either
// end. Such text is safe to show on a terminal as it is. It does not
// allocate.
func CleanText(text string) bool { return textsafe.Clean(text) }
