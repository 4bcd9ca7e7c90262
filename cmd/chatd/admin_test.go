package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/chatd/chatd/cluster/clustertest"
)

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metric returns the value of the sample named exactly name (with labels,
// as Prometheus prints them) in a scrape.
func metric(scrape, name string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`)
	m := re.FindStringSubmatch(scrape)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// The metrics follow the chat as it flows.
func TestMetrics(t *testing.T) {
	m := mustRunMain(t, "--admin", "127.0.0.1:0")
	url := "http://" + m.AdminAddr().String() + "/metrics"
	addr := m.ChatAddr().String()
	alice := join(t, addr, "alice")
	bob := join(t, addr, "bob")
	alice.Expect("bob joined!")
	alice.Send("one\n")
	bob.Expect("alice: one")
	bob.Send("/quit\n")
	alice.Expect("bob left!")

	want := map[string]float64{
		`chatd_clients{transport="tcp"}`:                             1,
		`chatd_sessions_opened_total{transport="tcp"}`:               2,
		`chatd_sessions_closed_total{reason="quit",transport="tcp"}`: 1,
		`chatd_lines_in_total`:                                       1,
		`chatd_rooms`:                                                1,
		`chatd_nats_connected`:                                       1,
		`chatd_clients{transport="websocket"}`:                       0,
		`chatd_auth_failures_total{transport="tcp"}`:                 0,
		`chatd_auth_throttled_total{transport="websocket"}`:          0,
		`chatd_auth_throttled_addresses`:                             0,
	}
	checkFor(t, waitFor, func() error {
		code, body, err := get(url)
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("GET /metrics: %d, %v", code, err)
		}
		for name, v := range want {
			if got, ok := metric(body, name); !ok || got != v {
				return fmt.Errorf("%s = %v (present %v), want %v", name, got, ok, v)
			}
		}
		// alice: bob joined, one (x2: alice and bob), bob left; bob: joined, one.
		if got, _ := metric(body, "chatd_deliveries_total"); got < 5 {
			return fmt.Errorf("chatd_deliveries_total = %v, want at least 5", got)
		}
		if got, _ := metric(body, "chatd_delivery_latency_seconds_count"); got < 3 {
			return fmt.Errorf("chatd_delivery_latency_seconds_count = %v", got)
		}
		if !strings.Contains(body, "go_goroutines ") || !strings.Contains(body, "process_resident_memory_bytes ") {
			return fmt.Errorf("no runtime or process metrics")
		}
		return nil
	})
}

// /readyz follows the link to NATS; /healthz only the process.
func TestReadiness(t *testing.T) {
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	ns := clustertest.Start(t, clustertest.Options{StoreDir: dir, Port: port})
	g := mustRunRole(t, RoleGateway, "--nats", ns.ClientURL(), "--admin", "127.0.0.1:0")
	base := "http://" + g.AdminAddr().String()
	status := func(path string, want int) func() error {
		return func() error {
			code, body, err := get(base + path)
			if err != nil || code != want {
				return fmt.Errorf("GET %s = %d %q, %v; want %d", path, code, body, err, want)
			}
			return nil
		}
	}
	checkFor(t, waitFor, status("/readyz", http.StatusOK))
	ns.Shutdown()
	ns.WaitForShutdown()
	checkFor(t, waitFor, status("/readyz", http.StatusServiceUnavailable))
	checkFor(t, waitFor, status("/healthz", http.StatusOK))
	var out, errOut strings.Builder
	if code := healthcheck([]string{"--admin", g.AdminAddr().String()}, &out, &errOut); code != 1 {
		t.Errorf("healthcheck while NATS is down = %d, want 1", code)
	}
	clustertest.Start(t, clustertest.Options{StoreDir: dir, Port: port})
	checkFor(t, waitFor, status("/readyz", http.StatusOK))
}
