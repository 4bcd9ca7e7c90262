package gateway

import "strings"

// Quiet rooms. Every "joined!" and "left!" notice costs one write per member
// of the room, so n people joining a room one by one cost n²/2 writes: 50
// million for a room of 10,000, most of it before anyone says a word. Past
// Config.QuietRoomSize members on this gateway (the newcomer counted, or
// the one leaving), a room is quiet: a join notice goes only to the
// newcomer (so its "joined!" still confirms the join) and a leave notice to
// nobody, on this gateway; members see who is there with /who. Each further join then costs one write, and filling a
// room of n costs at most QuietRoomSize²/2 + n writes per gateway.
//
// The decision is local: each gateway counts its own members of the room,
// so members on a gateway where the room is small still see every notice,
// and a notice costs at most QuietRoomSize writes per gateway.

// quietNotice handles a join or leave notice of a quiet room and reports
// whether it did; otherwise the caller fans the line out as usual. Like
// room.deliver it never blocks.
func (r *room) quietNotice(ev *event) bool {
	quiet, only := r.quiet(ev)
	if only != nil {
		if f := ev.frame(only.enc); f != nil {
			only.deliver(f, ev.id)
		}
	}
	return quiet
}

// quiet reports whether ev is a join or leave notice of a quiet room, and
// then the one local member to tell (the newcomer, if it is one here), or
// nil. It takes Server.mu and room.mu one after the other, never together.
func (r *room) quiet(ev *event) (quiet bool, only *Session) {
	if ev.kind != KindJoin && ev.kind != KindLeave {
		return false, nil
	}
	limit := r.srv.cfg.QuietRoomSize
	if limit < 0 {
		return false, nil
	}
	r.mu.RLock()
	n := len(r.members)
	r.mu.RUnlock()
	if ev.kind == KindLeave {
		// The member who left is no longer counted, nor here to be told:
		// the room was quiet if it was over the limit with them in it.
		return n+1 > limit, nil
	}
	if n <= limit {
		return false, nil
	}
	r.srv.mu.Lock()
	s := r.srv.nicks[strings.ToLower(ev.nick)]
	r.srv.mu.Unlock()
	if s == nil {
		return true, nil // the newcomer is on another gateway
	}
	r.mu.RLock()
	_, member := r.slots[s]
	r.mu.RUnlock()
	if !member {
		return true, nil
	}
	return true, s
}
