//go:build reliability

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestReliabilitySoak runs chatd under churn and steady chat for a while
// (75 seconds; 10 minutes at full scale): steady chatters on both
// transports send numbered lines, churners connect, chat, hop rooms and
// leave every way there is (quit, close, reset) over and over. Every steady
// chatter must get every other's lines once and in order; once the churn
// stops, goroutines, descriptors and clients must come back to where they
// were before it, and memory must not keep growing during it.
func TestReliabilitySoak(t *testing.T) {
	dur := relScale(75*time.Second, 10*time.Minute)
	every := relScale(2*time.Second, 5*time.Second)
	nSteady, nChurn := relScale(6, 10), relScale(12, 40)
	// Every client comes from 127.0.0.1: the per-address limit (100)
	// would count the churners' sessions still being torn down on a busy
	// machine, and refuse a few of them.
	srv := relStart(t, "--handshake-timeout", "10s", "--max-conns-per-ip", "1000")

	steady := make([]*relSteady, nSteady)
	for i := range steady {
		steady[i] = relJoinSteady(t, srv, fmt.Sprintf("steady%d", i), i%2 == 1)
	}
	for _, s := range steady {
		s.start()
	}
	// The baseline: the steady chatters, no churn.
	time.Sleep(2 * time.Second)
	base := srv.mustSample()
	t.Logf("baseline: %v", base)
	sp := srv.startSampler(every)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var st relChurnStats
	start := time.Now()
	for g := range nChurn {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for it := 0; ; it++ {
				select {
				case <-stop:
					return
				default:
				}
				relChurnOnce(srv, fmt.Sprintf("churn%dx%d", g, it), g%2 == 0, rng, &st)
				time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
			}
		}()
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait()
	churned := time.Since(start)
	for _, s := range steady {
		s.stopSending()
	}
	for _, s := range steady {
		s.waitAll(t, steady)
	}
	settled := srv.relSettle(base, nSteady, 20, 60*time.Second)
	samples := sp.finish()
	srv.alive()

	// Memory: the peak of the last third of the churn against the peak of
	// the first third (after warming up), with generous room.
	var first, last []relSample
	for _, r := range samples {
		switch {
		case r.at < churned/3:
			first = append(first, r)
		case r.at > 2*churned/3 && r.at <= churned:
			last = append(last, r)
		}
	}
	p1, p3, peak := relPeak(first), relPeak(last), relPeak(samples)
	if limit := p1.rssKB*3/2 + 16<<10; p3.rssKB > limit {
		t.Errorf("RSS kept growing: peak %s in the first third, %s in the last (bound %s)", mib(p1.rssKB), mib(p3.rssKB), mib(limit))
	}
	if relFull() || testing.Verbose() {
		for _, r := range samples {
			t.Logf("sample: %v", r)
		}
	}
	st.mu.Lock()
	joins := slices.Clone(st.joinTimes)
	fails := st.fails
	st.mu.Unlock()
	slices.Sort(joins)
	pct := func(p float64) time.Duration {
		if len(joins) == 0 {
			return 0
		}
		return joins[min(len(joins)-1, int(p*float64(len(joins))))].Round(100 * time.Microsecond)
	}
	var lines, want int
	var lat []time.Duration
	for _, s := range steady {
		lines += s.received()
		want += s.sentCount() * nSteady
		lat = append(lat, s.latencies()...)
	}
	slices.Sort(lat)
	lp := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(100 * time.Microsecond)
	}
	relFigure(t, "soak", "duration", churned.Round(time.Second), "steady", nSteady, "churners", nChurn,
		"sessions", st.sessions.Load(), "churn_lines", st.lines.Load(), "churn_failures", len(fails),
		"join_p50", pct(0.5), "join_p99", pct(0.99), "join_max", pct(1))
	relFigure(t, "soak/steady", "lines", lines, "lost", want-lines, "p50", lp(0.5), "p99", lp(0.99), "max", lp(1))
	relFigure(t, "soak/resources", "rss_base", mib(base.rssKB), "rss_first_third_peak", mib(p1.rssKB),
		"rss_last_third_peak", mib(p3.rssKB), "rss_peak", mib(peak.rssKB), "rss_after", mib(settled.rssKB),
		"heap_first_third_peak", mib(p1.heapKB), "heap_last_third_peak", mib(p3.heapKB), "heap_after", mib(settled.heapKB),
		"fds_base", base.fds, "fds_peak", peak.fds, "fds_after", settled.fds,
		"goroutines_base", base.goroutines, "goroutines_peak", peak.goroutines, "goroutines_after", settled.goroutines,
		"threads_peak", peak.threads, "samples", len(samples))
	for i, f := range fails {
		if i == 10 {
			break
		}
		t.Errorf("churn: %s", f)
	}
	for _, s := range steady {
		s.close()
	}
}

