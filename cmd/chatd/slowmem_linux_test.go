package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

// TestMeasureNonReaders measures what clients that never read cost a real
// chatd process under load: its RSS and the kernel memory of its sockets
// (the sum of ss's skmem w, bytes queued for sending, over its chat
// sockets). It runs only with CHATD_MEASURE_SLOW set, on loopback, and
// stops by itself: when every non-reader has been dropped, when the
// machine's TCP memory nears the kernel's pressure mark (so that other
// programs are not starved), or after two minutes.
//
//	CHATD_MEASURE_SLOW=1 go test -run TestMeasureNonReaders -v -timeout 10m ./cmd/chatd/
//
// CHATD_MEASURE_CLIENTS sets the number of non-readers (default 1000).
func TestMeasureNonReaders(t *testing.T) {
	if os.Getenv("CHATD_MEASURE_SLOW") == "" {
		t.Skip("a measurement: set CHATD_MEASURE_SLOW=1 to run it")
	}
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("needs ss (iproute2)")
	}
	n := 1000
	if v := os.Getenv("CHATD_MEASURE_CLIENTS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	const maxPending = 256 << 10
	p := startChatd(t, "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--history", "0", "--log-level", "warn",
		"--rate", "1000000", "--burst", "1000000", "--max-conns", strconv.Itoa(n+100),
		"--max-conns-per-ip", strconv.Itoa(n+100), "--max-pending", strconv.Itoa(maxPending), "--http", "")
	pid := p.cmd.Process.Pid
	_, port, _ := net.SplitHostPort(p.addr)
	guard := tcpMemGuard(t)

	base := sample(t, pid, port)
	t.Logf("idle server: RSS %.1f MB", mb(base.rss))

	// The non-readers complete the handshake, then never read again.
	readers := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range readers {
			c.Close()
		}
	})
	for i := range n {
		c, err := net.DialTimeout("tcp", p.addr, waitFor)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		readers = append(readers, c)
		cl := testkit.NewClient(t, c)
		cl.Nick = fmt.Sprintf("idle%d", i)
		cl.ExpectName()
		cl.Send(cl.Nick + "\n")
		cl.Expect("Connected to server!")
	}
	joined := sample(t, pid, port)
	t.Logf("%d non-readers joined: RSS %.1f MB, %d server sockets, send queues %.1f MB", n, mb(joined.rss), joined.socks, mb(joined.wqueued))

	// The talker sends 1 KB lines with a window of unechoed ones.
	talker := join(t, p.addr, "talker")
	talker.Conn.SetDeadline(time.Time{}) // join set a write deadline; the run may take a while
	var stop atomic.Bool
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		line := strings.Repeat("x", 1000)
		echoes := bufio.NewReaderSize(talker.Conn, 64<<10)
		const window = 64
		for i := 0; !stop.Load(); i++ {
			if i >= window {
				if _, err := echoes.ReadString('\n'); err != nil {
					return
				}
			}
			if _, err := fmt.Fprintf(talker.Conn, "%d %s\n", i, line); err != nil {
				return
			}
			sent.Add(1)
		}
	}()

	var peak memSample
	why := "time limit (2 minutes)"
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		s := sample(t, pid, port)
		peak = peak.max(s)
		if s.socks <= 1 { // only the talker is left
			why = "every non-reader was dropped as a slow consumer"
			break
		}
		if s.tcpPages >= guard {
			why = fmt.Sprintf("the machine's TCP memory reached %d pages (80%% of the kernel's pressure mark): load stopped", s.tcpPages)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	stop.Store(true)
	talker.Conn.Close()
	<-done
	t.Logf("stopped: %s; %d lines of 1 KB sent", why, sent.Load())
	t.Logf("peak: server RSS %.1f MB (+%.1f MB over joined), server socket send queues %.1f MB over %d sockets (%.0f KB each, ss skmem w), machine TCP memory %d pages (%.1f MB, /proc/net/sockstat)",
		mb(peak.rss), mb(peak.rss-joined.rss), mb(peak.wqueued), peak.wsocks, float64(peak.wqueued)/1024/float64(max(peak.wsocks, 1)),
		peak.tcpPages, mb(peak.tcpPages*int64(os.Getpagesize())))
	fmt.Printf("RESULT non-readers=%d max-pending=%d peak-rss-mb=%.1f rss-growth-mb=%.1f send-queues-mb=%.1f per-socket-kb=%.0f tcp-mem-mb=%.1f stop=%q\n",
		n, maxPending, mb(peak.rss), mb(peak.rss-joined.rss), mb(peak.wqueued), float64(peak.wqueued)/1024/float64(max(peak.wsocks, 1)),
		mb(peak.tcpPages*int64(os.Getpagesize())), why)
}

type memSample struct {
	rss      int64 // server VmRSS, bytes
	socks    int   // established server-side chat sockets
	wqueued  int64 // sum of skmem w over them
	wsocks   int   // sockets with anything queued
	tcpPages int64 // /proc/net/sockstat TCP mem
}

func (a memSample) max(b memSample) memSample {
	if b.wqueued > a.wqueued {
		a.wqueued, a.wsocks = b.wqueued, b.wsocks
	}
	a.rss = max(a.rss, b.rss)
	a.socks = max(a.socks, b.socks)
	a.tcpPages = max(a.tcpPages, b.tcpPages)
	return a
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func sample(t *testing.T, pid int, port string) memSample {
	t.Helper()
	var s memSample
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				s.rss = kb << 10
			}
		}
	}
	if b, err := os.ReadFile("/proc/net/sockstat"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "TCP:" {
				for i := 1; i+1 < len(f); i += 2 {
					if f[i] == "mem" {
						s.tcpPages, _ = strconv.ParseInt(f[i+1], 10, 64)
					}
				}
			}
		}
	}
	// ss -tmnH state established '( sport = :PORT )'
	out, err := exec.Command("ss", "-tmnH", "state", "established", "( sport = :"+port+" )").Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	for _, l := range bytes.Split(out, []byte("\n")) {
		if i := bytes.Index(l, []byte("skmem:(")); i >= 0 {
			s.socks++
			w := skmemField(string(l[i+7:]), "w")
			s.wqueued += w
			if w > 0 {
				s.wsocks++
			}
		}
	}
	return s
}

// skmemField reads one field of ss's skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0).
func skmemField(skmem, name string) int64 {
	skmem, _, _ = strings.Cut(skmem, ")")
	for _, f := range strings.Split(skmem, ",") {
		if v, ok := strings.CutPrefix(f, name); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return n
			}
		}
	}
	return 0
}

// tcpMemGuard is 80% of the kernel's TCP memory pressure mark, in pages.
func tcpMemGuard(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_mem")
	if err != nil {
		t.Skipf("tcp_mem: %v", err)
	}
	f := strings.Fields(string(b))
	pressure, _ := strconv.ParseInt(f[1], 10, 64)
	return pressure * 8 / 10
}
