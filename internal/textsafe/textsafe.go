package textsafe

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sanitize returns the text of one line as safe, valid UTF-8 for other
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
// A line of printable ASCII costs one allocation; the result never shares
// memory with line. Sanitize is idempotent.
func Sanitize(line []byte) string {
	for _, c := range line {
		if !isPrintableASCII(c) {
			return sanitizeSlow(line, true)
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

// Options selects a variant of Sanitize. The zero Options is Sanitize.
type Options struct {
	// KeepSpace keeps the white space at either end of the line, for a
	// client that prints lines as the server sent them.
	KeepSpace bool
}

// Sanitize is Sanitize with the options of o.
func (o Options) Sanitize(line []byte) string {
	if !o.KeepSpace {
		return Sanitize(line)
	}
	for _, c := range line {
		if !isPrintableASCII(c) {
			return sanitizeSlow(line, false)
		}
	}
	return string(line)
}

// escState is where Sanitize is inside a terminal escape sequence, following
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

// sanitizeSlow is Sanitize for lines that are not plain printable ASCII;
// trim says whether to trim surrounding white space.
func sanitizeSlow(line []byte, trim bool) string {
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
		case IsBidiControl(r):
		default:
			b.Write(line[i-size : i])
		}
		prevInvalid = invalid
	}
	if !trim {
		return b.String()
	}
	return strings.TrimSpace(b.String())
}

// Clean reports whether text is exactly what Sanitize leaves of it: valid
// UTF-8 with no C0 or C1 control character, DEL, escape sequence (they
// start with ESC or a C1 control) or bidirectional control, and no white
// space at either end. The empty string is clean. Such text is safe to show
// on a terminal as it is. It does not allocate.
func Clean(text string) bool {
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
		if r == utf8.RuneError && size == 1 || r <= 0x9f || IsBidiControl(r) {
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

func isPrintableASCII(c byte) bool { return c >= 0x20 && c < 0x7f }

// IsBidiControl reports whether r is a Unicode bidirectional formatting
// character: embeddings and overrides, isolates, and the implicit marks.
func IsBidiControl(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069 ||
		r == 0x200e || r == 0x200f || r == 0x061c
}
