package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClaimNickConcurrent claims the same nicknames from three gateways at
// once, many claims of each in flight together (their writes pipelined on
// each gateway's connection): every nickname has exactly one holder, the
// others are refused without an error, and the record names the holder.
// Released, the nicknames are claimed again the same way, over the
// markers the releases left.
func TestClaimNickConcurrent(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	// A claim that loses reads the record and the holder's lease: several
	// round trips, which a loaded machine (and -race) makes slow.
	slow := func(cfg *Config) { cfg.RequestTimeout = 10 * time.Second }
	gws := []*Conn{mustConnect(t, s, slow), mustConnect(t, s, slow), mustConnect(t, s, slow)}
	const nicks, perGateway = 20, 4
	ctx := context.Background()

	round := func(r int) map[string]*Conn {
		t.Helper()
		var (
			mu      sync.Mutex
			winners = make(map[string][]*Conn)
			wg      sync.WaitGroup
		)
		for n := range nicks {
			for _, c := range gws {
				for k := range perGateway {
					// Spelled differently each time: one nickname, case-insensitively.
					nick := fmt.Sprintf("user%d", n)
					if k%2 == 1 {
						nick = strings.ToUpper(nick)
					}
					wg.Go(func() {
						ok, err := c.ClaimNick(ctx, nick)
						if err != nil {
							t.Errorf("round %d: ClaimNick(%s) on %s: %v", r, nick, c.id, err)
							return
						}
						if ok {
							mu.Lock()
							winners[strings.ToLower(nick)] = append(winners[strings.ToLower(nick)], c)
							mu.Unlock()
						}
					})
				}
			}
		}
		wg.Wait()
		held := make(map[string]*Conn)
		for n := range nicks {
			nick := fmt.Sprintf("user%d", n)
			w := winners[nick]
			if len(w) != 1 {
				t.Fatalf("round %d: %s claimed %d times, want exactly once", r, nick, len(w))
			}
			key, _ := NickKey(nick)
			e, err := w[0].kvGet(ctx, w[0].nicks, key)
			if err != nil {
				t.Fatalf("round %d: read %s: %v", r, nick, err)
			}
			owner, valid := w[0].m.readRecord(w[0].nicks, e)
			if !valid || owner.GW != w[0].id {
				t.Fatalf("round %d: %s's record names %q, want the holder %q", r, nick, owner.GW, w[0].id)
			}
			held[nick] = w[0]
		}
		return held
	}

	held := round(1)
	for nick, c := range held {
		if err := c.ReleaseNick(ctx, nick); err != nil {
			t.Fatalf("ReleaseNick(%s): %v", nick, err)
		}
	}
	round(2)
}

// TestKVWriteConflicts checks the errors of pipelined writes: a create of
// a key that has a value, and an update or a delete at a stale revision,
// are conflicts (isConflict), as with jetstream.PublishMsg.
func TestKVWriteConflicts(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	c := mustConnect(t, s, nil)
	ctx := context.Background()
	rev, err := c.kvCreate(ctx, c.presence, "lobby.k", []byte(`x`))
	if err != nil || rev == 0 {
		t.Fatalf("kvCreate = %d, %v", rev, err)
	}
	if _, err := c.kvCreate(ctx, c.presence, "lobby.k", []byte(`y`)); !isConflict(err) {
		t.Errorf("second kvCreate err = %v, want a conflict", err)
	}
	if _, err := c.kvUpdate(ctx, c.presence, "lobby.k", []byte(`y`), rev+100); !isConflict(err) {
		t.Errorf("kvUpdate at a wrong revision err = %v, want a conflict", err)
	}
	if err := c.kvDelete(ctx, c.presence, "lobby.k", rev+100); !isConflict(err) {
		t.Errorf("kvDelete at a wrong revision err = %v, want a conflict", err)
	}
	if err := c.kvDelete(ctx, c.presence, "lobby.k", rev); err != nil {
		t.Fatalf("kvDelete = %v", err)
	}
	if _, err := c.kvGet(ctx, c.presence, "lobby.k"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("kvGet after delete err = %v, want not found", err)
	}
	// A create over the marker the delete left.
	if _, err := c.kvCreate(ctx, c.presence, "lobby.k", []byte(`z`)); err != nil {
		t.Errorf("kvCreate over a marker = %v", err)
	}
	if err := c.kvDelete(ctx, c.presence, "bad key", 1); !errors.Is(err, jetstream.ErrInvalidKey) {
		t.Errorf("kvDelete of an invalid key err = %v", err)
	}
}

func TestParsePubAck(t *testing.T) {
	for _, tc := range []struct {
		in       string
		seq      uint64
		conflict bool
		fails    bool
	}{
		{in: `{"stream":"KV_chat_nicks","seq":12}`, seq: 12},
		{in: `{"stream":"KV_chat_nicks","domain":"hub","seq":7,"duplicate":true}`, seq: 7},
		{in: `{"stream":"KV_chat_nicks", "seq": 9}`, seq: 9}, // spaced: the slow path
		{in: `{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"}}`, fails: true, conflict: true},
		{in: `{"error":{"code":503,"err_code":10077,"description":"resource limits exceeded"}}`, fails: true},
		{in: `{"stream":""}`, fails: true},
		{in: `not json`, fails: true},
	} {
		seq, err := parsePubAck([]byte(tc.in))
		if (err != nil) != tc.fails || seq != tc.seq || isConflict(err) != tc.conflict {
			t.Errorf("parsePubAck(%s) = %d, %v; want %d, failing %v, conflict %v", tc.in, seq, err, tc.seq, tc.fails, tc.conflict)
		}
	}
}
