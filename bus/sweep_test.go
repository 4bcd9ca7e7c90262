package bus

import (
	"context"
	"fmt"
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
		if err := c.Enter(ctx, "lobby", nick); err != nil {
			t.Fatal(err)
		}
		if err := c.Leave(ctx, "lobby", nick); err != nil {
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
