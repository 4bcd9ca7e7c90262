package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reads and writes of chat_nicks, chat_presence and chat_gateways.
//
// Every read that a write or an announcement depends on asks the stream
// leader (kvGet), not any replica: a replica of an R3 bucket answers the
// bucket's direct gets once it is nearly caught up, and the third one may
// not have applied the last write yet — a broker just restarted, most of
// all. Read there, a nickname just released was still taken, and a record
// just written was missing: the release or the part that read it deleted
// nothing, and the user stayed in /who, holding the nickname. What the
// leader has acknowledged, it has applied. Watches (Who, the sweep, the
// lease watch) read the stream from its start and need no such care.
//
// Every write rolls its key up (header Nats-Rollup: sub): the revision it
// replaces is purged by the write itself, and a delete is a purge marker
// (kv.Purge), not a delete marker. A revision the bucket drops because of
// its history limit of 1 is removed without a tombstone in the file store;
// if the revision after it is later purged (the sweep purges old markers),
// a restart after kill -9 that rebuilds the store from its blocks brings
// the dropped revision back: users who had quit were back in /who, holding
// their nicknames. A revision removed by a rollup or a purge leaves a
// tombstone, so nothing removed ever comes back.

const (
	hdrKVOp     = "KV-Operation"
	kvOpDelete  = "DEL"
	kvOpPurge   = "PURGE"
	hdrRollup   = "Nats-Rollup"
	rollupByKey = "sub"
	// hdrDeletedBy names, on a purge marker, the gateway that wrote it: a
	// gateway whose delete timed out reads the marker back to learn
	// whether its delete was applied (kvDeleteSure).
	hdrDeletedBy = "Chatd-Deleted-By"

	// errCodeNoMessage is JetStream's error code for "no message found".
	errCodeNoMessage = 10037
)

// kvSubject is the stream subject of key in kv.
func kvSubject(kv jetstream.KeyValue, key string) string {
	return "$KV." + kv.Bucket() + "." + key
}

// kvPublish writes val under key, rolling the key up. With check, the
// write succeeds only if the key's last revision is last (0: no message).
func (c *Conn) kvPublish(ctx context.Context, kv jetstream.KeyValue, key string, val []byte, check bool, last uint64) (uint64, error) {
	m := &nats.Msg{Subject: kvSubject(kv, key), Header: nats.Header{hdrRollup: {rollupByKey}}, Data: val}
	if check {
		m.Header[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(last, 10)}
	}
	start := time.Now()
	seq, err := c.kvp.write(ctx, m)
	c.observe(OpKVWrite, start, err)
	return seq, err
}

// kvPut writes val under key whatever is there.
func (c *Conn) kvPut(ctx context.Context, kv jetstream.KeyValue, key string, val []byte) (uint64, error) {
	return c.kvPublish(ctx, kv, key, val, false, 0)
}

// kvUpdate writes val under key if its revision is still rev.
func (c *Conn) kvUpdate(ctx context.Context, kv jetstream.KeyValue, key string, val []byte, rev uint64) (uint64, error) {
	return c.kvPublish(ctx, kv, key, val, true, rev)
}

// kvCreate writes val under key if the key has no value (never written,
// or deleted); otherwise it fails with a conflict (isConflict).
func (c *Conn) kvCreate(ctx context.Context, kv jetstream.KeyValue, key string, val []byte) (uint64, error) {
	rev, err := c.kvPublish(ctx, kv, key, val, true, 0)
	if err == nil || !isConflict(err) {
		return rev, err
	}
	// A marker is there: write over it if it is still the last revision.
	e, serr := c.kvLast(ctx, kv, key)
	switch {
	case errors.Is(serr, jetstream.ErrKeyNotFound):
		return 0, err // gone meanwhile: a conflict all the same; callers retry
	case serr != nil:
		return 0, serr
	}
	if e.op == jetstream.KeyValuePut {
		return 0, err
	}
	return c.kvPublish(ctx, kv, key, val, true, e.rev)
}

// kvDelete deletes key if its revision is still rev, with a purge marker.
func (c *Conn) kvDelete(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64) error {
	if !validKVKey(key) {
		return jetstream.ErrInvalidKey
	}
	m := &nats.Msg{Subject: kvSubject(kv, key), Header: nats.Header{
		hdrKVOp:      {kvOpPurge},
		hdrRollup:    {rollupByKey},
		hdrDeletedBy: {c.id},
	}}
	if rev != 0 {
		m.Header[jetstream.ExpectedLastSubjSeqHeader] = []string{strconv.FormatUint(rev, 10)}
	}
	start := time.Now()
	_, err := c.kvp.write(ctx, m)
	c.observe(OpKVDelete, start, err)
	return err
}

