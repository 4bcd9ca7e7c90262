//go:build reliability

package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The fault harness: users on several gateways each send numbered lines
// ("seq 17") at a steady rate while a fault is injected and healed. Every
// line a user reads is recorded with its time and connection, so that
// afterwards each line can be classified:
//
//   - told sent: the sender read its own line back (it came through NATS);
//   - refused: the sender got `ERROR your line was not sent`;
//   - unconfirmed: neither (the connection died with the line in flight).
//
// At each receiver a line told sent and never read is lost, unless the
// receiver was told it could not hear it: between the neighbouring lines
// of that sender it read `*** the chat link is down`, or its connection
// ended (it then reconnected). Duplicates and per-sender order are counted
// at every receiver, and the room's `joined!`/`left!` lines about each
// user must alternate (a departure is announced once).

const (
	faultLinkDown = "*** the chat link is down"
	faultRefused  = "ERROR your line was not sent"
	faultShutdown = "*** server shutting down"
)

// faultRead is one line a user read.
type faultRead struct {
	at   time.Time
	conn int    // which of the user's connections read it (1, 2, ...)
	line string // "" marks the end of connection conn
}

// faultUser is a chat user sending numbered lines at a steady rate. When
// its connection ends it reconnects with the same nickname, trying its
// gateways in turn. It is built on the test kit's line client (client),
// one per connection, read on a goroutine of its own.
type faultUser struct {
	t        testing.TB
	nick     string
	addrs    []string // gateways, its home first
	interval time.Duration

	mu      sync.Mutex
	c       *client // the current connection
	connN   int
	gw      int // index in addrs of the current connection
	reads   []faultRead
	sent    map[int]time.Time // line number → when written
	next    int
	closed  bool // the current connection ended
	stopped bool
	rejoins []time.Duration // time from a connection's end to the next one's welcome

	// resume: the user speaks chatd's " +resume" extension: it keeps its
	// position and resumes from it when it reconnects (resume.go).
	resume bool
	pos    faultPos

	started  bool
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

func newFaultUser(t testing.TB, nick string, interval time.Duration, addrs ...string) *faultUser {
	u := &faultUser{t: t, nick: nick, addrs: addrs, interval: interval, sent: map[int]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() {
		u.halt()
		u.mu.Lock()
		u.stopped = true
		if u.c != nil {
			u.c.Conn.Close()
		}
		started := u.started
		u.mu.Unlock()
		if started {
			<-u.done
		}
	})
	return u
}

// halt stops the sender; it is safe to call more than once.
func (u *faultUser) halt() { u.stopOnce.Do(func() { close(u.stop) }) }

// start starts the sender.
func (u *faultUser) start() {
	u.mu.Lock()
	u.started = true
	u.mu.Unlock()
	go u.run()
}

// connect joins as u.nick on one of u's gateways, starting with the
// current one, retrying until it is accepted or limit passes.
func (u *faultUser) connect(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if u.isStopped() {
			return fmt.Errorf("%s: stopped", u.nick)
		}
		u.mu.Lock()
		gw := u.gw
		line := u.nick
		if u.resume {
			line += " +resume"
			if tok := u.pos.token(); tok != "" {
				line += "=" + tok
			}
		}
		u.mu.Unlock()
		c, _, err := tryJoin(u.t, u.addrs[gw], line, 5*time.Second)
		if err == nil {
			u.mu.Lock()
			u.c, u.connN, u.closed = c, u.connN+1, false
			n := u.connN
			u.mu.Unlock()
			go u.read(c, n)
			return nil
		}
		last = err
		u.mu.Lock()
		u.gw = (u.gw + 1) % len(u.addrs) // try the next gateway
		u.mu.Unlock()
		time.Sleep(200 * time.Millisecond) // pace the retries
	}
	return fmt.Errorf("%s: no gateway accepted it within %v: %v", u.nick, limit, last)
}

