package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func startTestRef(t *testing.T) *refServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newRefServer(ln)
	t.Cleanup(s.close)
	return s
}

type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func rawDial(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) expect(want string) {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("waiting for %q: %v", want, err)
		}
		if strings.TrimSuffix(line, "\n") == want {
			return
		}
	}
}

func (c *rawClient) name(nick string) {
	c.t.Helper()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c.r, buf); err != nil || string(buf) != "NAME" {
		c.t.Fatalf("want NAME alone, got %q, %v", buf, err)
	}
	c.send(nick + "\r\n")
	c.expect("Connected to server!")
	c.expect(nick + " joined!")
}

// The reference speaks the classic protocol on a raw socket: NAME, then
// "nick: text" to the whole room, sender included, rooms, notices.
func TestRefRawSocket(t *testing.T) {
	s := startTestRef(t)
	alice := rawDial(t, s.addr())
	alice.name("alice")
	bob := rawDial(t, s.addr())
	bob.name("bob")
	alice.expect("bob joined!")

	bob.send("hello there\n")
	alice.expect("bob: hello there")
	bob.expect("bob: hello there")

	// A taken nickname gets an ERROR and NAME again.
	c := rawDial(t, s.addr())
	buf := make([]byte, 4)
	io.ReadFull(c.r, buf)
	c.send("ALICE\n")
	c.expect("ERROR nickname ALICE is taken, choose another")
	io.ReadFull(c.r, buf)
	if string(buf) != "NAME" {
		t.Fatalf("want NAME again, got %q", buf)
	}
	c.send("carol\n")
	c.expect("carol joined!")
	alice.expect("carol joined!")

	// /join moves rooms: the old room hears "left!", the new one "joined!".
	carol := c
	carol.send("/join other\n")
	carol.expect("carol joined!")
	alice.expect("carol left!")
	alice.send("lobby only\n")
	bob.expect("alice: lobby only")
	carol.send("other only\n")
	carol.expect("carol: other only")

	// A departure is announced once.
	bob.conn.Close()
	alice.expect("bob left!")
}

// A client that never reads is dropped once its queue passes the limit, and
// the others go on.
func TestRefSlowConsumer(t *testing.T) {
	s := startTestRef(t)
	slow := rawDial(t, s.addr())
	slow.conn.(*net.TCPConn).SetReadBuffer(1024)
	slow.name("slow")
	fast := rawDial(t, s.addr())
	fast.name("fast")
	line := strings.Repeat("x", 1000)
	const n = 8000 // 8 MB: more than the slow client's socket buffers and queue
	batch := strings.Repeat(line+"\n", 100)
	for range n / 100 { // in steps the fast client's own queue can hold
		fast.send(batch)
		for range 100 {
			fast.expect("fast: " + line)
		}
	}
	s.mu.RLock()
	members := len(s.rooms[refDefaultRoom].members)
	s.mu.RUnlock()
	if members != 1 {
		t.Errorf("%d members left; want the slow one dropped", members)
	}
}

// A short fan-out and latency run against the in-process reference prints
// one JSON line with no loss.
func TestScenariosAgainstRef(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load for a few seconds")
	}
	for _, args := range [][]string{
		{"fanout", "--ref", "inproc", "--conns", "20", "--senders", "4", "--duration", "1s", "--warmup", "200ms", "-q"},
		{"latency", "--ref", "inproc", "--conns", "20", "--senders", "4", "--rate", "200", "--duration", "1s", "--warmup", "200ms", "-q"},
		{"churn", "--ref", "inproc", "--conns", "10", "--senders", "2", "--rate", "100", "--churn-rate", "50", "--duration", "1s", "--warmup", "0s", "-q"},
		{"idle", "--ref", "inproc", "--conns", "30", "--room-size", "10", "--sources", "2", "--settle", "100ms", "--hold", "200ms", "-q"},
	} {
		t.Run(args[0], func(t *testing.T) {
			var out bytes.Buffer
			if err := runScenario(t.Context(), args[0], args[1:], &out); err != nil {
				t.Fatal(err)
			}
			if bytes.Count(out.Bytes(), []byte("\n")) != 1 {
				t.Fatalf("want one line, got %q", out.String())
			}
			var s struct {
				Scenario string            `json:"scenario"`
				OK       bool              `json:"ok"`
				Problems []string          `json:"problems"`
				Runs     []json.RawMessage `json:"runs"`
			}
			if err := json.Unmarshal(out.Bytes(), &s); err != nil {
				t.Fatal(err)
			}
			if s.Scenario != args[0] || !s.OK || len(s.Runs) != 1 {
				t.Fatalf("summary: %s", out.String())
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