// kvDeleteSure is kvDelete for a delete whose outcome decides who
// announces something (a clean-up's departures). When the delete fails
// without a conflict (a timeout: the broker may have applied it and the
// acknowledgement come late), it reads the key back from the stream
// leader: a marker of this gateway's after rev means the delete was
// applied (success); rev still the last revision means it was not, and it
// tries again, up to tries times in all, each step within timeout. A
// conflict on the first try, or anything else found, is a conflict error:
// another gateway's delete or write came first.
func (c *Conn) kvDeleteSure(kv jetstream.KeyValue, key string, rev uint64, tries int, timeout time.Duration) error {
	var err error
	for try := range tries {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err = c.kvDelete(ctx, kv, key, rev)
		cancel()
		if err == nil || try == 0 && isConflict(err) || c.closing.Load() {
			return err
		}
		// Unknown, or a conflict after a try that may have been applied.
		ctx, cancel = context.WithTimeout(context.Background(), timeout)
		e, gerr := c.kvLast(ctx, kv, key)
		cancel()
		switch {
		case errors.Is(gerr, jetstream.ErrKeyNotFound):
			return jetstream.ErrKeyRevisionMismatch
		case gerr != nil:
			continue // not known: the next try's outcome is read back too
		case e.rev == rev:
			continue // not applied
		case e.op != jetstream.KeyValuePut && e.by == c.id:
			return nil // applied, acknowledged late
		default:
			return jetstream.ErrKeyRevisionMismatch
		}
	}
	return err
}

// kvEntry is the last revision of a key, as the stream leader has it. It
// is a jetstream.KeyValueEntry.
type kvEntry struct {
	bucket, key string
	value       []byte
	rev         uint64
	created     time.Time
	op          jetstream.KeyValueOp
	by          string // a purge marker's writer (hdrDeletedBy)
}

func (e *kvEntry) Bucket() string                  { return e.bucket }
func (e *kvEntry) Key() string                     { return e.key }
func (e *kvEntry) Value() []byte                   { return e.value }
func (e *kvEntry) Revision() uint64                { return e.rev }
func (e *kvEntry) Created() time.Time              { return e.created }
func (e *kvEntry) Delta() uint64                   { return 0 }
func (e *kvEntry) Operation() jetstream.KeyValueOp { return e.op }

// kvGet returns the value of key in kv as the stream leader has it, or
// jetstream.ErrKeyNotFound if it has none (never written, or deleted).
func (c *Conn) kvGet(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	e, err := c.kvLast(ctx, kv, key)
	if err != nil {
		return nil, err
	}
	if e.op != jetstream.KeyValuePut {
		return nil, jetstream.ErrKeyNotFound
	}
	return e, nil
}

// kvLast returns the last message of key in kv, a delete or purge marker
// included, asking the stream leader (the message-get API, which only the
// leader answers), or jetstream.ErrKeyNotFound if there is none.
func (c *Conn) kvLast(ctx context.Context, kv jetstream.KeyValue, key string) (*kvEntry, error) {
	if !validKVKey(key) {
		return nil, jetstream.ErrInvalidKey
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = c.opContext(ctx)
		defer cancel()
	}
	req, _ := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{kvSubject(kv, key)})
	start := time.Now()
	msg, err := c.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.KV_"+kv.Bucket(), req)
	c.observe(OpKVGet, start, err)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Message *struct {
			Seq    uint64    `json:"seq"`
			Header []byte    `json:"hdrs"`
			Data   []byte    `json:"data"`
			Time   time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("bus: get %s/%s: %w", kv.Bucket(), key, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == errCodeNoMessage:
		return nil, jetstream.ErrKeyNotFound
	case resp.Error != nil:
		return nil, resp.Error
	case resp.Message == nil:
		return nil, fmt.Errorf("bus: get %s/%s: an answer without a message", kv.Bucket(), key)
	}
	e := &kvEntry{bucket: kv.Bucket(), key: key, value: resp.Message.Data, rev: resp.Message.Seq,
		created: resp.Message.Time, op: jetstream.KeyValuePut}
	if len(resp.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Header)
		if err != nil {
			return nil, fmt.Errorf("bus: get %s/%s: %w", kv.Bucket(), key, err)
		}
		switch h.Get(hdrKVOp) {
		case kvOpDelete:
			e.op = jetstream.KeyValueDelete
		case kvOpPurge:
			e.op = jetstream.KeyValuePurge
		}
		e.by = h.Get(hdrDeletedBy)
	}
	return e, nil
}

// validKVKey reports whether key is a valid KV key: letters, digits and
// - / _ = . only, not starting or ending with a dot (a key read from a
// record is untrusted).
func validKVKey(key string) bool {
	if key == "" || key[0] == '.' || key[len(key)-1] == '.' {
		return false
	}
	for i := 0; i < len(key); i++ {
		switch b := key[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case b == '-', b == '/', b == '_', b == '=', b == '.':
		default:
			return false
		}
	}
	return true
}
