package main

import (
	"testing"

	"github.com/chatd/chatd/bus"
	"github.com/chatd/chatd/gateway"
)

// The gateway and the bus name room events with their own constants, since
// neither imports the other; this is the one place that sees both, beside
// the check that *bus.Conn is a gateway.Bus (run.go). A kind spelled
// differently on the two sides would be published and then skipped.
func TestEventKindsMatch(t *testing.T) {
	for _, k := range []struct{ name, gw, bus string }{
		{"Say", gateway.KindSay, bus.KindSay},
		{"Me", gateway.KindMe, bus.KindMe},
		{"Join", gateway.KindJoin, bus.KindJoin},
		{"Leave", gateway.KindLeave, bus.KindLeave},
		{"Nick", gateway.KindNick, bus.KindNick},
	} {
		if k.gw != k.bus {
			t.Errorf("gateway.Kind%s = %q, bus.Kind%s = %q", k.name, k.gw, k.name, k.bus)
		}
		if k.bus == bus.KindMsg {
			t.Errorf("bus.Kind%s = bus.KindMsg = %q: a room kind must not be the private one", k.name, k.bus)
		}
	}
}
