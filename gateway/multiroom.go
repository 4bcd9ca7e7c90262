package gateway

import "slices"

// Several rooms at once. A classic or WebSocket client is in one room at a
// time, Session.room: joining another leaves it. An IRC client is in any
// number of rooms, its channels: Session.chans, with Session.room left
// empty. Each room holds the session as a member (room.go), so the same
// fan-out feeds it from every room; joining one replays that room's history
// while live lines of all of them wait behind it (Session.enter), and when
// the session ends every room hears it leave, once (Session.teardown).
// Reader goroutine only, like the rest of the session's protocol state.

// joinRoom adds room to the session's rooms. welcome is queued first, as
// soon as the room's subscription is in place (Session.enter).
func (s *Session) joinRoom(room string, welcome []byte) error {
	if err := s.enter(room, welcome); err != nil {
		return err
	}
	s.chans = append(s.chans, room)
	return nil
}

// partRoom takes the session out of one of its rooms; the room hears it
// leave (without a reason: the user is still here).
func (s *Session) partRoom(room string) {
	i := slices.Index(s.chans, room)
	if i < 0 {
		return
	}
	s.chans = slices.Delete(s.chans, i, i+1)
	s.exit(room, "")
}

// isIRC reports whether the session is an IRC client's. Safe from any
// goroutine: the transport is set when the session is made.
func (s *Session) isIRC() bool {
	_, ok := s.t.(*ircConn)
	return ok
}
