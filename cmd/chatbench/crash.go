package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// How a crashed gateway's user retries a refused nickname (held until the
// dead gateway's lease lapses): a short, growing, jittered wait, as a real
// client's reconnect does.
const (
	crashRetryMin = 250 * time.Millisecond
	crashRetryMax = time.Second
)

// chatdDefaultLease is chatd's --lease when none is given.
const chatdDefaultLease = 15 * time.Second

// crashResult is the outcome of the crash scenario.
type crashResult struct {
	Name         string         `json:"name"`
	Crashed      string         `json:"crashed_gateway"`
	Others       []string       `json:"other_gateways"`
	PID          int            `json:"crashed_pid"`
	LeaseS       float64        `json:"lease_s"`
	LeaseFrom    string         `json:"lease_from"` // the crashed process's command line, or chatd's default
	Users        int            `json:"users"`
	Rooms        int            `json:"rooms"`
	RoomSize     int            `json:"room_size"`
	Watchers     int            `json:"watchers"`
	ConnectS     float64        `json:"connect_s"` // the users' first connections, to the gateway killed
	RetryMinMs   float64        `json:"retry_min_ms"`
	RetryMaxMs   float64        `json:"retry_max_ms"`
	Back         int            `json:"users_back"`
	NotBack      int            `json:"users_not_back"`
	AllBackS     float64        `json:"kill_to_all_back_s"`    // the kill to the last user's own joined! in its room
	NoticesS     float64        `json:"kill_to_all_notices_s"` // the kill to the last first left!/joined! a watcher needed
	CompleteS    float64        `json:"kill_to_complete_s"`    // the larger of the two
	FirstBackS   float64        `json:"kill_to_first_back_s"`  // when the lease lapsed, as the users see it
	BackLatency  latencySummary `json:"back"`                  // per user, from the kill
	Retries      int64          `json:"retries"`               // refused nicknames and redials, in all
	RetriesMax   int            `json:"retries_max_per_user"`
	Redials      int64          `json:"redials"`
	Refusals     map[string]int `json:"refusals,omitempty"` // ERROR lines, by text with the nickname taken out
	Notices      noticeTally    `json:"notices"`
	HoldS        float64        `json:"hold_s"` // watched after completion for late duplicates
	WatcherDrops int            `json:"watchers_dropped"`
	problems     []string
}

// noticeTally classifies the crashed users by the notices about them the
// watchers saw after the kill: a user counts as exactly once when every
// watcher of its room saw one `NICK left!` and one `NICK joined!`.
type noticeTally struct {
	ExactlyOnce int      `json:"users_left_and_joined_once"`
	Left0       int      `json:"users_left_0"`
	Left2       int      `json:"users_left_2_or_more"`
	Joined0     int      `json:"users_joined_0"`
	Joined2     int      `json:"users_joined_2_or_more"`
	Examples    []string `json:"examples,omitempty"` // a few users that were not exactly once: nick watcher left joined
}

// noticeCount is what one watcher saw of one user after the kill.
type noticeCount struct {
	left, joined           int
	firstLeft, firstJoined time.Time
}

// parseNotice parses a membership line, `NICK joined!` or `NICK left!`.
func parseNotice(line []byte) (nick string, joined, ok bool) {
	line = bytes.TrimRight(line, "\r")
	if n, found := bytes.CutSuffix(line, []byte(" joined!")); found && validNoticeNick(n) {
		return string(n), true, true
	}
	if n, found := bytes.CutSuffix(line, []byte(" left!")); found && validNoticeNick(n) {
		return string(n), false, true
	}
	return "", false, false
}

// validNoticeNick: a nickname holds no space or ':' (docs/protocol.md), so
// a chat line ending in " left!" is not taken for a notice.
func validNoticeNick(n []byte) bool {
	return len(n) > 0 && !bytes.ContainsAny(n, " :")
}

