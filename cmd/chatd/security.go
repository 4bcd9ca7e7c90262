package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"

	"github.com/chatd/chatd/gateway"
)

// serverTLS loads a certificate for a listener; with clientCA set, clients
// must present a certificate signed by it.
func serverTLS(certFile, keyFile, clientCA string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("TLS needs both a certificate and a key file")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pool, err := loadCA(clientCA)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// clientTLS verifies servers against ca (the system roots if empty) and
// presents certFile/keyFile if given.
func clientTLS(ca, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pool, err := loadCA(ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("TLS CA %s: no PEM certificates in it", file)
	}
	return pool, nil
}

// banList is the set of banned addresses, replaced whole on reload. A
// client is judged by its gateway.AddrKey, as the connection limits count
// it: a bare IPv6 address in the file bans its /64, and an entry that
// covers any address of a client's /64 bans the client.
type banList struct {
	file     string
	prefixes atomic.Pointer[[]netip.Prefix]
}

// load reads the file: one IP address or CIDR prefix per line, # comments.
func (b *banList) load() (int, error) {
	f, err := os.Open(b.file)
	if err != nil {
		return 0, fmt.Errorf("bans: %w", err)
	}
	defer f.Close()
	var list []netip.Prefix
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		p, err := netip.ParsePrefix(line)
		if err != nil {
			a, aerr := netip.ParseAddr(line)
			if aerr != nil {
				return 0, fmt.Errorf("bans: %s:%d: %q is neither an IP address nor a CIDR prefix", b.file, n, line)
			}
			p = gateway.AddrKey(a)
		}
		list = append(list, p.Masked())
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("bans: %w", err)
	}
	b.prefixes.Store(&list)
	return len(list), nil
}

// banned reports whether ip is in the list. Safe for concurrent use.
func (b *banList) banned(ip netip.Addr) bool {
	list := b.prefixes.Load()
	if list == nil {
		return false
	}
	key := gateway.AddrKey(ip)
	for _, p := range *list {
		if p.Overlaps(key) {
			return true
		}
	}
	return false
}
