package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// stdEncode is what encoding/json writes for e, without HTML escaping.
func stdEncode(t testing.TB, e *Envelope) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

func TestEncode(t *testing.T) {
	tests := []struct {
		e    Envelope
		want string
	}{
		{
			Envelope{V: 1, ID: "gw1.1", GW: "gw1", Kind: "say", Room: "lobby", Nick: "alice", Text: "hi", TS: 1700000000000000000},
			`{"v":1,"id":"gw1.1","gw":"gw1","kind":"say","room":"lobby","nick":"alice","text":"hi","ts":1700000000000000000}`,
		},
		{
			Envelope{V: 1, ID: "g.2", GW: "g", Kind: "msg", Nick: "bob", Text: "psst", To: "Alice", TS: -1},
			`{"v":1,"id":"g.2","gw":"g","kind":"msg","nick":"bob","text":"psst","to":"Alice","ts":-1}`,
		},
		{
			Envelope{V: 1, Kind: "join", Room: "r", Nick: "x"},
			`{"v":1,"id":"","gw":"","kind":"join","room":"r","nick":"x","text":"","ts":0}`,
		},
		{
			Envelope{V: 1, Text: "q\"b\\s/<>&\b\f\n\r\t\x00\x1f\x7f"},
			`{"v":1,"id":"","gw":"","kind":"","nick":"","text":"q\"b\\s/<>&\b\f\n\r\t\u0000\u001f` + "\x7f" + `","ts":0}`,
		},
		{
			Envelope{V: 1, Text: "é\u2028\u2029\xff\xe2\x82!😀"},
			`{"v":1,"id":"","gw":"","kind":"","nick":"","text":"é\u2028\u2029\ufffd\ufffd\ufffd!😀","ts":0}`,
		},
	}
	for i, tt := range tests {
		got := Encode(nil, &tt.e)
		if string(got) != tt.want {
			t.Errorf("%d: Encode =\n %s\nwant\n %s", i, got, tt.want)
		}
		if std := stdEncode(t, &tt.e); !bytes.Equal(got, std) {
			t.Errorf("%d: Encode differs from encoding/json:\n %s\n %s", i, got, std)
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		in      string
		want    Envelope
		wantErr error
	}{
		{
			in:   `{"v":1,"id":"g.1","gw":"g","kind":"say","room":"lobby","nick":"alice","text":"hi","ts":5}`,
			want: Envelope{V: 1, ID: "g.1", GW: "g", Kind: "say", Room: "lobby", Nick: "alice", Text: "hi", TS: 5},
		},
		{ // a newer gateway's extra fields are ignored
			in:   `{"v":1,"kind":"me","nick":"a","text":"waves","ts":1,"color":"red","meta":{"x":[1,2]}}`,
			want: Envelope{V: 1, Kind: "me", Nick: "a", Text: "waves", TS: 1},
		},
		{
			in:   ` {"ts":2,"to":"Bob","kind":"msg","v":1,"text":"\u00e9\ud83d\ude00"} `,
			want: Envelope{V: 1, Kind: "msg", To: "Bob", Text: "é😀", TS: 2},
		},
		{in: `{"v":2,"kind":"say"}`, wantErr: ErrUnknownVersion},
		{in: `{"kind":"say"}`, wantErr: ErrUnknownVersion},
		{in: `null`, wantErr: ErrUnknownVersion},
		{in: ``, wantErr: ErrMalformed},
		{in: `[]`, wantErr: ErrMalformed},
		{in: `{"v":1,"ts":"soon"}`, wantErr: ErrMalformed},
		{in: `{"v":1,"text":5}`, wantErr: ErrMalformed},
		{in: `{"v":1`, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.in))
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Decode(%s) err = %v; want %v", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Decode(%s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"id":"g.1","gw":"g","kind":"say","room":"lobby","nick":"alice","text":"hi","ts":5}`,
		`{"v":1,"kind":"msg","nick":"b","to":"a","text":"\u0000\ud800","ts":-9223372036854775808}`,
		`{"v":1,"extra":{"deep":[[[[]]]]},"text":"` + "\xff" + `"}`,
		`{"v":2}`, `{}`, `null`, `[`, `"str"`, `{"v":1e0}`, `{"v":1,"ts":1.5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			return
		}
		// What decodes must survive an Encode/Decode round trip unchanged.
		again, err := Decode(Encode(nil, &e))
		if err != nil || again != e {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, e)
		}
	})
}

func FuzzEncode(f *testing.F) {
	for _, s := range []string{"hi", "\x00\x1f\"\\", "\xff\xfe", "\u2028<&>", "é😀", "\xed\xa0\x80"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, text, nick string) {
		e := Envelope{V: 1, ID: "g.1", GW: "g", Kind: KindSay, Room: "r", Nick: nick, Text: text, To: nick, TS: 7}
		if got, want := Encode(nil, &e), stdEncode(t, &e); !bytes.Equal(got, want) {
			t.Fatalf("Encode =\n %q\nencoding/json =\n %q", got, want)
		}
	})
}

var benchEnvelope = Envelope{
	V: 1, ID: "0123456789abcdef.123456", GW: "0123456789abcdef", Kind: KindSay, Room: "lobby",
	Nick: "alice", Text: "hello everyone, this is a fairly ordinary chat line", TS: 1700000000000000000,
}

func BenchmarkEncode(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	for b.Loop() {
		buf = Encode(buf[:0], &benchEnvelope)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecode(b *testing.B) {
	data := Encode(nil, &benchEnvelope)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}
