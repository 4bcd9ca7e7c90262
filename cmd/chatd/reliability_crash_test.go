//go:build reliability

package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chatd/bus"
	"github.com/chatd/chatd/cluster"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The membership streams: a broker that restarts must have caught up on
// them before the test looks for ghosts.
var ghostStreams = []string{"KV_" + bus.NicksBucket, "KV_" + bus.PresenceBucket, "KV_" + bus.GatewaysBucket}

// TestReliabilityNoGhostsAfterBrokerCrash is TestNoGhostsAfterCrash on a
// cluster: three brokers (R3 buckets) and two gateways sweeping delete
// markers every second. Users join and /quit (twice each, on both
// gateways), a user on each gateway stays; once the sweep has purged the
// quit users' markers, brokers are killed with SIGKILL and restarted on
// the same data: first the one leading the presence bucket, then two of
// three (JetStream loses its quorum for a lease). After each restart,
// with JetStream caught up, /who on both gateways lists exactly the users
// who stayed, every quit user's nickname can be claimed again on the
// gateway it did not last use, and nobody reads a left! or joined! twice.
// CHATD_RELIABILITY=full quits more users and holds the quorum loss longer.
func TestReliabilityNoGhostsAfterBrokerCrash(t *testing.T) {
	start := time.Now()
	fc := startFaultClusterWith(t, faultClusterConfig{lease: 3 * time.Second, gateways: 2,
		gatewayArgs: []string{"--sweep", "1s", "--history", "0"}})
	t.Logf("cluster ready after %v", time.Since(start).Round(time.Millisecond))
	js := fc.jetStream()
	quitters := 6
	if relFull() {
		quitters = 30
	}
	t.Run("broker-kill", func(t *testing.T) { ghostRound(t, fc, js, "gk", 1, quitters, 0) })
	t.Run("two-brokers-kill", func(t *testing.T) {
		ghostRound(t, fc, js, "gq", 2, quitters, relScale(fc.lease, 4*fc.lease))
	})
	t.Logf("whole run: %v", time.Since(start).Round(time.Millisecond))
}

