// Package bus joins chatd gateways through NATS: subjects, the message
// envelope, publish/subscribe, JetStream history, and KV buckets for
// nicknames, presence and gateway leases. *Conn implements gateway.Bus.
//
// Contract (docs/protocol.md describes it from this code):
//   - chat.v1.room.<room>.msg carries chat lines (say, me) and is captured by
//     the CHAT_HISTORY stream; chat.v1.room.<room>.event carries notices
//     (join, leave, nick). A gateway subscribes once to chat.v1.room.<room>.*.
//   - chat.v1.user.<nickkey> carries private messages as requests; every
//     gateway subscribes to chat.v1.user.*, and only the recipient's replies.
//   - Every message is one JSON Envelope, version 1; readers ignore unknown
//     fields, writers only ever add fields. Every envelope received (live,
//     private, or read back from history) is checked against the contract
//     and the gateway's content Rules before anything uses it
//     (validate.go); what fails is dropped and counted (Conn.Rejected).
//   - Buckets chat_gateways (leases, TTL Lease), chat_nicks (nickkey → owner)
//     and chat_presence (<room>.<nickkey> → owner). A record whose gateway's
//     lease has lapsed is stale: it is ignored, taken over or reaped.
//   - chat_mod holds moderation (operators, bans, mutes, topics, registered
//     nicknames), watched by every gateway and checked entry by entry;
//     chat.v1.mod.<nickkey> carries kick orders as requests (mod.go).
//   - Membership (leases, nickname claims, presence, reaping) has one owner,
//     membership (members.go: the states of an entry and their transitions),
//     and it alone publishes join and leave events: Join and Part announce,
//     Publish refuses those kinds.
//
// All Conn methods are safe for concurrent use. Callbacks given to Subscribe
// and ReceivePrivate, and the OnDisconnect/OnReconnect hooks, run on nats.go
// goroutines and must not block. The server must have JetStream: Connect
// refuses one without it (ErrNoJetStream).
package bus
