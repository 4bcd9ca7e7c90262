package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// chatConfig describes one chat run against one target: clients in one room,
// some of which send bench lines, either as fast as a window of
// unacknowledged lines allows (window > 0) or at a fixed total rate.
type chatConfig struct {
	label      string
	clients    int
	senders    int
	window     int     // > 0: fan-out mode
	rate       float64 // lines/s in all, when window is 0
	size       int
	room       string
	warmup     time.Duration
	duration   time.Duration
	maxLines   int64
	pid        int      // the server's process, for its CPU time
	sendAddr   string   // where senders connect
	recvAddrs  []string // receivers, round-robin
	recvOnly   bool     // only non-senders record latency (cross)
	nick       string
	conc       int
	sources    int
	during     func(ctx context.Context, stop <-chan struct{}) // runs while lines are sent
	drainLimit time.Duration
	irc        bool // the clients speak IRC
}

// chatResult is the outcome of one chat run, as it appears in the summary.
type chatResult struct {
	Name           string         `json:"name"`
	Addrs          []string       `json:"addrs"`
	Clients        int            `json:"clients"`
	Senders        int            `json:"senders"`
	HandshakesPerS float64        `json:"handshakes_per_s"`
	Handshake      latencySummary `json:"handshake"`
	MeasuredS      float64        `json:"measured_s"`
	LinesPerS      float64        `json:"lines_per_s"`
	DeliveriesPerS float64        `json:"deliveries_per_s"`
	LinesSent      int64          `json:"lines_sent"`
	Expected       int64          `json:"deliveries_expected"`
	Received       int64          `json:"deliveries_received"`
	Lost           int64          `json:"lost"`
	LostDropped    int64          `json:"lost_by_dropped_clients"` // part of Lost: lines sent after the server dropped a client
	OutOfOrder     int64          `json:"out_of_order"`
	Dropped        int            `json:"clients_dropped"`
	DropReasons    map[string]int `json:"drop_reasons,omitempty"` // the server's last ERROR line: how many clients got it
	OtherLines     int64          `json:"other_lines"`
	DrainMs        float64        `json:"drain_ms"`
	ServerCPUS     float64        `json:"server_cpu_s,omitempty"`
	CPUPerDelivery float64        `json:"server_cpu_ns_per_delivery,omitempty"`
	Latency        latencySummary `json:"latency"`
	Extra          map[string]any `json:"extra,omitempty"`
	problems       []string
}

type sender struct {
	acked atomic.Int64
	sig   chan struct{}
	sent  atomic.Int64
}

func chatNick(prefix string, i int) string {
	return prefix + "_" + strconv.Itoa(i)
}

