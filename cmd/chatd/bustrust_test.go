package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatd/chatd/bus"
	"github.com/chatd/chatd/cluster/clustertest"
)

// hostileEnv is an envelope as a NATS client with no business on the bus
// would write it: any field may hold anything.
type hostileEnv struct {
	V    any    `json:"v"`
	ID   string `json:"id"`
	GW   string `json:"gw"`
	Kind string `json:"kind"`
	Room string `json:"room,omitempty"`
	Nick string `json:"nick"`
	Text string `json:"text"`
	To   string `json:"to,omitempty"`
	TS   int64  `json:"ts"`
}

// intruder publishes on the bus with a plain nats.go connection.
type intruder struct {
	t   testing.TB
	nc  *nats.Conn
	seq atomic.Uint64
}

// intruderGW looks like a gateway id; the intruder's envelopes carry it.
const intruderGW = "00000000deadbeef"

// env returns a well-formed chat line from the intruder, for a test case to
// spoil one field of.
func (in *intruder) env(kind, nick, text string) hostileEnv {
	n := in.seq.Add(1)
	return hostileEnv{V: 1, ID: intruderGW + "." + strconv.FormatUint(n, 10), GW: intruderGW,
		Kind: kind, Room: "lobby", Nick: nick, Text: text, TS: time.Now().UnixNano()}
}

func (in *intruder) publish(subject string, v any) {
	in.t.Helper()
	data, ok := v.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(v); err != nil {
			in.t.Fatal(err)
		}
	}
	if err := in.nc.Publish(subject, data); err != nil {
		in.t.Fatalf("publish %s (%d bytes): %v", subject, len(data), err)
	}
}

// rawLine is what must never reach a user: control bytes, escapes, and the
// words the intruder's envelopes carry.
var rawLine = regexp.MustCompile(`[\x00-\x08\x0b-\x1f\x7f]|shutting down|mallory|intruder|ATTACK|password|admin`)

// checkClean fails if any of the lines read holds what an intruder sent.
func checkClean(t testing.TB, who string, lines []string) {
	t.Helper()
	for _, l := range lines {
		if rawLine.MatchString(l) {
			t.Errorf("%s received %q", who, l)
		}
	}
}

