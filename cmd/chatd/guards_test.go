package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const passwordPrompt = "this server needs a password: send it as your next line"

// tryPassword connects from ip, offers a nickname and the password pw, and
// returns the client after the password line was sent.
func tryPassword(t *testing.T, ip, addr, nick, pw string) *client {
	t.Helper()
	c := dialFrom(t, ip, addr)
	c.Nick = nick
	c.ExpectName()
	c.Send(nick + "\n")
	c.ExpectFunc(passwordPrompt, func(s string) bool { return strings.HasSuffix(s, passwordPrompt) })
	c.Send(pw + "\n")
	return c
}

const wrongPassword = "ERROR wrong password for this server, closing\n"

// A reload of the bans file closes the open sessions of addresses it now
// bans, TCP and WebSocket, in the handshake or chatting; the room hears
// each leave once.
func TestBansReachOpenSessions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bans")
	os.WriteFile(file, []byte("10.0.0.0/8\n"), 0o600)
	m := mustRunMain(t, "--bans", file)
	addr := m.ChatAddr().String()

	alice := join(t, addr, "alice") // 127.0.0.1
	bob := dialFrom(t, "127.0.0.2", addr)
	bob.Nick = "bob"
	bob.ExpectName()
	bob.Send("bob\n")
	bob.Expect("Connected to server!")
	alice.Expect("bob joined!")
	webby := wsDialFrom(t, m, "127.0.0.2")
	webby.nick = "webby"
	webby.send(map[string]any{"type": "hello", "v": 1, "nick": "webby"})
	webby.expectType("welcome")
	alice.Expect("webby joined!")
	early := dialFrom(t, "127.0.0.2", addr) // still choosing a nickname
	early.ExpectName()

	os.WriteFile(file, []byte("127.0.0.2\n"), 0o600)
	m.Reload()

	const banned = "ERROR you are banned from this server, closing\n"
	if got := bob.ExpectClosed(); !strings.HasSuffix(got, banned) {
		t.Errorf("bob got %q, want it to end with %q", got, banned)
	}
	if got := early.ExpectClosed(); got != banned {
		t.Errorf("a client in the handshake got %q, want %q", got, banned)
	}
	msgs, code, reason := webby.expectClosed()
	if len(msgs) == 0 || msgs[len(msgs)-1].Code != "banned" || msgs[len(msgs)-1].Text != "you are banned from this server, closing" ||
		code != websocket.StatusPolicyViolation || reason != "banned" {
		t.Errorf("webby got %v, close %d %q", msgs, code, reason)
	}
	var seen []string
	for _, l := range []string{"bob left!", "webby left!"} {
		if count(seen, l) == 0 {
			seen = append(append(seen, alice.Expect(l)...), l)
		}
	}
	seen = append(seen, alice.Sync()...)
	for _, l := range []string{"bob left!", "webby left!"} {
		if n := count(seen, l); n != 1 {
			t.Errorf("alice saw %q %d times: %q", l, n, seen)
		}
	}
	if n := m.Gateway.Stats().Closed["tcp"]["banned"]; n != 2 {
		t.Errorf("tcp sessions closed as banned: %d, want 2", n)
	}
	if got := dialFrom(t, "127.0.0.2", addr).ExpectClosed(); got != "ERROR you are banned from this server\n" {
		t.Errorf("a new connection got %q", got)
	}
	// The unbanned stay.
	alice.Sync()
}

// The real binary applies a reloaded bans file to open sessions on SIGHUP.
func TestBansReloadSignal(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bans")
	os.WriteFile(file, nil, 0o600)
	p := startChatd(t, "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--bans", file)
	alice := join(t, p.addr, "alice")
	bob := dialFrom(t, "127.0.0.2", p.addr)
	bob.Nick = "bob"
	bob.ExpectName()
	bob.Send("bob\n")
	bob.Expect("Connected to server!")
	alice.Expect("bob joined!")

	os.WriteFile(file, []byte("127.0.0.2 # bob\n"), 0o600)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if got := bob.ExpectClosed(); !strings.HasSuffix(got, "ERROR you are banned from this server, closing\n") {
		t.Errorf("bob got %q", got)
	}
	alice.Expect("bob left!")
	if n := count(alice.Sync(), "bob left!"); n != 0 {
		t.Errorf("bob left %d more times", n)
	}
}