// relChurnStats counts what the churners did.
type relChurnStats struct {
	sessions  atomic.Int64
	lines     atomic.Int64
	mu        sync.Mutex
	joinTimes []time.Duration
	fails     []string
}

func (st *relChurnStats) fail(format string, args ...any) {
	st.mu.Lock()
	st.fails = append(st.fails, fmt.Sprintf(format, args...))
	st.mu.Unlock()
}

// relChurnOnce is one short session: join, chat, maybe hop rooms and ask
// who is there, then leave one of the ways a client can.
func relChurnOnce(srv *relServer, nick string, tcp bool, rng *rand.Rand, st *relChurnStats) {
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	lines := []string{"hello from " + nick}
	if rng.IntN(3) == 0 {
		lines = append(lines, fmt.Sprintf("/join room%d", rng.IntN(5)), "/who", "in another room")
	}
	if rng.IntN(4) == 0 {
		lines = append(lines, "/msg steady0 psst")
	}
	how := rng.IntN(3) // 0 quit, 1 close, 2 reset (TCP) or no close frame (WS)
	if tcp {
		c, err := net.DialTimeout("tcp", srv.chat, 30*time.Second)
		if err != nil {
			st.fail("%s: dial: %v", nick, err)
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		if _, err := io.WriteString(c, nick+"\n"); err != nil {
			st.fail("%s: %v", nick, err)
			return
		}
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 4096)
		for !bytes.Contains(buf, []byte(nick+" joined!\n")) {
			n, err := c.Read(tmp)
			if err != nil {
				st.fail("%s: waiting to join: %v after %q", nick, err, buf)
				return
			}
			buf = append(buf, tmp[:n]...)
		}
		st.mu.Lock()
		st.joinTimes = append(st.joinTimes, time.Since(start))
		st.mu.Unlock()
		st.sessions.Add(1)
		go io.Copy(io.Discard, c)
		if _, err := io.WriteString(c, strings.Join(lines, "\n")+"\n"); err != nil {
			st.fail("%s: %v", nick, err)
			return
		}
		st.lines.Add(int64(len(lines)))
		switch how {
		case 0:
			io.WriteString(c, "/quit churn\n")
			time.Sleep(50 * time.Millisecond)
		case 2:
			c.(*net.TCPConn).SetLinger(0)
		}
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	c, _, err := websocket.Dial(ctx, srv.wsURL(), nil)
	if err != nil {
		st.fail("%s: dial: %v", nick, err)
		return
	}
	defer c.CloseNow()
	hello, _ := json.Marshal(map[string]any{"type": "hello", "v": 1, "nick": nick})
	if err := c.Write(ctx, websocket.MessageText, hello); err != nil {
		st.fail("%s: %v", nick, err)
		return
	}
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			st.fail("%s: waiting to join: %v", nick, err)
			return
		}
		if bytes.Contains(data, []byte(`"kind":"join"`)) && bytes.Contains(data, []byte(`"nick":"`+nick+`"`)) {
			break
		}
		if bytes.Contains(data, []byte(`"type":"error"`)) {
			st.fail("%s: %s", nick, data)
			return
		}
	}
	st.mu.Lock()
	st.joinTimes = append(st.joinTimes, time.Since(start))
	st.mu.Unlock()
	st.sessions.Add(1)
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	for _, l := range lines {
		b, _ := json.Marshal(map[string]string{"type": "line", "text": l})
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			st.fail("%s: %v", nick, err)
			return
		}
	}
	st.lines.Add(int64(len(lines)))
	switch how {
	case 0:
		b, _ := json.Marshal(map[string]string{"type": "line", "text": "/quit"})
		c.Write(ctx, websocket.MessageText, b)
		time.Sleep(50 * time.Millisecond)
	case 1:
		c.Close(websocket.StatusNormalClosure, "")
	}
}