func (u *faultUser) read(c *client, n int) {
	missed := false // in the replay of missed lines, after a resume
	for {
		line, err := c.ReadLine()
		now := time.Now()
		u.mu.Lock()
		if err != nil {
			u.reads = append(u.reads, faultRead{at: now, conn: n})
			if u.connN == n {
				u.closed = true
			}
			u.mu.Unlock()
			c.Conn.Close()
			return
		}
		if u.resume {
			line = u.pos.take(line)
			switch {
			case strings.HasPrefix(line, "--- ") && strings.Contains(line, " lines you missed in "):
				missed = true
			case line == "--- live ---":
				missed = false
			case missed && len(line) > 8 && line[0] == '[' && line[6] == ']':
				line = line[8:] // "[12:01] bob: seq 4": a missed line counts as read
			}
		}
		u.reads = append(u.reads, faultRead{at: now, conn: n, line: line})
		u.mu.Unlock()
	}
}

func (u *faultUser) isStopped() bool {
	select {
	case <-u.stop:
		return true
	default:
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stopped
}

// run sends a numbered line every interval until stop, reconnecting when
// the connection ends.
func (u *faultUser) run() {
	defer close(u.done)
	tick := time.NewTicker(u.interval)
	defer tick.Stop()
	for {
		select {
		case <-u.stop:
			return
		case <-tick.C:
		}
		u.mu.Lock()
		c, closed := u.c, u.closed
		u.mu.Unlock()
		if closed {
			lost := time.Now()
			u.mu.Lock()
			u.gw = (u.gw + 1) % len(u.addrs) // its gateway went away: try another
			u.mu.Unlock()
			if err := u.connect(2 * time.Minute); err != nil {
				if !u.isStopped() {
					u.t.Errorf("reconnect: %v", err)
				}
				return
			}
			u.mu.Lock()
			u.rejoins = append(u.rejoins, time.Since(lost))
			u.mu.Unlock()
			continue
		}
		u.mu.Lock()
		n := u.next
		u.next++
		u.sent[n] = time.Now()
		u.mu.Unlock()
		c.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := fmt.Fprintf(c.Conn, "seq %d\n", n); err != nil {
			c.Conn.Close() // the reader marks it closed
		}
	}
}

// say sends one line outside the numbered sequence.
func (u *faultUser) say(s string) {
	u.mu.Lock()
	c := u.c
	u.mu.Unlock()
	if c == nil {
		return
	}
	c.Conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c.Conn, "%s\n", s)
}

// snapshot returns a copy of what u has read so far.
func (u *faultUser) snapshot() []faultRead {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]faultRead(nil), u.reads...)
}

