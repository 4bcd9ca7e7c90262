package main

import (
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The alert rules and the dashboard in deploy/ name only metrics chatd
// serves, and docs/operations.md lists every metric it serves.
func TestMetricsDocumentedAndUsed(t *testing.T) {
	m := mustRunMain(t, "--admin", "127.0.0.1:0")
	// So that every series has a sample: a session, and one closed.
	alice := join(t, m.ChatAddr().String(), "alice")
	join(t, m.ChatAddr().String(), "bob").Send("/quit\n")
	alice.Expect("bob left!")
	code, body, err := get("http://" + m.AdminAddr().String() + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	served := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (chatd_\w+) (\w+)$`).FindAllStringSubmatch(body, -1) {
		served[m[1]] = true
		if m[2] == "histogram" {
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				served[m[1]+suffix] = true
			}
		}
	}
	if len(served) < 20 {
		t.Fatalf("only %d chatd series served", len(served))
	}

	docs, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (chatd_\w+) `).FindAllStringSubmatch(body, -1) {
		if !strings.Contains(string(docs), "`"+m[1]+"{") && !strings.Contains(string(docs), "`"+m[1]+"`") {
			t.Errorf("docs/operations.md does not list %s", m[1])
		}
	}

	var rules struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	data, err := os.ReadFile("../../deploy/prometheus/chatd-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(data, &rules); err != nil {
		t.Fatalf("chatd-alerts.yml: %v", err)
	}
	nameRE := regexp.MustCompile(`chatd_\w+`)
	alerts := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			alerts++
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: want alert, expr and a summary", r)
			}
			if !strings.Contains(string(docs), "`"+r.Alert+"`") {
				t.Errorf("docs/operations.md does not explain the alert %s", r.Alert)
			}
			for _, name := range nameRE.FindAllString(r.Expr, -1) {
				if !served[name] {
					t.Errorf("alert %s: chatd serves no %s", r.Alert, name)
				}
			}
		}
	}
	if alerts == 0 {
		t.Error("no alert rules")
	}

	data, err = os.ReadFile("../../deploy/grafana/chatd-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("chatd-dashboard.json: %v", err)
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range nameRE.FindAllString(tg.Expr, -1) {
				used[name] = true
				if !served[name] {
					t.Errorf("dashboard panel %q: chatd serves no %s", p.Title, name)
				}
			}
		}
	}
	for _, want := range []string{"chatd_connections_refused_total", "chatd_flood_lines_total", "chatd_jetstream_calls_total",
		"chatd_jetstream_call_duration_seconds_bucket", "chatd_history_replay_lines_bucket"} {
		if !used[want] {
			t.Errorf("the dashboard does not graph %s", want)
		}
	}
}
