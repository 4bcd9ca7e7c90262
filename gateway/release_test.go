package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// The release decision: never while the activity count moves; after a
// quiet spell that follows activity and heap growth, once, and once more if
// the spell lasts three times as long; not again until there was activity
// and growth anew.
func TestReleaseDecision(t *testing.T) {
	r := &releaser{after: 10 * time.Second, growth: 100, base: 1000}
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	// Busy: the activity count moves at every tick, for a long time, with
	// the heap well past the growth.
	for i := range 60 {
		if r.tick(at(i), uint64(i+1), 5000) {
			t.Fatalf("released at second %d while busy", i)
		}
	}
	// Quiet from second 59 on: not before the quiet period has passed.
	for s := 60; s < 69; s++ {
		if r.tick(at(s), 60, 5000) {
			t.Fatalf("released %d s into the quiet spell, want 10 s", s-59)
		}
	}
	if !r.tick(at(69), 60, 5000) {
		t.Fatal("no release after 10 s of quiet following a burst")
	}
	r.released(5000, 1500)
	if r.releases.Load() != 1 || r.returned.Load() != 3500 {
		t.Fatalf("releases %d, returned %d; want 1, 3500", r.releases.Load(), r.returned.Load())
	}
	// Still quiet: the follow-up at three times the quiet period, then
	// nothing more.
	for s := 70; s < 89; s++ {
		if r.tick(at(s), 60, 5000) {
			t.Fatalf("follow-up release %d s into the quiet spell, want 30 s", s-59)
		}
	}
	if !r.tick(at(89), 60, 5000) {
		t.Fatal("no follow-up release 30 s into the quiet spell")
	}
	r.released(1600, 1500)
	for s := 90; s < 200; s++ {
		if r.tick(at(s), 60, 5000) {
			t.Fatalf("released again at second %d with nothing happening", s)
		}
	}
	// Activity, but the heap did not grow by the growth: no release.
	r.tick(at(200), 61, 1550)
	for s := 201; s < 300; s++ {
		if r.tick(at(s), 61, 1550) {
			t.Fatalf("released at second %d with the heap 50 bytes over the last release", s)
		}
	}
	// It grows: the quiet spell that goes on releases.
	if !r.tick(at(300), 61, 1600) {
		t.Fatal("no release once the heap grew by the growth after activity")
	}
}

// A gateway returns memory once after a burst of handshakes goes quiet,
// and not while a client keeps talking.
func TestReleaseAfterBurst(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ReleaseAfter = time.Second
	cfg.ReleaseGrowth = 1
	cfg.Rate, cfg.Burst = 1e6, 1e6 // no pacing: the talker never pauses
	srv, err := New(cfg, newChatBus())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(t.Context())

	dial := func(nick string) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		name := make([]byte, 4)
		if _, err := io.ReadFull(r, name); err != nil || string(name) != "NAME" {
			t.Fatalf("want NAME, got %q %v", name, err)
		}
		io.WriteString(c, nick+"\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("%s waiting for its join: %v", nick, err)
			}
			if strings.TrimSpace(line) == nick+" joined!" {
				return c, r
			}
		}
	}
	releases := func() uint64 { return srv.Stats().MemoryReleases }

	// The burst, then quiet: a release, and its follow-up.
	var talker net.Conn
	var heard *bufio.Reader
	for i := range 20 {
		talker, heard = dial(fmt.Sprintf("user%d", i))
	}
	testkit.CheckFor(t, 20*time.Second, func() error {
		if n := releases(); n != 2 {
			return fmt.Errorf("%d releases after the burst went quiet, want 2", n)
		}
		return nil
	})
	if srv.Stats().MemoryReturned == 0 {
		t.Error("the release returned nothing")
	}

	// Busy: a client talks without a pause for three quiet periods, each
	// line waited for. Activity keeps the releaser waiting, whatever the
	// heap does.
	before := releases()
	end := time.Now().Add(3 * cfg.ReleaseAfter)
	for i := 0; time.Now().Before(end); i++ {
		io.WriteString(talker, fmt.Sprintf("line %d\n", i))
		want := fmt.Sprintf("user19: line %d", i)
		for {
			line, err := heard.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.TrimSpace(line) == want {
				break
			}
		}
		if n := releases(); n != before {
			t.Fatalf("released while a client talked (%d releases, %d before)", n, before)
		}
	}
}
