//go:build reliability

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/chatd/chatd/internal/testkit"
)

// Abuse: a real chatd process is attacked on both transports while an
// honest pair keeps chatting. Each test checks that the process stays up,
// its memory and descriptors stay bounded and come back, the honest pair
// gets every line, and the abusers get what the protocol promises.

// relAbuseServer starts chatd for abuse tests: short handshake and write
// timeouts so that abusers are cut quickly, limits high enough for a burst
// from one address.
func relAbuseServer(t *testing.T, args ...string) *relServer {
	t.Helper()
	base := []string{"--handshake-timeout", "3s", "--write-timeout", "3s",
		"--max-conns", "15000", "--max-conns-per-ip", "15000"}
	return relStart(t, append(base, args...)...)
}

// relOutcome counts what happened to a set of abusive connections.
type relOutcome struct {
	mu    sync.Mutex
	ok    int
	kinds map[string]int
}

func (o *relOutcome) add(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		o.ok++
		return
	}
	if o.kinds == nil {
		o.kinds = map[string]int{}
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	o.kinds[msg]++
}

func (o *relOutcome) failed() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, v := range o.kinds {
		n += v
	}
	return n
}

func (o *relOutcome) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprintf("ok=%d failed=%v", o.ok, o.kinds)
}

// TestReliabilityAbuseBurst opens a burst of connections at once on each
// transport (10,000 at full scale), has one in ten join with a nickname,
// holds them all, then drops them all at once. Every attempt must get the
// handshake, the server must keep serving the honest pair, and its
// goroutines and descriptors must come back to where they were.
func TestReliabilityAbuseBurst(t *testing.T) {
	n := relScale(1000, 10000)
	if limit := relMaxFiles() - 500; n > limit {
		t.Logf("open-file limit %d: a burst of %d, not %d", relMaxFiles(), limit, n)
		n = limit
	}
	srv := relAbuseServer(t, "--handshake-timeout", "120s")
	honest := relStartHonest(t, srv, "burst", 250*time.Millisecond)
	base := srv.mustSample()
	t.Logf("baseline: %v", base)

	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			before := srv.mustSample()
			sp := srv.startSampler(500 * time.Millisecond)
			release := make(chan struct{})
			var held sync.WaitGroup
			var out relOutcome
			start := time.Now()
			for i := range n {
				held.Add(1)
				go func() {
					var closeFn func()
					err := relBurstOne(srv, tr, i, &closeFn)
					out.add(err)
					held.Done()
					<-release
					if closeFn != nil {
						closeFn()
					}
				}()
			}
			held.Wait()
			connected := time.Since(start)
			// Those that joined are counted once their join is done.
			var mid relSample
			checkFor(t, 60*time.Second, func() error {
				if mid = srv.mustSample(); mid.clients < 2+n/10 {
					return fmt.Errorf("%d clients joined", mid.clients)
				}
				return nil
			})
			close(release)
			settled := srv.relSettle(before, 2, 50, 60*time.Second)
			samples := sp.finish()
			peak := relPeak(append(samples, mid))
			srv.alive()
			relFigure(t, "abuse/burst/"+tr, "attempts", n, "handshaken", out.ok, "failed", out.failed(),
				"all_in", connected.Round(time.Millisecond), "clients_held", mid.clients,
				"rss_before", mib(before.rssKB), "rss_peak", mib(peak.rssKB), "rss_after", mib(settled.rssKB),
				"fds_before", before.fds, "fds_peak", peak.fds, "fds_after", settled.fds,
				"goroutines_before", before.goroutines, "goroutines_peak", peak.goroutines, "goroutines_after", settled.goroutines,
				"per_conn_KiB", (peak.rssKB-before.rssKB)/int64(n))
			if out.failed() > 0 {
				t.Errorf("%d of %d attempts failed: %v", out.failed(), n, &out)
			}
			// Bounded: a generous cost per connection over the baseline.
			if limit := before.rssKB + int64(n)*200 + 200<<10; peak.rssKB > limit {
				t.Errorf("peak RSS %s over the bound %s", mib(peak.rssKB), mib(limit))
			}
		})
	}
	honest.finish("abuse/burst")
	srv.alive()
}

