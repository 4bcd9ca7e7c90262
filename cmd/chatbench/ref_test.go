package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chatd/internal/testkit"
)

func startTestRef(t *testing.T, kind string) reference {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newReference(kind, ln)
	t.Cleanup(s.close)
	return s
}

// eachRef runs f against both reference kinds.
func eachRef(t *testing.T, f func(t *testing.T, s reference)) {
	for _, kind := range []string{"strong", "simple"} {
		t.Run(kind, func(t *testing.T) { f(t, startTestRef(t, kind)) })
	}
}

// refJoin connects to a reference and joins as nick (refHandshake).
func refJoin(t *testing.T, addr, nick string) *testkit.Client {
	t.Helper()
	c := testkit.Dial(t, addr)
	refHandshake(c, nick)
	return c
}

// refHandshake joins as nick, its nickname line ending in CRLF.
func refHandshake(c *testkit.Client, nick string) {
	c.T.Helper()
	c.ExpectName()
	c.Send(nick + "\r\n")
	c.Nick = nick
	c.Expect("Connected to server!")
	c.Expect(nick + " joined!")
}

// The reference speaks the classic protocol on a raw socket: NAME, then
// "nick: text" to the whole room, sender included, rooms, notices.
func TestRefRawSocket(t *testing.T) { eachRef(t, testRefRawSocket) }

func testRefRawSocket(t *testing.T, s reference) {
	alice := refJoin(t, s.addr(), "alice")
	bob := refJoin(t, s.addr(), "bob")
	alice.Expect("bob joined!")

	bob.Send("hello there\n")
	alice.Expect("bob: hello there")
	bob.Expect("bob: hello there")

	// A taken nickname gets an ERROR and NAME again.
	c := testkit.Dial(t, s.addr())
	buf := make([]byte, 4)
	io.ReadFull(c.R, buf)
	c.Send("ALICE\n")
	c.Expect("ERROR nickname ALICE is taken, choose another")
	io.ReadFull(c.R, buf)
	if string(buf) != "NAME" {
		t.Fatalf("want NAME again, got %q", buf)
	}
	c.Send("carol\n")
	c.Expect("carol joined!")
	alice.Expect("carol joined!")

	// /join moves rooms: the old room hears "left!", the new one "joined!".
	carol := c
	carol.Send("/join other\n")
	carol.Expect("carol joined!")
	alice.Expect("carol left!")
	alice.Send("lobby only\n")
	bob.Expect("alice: lobby only")
	carol.Send("other only\n")
	carol.Expect("carol: other only")

	// A departure is announced once.
	bob.Conn.Close()
	alice.Expect("bob left!")
}

// A client that never reads is dropped once its queue passes the limit, and
// the others go on.
func TestRefSlowConsumer(t *testing.T) { eachRef(t, testRefSlowConsumer) }

func testRefSlowConsumer(t *testing.T, s reference) {
	slow := testkit.Dial(t, s.addr())
	slow.Conn.(*net.TCPConn).SetReadBuffer(1024)
	refHandshake(slow, "slow")
	fast := refJoin(t, s.addr(), "fast")
	line := strings.Repeat("x", 1000)
	const n = 8000 // 8 MB: more than the slow client's socket buffers and queue
	batch := strings.Repeat(line+"\n", 100)
	for range n / 100 { // in steps the fast client's own queue can hold
		fast.Send(batch)
		for range 100 {
			fast.Expect("fast: " + line)
		}
	}
	if members := s.members(refDefaultRoom); members != 1 {
		t.Errorf("%d members left; want the slow one dropped", members)
	}
}

// Whatever way a sender's bytes are cut into reads, every line reaches every
// member once, in order, framed as "nick: text": lines split across writes,
// many lines in one write, CRLF, blank lines, a line too long (dropped), and
// a /join in the middle of a batch (the lines before it go to the old room,
// the lines after to the new one).
func TestRefBatches(t *testing.T) { eachRef(t, testRefBatches) }

func testRefBatches(t *testing.T, s reference) {
	alice := refJoin(t, s.addr(), "alice")
	bob := refJoin(t, s.addr(), "bob")
	alice.Expect("bob joined!")
	carol := refJoin(t, s.addr(), "carol")
	carol.Send("/join side\n")
	carol.Expect("carol joined!")
	alice.Expect("carol joined!")
	alice.Expect("carol left!")

	// A line in pieces, one byte a write.
	for _, b := range []byte("in pieces\r\n") {
		alice.Send(string(b))
		time.Sleep(time.Millisecond)
	}
	bob.Expect("alice: in pieces")

	// Many lines in one write, a long line among them, then a /join mid-batch.
	var batch strings.Builder
	const n = 3000
	for i := range n {
		fmt.Fprintf(&batch, "line %d\n", i)
		if i == 1000 {
			batch.WriteString(strings.Repeat("y", 6000) + "\n\n   \r\n")
		}
	}
	batch.WriteString("/join side\nafter the join\npart")
	alice.Send(batch.String())
	alice.Send("ial\n")
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("alice: line %d", i))
	}
	bob.ExpectInOrder(testkit.WaitFor, append(want, "alice left!"))
	carol.ExpectInOrder(testkit.WaitFor, []string{"alice joined!", "alice: after the join", "alice: partial"})
	alice.Expect("alice: partial")
}

