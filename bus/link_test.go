package bus

import (
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
	"github.com/nats-io/nats.go"
)

// A link that goes silent with no reset reaching the gateway (a frozen
// broker, a cut network) is noticed within the lease: OnDisconnect runs,
// so the gateway's clients are told and their lines refused.
func TestSilentLink(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var frozen atomic.Bool
	// A proxy that, once frozen, holds every byte: the sockets stay open
	// and nothing more arrives.
	pipe := func(dst, src net.Conn) {
		defer dst.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			for frozen.Load() {
				time.Sleep(10 * time.Millisecond)
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", strings.TrimPrefix(s.ClientURL(), "nats://"))
			if err != nil {
				c.Close()
				continue
			}
			go pipe(up, c)
			go pipe(c, up)
		}
	}()
	const lease = 2 * time.Second
	down := make(chan struct{}, 1)
	mustConnect(t, s, func(cfg *Config) {
		cfg.Servers = []string{"nats://" + ln.Addr().String()}
		cfg.Lease = lease
		cfg.OnDisconnect = func() {
			select {
			case down <- struct{}{}:
			default:
			}
		}
	})
	frozen.Store(true)
	defer frozen.Store(false)
	start := time.Now()
	select {
	case <-down:
		t.Logf("silent link noticed after %v", time.Since(start).Round(time.Millisecond))
	case <-time.After(3 * lease):
		t.Fatalf("silent link not noticed within %v", 3*lease)
	}
}

// A NATS server that was frozen can forward, when it wakes, what a gateway
// published on a connection it has since given up: those events arrive
// after later ones from the same gateway, and are dropped, so a sender's
// lines never arrive out of order (nor twice).
func TestLateEventDropped(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	c := mustConnect(t, s, nil)
	var r recorder
	unsub, err := c.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subject, _ := EventSubject("lobby", KindSay)
	for _, n := range []string{"1", "3", "2", "3", "4"} {
		e := Envelope{V: Version, ID: "0123456789abcdef." + n, GW: "0123456789abcdef", Kind: KindSay, Room: "lobby", Nick: "x", Text: n, TS: time.Now().UnixNano()}
		if err := nc.Publish(subject, Encode(nil, &e)); err != nil {
			t.Fatal(err)
		}
	}
	// Another gateway's counter is its own.
	e := Envelope{V: Version, ID: "fedcba9876543210.1", GW: "fedcba9876543210", Kind: KindSay, Room: "lobby", Nick: "y", Text: "1", TS: time.Now().UnixNano()}
	if err := nc.Publish(subject, Encode(nil, &e)); err != nil {
		t.Fatal(err)
	}
	r.waitN(t, 4)
	nc.Flush()
	if err := c.Publish("lobby", KindSay, "marker", "end"); err != nil {
		t.Fatal(err)
	}
	evs := r.waitN(t, 5)
	want := []string{"say:x:1", "say:x:3", "say:x:4", "say:y:1", "say:marker:end"}
	if got := texts(evs); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
