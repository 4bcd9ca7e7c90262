package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func baseChat(o *options, t *target) chatConfig {
	return chatConfig{
		label:     t.Name,
		clients:   o.Conns,
		senders:   o.Senders,
		rate:      o.Rate,
		size:      o.Size,
		room:      o.Room,
		warmup:    o.Warmup,
		duration:  o.Duration,
		maxLines:  o.MaxLines,
		pid:       t.PID,
		sendAddr:  t.Addrs[0],
		recvAddrs: t.Addrs,
		irc:       t.IRC,
		nick:      o.Nick,
		conc:      o.Concurrency,
		sources:   o.Sources,
	}
}

func collect(s *summary, r *chatResult) {
	s.Runs = append(s.Runs, r)
	s.Problems = append(s.Problems, r.problems...)
}

// chatRatios compares the last run (the server measured) with each run
// before it (the references, ngIRCd), one run per target.
func chatRatios(s *summary, runs []*chatResult, targets []*target) {
	if len(runs) != len(targets) {
		return
	}
	setRatios(s, targets, func(gi, ri int) map[string]float64 {
		ref, got := runs[ri], runs[gi]
		m := map[string]float64{
			"deliveries_per_s": ratio(got.DeliveriesPerS, ref.DeliveriesPerS),
			"lines_per_s":      ratio(got.LinesPerS, ref.LinesPerS),
			"p50":              ratio(got.Latency.P50Ms, ref.Latency.P50Ms),
			"p99":              ratio(got.Latency.P99Ms, ref.Latency.P99Ms),
			"handshakes_per_s": ratio(got.HandshakesPerS, ref.HandshakesPerS),
		}
		if got.CPUPerDelivery > 0 && ref.CPUPerDelivery > 0 {
			m["server_cpu_per_delivery"] = ratio(got.CPUPerDelivery, ref.CPUPerDelivery)
		}
		if c, ok := got.Extra["churn_per_s"].(float64); ok {
			if r, ok := ref.Extra["churn_per_s"].(float64); ok {
				m["churn_per_s"] = ratio(c, r)
			}
		}
		return m
	})
}

// runFanout: C clients in one room; S senders each keep a window of W
// unacknowledged lines (a line is acknowledged when its sender receives it
// back), so the server is kept busy without unbounded queues.
func runFanout(ctx context.Context, o *options, targets []*target) (*summary, error) {
	s := &summary{}
	var runs []*chatResult
	for _, t := range targets {
		cfg := baseChat(o, t)
		cfg.window = o.Window
		r, err := runChat(ctx, cfg)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
		collect(s, r)
	}
	chatRatios(s, runs, targets)
	return s, nil
}

// runLatency: C clients in one room, S senders sending R lines/s in all,
// each line stamped with its send time.
func runLatency(ctx context.Context, o *options, targets []*target) (*summary, error) {
	s := &summary{}
	var runs []*chatResult
	for _, t := range targets {
		r, err := runChat(ctx, baseChat(o, t))
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
		collect(s, r)
	}
	chatRatios(s, runs, targets)
	return s, nil
}

// runCross: the latency scenario with senders on one gateway and receivers
// on another, beside the same load with everyone on the first gateway, so
// the difference is the cost of the hop. Only receivers that are not
// senders record latency, in every phase.
func runCross(ctx context.Context, o *options, targets []*target) (*summary, error) {
	s := &summary{}
	var ref, same, cross *chatResult
	for _, t := range targets {
		cfg := baseChat(o, t)
		cfg.recvOnly = true
		if t.isRef() || t.Name == "ngircd" {
			r, err := runChat(ctx, cfg)
			if err != nil {
				return nil, err
			}
			if t.Name == "reference" {
				ref = r
			}
			collect(s, r)
			continue
		}
		cfg.label = "chatd-same-gateway"
		r, err := runChat(ctx, cfg)
		if err != nil {
			return nil, err
		}
		same = r
		collect(s, r)
		cfg.label = "chatd-cross-gateway"
		cfg.nick = o.Nick + "x"
		cfg.recvAddrs = splitAddrs(o.Addr2)
		r, err = runChat(ctx, cfg)
		if err != nil {
			return nil, err
		}
		cross = r
		collect(s, r)
	}
	s.Ratio = map[string]float64{}
	if ref != nil && cross != nil {
		s.Ratio["cross_p50"] = ratio(cross.Latency.P50Ms, ref.Latency.P50Ms)
		s.Ratio["cross_p99"] = ratio(cross.Latency.P99Ms, ref.Latency.P99Ms)
		s.Ratio["same_p50"] = ratio(same.Latency.P50Ms, ref.Latency.P50Ms)
		s.Ratio["same_p99"] = ratio(same.Latency.P99Ms, ref.Latency.P99Ms)
	}
	if same != nil && cross != nil {
		cross.Extra = map[string]any{
			"hop_p50_ms": round3(cross.Latency.P50Ms - same.Latency.P50Ms),
			"hop_p99_ms": round3(cross.Latency.P99Ms - same.Latency.P99Ms),
		}
	}
	return s, nil
}

