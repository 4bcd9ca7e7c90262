// Package textsafe makes untrusted text safe to show on a terminal: it
// removes terminal escape sequences whole, control and bidirectional
// characters, and turns invalid UTF-8 into U+FFFD (Sanitize), and it tells
// whether a text is already so (Clean). The gateway applies it to every line
// a client sends, the bus side to every text off the bus (through
// gateway.CleanText), and the terminal client to every line it prints.
//
// Everything here is a pure function of its argument, safe for concurrent
// use, and imports only the standard library. docs/protocol.md ("Bad input")
// is its contract.
package textsafe
