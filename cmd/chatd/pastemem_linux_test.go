package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// What 100 clients pasting without end cost a chatd process while they are
// paced: its RSS grows by a bounded amount per client, since a paced
// session reads nothing more until its budget refills and the rest waits in
// the kernel's socket buffers. Half are TCP, half WebSocket, all in one
// room. The figure is logged; the bound asserted is loose.
func TestPacedFloodersMemory(t *testing.T) {
	const n = 100
	// A low rate keeps the lines the gateway publishes few (100 a second in
	// all); pacing works the same at any rate.
	cmd := exec.Command(chatdBinary(t), "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--irc", "",
		"--data", t.TempDir(), "--history", "0", "--log-level", "warn", "--max-conns-per-ip", "1000",
		"--rate", "1", "--burst", "2")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &testLog{t: t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var chat, web string
	ncRE := regexp.MustCompile(`nc (127\.0\.0\.1) (\d+)`)
	webRE := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`)
	sc := bufio.NewScanner(stdout)
	for (chat == "" || web == "") && sc.Scan() {
		if m := ncRE.FindStringSubmatch(sc.Text()); m != nil {
			chat = m[1] + ":" + m[2]
		}
		if m := webRE.FindStringSubmatch(sc.Text()); m != nil {
			web = "ws://" + m[1] + "/ws"
		}
	}
	if chat == "" || web == "" {
		t.Fatalf("chatd printed no addresses (nc %q, web %q)", chat, web)
	}
	go io.Copy(io.Discard, stdout)

	tcps := make([]*client, 0, n/2)
	wss := make([]*wsClient, 0, n/2)
	for i := range n {
		nick := fmt.Sprintf("flooder%d", i)
		if i%2 == 0 {
			tcps = append(tcps, join(t, chat, nick))
		} else {
			wss = append(wss, wsJoinURL(t, web, nick))
		}
	}
	joined := rssOf(t, cmd.Process.Pid)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	batch := strings.Repeat("a pasted line of a stack trace, as long as one usually is\n", 100)
	for _, c := range tcps {
		wg.Add(2)
		go func() { defer wg.Done(); io.Copy(io.Discard, c.Conn) }()
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c.Conn.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
				io.WriteString(c.Conn, batch) // blocks once the server stops reading
			}
		}()
	}
	msg := []byte(`{"type":"line","text":"a pasted line of a stack trace, as long as one usually is"}`)
	for _, c := range wss {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := c.c.Read(context.Background()); err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for {
				ctx, cancel := context.WithTimeout(context.Background(), waitFor)
				err := c.c.Write(ctx, websocket.MessageText, msg)
				cancel()
				if err != nil {
					return
				}
			}
		}()
	}
	// Sample for a few seconds: every flooder spends its burst at once and
	// is paced from then on, its socket buffers full.
	peak, kernel := joined, int64(-1)
	for range 20 {
		time.Sleep(200 * time.Millisecond)
		peak = max(peak, rssOf(t, cmd.Process.Pid))
		kernel = max(kernel, recvQueued(chat, web))
	}
	growth := peak - joined
	t.Logf("figure: %d paced flooders (TCP and WebSocket) for 4 s: chatd RSS %.1f MiB joined, %.1f MiB peak while flooding: %+.1f MiB, %+.1f KiB per flooder",
		n, mb(joined), mb(peak), mb(growth), float64(growth)/1024/n)
	if kernel >= 0 {
		t.Logf("figure: what the paced flooders' lines hold in chatd's kernel receive buffers at the peak (ss skmem r): %.1f MiB, %.1f KiB per flooder",
			mb(kernel), float64(kernel)/1024/n)
	}
	if growth > n*256<<10 {
		t.Errorf("RSS grew by %.1f MiB for %d paced flooders: more than 256 KiB each", mb(growth), n)
	}
	close(stop)
	for _, c := range tcps {
		c.Conn.Close()
	}
	for _, c := range wss {
		c.c.CloseNow()
	}
	wg.Wait()
}

// recvQueued is the sum of the receive queues (ss's skmem r) of the server
// side of the connections to the chat and web addresses, or -1 without ss.
func recvQueued(chat, web string) int64 {
	_, chatPort, _ := net.SplitHostPort(chat)
	_, webPort, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(web, "ws://"), "/ws"))
	out, err := exec.Command("ss", "-tmnH", "state", "established", "( sport = :"+chatPort+" or sport = :"+webPort+" )").Output()
	if err != nil {
		return -1
	}
	var sum int64
	for _, l := range strings.Split(string(out), "\n") {
		if i := strings.Index(l, "skmem:("); i >= 0 {
			sum += skmemField(l[i+7:], "r")
		}
	}
	return sum
}

// rssOf is a process's resident set size, in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
