// Package gateway serves chat clients: classic TCP clients speaking the line
// protocol, and WebSocket clients speaking JSON (docs/protocol.md), plus the
// chat web page. Both kinds are Sessions: one protocol core (nickname,
// rooms, commands, rate limit, bounded queue, close reasons) over a
// transport (tcp.go, ws.go) that frames input and writes output in its own
// encoding (format.go, json.go). Every chat line moves through a Bus.
//
// A Server is safe for concurrent use. Each Session has at most one reader
// goroutine at a time (none while an idle TCP session is parked, park.go)
// and at most one writer goroutine; nothing else writes to its connection.
// Bus callbacks only append to sessions' bounded queues, so no client can
// slow the fan-out: one that falls behind is disconnected.
//
// Where a chat line goes, file by file:
//   - read: tcpConn.read (tcp.go) splits the stream into lines with the
//     framer (proto.go), and tcpConn.line makes each one safe with
//     textsafe.Sanitize; a WebSocket message arrives in wsConn.message
//     (ws.go). Both hand the text to Session.handle (session.go), which runs
//     a command (commands.go) or publishes the line (Session.say, Bus.Publish).
//   - queued: the room's bus subscription calls room.deliver (room.go), which
//     encodes the event once per encoding (format.go, json.go, irc_codec.go;
//     an IRC client's depends on its capabilities) and gives the same bytes
//     to each member's outbox.deliver (outbox.go, the Session's outbound
//     side), which appends them to its bounded queue; a session over
//     MaxPending is closed as a slow consumer. On a BurstBus the room keeps
//     the chat lines and notices of a burst until the bus's KindFlush and
//     hands a TCP member their frames joined in one buffer (room.flush,
//     outbox.deliverBurst).
//   - written: outbox.writeLoop (outbox.go), the session's one writer,
//     takes the queue a batch at a time and calls the transport's writeBatch:
//     writeLines (writebuf.go) for TCP and IRC; for WebSocket one message, a JSON
//     array when the batch holds several frames (ws.go).
//
// A Session is two parts: the reader's protocol state (session.go), owned
// by its reader goroutine and never locked but for the kick state
// (Session.kickMu), and its outbox (outbox.go), the one part any goroutine
// may touch, under outbox.mu.
//
// Moderation (moderation.go) — operators, kicks, bans, mutes, topics and
// registered nicknames — is kept on the bus (Config.Mod, a Moderation);
// the gateway applies it to its own sessions (ApplyModeration).
//
// Lock order: Server.mu, then room.mu, then Session.kickMu, then
// outbox.mu; the poller's lock
// (park.go) is taken with none of them held. No lock is held while writing
// to a socket or calling the Bus.
package gateway