// relBurstOne makes connection i of a burst: it waits for the handshake
// (NAME, or the WebSocket upgrade) and, for one in ten, joins. closeFn is
// set to drop the connection.
func relBurstOne(srv *relServer, tr string, i int, closeFn *func()) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nick := fmt.Sprintf("burst%s%d", tr, i)
	if tr == "tcp" {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", srv.chat)
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		*closeFn = func() { c.Close() }
		c.SetDeadline(time.Now().Add(90 * time.Second))
		r := bufio.NewReader(c)
		buf := make([]byte, 4)
		if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "NAME" {
			return fmt.Errorf("want NAME, got %q: %v", buf, err)
		}
		if i%10 != 0 {
			return nil
		}
		if _, err := io.WriteString(c, nick+"\n"); err != nil {
			return fmt.Errorf("nick: %w", err)
		}
		l, err := r.ReadString('\n')
		if err != nil || l != "Connected to server!\n" {
			return fmt.Errorf("want Connected, got %q: %v", l, err)
		}
		return nil
	}
	c, _, err := websocket.Dial(ctx, srv.wsURL(), nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	*closeFn = func() { c.CloseNow() }
	if i%10 != 0 {
		return nil
	}
	hello, _ := json.Marshal(map[string]any{"type": "hello", "v": 1, "nick": nick})
	if err := c.Write(ctx, websocket.MessageText, hello); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	_, data, err := c.Read(ctx)
	if err != nil || !strings.Contains(string(data), `"welcome"`) {
		return fmt.Errorf("want welcome, got %.80q: %v", data, err)
	}
	// Keep reading, as a browser would, so its queue does not fill.
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	return nil
}

// TestReliabilityAbuseHalfOpen leaves connections half-open: some never
// send a nickname (cut by the handshake deadline), others join and then
// stop reading with a tiny receive buffer while talkers fill the room (cut
// as slow consumers or by the write deadline). None of them may hold the
// server up: all are gone within bounded time and the honest pair is
// served throughout.
func TestReliabilityAbuseHalfOpen(t *testing.T) {
	n := relScale(100, 1000)
	srv := relAbuseServer(t, "--max-pending", "65536", "--rate", "50", "--burst", "50")
	honest := relStartHonest(t, srv, "halfopen", 250*time.Millisecond)
	before := srv.mustSample()
	sp := srv.startSampler(500 * time.Millisecond)

	var wg sync.WaitGroup
	var pre relOutcome
	preDone := make([]time.Duration, 0, 2*n)
	var mu sync.Mutex
	start := time.Now()
	// Half-open before the handshake: connect and say nothing.
	for i := range 2 * n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := relSilent(srv, i%2 == 0)
			pre.add(err)
			mu.Lock()
			preDone = append(preDone, time.Since(start))
			mu.Unlock()
		}()
	}
	// Half-open after the handshake: join, then never read again.
	var stuckConns []func()
	for i := range n {
		nick := fmt.Sprintf("stuck%d", i)
		if i%2 == 0 {
			c := dial(t, srv.chat)
			c.Conn.(*net.TCPConn).SetReadBuffer(4096)
			c.ExpectName()
			c.Send(nick + "\n")
			c.Expect("Connected to server!")
			stuckConns = append(stuckConns, func() { c.Conn.Close() })
		} else {
			c := relWSSmallBuffer(t, srv, nick)
			stuckConns = append(stuckConns, func() { c.c.CloseNow() })
		}
	}
	// Talkers fill the room until every stuck client is cut.
	stopTalk := make(chan struct{})
	var talkWG sync.WaitGroup
	for i := range 4 {
		c := join(t, srv.chat, fmt.Sprintf("talker%d", i))
		talkWG.Add(2)
		go func() { defer talkWG.Done(); io.Copy(io.Discard, c.R) }()
		go func() {
			defer talkWG.Done()
			line := strings.Repeat("t", 3000) + "\n"
			tick := time.NewTicker(25 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stopTalk:
					c.Conn.Close()
					return
				case <-tick.C:
				}
				c.Conn.SetWriteDeadline(time.Now().Add(waitFor))
				if _, err := io.WriteString(c.Conn, line); err != nil {
					return
				}
			}
		}()
	}
	cut0 := srv.closedCount("slow_consumer") + srv.closedCount("write_error")
	stuckStart := time.Now()
	checkFor(t, 90*time.Second, func() error {
		srv.alive()
		cut := srv.closedCount("slow_consumer") + srv.closedCount("write_error") - cut0
		if cut < n {
			return fmt.Errorf("%d of %d stuck clients cut", cut, n)
		}
		return nil
	})
	stuckCut := time.Since(stuckStart)
	close(stopTalk)
	talkWG.Wait()
	wg.Wait()
	for _, f := range stuckConns {
		f()
	}
	settled := srv.relSettle(before, 2, 50, 60*time.Second)
	peak := relPeak(sp.finish())
	var last time.Duration
	for _, d := range preDone {
		last = max(last, d)
	}
	relFigure(t, "abuse/halfopen", "silent", 2*n, "silent_cut", pre.ok, "silent_last_cut", last.Round(100*time.Millisecond),
		"stuck", n, "stuck_all_cut_after", stuckCut.Round(100*time.Millisecond),
		"slow_consumer", srv.closedCount("slow_consumer"), "write_error", srv.closedCount("write_error"),
		"rss_before", mib(before.rssKB), "rss_peak", mib(peak.rssKB), "rss_after", mib(settled.rssKB),
		"fds_before", before.fds, "fds_peak", peak.fds, "fds_after", settled.fds,
		"goroutines_before", before.goroutines, "goroutines_peak", peak.goroutines, "goroutines_after", settled.goroutines)
	if pre.failed() > 0 {
		t.Errorf("silent connections: %v", &pre)
	}
	if last > 3*time.Second+5*time.Second+5*time.Second {
		t.Errorf("the last silent connection was cut after %v", last)
	}
	honest.finish("abuse/halfopen")
	srv.alive()
}