// runChurn: the latency scenario while other clients connect, complete the
// handshake and disconnect at --churn-rate per second.
func runChurn(ctx context.Context, o *options, targets []*target) (*summary, error) {
	s := &summary{}
	var runs []*chatResult
	for _, t := range targets {
		cfg := baseChat(o, t)
		var (
			opened, failed atomic.Int64
			cn             = &connector{sources: sources(o.Sources), timeout: 30 * time.Second, bufSize: 4096}
			window         struct{ start, end time.Time }
		)
		cfg.during = func(ctx context.Context, stop <-chan struct{}) {
			window.start = time.Now()
			defer func() { window.end = time.Now() }()
			sem := make(chan struct{}, o.Concurrency)
			var wg sync.WaitGroup
			defer wg.Wait()
			t0 := time.Now()
			for i := 0; i < o.ChurnMax; i++ {
				at := t0.Add(time.Duration(float64(i) / o.ChurnRate * float64(time.Second)))
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-time.After(time.Until(at)):
				}
				select {
				case sem <- struct{}{}:
				case <-stop:
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					c, err := cn.connect(ctx, i, t.Addrs[i%len(t.Addrs)], o.Nick+"c"+strconv.Itoa(i), o.Room)
					if err != nil {
						failed.Add(1)
						return
					}
					opened.Add(1)
					c.close()
				}()
			}
		}
		r, err := runChat(ctx, cfg)
		if err != nil {
			return nil, err
		}
		cn.readers.Wait()
		d := window.end.Sub(window.start).Seconds()
		r.Extra = map[string]any{
			"churn_connections": opened.Load(),
			"churn_failed":      failed.Load(),
			"churn_per_s":       round3(float64(opened.Load()) / d),
			"churn_handshake":   cn.joinHist.summary(),
			"notices_per_s":     round3(float64(r.OtherLines) / d),
		}
		if failed.Load() > 0 {
			r.problems = append(r.problems, fmt.Sprintf("%s: %d churn connections failed", t.Name, failed.Load()))
		}
		runs = append(runs, r)
		collect(s, r)
	}
	chatRatios(s, runs, targets)
	return s, nil
}

// idleResult is the outcome of one idle run.
type idleResult struct {
	Name           string         `json:"name"`
	Addrs          []string       `json:"addrs"`
	PID            int            `json:"pid,omitempty"`
	Conns          int            `json:"conns"`
	Connected      int            `json:"connected"`
	Failed         int            `json:"failed"`
	Dropped        int            `json:"dropped_during_hold"`
	RoomSize       int            `json:"room_size"`
	Sources        int            `json:"sources"`
	ConnectS       float64        `json:"connect_s"`
	HandshakesPerS float64        `json:"handshakes_per_s"`
	Handshake      latencySummary `json:"handshake"`
	ConnectCPUS    float64        `json:"server_cpu_s_connecting,omitempty"`     // the server's CPU time while the clients connected
	CPUPerConnect  float64        `json:"server_cpu_us_per_handshake,omitempty"` // that over the handshakes
	NoticeLines    int64          `json:"notice_lines"`
	RSSBeforeKiB   int64          `json:"rss_before_kib,omitempty"`
	RSSAfterKiB    int64          `json:"rss_after_kib,omitempty"`
	BytesPerConn   int64          `json:"rss_bytes_per_conn,omitempty"`
	FirstError     string         `json:"first_error,omitempty"`
}

