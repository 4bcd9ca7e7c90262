package gateway

// Parking idle readers. Every TCP session has a reader goroutine, and a
// goroutine blocked in a read keeps a stack of at least 4 KiB (the runtime
// shrinks stacks by halves, at garbage collections, and never below four
// times what is in use plus a reserve), plus its read buffer: more than
// everything else an idle session holds. Most chat connections are idle
// most of the time, so on Linux a TCP session whose reader would block with
// no deadline (handshake done, no partial line) hands its connection to the
// server's poller (one epoll set, one goroutine) and its goroutine ends,
// giving its read buffer back to a pool. When the client sends something,
// closes or fails, the poller starts a new reader goroutine
// (tcpConn.resume), which reads at once. Closing a parked session's
// connection (tcpConn.close) resumes it first, so that it sees the close
// and ends as any other session does (Session.end).
//
// Exactly one goroutine reads a session at any time: the poller takes a
// session out of its set before resuming it, under its lock, and unpark
// does the same; a session is parked only by its own reader, which then
// returns without touching it again. A connection that close has begun to
// close is never parked: its descriptor, once closed, would leave the set
// without an event, and the session would never end. The lock is a leaf: it is taken with
// no other lock held. WebSocket sessions are not parked: the WebSocket
// library buffers what it reads, which an epoll set cannot see.