// relSilent connects (TCP, or WebSocket upgraded with no hello) and says
// nothing; it returns nil once the server has closed the connection with a
// timeout message.
func relSilent(srv *relServer, tcp bool) error {
	if tcp {
		c, err := net.DialTimeout("tcp", srv.chat, 30*time.Second)
		if err != nil {
			return fmt.Errorf("dial: %w", err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			return fmt.Errorf("read: %w", err)
		}
		if !strings.HasPrefix(string(b), "NAME") || !strings.Contains(string(b), "no nickname received in time") {
			return fmt.Errorf("got %q", b)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, srv.wsURL(), nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.CloseNow()
	var got []string
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusPolicyViolation && strings.Contains(strings.Join(got, ""), `"timeout"`) {
				return nil
			}
			return fmt.Errorf("got %q: %w", got, err)
		}
		got = append(got, string(data))
	}
}

// TestReliabilityAbuseSlowloris dribbles a nickname one byte at a time, a
// little faster than the line pause, on TCP; on the web listener it
// dribbles HTTP headers, and a WebSocket frame after the upgrade. Every
// dribbler must be cut by the handshake deadline (the web listener's header
// deadline for headers), however long it keeps dribbling.
func TestReliabilityAbuseSlowloris(t *testing.T) {
	n := relScale(60, 600)
	srv := relAbuseServer(t)
	honest := relStartHonest(t, srv, "slowloris", 250*time.Millisecond)
	before := srv.mustSample()
	sp := srv.startSampler(500 * time.Millisecond)

	kinds := []string{"tcp-nick", "http-headers", "ws-frame"}
	outs := map[string]*relOutcome{}
	lasts := map[string]*atomic.Int64{}
	for _, k := range kinds {
		outs[k], lasts[k] = &relOutcome{}, &atomic.Int64{}
	}
	var wg sync.WaitGroup
	for i := range n {
		k := kinds[i%len(kinds)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, err := relDribble(srv, k)
			outs[k].add(err)
			for {
				old := lasts[k].Load()
				if int64(took) <= old || lasts[k].CompareAndSwap(old, int64(took)) {
					break
				}
			}
		}()
	}
	wg.Wait()
	settled := srv.relSettle(before, 2, 50, 60*time.Second)
	peak := relPeak(sp.finish())
	for _, k := range kinds {
		relFigure(t, "abuse/slowloris/"+k, "dribblers", n/len(kinds), "cut", outs[k].ok,
			"longest", time.Duration(lasts[k].Load()).Round(100*time.Millisecond))
		if outs[k].failed() > 0 {
			t.Errorf("%s: %v", k, outs[k])
		}
	}
	relFigure(t, "abuse/slowloris", "rss_before", mib(before.rssKB), "rss_peak", mib(peak.rssKB), "rss_after", mib(settled.rssKB),
		"fds_before", before.fds, "fds_peak", peak.fds, "fds_after", settled.fds,
		"goroutines_before", before.goroutines, "goroutines_peak", peak.goroutines, "goroutines_after", settled.goroutines)
	honest.finish("abuse/slowloris")
	srv.alive()
}

// relDribble sends one byte every 40ms until the server closes the
// connection; it fails if that takes longer than the deadline that should
// apply (3s handshake, 5s headers) and a generous slack.
func relDribble(srv *relServer, kind string) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", srv.chat, 30*time.Second)
	if kind != "tcp-nick" {
		c, err = net.DialTimeout("tcp", srv.http, 30*time.Second)
	}
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	limit := 3 * time.Second
	var drip []byte
	switch kind {
	case "tcp-nick":
		// Never a valid nickname, however the pauses cut it.
		drip = []byte(strings.Repeat("slow loris ", 400))
	case "http-headers":
		limit = 5 * time.Second
		drip = []byte("GET /ws HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Slow: 1\r\n", 400))
	case "ws-frame":
		key := make([]byte, 16)
		rand.Read(key)
		req := "GET /ws HTTP/1.1\r\nHost: " + srv.http + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key) + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			return 0, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			return 0, fmt.Errorf("upgrade: %v %v", resp, err)
		}
		// A masked text frame announcing 4000 bytes, sent a byte at a time.
		hdr := []byte{0x81, 0x80 | 126, 0, 0, 1, 2, 3, 4}
		binary.BigEndian.PutUint16(hdr[2:], 4000)
		drip = append(hdr, []byte(strings.Repeat("y", 4000))...)
	}
	// Read whatever the server says, so its writes never block.
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c)
		close(closed)
	}()
	start := time.Now()
	for i := 0; ; i++ {
		select {
		case <-closed:
			return time.Since(start), nil
		case <-time.After(40 * time.Millisecond):
		}
		if took := time.Since(start); took > limit+7*time.Second {
			return took, fmt.Errorf("still open after %v", took.Round(time.Millisecond))
		}
		c.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(drip[i%len(drip) : i%len(drip)+1]); err != nil {
			// The server closed; the reader sees it too.
			<-closed
			return time.Since(start), nil
		}
	}
}

