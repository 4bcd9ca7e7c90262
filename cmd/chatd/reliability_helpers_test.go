//go:build reliability

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The reliability suite runs at two scales. CHATD_RELIABILITY=full is the
// maintainer's run (make reliability): a 10,000-connection burst, a
// 10-minute soak. Anything else is the bounded form CI runs.

// relFull reports whether the suite runs at full scale.
func relFull() bool { return os.Getenv("CHATD_RELIABILITY") == "full" }

// relScale picks the CI or the full-scale value.
func relScale[T any](ci, full T) T {
	if relFull() {
		return full
	}
	return ci
}

// relFigure logs one measured figure as "figure: name key=value ...", the
// form docs/reliability.md quotes.
func relFigure(t testing.TB, name string, kv ...any) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "figure: %s", name)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, " %v=%v", kv[i], kv[i+1])
	}
	t.Log(b.String())
}

// relServer is a real chatd process with known chat, web and admin
// addresses, so its memory, descriptors and goroutines can be read.
type relServer struct {
	t      testing.TB
	cmd    *exec.Cmd
	pid    int
	exited chan error
	chat   string // host:port of the chat TCP listener
	http   string // host:port of the web listener (/ws)
	admin  string // host:port of /metrics
	logs   *relTail
}

// relTail keeps the last lines a process logged, for failure messages.
type relTail struct {
	mu    sync.Mutex
	lines []string
}

func (r *relTail) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, strings.Split(strings.TrimRight(string(p), "\n"), "\n")...)
	if len(r.lines) > 200 {
		r.lines = slices.Clone(r.lines[len(r.lines)-100:])
	}
	return len(p), nil
}

func (r *relTail) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// relStart runs the chatd binary (single node) with args on loopback
// ports, logging warnings only, until the test ends.
func relStart(t testing.TB, args ...string) *relServer {
	t.Helper()
	ports := freePorts(t, 3)
	s := &relServer{
		t:      t,
		chat:   "127.0.0.1:" + strconv.Itoa(ports[0]),
		http:   "127.0.0.1:" + strconv.Itoa(ports[1]),
		admin:  "127.0.0.1:" + strconv.Itoa(ports[2]),
		exited: make(chan error, 1),
		logs:   &relTail{},
	}
	base := []string{"--listen", s.chat, "--http", s.http, "--admin", s.admin,
		"--data", t.TempDir(), "--log-level", "warn", "--shutdown-timeout", "5s"}
	s.cmd = exec.Command(chatdBinary(t), append(base, args...)...)
	s.cmd.Stdout = io.Discard
	s.cmd.Stderr = s.logs
	s.cmd.SysProcAttr = relSysProcAttr()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = s.cmd.Process.Pid
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.exited
		if t.Failed() {
			t.Logf("chatd's last log lines:\n%s", s.logs)
		}
	})
	checkFor(t, 30*time.Second, func() error {
		if err := s.exitedErr(); err != nil {
			return err
		}
		code, _, err := get("http://" + s.admin + "/readyz")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("not ready: %d %v", code, err)
		}
		return nil
	})
	return s
}

// exitedErr is non-nil if the process has ended.
func (s *relServer) exitedErr() error {
	select {
	case err := <-s.exited:
		s.exited <- err
		return fmt.Errorf("chatd exited: %v; last logs:\n%s", err, s.logs)
	default:
		return nil
	}
}

// alive fails the test if the process has ended.
func (s *relServer) alive() {
	s.t.Helper()
	if err := s.exitedErr(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *relServer) wsURL() string { return "ws://" + s.http + "/ws" }

// relSample is one reading of a process's resources.
type relSample struct {
	at         time.Duration // since the sampler started
	rssKB      int64         // VmRSS
	hwmKB      int64         // VmHWM: peak RSS so far
	fds        int           // open descriptors
	threads    int
	goroutines int   // go_goroutines, from /metrics
	heapKB     int64 // go_memstats_heap_inuse_bytes, from /metrics
	clients    int   // chatd_clients, both transports
}

func (r relSample) String() string {
	return fmt.Sprintf("t=%s rss=%.1fMiB heap=%.1fMiB fds=%d goroutines=%d threads=%d clients=%d",
		r.at.Round(time.Second), float64(r.rssKB)/1024, float64(r.heapKB)/1024, r.fds, r.goroutines, r.threads, r.clients)
}

// sample reads the process's resources now.
func (s *relServer) sample() (relSample, error) {
	var r relSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return r, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			r.rssKB = v
		case "VmHWM:":
			r.hwmKB = v
		case "Threads:":
			r.threads = int(v)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.pid))
	if err != nil {
		return r, err
	}
	r.fds = len(fds)
	code, body, err := get("http://" + s.admin + "/metrics")
	if err != nil || code != http.StatusOK {
		return r, fmt.Errorf("metrics: %d %v", code, err)
	}
	g, _ := metric(body, "go_goroutines")
	r.goroutines = int(g)
	h, _ := metric(body, "go_memstats_heap_inuse_bytes")
	r.heapKB = int64(h) / 1024
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "chatd_clients{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			r.clients += int(v)
		}
	}
	return r, nil
}

