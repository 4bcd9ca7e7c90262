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
# scale retain (default: all). NGIRCD=no leaves ngIRCd out; DURATION (10s)
# is how long each chat run sends. Takes about an hour on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/chatbench-results}
shift || true
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(fanout perline latency latency100 idle10k idle19k storm cross churn quiet scale retain)
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
	*) echo "unknown step $step"; exit 2 ;;
	esac
done
echo "results in $out"
