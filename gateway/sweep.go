package gateway

import "time"

// The idle sweep. A session's queues (outbox: frames, spare, held) grow with its
// busiest moment — a room filling up, a history replay, a burst of chat —
// and would keep that capacity for as long as the connection lives, which
// for an idle client is hours. Every sweepEvery the server lets go of the
// queues of sessions that have queued nothing for a whole period, so an
// idle connection costs no queue memory. Busy sessions keep theirs: the
// fan-out path does not allocate in steady state.

// sweepEvery is how often the server looks for idle sessions' queues.
const sweepEvery = 2 * time.Second

// sweepLoop runs sweep every sweepEvery until stop is closed; it also lets
// the password throttle forget the addresses it no longer needs.
func (srv *Server) sweepLoop(stop <-chan struct{}) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			srv.sweep()
			srv.auth.prune(srv.cfg.Now())
		}
	}
}

// sweep trims the queues of every session idle since the last sweep. It
// holds Server.mu, then each session's outbox.mu in turn, briefly.
func (srv *Server) sweep() {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for s := range srv.sessions {
		s.outbox.mu.Lock()
		s.outbox.sweepLocked()
		s.outbox.mu.Unlock()
	}
}