func (s *relServer) mustSample() relSample {
	s.t.Helper()
	r, err := s.sample()
	if err != nil {
		s.t.Fatalf("sample chatd: %v (%v)", err, s.exitedErr())
	}
	return r
}

// closedCount is chatd_sessions_closed_total summed over the transports for
// reason.
func (s *relServer) closedCount(reason string) int {
	_, body, err := get("http://" + s.admin + "/metrics")
	if err != nil {
		return -1
	}
	n := 0
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "chatd_sessions_closed_total{") && strings.Contains(l, `reason="`+reason+`"`) {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += int(v)
		}
	}
	return n
}

// relSampler samples a process every interval until stopped.
type relSampler struct {
	srv     *relServer
	start   time.Time
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples []relSample
	errs    int
}

func (s *relServer) startSampler(every time.Duration) *relSampler {
	sp := &relSampler{srv: s, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sp.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			sp.take()
			select {
			case <-sp.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return sp
}

func (sp *relSampler) take() {
	r, err := sp.srv.sample()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if err != nil {
		sp.errs++
		return
	}
	r.at = time.Since(sp.start)
	sp.samples = append(sp.samples, r)
}

// finish stops sampling and returns the samples.
func (sp *relSampler) finish() []relSample {
	close(sp.stop)
	<-sp.done
	sp.take()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return slices.Clone(sp.samples)
}

// relPeak is the largest of each field over samples.
func relPeak(samples []relSample) relSample {
	var p relSample
	for _, r := range samples {
		p.rssKB = max(p.rssKB, r.rssKB)
		p.hwmKB = max(p.hwmKB, r.hwmKB)
		p.fds = max(p.fds, r.fds)
		p.threads = max(p.threads, r.threads)
		p.goroutines = max(p.goroutines, r.goroutines)
		p.heapKB = max(p.heapKB, r.heapKB)
		p.clients = max(p.clients, r.clients)
	}
	return p
}

func mib(kb int64) string { return fmt.Sprintf("%.1fMiB", float64(kb)/1024) }

// relSettle waits until the process is back near base: goroutines and
// descriptors within slack of it. It returns the settled sample.
func (s *relServer) relSettle(base relSample, want int, slack int, within time.Duration) relSample {
	s.t.Helper()
	var r relSample
	checkFor(s.t, within, func() error {
		var err error
		if r, err = s.sample(); err != nil {
			return err
		}
		if r.clients != want || r.goroutines > base.goroutines+slack || r.fds > base.fds+slack {
			return fmt.Errorf("not settled: %v; baseline %v, want %d clients", r, base, want)
		}
		return nil
	})
	return r
}

// tryJoin dials addr and answers NAME with the nickname line nick (which
// may carry an extension: "nick +resume=..."), within total. It returns
// the server's answer, and the client if that was "Connected to server!"
// (else nil, the connection closed); the caller closes the connection.
func tryJoin(t testing.TB, addr, nick string, total time.Duration) (*client, string, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, "", fmt.Errorf("dial: %w", err)
	}
	c := &client{T: t, Conn: conn, R: bufio.NewReader(conn), Nick: nick}
	conn.SetDeadline(time.Now().Add(total))
	if err := c.ReadName(); err != nil {
		conn.Close()
		return nil, "", fmt.Errorf("read: %s: %w", addr, err)
	}
	if _, err := io.WriteString(conn, nick+"\n"); err != nil {
		conn.Close()
		return nil, "", err
	}
	answer, err := c.ReadLine()
	if err != nil {
		conn.Close()
		return nil, "", fmt.Errorf("read: %s as %s: %q, %v", addr, nick, answer, err)
	}
	if answer != "Connected to server!" {
		conn.Close()
		return nil, answer, fmt.Errorf("%s as %s: %q", addr, nick, answer)
	}
	conn.SetDeadline(time.Time{})
	return c, answer, nil
}

// relHonest is an honest pair: a TCP user and a WebSocket user who keep
// chatting under the rate limit while a test abuses the server, each
// checking it gets every line of the other, once, in order. It pairs the
// test kit's line client (client) with the WebSocket client (wsClient).
type relHonest struct {
	t      testing.TB
	tcp    *client
	ws     *wsClient
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	sent   map[string]int // by sender nick
	recv   map[string]int // by receiver nick: lines of the other read
	errs   []string
	lat    []time.Duration
	last   map[string]int // by receiver: last seq read
	closed map[string]string
}

// relStartHonest joins the pair to the default room and starts it chatting
// every interval.
func relStartHonest(t testing.TB, s *relServer, tag string, every time.Duration) *relHonest {
	t.Helper()
	h := &relHonest{t: t, stop: make(chan struct{}),
		sent: map[string]int{}, recv: map[string]int{}, last: map[string]int{}, closed: map[string]string{}}
	h.tcp = join(t, s.chat, tag+"-tcp")
	h.ws = wsJoinURL(t, s.wsURL(), tag+"-ws")
	h.tcp.Expect(tag + "-ws joined!")
	h.tcp.Conn.SetReadDeadline(time.Time{})
	for _, nick := range []string{h.tcp.Nick, h.ws.nick} {
		h.last[nick] = -1
	}
	h.wg.Add(4)
	go h.sendLoop(h.tcp.Nick, every, func(line string) error {
		h.tcp.Conn.SetWriteDeadline(time.Now().Add(waitFor))
		_, err := io.WriteString(h.tcp.Conn, line+"\n")
		return err
	})
	go h.sendLoop(h.ws.nick, every, func(line string) error {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		return h.ws.c.Write(ctx, websocket.MessageText, []byte(`{"type":"line","text":"`+line+`"}`))
	})
	go h.readTCP()
	go h.readWS()
	return h
}

func (h *relHonest) sendLoop(nick string, every time.Duration, send func(string) error) {
	defer h.wg.Done()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		line := fmt.Sprintf("honest %d %d", seq, time.Now().UnixNano())
		if err := send(line); err != nil {
			h.fail("%s: send: %v", nick, err)
			return
		}
		h.mu.Lock()
		h.sent[nick] = seq + 1
		h.mu.Unlock()
	}
}

