package main

import "testing"

// Past --quiet-room-size members, joins and departures are announced only
// to the newcomer; below it, to everyone.
func TestQuietRoom(t *testing.T) {
	m := mustRunMain(t, "--quiet-room-size", "2", "--history", "0")
	addr := m.ChatAddr().String()

	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob") // two members: not quiet yet
	alice.Expect("bob joined!")

	carol := join(t, addr, "carol") // three: carol alone hears of it
	carol.Send("hi\n")
	for _, c := range []*client{alice, bob} {
		if skipped := c.Expect("carol: hi"); count(skipped, "carol joined!") != 0 {
			t.Errorf("%s heard carol join a quiet room: %q", c.Nick, skipped)
		}
	}

	carol.Send("/quit\n")
	carol.ExpectClosed()
	bob.Send("still here\n")
	if skipped := alice.Expect("bob: still here"); count(skipped, "carol left!") != 0 {
		t.Errorf("alice heard carol leave a quiet room: %q", skipped)
	}

	// Back to two members: notices are heard again.
	bob.Send("/quit\n")
	bob.ExpectClosed()
	alice.Expect("bob left!")
	dave := join(t, addr, "dave")
	alice.Expect("dave joined!")
	_ = dave
}

// A negative size turns the policy off.
func TestQuietRoomOff(t *testing.T) {
	m := mustRunMain(t, "--quiet-room-size", "-1", "--history", "0")
	addr := m.ChatAddr().String()
	alice := join(t, addr, "alice")
	for _, n := range []string{"bob", "carol", "dave"} {
		join(t, addr, n)
		alice.Expect(n + " joined!")
	}
}
