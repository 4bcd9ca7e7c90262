package bus

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/cluster/clustertest"
)

// cutProxy forwards TCP connections to a NATS server until cut, which
// closes every connection it carries: the gateway behind it loses its link
// and reconnects (through the proxy again) while the others chat on.
type cutProxy struct {
	refuse atomic.Bool // close connections as they come
	ln     net.Listener
	mu     sync.Mutex
	conns  []net.Conn
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if p.refuse.Load() {
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// seqs returns the numbers of the "n" lines of nick among evs, in order.
func seqs(evs []event, nick string) []int {
	var out []int
	for _, e := range evs {
		if e.kind == KindSay && e.nick == nick {
			n, _ := strconv.Atoi(e.text)
			out = append(out, n)
		}
	}
	return out
}

// checkExactlyOnce reports what of 1..n is missing, doubled or out of
// order in got.
func checkExactlyOnce(got []int, n int) error {
	var problems []string
	seen := map[int]int{}
	prev := 0
	for _, v := range got {
		seen[v]++
		if seen[v] == 2 {
			problems = append(problems, fmt.Sprintf("%d twice", v))
		}
		if v < prev {
			problems = append(problems, fmt.Sprintf("%d after %d", v, prev))
		}
		prev = max(prev, v)
	}
	var lost []string
	for i := 1; i <= n; i++ {
		if seen[i] == 0 {
			lost = append(lost, strconv.Itoa(i))
		}
	}
	if len(lost) > 0 {
		problems = append(problems, fmt.Sprintf("%d lost: %s", len(lost), strings.Join(lost, " ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// gapChat has alice (on a direct link) say 1..n+1 in lobby while the link of
// a subscribed gateway (through a proxy) is cut at line 60; it returns what
// that gateway delivered once line n+1 is there.
func gapChat(t *testing.T, n int, mod func(*Config)) []event {
	s := clustertest.Start(t, clustertest.Options{})
	proxy := startCutProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	var downs, ups sync.WaitGroup
	downs.Add(1)
	ups.Add(1)
	var once1, once2 sync.Once
	g := mustConnect(t, s, func(cfg *Config) {
		cfg.Servers = []string{proxy.url()}
		cfg.InProcess = nil
		cfg.OnDisconnect = func() { once1.Do(downs.Done) }
		cfg.OnReconnect = func() { once2.Do(ups.Done) }
		if mod != nil {
			mod(cfg)
		}
	})
	sender := mustConnect(t, s, mod)
	var r, own recorder
	unsub, err := g.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	// The sender's member is in the room too: its lines come back to it.
	unsub2, err := sender.Subscribe("lobby", own.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub2()

	const cutAt = 60
	for i := 1; i <= n; i++ {
		if i == cutAt {
			proxy.cut()
			downs.Wait()
		}
		if err := sender.Publish("lobby", KindSay, "alice", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // a steady chat, not a wait for anything
	}
	ups.Wait()
	if err := sender.Publish("lobby", KindSay, "alice", strconv.Itoa(n+1)); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 15*time.Second, func() error {
		got := seqs(r.get(), "alice")
		if len(got) == 0 || got[len(got)-1] != n+1 {
			return fmt.Errorf("last line not there yet (%d lines)", len(got))
		}
		return nil
	})
	return r.get()
}

// A gateway whose link to NATS drops (its broker died, the network blipped)
// misses, on core NATS, what the others say until it has reconnected. When
// the link is back it fills the gap from the room's stream: it ends with
// every line exactly once and in order, the missed ones before newer ones.
func TestGapFillAfterReconnect(t *testing.T) {
	const n = 300
	evs := gapChat(t, n, nil)
	if err := checkExactlyOnce(seqs(evs, "alice"), n+1); err != nil {
		t.Error(err)
	}
	for _, e := range evs {
		if e.kind == KindMissed {
			t.Errorf("told of missed lines the stream still holds: %+v", e)
		}
	}
}

// A gateway that is gone cannot give its own lines; when the room's
// retention window no longer holds the whole gap either, what it holds is
// delivered, in order and once, and the gateway is told once that lines
// were missed.
func TestGapFillBeyondRetention(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	proxy := startCutProxy(t, strings.TrimPrefix(s.ClientURL(), "nats://"))
	ups := make(chan struct{}, 1)
	mod := func(cfg *Config) { cfg.History, cfg.Retain = 10, 0 }
	g := mustConnect(t, s, func(cfg *Config) {
		mod(cfg)
		cfg.Servers = []string{proxy.url()}
		cfg.InProcess = nil
		cfg.OnReconnect = func() {
			select {
			case ups <- struct{}{}:
			default:
			}
		}
	})
	var r recorder
	unsub, err := g.Subscribe("lobby", r.deliver)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	sender := mustConnect(t, s, mod)
	say := func(c *Conn, i int) {
		if err := c.Publish("lobby", KindSay, "alice", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		say(sender, i)
	}
	r.waitN(t, 5)
	proxy.refuse.Store(true)
	proxy.cut()
	for i := 6; i <= 50; i++ {
		say(sender, i)
	}
	if err := sender.Close(); err != nil { // its own lines go with it
		t.Fatal(err)
	}
	proxy.refuse.Store(false)
	<-ups
	later := mustConnect(t, s, mod)
	say(later, 51)
	checkFor(t, 15*time.Second, func() error {
		if got := seqs(r.get(), "alice"); len(got) == 0 || got[len(got)-1] != 51 {
			return fmt.Errorf("last line not there yet: %v", got)
		}
		return nil
	})
	got := seqs(r.get(), "alice")
	missed := 0
	for _, e := range r.get() {
		if e.kind == KindMissed {
			missed++
		}
	}
	if missed != 1 {
		t.Errorf("%d missed notices, want 1", missed)
	}
	if err := checkExactlyOnce(got, 0); err != nil { // no line twice, none out of order
		t.Error(err)
	}
	// 1-5 live, then what the stream still holds of 6-50 (its last 10
	// lines, 51 perhaps among them), then 51.
	ok := len(got) >= 15 && fmt.Sprint(got[:5]) == "[1 2 3 4 5]" && got[5] >= 41 && got[len(got)-1] == 51
	for i := 6; ok && i < len(got); i++ {
		ok = got[i] == got[i-1]+1
	}
	if !ok {
		t.Errorf("got %v, want 1-5 then the stream's last lines to 51", got)
	}
}

// The stream keeps no line published while it has no leader; a gateway
// whose link comes back then gets the lines from their senders.
func TestGapFillFromSenders(t *testing.T) {
	const n = 300
	evs := gapChat(t, n, func(cfg *Config) { cfg.History = 0 }) // no stream at all
	if err := checkExactlyOnce(seqs(evs, "alice"), n+1); err != nil {
		t.Error(err)
	}
	for _, e := range evs {
		if e.kind == KindMissed {
			t.Errorf("told of missed lines the sender still holds: %+v", e)
		}
	}
}

// History replays the last n lines of a room however many the stream
// keeps for gap-fill and resume, and whatever other rooms wrote between.
func TestHistoryWithRetention(t *testing.T) {
	s := clustertest.Start(t, clustertest.Options{})
	c := mustConnect(t, s, func(cfg *Config) { cfg.History, cfg.Retain = 5, 1000 })
	for i := 1; i <= 300; i++ {
		if err := c.Publish("lobby", KindSay, "alice", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // another room, busier
			for j := 0; j < 20; j++ {
				if err := c.Publish("dev", KindSay, "bob", "x"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	want := "[296 297 298 299 300]"
	checkFor(t, 5*time.Second, func() error {
		if got := fmt.Sprint(seqs(history(t, c, "lobby", 5), "alice")); got != want {
			return fmt.Errorf("History(lobby, 5) = %s, want %s", got, want)
		}
		return nil
	})
	if got := len(history(t, c, "lobby", 250)); got != 250 {
		t.Errorf("History(lobby, 250): %d lines", got)
	}
}
