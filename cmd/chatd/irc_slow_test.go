package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// An IRC client that never reads is disconnected when its queue overflows,
// as a classic one is: its connection is closed, the room hears it quit as
// a slow consumer, an IRC reader and an nc reader in the room get every
// line in order, and a new client can join afterwards.
func TestIRCSlowConsumer(t *testing.T) {
	m := mustRunMain(t, "--irc", "127.0.0.1:0", "--max-pending", "262144", "--rate", "1000000", "--burst", "1000000")
	talker := join(t, m.ChatAddr().String(), "talker")
	tcpReader := join(t, m.ChatAddr().String(), "tcpreader")
	ircReader := ircRegister(t, m, "ircreader")
	ircReader.sendf("JOIN #lobby")
	ircReader.expectLine(":chatd 366 ircreader #lobby :End of /NAMES list")
	slow := ircRegister(t, m, "slow")
	slow.Conn.(*net.TCPConn).SetReadBuffer(4096)
	slow.sendf("JOIN #lobby")
	slow.expectLine(":chatd 366 slow #lobby :End of /NAMES list")
	talker.Expect("slow joined!")
	tcpReader.Expect("slow joined!")
	ircReader.expectUntagged(":slow!slow@chatd JOIN #lobby")

	// 5,000 lines of 400 bytes (one IRC line each) are more than the slow
	// client's socket buffers and its 256 KiB queue hold. The talker stays
	// within a window of the slower reader, so that on a loaded machine
	// only the client that never reads falls 256 KiB behind.
	const n, window = 5000, 32
	line := strings.Repeat("z", 400)
	var tcpRead, ircRead atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	talker.Conn.SetDeadline(time.Time{}) // the run may take a while under -race
	go io.Copy(io.Discard, talker.Conn)
	go func() {
		for i := range n {
			for int64(i)-min(tcpRead.Load(), ircRead.Load()) > window {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
			if _, err := fmt.Fprintf(talker.Conn, "%d %s\n", i, line); err != nil {
				return
			}
		}
	}()

	done := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(tcpReader.Conn, 64<<10)
		for i := 0; i < n; {
			tcpReader.Conn.SetReadDeadline(time.Now().Add(3 * waitFor))
			s, err := r.ReadString('\n')
			if err != nil {
				done <- fmt.Errorf("nc reader: %v after line %d", err, i)
				return
			}
			if s = strings.TrimSuffix(s, "\n"); strings.HasPrefix(s, "talker: ") {
				if want := fmt.Sprintf("talker: %d %s", i, line); s != want {
					done <- fmt.Errorf("nc reader: line %d is %.40q", i, s)
					return
				}
				i++
				tcpRead.Store(int64(i))
			}
		}
		done <- nil
	}()

	sawQuit := false
	r := bufio.NewReaderSize(ircReader.Conn, 64<<10)
	for i := 0; i < n; {
		ircReader.Conn.SetReadDeadline(time.Now().Add(3 * waitFor))
		s, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("IRC reader: %v after line %d", err, i)
		}
		switch s = strings.TrimSuffix(s, "\r\n"); {
		case s == ":slow!slow@chatd QUIT :Slow consumer":
			sawQuit = true
		case strings.HasPrefix(s, ":talker!"):
			if want := fmt.Sprintf(":talker!talker@chatd PRIVMSG #lobby :%d %s", i, line); s != want {
				t.Fatalf("IRC reader: line %d is %.60q", i, s)
			}
			i++
			ircRead.Store(int64(i))
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !sawQuit {
		ircReader.R = r
		ircReader.expectLine(":slow!slow@chatd QUIT :Slow consumer")
	}
	waitSessions(t, m, 3)

	// The slow client's connection was closed: what it finds in its
	// socket ends, rather than waiting for more.
	slow.Conn.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.Copy(io.Discard, slow.Conn); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the slow client's connection is still open: %v", err)
	}
	fresh := ircRegister(t, m, "fresh")
	fresh.sendf("JOIN #lobby")
	fresh.expectLine(":chatd 366 fresh #lobby :End of /NAMES list")
}