// TestReliabilityAbuseFlood has many clients on both transports send as
// fast as they can at once. Each is paced, then disconnected once it has
// been paced for --flood-timeout, and the honest pair must keep getting
// every line.
func TestReliabilityAbuseFlood(t *testing.T) {
	n, waves := relScale(60, 500), relScale(5, 20)
	srv := relAbuseServer(t, "--flood-timeout", "2s")
	honest := relStartHonest(t, srv, "flood", 250*time.Millisecond)
	before := srv.mustSample()
	sp := srv.startSampler(500 * time.Millisecond)
	flood0 := srv.closedCount("flood")

	var out relOutcome
	var lines atomic.Int64
	start := time.Now()
	for w := range waves {
		relFloodWave(t, srv, w, n, &out, &lines)
		srv.alive()
	}
	took := time.Since(start)
	checkFor(t, 30*time.Second, func() error {
		if got := srv.closedCount("flood") - flood0; got < n*waves {
			return fmt.Errorf("%d of %d flooders closed for flood", got, n*waves)
		}
		return nil
	})
	settled := srv.relSettle(before, 2, 50, 60*time.Second)
	peak := relPeak(sp.finish())
	relFigure(t, "abuse/flood", "flooders", n*waves, "waves", waves, "lines_sent", lines.Load(), "all_cut_after", took.Round(100*time.Millisecond),
		"closed_flood", srv.closedCount("flood")-flood0,
		"rss_before", mib(before.rssKB), "rss_peak", mib(peak.rssKB), "rss_after", mib(settled.rssKB),
		"fds_before", before.fds, "fds_peak", peak.fds, "fds_after", settled.fds,
		"goroutines_before", before.goroutines, "goroutines_peak", peak.goroutines, "goroutines_after", settled.goroutines)
	if out.failed() > 0 {
		t.Errorf("flooders: %v", &out)
	}
	honest.finish("abuse/flood")
	srv.alive()
}

