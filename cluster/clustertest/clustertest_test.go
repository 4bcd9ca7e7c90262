package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestStart(t *testing.T) {
	s := Start(t, Options{})
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("AccountInfo: %v", err)
	}
}

func TestStartCluster(t *testing.T) {
	start := time.Now()
	servers := StartCluster(t, 3)
	t.Logf("3 servers ready in %s", time.Since(start).Round(time.Millisecond))

	// An R3 stream created through the last server, used through the first.
	nc, err := nats.Connect(servers[2].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "H", Subjects: []string{"h.>"}, Replicas: 3})
	if err != nil {
		t.Fatalf("CreateStream R3: %v", err)
	}
	if info := st.CachedInfo(); info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream cluster = %+v, want 2 replicas", info.Cluster)
	}

	nc0, err := nats.Connect(servers[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc0.Close()
	js0, err := jetstream.New(nc0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js0.Publish(ctx, "h.x", []byte("hi")); err != nil {
		t.Fatalf("publish via another server: %v", err)
	}
}
