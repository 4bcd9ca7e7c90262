package bus

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/nats-io/nats.go/jetstream"
)

// Released nicknames and left rooms leave no delete marker behind once
// swept, so the buckets do not grow with every distinct nickname ever used;
// a nickname claimed again after its release keeps its new record.
func TestSweepMarkers(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	c := mustConnect(t, s, nil)
	ctx := context.Background()
	for i := range 20 {
		nick := fmt.Sprintf("guest%d", i)
		if ok, err := c.ClaimNick(ctx, nick); !ok || err != nil {
			t.Fatalf("claim %s: %v %v", nick, ok, err)
		}
		if err := c.Join(ctx, "lobby", nick); err != nil {
			t.Fatal(err)
		}
		if err := c.Part(ctx, "lobby", nick, ""); err != nil {
			t.Fatal(err)
		}
		if err := c.ReleaseNick(ctx, nick); err != nil {
			t.Fatal(err)
		}
	}
	// guest0 comes back: its claim is newer than its marker.
	if ok, err := c.ClaimNick(ctx, "guest0"); !ok || err != nil {
		t.Fatalf("claim guest0 again: %v %v", ok, err)
	}
	msgs := func(kv jetstream.KeyValue) uint64 {
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Values()
	}
	if n := msgs(c.nicks); n != 20 {
		t.Fatalf("chat_nicks holds %d records before the sweep, want 20 (19 markers and a claim)", n)
	}
	// Markers younger than the age are kept.
	if n, err := c.sweepMarkers(ctx, c.nicks, time.Hour); n != 0 || err != nil {
		t.Fatalf("sweep of young markers: %d, %v", n, err)
	}
	for _, kv := range []jetstream.KeyValue{c.nicks, c.presence} {
		if _, err := c.sweepMarkers(ctx, kv, 0); err != nil {
			t.Fatal(err)
		}
	}
	if n := msgs(c.nicks); n != 1 {
		t.Errorf("chat_nicks holds %d records after the sweep, want 1 (guest0's claim)", n)
	}
	if n := msgs(c.presence); n != 0 {
		t.Errorf("chat_presence holds %d records after the sweep, want 0", n)
	}
	// guest0 is still held; guest1 is free to claim.
	d := mustConnect(t, s, nil)
	if ok, err := d.ClaimNick(ctx, "guest0"); ok || err != nil {
		t.Errorf("another gateway claimed guest0 after the sweep: %v %v", ok, err)
	}
	if ok, err := d.ClaimNick(ctx, "guest1"); !ok || err != nil {
		t.Errorf("claim guest1 after the sweep: %v %v", ok, err)
	}
}

// Nothing removed comes back after a crash. The store is copied as a
// kill -9 leaves it (every write made, no state saved at shutdown), after
// the sweep, and a server started on the copy rebuilds it from its
// blocks: users who left, nicknames released and records overwritten stay
// gone. (With the history limit of 1 and plain deletes, every user who had
// left was back.)
func TestNothingComesBackAfterCrash(t *testing.T) {
	dir := t.TempDir()
	s := clustertest.Start(t, clustertest.Options{StoreDir: dir})
	c := mustConnect(t, s, nil)
	other := mustConnect(t, s, nil)
	ctx := context.Background()
	for i := range 5 {
		nick := fmt.Sprintf("gone%d", i)
		if ok, err := c.ClaimNick(ctx, nick); !ok || err != nil {
			t.Fatalf("claim %s: %v %v", nick, ok, err)
		}
		if err := c.Join(ctx, "lobby", nick); err != nil {
			t.Fatal(err)
		}
		// Another gateway's entry replaced by this one's (a user back
		// here): a record overwritten, then deleted.
		if i == 0 {
			if err := other.Join(ctx, "lobby", nick); err != nil {
				t.Fatal(err)
			}
			if err := c.Join(ctx, "lobby", nick); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Part(ctx, "lobby", nick, ""); err != nil {
			t.Fatal(err)
		}
		if err := c.ReleaseNick(ctx, nick); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := c.ClaimNick(ctx, "stay"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := c.Join(ctx, "lobby", "stay"); err != nil {
		t.Fatal(err)
	}
	for _, kv := range []jetstream.KeyValue{c.nicks, c.presence} {
		if _, err := c.sweepMarkers(ctx, kv, 0); err != nil {
			t.Fatal(err)
		}
	}
	snap := t.TempDir()
	copyStore(t, dir, snap)

	s2 := clustertest.Start(t, clustertest.Options{StoreDir: snap})
	c2 := mustConnect(t, s2, nil)
	for _, kv := range []jetstream.KeyValue{c2.nicks, c2.presence} {
		kl, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range kl.Keys() {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := []string{"stay"}
		if kv.Bucket() == PresenceBucket {
			want = []string{"lobby.stay"}
		}
		if !slices.Equal(keys, want) {
			t.Errorf("%s after the crash: %v, want %v", kv.Bucket(), keys, want)
		}
	}
}

// copyStore copies a running server's store folder as a kill -9 would leave
// it, once its files have stopped changing (the store writes its blocks
// from a buffer, a moment after each write).
func copyStore(t *testing.T, from, to string) {
	t.Helper()
	sizes := func() string {
		var b strings.Builder
		filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					fmt.Fprintf(&b, "%s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
				}
			}
			return nil
		})
		return b.String()
	}
	last := ""
	checkFor(t, 10*time.Second, func() error {
		now := sizes()
		if now != last {
			last = now
			return errors.New("store still being written")
		}
		return nil
	})
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}