// relFloodWave joins n flooders, half on each transport, and has them all
// send as fast as they can until the server disconnects them.
func relFloodWave(t *testing.T, srv *relServer, w, n int, out *relOutcome, lines *atomic.Int64) {
	var tcps []*client
	var wss []*wsClient
	for i := range n {
		if i%2 == 0 {
			tcps = append(tcps, join(t, srv.chat, fmt.Sprintf("flooder%dx%d", w, i)))
		} else {
			wss = append(wss, wsJoinURL(t, srv.wsURL(), fmt.Sprintf("flooder%dx%d", w, i)))
		}
	}
	var wg sync.WaitGroup
	start := time.Now()
	for _, c := range tcps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			go io.Copy(io.Discard, c.R)
			batch := strings.Repeat("flood flood flood flood\n", 100)
			for {
				c.Conn.SetWriteDeadline(time.Now().Add(waitFor))
				if _, err := io.WriteString(c.Conn, batch); err != nil {
					break // disconnected
				}
				lines.Add(100)
				if time.Since(start) > 60*time.Second {
					out.add(errors.New("never disconnected"))
					return
				}
			}
			out.add(nil)
		}()
	}
	for _, c := range wss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			go func() {
				for {
					if _, _, err := c.c.Read(context.Background()); err != nil {
						return
					}
				}
			}()
			msg := []byte(`{"type":"line","text":"flood flood flood flood"}`)
			for {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				err := c.c.Write(ctx, websocket.MessageText, msg)
				cancel()
				if err != nil {
					break
				}
				lines.Add(1)
				if time.Since(start) > 60*time.Second {
					out.add(errors.New("never disconnected"))
					return
				}
			}
			out.add(nil)
		}()
	}
	wg.Wait()
}

// relBadInputs are lines with terminal escapes, control characters and
// invalid UTF-8; each carries a marker the witnesses look for.
var relBadInputs = []string{
	"mark \x1b[2J\x1b[Hclear screen",
	"mark \x1b]0;pwned\x07title",
	"mark \x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\",
	"mark ding\x07\x07\x07",
	"mark evil\b\b\b\bgood",
	"mark I agree\rI refuse",
	"mark \xff\xfe\xc3\x28 bad utf8 \xed\xa0\x80",
	"mark \xc2\x9b31m C1 CSI \u202e reversed",
	"mark nul\x00byte and del\x7f",
}

