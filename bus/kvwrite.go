package bus

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Writes to chat_nicks and chat_presence.
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
)

// kvSubject is the stream subject of key in kv.
func kvSubject(kv jetstream.KeyValue, key string) string {
	return "$KV." + kv.Bucket() + "." + key
}

// kvPublish writes val under key, rolling the key up. With check, the
// write succeeds only if the key's last revision is last (0: no message).
func (c *Conn) kvPublish(ctx context.Context, kv jetstream.KeyValue, key string, val []byte, check bool, last uint64) (uint64, error) {
	m := &nats.Msg{Subject: kvSubject(kv, key), Header: nats.Header{}, Data: val}
	m.Header.Set(hdrRollup, rollupByKey)
	var opts []jetstream.PublishOpt
	if check {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(last))
	}
	ack, err := c.js.PublishMsg(ctx, m, opts...)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
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
	stream, serr := c.js.Stream(ctx, "KV_"+kv.Bucket())
	if serr != nil {
		return 0, serr
	}
	m, serr := stream.GetLastMsgForSubject(ctx, kvSubject(kv, key))
	switch {
	case errors.Is(serr, jetstream.ErrMsgNotFound):
		return 0, err // gone meanwhile: a conflict all the same; callers retry
	case serr != nil:
		return 0, serr
	}
	if op := m.Header.Get(hdrKVOp); op != kvOpDelete && op != kvOpPurge {
		return 0, err
	}
	return c.kvPublish(ctx, kv, key, val, true, m.Sequence)
}

// kvDelete deletes key if its revision is still rev, with a purge marker.
func (c *Conn) kvDelete(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64) error {
	return kv.Purge(ctx, key, jetstream.LastRevision(rev))
}
