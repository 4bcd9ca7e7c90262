// Package testkit holds what the tests of every package share:
//
//   - Client (Dial, DialFrom, Join): the raw-socket client of the classic
//     line protocol, as nc would be, with Expect, Sync and the like;
//   - CheckFor: polling waits instead of sleeps standing in for a condition;
//   - Output: a writer several goroutines write to and tests wait on;
//   - FreePorts: ports for listeners a test must name before they start.
package testkit

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// pollEvery is how often CheckFor tries again.
const pollEvery = 20 * time.Millisecond

// CheckFor calls f until it returns nil, at least once and every
// pollEvery, and fails the test with f's last error once total has passed.
func CheckFor(t testing.TB, total time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", total, err)
		}
		time.Sleep(pollEvery)
	}
}

// Ports for listeners a test must name before they start (routes between
// nodes, a gateway restarted on the same address) are picked below the
// kernel's ephemeral range (Linux: 32768 and up): a port picked from that
// range and released may be taken meanwhile by an outgoing connection's
// local end (a node dialling its peers before they are up), and the
// listener then fails with "address already in use".
const (
	portsFrom = 20000
	portsTo   = 32000
)

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free when
// picked, outside the ephemeral range. The caller starts its listeners on
// them soon.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	for tries := 0; len(ports) < n; tries++ {
		if tries == 1000 {
			t.Fatalf("no %d free ports in %d-%d", n, portsFrom, portsTo)
		}
		p := portsFrom + rand.IntN(portsTo-portsFrom)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		held = append(held, ln) // held until all are picked: distinct
		ports = append(ports, p)
	}
	return ports
}
