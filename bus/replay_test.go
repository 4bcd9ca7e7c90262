package bus

import (
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"
)

// merge gives each line once, by time, and each sender's lines in counter
// order even when its clock stepped back.
func TestMerge(t *testing.T) {
	e := func(gw string, n int, ts int64) Envelope {
		return Envelope{ID: gw + "." + strconv.Itoa(n), GW: gw, TS: ts}
	}
	got := merge([]Envelope{
		e("a", 2, 50), e("b", 1, 20), e("a", 1, 60), // a's clock stepped back
		e("b", 2, 40), e("b", 1, 20), e("a", 3, 70),
	})
	var ids []string
	for _, g := range got {
		ids = append(ids, g.ID)
	}
	if want := []string{"b.1", "b.2", "a.1", "a.2", "a.3"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("merge = %v, want %v", ids, want)
	}
}

// A ring answers with the lines after a counter, or since a time for an
// asker that has none of its lines, and says when some are no longer kept.
func TestRings(t *testing.T) {
	var rs rings
	now := time.Now().UnixNano()
	for i := 1; i <= ringLines+10; i++ {
		rs.add("lobby", uint64(i), now+int64(i), []byte(strconv.Itoa(i)))
	}
	out, gone := rs.after("lobby", ringLines+5, true, 0)
	if fmt.Sprint(len(out), gone) != "5 false" || string(out[0]) != strconv.Itoa(ringLines+6) {
		t.Errorf("after a recent counter: %d lines, gone %v", len(out), gone)
	}
	if out, gone = rs.after("lobby", 3, true, 0); len(out) != ringLines || !gone {
		t.Errorf("after an evicted counter: %d lines, gone %v; want %d, true", len(out), gone, ringLines)
	}
	if out, _ = rs.after("lobby", 0, false, now+int64(ringLines+9)); len(out) != 2 {
		t.Errorf("since a time: %d lines, want 2", len(out))
	}
	if out, gone = rs.after("dev", 0, true, 0); out != nil || gone {
		t.Errorf("another room: %d lines, gone %v", len(out), gone)
	}
}