// TestReliabilityAbuseInput sends, from many clients of both transports at
// once, oversize lines (TCP lines far over --max-line, WebSocket messages
// over the read limit and just under it), escape sequences, control
// characters, invalid UTF-8 and binary messages. Witnesses on both
// transports check that every line reaching them is clean text; the
// server stays up and the honest pair is served.
func TestReliabilityAbuseInput(t *testing.T) {
	rounds, per := relScale(10, 20), relScale(20, 100)
	srv := relAbuseServer(t)
	honest := relStartHonest(t, srv, "input", 250*time.Millisecond)
	before := srv.mustSample()
	sp := srv.startSampler(500 * time.Millisecond)

	wTCP := join(t, srv.chat, "witness-tcp")
	wWS := wsJoinURL(t, srv.wsURL(), "witness-ws")
	var marks [2]atomic.Int64 // lines from abusers seen by each witness
	var bad sync.Map          // problems the witnesses saw
	var wwg sync.WaitGroup
	wTCP.Conn.SetReadDeadline(time.Time{})
	wwg.Add(2)
	go func() {
		defer wwg.Done()
		for {
			s, err := wTCP.R.ReadString('\n')
			if err != nil {
				return
			}
			s = strings.TrimSuffix(s, "\n")
			if p := relDirty(s); p != "" {
				bad.Store("tcp: "+p+": "+fmt.Sprintf("%q", s), true)
			}
			if _, text, ok := strings.Cut(s, ": "); ok && strings.HasPrefix(text, "mark ") {
				marks[0].Add(1)
			}
		}
	}()
	go func() {
		defer wwg.Done()
		for {
			m, err := wWS.next()
			if err != nil {
				return
			}
			for _, f := range []string{m.Text, m.Nick, m.Room} {
				if p := relDirty(f); p != "" {
					bad.Store("ws: "+p+": "+fmt.Sprintf("%q", f), true)
				}
			}
			if m.Type == "event" && strings.HasPrefix(m.Text, "mark ") {
				marks[1].Add(1)
			}
		}
	}()

	var out relOutcome
	var sentMarks atomic.Int64
	start := time.Now()
	for r := range rounds {
		var wg sync.WaitGroup
		for i := range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nick := fmt.Sprintf("in%dx%d", r, i)
				var err error
				if i%2 == 0 {
					err = relBadTCP(srv, nick, i, &sentMarks)
				} else {
					err = relBadWS(srv, nick, i, &sentMarks)
				}
				out.add(err)
			}()
		}
		wg.Wait()
		srv.alive()
	}
	took := time.Since(start)
	// Everything the abusers' lines became has reached the witnesses.
	checkFor(t, 30*time.Second, func() error {
		if a, b, want := marks[0].Load(), marks[1].Load(), sentMarks.Load(); a < want || b < want {
			return fmt.Errorf("witnesses saw %d and %d of %d lines", a, b, want)
		}
		return nil
	})
	wTCP.Conn.Close()
	wWS.c.CloseNow()
	wwg.Wait()
	settled := srv.relSettle(before, 2, 50, 60*time.Second)
	peak := relPeak(sp.finish())
	nbad := 0
	bad.Range(func(k, _ any) bool {
		if nbad++; nbad <= 10 {
			t.Errorf("a witness got %v", k)
		}
		return true
	})
	relFigure(t, "abuse/input", "clients", rounds*per, "took", took.Round(100*time.Millisecond),
		"marked_lines", sentMarks.Load(), "seen_tcp", marks[0].Load(), "seen_ws", marks[1].Load(), "dirty", nbad,
		"protocol_error", srv.closedCount("protocol_error"),
		"rss_before", mib(before.rssKB), "rss_peak", mib(peak.rssKB), "rss_after", mib(settled.rssKB),
		"fds_before", before.fds, "fds_peak", peak.fds, "fds_after", settled.fds,
		"goroutines_before", before.goroutines, "goroutines_peak", peak.goroutines, "goroutines_after", settled.goroutines)
	if out.failed() > 0 {
		t.Errorf("abusers: %v", &out)
	}
	honest.finish("abuse/input")
	srv.alive()
}

// relDirty says what is wrong with text a client received, or "".
func relDirty(s string) string {
	if !utf8.ValidString(s) {
		return "invalid UTF-8"
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r <= 0x9f || r == '\u202e' {
			return fmt.Sprintf("holds %U", r)
		}
	}
	return ""
}

// relBadTCP joins over TCP and sends a 64 KiB line with no end, a 1 MiB
// line, then the bad inputs; it checks the too-long errors come back and
// its own lines come back clean.
func relBadTCP(srv *relServer, nick string, i int, marks *atomic.Int64) error {
	c, err := net.DialTimeout("tcp", srv.chat, 30*time.Second)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	if _, err := io.WriteString(c, nick+"\n"); err != nil {
		return err
	}
	if err := relReadUntil(r, "Connected to server!"); err != nil {
		return err
	}
	big := strings.Repeat("A", relScale(64<<10, 1<<20)) + "\n"
	if _, err := io.WriteString(c, big); err != nil {
		return fmt.Errorf("oversize: %w", err)
	}
	if err := relReadUntilPrefix(r, "ERROR line too long"); err != nil {
		return err
	}
	k := relBadInputs[i%len(relBadInputs)]
	if _, err := io.WriteString(c, k+"\n"+relBadInputs[(i+1)%len(relBadInputs)]+"\n"); err != nil {
		return err
	}
	marks.Add(2)
	if err := relReadUntilPrefix(r, nick+": mark "); err != nil {
		return err
	}
	_, err = io.WriteString(c, "/quit\n")
	return err
}

