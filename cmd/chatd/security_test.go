package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testCA writes a CA and a certificate it signed for 127.0.0.1 and
// localhost, and returns the file names.
func testCA(t *testing.T) (caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chatd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "chatd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", keyDER)
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
	t.Cleanup(func() { conn.Close() })
	secure := &client{t: t, conn: conn, r: bufio.NewReader(conn), nick: "secure"}
	secure.expectName()
	secure.send("secure\n")
	secure.expect("Connected to server!")
	plain := join(t, m.ChatAddr().String(), "plain")
	secure.expect("plain joined!")
	plain.send("hi over plain\n")
	secure.expect("plain: hi over plain")
	secure.send("hi over TLS\n")
	plain.expect("secure: hi over TLS")
}

func TestBans(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bans")
	os.WriteFile(file, []byte("# bad actors\n127.0.0.2\n10.0.0.0/8 # a range\n"), 0o600)
	m := mustRunMain(t, "--bans", file)
	from := func(ip string) *client {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: waitFor}
		c, err := d.Dial("tcp", m.ChatAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &client{t: t, conn: c, r: bufio.NewReader(c)}
	}
	if got := from("127.0.0.2").expectClosed(); got != "ERROR you are banned from this server\n" {
		t.Errorf("banned address got %q", got)
	}
	from("127.0.0.3").expectName()

	// A reload (SIGHUP) lifts the ban; a broken file keeps the old list.
	os.WriteFile(file, []byte("127.0.0.9\n"), 0o600)
	m.Reload()
	from("127.0.0.2").expectName()
	os.WriteFile(file, []byte("not an address\n"), 0o600)
	m.Reload()
	if got := from("127.0.0.9").expectClosed(); got != "ERROR you are banned from this server\n" {
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
		c.send("PROXY TCP4 " + src + " 127.0.0.1 40000 5500\r\n")
		return c
	}
	if got := via("203.0.113.9").expectClosed(); got != "ERROR you are banned from this server\n" {
		t.Errorf("banned client behind the balancer got %q", got)
	}
	c := via("198.51.100.7")
	c.expectName()
	c.send("behind\n")
	c.nick = "behind"
	c.expect("Connected to server!")
	// No header: refused.
	raw := dial(t, m.ChatAddr().String())
	raw.send("hello\n")
	if got := raw.expectClosed(); strings.Contains(got, "NAME") {
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
