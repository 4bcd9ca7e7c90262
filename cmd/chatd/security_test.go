package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatd/chatd/internal/testca"
	"github.com/chatd/chatd/internal/testkit"
)

// testCA makes a CA and a certificate it signed for 127.0.0.1 and
// localhost, and returns the file names.
func testCA(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	ca := testca.New(t)
	certFile, keyFile = ca.ServerFiles(t)
	return ca.CertFile(t), certFile, keyFile
}

// A TLS client and a plain client chat on the same gateway.
func TestChatOverTLS(t *testing.T) {
	caFile, cert, key := testCA(t)
	m := mustRunMain(t, "--tls-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	pool, err := loadCA(caFile)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", m.ChatTLSAddr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	secure := testkit.NewClient(t, conn)
	secure.Nick = "secure"
	secure.ExpectName()
	secure.Send("secure\n")
	secure.Expect("Connected to server!")
	plain := join(t, m.ChatAddr().String(), "plain")
	secure.Expect("plain joined!")
	plain.Send("hi over plain\n")
	secure.Expect("plain: hi over plain")
	secure.Send("hi over TLS\n")
	plain.Expect("secure: hi over TLS")
}

func TestBans(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bans")
	os.WriteFile(file, []byte("# bad actors\n127.0.0.2\n10.0.0.0/8 # a range\n"), 0o600)
	m := mustRunMain(t, "--bans", file)
	from := func(ip string) *client { return dialFrom(t, ip, m.ChatAddr().String()) }
	if got := from("127.0.0.2").ExpectClosed(); got != "ERROR you are banned from this server\n" {
		t.Errorf("banned address got %q", got)
	}
	from("127.0.0.3").ExpectName()

	// A reload (SIGHUP) lifts the ban; a broken file keeps the old list.
	os.WriteFile(file, []byte("127.0.0.9\n"), 0o600)
	m.Reload()
	from("127.0.0.2").ExpectName()
	os.WriteFile(file, []byte("not an address\n"), 0o600)
	m.Reload()
	if got := from("127.0.0.9").ExpectClosed(); got != "ERROR you are banned from this server\n" {
		t.Errorf("after a bad reload: got %q", got)
	}
}

// Behind a load balancer, the PROXY protocol header gives the real client
// address: limits and bans apply to it.
func TestProxyProtocol(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bans")
	os.WriteFile(file, []byte("203.0.113.9\n"), 0o600)
	m := mustRunMain(t, "--proxy-protocol", "--bans", file)
	via := func(src string) *client {
		c := dial(t, m.ChatAddr().String())
		c.Send("PROXY TCP4 " + src + " 127.0.0.1 40000 5500\r\n")
		return c
	}
	if got := via("203.0.113.9").ExpectClosed(); got != "ERROR you are banned from this server\n" {
		t.Errorf("banned client behind the balancer got %q", got)
	}
	c := via("198.51.100.7")
	c.ExpectName()
	c.Send("behind\n")
	c.Nick = "behind"
	c.Expect("Connected to server!")
	// No header: refused.
	raw := dial(t, m.ChatAddr().String())
	raw.Send("hello\n")
	if got := raw.ExpectClosed(); strings.Contains(got, "NAME") {
		t.Errorf("a connection without a PROXY header was served: %q", got)
	}
}

func TestNATSCredentials(t *testing.T) {
	port := freePorts(t, 1)[0]
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	mustRunRole(t, RoleBroker, "--nats-listen", "127.0.0.1:"+strconv.Itoa(port), "--cluster-listen", "",
		"--nats-user", "chat", "--nats-password", "s3cret")
	g := mustRunRole(t, RoleGateway, "--nats", url, "--nats-user", "chat", "--nats-password", "s3cret")
	join(t, g.ChatAddr().String(), "ok")

	m := NewMain(RoleGateway)
	m.Stdout, m.Stderr = &strings.Builder{}, &strings.Builder{}
	if err := m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--http", "", "--nats", url, "--nats-user", "chat", "--nats-password", "wrong"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := m.Run(t.Context())
	m.Close()
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("wrong password: Run = %v, want an authorization error", err)
	}
	t.Logf("refused in %v: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestNATSOverTLS(t *testing.T) {
	caFile, cert, key := testCA(t)
	port := freePorts(t, 1)[0]
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	mustRunRole(t, RoleBroker, "--nats-listen", "127.0.0.1:"+strconv.Itoa(port), "--cluster-listen", "",
		"--nats-tls-cert", cert, "--nats-tls-key", key)
	g := mustRunRole(t, RoleGateway, "--nats", url, "--nats-tls-ca", caFile)
	join(t, g.ChatAddr().String(), "tls")

	m := NewMain(RoleGateway) // without the CA, the broker's certificate is not trusted
	m.Stdout, m.Stderr = &strings.Builder{}, &strings.Builder{}
	if err := m.ParseFlags([]string{"--listen", "127.0.0.1:0", "--http", "", "--nats", url}); err != nil {
		t.Fatal(err)
	}
	err := m.Run(t.Context())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted broker: Run = %v, want a certificate error", err)
	}
}

func TestConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "chatd.conf")
	os.WriteFile(file, []byte("# chatd settings\nmax-conns = 7\nhistory = 3\nroom = \"hall\"\n"), 0o600)
	t.Setenv("CHAT_HISTORY", "4")
	m := NewMain(RoleSingle)
	m.Stderr = &strings.Builder{}
	if err := m.ParseFlags([]string{"--config", file, "--room", "den"}); err != nil {
		t.Fatal(err)
	}
	g := m.Config.Gateway
	if g.MaxConns != 7 || g.History != 4 || g.DefaultRoom != "den" {
		t.Errorf("got max-conns %d, history %d, room %q; want 7 (file), 4 (environment), den (flag)", g.MaxConns, g.History, g.DefaultRoom)
	}
	os.WriteFile(file, []byte("max-cons = 7\n"), 0o600)
	if err := NewMain(RoleSingle).ParseFlags([]string{"--config=" + file}); err == nil || !strings.Contains(err.Error(), ":1: no setting \"max-cons\"") {
		t.Errorf("a misspelt setting: err = %v", err)
	}
}

// A private server asks every client for its password: a classic client
// answers it as the line after its nickname, prefixed like any line; a
// WebSocket client in its hello.
func TestServerPassword(t *testing.T) {
	m := mustRunMain(t, "--password", "letmein")
	addr := m.ChatAddr().String()

	classic := dial(t, addr)
	classic.ExpectName()
	classic.Send("pyuser")
	classic.Nick = "pyuser"
	classic.Expect("*** this server needs a password: send it as your next line")
	classic.Send("pyuser: letmein")
	classic.Expect("Connected to server!")
	classic.Expect("pyuser joined!")

	wrong := dial(t, addr)
	wrong.ExpectName()
	wrong.Send("intruder\n")
	wrong.Expect("*** this server needs a password: send it as your next line")
	wrong.Send("guess\n")
	if got := wrong.ExpectClosed(); got != "ERROR wrong password for this server, closing\n" {
		t.Errorf("wrong password: got %q", got)
	}

	web := wsDial(t, m)
	web.send(map[string]any{"type": "hello", "v": 1, "nick": "webby", "password": "nope"})
	web.expectError("bad_password", "wrong password")
	ok := wsDial(t, m)
	ok.nick = "webok"
	ok.send(map[string]any{"type": "hello", "v": 1, "nick": "webok", "password": "letmein"})
	ok.expectType("welcome")
	classic.Expect("webok joined!")
	for _, l := range classic.Sync() {
		if strings.Contains(l, "intruder") || strings.Contains(l, "webby") {
			t.Errorf("the room heard of a client without the password: %q", l)
		}
	}
}

// The web page and the WebSocket endpoint are also served over TLS.
func TestHTTPS(t *testing.T) {
	caFile, cert, key := testCA(t)
	m := mustRunMain(t, "--https-listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key)
	pool, err := loadCA(caFile)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + m.HTTPSAddr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<html") {
		t.Fatalf("GET / over TLS: %d %.80q", resp.StatusCode, body)
	}
	web := wsDialOpts(t, "wss://"+m.HTTPSAddr().String()+"/ws", &websocket.DialOptions{HTTPClient: hc})
	web.nick = "secureweb"
	web.send(map[string]any{"type": "hello", "v": 1, "nick": "secureweb"})
	web.expectType("welcome")
}
