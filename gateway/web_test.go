package gateway

import (
	"path"
	"strings"
	"testing"
)

func TestWebSetup(t *testing.T) {
	srv := &Server{cfg: Config{MaxLine: 4096, WebGateways: []string{
		"ws://chat2.lan:8080/ws", "wss://chat.example.org/ws", "ws://[::1]:8081/ws",
	}}}
	if err := srv.setupWeb(); err != nil {
		t.Fatal(err)
	}
	for i, host := range []string{"chat2.lan:8080", "chat.example.org", "[::1]:8081"} {
		ok, err := path.Match(srv.origins[i], host)
		if err != nil || !ok {
			t.Errorf("origin pattern %q does not match %q: %v", srv.origins[i], host, err)
		}
	}
	if ok, _ := path.Match(srv.origins[2], "1:8081"); ok {
		t.Errorf("pattern %q matches another host", srv.origins[2])
	}
	if !strings.Contains(srv.csp, "connect-src 'self' ws://chat2.lan:8080 wss://chat.example.org ws://[::1]:8081;") {
		t.Errorf("CSP = %s", srv.csp)
	}
	for _, bad := range []string{"http://x/ws", "ws:///ws", "ws://user@x/ws", "chat2:8080", "ws://a b/ws"} {
		if _, err := wsOrigin(bad); err == nil {
			t.Errorf("wsOrigin(%q) accepted", bad)
		}
	}
}
