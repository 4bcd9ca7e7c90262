#!/usr/bin/env bash
# measure.sh: the measurements of docs/performance.md, in one go.
#
#   cmd/chatbench/measure.sh [OUT_DIR] [STEP...]
#
# Builds chatd and chatbench, and for each step starts a fresh chatd (or two
# gateways) on loopback with high limits, runs chatbench against it and the
# references it spawns (the strong one, against which the ratios are taken,
# and the simple one), and, where Debian's ngIRCd is installed, a fresh
# ngIRCd on 127.0.0.1:6799 (configured by `chatbench ngircd-conf`, measured
# over IRC), all in alternating rounds; saves the JSON line to
# OUT_DIR/STEP.json and stops the processes it started (by PID). Steps:
# fanout perline latency latency100 idle10k idle19k storm cross churn quiet
# scale retain cluster crash (default: all). NGIRCD=no leaves ngIRCd out; DURATION (10s)
# is how long each chat run sends. Takes about an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/chatbench-results}
shift || true
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(fanout perline latency latency100 idle10k idle19k storm cross churn quiet scale retain cluster crash)
mkdir -p "$out"
dur=${DURATION:-10s}
bin=$(mktemp -d)
go build -o "$bin/chatd" ./cmd/chatd
go build -o "$bin/chatbench" ./cmd/chatbench

pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
limits=(--http "" --irc "" --rate 1000000 --burst 1000000 --max-conns 20000 --max-conns-per-ip 20000 --log-level warn)

# start_chatd PORT [ARGS...]: a fresh chatd on 127.0.0.1:PORT; sets $pid.
start_chatd() {
	local port=$1; shift
	rm -rf "$bin/data-$port"
	"$bin/chatd" --listen "127.0.0.1:$port" --data "$bin/data-$port" "${limits[@]}" "$@" >"$bin/chatd-$port.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "chatd on $port did not start"; cat "$bin/chatd-$port.log"; exit 1
}
stop() {
	kill "$1"; wait "$1" 2>/dev/null || true
	local keep=() p
	for p in "${pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
	pids=("${keep[@]:-}")
}