// upgrade sends a raw WebSocket upgrade request for /ws with the given Host
// and Origin and returns the response.
func upgrade(t *testing.T, m *Main, host, origin string) (*http.Response, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", m.HTTPAddr().String(), waitFor)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitFor))
	req := "GET /ws HTTP/1.1\r\nHost: " + host + "\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	req += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ = io.ReadAll(resp.Body)
	}
	resp.Body.Close()
	return resp, string(body)
}

// The WebSocket endpoint serves only the names this gateway is reached by:
// a page of a foreign name that resolves here (DNS rebinding) is refused.
func TestWebSocketHost(t *testing.T) {
	m := mustRunMain(t, "--web-hosts", "chat.example", "--web-gateways", "ws://chat2.example:8080/ws")
	_, port, _ := net.SplitHostPort(m.HTTPAddr().String())
	for _, tc := range []struct {
		host, origin string
		ok           bool
	}{
		{"evil.example:" + port, "http://evil.example:" + port, false},
		{"evil.example", "", false},
		{"127.0.0.1:" + port, "http://127.0.0.1:" + port, true}, // the page, as served
		{"localhost:" + port, "http://localhost:" + port, true},
		{"[::1]:" + port, "http://[::1]:" + port, true},
		{"203.0.113.7:" + port, "http://203.0.113.7:" + port, true}, // a forwarded public address
		{"Chat.Example", "https://chat.example", true},              // --web-hosts, behind a proxy
		{"chat2.example:8080", "http://chat2.example:8080", true},   // --web-gateways
		{"127.0.0.1:" + port, "http://evil.example", false},         // the origin check stays
	} {
		resp, body := upgrade(t, m, tc.host, tc.origin)
		if got := resp.StatusCode == http.StatusSwitchingProtocols; got != tc.ok {
			t.Errorf("Host %s, Origin %s: %s %q", tc.host, tc.origin, resp.Status, body)
			continue
		}
		if !tc.ok && resp.StatusCode != http.StatusForbidden {
			t.Errorf("Host %s, Origin %s: %s, want 403", tc.host, tc.origin, resp.Status)
		}
		if !tc.ok && tc.origin == "http://"+tc.host && !strings.Contains(body, "--web-hosts") {
			t.Errorf("Host %s: the refusal %q does not say how to allow a name", tc.host, body)
		}
	}
	// The normal path: the page's own WebSocket.
	wsJoin(t, m, "pageuser")
}

// Connection limits and bans count an IPv6 client by its /64: the PROXY
// protocol gives the test addresses of one /64.
func TestIPv6Prefix(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bans")
	os.WriteFile(file, []byte("2001:db8:bad::1\n"), 0o600)
	m := mustRunMain(t, "--proxy-protocol", "--max-conns-per-ip", "1", "--bans", file)
	via := func(proto, src string) *client {
		c := dial(t, m.ChatAddr().String())
		c.Send("PROXY " + proto + " " + src + " ::1 40000 5500\r\n")
		return c
	}
	via("TCP6", "2001:db8:1:2::1").ExpectName()
	if got := via("TCP6", "2001:db8:1:2:ffff::9").ExpectClosed(); got != "ERROR too many connections from your address, close one and try again\n" {
		t.Errorf("a second address of the same /64: got %q", got)
	}
	via("TCP6", "2001:db8:1:3::1").ExpectName() // the next /64
	if got := via("TCP6", "2001:db8:bad::2").ExpectClosed(); got != "ERROR you are banned from this server\n" {
		t.Errorf("an address in the /64 of a banned one: got %q", got)
	}
	c4 := dial(t, m.ChatAddr().String())
	c4.Send("PROXY TCP4 198.51.100.7 127.0.0.1 40000 5500\r\n")
	c4.ExpectName()
	c5 := dial(t, m.ChatAddr().String())
	c5.Send("PROXY TCP4 198.51.100.8 127.0.0.1 40000 5500\r\n")
	c5.ExpectName() // IPv4 counts by address
}

