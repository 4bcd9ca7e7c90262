package bus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// kvPipe carries every write of kvwrite.go (kvPublish, kvDelete: to
// chat_nicks, chat_presence and chat_mod): a JetStream publish whose
// acknowledgement comes back on one subscription this Conn holds for all
// of them. The writes of concurrent operations (the joins of a storm:
// claims, presence records, parts) are pipelined: each is published as
// soon as it is made, without waiting for the others' acknowledgements;
// nats.go sends what piled up since its last write to the server in one
// write, and the acknowledgements come back the same way and are handed to
// their writers by one goroutine. N concurrent writes cost about one round
// trip, not N.
//
// Each write is still its own JetStream message with its own checks
// (Nats-Expected-Last-Subject-Sequence): the stream applies them one at a
// time, in the order they arrive, so two creates of one key pipelined
// together, from one gateway or two, still leave exactly one winner, and
// the loser gets the same conflict as before (isConflict).
//
// What it saves, per write, over jetstream.PublishMsg (a request through
// nats.go's reply multiplexer): the JSON decoding of the acknowledgement
// by reflection (an acknowledgement is parsed by hand; an error, rare, by
// encoding/json), the publish options, and a channel allocated per write
// (they are pooled here).
type kvPipe struct {
	// Set by startKVPipe, before the first write.
	nc     *nats.Conn
	prefix string // reply subjects: prefix + a decimal token
	sub    *nats.Subscription

	mu    sync.Mutex
	next  uint64
	waits map[uint64]chan *nats.Msg
}

// kvPubRetries and kvPubRetryWait are jetstream.PublishMsg's: a write that
// finds no stream to answer it (a leader being elected) is tried again.
const (
	kvPubRetries   = jetstream.DefaultPubRetryAttempts
	kvPubRetryWait = jetstream.DefaultPubRetryWait
)

// startKVPipe subscribes to the acknowledgements of c's KV writes. c.kvp
// is made with c, so that the connection's handlers can call failAll from
// the start.
func (c *Conn) startKVPipe() error {
	p := c.kvp
	p.nc = c.nc
	p.prefix = c.nc.NewInbox() + "."
	sub, err := c.nc.Subscribe(p.prefix+"*", p.onAck)
	if err != nil {
		return fmt.Errorf("bus: KV acknowledgements: %w", err)
	}
	// Acknowledgements never wait on anything: no limit is needed beyond
	// the writes in flight, which the sessions bound.
	_ = sub.SetPendingLimits(-1, -1)
	p.sub = sub
	return nil
}

// onAck hands an acknowledgement to the write waiting for it; one whose
// write gave up (its context ended) is dropped.
func (p *kvPipe) onAck(m *nats.Msg) {
	tok, ok := parseUint(m.Subject[min(len(p.prefix), len(m.Subject)):])
	if !ok {
		return
	}
	p.mu.Lock()
	ch := p.waits[tok]
	delete(p.waits, tok)
	p.mu.Unlock()
	if ch != nil {
		ch <- m // buffered: never blocks
	}
}

// ackChans holds the channels writes wait on, each of capacity 1 and
// empty: a storm makes thousands of writes a second.
var ackChans = sync.Pool{New: func() any { return make(chan *nats.Msg, 1) }}

// request publishes m with a reply subject of the pipe and waits for the
// answer, or until ctx ends.
func (p *kvPipe) request(ctx context.Context, m *nats.Msg) (*nats.Msg, error) {
	ch := ackChans.Get().(chan *nats.Msg)
	p.mu.Lock()
	p.next++
	tok := p.next
	p.waits[tok] = ch
	p.mu.Unlock()
	m.Reply = p.prefix + strconv.FormatUint(tok, 10)
	err := p.nc.PublishMsg(m)
	if err == nil {
		select {
		case r := <-ch:
			ackChans.Put(ch)
			if r == nil { // failAll
				if p.nc.IsClosed() {
					return nil, nats.ErrConnectionClosed
				}
				return nil, nats.ErrDisconnected
			}
			if len(r.Data) == 0 && r.Header.Get("Status") == "503" {
				return nil, nats.ErrNoResponders
			}
			return r, nil
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	p.mu.Lock()
	_, waiting := p.waits[tok]
	delete(p.waits, tok)
	p.mu.Unlock()
	if !waiting {
		// onAck took the channel and is handing the answer over: take
		// it, so that the channel goes back to the pool empty.
		<-ch
	}
	ackChans.Put(ch)
	return nil, err
}

// failAll ends the writes waiting for an acknowledgement when the
// connection is lost or closed: their acknowledgements will not come.
func (p *kvPipe) failAll() {
	p.mu.Lock()
	waits := p.waits
	p.waits = make(map[uint64]chan *nats.Msg)
	p.mu.Unlock()
	for _, ch := range waits {
		ch <- nil // buffered, and its writer's only sender now: never blocks
	}
}

// write publishes m and returns the stream sequence it was stored at, or
// the error JetStream answered (a *jetstream.APIError, wrapped), as
// jetstream.PublishMsg does.
func (p *kvPipe) write(ctx context.Context, m *nats.Msg) (uint64, error) {
	r, err := p.request(ctx, m)
	for try := 0; errors.Is(err, nats.ErrNoResponders) && try < kvPubRetries; try++ {
		t := time.NewTimer(kvPubRetryWait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
		r, err = p.request(ctx, m)
	}
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return 0, jetstream.ErrNoStreamResponse
	case err != nil:
		return 0, err
	}
	return parsePubAck(r.Data)
}

// parsePubAck reads a JetStream publish acknowledgement: the sequence of
// {"stream":"KV_chat_nicks","seq":12} (other fields, such as "domain" or
// "duplicate", may follow), or the error of {"error":{...}}.
func parsePubAck(data []byte) (uint64, error) {
	if bytes.HasPrefix(data, []byte(`{"stream":"`)) && !bytes.Contains(data, []byte(`"error"`)) {
		if i := bytes.Index(data, []byte(`"seq":`)); i > 0 {
			rest := data[i+len(`"seq":`):]
			n := 0
			for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
				n++
			}
			if seq, ok := parseUint(string(rest[:n])); ok && n < len(rest) && (rest[n] == ',' || rest[n] == '}') {
				return seq, nil
			}
		}
	}
	var resp struct {
		Stream string              `json:"stream"`
		Seq    uint64              `json:"seq"`
		Error  *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return 0, jetstream.ErrInvalidJSAck
	}
	if resp.Error != nil {
		return 0, fmt.Errorf("nats: %w", resp.Error)
	}
	if resp.Stream == "" {
		return 0, jetstream.ErrInvalidJSAck
	}
	return resp.Seq, nil
}

// parseUint parses a decimal number without allocating; "" and numbers
// that overflow are refused.
func parseUint(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < '0' || b > '9' {
			return 0, false
		}
		n = n*10 + uint64(b-'0')
	}
	return n, true
}