// relReadUntil reads lines until one holds want (the first line after the
// handshake follows NAME on the same line).
func relReadUntil(r *bufio.Reader, want string) error {
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("waiting for %q: %w", want, err)
		}
		if strings.Contains(s, want) {
			return nil
		}
	}
}

func relReadUntilPrefix(r *bufio.Reader, prefix string) error {
	var seen []string
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("waiting for %q after %q: %w", prefix, seen, err)
		}
		if strings.HasPrefix(s, prefix) {
			return nil
		}
		if len(seen) < 5 {
			seen = append(seen, s)
		}
	}
}

// relBadWS joins over WebSocket and sends a binary message, a text message
// of invalid UTF-8, a line over --max-line that fits the read limit, the
// bad inputs as lines, and (one client in three) a message over the read
// limit, which must close it with 1009.
func relBadWS(srv *relServer, nick string, i int, marks *atomic.Int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, srv.wsURL(), nil)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	write := func(typ websocket.MessageType, b []byte) error { return c.Write(ctx, typ, b) }
	line := func(text string) []byte {
		b, _ := json.Marshal(map[string]string{"type": "line", "text": text})
		return b
	}
	if err := write(websocket.MessageText, []byte(`{"type":"hello","v":1,"nick":"`+nick+`"}`)); err != nil {
		return err
	}
	want := func(what string, match func(string) bool) error {
		var seen []string
		for {
			_, data, err := c.Read(ctx)
			if err != nil {
				return fmt.Errorf("waiting for %s after %.200q: %w", what, seen, err)
			}
			if match(string(data)) {
				return nil
			}
			if len(seen) < 5 {
				seen = append(seen, string(data))
			}
		}
	}
	if err := want("welcome", func(s string) bool { return strings.Contains(s, `"welcome"`) }); err != nil {
		return err
	}
	if err := write(websocket.MessageBinary, []byte{0, 1, 2, 0xff, 0x1b, '[', '2', 'J'}); err != nil {
		return err
	}
	if err := write(websocket.MessageText, []byte("{\"type\":\"line\",\"text\":\"\xff\xfe\x1b[2J\"}\xff")); err != nil {
		return err
	}
	if err := write(websocket.MessageText, line(strings.Repeat("é", 2100))); err != nil {
		return err
	}
	if err := want("too_long", func(s string) bool { return strings.Contains(s, `"too_long"`) }); err != nil {
		return err
	}
	k := relBadInputs[i%len(relBadInputs)]
	if err := write(websocket.MessageText, line(k)); err != nil {
		return err
	}
	// A text message whose JSON carries raw invalid UTF-8 in the text.
	raw := []byte(`{"type":"line","text":"mark raw ` + "\xff\xc3\x28" + `\u001b]0;x\u0007 \ud800"}`)
	if err := write(websocket.MessageText, raw); err != nil {
		return err
	}
	marks.Add(2)
	if err := want("own line", func(s string) bool {
		return strings.Contains(s, `"nick":"`+nick+`"`) && strings.Contains(s, `"text":"mark raw`)
	}); err != nil {
		return err
	}
	if i%3 != 1 {
		return c.Close(websocket.StatusNormalClosure, "")
	}
	// Over the read limit: closed with 1009, message too big.
	huge := line(strings.Repeat("H", relScale(64<<10, 4<<20)))
	if err := write(websocket.MessageText, huge); err != nil {
		// The server may close before the whole message is written.
		if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
			return nil
		}
	}
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if websocket.CloseStatus(err) == websocket.StatusMessageTooBig {
				return nil
			}
			return fmt.Errorf("after an oversize message: %w", err)
		}
	}
}