// runChat runs one chat measurement.
func runChat(ctx context.Context, cfg chatConfig) (*chatResult, error) {
	res := &chatResult{Name: cfg.label, Clients: cfg.clients, Senders: cfg.senders}
	res.Addrs = []string{cfg.sendAddr}
	for _, a := range cfg.recvAddrs {
		if a != cfg.sendAddr {
			res.Addrs = append(res.Addrs, a)
		}
	}
	senders := make([]*sender, cfg.senders)
	for i := range senders {
		senders[i] = &sender{sig: make(chan struct{}, 1)}
	}
	var measureFrom atomic.Int64 // unix ns; lines sent before are not timed
	measureFrom.Store(1<<63 - 1)

	// noEcho: the server does not send a sender its own lines (an IRC
	// server without echo-message); then the last client acknowledges
	// every sender's lines and nobody expects their own.
	var noEcho atomic.Bool
	acker := func(s int) int {
		if s == cfg.clients-1 {
			return cfg.clients - 2
		}
		return cfg.clients - 1
	}
	cn := &connector{sources: sources(cfg.sources), timeout: 30 * time.Second, bufSize: 64 << 10, irc: cfg.irc}
	cn.handle = func(c *client, line []byte) {
		s, seq, ts, ok := parseBench(line)
		if !ok || s >= cfg.senders {
			return
		}
		c.bench.Add(1)
		c.seqs[s].see(seq)
		if c.lat != nil && ts >= measureFrom.Load() {
			c.lat.add(time.Now().UnixNano() - ts)
		}
		if cfg.window > 0 && (c.id == s && !noEcho.Load() || c.id == acker(s) && noEcho.Load()) {
			sd := senders[s]
			sd.acked.Add(1)
			select {
			case sd.sig <- struct{}{}:
			default:
			}
		}
	}
	cn.setup = func(c *client) {
		c.seqs = make([]seqTracker, cfg.senders)
		if !cfg.recvOnly || c.id >= cfg.senders {
			c.lat = new(hist)
		}
	}
	addrOf := func(i int) string {
		if i < cfg.senders {
			return cfg.sendAddr
		}
		return cfg.recvAddrs[i%len(cfg.recvAddrs)]
	}
	start := time.Now()
	lastShown := time.Now()
	var showMu sync.Mutex
	clients, _, err := cn.connectAll(ctx, cfg.clients, cfg.conc, false, addrOf,
		func(i int) string { return chatNick(cfg.nick, i) },
		func(int) string { return cfg.room },
		func(done int) {
			showMu.Lock()
			defer showMu.Unlock()
			if done == cfg.clients || time.Since(lastShown) > time.Second {
				lastShown = time.Now()
				progressf("%s: %d/%d connected", cfg.label, done, cfg.clients)
			}
		})
	if err != nil {
		cn.readers.Wait()
		return nil, fmt.Errorf("%s: connecting: %w", cfg.label, err)
	}
	defer cn.closeAll(clients)
	if !clients[0].echo {
		if cfg.clients < 2 {
			return nil, fmt.Errorf("%s: the server does not echo a sender's lines: at least 2 clients are needed", cfg.label)
		}
		noEcho.Store(true)
	}
	connectTime := time.Since(start)
	res.HandshakesPerS = round3(float64(cfg.clients) / connectTime.Seconds())
	res.Handshake = cn.joinHist.summary()
	// Let the last join notices arrive before measuring.
	time.Sleep(200 * time.Millisecond)
	otherBefore := sumLines(clients) - sumBench(clients)

	stop := make(chan struct{})
	var budget atomic.Int64
	budget.Store(cfg.maxLines)
	var wg sync.WaitGroup
	t0 := time.Now()
	for s := range cfg.senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if cfg.window > 0 {
				err = sendWindowed(clients[s], s, senders[s], cfg, &budget, stop)
			} else {
				err = sendPaced(clients[s], s, senders[s], cfg, &budget, stop, t0)
			}
			if err != nil && !errors.Is(err, errStopped) {
				progressf("%s: sender %d: %v", cfg.label, s, err)
			}
		}()
	}
	if cfg.during != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg.during(ctx, stop)
		}()
	}

	// Warm up, then measure, showing progress every second.
	sleepCtx(ctx, cfg.warmup)
	measureFrom.Store(time.Now().UnixNano())
	m0, d0, s0 := time.Now(), sumBench(clients), sumSent(senders)
	cpu0 := cpuSeconds(cfg.pid)
	prevT, prevD := m0, d0
	end := m0.Add(cfg.duration)
	for time.Now().Before(end) && ctx.Err() == nil && budget.Load() > 0 {
		sleepCtx(ctx, min(time.Second, time.Until(end)))
		now, d := time.Now(), sumBench(clients)
		progressf("%s: %.0f deliveries/s, %d lines sent", cfg.label,
			float64(d-prevD)/now.Sub(prevT).Seconds(), sumSent(senders))
		prevT, prevD = now, d
	}
	m1, d1, s1 := time.Now(), sumBench(clients), sumSent(senders)
	if cpu1 := cpuSeconds(cfg.pid); cpu0 >= 0 && cpu1 >= 0 {
		res.ServerCPUS = round3(cpu1 - cpu0)
		if d1 > d0 {
			res.CPUPerDelivery = round3((cpu1 - cpu0) * 1e9 / float64(d1-d0))
		}
	}
	close(stop)
	wg.Wait()
	res.MeasuredS = round3(m1.Sub(m0).Seconds())
	res.DeliveriesPerS = round3(float64(d1-d0) / m1.Sub(m0).Seconds())
	res.LinesPerS = round3(float64(s1-s0) / m1.Sub(m0).Seconds())

	// Drain: wait until every client that is still connected has every line.
	drainStart := time.Now()
	var perClient int64
	for _, sd := range senders {
		perClient += sd.sent.Load()
	}
	limit := cfg.drainLimit
	if limit == 0 {
		limit = 15 * time.Second
	}
	want := func(c *client) int64 { // the lines c should get
		if noEcho.Load() && c.id < cfg.senders {
			return perClient - senders[c.id].sent.Load()
		}
		return perClient
	}
	for time.Since(drainStart) < limit && ctx.Err() == nil {
		behind := false
		for _, c := range clients {
			if c.bench.Load() < want(c) && !c.ended.Load() {
				behind = true
				break
			}
		}
		if !behind {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	res.DrainMs = round3(float64(time.Since(drainStart)) / float64(time.Millisecond))
	res.OtherLines = sumLines(clients) - sumBench(clients) - otherBefore

	cn.closeAll(clients)
	var lat hist
	for _, c := range clients {
		dropped := c.dropped()
		if dropped {
			res.Dropped++
			why := c.goodbye
			if why == "" {
				why = "closed without an ERROR line: " + c.readErr.Error()
			}
			if res.DropReasons == nil {
				res.DropReasons = map[string]int{}
			}
			res.DropReasons[why]++
		}
		for s, t := range c.seqs {
			if s == c.id && noEcho.Load() {
				continue
			}
			sent := senders[s].sent.Load()
			res.Expected += sent
			res.Received += t.received
			res.Lost += t.lost(sent)
			if dropped {
				res.LostDropped += t.lost(sent)
			}
			res.OutOfOrder += t.outOfOrder
		}
		if c.lat != nil {
			lat.merge(c.lat)
		}
	}
	res.LinesSent = perClient
	res.Latency = lat.summary()
	if res.Lost > res.LostDropped {
		res.problems = append(res.problems, fmt.Sprintf("%s: %d deliveries lost by clients still connected", cfg.label, res.Lost-res.LostDropped))
	}
	if res.OutOfOrder > 0 {
		res.problems = append(res.problems, fmt.Sprintf("%s: %d deliveries out of order", cfg.label, res.OutOfOrder))
	}
	if res.Dropped > 0 {
		res.problems = append(res.problems, fmt.Sprintf("%s: %d clients dropped by the server (%v), %d deliveries lost with them",
			cfg.label, res.Dropped, res.DropReasons, res.LostDropped))
	}
	progressf("%s: %.0f deliveries/s, %.0f lines/s, p50 %.3fms p99 %.3fms, lost %d (%d with %d dropped clients), out of order %d",
		cfg.label, res.DeliveriesPerS, res.LinesPerS, res.Latency.P50Ms, res.Latency.P99Ms, res.Lost, res.LostDropped, res.Dropped, res.OutOfOrder)
	return res, nil
}

var errStopped = errors.New("stopped")

// take reserves up to n lines of the run's budget.
func take(budget *atomic.Int64, n int64) int64 {
	for {
		b := budget.Load()
		if b <= 0 {
			return 0
		}
		k := min(b, n)
		if budget.CompareAndSwap(b, b-k) {
			return k
		}
	}
}

// sendWindowed sends as fast as the window allows: at most cfg.window of
// this sender's lines are on their way (sent, not yet received back).
func sendWindowed(c *client, idx int, sd *sender, cfg chatConfig, budget *atomic.Int64, stop <-chan struct{}) error {
	buf := make([]byte, 0, cfg.window*(cfg.size+2))
	var seq int64
	for {
		select {
		case <-stop:
			return errStopped
		default:
		}
		free := int64(cfg.window) - (seq - sd.acked.Load())
		if free <= 0 {
			select {
			case <-sd.sig:
			case <-stop:
				return errStopped
			}
			continue
		}
		n := take(budget, free)
		if n == 0 {
			return errStopped
		}
		buf = buf[:0]
		ts := time.Now().UnixNano()
		for k := range n {
			buf = c.appendLine(buf, idx, seq+k, ts, cfg.size)
		}
		_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.conn.Write(buf); err != nil {
			return err
		}
		seq += n
		sd.sent.Store(seq)
	}
}

// sendPaced sends this sender's share of cfg.rate: sender idx of S sends its
// i-th line at t0 + (i*S+idx)/rate, so that the senders interleave evenly.
func sendPaced(c *client, idx int, sd *sender, cfg chatConfig, budget *atomic.Int64, stop <-chan struct{}, t0 time.Time) error {
	buf := make([]byte, 0, cfg.size+32)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for seq := int64(0); ; seq++ {
		at := t0.Add(time.Duration(float64(seq*int64(cfg.senders)+int64(idx)) / cfg.rate * float64(time.Second)))
		if d := time.Until(at); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-stop:
				return errStopped
			}
		} else {
			select {
			case <-stop:
				return errStopped
			default:
			}
		}
		if take(budget, 1) == 0 {
			return errStopped
		}
		buf = c.appendLine(buf[:0], idx, seq, time.Now().UnixNano(), cfg.size)
		_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.conn.Write(buf); err != nil {
			return err
		}
		sd.sent.Store(seq + 1)
	}
}

func sumBench(cs []*client) int64 {
	var n int64
	for _, c := range cs {
		n += c.bench.Load()
	}
	return n
}

func sumLines(cs []*client) int64 {
	var n int64
	for _, c := range cs {
		n += c.lines.Load()
	}
	return n
}

func sumSent(ss []*sender) int64 {
	var n int64
	for _, s := range ss {
		n += s.sent.Load()
	}
	return n
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
