package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream stream and KV buckets shared by all gateways.
const (
	// HistoryStream keeps the last Config.History chat lines of each room
	// (subjects HistorySubjects, one subject per room).
	HistoryStream = "CHAT_HISTORY"
	// GatewaysBucket holds one key per live gateway (its id), value
	// {"name":..,"started":..}, with a TTL of Config.Lease.
	GatewaysBucket = "chat_gateways"
	// NicksBucket maps nickkey to {"nick":"Alice","gw":"<gwid>"}.
	NicksBucket = "chat_nicks"
	// PresenceBucket maps <room>.<nickkey> to {"nick":"Alice","gw":"<gwid>"}.
	PresenceBucket = "chat_presence"
)

// ownerRec is the value of chat_nicks and chat_presence entries.
type ownerRec struct {
	Nick string `json:"nick"`
	GW   string `json:"gw"`
	// Took names the gateway whose record this one replaced, the writer
	// having announced (or, repairing, given up) that user's departure
	// (chat_presence only): that gateway must not announce it again.
	Took string `json:"took,omitempty"`
}

// presenceEntry is one chat_nicks or chat_presence record as read.
type presenceEntry struct {
	key string
	rev uint64
	ownerRec
}

// setupJetStream creates or updates the stream and buckets and writes this
// gateway's lease. A server without JetStream is refused (ErrNoJetStream).
func (c *Conn) setupJetStream(ctx context.Context) error {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return fmt.Errorf("bus: jetstream: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return ErrNoJetStream
		}
		return fmt.Errorf("bus: jetstream: %w", err)
	}
	if err := c.startKVPipe(); err != nil {
		return err
	}
	// history is 1 for the leases, which expire by age, and 2 for the
	// nicknames and presence, whose writes roll their key up (kvwrite.go):
	// a write is stored beside the revision it replaces, which the rollup
	// then purges, leaving a tombstone.
	bucket := func(name, desc string, ttl time.Duration, history uint8) (jetstream.KeyValue, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      name,
			Description: desc,
			History:     history,
			TTL:         ttl,
			Storage:     jetstream.FileStorage,
			Replicas:    c.cfg.Replicas,
		})
		if err != nil {
			return nil, fmt.Errorf("bus: bucket %s: %w", name, err)
		}
		return kv, nil
	}
	if c.gateways, err = bucket(GatewaysBucket, "chatd: live gateways (leases)", c.cfg.Lease, 1); err != nil {
		return err
	}
	if c.nicks, err = bucket(NicksBucket, "chatd: nickname owners", 0, 2); err != nil {
		return err
	}
	if c.presence, err = bucket(PresenceBucket, "chatd: room members", 0, 2); err != nil {
		return err
	}
	if c.modKV, err = bucket(ModBucket, "chatd: operators, bans, mutes and topics", 0, 2); err != nil {
		return err
	}
	if c.cfg.History > 0 {
		c.history, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:              HistoryStream,
			Description:       "chatd: recent chat lines per room",
			Subjects:          []string{HistorySubjects},
			MaxMsgsPerSubject: int64(max(c.cfg.History, c.cfg.Retain)),
			MaxAge:            c.cfg.RetainAge,
			Discard:           jetstream.DiscardOld,
			Storage:           jetstream.FileStorage,
			Replicas:          c.cfg.Replicas,
		})
		if err != nil {
			return fmt.Errorf("bus: stream %s: %w", HistoryStream, err)
		}
	}
	if err := c.waitLeaders(ctx); err != nil {
		return err
	}
	if err := c.m.putLease(ctx); err != nil {
		return err
	}
	c.js = js
	return nil
}

// waitLeaders waits until the stream and every bucket has a leader: on a
// cluster, each one elects its own a moment after it is created or after a
// broker restarts, and until then claims fail and published lines are not
// stored.
func (c *Conn) waitLeaders(ctx context.Context) error {
	for {
		attempt, cancel := context.WithTimeout(ctx, time.Second)
		err := c.leadersReady(attempt)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bus: JetStream not ready: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *Conn) leadersReady(ctx context.Context) error {
	for _, kv := range []jetstream.KeyValue{c.gateways, c.nicks, c.presence, c.modKV} {
		if _, err := c.kvGet(ctx, kv, "leader-probe"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("bucket %s: %w", kv.Bucket(), err)
		}
	}
	if c.history != nil {
		info, err := c.history.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream %s: %w", HistoryStream, err)
		}
		if info.Cluster != nil && info.Cluster.Leader == "" {
			return fmt.Errorf("stream %s has no leader yet", HistoryStream)
		}
	}
	return nil
}

// isConflict reports whether err is a failed compare-and-set on a KV key.
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// readRecord decodes a chat_nicks or chat_presence record and reports
// whether it is one a chatd gateway wrote (see checkRecord). Any other is
// foreign or corrupt: it is logged once per revision and ignored for the
// user, and the code that finds it repairs it: a claim or a join writes
// over it, Who and Rooms delete it.
func (m *membership) readRecord(kv jetstream.KeyValue, e jetstream.KeyValueEntry) (ownerRec, bool) {
	r, reason := checkRecord(kv.Bucket(), e.Key(), e.Value())
	if reason == "" {
		return r, true
	}
	m.mu.Lock()
	id := kv.Bucket() + "/" + e.Key()
	logged := m.bad[id] == e.Revision()
	if !logged {
		if len(m.bad) >= maxBadLogged {
			clear(m.bad)
		}
		m.bad[id] = e.Revision()
	}
	m.mu.Unlock()
	if !logged {
		m.c.log.Warn("bus: ignoring a record chatd did not write", "bucket", kv.Bucket(), "key", e.Key(), "revision", e.Revision(), "why", reason)
	}
	return r, false
}

// maxBadLogged bounds how many foreign records are remembered as logged.
const maxBadLogged = 4096

// checkRecord decodes the value of key in bucket (chat_nicks or
// chat_presence) and says what is wrong with it, if anything: it must be a
// JSON object with a nickname whose key is the record's (for presence,
// <room>.<nickkey>), with no control or space characters, and gateway ids
// (gw, and took if set) of 16 lower-case hex digits. Fields it does not
// know are allowed: later versions may add some.
func checkRecord(bucket, key string, val []byte) (ownerRec, string) {
	var r ownerRec
	if err := json.Unmarshal(val, &r); err != nil {
		return r, "not a JSON record"
	}
	want := key
	if bucket == PresenceBucket {
		room, nickKey, ok := strings.Cut(key, ".")
		if !ok || ValidRoom(room) != nil {
			return r, "not a <room>.<nickkey> key"
		}
		want = nickKey
	}
	switch k, err := NickKey(r.Nick); {
	case err != nil:
		return r, "no valid nickname"
	case k != want:
		return r, "nickname does not match the key"
	case strings.IndexFunc(r.Nick, func(c rune) bool { return !unicode.IsGraphic(c) || unicode.IsSpace(c) }) >= 0:
		return r, "nickname with control or space characters"
	case !validGatewayID(r.GW):
		return r, "no valid gateway id"
	case r.Took != "" && !validGatewayID(r.Took):
		return r, "no valid gateway id in took"
	}
	return r, ""
}