// Over real IPv6 loopback, the limit counts [::1] as one client.
func TestIPv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	ln.Close()
	m := mustRunMain(t, "--listen", "[::1]:0", "--max-conns-per-ip", "1")
	a := join(t, m.ChatAddr().String(), "six")
	if got := dial(t, m.ChatAddr().String()).ExpectClosed(); got != "ERROR too many connections from your address, close one and try again\n" {
		t.Errorf("second [::1] connection: got %q", got)
	}
	a.Sync()
}

// A client that never reads costs at most the send buffer in the kernel,
// however much is sent: what it receives after being dropped as a slow
// consumer is what the kernel held for it.
func TestSendBufferBound(t *testing.T) {
	const maxPending = 256 << 10
	m := mustRunMain(t, "--max-pending", fmt.Sprint(maxPending), "--rate", "1000000", "--burst", "1000000")
	addr := m.ChatAddr().String()
	talker := join(t, addr, "talker")
	slow := join(t, addr, "slow")
	slow.Conn.(*net.TCPConn).SetReadBuffer(16 << 10)
	talker.Expect("slow joined!")
	web := wsDialOpts(t, wsURL(m), &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(16 << 10)
			}
			return c, err
		},
	}}})
	web.nick = "webslow"
	web.send(map[string]any{"type": "hello", "v": 1, "nick": "webslow"})
	web.expectType("welcome")
	talker.Expect("webslow joined!")

	// The talker sends until both are dropped, reading its own echoes.
	line := strings.Repeat("y", 1000)
	talker.Conn.SetDeadline(time.Time{}) // join set a write deadline; the run may take a while
	stop := make(chan struct{})
	go func() {
		echoes := bufio.NewReader(talker.Conn)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i >= 32 {
				if _, err := echoes.ReadString('\n'); err != nil {
					return
				}
			}
			if _, err := fmt.Fprintf(talker.Conn, "%d %s\n", i, line); err != nil {
				return
			}
		}
	}()
	defer close(stop)
	checkFor(t, 3*waitFor, func() error {
		st := m.Gateway.Stats()
		if st.Closed["tcp"]["slow_consumer"] < 1 || st.Closed["websocket"]["slow_consumer"] < 1 {
			return fmt.Errorf("closed: %v", st.Closed)
		}
		return nil
	})
	slow.Conn.SetReadDeadline(time.Now().Add(waitFor))
	n, _ := io.Copy(io.Discard, slow.R)
	webBytes := 0
	for {
		msg, err := web.next()
		if err != nil {
			break
		}
		webBytes += len(msg.Text)
	}
	// The kernel doubles the send buffer for its bookkeeping; the client's
	// own receive buffer holds some too.
	const limit = 1 << 20
	t.Logf("after the drop: tcp client read %d KB, websocket client %d KB", n>>10, webBytes>>10)
	if n > limit || webBytes > limit {
		t.Errorf("the kernel held %d (tcp) and %d (websocket) bytes for a client that never read; want at most %d", n, webBytes, limit)
	}
}