func (h *relHonest) fail(format string, args ...any) {
	h.mu.Lock()
	h.errs = append(h.errs, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

// got records one line from sender read by receiver.
func (h *relHonest) got(receiver, sender, text string) {
	f := strings.Fields(text)
	if len(f) != 3 || f[0] != "honest" {
		return
	}
	seq, _ := strconv.Atoi(f[1])
	ns, _ := strconv.ParseInt(f[2], 10, 64)
	lat := time.Since(time.Unix(0, ns))
	h.mu.Lock()
	defer h.mu.Unlock()
	if sender == receiver {
		return // its own echo
	}
	if want := h.last[receiver] + 1; seq != want {
		h.errs = append(h.errs, fmt.Sprintf("%s: got line %d of %s, want %d", receiver, seq, sender, want))
	}
	h.last[receiver] = seq
	h.recv[receiver]++
	h.lat = append(h.lat, lat)
}

func (h *relHonest) readTCP() {
	defer h.wg.Done()
	for {
		s, err := h.tcp.ReadLine()
		if err != nil {
			h.mu.Lock()
			h.closed[h.tcp.Nick] = err.Error()
			h.mu.Unlock()
			return
		}
		nick, text, ok := strings.Cut(s, ": ")
		if ok && nick == h.ws.nick {
			h.got(h.tcp.Nick, nick, text)
		}
	}
}

func (h *relHonest) readWS() {
	defer h.wg.Done()
	for {
		_, data, err := h.ws.c.Read(context.Background())
		if err != nil {
			h.mu.Lock()
			h.closed[h.ws.nick] = err.Error()
			h.mu.Unlock()
			return
		}
		// A batch is a JSON array of messages; the pair's lines are
		// recognisable without decoding every message.
		for _, part := range strings.Split(string(data), `{"type":"event"`) {
			if !strings.Contains(part, `"kind":"say"`) || !strings.Contains(part, `"nick":"`+h.tcp.Nick+`"`) {
				continue
			}
			_, text, _ := strings.Cut(part, `"text":"`)
			text, _, _ = strings.Cut(text, `"`)
			h.got(h.ws.nick, h.tcp.Nick, text)
		}
	}
}

// finish stops the pair, waits for every line sent to arrive, checks none
// was lost, doubled or reordered, and logs the latency figures as name.
func (h *relHonest) finish(name string) {
	h.t.Helper()
	// However short the abuse, the pair has chatted across it.
	checkFor(h.t, 30*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.errs) > 0 || len(h.closed) > 0 {
			return nil
		}
		if h.sent[h.tcp.Nick] < 8 || h.sent[h.ws.nick] < 8 {
			return fmt.Errorf("honest pair: only %v sent", h.sent)
		}
		return nil
	})
	close(h.stop)
	checkFor(h.t, 30*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.errs) > 0 || len(h.closed) > 0 {
			return nil // reported below
		}
		if h.recv[h.tcp.Nick] != h.sent[h.ws.nick] || h.recv[h.ws.nick] != h.sent[h.tcp.Nick] {
			return fmt.Errorf("honest pair: sent %v, received %v", h.sent, h.recv)
		}
		return nil
	})
	h.mu.Lock()
	errs, closed := slices.Clone(h.errs), h.closed
	sent, recv := h.sent[h.tcp.Nick]+h.sent[h.ws.nick], h.recv[h.tcp.Nick]+h.recv[h.ws.nick]
	lat := slices.Clone(h.lat)
	h.mu.Unlock()
	if len(closed) > 0 {
		h.t.Errorf("honest pair: connection ended: %v", closed)
	}
	for _, e := range errs {
		h.t.Error("honest pair: " + e)
	}
	if sent == 0 || recv != sent {
		h.t.Errorf("honest pair: %d lines sent, %d received", sent, recv)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(100 * time.Microsecond)
	}
	relFigure(h.t, name+"/honest", "lines", recv, "lost", sent-recv, "p50", pct(0.5), "p99", pct(0.99), "max", pct(1))
	h.tcp.Conn.Close()
	h.ws.c.CloseNow()
	h.wg.Wait()
}
