package main

import (
	"net/http"
	"sort"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatd/chatd/bus"
	"github.com/chatd/chatd/gateway"
)

// metricsHandler serves Prometheus metrics for this process: the gateway's
// counters and bus link (read at scrape time, so the chat path pays nothing
// for them), plus the Go runtime and the process.
func (m *Main) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&chatCollector{m: m},
		buildInfoCollector(readBuildInfo()),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

var (
	descClients = prometheus.NewDesc("chatd_clients",
		"Clients connected now (handshake done), by transport.", []string{"transport"}, nil)
	descOpened = prometheus.NewDesc("chatd_sessions_opened_total",
		"Sessions that completed the handshake, by transport.", []string{"transport"}, nil)
	descClosed = prometheus.NewDesc("chatd_sessions_closed_total",
		"Sessions ended, by transport and reason (quit, client_closed, slow_consumer, flood, handshake_timeout, banned, throttled, shutdown, ...).",
		[]string{"transport", "reason"}, nil)
	descRooms = prometheus.NewDesc("chatd_rooms",
		"Rooms with members on this gateway.", nil, nil)
	descLinesIn = prometheus.NewDesc("chatd_lines_in_total",
		"Chat lines and actions sent by this gateway's clients.", nil, nil)
	descReleases = prometheus.NewDesc("chatd_memory_releases_total",
		"Times a quiet spell after a burst returned free memory to the system (--release-after).", nil, nil)
	descReturned = prometheus.NewDesc("chatd_memory_returned_bytes_total",
		"Heap bytes the quiet-spell releases let go of.", nil, nil)
	descEvents = prometheus.NewDesc("chatd_bus_events_total",
		"Room events (lines, joins, leaves) received from the bus.", nil, nil)
	descDeliveries = prometheus.NewDesc("chatd_deliveries_total",
		"Lines queued to this gateway's clients (one per member per event).", nil, nil)
	descLatency = prometheus.NewDesc("chatd_delivery_latency_seconds",
		"Time from a line's publication by a gateway to its arrival at this gateway.", nil, nil)
	descNATSUp = prometheus.NewDesc("chatd_nats_connected",
		"1 when the link to NATS is up, else 0.", nil, nil)
	descReconnects = prometheus.NewDesc("chatd_nats_reconnects_total",
		"Times the link to NATS was re-established.", nil, nil)
	descAuthFailures = prometheus.NewDesc("chatd_auth_failures_total",
		"Wrong server passwords (--password), by transport.", []string{"transport"}, nil)
	descAuthThrottled = prometheus.NewDesc("chatd_auth_throttled_total",
		"Password attempts refused without a verdict because their address had too many waiting, by transport.", []string{"transport"}, nil)
	descAuthTracked = prometheus.NewDesc("chatd_auth_throttled_addresses",
		"Addresses (IPv6: /64s) the password throttle remembers now.", nil, nil)
	descModeration = prometheus.NewDesc("chatd_moderation_total",
		"Moderation actions on this gateway, by action (oper, oper_failed, kick, ban, unban, mute, unmute, topic, "+
			"refused: a non-operator's attempt).", []string{"action"}, nil)
	descModRejected = prometheus.NewDesc("chatd_bus_mod_rejected_total",
		"Entries of the moderation bucket (chat_mod) ignored as not written by a chatd gateway.", nil, nil)
	descRejected = prometheus.NewDesc("chatd_bus_rejected_total",
		"Envelopes received from the bus (room events, private messages, history) and dropped as invalid, by reason "+
			"(malformed, version, kind, id, room, recipient, nick, text, too_long).", []string{"reason"}, nil)
)

var (
	descRefused = prometheus.NewDesc("chatd_connections_refused_total",
		"Connections refused, by cause: max_conns, per_address, banned, shutting_down (before the handshake), "+
			"password (a wrong or throttled server password), handshake_timeout (no acceptable nickname in time).",
		[]string{"cause"}, nil)
	descFlood = prometheus.NewDesc("chatd_flood_lines_total",
		"Lines and messages held back by the flood limit (--rate, --burst), by action: paced (they waited; none is dropped).", []string{"action"}, nil)
	descJSCalls = prometheus.NewDesc("chatd_jetstream_calls_total",
		"JetStream calls, by operation (kv_write, kv_get, kv_delete, history_read).", []string{"op"}, nil)
	descJSErrors = prometheus.NewDesc("chatd_jetstream_errors_total",
		"JetStream calls that failed (timeouts, no quorum, ...; a taken nickname or a missing key is an answer, not an error), by operation.",
		[]string{"op"}, nil)
	descJSLatency = prometheus.NewDesc("chatd_jetstream_call_duration_seconds",
		"Time JetStream calls took, by operation.", []string{"op"}, nil)
	descReplay = prometheus.NewDesc("chatd_history_replay_lines",
		"Lines of history replayed to a client joining a room, per join.", nil, nil)
)

