package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatd/chatd/gateway"
)

// pacedNotice starts the one notice a client gets when its lines are paced.
const pacedNotice = "you are sending faster than "

// pastedLines is a paste of n numbered lines, as a stack trace would be.
func pastedLines(n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("at main.handle(main.go:%d) frame %d", 100+i, i)
	}
	return lines
}

// A paste of 30 lines at the default limits is paced, not dropped: it
// reaches the room whole and in order, the sender stays connected and is
// told once that its lines are paced.
func TestPasteArrivesWhole(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	bob := join(t, addr, "bob")
	carol := join(t, addr, "carol")
	bob.Expect("carol joined!")

	paste := pastedLines(30)
	var want []string
	for _, l := range paste {
		want = append(want, "carol: "+l)
	}
	start := time.Now()
	carol.Send(strings.Join(paste, "\n") + "\n")
	// 10 lines of burst, then 20 at 5 lines/s: about 4 s.
	bob.ExpectInOrder(3*waitFor, want)
	t.Logf("a paste of 30 lines reached bob in %v", time.Since(start).Round(time.Millisecond))

	var own, notices []string
	for len(own) < len(want) {
		l, err := carol.Line()
		if err != nil {
			t.Fatalf("carol: %v after %q", err, carol.Seen)
		}
		switch {
		case strings.HasPrefix(l, "*** "):
			notices = append(notices, l)
		case strings.HasPrefix(l, "ERROR "):
			t.Fatalf("carol got %q", l)
		default:
			own = append(own, l)
		}
	}
	if !slices.Equal(own, want) {
		t.Errorf("carol's own lines: %q", own)
	}
	// Still connected: a line after the paste goes through, with no
	// further notice.
	for _, l := range carol.Sync() {
		if strings.HasPrefix(l, "*** ") || strings.HasPrefix(l, "ERROR ") {
			notices = append(notices, l)
		}
	}
	if len(notices) != 1 || !strings.HasPrefix(notices[0], "*** "+pacedNotice+"5 lines/s") {
		t.Errorf("carol's notices: %q, want one saying her lines are paced", notices)
	}
	bob.ExpectPrefix("carol: sync-")
}

// A 100-line paste arrives whole, in order, in its paced time.
func TestPasteHundredLines(t *testing.T) {
	m := mustRunMain(t, "--rate", "50")
	addr := m.ChatAddr().String()
	bob := join(t, addr, "bob")
	carol := join(t, addr, "carol")
	bob.Expect("carol joined!")
	paste := pastedLines(100)
	var want []string
	for _, l := range paste {
		want = append(want, "carol: "+l)
	}
	start := time.Now()
	carol.Send(strings.Join(paste, "\n") + "\n")
	bob.ExpectInOrder(waitFor, want)
	took := time.Since(start)
	t.Logf("a paste of 100 lines at --rate 50 --burst 10 reached bob in %v (paced time 1.8 s)", took.Round(time.Millisecond))
	carol.Expect("carol: " + paste[99])
	carol.Sync()
}

// A paste of binary garbage is sanitized like any line: what reaches the
// room is plain text, and the sender stays connected.
func TestPasteBinaryGarbage(t *testing.T) {
	m := mustRunMain(t)
	addr := m.ChatAddr().String()
	bob := join(t, addr, "bob")
	eve := join(t, addr, "eve")
	bob.Expect("eve joined!")

	r := rand.New(rand.NewPCG(1, 2))
	var paste []byte
	for range 20 {
		// Any byte but IAC (255): a Telnet negotiation may swallow a
		// line end (docs/protocol.md, "Telnet").
		for range 60 {
			paste = append(paste, byte(r.IntN(255)))
		}
		paste = append(paste, "\x1b[2J\x1b]0;pwned\x07\xc3\x28\n"...)
	}
	eve.Send(string(paste))
	eve.Sync()
	bob.ExpectPrefix("eve: sync-")
	for _, l := range bob.Seen {
		text, ok := strings.CutPrefix(l, "eve: ")
		if !ok {
			continue
		}
		if !gateway.CleanText(text) {
			t.Errorf("bob got an unsanitized line from eve: %q", l)
		}
	}
	if n := count(bob.Seen, "eve left!"); n != 0 {
		t.Errorf("eve was disconnected: %q", bob.Seen)
	}
}

