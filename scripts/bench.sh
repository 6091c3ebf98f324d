#!/usr/bin/env bash
# bench.sh: throughput and peak memory of a real zipgate process.
#
# Builds zipgate, a sink next hop (scripts/benchsink) and a sender
# (scripts/benchsend); for each workload starts a fresh zipgate on
# 127.0.0.1, sends the messages over SMTP (each must get 250), and prints
# one line: messages/s, MB/s (10^6 bytes of message as sent, base64
# included) and zipgate's peak RSS (VmHWM from /proc/PID/status).
#
# Workloads: BENCH_COUNT messages with a BENCH_SIZE_MB MiB attachment, then
# BENCH_LARGE_COUNT with BENCH_LARGE_MB MiB (stays under the default
# smtp.max_message_bytes of 50 MiB after base64), each for the kinds in
# BENCH_KINDS: random (incompressible, stored) and text (Japanese and
# English lines, deflated). BENCH_CONCURRENCY connections send at once
# (default 1); each workload gives up after BENCH_TIMEOUT seconds (600).
#
#   bash scripts/bench.sh
#   BENCH_COUNT=5 BENCH_KINDS=text bash scripts/bench.sh
set -euo pipefail

COUNT=${BENCH_COUNT:-20}
SIZE_MB=${BENCH_SIZE_MB:-10}
LARGE_COUNT=${BENCH_LARGE_COUNT:-1}
LARGE_MB=${BENCH_LARGE_MB:-30}
KINDS=${BENCH_KINDS:-random text}
CONCURRENCY=${BENCH_CONCURRENCY:-1}
TIMEOUT=${BENCH_TIMEOUT:-600} # seconds, per workload

cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zipgate-bench.XXXXXX")
pids=()

# stop ends one process this script started: TERM, at most 10 s, then KILL.
stop() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# forget drops a stopped pid from the list cleanup stops.
forget() {
	local keep=() pid
	for pid in "${pids[@]}"; do
		[[ $pid == "$1" ]] || keep+=("$pid")
	done
	pids=("${keep[@]}")
}

cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		stop "$pid"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# wait_for FILE PATTERN: until FILE has a line matching PATTERN, 15 s at most.
wait_for() {
	local i
	for ((i = 0; i < 150; i++)); do
		if grep -q -- "$2" "$1" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: timed out waiting for '$2' in $1" >&2
	cat "$1" >&2 || true
	return 1
}

echo "building..." >&2
go build -o "$tmp/zipgate" ./cmd/zipgate
go build -o "$tmp/benchsink" ./scripts/benchsink
go build -o "$tmp/benchsend" ./scripts/benchsend

"$tmp/benchsink" -addr-file "$tmp/sink.addr" 2>"$tmp/sink.log" &
sinkpid=$!
pids+=("$sinkpid")
wait_for "$tmp/sink.addr" '127.0.0.1:'
sink=$(cat "$tmp/sink.addr")

# The sender page must not take a fixed port that may be in use.
webflag=()
serve_help=$("$tmp/zipgate" serve -h 2>&1 || true)
if [[ $serve_help == *-web-listen* ]]; then
	webflag=(-web-listen 127.0.0.1:0)
fi

# workload KIND SIZE_MB COUNT
workload() {
	local kind=$1 mb=$2 n=$3
	local label="$kind ${mb} MiB x$n"
	local log="$tmp/zipgate-$kind-$mb.log" data="$tmp/data-$kind-$mb"

	# Port 0: the kernel picks a free port; zipgate logs the one it got.
	"$tmp/zipgate" serve -listen 127.0.0.1:0 -next-hop "$sink" -data "$data" "${webflag[@]}" 2>"$log" &
	local zpid=$!
	pids+=("$zpid")
	wait_for "$log" '"msg":"zipgate started"'
	local addr
	addr=$(grep -o '"listen":"[^"]*"' "$log" | head -n1 | cut -d'"' -f4)
	local idle
	idle=$(awk '/^VmRSS:/ {print $2}' "/proc/$zpid/status")

	local out
	if ! out=$(timeout "$TIMEOUT" "$tmp/benchsend" -addr "$addr" -n "$n" -size $((mb << 20)) \
		-kind "$kind" -c "$CONCURRENCY" -timeout "$((TIMEOUT - 5))s"); then
		echo "bench: $label: sending failed; zipgate log:" >&2
		tail -n 20 "$log" >&2
		return 1
	fi
	local hwm
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$zpid/status")
	local encrypted
	encrypted=$(grep -c '"action":"encrypt".*"result":"250"' "$log" || true)
	stop "$zpid"
	forget "$zpid"
	if [[ $encrypted -ne $n ]]; then
		echo "bench: $label: zipgate logged $encrypted encrypted messages, want $n" >&2
		return 1
	fi

	read -r msgs bytes secs <<<"$out"
	awk -v l="$label" -v m="$msgs" -v b="$bytes" -v s="$secs" -v h="$hwm" -v i="$idle" 'BEGIN {
		printf "%s: %.2f msg/s, %.1f MB/s, peak RSS %.1f MiB (idle %.1f MiB; %.1f MB in %.2f s)\n",
			l, m / s, b / s / 1e6, h / 1024, i / 1024, b / 1e6, s
	}'
}

echo "zipgate on 127.0.0.1, sink next hop $sink, concurrency $CONCURRENCY" >&2
for kind in $KINDS; do
	workload "$kind" "$SIZE_MB" "$COUNT"
done
if [[ $LARGE_COUNT -gt 0 ]]; then
	for kind in $KINDS; do
		workload "$kind" "$LARGE_MB" "$LARGE_COUNT"
	done
fi

stop "$sinkpid"
forget "$sinkpid"
cat "$tmp/sink.log" >&2