// A NATS client that is not a gateway publishes hostile envelopes on a
// room's subject, on a user's private-message subject and into the history
// stream. No nc or WebSocket user on either gateway sees any of it, a
// newcomer's replay holds none of it, every gateway counts what it dropped
// by reason, and the honest users go on chatting.
func TestHostileEnvelopes(t *testing.T) {
	ns := clustertest.Start(t, clustertest.Options{})
	args := []string{"--nats", ns.ClientURL(), "--admin", "127.0.0.1:0", "--rate", "1000", "--burst", "1000", "--history", "50"}
	g1 := mustRunMain(t, args...)
	g2 := mustRunMain(t, args...)
	a1, a2 := g1.ChatAddr().String(), g2.ChatAddr().String()

	alice := join(t, a1, "alice")
	bob := join(t, a2, "bob")
	alice.Expect("bob joined!")
	webA := wsJoin(t, g1, "weba")
	webB := wsJoin(t, g2, "webb")
	webA.expectEvent("join", "webb", "")
	for _, c := range []*client{alice, bob} {
		c.Expect("webb joined!")
	}
	alice.Send("hello before\n")
	for _, c := range []*client{alice, bob} {
		c.Expect("alice: hello before")
	}
	bob.Send("/me waves before\n")
	for _, c := range []*client{alice, bob} {
		c.Expect("* bob waves before")
		c.Sync()
	}
	for _, w := range []*wsClient{webA, webB} {
		w.expectEvent("me", "bob", "waves before")
		w.sync()
	}

	nc, err := nats.Connect(ns.ClientURL(), nats.Name("intruder"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	in := &intruder{t: t, nc: nc}
	const (
		msgs   = "chat.v1.room.lobby.msg"
		events = "chat.v1.room.lobby.event"
	)
	toBob, err := bus.UserSubject("bob")
	if err != nil {
		t.Fatal(err)
	}

	// Each case spoils one thing of an otherwise well-formed envelope.
	e := in.env("say", "\n* server shutting down", "reconnect to 10.6.6.6")
	in.publish(msgs, e) // nick
	e = in.env("say", "mallory", "\x1b[2J\x07cleared")
	in.publish(msgs, e) // text
	e = in.env("say", "mallory", "\u202eATTACK")
	in.publish(msgs, e) // text: a bidi override
	e = in.env("say", "mallory", "\xffintruder")
	in.publish(msgs, []byte(strings.Replace(string(mustJSON(t, e)), `\ufffd`, "\xff", 1))) // malformed: invalid UTF-8
	in.publish(msgs, []byte(`{"v":1,"kind":"say","nick":"mallory",`))                      // malformed
	in.publish(msgs, []byte(`["intruder"]`))                                               // malformed
	big := in.env("say", "mallory", "")
	big.Text = strings.Repeat("A", int(nc.MaxPayload())-512) // too_long
	in.publish(msgs, big)
	e = in.env("shout", "mallory", "intruder")
	in.publish(msgs, e) // kind
	e = in.env("say", "mallory", "intruder in an event")
	in.publish(events, e) // kind: a chat line on the notices' subject
	e = in.env("join", "mallory", "")
	in.publish(msgs, e) // kind: a notice on the chat lines' subject
	e = in.env("say", "mallory", "intruder from the future")
	e.V = 2
	in.publish(msgs, e) // version
	e = in.env("say", "mallory", "intruder, no version")
	e.V = "1"
	in.publish(msgs, e) // malformed: "v" is a string
	e = in.env("say", "mallory", "intruder in another room")
	e.Room = "other"
	in.publish(msgs, e) // room
	e = in.env("say", "mallory", "intruder with a forged id")
	e.ID = "admin"
	in.publish(msgs, e) // id
	e = in.env("say", "mallory", "intruder with a forged gateway")
	e.GW = "ADMIN GATEWAY"
	in.publish(msgs, e) // id
	e = in.env("nick", "bob", "\x1b]0;intruder\x07")
	in.publish(events, e) // nick: the new nickname

	// Private messages to bob.
	e = in.env("msg", "admin", "your password please\n* private from admin: now")
	e.Room, e.To = "", "bob"
	in.publish(toBob, e) // text
	e = in.env("msg", "admin\n* server shutting down", "intruder")
	e.Room, e.To = "", "bob"
	in.publish(toBob, e) // nick
	e = in.env("msg", "admin", "intruder to someone else")
	e.Room, e.To = "", "alice"
	in.publish(toBob, e) // recipient: "to" is not the subject's
	e = in.env("msg", "admin", "")
	e.Room, e.To = "", "bob"
	in.publish(toBob, e) // text: empty

	// Straight into the history stream, acknowledged by JetStream.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	e = in.env("say", "carol", "[12:00] admin: intruder\x1b[1A")
	if _, err := js.Publish(ctx, msgs, mustJSON(t, e)); err != nil {
		t.Fatalf("publish into the history stream: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	// The server has passed all of it to both gateways before any line
	// below: whatever they delivered comes before the markers.
	for _, c := range []*client{alice, bob} {
		checkClean(t, c.Nick, c.Sync())
	}
	for _, w := range []*wsClient{webA, webB} {
		for _, m := range w.sync() {
			checkClean(t, w.nick, []string{m.String(), m.Nick, m.Text, m.From})
		}
	}
	alice.Send("/msg bob private marker\n")
	checkClean(t, "bob", bob.Expect("*** private from alice: private marker"))

	// A newcomer on each gateway: its replay holds only honest lines.
	replay := regexp.MustCompile(`^\[[0-9:]{5}\] (\* )?(alice|bob|weba|webb)[: ]`)
	carol := dial(t, a2)
	carol.ExpectName()
	carol.Send("carol\n")
	carol.Nick = "carol"
	carol.Expect("Connected to server!")
	carol.ExpectPrefix("--- last ")
	hist := carol.Expect("--- live ---")
	if len(hist) < 2 {
		t.Errorf("carol's replay = %q, want the honest lines", hist)
	}
	for _, l := range hist {
		if !replay.MatchString(l) || rawLine.MatchString(l) {
			t.Errorf("carol's replay holds %q", l)
		}
	}
	webC := wsDial(t, g1)
	webC.nick = "webc"
	webC.send(map[string]any{"type": "hello", "v": 1, "nick": "webc"})
	webC.expectType("welcome")
	h := webC.expectType("history")
	honest := map[string]bool{"alice": true, "bob": true, "weba": true, "webb": true}
	if len(h.Events) < 2 {
		t.Errorf("webc's replay = %v, want the honest lines", h)
	}
	for _, ev := range h.Events {
		if !honest[ev.Nick] || rawLine.MatchString(ev.Text) {
			t.Errorf("webc's replay holds %v", ev)
		}
	}

	// The honest users chat on.
	bob.Send("still here\n")
	for _, c := range []*client{alice, bob, carol} {
		checkClean(t, c.Nick, c.Expect("bob: still here"))
	}
	for _, w := range []*wsClient{webA, webB, webC} {
		w.expectEvent("say", "bob", "still here")
	}
	webB.line("/msg alice all good")
	alice.Expect("*** private from webb: all good")

	// Each gateway counted what it dropped, by reason. Both got every room
	// and private envelope; each read the stream for its newcomer.
	want := map[string]float64{
		"malformed": 4, "version": 1, "kind": 3, "room": 1, "id": 2,
		"nick": 3, "text": 5, "too_long": 1, "recipient": 1,
	}
	for i, g := range []*Main{g1, g2} {
		url := "http://" + g.AdminAddr().String() + "/metrics"
		checkFor(t, waitFor, func() error {
			code, body, err := get(url)
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("GET /metrics: %d, %v", code, err)
			}
			for reason, n := range want {
				name := fmt.Sprintf(`chatd_bus_rejected_total{reason=%q}`, reason)
				if got, ok := metric(body, name); !ok || got < n {
					return fmt.Errorf("gateway %d: %s = %v (present %v), want at least %v", i+1, name, got, ok, n)
				}
			}
			return nil
		})
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
