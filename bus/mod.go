package bus

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Moderation: the chat_mod bucket holds what operators decided, for every
// gateway, and chat.v1.mod.<nickkey> carries their orders to one user's
// gateway. Keys and values (JSON; times are Unix milliseconds, until 0 is
// "no end"):
//
//	op.<nickkey>        {"nick","gw"}                         an operator now, through gateway gw
//	ban.nick.<nickkey>  {"nick","by","reason","at","until"}   a banned nickname
//	ban.net.<hex>       {"net","by","reason","at","until"}    a banned address or CIDR prefix (hex of its text)
//	mute.<nickkey>      {"nick","by","reason","at","until"}   a muted nickname
//	topic.<room>        {"text","by","at"}                    a room's topic
//	reg.<nickkey>       {"nick","hash","at"}                  a registered nickname and its password hash
//
// Every gateway watches the bucket (watchMod) and keeps its current
// entries in memory; an entry that is not what a gateway writes (checkMod)
// is ignored, counted and logged at most once per rejectLogEvery, as an
// envelope is. An expired ban or mute is ignored by everyone and deleted by
// the sweep. An op entry counts only while its gateway holds a lease.

// ModBucket is the moderation bucket.
const ModBucket = "chat_mod"

// MaxReason bounds a ban, mute or kick reason, in bytes.
const MaxReason = 300

// MaxTopic bounds a room topic, in bytes.
const MaxTopic = 390

// Ban is one cluster-wide ban: of a nickname (Nick) or of an address
// prefix (Net, valid). Until zero: no end.
type Ban struct {
	Nick       string
	Net        netip.Prefix
	By, Reason string
	At, Until  time.Time
}

// Mute is one muted nickname. Until zero: no end.
type Mute struct {
	Nick, By, Reason string
	At, Until        time.Time
}

// Topic is a room's topic.
type Topic struct {
	Text, By string
	At       time.Time
}

// modRec is the value of a chat_mod entry.
type modRec struct {
	Nick   string `json:"nick,omitempty"`
	Net    string `json:"net,omitempty"`
	GW     string `json:"gw,omitempty"`
	By     string `json:"by,omitempty"`
	Reason string `json:"reason,omitempty"`
	Text   string `json:"text,omitempty"`
	At     int64  `json:"at,omitempty"`
	Until  int64  `json:"until,omitempty"`
	Hash   string `json:"hash,omitempty"`
}