// waitLine waits until u has read a line matching match after index from
// of its reads, and returns it with its time.
func (u *faultUser) waitLine(total time.Duration, from int, match func(string) bool) (faultRead, bool) {
	deadline := time.Now().Add(total)
	for {
		reads := u.snapshot()
		for _, r := range reads[min(from, len(reads)):] {
			if r.line != "" && match(r.line) {
				return r, true
			}
		}
		if time.Now().After(deadline) {
			return faultRead{}, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// faultSeq parses "nick: seq N".
func faultSeq(line string) (nick string, n int, ok bool) {
	nick, text, ok := strings.Cut(line, ": ")
	if !ok || strings.ContainsAny(nick, " []*") {
		return "", 0, false
	}
	num, ok := strings.CutPrefix(text, "seq ")
	if !ok {
		return "", 0, false
	}
	n, err := strconv.Atoi(num)
	return nick, n, err == nil
}

// faultPace is how users chat on a cluster a fault table runs on.
type faultPace struct {
	env      string        // "process" or "compose"
	gateways []string      // the gateways' chat addresses
	interval time.Duration // between one user's lines
	per      int           // users per gateway
	lease    time.Duration
	warm     time.Duration // steady chat before a fault
	during   time.Duration // a fault, and the chat after it
}

// faultGroup is the users of one measured fault.
type faultGroup struct {
	t     *testing.T
	env   string // "process" or "compose"
	name  string
	per   int // users per gateway
	users []*faultUser

	// floodExpected: lines held during the fault reach the gateway at once,
	// over --burst: they are paced, and a user whose backlog stays paced
	// past --flood-timeout is disconnected as a flood (a paused gateway).
	floodExpected bool

	// zeroLoss: a receiver that stays connected, or resumes, must read
	// every line told sent: "the chat link is down" excuses nothing, and
	// nor does a resuming user's reconnection.
	zeroLoss bool

	fault time.Time // when the fault was injected
	heal  time.Time // when it was healed (zero: no heal step)
	notes []string
}

// newFaultGroup joins p.per users on each gateway (nicknames
// prefix+letter+gateway), waits until every one has heard the last one
// join, so that everyone is subscribed before the first line is sent,
// and lets them chat for p.warm. With zeroLoss no line may be missed;
// with resume the users speak the resume extension.
func newFaultGroup(t *testing.T, p *faultPace, name, prefix string, zeroLoss, resume bool) *faultGroup {
	g := &faultGroup{t: t, env: p.env, name: name, per: p.per, zeroLoss: zeroLoss}
	for i := range p.gateways {
		for j := range p.per {
			nick := fmt.Sprintf("%s%c%d", prefix, 'a'+j, i+1)
			addrs := append(append([]string(nil), p.gateways[i:]...), p.gateways[:i]...)
			u := newFaultUser(t, nick, p.interval, addrs...)
			u.resume = resume
			if err := u.connect(time.Minute); err != nil {
				t.Fatal(err)
			}
			g.users = append(g.users, u)
		}
	}
	last := g.users[len(g.users)-1].nick + " joined!"
	for _, u := range g.users {
		if _, ok := u.waitLine(30*time.Second, 0, func(s string) bool { return s == last }); !ok {
			t.Fatalf("%s never heard %q", u.nick, last)
		}
	}
	for _, u := range g.users {
		u.start()
	}
	time.Sleep(p.warm) // steady chat before the fault: a duration, not a condition
	return g
}

// on returns the nicknames of the users whose home is gateway gw (from 1).
func (g *faultGroup) on(gw int) []string {
	var out []string
	for _, u := range g.users[(gw-1)*g.per : gw*g.per] {
		out = append(out, u.nick)
	}
	return out
}

// mark records the fault (or heal) time.
func (g *faultGroup) markFault() { g.fault = time.Now() }
func (g *faultGroup) markHeal()  { g.heal = time.Now() }
func (g *faultGroup) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	g.notes = append(g.notes, s)
	g.t.Logf("%s: %s", g.name, s)
}

// echoedSince reports whether every user has had a line echoed that it sent
// after since.
func (g *faultGroup) echoedSince(since time.Time) error {
	for _, u := range g.users {
		if _, ok := u.firstEchoAfter(since); !ok {
			return fmt.Errorf("%s has had no line echoed since %v", u.nick, since.Format("15:04:05.000"))
		}
	}
	return nil
}

// firstEchoAfter returns when u first read back a line it wrote at or
// after since.
func (u *faultUser) firstEchoAfter(since time.Time) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, r := range u.reads {
		nick, n, ok := faultSeq(r.line)
		if ok && nick == u.nick && !u.sent[n].Before(since) {
			return r.at, true
		}
	}
	return time.Time{}, false
}

// waitResumed waits until every user has had a line sent after since
// echoed back.
func (g *faultGroup) waitResumed(total time.Duration, since time.Time) {
	g.t.Helper()
	checkFor(g.t, total, func() error { return g.echoedSince(since) })
}

// finish stops the senders, waits until every receiver has read every
// sender's last echoed line (or a bound passes), reports the figures and
// checks the guarantees. wantLeft lists users whose departure the others
// must have been told about.
func (g *faultGroup) finish(wantLeft ...string) {
	g.t.Helper()
	for _, u := range g.users {
		u.halt()
	}
	for _, u := range g.users {
		<-u.done
	}
	// Drain: every line echoed to its sender reaches every receiver, or
	// the bound passes (and the analysis reports what is missing).
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && g.drainMissing() > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	g.report(wantLeft)
	for _, u := range g.users {
		u.say("/quit")
	}
}

// lastEchoed returns the highest line number u read back, or -1.
func (u *faultUser) lastEchoed() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	last := -1
	for _, r := range u.reads {
		if nick, n, ok := faultSeq(r.line); ok && nick == u.nick && n > last {
			last = n
		}
	}
	return last
}

