package bus

import (
	"math"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeFast parses the envelopes gateways write (Encode's shape: one flat
// object of the known fields, string and integer values) without
// reflection and with one allocation. It reports false for anything else —
// an unknown or differently-cased key, a value of another type, a number
// that is not a plain integer, invalid UTF-8 or JSON, trailing data — and
// Decode then uses encoding/json, so that both paths accept and reject the
// same input and give the same result (FuzzDecodeFast checks it).
func decodeFast(data []byte) (Envelope, bool) {
	var e Envelope
	str := string(data) // the one allocation: field values are substrings of it
	p := &fastParser{s: str}
	p.space()
	if !p.byte('{') {
		return e, false
	}
	p.space()
	if p.byte('}') {
		return e, p.end()
	}
	for {
		p.space()
		key, ok := p.plainString()
		if !ok {
			return e, false
		}
		p.space()
		if !p.byte(':') {
			return e, false
		}
		p.space()
		switch key {
		case "v":
			n, ok := p.integer()
			if !ok || n != int64(int(n)) {
				return e, false
			}
			e.V = int(n)
		case "ts":
			if e.TS, ok = p.integer(); !ok {
				return e, false
			}
		default:
			f := e.stringField(key)
			if f == nil {
				return e, false // a field this decoder does not know: encoding/json skips it
			}
			if *f, ok = p.stringValue(); !ok {
				return e, false
			}
		}
		p.space()
		if p.byte('}') {
			return e, p.end()
		}
		if !p.byte(',') {
			return e, false
		}
	}
}

func (e *Envelope) stringField(key string) *string {
	switch key {
	case "id":
		return &e.ID
	case "gw":
		return &e.GW
	case "kind":
		return &e.Kind
	case "room":
		return &e.Room
	case "nick":
		return &e.Nick
	case "text":
		return &e.Text
	case "to":
		return &e.To
	}
	return nil
}

type fastParser struct {
	s string
	i int
}

func (p *fastParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) byte(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only white space follows.
func (p *fastParser) end() bool {
	p.space()
	return p.i == len(p.s)
}

// plainString reads a string with no escapes, control characters or
// non-ASCII bytes (object keys).
func (p *fastParser) plainString() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c < 0x20 || c == '\\' || c >= utf8.RuneSelf:
			return "", false
		}
		p.i++
	}
	return "", false
}

// stringValue reads a JSON string value as encoding/json would decode it.
// One without escapes is a substring of the input.
func (p *fastParser) stringValue() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			v := p.s[start:p.i]
			p.i++
			if !utf8.ValidString(v) {
				return "", false // encoding/json replaces invalid bytes: let it
			}
			return v, true
		case c == '\\':
			return p.escapedString(start)
		case c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// escapedString finishes a string that has escapes, from start (after the
// opening quote).
func (p *fastParser) escapedString(start int) (string, bool) {
	b := make([]byte, 0, len(p.s)-start)
	b = append(b, p.s[start:p.i]...)
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(b) {
				return "", false
			}
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.s) {
			return "", false
		}
		esc := p.s[p.i+1]
		p.i += 2
		switch esc {
		case '"', '\\', '/':
			b = append(b, esc)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// A high surrogate followed by an escaped low one is one
				// rune; anything else is U+FFFD, as encoding/json does.
				r2 := utf8.RuneError
				save := p.i
				if p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
					p.i += 2
					if x, ok := p.hex4(); ok {
						r2 = x
					} else {
						return "", false
					}
				}
				if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
					r = dec
				} else {
					r = utf8.RuneError
					p.i = save // the second escape, if any, stands alone
				}
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", false
		}
	}
	return "", false
}

func (p *fastParser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[p.i : p.i+4]) {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, true
}

// integer reads a JSON integer (no fraction or exponent) that fits in an
// int64; Unix nanoseconds have 19 digits.
func (p *fastParser) integer() (int64, bool) {
	neg := p.byte('-')
	start := p.i
	var n uint64 // 19 digits always fit
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		n = n*10 + uint64(p.s[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || digits > 19 || digits > 1 && p.s[start] == '0' {
		return 0, false
	}
	if p.i < len(p.s) {
		switch p.s[p.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	switch {
	case !neg && n <= math.MaxInt64:
		return int64(n), true
	case neg && n <= 1<<63:
		return int64(-n), true // -(1<<63) wraps to MinInt64, as wanted
	}
	return 0, false
}