// ghostRound runs one crash: quitters users join and quit, the sweep runs,
// kill brokers are killed (held down for hold) and restarted, and the
// membership is checked from both gateways.
func ghostRound(t *testing.T, fc *faultCluster, js jetstream.JetStream, prefix string, kill, quitters int, hold time.Duration) {
	gw := []string{fc.gateways[0].chat, fc.gateways[1].chat}
	stays := []*client{join(t, gw[0], prefix+"s1"), join(t, gw[1], prefix+"s2")}
	stays[0].Expect(stays[1].Nick + " joined!")
	every := func(line string) {
		t.Helper()
		for _, s := range stays {
			s.Expect(line)
		}
	}

	// Each quit user joins and quits twice, on one gateway then the other:
	// its keys have several revisions, each replaced or removed.
	var gone []string
	began := time.Now()
	for i := range quitters {
		nick := fmt.Sprintf("%sq%d", prefix, i)
		for cycle := range 2 {
			if got := ghostClaim(t, gw[(i+cycle)%2], nick); got != "" {
				t.Fatalf("%s on %s: %s", nick, gw[(i+cycle)%2], got)
			}
			every(nick + " joined!")
			every(nick + " left!")
		}
		gone = append(gone, nick)
	}
	quit := time.Now()

	// The sweep has run once the quit users' keys are gone from both
	// buckets' streams (their markers purged), and every replica has it.
	checkFor(t, 30*time.Second, func() error { return ghostSwept(js, gone) })
	swept := time.Now()
	checkFor(t, 30*time.Second, func() error { return ghostHealthy(js) })

	victims := ghostVictims(t, js, fc, kill)
	var names []string
	for _, v := range victims {
		names = append(names, v.name)
	}
	fault := time.Now()
	for _, v := range victims {
		v.signal(t, syscall.SIGKILL)
	}
	for _, v := range victims {
		v.wait(t, 10*time.Second)
	}
	time.Sleep(hold) // quorum lost across a lease refresh: a duration, not a condition
	restart := time.Now()
	for _, v := range victims {
		v.start(fc.t)
	}
	fc.waitReady(fc.brokers...)
	checkFor(t, 2*time.Minute, func() error { return ghostHealthy(js) })
	caught := time.Now()

	// /who on both gateways: exactly the users who stayed.
	want := []string{stays[0].Nick, stays[1].Nick}
	slices.Sort(want)
	for _, s := range stays {
		got := ghostWho(t, s)
		if !slices.Equal(got, want) {
			t.Errorf("%s: /who after the crash lists %q, want %q", s.Nick, got, want)
		}
	}
	whoAt := time.Now()

	// Every quit user's nickname is free, on the gateway it did not last
	// use (its last gateway would take back a record of its own that no
	// session holds) and, for the first, on both.
	taken := 0
	for i, nick := range gone {
		addrs := []string{gw[(i+2)%2]} // its last cycle was on gw[(i+1)%2]
		if i == 0 {
			addrs = append(addrs, gw[(i+1)%2])
		}
		for _, addr := range addrs {
			if got := ghostClaim(t, addr, nick); got != "" {
				taken++
				t.Errorf("after the crash the nickname %s of a user who quit is refused on %s: %s", nick, addr, got)
				continue
			}
			every(nick + " joined!")
			every(nick + " left!")
		}
	}

	// Nobody read a departure or an arrival twice; nobody who stayed was
	// announced at all after joining.
	var leftTwice, joinedTwice int
	for _, s := range stays {
		s.Sync()
		lt, jt := ghostAlternation(t, s)
		leftTwice += lt
		joinedTwice += jt
		for _, st := range stays {
			if n := count(s.Seen, st.Nick+" left!"); n > 0 {
				t.Errorf("%s read %q %d times; %s never left", s.Nick, st.Nick+" left!", n, st.Nick)
			}
		}
	}
	ms := func(a, b time.Time) int64 { return b.Sub(a).Milliseconds() }
	t.Logf("figure: env=process fault=%s killed=%s quit_users=%d quits_ms=%d swept_after_last_quit_ms=%d down_ms=%d caught_up_after_restart_ms=%d who_ms=%d ghosts_in_who=%d nick_refused=%d left_twice=%d joined_twice=%d",
		t.Name(), strings.Join(names, ","), len(gone), ms(began, quit), ms(quit, swept), ms(fault, restart), ms(restart, caught),
		ms(caught, whoAt), ghostsIn(stays, gone), taken, leftTwice, joinedTwice)
	for _, s := range stays {
		s.Send("/quit\n")
	}
	for _, s := range stays {
		s.ExpectClosed()
	}
}

// jetStream is a raw JetStream client on the brokers, with the cluster
// secret's derived credentials, as a gateway has.
func (fc *faultCluster) jetStream() jetstream.JetStream {
	fc.t.Helper()
	var urls []string
	for _, b := range fc.brokers {
		urls = append(urls, b.nats)
	}
	user, pass := cluster.SecretCredentials(busSecret)
	nc, err := nats.Connect(strings.Join(urls, ","), nats.UserInfo(user, pass), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		fc.t.Fatal(err)
	}
	fc.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		fc.t.Fatal(err)
	}
	return js
}

// ghostInfo returns the state of stream with its subjects.
func ghostInfo(js jetstream.JetStream, stream string) (*jetstream.StreamInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", stream, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(">"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", stream, err)
	}
	return info, nil
}

// ghostSwept reports whether no key of the nicks in chat_nicks and
// chat_presence is left in their streams.
func ghostSwept(js jetstream.JetStream, nicks []string) error {
	for _, bucket := range []string{bus.NicksBucket, bus.PresenceBucket} {
		info, err := ghostInfo(js, "KV_"+bucket)
		if err != nil {
			return err
		}
		for _, nick := range nicks {
			key, err := bus.NickKey(nick)
			if err != nil {
				return err
			}
			for subj := range info.State.Subjects {
				if strings.HasSuffix(subj, "."+key) {
					return fmt.Errorf("%s still holds %s", bucket, subj)
				}
			}
		}
	}
	return nil
}