# start_ngircd: a fresh ngIRCd on 127.0.0.1:6799 in the foreground of a
# background job; sets $ng to the chatbench flags that measure it (empty when
# ngIRCd is not installed or NGIRCD=no).
ngircd_bin=$(command -v ngircd || echo /usr/sbin/ngircd)
ng=()
start_ngircd() {
	ng=()
	[ "${NGIRCD:-yes}" != no ] && [ -x "$ngircd_bin" ] || return 0
	"$bin/chatbench" ngircd-conf --listen 127.0.0.1:6799 >"$bin/ngircd.conf"
	"$ngircd_bin" --nodaemon --config "$bin/ngircd.conf" >"$bin/ngircd.log" 2>&1 &
	ngpid=$!
	pids+=("$ngpid")
	for _ in $(seq 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/6799) 2>/dev/null; then
			ng=(--ngircd 127.0.0.1:6799 --ngircd-pid "$ngpid")
			return 0
		fi
		sleep 0.1
	done
	echo "ngircd did not start"; cat "$bin/ngircd.log"; exit 1
}
stop_ngircd() { [ ${#ng[@]} -gt 0 ] && stop "$ngpid"; ng=(); }

# bench NAME ARGS...: chatbench against the chatd in $pid on port 5700.
bench() {
	local name=$1; shift
	echo "== $name: chatbench $*" | tee "$out/$name.cmd"
	timeout 1200 "$bin/chatbench" "$@" >"$out/$name.json"
	cat "$out/$name.json"
}

# cpu_ticks PID...: the processes' CPU time (user + system), in clock ticks.
cpu_ticks() {
	local p t=0
	for p in "$@"; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}

# start_role PORT ROLE [ARGS...]: chatd ROLE (broker or gateway); sets $pid.
# Used by the cluster step, where brokers listen for NATS only.
start_role() {
	local port=$1 role=$2; shift 2
	"$bin/chatd" "$role" "$@" >"$bin/$role-$port.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 150); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "chatd $role on $port did not start"; cat "$bin/$role-$port.log"; exit 1
}

# costrun NAME ADDRS BROKER_PIDS GATEWAY_PIDS: the latency scenario at a fixed
# rate for 10 s and for 20 s against the same processes; what the brokers and
# the gateways spent in the second run beyond the first, less what they
# spend in 10 s with no clients (pings, leases, Raft heartbeats), divided by
# the extra lines, is their CPU per line (handshakes and warm-up cancel
# out). Writes OUT/NAME.cost.
costrun() {
	local name=$1 addrs=$2 bp=$3 gp=$4 d b0 g0 ib ig
	b0=$(cpu_ticks $bp); g0=$(cpu_ticks $gp)
	sleep 10
	ib=$(( $(cpu_ticks $bp) - b0 )); ig=$(( $(cpu_ticks $gp) - g0 ))
	for d in 10s 20s; do
		b0=$(cpu_ticks $bp); g0=$(cpu_ticks $gp)
		echo "== $name-$d: chatbench latency --ref off --addr $addrs --conns 600 --senders 10 --rate 1000 --duration $d" | tee "$out/$name-$d.cmd"
		timeout 600 "$bin/chatbench" latency --ref off -q --addr "$addrs" --conns 600 --senders 10 --rate 1000 --duration "$d" >"$out/$name-$d.json"
		echo "$(( $(cpu_ticks $bp) - b0 )) $(( $(cpu_ticks $gp) - g0 )) $(grep -o '"lines_sent":[0-9]*' "$out/$name-$d.json" | cut -d: -f2) $(grep -o '"deliveries_received":[0-9]*' "$out/$name-$d.json" | cut -d: -f2)" >"$out/$name-$d.cpu"
		cat "$out/$name-$d.json"
	done
	# Fields of the .cpu files: broker ticks, gateway ticks, lines, deliveries.
	paste "$out/$name-10s.cpu" "$out/$name-20s.cpu" | awk -v ib="$ib" -v ig="$ig" -v hz="$(getconf CLK_TCK)" -v name="$name" '{
		l = $7 - $3; d = $8 - $4
		b = ($5 - $1 - ib) / hz; g = ($6 - $2 - ig) / hz
		printf "{\"name\":\"%s\",\"lines\":%d,\"deliveries\":%d,\"broker_us_per_line\":%.1f,\"gateway_us_per_line\":%.1f,\"gateway_ns_per_delivery\":%.0f,\"idle_broker_ticks_10s\":%d,\"idle_gateway_ticks_10s\":%d}\n", name, l, d, b / l * 1e6, g / l * 1e6, g / d * 1e9, ib, ig
	}' | tee "$out/$name.cost"
}

for step in "${steps[@]}"; do
	case $step in
	fanout)
		start_chatd 5700 --history 0; start_ngircd
		bench fanout fanout --addr 127.0.0.1:5700 --pid "$pid" "${ng[@]}" --conns 1000 --senders 10 --window 16 --duration "$dur" --rounds 3
		stop_ngircd; stop "$pid" ;;
	perline)
		# Per-line cost: one line in flight per sender.
		start_chatd 5700 --history 0; start_ngircd
		bench perline fanout --addr 127.0.0.1:5700 --pid "$pid" "${ng[@]}" --conns 500 --senders 10 --window 1 --duration "$dur" --rounds 3
		stop_ngircd; stop "$pid" ;;
	latency100)
		start_chatd 5700 --history 0; start_ngircd
		bench latency100 latency --addr 127.0.0.1:5700 --pid "$pid" "${ng[@]}" --conns 100 --senders 10 --rate 1000 --duration "$dur" --rounds 3
		stop_ngircd; stop "$pid" ;;
	latency)
		start_chatd 5700 --history 0; start_ngircd
		bench latency latency --addr 127.0.0.1:5700 --pid "$pid" "${ng[@]}" --conns 500 --senders 10 --rate 1000 --duration "$dur" --rounds 3
		stop_ngircd; stop "$pid"
		start_chatd 5700 # history on (20 lines, the default)
		bench latency-history latency --addr 127.0.0.1:5700 --pid "$pid" --conns 500 --senders 10 --rate 1000 --duration "$dur" --rounds 3
		stop "$pid" ;;
	idle10k)
		start_chatd 5700 --history 0; start_ngircd
		bench idle10k idle --addr 127.0.0.1:5700 --pid "$pid" "${ng[@]}" --conns 10000 --room-size 100 --settle 10s --hold 10s
		stop_ngircd; stop "$pid"
		start_chatd 5700 --history 0
		bench idle10k-130s idle --addr 127.0.0.1:5700 --pid "$pid" --conns 10000 --room-size 100 --settle 130s --hold 5s
		stop "$pid" ;;
	idle19k)
		start_chatd 5700 --history 0
		bench idle19k idle --addr 127.0.0.1:5700 --pid "$pid" --conns 19000 --room-size 100 --settle 10s --hold 30s
		stop "$pid" ;;
	storm)
		# Join storm: 10,000 clients, 256 handshakes at a time, history off
		# and on (the default); RSS 30 s after the last handshake.
		for h in 0 20; do
			start_chatd 5700 --history "$h"
			bench "storm-h$h" idle --addr 127.0.0.1:5700 --pid "$pid" --conns 10000 --room-size 100 --concurrency 256 --settle 30s --hold 5s
			stop "$pid"
		done ;;
	cross)
		start_chatd 5701 --history 0 --nats-listen 127.0.0.1:5799
		g1=$pid
		start_chatd 5702 --history 0 --nats nats://127.0.0.1:5799
		g2=$pid
		bench cross cross --addr 127.0.0.1:5701 --addr2 127.0.0.1:5702 --pid "$g1" --conns 500 --senders 10 --rate 1000 --duration "$dur" --rounds 3
		bench fanout-2gw fanout --addr 127.0.0.1:5701,127.0.0.1:5702 --pid "$g1" --conns 1000 --senders 10 --duration "$dur"
		stop "$g2"; stop "$g1" ;;
	churn)
		start_chatd 5700 --history 0
		bench churn churn --addr 127.0.0.1:5700 --pid "$pid" --conns 200 --senders 10 --rate 500 --churn-rate 200 --duration "$dur" --rounds 3
		stop "$pid" ;;
	quiet)
		for n in 1000 2000 4000; do
			for q in -1 500; do
				start_chatd 5700 --history 0 --quiet-room-size "$q"
				bench "quiet-$n-q$q" idle --addr 127.0.0.1:5700 --pid "$pid" --conns "$n" --room-size "$n" --concurrency 1 --settle 2s --hold 2s --timeout 10m
				stop "$pid"
			done
		done
		start_chatd 5700 --history 0
		bench quiet-10000-q500 idle --ref off --addr 127.0.0.1:5700 --pid "$pid" --conns 10000 --room-size 10000 --concurrency 1 --settle 3s --hold 3s
		stop "$pid" ;;
	scale)
		for c in 100 1000 3000; do
			start_chatd 5700 --history 0
			bench "scale-c$c" fanout --addr 127.0.0.1:5700 --pid "$pid" --conns "$c" --senders 10 --duration 8s
			stop "$pid"
		done
		for s in 1 50; do
			start_chatd 5700 --history 0
			bench "scale-s$s" fanout --addr 127.0.0.1:5700 --pid "$pid" --conns 1000 --senders "$s" --duration 8s
			stop "$pid"
		done ;;
	retain)
		# The retention window for gap-fill and resume (--retain, 1000
		# lines per room by default) against the stream keeping only the
		# replayed history (--retain 0); history on in both.
		for r in 0 1000; do
			start_chatd 5700 --retain "$r"
			bench "retain$r-fanout" fanout --addr 127.0.0.1:5700 --pid "$pid" --conns 1000 --senders 10 --window 16 --duration "$dur" --rounds 3
			stop "$pid"
			start_chatd 5700 --retain "$r"
			bench "retain$r-latency" latency --addr 127.0.0.1:5700 --pid "$pid" --conns 500 --senders 10 --rate 1000 --duration "$dur" --rounds 3
			stop "$pid"
		done ;;
	cluster)
		# The cost model's terms for N gateways and M brokers: one process
		# (gateway and embedded NATS), then three brokers (JetStream R=3)
		# with one and with three gateways; 600 members, 10 senders,
		# 1,000 lines/s; history off and on. Per-process CPU per line is
		# read from /proc by costrun.
		for h in 0 20; do
			start_chatd 5700 --history "$h"
			# One process is both: its CPU shows in both columns.
			costrun "cluster-single-h$h" 127.0.0.1:5700 "$pid" "$pid"
			stop "$pid"
			secret="$bin/cluster-secret"
			rm -f "$secret"; "$bin/chatd" secret --init "$secret" >/dev/null
			bps=()
			for i in 1 2 3; do
				rm -rf "$bin/broker$i"
				start_role "576$i" broker --name "b$i" --data "$bin/broker$i" --nats-listen "127.0.0.1:576$i" \
					--cluster-listen "127.0.0.1:577$i" --peers 127.0.0.1:5771,127.0.0.1:5772,127.0.0.1:5773 \
					--cluster-secret-file "$secret" --log-level warn
				bps+=("$pid")
			done
			sleep 5 # JetStream meta leader election; gateways retry until it answers
			gps=()
			for i in 1 2 3; do
				start_role "575$i" gateway --nats "nats://127.0.0.1:576$i" --replicas 3 --cluster-secret-file "$secret" \
					--listen "127.0.0.1:575$i" --history "$h" "${limits[@]}"
				gps+=("$pid")
			done
			costrun "cluster-3b1g-h$h" 127.0.0.1:5751 "${bps[*]}" "${gps[0]}"
			costrun "cluster-3b3g-h$h" 127.0.0.1:5751,127.0.0.1:5752,127.0.0.1:5753 "${bps[*]}" "${gps[*]}"
			for p in "${gps[@]}" "${bps[@]}"; do stop "$p"; done
		done ;;
	crash)
		# A crashed gateway's users coming back: one broker, three gateways;
		# 5,000 users in rooms of 100 on the first, killed (SIGKILL), come
		# back on the other two. At chatd's default lease (15 s), then at
		# 5 s: a dead gateway's nicknames are only freed once its lease has
		# lapsed, so the default lease alone exceeds the 8 s target.
		secret="$bin/crash-secret"
		for lease in default 5s; do
			la=(); [ "$lease" = default ] || la=(--lease "$lease")
			rm -f "$secret"; "$bin/chatd" secret --init "$secret" >/dev/null
			rm -rf "$bin/crash-broker"
			start_role 5861 broker --name cb1 --data "$bin/crash-broker" --nats-listen 127.0.0.1:5861 --cluster-listen "" \
				--cluster-secret-file "$secret" --log-level warn
			cb=$pid
			cgs=()
			for i in 2 3 4; do
				start_role "586$i" gateway --nats nats://127.0.0.1:5861 --cluster-secret-file "$secret" \
					--listen "127.0.0.1:586$i" "${la[@]}" "${limits[@]}"
				cgs+=("$pid")
			done
			# Every gateway answers with NAME (it is on the bus) first.
			for i in 2 3 4; do
				for _ in $(seq 300); do
					[ "$(timeout 2 head -c4 <"/dev/tcp/127.0.0.1/586$i" 2>/dev/null)" = NAME ] && break
					sleep 0.1
				done
			done
			bench "crash-lease-$lease" crash --addr 127.0.0.1:5862 --addr2 127.0.0.1:5863,127.0.0.1:5864 --pid "${cgs[0]}" \
				--conns 5000 --room-size 100 --sources 4 --settle 30s --hold 3s || true
			wait "${cgs[0]}" 2>/dev/null || true # killed by chatbench
			keep=(); for p in "${pids[@]}"; do [ "$p" != "${cgs[0]}" ] && keep+=("$p"); done; pids=("${keep[@]:-}")
			for p in "${cgs[@]:1}" "$cb"; do stop "$p"; done
			for i in 2 3 4; do cp "$bin/gateway-586$i.log" "$out/crash-lease-$lease-gateway-586$i.log"; done
		done ;;
	*) echo "unknown step $step"; exit 2 ;;
	esac
done
echo "results in $out"
