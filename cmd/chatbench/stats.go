package main

import (
	"math"
	"math/bits"
	"time"
)

// hist is a latency histogram with a bounded relative error: values below
// 128ns are kept exactly; above, each power of two is split into 64 buckets,
// so a bucket's width is at most 1/64 (1.6%) of its values. It costs a few
// KiB, whatever the number of samples. Not safe for concurrent use: give
// each goroutine its own and merge them.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

const (
	histSub     = 64                       // buckets per power of two
	histBuckets = (64-6)*histSub + histSub // enough for any int64
)

// histIndex returns the bucket of v (v >= 0).
func histIndex(v int64) int {
	if v < 2*histSub {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - 7 // v>>e is in [64, 128)
	return (e+1)*histSub + int(uint64(v)>>e) - histSub
}

// histLow returns the smallest value of bucket i.
func histLow(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	e := i/histSub - 1
	m := int64(i%histSub + histSub)
	return m << e
}

func (h *hist) add(v int64) {
	if v < 0 {
		v = 0
	}
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
	h.counts[histIndex(v)]++
}

func (h *hist) merge(o *hist) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// quantile returns the value at quantile q (0..1): the smallest bucket value
// with at least q of the samples at or below it, clamped to [min, max]. It
// is exact below 128 and within 1/64 above.
func (h *hist) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := histLow(i)
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

func (h *hist) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// latencySummary is how a histogram of nanoseconds appears in the JSON
// summary, in milliseconds.
type latencySummary struct {
	Samples uint64  `json:"samples"`
	MeanMs  float64 `json:"mean_ms"`
	P50Ms   float64 `json:"p50_ms"`
	P90Ms   float64 `json:"p90_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

func (h *hist) summary() latencySummary {
	ms := func(ns int64) float64 { return round3(float64(ns) / float64(time.Millisecond)) }
	return latencySummary{
		Samples: h.n,
		MeanMs:  round3(h.mean() / float64(time.Millisecond)),
		P50Ms:   ms(h.quantile(0.50)),
		P90Ms:   ms(h.quantile(0.90)),
		P99Ms:   ms(h.quantile(0.99)),
		MaxMs:   ms(h.max),
	}
}

func round3(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return math.Round(f*1000) / 1000
}

// ratio returns a/b rounded, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return round3(a / b)
}

// seqTracker follows the sequence numbers one receiver sees from one
// sender. Sequence numbers start at 0 and go up by one per line. A number
// below the highest seen so far is out of order; lost is what was sent but
// never seen, found at the end by received versus sent.
type seqTracker struct {
	next       int64 // the number expected next: highest seen + 1
	received   int64 // lines seen, duplicates included
	outOfOrder int64 // lines that came after a higher number
	gaps       int64 // numbers skipped when a higher one arrived (may be filled later)
}

func (t *seqTracker) see(seq int64) {
	t.received++
	switch {
	case seq == t.next:
		t.next++
	case seq > t.next:
		t.gaps += seq - t.next
		t.next = seq + 1
	default:
		t.outOfOrder++
	}
}

// lost is how many of sent lines this receiver did not get: sent minus the
// lines received in order or late (a duplicate cannot hide a loss, since a
// sender's numbers never repeat on the wire unless the server duplicates).
func (t *seqTracker) lost(sent int64) int64 {
	return max(0, sent-t.received)
}
