package main

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistIndexRoundTrip(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<62 + 1, 1<<63 - 1} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d (previous %d, buckets %d)", v, i, prev, histBuckets)
		}
		prev = i
		low := histLow(i)
		if low > v || (v >= 128 && float64(v-low) > float64(v)/64) || (v < 128 && low != v) {
			t.Errorf("histLow(histIndex(%d)) = %d: too far", v, low)
		}
		if i+1 < histBuckets && histLow(i+1) > 0 && histLow(i+1) <= v {
			t.Errorf("value %d is past its bucket %d (next starts at %d)", v, i, histLow(i+1))
		}
	}
}

// The quantiles of the histogram are within 1/64 of the exact ones.
func TestHistQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h, h1, h2 hist
	var all []int64
	for i := range 100_000 {
		v := int64(r.ExpFloat64() * 2e6) // latencies around 2ms
		if i%1000 == 0 {
			v *= 50 // a tail
		}
		all = append(all, v)
		h.add(v)
		if i%2 == 0 {
			h1.add(v)
		} else {
			h2.add(v)
		}
	}
	h1.merge(&h2)
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		rank := int(float64(len(all))*q+0.999999) - 1
		exact := all[rank]
		for name, hh := range map[string]*hist{"one": &h, "merged": &h1} {
			got := hh.quantile(q)
			if got > exact || float64(exact-got) > float64(exact)/64+1 {
				t.Errorf("%s: quantile(%v) = %d, exact %d", name, q, got, exact)
			}
		}
	}
	if h.max != all[len(all)-1] || h.min != all[0] || h1.n != h.n {
		t.Errorf("min/max/n = %d/%d/%d, want %d/%d/%d", h.min, h.max, h1.n, all[0], all[len(all)-1], h.n)
	}
	var empty hist
	if empty.quantile(0.99) != 0 || empty.summary().Samples != 0 {
		t.Error("empty histogram")
	}
}

func TestHistSmallExact(t *testing.T) {
	var h hist
	for v := range int64(100) {
		h.add(v + 1) // 1..100
	}
	for q, want := range map[float64]int64{0.5: 50, 0.9: 90, 0.99: 99, 1: 100, 0: 1} {
		if got := h.quantile(q); got != want {
			t.Errorf("quantile(%v) = %d, want %d", q, got, want)
		}
	}
}

func TestSeqTracker(t *testing.T) {
	tests := []struct {
		name             string
		seen             []int64
		sent             int64
		lost, outOfOrder int64
	}{
		{"in order", []int64{0, 1, 2, 3}, 4, 0, 0},
		{"tail lost", []int64{0, 1}, 4, 2, 0},
		{"gap", []int64{0, 2, 3}, 4, 1, 0},
		{"reordered", []int64{0, 2, 1, 3}, 4, 0, 1},
		{"late and lost", []int64{3, 0}, 4, 2, 1},
		{"nothing", nil, 3, 3, 0},
	}
	for _, tt := range tests {
		var tr seqTracker
		for _, s := range tt.seen {
			tr.see(s)
		}
		if got := tr.lost(tt.sent); got != tt.lost {
			t.Errorf("%s: lost = %d, want %d", tt.name, got, tt.lost)
		}
		if tr.outOfOrder != tt.outOfOrder {
			t.Errorf("%s: out of order = %d, want %d", tt.name, tr.outOfOrder, tt.outOfOrder)
		}
	}
}

func TestBenchLine(t *testing.T) {
	for _, size := range []int{16, 64, 200} {
		b := appendBench(nil, 7, 123, 1700000000000000001, size)
		if b[len(b)-1] != '\n' {
			t.Fatalf("no newline: %q", b)
		}
		if size > 40 && len(b) != size+1 {
			t.Errorf("size %d: got %d bytes: %q", size, len(b), b)
		}
		line := append([]byte("bx_7: "), b[:len(b)-1]...)
		s, seq, ts, ok := parseBench(line)
		if !ok || s != 7 || seq != 123 || ts != 1700000000000000001 {
			t.Errorf("parseBench(%q) = %d %d %d %v", line, s, seq, ts, ok)
		}
	}
	for _, bad := range []string{"", "bob joined!", "bob: hello", "bob: B x 1 2", "bob: B 1 2", "bob: B 1"} {
		if _, _, _, ok := parseBench([]byte(bad)); ok {
			t.Errorf("parseBench(%q) ok", bad)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, a := range []string{"127.0.0.1:5500", "127.3.2.1:1", "[::1]:5500", "localhost:5500"} {
		if err := checkLoopback(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:5500", "192.168.1.2:5500", "8.8.8.8:53", "example.com:80", "127.0.0.1"} {
		if err := checkLoopback(a); err == nil {
			t.Errorf("%s: accepted", a)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
