package bus

import (
	"context"
	"slices"
	"testing"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A replica of an R3 bucket answers direct gets as soon as it is nearly
// caught up, and the third one may not have applied the last write yet
// (a broker just restarted, most of all). Claims, releases, joins and
// parts decide on what the stream leader has: a stale replica that says
// every key is missing changes nothing. Here the server's own direct-get
// responders are turned off and a stand-in for a stale replica answers
// every direct get with "not found".
func TestDecisionsReadTheLeader(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	a := mustConnect(t, s, nil)
	b := mustConnect(t, s, nil)
	ctx := context.Background()

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{NicksBucket, PresenceBucket, GatewaysBucket} {
		st, err := js.Stream(ctx, "KV_"+name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		cfg.AllowDirect = false
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	stale, err := nc.Subscribe("$JS.API.DIRECT.GET.>", func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("Status", "404")
		r.Header.Set("Description", "Message Not Found")
		m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Unsubscribe()
	nc.Flush()

	claim := func(c *Conn, nick string, want bool) {
		t.Helper()
		if got, err := c.ClaimNick(ctx, nick); err != nil || got != want {
			t.Fatalf("ClaimNick(%q) = %v, %v; want %v", nick, got, err, want)
		}
	}
	claim(a, "kim", true)
	claim(b, "kim", false)
	if err := a.ReleaseNick(ctx, "kim"); err != nil {
		t.Fatal(err)
	}
	claim(b, "kim", true)

	if err := a.Join(ctx, "lobby", "lee"); err != nil {
		t.Fatal(err)
	}
	if err := a.Part(ctx, "lobby", "lee", ""); err != nil {
		t.Fatal(err)
	}
	who, err := b.Who(ctx, "lobby")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(who, "lee") {
		t.Errorf("lee parted, but /who lists %q", who)
	}
}
