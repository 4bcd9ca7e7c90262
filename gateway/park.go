package gateway

// Parking idle readers. Every connection has a reader goroutine, and a
// goroutine parked in a read keeps a stack of at least 4 KiB (the runtime
// shrinks stacks by halves, at garbage collections, and never below four
// times what is in use plus a reserve), plus its read buffer — more than
// everything else an idle session holds. Most chat connections are idle
// most of the time, so on Linux a session whose reader would block with no
// deadline (handshake done, no partial line) hands its connection to the
// server's poller (one epoll set, one goroutine) and its goroutine ends.
// When the client sends something, closes or fails, the poller starts a new
// reader goroutine (Session.read(true)), which reads at once. Closing a
// parked session's connection (closeConn) resumes it first, so that it sees
// the close and ends as any other session does.
//
// Exactly one goroutine reads a session at any time: the poller removes a
// session from its set before resuming it, under its lock, and unpark does
// the same; a session is parked only by its own reader.

// park hands s's connection to the poller and reports whether it did; if
// so the calling reader must return without touching s again.
func (srv *Server) park(s *Session) bool {
	return srv.poller != nil && srv.poller.park(s)
}

// unpark resumes s if it is parked. Safe from any goroutine.
func (srv *Server) unpark(s *Session) {
	if srv.poller != nil && srv.poller.unpark(s) {
		go s.read(true)
	}
}
