package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// startAdmin serves the operations endpoints on --admin, if set:
//
//	/healthz  200 while the process runs
//	/readyz   200 when this node serves: the embedded server is ready and
//	          the gateway's bus link is up; 503 with the reason otherwise,
//	          and from the start of a shutdown (SIGTERM) on
//	/metrics  Prometheus metrics
func (m *Main) startAdmin() error {
	if m.Config.Admin == "" {
		return nil
	}
	ln, err := net.Listen("tcp", m.Config.Admin)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", m.metricsHandler())
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := m.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	m.adminLn = ln
	m.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := m.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("admin listener", "err", err)
		}
	}()
	m.log.Info("admin listener", "addr", ln.Addr().String())
	return nil
}

// ready reports why this node cannot serve, or nil.
func (m *Main) ready() error {
	if m.draining.Load() {
		return errors.New("shutting down")
	}
	if m.Node != nil {
		if err := m.Node.Ready(); err != nil {
			return err
		}
	}
	if m.Role.runsGateway() {
		if m.Bus == nil || !m.Bus.Connected() {
			return errors.New("no link to NATS")
		}
	}
	return nil
}

// healthcheck is `chatd healthcheck`: it asks a running node's /readyz and
// exits 0 if it is ready, 1 if not. Container images have no curl.
func healthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("chatd healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", envOr("CHAT_ADMIN", "127.0.0.1:9090"), "the node's admin listener (its --admin)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		fmt.Fprintln(stderr, "chatd healthcheck:", err)
		return 2
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + "/readyz"
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "chatd healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "chatd healthcheck: %s: %s", resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s", body)
	return 0
}
