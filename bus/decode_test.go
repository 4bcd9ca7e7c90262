package bus

import (
	"encoding/json"
	"testing"
)

var decodeSeeds = []string{
	`{"v":1,"id":"g.1","gw":"g","kind":"say","room":"lobby","nick":"alice","text":"hi","ts":5}`,
	` { "v" : 1 , "text" : "a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00" , "ts" : -12 } `,
	`{"v":1,"text":"\ud800"}`, `{"v":1,"text":"\ud800\u0041"}`, `{"v":1,"text":"\udc00\ud800"}`,
	`{"v":1,"text":"\ud83d\ude00\ud83d"}`, `{"v":1,"text":"\ud83d\u"}`, `{"v":1,"text":"\uZZZZ"}`,
	`{"v":1,"text":"` + "\xff" + `"}`, `{"v":1,"text":"` + "\x01" + `"}`, `{"v":1,"text":"\x"}`,
	`{"v":1,"Text":"case"}`, `{"v":1,"TEXT":"a","text":"b"}`, `{"v":1,"text":"a","text":"b"}`,
	`{"v":1,"text":null}`, `{"v":1,"text":5}`, `{"v":"1"}`, `{"v":1.0}`, `{"v":1e0}`, `{"v":01}`,
	`{"v":-0}`, `{"v":1,"ts":123456789012345678}`, `{"v":1,"ts":1234567890123456789}`,
	`{"v":1,"ts":-9223372036854775808}`, `{"v":1,"ts":9223372036854775808}`, `{"v":1,"ts":9223372036854775807}`, `{"v":1,"ts":-9223372036854775809}`, `{"v":1,"ts":99999999999999999999}`,
	`{"v":1,"extra":{"a":[1,2,{"b":null}]},"text":"x"}`, `{"v":1}x`, `{"v":1}}`, `{"v":1,}`,
	`{"v":1 "text":"x"}`, `{}`, `{ }`, `[]`, `null`, ``, `{`, `{"v"`, `{"v":`, `{"v":1`,
	`{"":1}`, `{"v":1,"id":"\u0000"}`, `{"v":1,"text":"\u2028"}`, "{\"v\":1}\n",
}

// FuzzDecodeFast checks that the fast path never disagrees with
// encoding/json: whatever decodeFast accepts, encoding/json accepts too and
// decodes to the same envelope.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Add(Encode(nil, &benchEnvelope))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeFast(data)
		var want Envelope
		err := json.Unmarshal(data, &want)
		if ok && (err != nil || got != want) {
			t.Fatalf("decodeFast(%q) = %+v; encoding/json: %+v, %v", data, got, want, err)
		}
	})
}

// What Encode writes always takes the fast path.
func FuzzDecodeFastTakesEncoded(f *testing.F) {
	for _, s := range []string{"hi", "\x00\x1f\"\\", "\xff\xfe", "\u2028<&>", "é😀", "\xed\xa0\x80", ""} {
		f.Add(s, s, int64(7))
	}
	f.Fuzz(func(t *testing.T, text, nick string, ts int64) {
		e := Envelope{V: 1, ID: "g.1", GW: "g", Kind: KindSay, Room: "r", Nick: nick, Text: text, To: nick, TS: ts}
		data := Encode(nil, &e)
		got, ok := decodeFast(data)
		if !ok {
			t.Fatalf("decodeFast(%q) fell back", data)
		}
		var want Envelope
		if err := json.Unmarshal(data, &want); err != nil || got != want {
			t.Fatalf("decodeFast(%q) = %+v; encoding/json: %+v, %v", data, got, want, err)
		}
	})
}

func TestDecodeFastAllocs(t *testing.T) {
	data := Encode(nil, &benchEnvelope)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := Decode(data); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("Decode allocates %v times; want 1", allocs)
	}
}

// BenchmarkDecodeStd is the encoding/json path Decode falls back to.
func BenchmarkDecodeStd(b *testing.B) {
	data := Encode(nil, &benchEnvelope)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var e Envelope
	for b.Loop() {
		if err := decodeStd(data, &e); err != nil {
			b.Fatal(err)
		}
	}
}
