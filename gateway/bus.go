package gateway

import (
	"context"
	"time"
)

// Event kinds carried on the bus. Say and Me are chat lines and are kept in
// the room's history; the others are notices.
const (
	KindSay   = "say"   // text is the chat line
	KindMe    = "me"    // text is the action of /me
	KindJoin  = "join"  // nick joined the room
	KindLeave = "leave" // nick left the room; text is the reason, if any
	KindNick  = "nick"  // nick is now known as text
	// KindMissed is not published: a Bus delivers it when it could not
	// recover every line sent to the room while its link was down (the
	// room's stored lines no longer reach back that far); at is when the
	// link went down. Members get one notice.
	KindMissed = "missed"
	// KindGap and KindFilled are not published either: a Bus delivers
	// KindGap when its link drops and it starts holding the room's live
	// events, and KindFilled once it has delivered what the room missed
	// and what it held. A member added in between would get lines from
	// before it came: joins wait for KindFilled.
	KindGap    = "gap"
	KindFilled = "filled"
	// KindFlush is not published either: a BurstBus delivers it after the
	// events that arrived in one burst, once no more of the room's events
	// are waiting.
	KindFlush = "flush"
)

// A BurstBus is a Bus whose subscriptions end every burst of events with
// KindFlush (a KindGap, KindFilled or KindMissed also ends one): the
// gateway then keeps a burst's chat lines and notices and hands them to
// each member together, in one queue append and one writer wake-up, as a server that
// reads many lines at once would. Without it, every event is handed on as
// it comes.
type BurstBus interface {
	Bus
	// FlushesBursts reports whether subscriptions deliver KindFlush.
	FlushesBursts() bool
}

// DeliverFunc receives one room event. id is unique per event across the
// cluster; at is when the publishing gateway sent it.
type DeliverFunc = func(id, kind, nick, text string, at time.Time)

// Bus is what a gateway needs from the message bus that joins it to the other
// gateways. *bus.Conn implements it on NATS.
//
// Every method is safe for concurrent use. Callbacks passed to Bus run on the
// bus's delivery goroutines and must not block: they only hand data on to
// sessions' bounded queues.
//
// What a Bus hands to those callbacks came from outside the process. An
// implementation must deliver only what passes this gateway's own rules:
// nicknames that ValidNickname accepts, text that CleanText accepts and of
// at most Config.MaxLine characters, kinds above. *bus.Conn checks every
// envelope against them (cmd/chatd wires them in as bus.Rules) and drops
// the rest.
type Bus interface {
	// Publish sends one chat line (KindSay, KindMe) to every member of room
	// on every gateway, this gateway's own members included (they receive it
	// through Subscribe). Joins, departures and nickname changes go through
	// Join, Part and Rename.
	Publish(room, kind, nick, text string) error

	// Subscribe calls deliver for every event published to room after
	// Subscribe returns, in publish order per publishing gateway, until
	// unsubscribe is called. A gateway holds one subscription per room.
	// Chat lines published while the bus link was down are delivered when
	// it is back, before newer ones, each exactly once; what can no longer
	// be recovered is reported with one KindMissed event.
	Subscribe(room string, deliver DeliverFunc) (unsubscribe func(), err error)

	// History calls fn for up to n of the most recent chat lines (KindSay,
	// KindMe) of room, oldest first. With history off it calls fn never.
	History(ctx context.Context, room string, n int, fn DeliverFunc) error

	// ClaimNick reserves nick for this gateway across the cluster,
	// case-insensitively. It reports false if someone else holds it.
	ClaimNick(ctx context.Context, nick string) (bool, error)
	// ReleaseNick gives up a nickname claimed by this gateway.
	ReleaseNick(ctx context.Context, nick string) error

	// Join records that nick is in room, for Who and Rooms, and announces
	// it: every member of room, nick included, receives KindJoin. Part
	// removes the record and announces KindLeave with reason, unless the
	// departure was announced already (by another gateway, while this one
	// was cut off). They are the only way a join or a departure is
	// announced. An error says what failed; the announcement is made all
	// the same when the bus allows.
	Join(ctx context.Context, room, nick string) error
	Part(ctx context.Context, room, nick, reason string) error
	// Rename moves nick's record in room to newNick and announces KindNick
	// (text newNick). The caller claims newNick and releases nick.
	Rename(ctx context.Context, room, nick, newNick string) error
	// Who lists the nicknames in room across the cluster, sorted.
	Who(ctx context.Context, room string) ([]string, error)
	// Rooms counts the members of every room in use across the cluster.
	Rooms(ctx context.Context) (map[string]int, error)

	// SendPrivate delivers text from one nick to another, on whichever
	// gateway holds the recipient. It reports false if nobody by that
	// nickname is connected.
	SendPrivate(ctx context.Context, to, from, text string) (bool, error)
	// ReceivePrivate registers the function that delivers private messages to
	// this gateway's users; it returns false when the recipient is not here.
	ReceivePrivate(deliver func(to, from, text string, at time.Time) bool) (stop func(), err error)

	// Gateways lists where chat clients reach the other live gateways
	// ("host:port"), for clients of a gateway that is shutting down.
	Gateways(ctx context.Context) ([]string, error)
	// IRCGateways lists where IRC clients reach the other live gateways
	// that have an IRC port, for IRC clients of a gateway shutting down.
	IRCGateways(ctx context.Context) ([]string, error)
	// Whois finds nick on any gateway: the nickname as its holder spells
	// it and the rooms it is in, sorted; "" when nobody holds it.
	Whois(ctx context.Context, nick string) (string, []string, error)
}
