package gateway

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// The chat page: plain HTML, CSS and JavaScript, no build step. It renders
// every text from the server with textContent, never as HTML, and the
// Content-Security-Policy below forbids inline script and HTML sinks, so a
// chat line can never run script in another person's page.
//
//go:embed web
var webFiles embed.FS

// webRoutes adds the page and its settings to mux.
func (s *Server) webRoutes(mux *http.ServeMux) {
	static, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	files := http.FileServerFS(static)
	mux.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache") // a new gateway version is picked up at once
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /config.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(s.webConfig)
	})
}

// webConfig is what /config.json tells the page (docs/protocol.md).
type webConfig struct {
	V        int      `json:"v"`
	WSPath   string   `json:"ws_path"`
	Gateways []string `json:"gateways"`
	MaxLine  int      `json:"max_line"`
	// ResumeAgeMS is --resume-age: the page keeps its resume position
	// within it.
	ResumeAgeMS int64 `json:"resume_age_ms"`
}

// setupWeb derives, from the configured web gateways, the origins allowed to
// open this gateway's WebSocket, the page's Content-Security-Policy and its
// /config.json.
func (s *Server) setupWeb() error {
	connect := []string{"'self'"}
	for _, u := range s.cfg.WebGateways {
		origin, err := wsOrigin(u)
		if err != nil {
			return err
		}
		connect = append(connect, origin.String())
		s.origins = append(s.origins, matchLiteral(origin.Host))
	}
	s.webHosts = make(map[string]bool)
	for _, h := range s.cfg.WebHosts {
		if h == "*" {
			s.anyHost = true
		}
		s.webHosts[normalHost(h)] = true
	}
	for _, u := range s.cfg.WebGateways {
		if origin, err := wsOrigin(u); err == nil {
			s.webHosts[normalHost(origin.Host)] = true
		}
	}
	s.csp = strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self'",
		"connect-src " + strings.Join(connect, " "),
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
		"require-trusted-types-for 'script'",
		"trusted-types 'none'",
	}, "; ")
	gws := s.cfg.WebGateways
	if gws == nil {
		gws = []string{}
	}
	var err error
	s.webConfig, err = json.Marshal(webConfig{V: wsVersion, WSPath: "/ws", Gateways: gws, MaxLine: s.cfg.MaxLine, ResumeAgeMS: s.cfg.ResumeAge.Milliseconds()})
	return err
}

// wsOrigin checks a web gateway URL and returns its scheme and host.
func wsOrigin(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, err
	case u.Scheme != "ws" && u.Scheme != "wss":
		return nil, errors.New("want a ws:// or wss:// URL")
	case u.Host == "" || u.User != nil:
		return nil, errors.New("want a URL with a host and no user")
	case strings.ContainsAny(u.Host, " ;,'\""):
		return nil, errors.New("invalid host")
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// hostAllowed reports whether a request's Host header names this gateway:
// an IP address (a DNS rebinding attack needs a name of its own, and a
// port-forwarded public address is not known here), localhost or a name
// under .localhost (browsers resolve those to loopback themselves), or a
// name of WebHosts or WebGateways.
func (s *Server) hostAllowed(hostport string) bool {
	if s.anyHost {
		return true
	}
	host := normalHost(hostport)
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return host != "" && s.webHosts[host]
}

// hostOnly is the host of a Host header, without its port or brackets.
func hostOnly(hostport string) string {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// normalHost is a host name as compared: lower case, with no port and no
// final dot.
func normalHost(hostport string) string {
	return strings.TrimSuffix(strings.ToLower(hostOnly(hostport)), ".")
}

// matchLiteral escapes s for path.Match, which the WebSocket library uses
// for origin patterns: an IPv6 host such as [::1]:8080 is then itself.
func matchLiteral(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// securityHeaders sets, on every response, a strict Content-Security-Policy
// and the headers that stop sniffing, framing and referrers.
func (s *Server) securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", s.csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}
