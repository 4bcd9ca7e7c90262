package gateway

import (
	"testing"
	"time"
)

var formatSink []byte

// BenchmarkFormat renders one event as the line members receive: once per
// event and gateway, whatever the number of members.
func BenchmarkFormat(b *testing.B) {
	for _, bc := range []struct{ name, kind, nick, text string }{
		{"Say", KindSay, "alice", "hello everyone, this is a fairly ordinary chat line"},
		{"Me", KindMe, "alice", "waves at everyone in the room"},
		{"Join", KindJoin, "alice", ""},
		{"Nick", KindNick, "alice", "alice_away"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				formatSink = formatEvent(bc.kind, bc.nick, bc.text)
			}
			b.SetBytes(int64(len(formatSink)))
		})
	}
	b.Run("History", func(b *testing.B) {
		now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
		at := now.Add(-time.Hour)
		b.ReportAllocs()
		for b.Loop() {
			formatSink = formatHistory(KindSay, "bob", "hi there", at, now)
		}
	})
}