func (r *modRec) expired(now time.Time) bool {
	return r.Until != 0 && now.UnixMilli() >= r.Until
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func timeMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// modState is this gateway's copy of chat_mod, by key. Safe for
// concurrent use.
type modState struct {
	mu      sync.RWMutex
	entries map[string]modRec

	rejected   atomic.Uint64
	nextLog    atomic.Int64
	suppressed atomic.Uint64
}

// netKey is the chat_mod key of a ban of p.
func netKey(p netip.Prefix) string { return "ban.net." + hex.EncodeToString([]byte(p.String())) }

// checkMod decodes a chat_mod value and says what is wrong with it, if
// anything.
func (c *Conn) checkMod(key string, val []byte) (modRec, string) {
	var r modRec
	if err := json.Unmarshal(val, &r); err != nil {
		return r, "not a JSON record"
	}
	rules := &c.cfg.Rules
	nickFor := func(want string) string {
		if !rules.Nick(r.Nick) {
			return "no valid nickname"
		}
		if k, err := NickKey(r.Nick); err != nil || k != want {
			return "nickname does not match the key"
		}
		return ""
	}
	decision := func() string {
		switch {
		case !rules.Nick(r.By):
			return "no valid operator"
		case len(r.Reason) > MaxReason || (r.Reason != "" && !rules.Text(r.Reason)):
			return "reason too long or not clean text"
		case r.At <= 0 || r.Until < 0:
			return "no valid time"
		}
		return ""
	}
	kind, rest, _ := strings.Cut(key, ".")
	switch kind {
	case "op":
		if why := nickFor(rest); why != "" {
			return r, why
		}
		if !validGatewayID(r.GW) {
			return r, "no valid gateway id"
		}
		return r, ""
	case "mute":
		if why := nickFor(rest); why != "" {
			return r, why
		}
		return r, decision()
	case "ban":
		sub, k, _ := strings.Cut(rest, ".")
		switch sub {
		case "nick":
			if why := nickFor(k); why != "" {
				return r, why
			}
		case "net":
			p, err := netip.ParsePrefix(r.Net)
			if err != nil || p != p.Masked() || netKey(p) != key {
				return r, "no valid prefix, or one that does not match the key"
			}
		default:
			return r, "unknown kind of ban"
		}
		return r, decision()
	case "reg":
		if why := nickFor(rest); why != "" {
			return r, why
		}
		if !validHash(r.Hash) || r.At <= 0 {
			return r, "no valid password hash or time"
		}
		return r, ""
	case "topic":
		switch {
		case ValidRoom(rest) != nil:
			return r, "not a room"
		case !rules.Nick(r.By):
			return r, "no valid author"
		case r.Text == "" || len(r.Text) > MaxTopic || !rules.Text(r.Text):
			return r, "topic empty, too long or not clean text"
		case r.At <= 0:
			return r, "no valid time"
		}
		return r, ""
	}
	return r, "unknown key"
}

// validHash reports whether h looks like a password hash a gateway writes:
// a bcrypt hash ($2a$, $2b$ or $2y$, 60 printable ASCII characters).
func validHash(h string) bool {
	if len(h) != 60 || !(strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$")) {
		return false
	}
	for i := 0; i < len(h); i++ {
		if h[i] <= ' ' || h[i] >= 0x7f {
			return false
		}
	}
	return true
}

// rejectMod counts and logs, at most once per rejectLogEvery, an entry of
// chat_mod that is not what a gateway writes.
func (c *Conn) rejectMod(key, why string) {
	st := &c.mod
	st.rejected.Add(1)
	now := time.Now().UnixNano()
	next := st.nextLog.Load()
	if now < next || !st.nextLog.CompareAndSwap(next, now+int64(rejectLogEvery)) {
		st.suppressed.Add(1)
		return
	}
	c.log.Warn("bus: ignoring a moderation entry chatd did not write (a NATS client that is not a chatd gateway, or a bug)",
		"bucket", ModBucket, "key", key, "why", why, "also_ignored_since_last_log", st.suppressed.Swap(0))
}

// ModRejected counts the chat_mod entries this Conn ignored as invalid.
func (c *Conn) ModRejected() uint64 { return c.mod.rejected.Load() }

// watchMod loads chat_mod, then keeps following it until Close; after each
// change it calls Config.OnModeration. It returns once the current entries
// are loaded (or ctx ends).
func (c *Conn) watchMod(ctx context.Context) error {
	c.mod.entries = make(map[string]modRec)
	wctx, cancel := context.WithCancel(context.Background())
	w, err := c.modKV.WatchAll(wctx)
	if err != nil {
		cancel()
		return fmt.Errorf("bus: watch %s: %w", ModBucket, err)
	}
	loaded := make(chan struct{})
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		defer func() { _ = w.Stop() }()
		initial := true
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case <-c.done:
				return
			case e, ok = <-w.Updates():
			}
			if !ok {
				return
			}
			if e == nil {
				if initial {
					initial = false
					close(loaded)
				}
				continue
			}
			c.applyMod(e)
			if !initial && c.cfg.OnModeration != nil {
				c.cfg.OnModeration()
			}
		}
	}()
	select {
	case <-loaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bus: load %s: %w", ModBucket, ctx.Err())
	}
}

// applyMod records one update of chat_mod.
func (c *Conn) applyMod(e jetstream.KeyValueEntry) {
	key := e.Key()
	if e.Operation() != jetstream.KeyValuePut {
		c.mod.mu.Lock()
		delete(c.mod.entries, key)
		c.mod.mu.Unlock()
		return
	}
	r, why := c.checkMod(key, e.Value())
	c.mod.mu.Lock()
	if why != "" {
		delete(c.mod.entries, key)
	} else {
		c.mod.entries[key] = r
	}
	c.mod.mu.Unlock()
	if why != "" {
		c.rejectMod(key, why)
	}
}

