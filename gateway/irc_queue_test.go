package gateway

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// gateConn is a sinkConn whose writes wait until open is closed, so that a
// session's queue fills while its writer is held.
type gateConn struct {
	sinkConn
	open chan struct{}
}

func (c *gateConn) Write(p []byte) (int, error) {
	<-c.open
	return c.sinkConn.Write(p)
}

// TestIRCQueueChargesBytesSent fills the queue of an IRC client, with and
// without server-time and echo-message, with other users' lines and its
// own, and checks that --max-pending is charged exactly the bytes the
// client is then sent.
func TestIRCQueueChargesBytesSent(t *testing.T) {
	for _, tc := range []struct {
		name string
		caps uint32
	}{
		{"plain", 0},
		{"server-time", capServerTime},
		{"echo-message", capEchoMessage},
		{"server-time+echo-message", capServerTime | capEchoMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newMemBus()
			cfg := DefaultConfig()
			cfg.MaxPending = 1 << 20
			srv, err := New(cfg, b)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			c := &gateConn{open: make(chan struct{})}
			ic := newIRCConn(c, &srv.cfg)
			nick := "alice"
			ic.st.nick.Store(&nick)
			ic.st.caps.Store(tc.caps)
			s := newSession(srv, ic, sinkAddr.String(), sinkAddr.AddrPort().Addr())
			s.nick = nick
			s.queued = true
			if err := srv.enter(s, "lobby"); err != nil {
				t.Fatal(err)
			}
			var opened atomic.Bool
			t.Cleanup(func() {
				if !opened.Load() {
					close(c.open)
				}
			})
			_ = b.Join(t.Context(), "lobby", nick)
			_ = b.Join(t.Context(), "lobby", "bob")
			for i := range 100 {
				who := "bob"
				if i%10 == 0 {
					who = nick
				}
				_ = b.Publish("lobby", KindSay, who, "line "+strconv.Itoa(i)+" of sixty-four bytes or so, as chatbench sends")
			}
			_ = b.Rename(t.Context(), "lobby", "bob", "bobby")
			_ = b.Part(t.Context(), "lobby", "bobby", "Quit: bye")

			s.mu.Lock()
			charged := s.bytes
			s.mu.Unlock()
			opened.Store(true)
			close(c.open)
			deadline := time.Now().Add(5 * time.Second)
			for {
				s.mu.Lock()
				idle := !s.writing && len(s.frames) == 0
				s.mu.Unlock()
				if idle {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("writer did not drain the queue")
				}
				time.Sleep(time.Millisecond)
			}
			if sent := c.written.Load(); sent != int64(charged) {
				t.Errorf("queue charged %d bytes, client was sent %d", charged, sent)
			}
		})
	}
}