// A client that pastes without end is paced, then disconnected with a
// reason once it has been paced without a break for --flood-timeout. What
// reached the room before is in order, nothing dropped.
func TestPasteWithoutEnd(t *testing.T) {
	m := mustRunMain(t, "--rate", "20", "--burst", "10", "--flood-timeout", "1s")
	addr := m.ChatAddr().String()
	bob := join(t, addr, "bob")
	flooder := join(t, addr, "flooder")
	bob.Expect("flooder joined!")

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // sends until the server closes
		defer wg.Done()
		var b strings.Builder
		for i := 0; ; i++ {
			b.Reset()
			for j := range 100 {
				fmt.Fprintf(&b, "%d\n", i*100+j)
			}
			flooder.Conn.SetWriteDeadline(time.Now().Add(waitFor))
			if _, err := io.WriteString(flooder.Conn, b.String()); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	got := flooder.ExpectClosed()
	took := time.Since(start)
	wg.Wait()
	// One notice per run of paced lines, at most one per --flood-timeout:
	// a loaded machine may stall the flooder long enough to end a run.
	if n := strings.Count(got, "*** "+pacedNotice); n < 1 || n > int(took/time.Second)+1 {
		t.Errorf("flooder got %d pacing notices in %v", n, took)
	}
	if !strings.Contains(got, "\nERROR flood: you kept sending faster than 20 lines/s for 1s, disconnected\n") {
		t.Errorf("flooder got no reason before the close: ...%q", got[max(0, len(got)-300):])
	}
	if took < time.Second {
		t.Errorf("flooder disconnected after %v, before --flood-timeout", took)
	}
	t.Logf("flooder disconnected after %v", took.Round(time.Millisecond))

	// Bob got the flooder's lines in order, none missing, then its departure.
	next := 0
	for {
		l, err := bob.Line()
		if err != nil {
			t.Fatalf("bob: %v", err)
		}
		if l == "flooder left!" {
			break
		}
		n, err := strconv.Atoi(strings.TrimPrefix(l, "flooder: "))
		if err != nil || n != next {
			t.Fatalf("bob got %q, want flooder: %d", l, next)
		}
		next++
	}
	if next < 30 {
		t.Errorf("bob got %d lines of the flood, want the burst and a second of paced lines", next)
	}
	t.Logf("bob got lines 0..%d of the flood, in order", next-1)
	bob.Sync()
}

// WebSocket messages over the rate are paced like TCP lines: all arrive
// in order, with one notice; a WebSocket client that never stops is
// closed with 1008 "flood" and an error first.
func TestWebSocketPaste(t *testing.T) {
	// 27 lines over the burst take 1.35 s, within --flood-timeout.
	m := mustRunMain(t, "--rate", "20", "--burst", "3", "--flood-timeout", "2s")
	nc := join(t, m.ChatAddr().String(), "ncuser")
	web := wsJoin(t, m, "web")
	nc.Expect("web joined!")
	var want []string
	for i := range 30 {
		web.line(fmt.Sprintf("paste %d", i))
		want = append(want, fmt.Sprintf("web: paste %d", i))
	}
	nc.ExpectInOrder(waitFor, want)
	skipped := web.expectEvent("say", "web", "paste 29")
	skipped = append(skipped, web.sync()...)
	var notices []string
	for _, msg := range skipped {
		switch msg.Type {
		case "notice":
			notices = append(notices, msg.Text)
		case "error":
			t.Errorf("web got %v", msg)
		}
	}
	if len(notices) != 1 || !strings.HasPrefix(notices[0], pacedNotice+"20 lines/s") {
		t.Errorf("web's notices: %q, want one saying its lines are paced", notices)
	}

	flooder := wsJoin(t, m, "wsflooder")
	nc.Expect("wsflooder joined!")
	done := make(chan struct{})
	go func() {
		defer close(done)
		msg := []byte(`{"type":"line","text":"flood"}`)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			err := flooder.c.Write(ctx, websocket.MessageText, msg)
			cancel()
			if err != nil {
				return
			}
		}
	}()
	msgs, code, reason := flooder.expectClosed()
	<-done
	var errs []string
	for _, msg := range msgs {
		if msg.Type == "error" {
			errs = append(errs, msg.Code+": "+msg.Text)
		}
	}
	if len(errs) != 1 || errs[0] != "flood: flood: you kept sending faster than 20 lines/s for 2s, disconnected" ||
		code != websocket.StatusPolicyViolation || reason != "flood" {
		t.Errorf("flooder got errors %q, close %d %q", errs, code, reason)
	}
	nc.Expect("wsflooder left!")
}

// IRC lines over the rate are paced too, with one NOTICE.
func TestIRCPaste(t *testing.T) {
	// Registration and JOIN are 5 lines: within the burst; the 24 paced
	// lines take 1.2 s, within --flood-timeout.
	m := mustRunMain(t, "--irc", "127.0.0.1:0", "--rate", "20", "--burst", "6", "--flood-timeout", "2s")
	nc := join(t, m.ChatAddr().String(), "ncuser")
	c := ircRegister(t, m, "ircuser")
	c.sendf("JOIN #lobby")
	nc.Expect("ircuser joined!")
	c.ExpectFunc("end of NAMES", func(s string) bool { return strings.Contains(s, " 366 ") })
	var b strings.Builder
	var want []string
	for i := range 30 {
		fmt.Fprintf(&b, "PRIVMSG #lobby :paste %d\r\n", i)
		want = append(want, fmt.Sprintf("ircuser: paste %d", i))
	}
	c.Send(b.String())
	nc.ExpectInOrder(waitFor, want)
	c.sendf("PING :after")
	skipped := c.expectLine(":chatd PONG chatd :after")
	notices := 0
	for _, l := range skipped {
		if strings.Contains(l, " NOTICE ircuser :"+pacedNotice+"20 lines/s") {
			notices++
		}
	}
	if notices != 1 {
		t.Errorf("ircuser got %d pacing notices: %q", notices, skipped)
	}

	// A paste without end: a NOTICE with the reason, then the close.
	done := make(chan struct{})
	go func() {
		defer close(done)
		batch := strings.Repeat("PRIVMSG #lobby :flood\r\n", 100)
		for {
			c.Conn.SetWriteDeadline(time.Now().Add(waitFor))
			if _, err := io.WriteString(c.Conn, batch); err != nil {
				return
			}
		}
	}()
	got := c.ExpectClosed()
	<-done
	if !strings.Contains(got, " NOTICE ircuser :flood: you kept sending faster than 20 lines/s for 2s, disconnected\r\n") ||
		!strings.HasSuffix(got, "ERROR :Closing link: Excess flood\r\n") {
		t.Errorf("ircuser's last lines: ...%q", got[max(0, len(got)-300):])
	}
	nc.Expect("ircuser left!")
}