// collectBus reads the bus's JetStream call and history replay counters.
func (c *chatCollector) collectBus(ch chan<- prometheus.Metric, b *bus.Conn) {
	for op, st := range b.OpStats() {
		ch <- prometheus.MustNewConstMetric(descJSCalls, prometheus.CounterValue, float64(st.Calls), op.String())
		ch <- prometheus.MustNewConstMetric(descJSErrors, prometheus.CounterValue, float64(st.Errors), op.String())
		buckets := make(map[float64]uint64, len(bus.OpBuckets))
		var cum uint64
		for i, le := range bus.OpBuckets {
			cum += st.Latency[i]
			buckets[le.Seconds()] = cum
		}
		ch <- prometheus.MustNewConstHistogram(descJSLatency, cum+st.Latency[len(st.Latency)-1], st.LatencySum.Seconds(), buckets, op.String())
	}
	counts, sum := b.ReplayStats()
	buckets := make(map[float64]uint64, len(bus.ReplayBuckets))
	var cum uint64
	for i, le := range bus.ReplayBuckets {
		cum += counts[i]
		buckets[float64(le)] = cum
	}
	ch <- prometheus.MustNewConstHistogram(descReplay, cum+counts[len(counts)-1], float64(sum), buckets)
}

// buildInfoCollector is chatd_build_info: always 1, its labels say which
// build runs (join it to other series, or alert on mixed versions).
func buildInfoCollector(b buildInfo) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "chatd_build_info",
		Help: "Always 1; the labels name the running build: version, VCS revision, dirty tree, Go version.",
		ConstLabels: prometheus.Labels{
			"version": b.Version, "revision": b.Revision, "dirty": strconv.FormatBool(b.Dirty), "goversion": b.GoVersion,
		},
	}, func() float64 { return 1 })
}

// chatCollector reads the gateway's and the bus's counters at scrape time.
type chatCollector struct{ m *Main }

func (c *chatCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClients, descOpened, descClosed, descRooms, descLinesIn,
		descEvents, descDeliveries, descLatency, descNATSUp, descReconnects, descAuthFailures, descAuthThrottled, descAuthTracked, descRejected, descModeration, descModRejected,
		descRefused, descFlood, descReleases, descReturned, descJSCalls, descJSErrors, descJSLatency, descReplay} {
		ch <- d
	}
}

func (c *chatCollector) Collect(ch chan<- prometheus.Metric) {
	if b := c.m.Bus; b != nil {
		up := 0.0
		if b.Connected() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descNATSUp, prometheus.GaugeValue, up)
		ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(b.Reconnects()))
		ch <- prometheus.MustNewConstMetric(descModRejected, prometheus.CounterValue, float64(b.ModRejected()))
		rejected := b.Rejected()
		for _, r := range bus.Reasons() {
			ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(rejected[r]), r.String())
		}
		c.collectBus(ch, b)
	}
	g := c.m.Gateway
	if g == nil {
		return
	}
	st := g.Stats()
	for _, tr := range sortedKeys(st.Connected) {
		ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(st.Connected[tr]), tr)
		ch <- prometheus.MustNewConstMetric(descOpened, prometheus.CounterValue, float64(st.Opened[tr]), tr)
		for _, reason := range sortedKeys(st.Closed[tr]) {
			ch <- prometheus.MustNewConstMetric(descClosed, prometheus.CounterValue, float64(st.Closed[tr][reason]), tr, reason)
		}
		ch <- prometheus.MustNewConstMetric(descAuthFailures, prometheus.CounterValue, float64(st.AuthFailures[tr]), tr)
		ch <- prometheus.MustNewConstMetric(descAuthThrottled, prometheus.CounterValue, float64(st.AuthThrottled[tr]), tr)
	}
	for _, action := range sortedKeys(st.Moderation) {
		ch <- prometheus.MustNewConstMetric(descModeration, prometheus.CounterValue, float64(st.Moderation[action]), action)
	}
	ch <- prometheus.MustNewConstMetric(descAuthTracked, prometheus.GaugeValue, float64(st.AuthTracked))
	var password, handshake uint64
	for tr := range st.Connected {
		password += st.AuthFailures[tr] + st.AuthThrottled[tr]
		handshake += st.Closed[tr]["handshake_timeout"]
	}
	refused := map[string]uint64{"password": password, "handshake_timeout": handshake}
	for cause, n := range st.Refused {
		refused[cause] = n
	}
	for _, cause := range sortedKeys(refused) {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(refused[cause]), cause)
	}
	ch <- prometheus.MustNewConstMetric(descFlood, prometheus.CounterValue, float64(st.FloodPaced), "paced")
	ch <- prometheus.MustNewConstMetric(descRooms, prometheus.GaugeValue, float64(st.Rooms))
	ch <- prometheus.MustNewConstMetric(descLinesIn, prometheus.CounterValue, float64(st.LinesIn))
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(st.Events))
	ch <- prometheus.MustNewConstMetric(descReleases, prometheus.CounterValue, float64(st.MemoryReleases))
	ch <- prometheus.MustNewConstMetric(descReturned, prometheus.CounterValue, float64(st.MemoryReturned))
	ch <- prometheus.MustNewConstMetric(descDeliveries, prometheus.CounterValue, float64(st.Deliveries))

	buckets := make(map[float64]uint64, len(gateway.LatencyBuckets))
	var cum uint64
	for i, le := range gateway.LatencyBuckets {
		cum += st.Latency[i]
		buckets[le.Seconds()] = cum
	}
	total := cum + st.Latency[len(st.Latency)-1]
	ch <- prometheus.MustNewConstHistogram(descLatency, total, st.LatencySum.Seconds(), buckets)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
