package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scrapeUntil polls /metrics until every sample of want has at least its
// value.
func scrapeUntil(t *testing.T, m *Main, want map[string]float64) string {
	t.Helper()
	var body string
	checkFor(t, waitFor, func() error {
		code, b, err := get("http://" + m.AdminAddr().String() + "/metrics")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("GET /metrics: %d, %v", code, err)
		}
		body = b
		for name, v := range want {
			if got, ok := metric(body, name); !ok || got < v {
				return fmt.Errorf("%s = %v (present %v), want at least %v", name, got, ok, v)
			}
		}
		return nil
	})
	return body
}

// Every refusal is counted by its cause, each caused here: too many
// connections from one address, a full server, a handshake that times out,
// lines over the flood limit; and the JetStream calls and history replays
// the joins make.
func TestDecisionMetrics(t *testing.T) {
	m := mustRunMain(t, "--admin", "127.0.0.1:0", "--max-conns", "3", "--max-conns-per-ip", "2",
		"--handshake-timeout", "500ms", "--rate", "4", "--burst", "1")
	addr := m.ChatAddr().String()
	alice := join(t, addr, "alice")
	join(t, addr, "bob")
	if got := dial(t, addr).ExpectClosed(); !strings.HasPrefix(got, "ERROR too many connections from your address") {
		t.Errorf("third connection from 127.0.0.1: %q", got)
	}
	silent := dialFrom(t, "127.0.0.2", addr) // never gives a nickname
	silent.ExpectName()
	if got := dialFrom(t, "127.0.0.3", addr).ExpectClosed(); !strings.HasPrefix(got, "ERROR server is full") {
		t.Errorf("fourth connection: %q", got)
	}
	silent.ExpectClosed() // the handshake timeout

	for i := range 4 {
		alice.Send(fmt.Sprintf("line %d\n", i))
	}
	alice.Expect("alice: line 0")
	carol := dialFrom(t, "127.0.0.4", addr)
	carol.ExpectName()
	carol.Send("carol\n")
	carol.Expect("carol joined!") // after the replay of alice's line

	body := scrapeUntil(t, m, map[string]float64{
		`chatd_connections_refused_total{cause="per_address"}`:                  1,
		`chatd_connections_refused_total{cause="max_conns"}`:                    1,
		`chatd_connections_refused_total{cause="handshake_timeout"}`:            1,
		`chatd_flood_lines_total{action="paced"}`:                               3,
		`chatd_jetstream_calls_total{op="kv_write"}`:                            3,
		`chatd_jetstream_calls_total{op="history_read"}`:                        3,
		`chatd_jetstream_call_duration_seconds_count{op="kv_write"}`:            3,
		`chatd_jetstream_call_duration_seconds_bucket{op="kv_write",le="+Inf"}`: 3,
		`chatd_history_replay_lines_count`:                                      3,
		`chatd_history_replay_lines_sum`:                                        1,
		`chatd_history_replay_lines_bucket{le="1"}`:                             3,
	})
	for _, name := range []string{`chatd_connections_refused_total{cause="banned"}`, `chatd_connections_refused_total{cause="password"}`,
		`chatd_connections_refused_total{cause="shutting_down"}`, `chatd_jetstream_errors_total{op="kv_write"}`} {
		if v, ok := metric(body, name); !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0", name, v, ok)
		}
	}
}

// A banned address and a wrong password are refusals too.
func TestRefusedBanPasswordMetrics(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bans")
	os.WriteFile(file, []byte("127.0.0.9\n"), 0o600)
	m := mustRunMain(t, "--admin", "127.0.0.1:0", "--bans", file, "--password", "letmein")
	addr := m.ChatAddr().String()
	if got := dialFrom(t, "127.0.0.9", addr).ExpectClosed(); !strings.HasPrefix(got, "ERROR you are banned") {
		t.Errorf("banned address: %q", got)
	}
	wrong := dial(t, addr)
	wrong.ExpectName()
	wrong.Send("intruder\n")
	wrong.Expect("*** this server needs a password: send it as your next line")
	wrong.Send("guess\n")
	wrong.ExpectClosed()
	scrapeUntil(t, m, map[string]float64{
		`chatd_connections_refused_total{cause="banned"}`:   1,
		`chatd_connections_refused_total{cause="password"}`: 1,
	})
}

// --nats-monitor serves the embedded NATS server's monitoring endpoint.
func TestNATSMonitor(t *testing.T) {
	monitor := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	mustRunMain(t, "--nats-monitor", monitor)
	code, body, err := get("http://" + monitor + "/varz")
	if err != nil || code != http.StatusOK || !strings.Contains(body, `"server_name"`) {
		t.Fatalf("GET /varz: %d %v %.200q", code, err, body)
	}
	code, body, err = get("http://" + monitor + "/jsz")
	if err != nil || code != http.StatusOK || !strings.Contains(body, `"streams"`) {
		t.Errorf("GET /jsz: %d %v %.200q", code, err, body)
	}
}
