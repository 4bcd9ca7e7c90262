package jsonstr

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestAppend(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"hi", `"hi"`},
		{`say "hi" \o/`, `"say \"hi\" \\o/"`},
		{"<script>&</script>", `"<script>&</script>"`},
		{"a\nb\rc\td\x00e\x1bf\x7f", `"a\nb\rc\td\u0000e\u001bf` + "\x7f" + `"`},
		{"a\bb\fc", `"a\bb\fc"`},
		{"héllo ✓ 😀", `"héllo ✓ 😀"`},
		{"a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"caf\xe9!", `"caf\ufffd!"`},
		{"\xff\xfe", `"\ufffd\ufffd"`},
	} {
		if got := string(Append(nil, tc.in)); got != tc.want {
			t.Errorf("Append(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestAppendNoAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	s := "chloé: \"ça\" marche\n\xff 😀"
	if a := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], s) }); a != 0 {
		t.Errorf("Append allocates %v times, want 0", a)
	}
}

// FuzzAppend checks Append against encoding/json with HTML escaping off, on
// valid and invalid UTF-8: the same bytes, valid JSON and UTF-8 that decode
// to the input with each invalid byte replaced by U+FFFD.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", "\"\\", "\x00\x1f\x7f", "\b\f\n\r\t", "\u2028<&>", "\xff\xfe", "é\xc3", "\xed\xa0\x80", "😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Append([]byte("x"), s)[1:] // appends, keeping what dst holds
		var std bytes.Buffer
		enc := json.NewEncoder(&std)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if want := bytes.TrimSuffix(std.Bytes(), []byte("\n")); !bytes.Equal(out, want) {
			t.Fatalf("Append(%q) = %s, encoding/json writes %s", s, out, want)
		}
		var got string
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("Append(%q) = %s: not JSON: %v", s, out, err)
		}
		var want strings.Builder
		for _, r := range s { // range yields U+FFFD for each invalid byte
			want.WriteRune(r)
		}
		if got != want.String() {
			t.Fatalf("Append(%q) decodes to %q, want %q", s, got, want.String())
		}
		if !utf8.Valid(out) {
			t.Fatalf("Append(%q) = %q: invalid UTF-8", s, out)
		}
	})
}