// runIdle: C connections that complete the handshake, move to rooms of
// --room-size members and then stay idle; the server's RSS is read before
// and after.
func runIdle(ctx context.Context, o *options, targets []*target) (*summary, error) {
	s := &summary{}
	var runs []*idleResult
	for _, t := range targets {
		r := &idleResult{Name: t.Name, Addrs: t.Addrs, PID: t.PID, Conns: o.Conns, RoomSize: o.RoomSize, Sources: o.Sources}
		r.RSSBeforeKiB = rssKB(t.PID)
		cpu0 := cpuSeconds(t.PID)
		cn := &connector{sources: sources(o.Sources), timeout: 60 * time.Second, bufSize: 512, irc: t.IRC}
		start := time.Now()
		last := time.Now()
		var mu sync.Mutex
		clients, failed, err := cn.connectAll(ctx, o.Conns, o.Concurrency, true,
			func(i int) string { return t.Addrs[i%len(t.Addrs)] },
			func(i int) string { return chatNick(o.Nick, i) },
			func(i int) string { return "r" + strconv.Itoa(i/o.RoomSize) },
			func(done int) {
				mu.Lock()
				defer mu.Unlock()
				if done == o.Conns || time.Since(last) > time.Second {
					last = time.Now()
					progressf("%s: %d/%d connected, %.0f handshakes/s, rss %d KiB", t.Name, done, o.Conns,
						float64(done)/time.Since(start).Seconds(), rssKB(t.PID))
				}
			})
		r.ConnectS = round3(time.Since(start).Seconds())
		r.Failed = failed
		if err != nil {
			r.FirstError = err.Error()
			s.Problems = append(s.Problems, fmt.Sprintf("%s: %d connections failed: %v", t.Name, failed, err))
		}
		for _, c := range clients {
			if c != nil {
				r.Connected++
			}
		}
		r.HandshakesPerS = round3(float64(r.Connected) / r.ConnectS)
		if cpu1 := cpuSeconds(t.PID); cpu0 >= 0 && cpu1 >= 0 && r.Connected > 0 {
			r.ConnectCPUS = round3(cpu1 - cpu0)
			r.CPUPerConnect = round3((cpu1 - cpu0) * 1e6 / float64(r.Connected))
		}
		r.Handshake = cn.joinHist.summary()
		progressf("%s: settling %v", t.Name, o.Settle)
		sleepCtx(ctx, o.Settle)
		r.RSSAfterKiB = rssKB(t.PID)
		if r.RSSBeforeKiB > 0 && r.Connected > 0 {
			r.BytesPerConn = (r.RSSAfterKiB - r.RSSBeforeKiB) * 1024 / int64(r.Connected)
		}
		progressf("%s: %d connected, rss %d KiB (%d bytes per connection); holding %v",
			t.Name, r.Connected, r.RSSAfterKiB, r.BytesPerConn, o.Hold)
		sleepCtx(ctx, o.Hold)
		for _, c := range clients {
			if c != nil && c.ended.Load() {
				r.Dropped++
			}
		}
		r.NoticeLines = sumLines(nonNil(clients))
		if r.Dropped > 0 {
			s.Problems = append(s.Problems, fmt.Sprintf("%s: %d idle connections dropped", t.Name, r.Dropped))
		}
		cn.closeAll(clients)
		runs = append(runs, r)
		s.Runs = append(s.Runs, r)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	setRatios(s, targets, func(gi, ri int) map[string]float64 {
		return map[string]float64{
			"rss_bytes_per_conn":       ratio(float64(runs[gi].BytesPerConn), float64(runs[ri].BytesPerConn)),
			"handshakes_per_s":         ratio(runs[gi].HandshakesPerS, runs[ri].HandshakesPerS),
			"server_cpu_per_handshake": ratio(runs[gi].CPUPerConnect, runs[ri].CPUPerConnect),
		}
	})
	return s, nil
}

func nonNil(cs []*client) []*client {
	out := cs[:0:0]
	for _, c := range cs {
		if c != nil {
			out = append(out, c)
		}
	}
	return out
}
