package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// This file opens the listeners: chat over TCP and TLS, each behind the
// PROXY protocol if asked (listen), and the web page and WebSocket over HTTP
// and HTTPS (serveWeb); and reports their addresses.

// serveWeb starts the HTTP server for the web page and WebSocket clients.
// Its timeouts bound requests; connections upgraded to WebSocket leave
// them and are the gateway's sessions from then on.
func (m *Main) serveWeb() error {
	var err error
	if m.webLn, err = listenTCP(m.Config.HTTP, m.Config.Gateway.KeepAlive); err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	m.web = &http.Server{
		Handler:           m.Gateway.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(m.log.With("component", "http").Handler(), slog.LevelWarn),
	}
	listeners := []net.Listener{m.webLn}
	if m.Config.HTTPSListen != "" {
		cfg, err := serverTLS(m.Config.TLSCert, m.Config.TLSKey, "")
		if err != nil {
			return fmt.Errorf("https listener: %w", err)
		}
		ln, err := listenTCP(m.Config.HTTPSListen, m.Config.Gateway.KeepAlive)
		if err != nil {
			return fmt.Errorf("https listener: %w", err)
		}
		m.webTLSLn = tls.NewListener(ln, cfg)
		listeners = append(listeners, m.webTLSLn)
	}
	m.webDone = make(chan struct{})
	var serving sync.WaitGroup
	for _, ln := range listeners {
		serving.Go(func() {
			if err := m.web.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.log.Error("http serve", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	go func() {
		serving.Wait()
		close(m.webDone)
	}()
	return nil
}

// HTTPSAddr is the address of the HTTPS listener, or nil.
func (m *Main) HTTPSAddr() net.Addr {
	if m.webTLSLn == nil {
		return nil
	}
	return m.webTLSLn.Addr()
}

// HTTPAddr is the address the web listener is bound to, or nil when it is
// off.
func (m *Main) HTTPAddr() net.Addr {
	if m.webLn == nil {
		return nil
	}
	return m.webLn.Addr()
}

// listen opens the chat listeners: plain TCP and, if configured, TLS, both
// behind the PROXY protocol if asked; and loads the ban list.
func (m *Main) listen() error {
	c := m.Config
	if c.BansFile != "" {
		m.bans = &banList{file: c.BansFile}
		n, err := m.bans.load()
		if err != nil {
			return err
		}
		m.log.Info("bans loaded", "file", c.BansFile, "entries", n)
	}
	var err error
	if m.ln, err = listenTCP(c.Listen, c.Gateway.KeepAlive); err != nil {
		return fmt.Errorf("chat listener: %w", err)
	}
	if c.ProxyProtocol {
		m.ln = withProxyProtocol(m.ln)
	}
	if c.IRC != "" {
		if m.ircLn, err = listenTCP(c.IRC, c.Gateway.KeepAlive); err != nil {
			return fmt.Errorf("IRC listener: %w", err)
		}
		if c.ProxyProtocol {
			m.ircLn = withProxyProtocol(m.ircLn)
		}
	}
	if m.tlsLn, err = m.listenTLS("chat", c.TLSListen); err != nil {
		return err
	}
	m.ircTLSLn, err = m.listenTLS("IRC", c.IRCTLSListen)
	return err
}

// listenTLS opens a TLS listener for what (chat, IRC) at addr, behind the
// PROXY protocol if asked; nil when addr is empty.
func (m *Main) listenTLS(what, addr string) (net.Listener, error) {
	c := m.Config
	if addr == "" {
		return nil, nil
	}
	cfg, err := serverTLS(c.TLSCert, c.TLSKey, "")
	if err != nil {
		return nil, fmt.Errorf("%s TLS listener: %w", what, err)
	}
	ln, err := listenTCP(addr, c.Gateway.KeepAlive)
	if err != nil {
		return nil, fmt.Errorf("%s TLS listener: %w", what, err)
	}
	if c.ProxyProtocol {
		ln = withProxyProtocol(ln)
	}
	m.log.Info(what+" TLS listener", "addr", ln.Addr().String())
	return tls.NewListener(ln, cfg), nil
}

// IRCAddr is the address of the IRC listener, or nil when it is off.
func (m *Main) IRCAddr() net.Addr {
	if m.ircLn == nil {
		return nil
	}
	return m.ircLn.Addr()
}

// IRCTLSAddr is the address of the IRC TLS listener, or nil.
func (m *Main) IRCTLSAddr() net.Addr {
	if m.ircTLSLn == nil {
		return nil
	}
	return m.ircTLSLn.Addr()
}

// ChatTLSAddr is the address of the TLS chat listener, or nil.
func (m *Main) ChatTLSAddr() net.Addr {
	if m.tlsLn == nil {
		return nil
	}
	return m.tlsLn.Addr()
}

// ChatAddr is the address the chat listener is bound to.
func (m *Main) ChatAddr() net.Addr { return m.ln.Addr() }

// AdminAddr is the address of the health listener, or nil.
func (m *Main) AdminAddr() net.Addr {
	if m.adminLn == nil {
		return nil
	}
	return m.adminLn.Addr()
}

// listenTCP listens with keep-alive probes on every accepted connection,
// even when TLS or the PROXY protocol wraps it later.
func listenTCP(addr string, keepAlive time.Duration) (net.Listener, error) {
	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
		Enable: true, Idle: keepAlive, Interval: keepAlive / 3, Count: 3,
	}}
	return lc.Listen(context.Background(), "tcp", addr)
}

// withProxyProtocol makes ln read a PROXY protocol header (v1 or v2) from
// every connection and report the client address it carries. Only for
// listeners that nothing but a trusted load balancer can reach: the header
// is believed.
func withProxyProtocol(ln net.Listener) net.Listener {
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: 5 * time.Second,
		ConnPolicy: func(proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			return proxyproto.REQUIRE, nil
		},
	}
}
