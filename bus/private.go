package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// okReply is the reply of the gateway that delivered a private message.
var okReply = []byte("ok")

// SendPrivate sends text from one nick to another as a request on
// chat.v1.user.<nickkey of to>. It first looks to up in chat_nicks: if
// nobody holds it, it reports false at once. Otherwise it reports whether a
// gateway answered, within RequestTimeout, that it delivered the message. A
// timeout or no responders is (false, nil); only a cancelled ctx or a bus
// failure is an error. The holder's lease is not checked: while JetStream
// has lost its quorum no lease can be refreshed, yet the holders are alive
// and answer; a holder that is gone does not.

func (c *Conn) SendPrivate(ctx context.Context, to, from, text string) (bool, error) {
	subject, err := UserSubject(to)
	if err != nil {
		return false, err
	}
	if c.closing.Load() {
		return false, ErrClosed
	}
	parent := ctx
	ctx, cancel := c.opContext(ctx)
	defer cancel()
	if ok, err := c.nickOnline(ctx, to); err != nil || !ok {
		return false, err
	}
	e := Envelope{Kind: KindMsg, Nick: from, Text: text, To: to}
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
	return false, fmt.Errorf("bus: private message to %q: %w", to, err)
}

// nickOnline reports whether nick is held, by a gateway alive or not. It
// reads any replica (a direct get), not the leader: it writes nothing, and
// a replica answers while JetStream has lost its quorum, so /msg goes on.
func (c *Conn) nickOnline(ctx context.Context, nick string) (bool, error) {
	key, err := NickKey(nick)
	if err != nil {
		return false, err
	}
	_, err = c.nicks.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("bus: look up nick %q: %w", nick, err)
	}
	return true, nil
}

// ReceivePrivate subscribes this gateway to chat.v1.user.* and calls
// deliver for every private message sent to any nick. deliver reports
// whether the recipient (to, as the sender typed it: compare
// case-insensitively) is on this gateway and got the message; only then does
// this gateway reply, and the sender's SendPrivate reports true. Envelopes
// that break the contract (validate.go) are dropped. deliver runs
// on one nats.go goroutine and must not block. A gateway calls it once.
func (c *Conn) ReceivePrivate(deliver func(to, from, text string, at time.Time) bool) (stop func(), err error) {
	if deliver == nil {
		return nil, errors.New("bus: ReceivePrivate: nil deliver func")
	}
	if c.closing.Load() {
		return nil, ErrClosed
	}
	sub, err := c.nc.Subscribe(UserSubjects, func(m *nats.Msg) {
		e, ok := c.accept(onUser, m.Subject, m.Data)
		if !ok {
			return
		}
		if deliver(e.To, e.Nick, e.Text, time.Unix(0, e.TS)) && m.Reply != "" {
			if err := m.Respond(okReply); err != nil {
				c.log.Debug("bus: private message reply", "err", err)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("bus: subscribe %s: %w", UserSubjects, err)
	}
	if err := sub.SetPendingLimits(PendingMsgsLimit, PendingBytesLimit); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("bus: subscribe %s: %w", UserSubjects, err)
	}
	c.flush()
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := sub.Unsubscribe(); err != nil && !c.closing.Load() {
				c.log.Debug("bus: unsubscribe", "subject", UserSubjects, "err", err)
			}
		})
	}, nil
}