// Wrong passwords from one address are answered later and later: 20 of
// them take at least the sum of the delays. Every one is counted and
// logged with the address.
func TestPasswordThrottle(t *testing.T) {
	m := mustRunMain(t, "--password", "letmein", "--auth-delay", "20ms", "--auth-delay-max", "80ms", "--admin", "127.0.0.1:0")
	addr := m.ChatAddr().String()
	start := time.Now()
	for i := range 20 {
		if got := tryPassword(t, "127.0.0.1", addr, "guesser", fmt.Sprint("guess", i)).ExpectClosed(); got != wrongPassword {
			t.Fatalf("guess %d: got %q", i, got)
		}
	}
	// The first wrong password is answered at once; the k-th waits
	// 20ms·2^(k-2), at most 80ms: 20 + 40 + 17·80 ms in all.
	elapsed := time.Since(start)
	if want := 1420 * time.Millisecond; elapsed < want {
		t.Errorf("20 wrong passwords answered in %v, want at least %v", elapsed, want)
	}
	t.Logf("20 wrong passwords took %v", elapsed.Round(time.Millisecond))
	_, body, err := get("http://" + m.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := metric(body, `chatd_auth_failures_total{transport="tcp"}`); got != 20 {
		t.Errorf("chatd_auth_failures_total{transport=\"tcp\"} = %v, want 20", got)
	}
	if got, _ := metric(body, `chatd_auth_throttled_addresses`); got != 1 {
		t.Errorf("chatd_auth_throttled_addresses = %v, want 1", got)
	}
	warned := 0
	for _, l := range strings.Split(logsOf(t, m), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "wrong password") && strings.Contains(l, "127.0.0.1") {
			warned++
		}
	}
	if warned != 20 {
		t.Errorf("%d warnings with the address, want 20", warned)
	}
	// The right password still works from the same address, after its turn.
	ok := tryPassword(t, "127.0.0.1", addr, "knower", "knower: letmein")
	ok.Expect("Connected to server!")
}

// The throttle is per address and shared by TCP and WebSocket: while one
// address waits its turn (an hour here), another logs in at once; an
// address whose line of attempts is longer than the cap is refused without
// a verdict.
func TestPasswordThrottleOtherAddress(t *testing.T) {
	m := mustRunMain(t, "--password", "letmein", "--auth-delay", "1h", "--auth-delay-max", "1h")
	addr := m.ChatAddr().String()
	if got := tryPassword(t, "127.0.0.1", addr, "guesser", "nope").ExpectClosed(); got != wrongPassword {
		t.Fatalf("first wrong password: got %q", got)
	}
	// Its next attempts wait an hour for their verdict, even the right
	// password, and a WebSocket one alike.
	held := tryPassword(t, "127.0.0.1", addr, "patient", "letmein")
	heldWeb := wsDialFrom(t, m, "127.0.0.1")
	heldWeb.send(map[string]any{"type": "hello", "v": 1, "nick": "webguess", "password": "nope2"})
	checkFor(t, waitFor, func() error {
		if n := m.Gateway.Stats().AuthFailures["websocket"]; n != 1 {
			return fmt.Errorf("websocket auth failures = %d, want 1", n)
		}
		return nil
	})
	// Two attempts are in line, the last an hour and more away: the next is
	// refused at once.
	if got := tryPassword(t, "127.0.0.1", addr, "third", "nope3").ExpectClosed(); !strings.HasPrefix(got, "ERROR too many wrong passwords from your address") {
		t.Errorf("over the cap: got %q", got)
	}

	// Another address is not held.
	other := tryPassword(t, "127.0.0.2", addr, "other", "letmein")
	other.Expect("Connected to server!")
	web := wsDialFrom(t, m, "127.0.0.2")
	web.nick = "webother"
	web.send(map[string]any{"type": "hello", "v": 1, "nick": "webother", "password": "letmein"})
	web.expectType("welcome")

	// The held ones have no verdict yet.
	held.Conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if b, err := held.R.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("held attempt: read %q, %v; want nothing yet", b, err)
	}
	st := m.Gateway.Stats()
	if st.AuthFailures["tcp"] != 1 || st.AuthThrottled["tcp"] != 1 {
		t.Errorf("failures %v, throttled %v; want tcp 1 and 1", st.AuthFailures, st.AuthThrottled)
	}
	// Shutdown does not wait for their turn (Close runs in the cleanup,
	// and would report a timeout).
}
