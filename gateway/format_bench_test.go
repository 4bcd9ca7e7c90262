package gateway

import (
	"testing"
	"time"
)

var formatSink []byte

// BenchmarkFormat renders one event as the frame members receive (a TCP
// line, or a WebSocket JSON message): once per event, encoding and gateway,
// whatever the number of members.
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
	b.Run("JSON", func(b *testing.B) {
		c := jsonCodec{maxLine: defaultMaxLine}
		at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
		b.ReportAllocs()
		for b.Loop() {
			ev := event{id: "gw.1", kind: KindSay, room: "lobby", nick: "alice", text: "hello everyone, this is a fairly ordinary chat line", at: at}
			formatSink = c.event(&ev)
		}
		b.SetBytes(int64(len(formatSink)))
	})
	b.Run("History", func(b *testing.B) {
		now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
		at := now.Add(-time.Hour)
		b.ReportAllocs()
		for b.Loop() {
			formatSink = formatHistory(KindSay, "bob", "hi there", at, now)
		}
	})
}
