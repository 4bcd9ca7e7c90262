package textsafe

import "testing"

var sanitizeSink string

func BenchmarkSanitize(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"ASCII", "bob: see you at the meeting tomorrow at 10, room 4.2, ok?"},
		{"NonASCII", "chloé: ça marche, à demain 10h, salle 4.2 👍 — 你好!"},
		{"Escapes", "\x1b[1;31mmallory\x1b[0m: \x1b]0;pwned\x07look\x07\x08 here\x1b[2J"},
	} {
		line := []byte(bc.line)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				sanitizeSink = Sanitize(line)
			}
		})
	}
}