// ghostHealthy reports whether every membership stream has a leader and
// two replicas that are current, online and not lagging.
func ghostHealthy(js jetstream.JetStream) error {
	for _, name := range ghostStreams {
		info, err := ghostInfo(js, name)
		if err != nil {
			return err
		}
		ci := info.Cluster
		if ci == nil || ci.Leader == "" {
			return fmt.Errorf("%s has no leader", name)
		}
		if len(ci.Replicas) != 2 {
			return fmt.Errorf("%s: leader %s has %d replicas, want 2", name, ci.Leader, len(ci.Replicas))
		}
		for _, r := range ci.Replicas {
			if !r.Current || r.Offline || r.Lag > 0 {
				return fmt.Errorf("%s: replica %s current=%v offline=%v lag=%d", name, r.Name, r.Current, r.Offline, r.Lag)
			}
		}
	}
	return nil
}

// ghostVictims returns the kill brokers to kill: the leader of
// chat_presence first, then the leader of chat_nicks, then any other.
func ghostVictims(t *testing.T, js jetstream.JetStream, fc *faultCluster, kill int) []*faultNode {
	t.Helper()
	var names []string
	for _, stream := range []string{"KV_" + bus.PresenceBucket, "KV_" + bus.NicksBucket} {
		info, err := ghostInfo(js, stream)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s is led by %s", stream, info.Cluster.Leader)
		names = append(names, info.Cluster.Leader)
	}
	for _, b := range fc.brokers {
		names = append(names, b.name)
	}
	var out []*faultNode
	for _, name := range names {
		for _, b := range fc.brokers {
			if b.name == name && !slices.Contains(out, b) && len(out) < kill {
				out = append(out, b)
			}
		}
	}
	return out
}

// ghostWho asks /who as c until JetStream answers and returns the nicks.
func ghostWho(t *testing.T, c *client) []string {
	t.Helper()
	var got string
	checkFor(t, time.Minute, func() error {
		c.Send("/who\n")
		got = c.ExpectPrefix("")
		for !strings.HasPrefix(got, "*** in ") && !strings.HasPrefix(got, "ERROR ") {
			got = c.ExpectPrefix("")
		}
		if strings.HasPrefix(got, "ERROR ") {
			time.Sleep(200 * time.Millisecond)
			return fmt.Errorf("/who: %q", got)
		}
		return nil
	})
	_, list, _ := strings.Cut(got, "): ")
	nicks := strings.Split(list, ", ")
	slices.Sort(nicks)
	return nicks
}

// ghostClaim joins as nick at addr and quits, retrying while the chat is
// unavailable (JetStream electing leaders); it returns "" on success, or
// the gateway's refusal.
func ghostClaim(t *testing.T, addr, nick string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		c := dial(t, addr)
		c.ExpectName()
		c.Send(nick + "\n")
		c.Nick = nick
		first, err := c.Line()
		switch {
		case err != nil:
			c.Conn.Close()
			return fmt.Sprintf("read: %v", err)
		case first == "Connected to server!":
			c.Send("/quit\n")
			c.ExpectClosed()
			return ""
		}
		c.Conn.Close()
		if !strings.Contains(first, "unavailable") || time.Now().After(deadline) {
			return first
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ghostAlternation counts, in what c read, a user's left! (or joined!)
// read a second time with no joined! (left!) between.
func ghostAlternation(t *testing.T, c *client) (leftTwice, joinedTwice int) {
	t.Helper()
	state := map[string]string{}
	for _, line := range c.Seen {
		if nick, ok := strings.CutSuffix(line, " left!"); ok {
			if state[nick] == "left" {
				leftTwice++
				t.Errorf("%s read %q twice without a join between", c.Nick, line)
			}
			state[nick] = "left"
		}
		if nick, ok := strings.CutSuffix(line, " joined!"); ok {
			if state[nick] == "joined" {
				joinedTwice++
				t.Errorf("%s read %q twice without a left! between", c.Nick, line)
			}
			state[nick] = "joined"
		}
	}
	return leftTwice, joinedTwice
}

// ghostsIn counts the quit users the stayers' /who replies named.
func ghostsIn(stays []*client, gone []string) int {
	n := 0
	for _, s := range stays {
		for _, line := range s.Seen {
			if !strings.HasPrefix(line, "*** in ") {
				continue
			}
			_, list, _ := strings.Cut(line, "): ")
			for _, nick := range strings.Split(list, ", ") {
				if slices.Contains(gone, nick) {
					n++
				}
			}
		}
	}
	return n
}