// drainMissing counts receivers that have not read a sender's last echoed
// line yet.
func (g *faultGroup) drainMissing() int {
	missing := 0
	for _, s := range g.users {
		last := s.lastEchoed()
		if last < 0 {
			continue
		}
		want := fmt.Sprintf("%s: seq %d", s.nick, last)
		for _, r := range g.users {
			if r == s {
				continue
			}
			found := false
			for _, rd := range r.snapshot() {
				if rd.line == want {
					found = true
					break
				}
			}
			if !found {
				missing++
			}
		}
	}
	return missing
}

// faultFigures are the measured figures of one fault.
type faultFigures struct {
	sent, told, refused, unconfirmed int
	deliveredUnconfirmed             int // unconfirmed lines that reached someone
	lost, missedUnlinked             int // told-sent lines missing at a receiver: unexcused, excused
	dups, order                      int
	leftTwice                        int // a second left! for a user without a joined! between
	joinedTwice                      int // a second joined! without a left! between
	leftFirst, leftLast              time.Duration
	leftSeen                         int
	resume, resumeHeal, maxGap       time.Duration
	rejoin                           time.Duration // longest reconnection of a user
	flood                            int
}

func (g *faultGroup) report(wantLeft []string) {
	g.t.Helper()
	var f faultFigures
	var problems []string
	reads := map[string][]faultRead{}
	for _, u := range g.users {
		reads[u.nick] = u.snapshot()
	}
	told := map[string]map[int]bool{}
	for _, s := range g.users {
		told[s.nick] = map[int]bool{}
		s.mu.Lock()
		f.sent += s.next
		for _, d := range s.rejoins {
			f.rejoin = max(f.rejoin, d)
		}
		s.mu.Unlock()
		var lastEcho time.Time
		for _, r := range reads[s.nick] {
			if nick, n, ok := faultSeq(r.line); ok && nick == s.nick {
				told[s.nick][n] = true
				if !lastEcho.IsZero() {
					f.maxGap = max(f.maxGap, r.at.Sub(lastEcho))
				}
				lastEcho = r.at
			}
			if strings.HasPrefix(r.line, faultRefused) {
				f.refused++
			}
			if strings.HasPrefix(r.line, "ERROR flood") {
				f.flood++
			}
		}
		f.told += len(told[s.nick])
		if at, ok := s.firstEchoAfter(g.fault); ok && !g.fault.IsZero() {
			f.resume = max(f.resume, at.Sub(g.fault))
		}
		if at, ok := s.firstEchoAfter(g.heal); ok && !g.heal.IsZero() {
			f.resumeHeal = max(f.resumeHeal, at.Sub(g.heal))
		}
	}
	f.unconfirmed = f.sent - f.told - f.refused

	deliveredUnconfirmed := map[string]bool{}
	for _, r := range g.users {
		rs := reads[r.nick]
		for _, s := range g.users {
			if s == r {
				continue
			}
			// Positions in r's reads of s's numbered lines.
			type pos struct{ i, n int }
			var got []pos
			seen := map[int]int{}
			maxN := -1
			for i, rd := range rs {
				nick, n, ok := faultSeq(rd.line)
				if !ok || nick != s.nick {
					continue
				}
				got = append(got, pos{i, n})
				seen[n]++
				if seen[n] == 2 {
					f.dups++
					problems = append(problems, fmt.Sprintf("%s read %q twice", r.nick, rd.line))
				}
				if n < maxN {
					f.order++
					problems = append(problems, fmt.Sprintf("%s read %q after seq %d", r.nick, rd.line, maxN))
				}
				maxN = max(maxN, n)
				if !told[s.nick][n] && !deliveredUnconfirmed[fmt.Sprint(s.nick, n)] {
					deliveredUnconfirmed[fmt.Sprint(s.nick, n)] = true
					f.deliveredUnconfirmed++
				}
			}
			var nums []int
			for n := range told[s.nick] {
				nums = append(nums, n)
			}
			sort.Ints(nums)
			for _, n := range nums {
				if seen[n] > 0 {
					continue
				}
				// The neighbours of n at r: was r told, in between, that
				// it could not hear (link down, connection ended)?
				from, to := 0, len(rs)
				for _, p := range got {
					if p.n < n {
						from = p.i
					}
					if p.n > n {
						to = p.i
						break
					}
				}
				if !g.zeroLoss && faultExcused(rs, from, to) {
					f.missedUnlinked++
					continue
				}
				f.lost++
				problems = append(problems, fmt.Sprintf("%s never read \"%s: seq %d\" (told sent) and was not told its link was down", r.nick, s.nick, n))
			}
		}
		// joined!/left! about each user alternate within a connection.
		state := map[string]string{}
		conn := 0
		for _, rd := range rs {
			if rd.conn != conn {
				conn, state = rd.conn, map[string]string{}
			}
			for _, v := range g.users {
				switch rd.line {
				case v.nick + " left!":
					if state[v.nick] == "left" {
						f.leftTwice++
						problems = append(problems, fmt.Sprintf("%s read %q twice without a join between", r.nick, rd.line))
					}
					state[v.nick] = "left"
				case v.nick + " joined!":
					if state[v.nick] == "joined" {
						f.joinedTwice++
						problems = append(problems, fmt.Sprintf("%s read %q twice without a left! between", r.nick, rd.line))
					}
					state[v.nick] = "joined"
				}
			}
		}
	}
	// Time from the fault to left! for each user that had to leave, at
	// every other user that stayed.
	for _, v := range wantLeft {
		for _, r := range g.users {
			if r.nick == v || slices.Contains(wantLeft, r.nick) {
				continue
			}
			at, ok := faultFirst(reads[r.nick], g.fault, v+" left!")
			if !ok {
				problems = append(problems, fmt.Sprintf("%s was never told %s left", r.nick, v))
				continue
			}
			d := at.Sub(g.fault)
			if f.leftSeen == 0 || d < f.leftFirst {
				f.leftFirst = d
			}
			f.leftLast = max(f.leftLast, d)
			f.leftSeen++
		}
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	g.t.Logf("figure: env=%s fault=%s users=%d sent=%d told_sent=%d refused=%d unconfirmed=%d delivered_unconfirmed=%d lost=%d missed_while_unlinked=%d dups=%d order=%d left_twice=%d joined_twice=%d left_seen=%d left_first_ms=%s left_last_ms=%s resume_ms=%s resume_after_heal_ms=%s max_echo_gap_ms=%s max_rejoin_ms=%s flood=%d",
		g.env, g.name, len(g.users), f.sent, f.told, f.refused, f.unconfirmed, f.deliveredUnconfirmed, f.lost, f.missedUnlinked,
		f.dups, f.order, f.leftTwice, f.joinedTwice, f.leftSeen, ms(f.leftFirst), ms(f.leftLast), ms(f.resume), ms(f.resumeHeal), ms(f.maxGap), ms(f.rejoin), f.flood)
	for _, n := range g.notes {
		g.t.Logf("figure-note: env=%s fault=%s %s", g.env, g.name, n)
	}
	if len(problems) > 20 {
		problems = append(problems[:20], fmt.Sprintf("... and %d more", len(problems)-20))
	}
	for _, p := range problems {
		g.t.Error(p)
	}
	if f.told == 0 {
		g.t.Error("no line was told sent")
	}
	if f.flood > 0 && !g.floodExpected {
		g.t.Errorf("%d lines refused as a flood: the harness sends too fast for the gateways' --rate", f.flood)
	}
}

// faultExcused reports whether reads[from:to] show that the reader could
// not hear everything: its link was down or its connection ended.
func faultExcused(reads []faultRead, from, to int) bool {
	if to >= len(reads) {
		to = len(reads) - 1
	}
	if from < 0 || to < 0 {
		return false
	}
	first := reads[from].conn
	for _, r := range reads[from : to+1] {
		if r.line == "" || r.conn != first || strings.HasPrefix(r.line, faultLinkDown) || strings.HasPrefix(r.line, faultShutdown) {
			return true
		}
	}
	return false
}

// faultFirst returns when line was first read at or after since.
func faultFirst(reads []faultRead, since time.Time, line string) (time.Time, bool) {
	for _, r := range reads {
		if r.line == line && !r.at.Before(since) {
			return r.at, true
		}
	}
	return time.Time{}, false
}

// faultProbeJoin tries one join as nick at addr and returns the first
// line the gateway answered with (or the error).
func faultProbeJoin(t testing.TB, addr, nick string) string {
	c, answer, err := tryJoin(t, addr, nick, 10*time.Second)
	if c != nil {
		io.WriteString(c.Conn, "/quit\n")
		c.Conn.Close()
	}
	if err != nil && answer == "" {
		return err.Error()
	}
	return answer
}

// faultAsk sends a command as u and returns the first reply line (a line
// starting with "*** " or "ERROR ") read after it.
func (g *faultGroup) faultAsk(u *faultUser, cmd string, match func(string) bool) string {
	from := len(u.snapshot())
	u.say(cmd)
	r, ok := u.waitLine(15*time.Second, from, match)
	if !ok {
		return "(no reply)"
	}
	return r.line
}

// waitWhoEverywhere waits until /who is answered for every user of g, so
// that the next fault starts from a whole cluster: after quorum is back, a
// join through one broker can work while a bucket another gateway needs
// has no leader yet. Its retries count against the users' --rate: the
// compose cluster's 5 lines/s cannot take them beside the steady chat
// (faultSuite.whoEverywhere).
func (g *faultGroup) waitWhoEverywhere(t *testing.T) {
	t.Helper()
	checkFor(t, 2*time.Minute, func() error {
		for _, u := range g.users {
			if r := g.faultAsk(u, "/who", faultReply); !strings.HasPrefix(r, "*** in ") {
				return fmt.Errorf("%s: /who: %q", u.nick, r)
			}
		}
		return nil
	})
}

// faultPos is a resuming user's position: the newest event time and the
// highest counter per publishing gateway, from the "@<room>/<id>/<ms> "
// prefixes the gateway puts on its lines.
type faultPos struct {
	room string
	ts   int64
	last map[string]uint64
}

// take strips and records a line's position prefix.
func (p *faultPos) take(line string) string {
	if !strings.HasPrefix(line, "@") {
		return line
	}
	head, rest, ok := strings.Cut(line[1:], " ")
	f := strings.Split(head, "/")
	if !ok || len(f) != 3 {
		return line
	}
	ms, err1 := strconv.ParseInt(f[2], 10, 64)
	dot := strings.LastIndexByte(f[1], '.')
	if err1 != nil || dot <= 0 {
		return line
	}
	n, err := strconv.ParseUint(f[1][dot+1:], 10, 64)
	if err != nil {
		return line
	}
	if p.room != f[0] || p.last == nil {
		*p = faultPos{room: f[0], last: map[string]uint64{}}
	}
	p.ts = max(p.ts, ms)
	p.last[f[1][:dot]] = max(p.last[f[1][:dot]], n)
	return rest
}

func (p *faultPos) token() string {
	if p.room == "" {
		return ""
	}
	var ids []string
	for gw, n := range p.last {
		ids = append(ids, gw+"."+strconv.FormatUint(n, 10))
	}
	sort.Strings(ids)
	return p.room + ":" + strconv.FormatInt(p.ts, 10) + ":" + strings.Join(ids, ",")
}
