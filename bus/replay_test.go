package bus

import (
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
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
	out, gone, _ := rs.after("lobby", ringLines+5, true, 0, now)
	if fmt.Sprint(len(out), gone) != "5 false" || string(out[0]) != strconv.Itoa(ringLines+6) {
		t.Errorf("after a recent counter: %d lines, gone %v", len(out), gone)
	}
	if out, gone, _ = rs.after("lobby", 3, true, 0, now); len(out) != ringLines || !gone {
		t.Errorf("after an evicted counter: %d lines, gone %v; want %d, true", len(out), gone, ringLines)
	}
	if out, _, _ = rs.after("lobby", 0, false, now+int64(ringLines+9), now); len(out) != 2 {
		t.Errorf("since a time: %d lines, want 2", len(out))
	}
	if out, gone, _ = rs.after("dev", 0, true, 0, now); out != nil || gone {
		t.Errorf("another room: %d lines, gone %v", len(out), gone)
	}
}

// A ring keeps each line once, in counter order, and says when the last
// line published to a room has not come back yet.
func TestRingsBehind(t *testing.T) {
	var rs rings
	now := time.Now().UnixNano()
	rs.published("lobby", 1, now)
	if _, _, behind := rs.after("lobby", 0, true, 0, now); !behind {
		t.Error("line 1 published, none back: not behind")
	}
	rs.add("lobby", 1, now, []byte("1"))
	rs.published("lobby", 3, now)
	rs.add("lobby", 3, now, []byte("3"))
	rs.add("lobby", 2, now, []byte("2")) // read back by a gap-fill, late
	rs.add("lobby", 3, now, []byte("3")) // came back twice
	out, _, behind := rs.after("lobby", 0, true, 0, now)
	if got := fmt.Sprintf("%q %v", out, behind); got != `["1" "2" "3"] false` {
		t.Errorf("got %s", got)
	}
}

// A line published into a link that was dying may not come back while
// later ones do, over the new link; the server may still have it (the
// stream stored it), so until it comes back (a fill reads it back) or its
// publish failed, every reply for its room says it may be incomplete.
func TestRingsBehindHole(t *testing.T) {
	var rs rings
	now := time.Now().UnixNano()
	rs.published("lobby", 1, now)
	rs.add("lobby", 1, now, []byte("1"))
	rs.published("lobby", 2, now) // into the dying link
	rs.published("lobby", 3, now) // over the new one
	rs.add("lobby", 3, now, []byte("3"))
	if out, _, behind := rs.after("lobby", 0, true, 0, now); !behind {
		t.Errorf("line 2 not back, lines %q: not behind", out)
	}
	rs.add("lobby", 2, now, []byte("2")) // read back from the stream by a fill
	if out, _, behind := rs.after("lobby", 0, true, 0, now); behind || len(out) != 3 {
		t.Errorf("every line back: %q, behind %v", out, behind)
	}
	rs.published("lobby", 4, now)
	rs.unpublished("lobby", 4) // the publish failed: it never left
	if _, _, behind := rs.after("lobby", 0, true, 0, now); behind {
		t.Error("a failed publish left the room behind")
	}
	rs.published("lobby", 6, now+1) // after the request came: reaches the asker live
	if _, _, behind := rs.after("lobby", 0, true, 0, now); behind {
		t.Error("a line published after the request made the reply partial")
	}
	old := now - int64(ringAge) - 1
	rs.published("dev", 5, old) // never came back, long ago
	if _, _, behind := rs.after("dev", 0, true, 0, now); behind {
		t.Error("a line out for longer than ringAge still makes replies partial")
	}
}

// A gateway that is filling its own gap (its live lines held) still
// answers for the lines of its own that came back to it: another gateway
// filling at the same time must get them from it.
func TestReplayWhileFilling(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, nil)
	b := mustConnect(t, s, nil)
	var ra recorder
	unsub, err := a.Subscribe("lobby", ra.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	a.linkDown() // as if its link had dropped: live lines are held
	for i := range 3 {
		if err := a.Publish("lobby", KindSay, "amy", fmt.Sprint("held ", i)); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, func() error {
		lines, answered, _ := b.askSenders("lobby", time.Now().Add(-time.Minute), map[string]uint64{})
		if !answered[a.ID()] || len(lines) != 3 {
			return fmt.Errorf("a answered %v with %d lines, want 3", answered[a.ID()], len(lines))
		}
		return nil
	})
}