// A short run of every scenario against both in-process references and a
// third server (here the simple reference again, standing for chatd) prints
// one JSON line with no loss, three runs, the ratios to the strong reference
// and to the simple one.
func TestScenariosAgainstRef(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load for a few seconds")
	}
	measured := startTestRef(t, "simple")
	for _, args := range [][]string{
		{"fanout", "--ref", "inproc", "--conns", "20", "--senders", "4", "--duration", "1s", "--warmup", "200ms", "-q"},
		{"latency", "--ref", "inproc", "--conns", "20", "--senders", "4", "--rate", "200", "--duration", "1s", "--warmup", "200ms", "-q"},
		{"churn", "--ref", "inproc", "--conns", "10", "--senders", "2", "--rate", "100", "--churn-rate", "50", "--duration", "1s", "--warmup", "0s", "-q"},
		{"idle", "--ref", "inproc", "--conns", "30", "--room-size", "10", "--sources", "2", "--settle", "100ms", "--hold", "200ms", "-q"},
	} {
		t.Run(args[0], func(t *testing.T) {
			var out bytes.Buffer
			args = append(args, "--addr", measured.addr(), "--ref-kind", "both")
			if err := runScenario(t.Context(), args[0], args[1:], &out); err != nil {
				t.Fatal(err)
			}
			if bytes.Count(out.Bytes(), []byte("\n")) != 1 {
				t.Fatalf("want one line, got %q", out.String())
			}
			var s struct {
				Scenario string                        `json:"scenario"`
				OK       bool                          `json:"ok"`
				Problems []string                      `json:"problems"`
				Runs     []json.RawMessage             `json:"runs"`
				Ratio    map[string]float64            `json:"ratio_to_reference"`
				RatioTo  map[string]map[string]float64 `json:"ratio_to"`
			}
			if err := json.Unmarshal(out.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			if s.Scenario != args[0] || !s.OK || len(s.Runs) != 3 {
				t.Fatalf("summary: %s", out.String())
			}
			if s.Ratio["handshakes_per_s"] <= 0 || s.RatioTo["reference-simple"]["handshakes_per_s"] <= 0 {
				t.Fatalf("ratios missing: %s", out.String())
			}
			var r struct {
				Lost      int64 `json:"lost"`
				Received  int64 `json:"deliveries_received"`
				Connected int64 `json:"connected"`
				Latency   latencySummary
			}
			json.Unmarshal(s.Runs[0], &r)
			if args[0] != "idle" && r.Received == 0 {
				t.Errorf("nothing received: %s", s.Runs[0])
			}
			if args[0] == "idle" && r.Connected != 30 {
				t.Errorf("idle: %s", s.Runs[0])
			}
		})
	}
}

// chatbench measures ngIRCd over IRC in the same run: ngIRCd does not echo a
// sender's lines, so the last client acknowledges them and nobody expects
// their own; nothing is counted lost. Skipped where ngIRCd is not installed.
func TestNgIRCdTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load for a few seconds")
	}
	bin, err := exec.LookPath("ngircd")
	if err != nil {
		bin = "/usr/sbin/ngircd"
		if _, err := os.Stat(bin); err != nil {
			t.Skip("ngircd is not installed")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "ngircd.conf")
	if err := os.WriteFile(conf, []byte(ngircdConf("127.0.0.1", port)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--nodaemon", "--config", conf)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ngircd did not listen: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, args := range [][]string{
		{"fanout", "--conns", "10", "--senders", "3", "--duration", "1s", "--warmup", "200ms"},
		{"latency", "--conns", "10", "--senders", "3", "--rate", "200", "--duration", "1s", "--warmup", "200ms"},
	} {
		t.Run(args[0], func(t *testing.T) {
			var out bytes.Buffer
			args = append(args, "--ref", "off", "--ngircd", addr, "--ngircd-pid", strconv.Itoa(cmd.Process.Pid), "-q")
			if err := runScenario(t.Context(), args[0], args[1:], &out); err != nil {
				t.Fatal(err)
			}
			var s struct {
				OK   bool `json:"ok"`
				Runs []struct {
					Name     string `json:"name"`
					Expected int64  `json:"deliveries_expected"`
					Received int64  `json:"deliveries_received"`
					Lost     int64  `json:"lost"`
				} `json:"runs"`
			}
			if err := json.Unmarshal(out.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			if !s.OK || len(s.Runs) != 1 || s.Runs[0].Name != "ngircd" || s.Runs[0].Received == 0 ||
				s.Runs[0].Lost != 0 || s.Runs[0].Received != s.Runs[0].Expected {
				t.Fatalf("summary: %s", out.String())
			}
		})
	}
}