// tallyNotices classifies users (by room) from what each watcher saw:
// seen[w][nick], watchersOf[room] the watchers of each room, roomOf[nick].
func tallyNotices(users []string, roomOf func(nick string) int, watchersOf [][]int,
	seen []map[string]*noticeCount) noticeTally {
	var t noticeTally
	for _, nick := range users {
		once, l0, l2, j0, j2 := true, false, false, false, false
		for _, w := range watchersOf[roomOf(nick)] {
			var c noticeCount
			if p := seen[w][nick]; p != nil {
				c = *p
			}
			l0, l2 = l0 || c.left == 0, l2 || c.left >= 2
			j0, j2 = j0 || c.joined == 0, j2 || c.joined >= 2
			if c.left != 1 || c.joined != 1 {
				once = false
				if len(t.Examples) < 10 {
					t.Examples = append(t.Examples, fmt.Sprintf("%s w%d left %d joined %d", nick, w, c.left, c.joined))
				}
			}
		}
		if once {
			t.ExactlyOnce++
		}
		t.Left0 += b2i(l0)
		t.Left2 += b2i(l2)
		t.Joined0 += b2i(j0)
		t.Joined2 += b2i(j2)
	}
	return t
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// leaseFromCmdline finds --lease in a chatd command line (the NUL-separated
// /proc/PID/cmdline); ok is false when it is not given.
func leaseFromCmdline(cmdline []byte) (time.Duration, bool, error) {
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	for i, a := range args {
		var v string
		switch {
		case a == "--lease" || a == "-lease":
			if i+1 >= len(args) {
				return 0, false, errors.New("--lease without a value")
			}
			v = args[i+1]
		case strings.HasPrefix(a, "--lease=") || strings.HasPrefix(a, "-lease="):
			v = a[strings.IndexByte(a, '=')+1:]
		default:
			continue
		}
		d, err := time.ParseDuration(v)
		return d, err == nil, err
	}
	return 0, false, nil
}

// refusalKind is an ERROR line with the nickname taken out, to count
// refusals by kind.
func refusalKind(line []byte, nick string) string {
	return strings.ReplaceAll(string(bytes.TrimRight(line, "\r")), nick, "NICK")
}

// runCrash: --conns users in rooms of --room-size on the gateway at --addr,
// watchers in every room on each gateway of --addr2; then the process
// --pid (the gateway at --addr, started by the caller for this) is killed
// with SIGKILL, and every user reconnects at once with the same nickname,
// alternating between the gateways of --addr2, retrying while its
// nickname is held. Measured: the kill to each user back in its room, and
// the left!/joined! notices the watchers see about each user.
func runCrash(ctx context.Context, o *options, targets []*target) (*summary, error) {
	t := targets[len(targets)-1]
	crashed, others := t.Addrs[0], splitAddrs(o.Addr2)
	res := &crashResult{Name: t.Name, Crashed: crashed, Others: others, PID: o.PID, Users: o.Conns,
		RoomSize: o.RoomSize, RetryMinMs: float64(crashRetryMin.Milliseconds()), RetryMaxMs: float64(crashRetryMax.Milliseconds()),
		HoldS: o.Hold.Seconds()}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(o.PID) + "/cmdline")
	if err != nil {
		return nil, fmt.Errorf("--pid %d: %w", o.PID, err)
	}
	if !bytes.Contains(cmdline, []byte("chatd")) || !bytes.Contains(cmdline, []byte("gateway")) {
		return nil, fmt.Errorf("--pid %d is not a chatd gateway (%q): refusing to kill it", o.PID, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
	}
	lease, given, err := leaseFromCmdline(cmdline)
	if err != nil {
		return nil, fmt.Errorf("--pid %d: reading its --lease: %w", o.PID, err)
	}
	res.LeaseFrom = "the crashed gateway's --lease"
	if !given {
		lease, res.LeaseFrom = chatdDefaultLease, "chatd's default (no --lease)"
	}
	res.LeaseS = lease.Seconds()

	rooms := (o.Conns + o.RoomSize - 1) / o.RoomSize
	res.Rooms = rooms
	roomName := func(r int) string { return o.Room + "-" + strconv.Itoa(r) }
	userNick := func(i int) string { return chatNick(o.Nick, i) }
	roomOfNick := map[string]int{}
	users := make([]string, o.Conns)
	for i := range users {
		users[i] = userNick(i)
		roomOfNick[users[i]] = i / o.RoomSize
	}

	// Watchers: one per room on each surviving gateway.
	nw := rooms * len(others)
	res.Watchers = nw
	seen := make([]map[string]*noticeCount, nw)
	preJoins := make([]atomic.Int64, nw)
	var seenMu sync.Mutex
	var armed atomic.Bool
	watchersOf := make([][]int, rooms)
	for w := range nw {
		seen[w] = map[string]*noticeCount{}
		watchersOf[w/len(others)] = append(watchersOf[w/len(others)], w)
	}
	wcn := &connector{sources: sources(o.Sources), timeout: 60 * time.Second, bufSize: 4096}
	wcn.handle = func(c *client, line []byte) {
		nick, joined, ok := parseNotice(line)
		if !ok || !strings.HasPrefix(nick, o.Nick+"_") {
			return
		}
		if !armed.Load() {
			if joined {
				preJoins[c.id].Add(1)
			}
			return
		}
		now := time.Now()
		seenMu.Lock()
		defer seenMu.Unlock()
		n := seen[c.id][nick]
		if n == nil {
			n = &noticeCount{}
			seen[c.id][nick] = n
		}
		if joined {
			if n.joined++; n.joined == 1 {
				n.firstJoined = now
			}
		} else {
			if n.left++; n.left == 1 {
				n.firstLeft = now
			}
		}
	}
	progressf("crash: %d watchers on %v", nw, others)
	watchers, _, err := wcn.connectAll(ctx, nw, o.Concurrency, false,
		func(w int) string { return others[w%len(others)] },
		func(w int) string { return o.Nick + "w" + strconv.Itoa(w) },
		func(w int) string { return roomName(w / len(others)) }, nil)
	if err != nil {
		wcn.readers.Wait()
		return nil, fmt.Errorf("connecting watchers: %w", err)
	}
	defer wcn.closeAll(watchers)

	// The users, on the gateway to be killed.
	ucn := &connector{sources: sources(o.Sources), timeout: 60 * time.Second, bufSize: 512}
	start := time.Now()
	last := time.Now()
	var showMu sync.Mutex
	old, _, err := ucn.connectAll(ctx, o.Conns, o.Concurrency, false,
		func(int) string { return crashed }, userNick,
		func(i int) string { return roomName(i / o.RoomSize) },
		func(done int) {
			showMu.Lock()
			defer showMu.Unlock()
			if done == o.Conns || time.Since(last) > time.Second {
				last = time.Now()
				progressf("crash: %d/%d users on %s", done, o.Conns, crashed)
			}
		})
	if err != nil {
		ucn.readers.Wait()
		return nil, fmt.Errorf("connecting users to %s: %w", crashed, err)
	}
	res.ConnectS = round3(time.Since(start).Seconds())
	// Every watcher has seen its room's users join before the kill.
	want := func(w int) int64 {
		r := w / len(others)
		return int64(min(o.Conns, (r+1)*o.RoomSize) - r*o.RoomSize)
	}
	for wait := time.Now(); ; {
		ready := true
		for w := range nw {
			if preJoins[w].Load() < want(w) {
				ready = false
				break
			}
		}
		if ready {
			break
		}
		if time.Since(wait) > 30*time.Second || ctx.Err() != nil {
			ucn.closeAll(old)
			return nil, errors.New("the watchers did not see every user join before the kill")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The crash.
	progressf("crash: killing %d (the gateway at %s), lease %v", o.PID, crashed, lease)
	armed.Store(true)
	kill := time.Now()
	if err := syscall.Kill(o.PID, syscall.SIGKILL); err != nil {
		ucn.closeAll(old)
		return nil, fmt.Errorf("kill %d: %w", o.PID, err)
	}
	giveUp := kill.Add(2*lease + 60*time.Second)
	rctx, cancel := context.WithDeadline(ctx, giveUp)
	defer cancel()
	var (
		back      = make([]*client, o.Conns)
		backAt    = make([]time.Time, o.Conns)
		retries   = make([]int, o.Conns)
		redials   atomic.Int64
		refMu     sync.Mutex
		backCount atomic.Int64
		wg        sync.WaitGroup
	)
	res.Refusals = map[string]int{}
	refused := func(kind string) {
		refMu.Lock()
		res.Refusals[kind]++
		refMu.Unlock()
	}
	for i, c := range old {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select { // the user notices its gateway is gone
			case <-c.readDone:
			case <-rctx.Done():
				return
			}
			c.close()
			r := &rejoiner{id: i, nick: users[i], room: roomName(i / o.RoomSize), addr: others[i%len(others)],
				srcs: ucn.sources, refused: refused}
			nc, n, dials := r.run(rctx)
			retries[i] = n
			redials.Add(int64(dials - 1))
			if nc != nil {
				back[i], backAt[i] = nc, time.Now()
				if k := backCount.Add(1); k%500 == 0 || int(k) == o.Conns {
					progressf("crash: %d/%d users back after %.2fs", k, o.Conns, time.Since(kill).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	ucn.readers.Wait()
	defer func() {
		for _, c := range back {
			if c != nil {
				c.conn.Close()
			}
		}
	}()

	// Wait for the notices to be complete (every watcher has a left! and a
	// joined! of each of its room's users) or for --settle, then watch for
	// --hold more, for late duplicates.
	complete := func() bool {
		seenMu.Lock()
		defer seenMu.Unlock()
		for _, nick := range users {
			for _, w := range watchersOf[roomOfNick[nick]] {
				n := seen[w][nick]
				if n == nil || n.left == 0 || n.joined == 0 {
					return false
				}
			}
		}
		return true
	}
	for settle := time.Now(); !complete() && time.Since(settle) < o.Settle && ctx.Err() == nil; {
		time.Sleep(20 * time.Millisecond)
	}
	progressf("crash: watching %v for late notices", o.Hold)
	sleepCtx(ctx, o.Hold)
	wcn.closeAll(watchers)
	for _, w := range watchers {
		if w.dropped() {
			res.WatcherDrops++
		}
	}

	var h hist
	var lastBack, firstBack time.Time
	for i := range back {
		if back[i] == nil {
			res.NotBack++
			continue
		}
		res.Back++
		h.add(int64(backAt[i].Sub(kill)))
		if backAt[i].After(lastBack) {
			lastBack = backAt[i]
		}
		if firstBack.IsZero() || backAt[i].Before(firstBack) {
			firstBack = backAt[i]
		}
		res.Retries += int64(retries[i])
		res.RetriesMax = max(res.RetriesMax, retries[i])
	}
	res.Redials = redials.Load()
	res.BackLatency = h.summary()
	if res.Back > 0 {
		res.AllBackS = round3(lastBack.Sub(kill).Seconds())
		res.FirstBackS = round3(firstBack.Sub(kill).Seconds())
	}
	var lastNotice time.Time
	for w := range seen {
		for _, n := range seen[w] {
			for _, at := range []time.Time{n.firstLeft, n.firstJoined} {
				if at.After(lastNotice) {
					lastNotice = at
				}
			}
		}
	}
	if !lastNotice.IsZero() {
		res.NoticesS = round3(lastNotice.Sub(kill).Seconds())
	}
	res.CompleteS = max(res.AllBackS, res.NoticesS)
	res.Notices = tallyNotices(users, func(n string) int { return roomOfNick[n] }, watchersOf, seen)
	if res.NotBack > 0 {
		res.problems = append(res.problems, fmt.Sprintf("crash: %d of %d users not back within %v of the kill", res.NotBack, o.Conns, giveUp.Sub(kill)))
	}
	if res.Notices.ExactlyOnce != o.Conns {
		res.problems = append(res.problems, fmt.Sprintf("crash: %d of %d users not announced left! and joined! exactly once (left 0: %d, 2+: %d; joined 0: %d, 2+: %d)",
			o.Conns-res.Notices.ExactlyOnce, o.Conns, res.Notices.Left0, res.Notices.Left2, res.Notices.Joined0, res.Notices.Joined2))
	}
	if res.WatcherDrops > 0 {
		res.problems = append(res.problems, fmt.Sprintf("crash: %d watchers dropped by the server", res.WatcherDrops))
	}
	progressf("crash: %d/%d back, all within %.2fs (first %.2fs, p50 %.0fms, p99 %.0fms), notices complete at %.2fs, %d retries; exactly once: %d",
		res.Back, o.Conns, res.AllBackS, res.FirstBackS, res.BackLatency.P50Ms, res.BackLatency.P99Ms, res.NoticesS, res.Retries, res.Notices.ExactlyOnce)
	s := &summary{Runs: []any{res}, Problems: res.problems}
	return s, nil
}

// rejoiner brings one crashed user back: dial, offer the same nickname,
// and while it is refused wait a little and offer it again (on the same
// connection while the server asks again with NAME, else on a new one);
// then join the user's room.
type rejoiner struct {
	id      int
	nick    string
	room    string
	addr    string
	srcs    []net.IP
	refused func(kind string)
}

// run returns the connection once the user is back in its room (nil if
// ctx ended first), the retries it took and the dials.
func (r *rejoiner) run(ctx context.Context) (*client, int, int) {
	retries, dials := 0, 0
	wait := crashRetryMin
	pause := func() bool {
		retries++
		d := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		wait = min(wait*3/2, crashRetryMax)
		sleepCtx(ctx, d)
		return ctx.Err() == nil
	}
	for ctx.Err() == nil {
		dials++
		d := net.Dialer{Timeout: 10 * time.Second}
		if len(r.srcs) > 0 {
			d.LocalAddr = &net.TCPAddr{IP: r.srcs[r.id%len(r.srcs)]}
		}
		conn, err := d.DialContext(ctx, "tcp", r.addr)
		if err != nil {
			r.refused("dial: " + err.Error())
			if !pause() {
				return nil, retries, dials
			}
			continue
		}
		c := &client{id: r.id, nick: r.nick, conn: conn, r: bufio.NewReaderSize(conn, 512)}
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		again, ok := r.attempt(c, pause)
		stop()
		if ok {
			_ = conn.SetDeadline(time.Time{})
			go func() { _, _ = io.Copy(io.Discard, conn) }() // notices of its room, until closed
			return c, retries, dials
		}
		conn.Close()
		if !again || !pause() {
			return nil, retries, dials
		}
	}
	return nil, retries, dials
}

// attempt runs the handshake on one connection, offering the nickname
// again after each refusal the server follows with NAME. again is false
// when retrying is pointless (ctx ended).
func (r *rejoiner) attempt(c *client, pause func() bool) (again, ok bool) {
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	for {
		var name [4]byte
		if _, err := io.ReadFull(c.r, name[:]); err != nil || string(name[:]) != "NAME" {
			return true, false // closed after too many refusals: dial again
		}
		if _, err := io.WriteString(c.conn, r.nick+"\n"); err != nil {
			return true, false
		}
		line, err := r.untilJoined(c)
		if err == nil {
			break
		}
		if line == nil {
			return true, false
		}
		r.refused(refusalKind(line, r.nick))
		if !bytes.Contains(line, []byte("choose another")) || bytes.Contains(line, []byte("closing")) {
			return true, false // the server closes: dial again after a pause
		}
		if !pause() {
			return false, false
		}
		_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if _, err := io.WriteString(c.conn, "/join "+r.room+"\n"); err != nil {
		return true, false
	}
	if line, err := r.untilJoined(c); err != nil {
		if line != nil {
			r.refused("/join: " + refusalKind(line, r.nick))
		}
		return true, false
	}
	return true, true
}

// untilJoined reads lines until the user's own `NICK joined!`; an ERROR
// line ends it with that line (a copy) and an error.
func (r *rejoiner) untilJoined(c *client) ([]byte, error) {
	joined := []byte(r.nick + " joined!")
	for {
		line, err := readLine(c.r)
		if err != nil {
			return nil, err
		}
		if bytes.Equal(line, joined) {
			return nil, nil
		}
		if bytes.HasPrefix(line, []byte("ERROR")) {
			return slices.Clone(line), errors.New("refused")
		}
	}
}