// modEntries returns the entries whose key starts with prefix.
func (c *Conn) modEntries(prefix string) map[string]modRec {
	c.mod.mu.RLock()
	defer c.mod.mu.RUnlock()
	out := make(map[string]modRec)
	for k, r := range c.mod.entries {
		if strings.HasPrefix(k, prefix) {
			out[k] = r
		}
	}
	return out
}

func (c *Conn) modPut(ctx context.Context, key string, r modRec) error {
	if c.closing.Load() {
		return ErrClosed
	}
	val, _ := json.Marshal(r)
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	if _, err := c.kvPut(ctx, c.modKV, key, val); err != nil {
		return fmt.Errorf("bus: write %s/%s: %w", ModBucket, key, err)
	}
	// Known here at once; the watch brings the same a moment later.
	c.mod.mu.Lock()
	c.mod.entries[key] = r
	c.mod.mu.Unlock()
	return nil
}

// modDelete deletes key and reports whether it held a value.
func (c *Conn) modDelete(ctx context.Context, key string) (bool, error) {
	if c.closing.Load() {
		return false, ErrClosed
	}
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	e, err := c.kvGet(ctx, c.modKV, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("bus: read %s/%s: %w", ModBucket, key, err)
	}
	if err := c.kvDelete(ctx, c.modKV, key, e.Revision()); err != nil && !isConflict(err) {
		return false, fmt.Errorf("bus: delete %s/%s: %w", ModBucket, key, err)
	}
	c.mod.mu.Lock()
	delete(c.mod.entries, key)
	c.mod.mu.Unlock()
	return true, nil
}

// SetOper records (on) or removes that nick, a user of this gateway, is an
// operator.
func (c *Conn) SetOper(ctx context.Context, nick string, on bool) error {
	key, err := NickKey(nick)
	if err != nil {
		return err
	}
	if !on {
		_, err := c.modDelete(ctx, "op."+key)
		return err
	}
	return c.modPut(ctx, "op."+key, modRec{Nick: nick, GW: c.id})
}