// relSteady is a chatter that sends a numbered line every half second and
// checks it gets every other steady chatter's lines once, in order.
type relSteady struct {
	nick  string
	tcp   *client
	ws    *wsClient
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	sent  int
	next  map[string]int // sender → next seq expected
	errs  []string
	lat   []time.Duration
	ended error
}

func relJoinSteady(t testing.TB, srv *relServer, nick string, ws bool) *relSteady {
	s := &relSteady{nick: nick, stop: make(chan struct{}), next: map[string]int{}}
	if ws {
		s.ws = wsJoinURL(t, srv.wsURL(), nick)
	} else {
		s.tcp = join(t, srv.chat, nick)
		s.tcp.Conn.SetReadDeadline(time.Time{})
	}
	return s
}

func (s *relSteady) start() {
	s.wg.Add(2)
	go s.sendLoop()
	go s.readLoop()
}

func (s *relSteady) sendLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		line := fmt.Sprintf("steady %d %d", seq, time.Now().UnixNano())
		var err error
		if s.tcp != nil {
			s.tcp.Conn.SetWriteDeadline(time.Now().Add(waitFor))
			_, err = io.WriteString(s.tcp.Conn, line+"\n")
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			err = s.ws.c.Write(ctx, websocket.MessageText, []byte(`{"type":"line","text":"`+line+`"}`))
			cancel()
		}
		s.mu.Lock()
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("send: %v", err))
			s.mu.Unlock()
			return
		}
		s.sent = seq + 1
		s.mu.Unlock()
	}
}

func (s *relSteady) got(from, text string) {
	f := strings.Fields(text)
	if !strings.HasPrefix(from, "steady") || len(f) != 3 || f[0] != "steady" {
		return
	}
	seq, _ := strconv.Atoi(f[1])
	ns, _ := strconv.ParseInt(f[2], 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	if want := s.next[from]; seq != want {
		s.errs = append(s.errs, fmt.Sprintf("from %s got %d, want %d", from, seq, want))
	}
	s.next[from] = seq + 1
	s.lat = append(s.lat, time.Since(time.Unix(0, ns)))
}

func (s *relSteady) readLoop() {
	defer s.wg.Done()
	var err error
	if s.tcp != nil {
		for {
			var l string
			if l, err = s.tcp.R.ReadString('\n'); err != nil {
				break
			}
			if from, text, ok := strings.Cut(strings.TrimSuffix(l, "\n"), ": "); ok {
				s.got(from, text)
			}
		}
	} else {
		for {
			var data []byte
			if _, data, err = s.ws.c.Read(context.Background()); err != nil {
				break
			}
			var batch []wsMsg
			if data = bytes.TrimSpace(data); len(data) > 0 && data[0] == '[' {
				err = json.Unmarshal(data, &batch)
			} else {
				var m wsMsg
				err = json.Unmarshal(data, &m)
				batch = []wsMsg{m}
			}
			if err != nil {
				break
			}
			for _, m := range batch {
				if m.Type == "event" && m.Kind == "say" {
					s.got(m.Nick, m.Text)
				}
			}
		}
	}
	s.mu.Lock()
	s.ended = err
	s.mu.Unlock()
}

func (s *relSteady) stopSending() { close(s.stop) }

// waitAll waits until s has every line every steady chatter sent, and
// fails on any gap, duplicate or reordering it saw.
func (s *relSteady) waitAll(t testing.TB, all []*relSteady) {
	t.Helper()
	checkFor(t, 60*time.Second, func() error {
		sent := map[string]int{}
		for _, o := range all {
			sent[o.nick] = o.sentCount()
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.errs) > 0 || s.ended != nil {
			return nil
		}
		for _, o := range all {
			if sent := sent[o.nick]; s.next[o.nick] < sent {
				return fmt.Errorf("%s has %d of %d lines from %s", s.nick, s.next[o.nick], sent, o.nick)
			}
		}
		return nil
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended != nil {
		t.Errorf("%s: connection ended: %v", s.nick, s.ended)
	}
	for i, e := range s.errs {
		if i == 10 {
			break
		}
		t.Errorf("%s: %s", s.nick, e)
	}
}

func (s *relSteady) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, v := range s.next {
		n += v
	}
	return n
}

func (s *relSteady) sentCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

func (s *relSteady) latencies() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lat)
}

func (s *relSteady) close() {
	if s.tcp != nil {
		s.tcp.Conn.Close()
	} else {
		s.ws.c.CloseNow()
	}
	s.wg.Wait()
}