// relWSSmallBuffer joins over WebSocket on a connection with a 4 KiB
// receive buffer, for a client that will stop reading.
func relWSSmallBuffer(t testing.TB, srv *relServer, nick string) *wsClient {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	c := wsDialOpts(t, srv.wsURL(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	c.nick = nick
	c.send(map[string]any{"type": "hello", "v": 1, "nick": nick})
	c.expectType("welcome")
	return c
}

// relVanishIP is the loopback address vanishing clients dial from; packets
// to and from it are dropped to make them vanish without FIN or RST.
const relVanishIP = "127.0.0.66"

// relDropVanished drops, with iptables, every packet between relVanishIP and
// the chat and web ports of srv, until the test ends. It skips the test
// where that is not possible (not root, no iptables).
func relDropVanished(t *testing.T, srv *relServer) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("dropping packets needs root (iptables)")
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("dropping packets needs iptables")
	}
	var rules [][]string
	for _, addr := range []string{srv.chat, srv.http} {
		_, port, _ := net.SplitHostPort(addr)
		rules = append(rules,
			[]string{"INPUT", "-s", relVanishIP, "-d", "127.0.0.1", "-p", "tcp", "--dport", port, "-j", "DROP"},
			[]string{"INPUT", "-s", "127.0.0.1", "-d", relVanishIP, "-p", "tcp", "--sport", port, "-j", "DROP"})
	}
	for _, r := range rules {
		if out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
			t.Skipf("iptables: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if out, err := exec.Command("iptables", append([]string{"-D"}, r...)...).CombinedOutput(); err != nil {
				t.Errorf("iptables -D %v: %v: %s", r, err, out)
			}
		})
	}
}

// TestReliabilityAbuseVanished has clients of both transports vanish
// without a FIN or RST, as a peer whose host died or whose network went
// away: from then on every packet to and from them is dropped. Half sit in
// a quiet room (only keep-alive probes can find them gone), half in the
// honest pair's room, where lines keep being sent to them and stay
// unacknowledged. The server must reap them all in about twice
// --keepalive, whichever room they are in.
func TestReliabilityAbuseVanished(t *testing.T) {
	n := relScale(20, 200)
	const keepalive = 2 * time.Second
	srv := relAbuseServer(t, "--keepalive", keepalive.String())
	honest := relStartHonest(t, srv, "vanished", 250*time.Millisecond)
	local := &net.TCPAddr{IP: net.ParseIP(relVanishIP)}
	for i := range n {
		nick := fmt.Sprintf("vanish%d", i)
		quiet := i%4 < 2
		if i%2 == 0 {
			d := net.Dialer{LocalAddr: local, Timeout: waitFor}
			conn, err := d.Dial("tcp", srv.chat)
			if err != nil {
				t.Fatal(err)
			}
			c := testkit.NewClient(t, conn)
			c.Nick = nick
			c.ExpectName()
			c.Send(nick + "\n")
			c.Expect(nick + " joined!")
			if quiet {
				c.Send("/join vanish\n")
				c.Expect(nick + " joined!")
			}
			continue
		}
		tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: local}).DialContext}
		c := wsDialOpts(t, srv.wsURL(), &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
		c.nick = nick
		c.send(map[string]any{"type": "hello", "v": 1, "nick": nick})
		c.expectEvent("join", nick, "")
		if quiet {
			c.line("/join vanish")
			c.expect("join vanish", func(m wsMsg) bool { return m.Type == "event" && m.Kind == "join" && m.Room == "vanish" })
		}
	}
	checkFor(t, waitFor, func() error {
		if c := srv.mustSample().clients; c != 2+n {
			return fmt.Errorf("%d clients", c)
		}
		return nil
	})
	before := srv.mustSample()
	read0, write0 := srv.closedCount("read_error"), srv.closedCount("write_error")
	relDropVanished(t, srv)
	start := time.Now()
	// Before TCP_USER_TIMEOUT was set, those with lines in flight stayed
	// for the kernel's retransmission limit, some fifteen minutes.
	checkFor(t, 15*keepalive, func() error {
		srv.alive()
		if c := srv.mustSample().clients; c != 2 {
			return fmt.Errorf("%d vanished clients of %d still connected after %v", c-2, n, time.Since(start).Round(time.Second))
		}
		return nil
	})
	took := time.Since(start)
	relFigure(t, "abuse/vanished", "clients", n, "keepalive", keepalive, "all_reaped_after", took.Round(100*time.Millisecond),
		"read_error", srv.closedCount("read_error")-read0, "write_error", srv.closedCount("write_error")-write0,
		"fds_before", before.fds, "goroutines_before", before.goroutines)
	honest.finish("abuse/vanished")
	srv.alive()
}