// Opers lists the operators now, across the cluster: those whose gateway
// holds a lease.
func (c *Conn) Opers(ctx context.Context) ([]string, error) {
	ops := c.modEntries("op.")
	if len(ops) == 0 {
		return nil, nil
	}
	live, err := c.m.liveGateways(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range ops {
		if _, ok := live[r.GW]; ok || r.GW == c.id {
			out = append(out, r.Nick)
		}
	}
	slices.Sort(out)
	return out, nil
}

// PutBan writes a ban of b.Nick or, if b.Net is valid, of b.Net.
func (c *Conn) PutBan(ctx context.Context, b Ban) error {
	r := modRec{By: b.By, Reason: b.Reason, At: timeMS(b.At), Until: timeMS(b.Until)}
	var key string
	if b.Net.IsValid() {
		p := b.Net.Masked()
		key, r.Net = netKey(p), p.String()
	} else {
		k, err := NickKey(b.Nick)
		if err != nil {
			return err
		}
		key, r.Nick = "ban.nick."+k, b.Nick
	}
	return c.modPut(ctx, key, r)
}

// DeleteBan lifts the ban of b.Nick, or of b.Net if valid, and reports
// whether there was one.
func (c *Conn) DeleteBan(ctx context.Context, b Ban) (bool, error) {
	if b.Net.IsValid() {
		return c.modDelete(ctx, netKey(b.Net.Masked()))
	}
	k, err := NickKey(b.Nick)
	if err != nil {
		return false, err
	}
	return c.modDelete(ctx, "ban.nick."+k)
}

// Bans returns the bans in force now, nicknames first, sorted.
func (c *Conn) Bans() []Ban {
	now := time.Now()
	var out []Ban
	for _, r := range c.modEntries("ban.") {
		if r.expired(now) {
			continue
		}
		b := Ban{Nick: r.Nick, By: r.By, Reason: r.Reason, At: msTime(r.At), Until: msTime(r.Until)}
		if r.Net != "" {
			b.Net, _ = netip.ParsePrefix(r.Net)
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Ban) int {
		switch {
		case a.Net.IsValid() != b.Net.IsValid():
			if a.Net.IsValid() {
				return 1 // nicknames first
			}
			return -1
		case a.Net.IsValid():
			return strings.Compare(a.Net.String(), b.Net.String())
		}
		return strings.Compare(strings.ToLower(a.Nick), strings.ToLower(b.Nick))
	})
	return out
}

// PutMute writes a mute of m.Nick.
func (c *Conn) PutMute(ctx context.Context, m Mute) error {
	k, err := NickKey(m.Nick)
	if err != nil {
		return err
	}
	return c.modPut(ctx, "mute."+k, modRec{Nick: m.Nick, By: m.By, Reason: m.Reason, At: timeMS(m.At), Until: timeMS(m.Until)})
}

// DeleteMute lifts the mute of nick and reports whether there was one.
func (c *Conn) DeleteMute(ctx context.Context, nick string) (bool, error) {
	k, err := NickKey(nick)
	if err != nil {
		return false, err
	}
	return c.modDelete(ctx, "mute."+k)
}

// Mutes returns the mutes in force now, sorted by nickname.
func (c *Conn) Mutes() []Mute {
	now := time.Now()
	var out []Mute
	for _, r := range c.modEntries("mute.") {
		if !r.expired(now) {
			out = append(out, Mute{Nick: r.Nick, By: r.By, Reason: r.Reason, At: msTime(r.At), Until: msTime(r.Until)})
		}
	}
	slices.SortFunc(out, func(a, b Mute) int { return strings.Compare(a.Nick, b.Nick) })
	return out
}

// SetTopic sets room's topic (t.Text empty: clears it) and announces it to
// the room (KindTopic).
func (c *Conn) SetTopic(ctx context.Context, room string, t Topic) error {
	if err := ValidRoom(room); err != nil {
		return err
	}
	if t.Text == "" {
		if _, err := c.modDelete(ctx, "topic."+room); err != nil {
			return err
		}
	} else if err := c.modPut(ctx, "topic."+room, modRec{Text: t.Text, By: t.By, At: timeMS(t.At)}); err != nil {
		return err
	}
	subject, err := EventSubject(room, KindTopic)
	if err != nil {
		return err
	}
	e := Envelope{Kind: KindTopic, Room: room, Nick: t.By, Text: t.Text}
	return c.publish(subject, &e)
}

// Topic returns room's topic, if it has one.
func (c *Conn) Topic(room string) (Topic, bool) {
	c.mod.mu.RLock()
	r, ok := c.mod.entries["topic."+room]
	c.mod.mu.RUnlock()
	if !ok {
		return Topic{}, false
	}
	return Topic{Text: r.Text, By: r.By, At: msTime(r.At)}, true
}

// Kick asks the gateway of nick to remove nick from room, for operator by,
// and reports whether a gateway did. Like SendPrivate: (false, nil) when
// nobody answered.
func (c *Conn) Kick(ctx context.Context, room, nick, by, reason string) (bool, error) {
	subject, err := ModSubject(nick)
	if err != nil {
		return false, err
	}
	if err := ValidRoom(room); err != nil {
		return false, err
	}
	if c.closing.Load() {
		return false, ErrClosed
	}
	parent := ctx
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	e := Envelope{Kind: KindKick, Room: room, Nick: by, To: nick, Text: reason}
	c.stamp(&e)
	_, err = c.nc.RequestWithContext(ctx, subject, Encode(nil, &e))
	switch {
	case err == nil:
		return true, nil
	case parent.Err() != nil:
		return false, parent.Err()
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return false, nil
	}
	return false, fmt.Errorf("bus: kick %q: %w", nick, err)
}

// ReceiveKicks subscribes this gateway to chat.v1.mod.* and calls kick for
// every order; kick reports whether the user is on this gateway and in
// room, and was removed: only then does this gateway answer. Orders that
// break the contract are dropped. kick runs on one nats.go goroutine and
// must not block. A gateway calls it once.
func (c *Conn) ReceiveKicks(kick func(room, nick, by, reason string) bool) (stop func(), err error) {
	if kick == nil {
		return nil, errors.New("bus: ReceiveKicks: nil func")
	}
	if c.closing.Load() {
		return nil, ErrClosed
	}
	sub, err := c.nc.Subscribe(ModSubjects, func(m *nats.Msg) {
		e, ok := c.accept(onMod, m.Subject, m.Data)
		if !ok {
			return
		}
		if kick(e.Room, e.To, e.Nick, e.Text) && m.Reply != "" {
			if err := m.Respond(okReply); err != nil {
				c.log.Debug("bus: kick reply", "err", err)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", ModSubjects, err)
	}
	c.flush()
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := sub.Unsubscribe(); err != nil && !c.closing.Load() {
				c.log.Debug("bus: unsubscribe", "subject", ModSubjects, "err", err)
			}
		})
	}, nil
}

// PartKicked is Part for a user an operator removed: the room hears
// KindKick (text "<by> <reason>") instead of KindLeave.
func (c *Conn) PartKicked(ctx context.Context, room, nick, by, reason string) error {
	key, err := presenceKey(room, nick)
	if err != nil {
		return err
	}
	if c.closing.Load() {
		return ErrClosed
	}
	m := c.m
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	_, derr := m.dropEntry(ctx, key, room, nick)
	if derr != nil {
		derr = fmt.Errorf("bus: kick from %s: presence: %w", room, derr)
	}
	text := by
	if reason != "" {
		text += " " + reason
	}
	return errors.Join(derr, m.announce(room, KindKick, nick, text))
}

// PutReg registers nick with the password hash hash (a bcrypt hash),
// replacing any registration of it.
func (c *Conn) PutReg(ctx context.Context, nick, hash string) error {
	k, err := NickKey(nick)
	if err != nil {
		return err
	}
	if !validHash(hash) {
		return fmt.Errorf("bus: register %q: not a bcrypt hash", nick)
	}
	return c.modPut(ctx, "reg."+k, modRec{Nick: nick, Hash: hash, At: time.Now().UnixMilli()})
}

// DeleteReg drops nick's registration and reports whether there was one.
func (c *Conn) DeleteReg(ctx context.Context, nick string) (bool, error) {
	k, err := NickKey(nick)
	if err != nil {
		return false, err
	}
	return c.modDelete(ctx, "reg."+k)
}

// Reg returns the password hash of nick, if it is registered.
func (c *Conn) Reg(nick string) (string, bool) {
	k, err := NickKey(nick)
	if err != nil {
		return "", false
	}
	c.mod.mu.RLock()
	r, ok := c.mod.entries["reg."+k]
	c.mod.mu.RUnlock()
	return r.Hash, ok
}

// sweepMod deletes the bans and mutes that have expired, and the operator
// entries of gateways that are gone (not while this gateway may not judge
// that: mayJudge).
func (c *Conn) sweepMod(ctx context.Context) {
	now := time.Now()
	var live map[string]struct{}
	if c.m.mayJudge() {
		live, _ = c.m.liveGateways(ctx)
	}
	var keys []string
	for k, r := range c.modEntries("") {
		switch {
		case (strings.HasPrefix(k, "ban.") || strings.HasPrefix(k, "mute.")) && r.expired(now):
			keys = append(keys, k)
		case strings.HasPrefix(k, "op.") && live != nil && r.GW != c.id:
			if _, ok := live[r.GW]; !ok {
				keys = append(keys, k)
			}
		}
	}
	for _, k := range keys {
		if _, err := c.modDelete(ctx, k); err != nil {
			c.log.Debug("bus: sweep expired moderation entry", "key", k, "err", err)
		}
	}
}
