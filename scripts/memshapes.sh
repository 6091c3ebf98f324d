#!/usr/bin/env bash
# memshapes.sh: peak memory of a real zipgate process under hostile MIME.
#
# Builds zipgate, a sink next hop (scripts/benchsink) and a sender
# (scripts/memshapes); for each shape of internal/mailtest.Shapes (many
# short header lines, 10,000 tiny parts, one 40 MB header-less part, 1 MiB
# lines, ...) starts a fresh zipgate on its built-in limits, sends
# MEM_COUNT copies MEM_CONCURRENCY at a time (default 10 and 10: Postfix's
# parallel deliveries), checks each reply (250, or 554 5.6.0 for the
# shapes over a limit) and prints zipgate's peak RSS (VmHWM from
# /proc/PID/status). Exits 1 when a peak is over MEM_LIMIT_MIB (64).
#
#   bash scripts/memshapes.sh
#   MEM_SHAPES="tiny-attachments long-lines" bash scripts/memshapes.sh
#
# Uses only ports the kernel picks (127.0.0.1:0): no lock needed.
set -euo pipefail

COUNT=${MEM_COUNT:-10}
CONCURRENCY=${MEM_CONCURRENCY:-10}
LIMIT_MIB=${MEM_LIMIT_MIB:-64}
TIMEOUT=${MEM_TIMEOUT:-900} # seconds, per shape

cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zipgate-memshapes.XXXXXX")
PROG=memshapes
# shellcheck source=lib/procs.sh
. scripts/lib/procs.sh

echo "building..." >&2
go build -o "$tmp/zipgate" ./cmd/zipgate
go build -o "$tmp/benchsink" ./scripts/benchsink
go build -o "$tmp/memshapes" ./scripts/memshapes

"$tmp/benchsink" -addr-file "$tmp/sink.addr" 2>"$tmp/sink.log" &
sinkpid=$!
pids+=("$sinkpid")
wait_for "$tmp/sink.addr" '127.0.0.1:'
sink=$(cat "$tmp/sink.addr")

SHAPES=${MEM_SHAPES:-$("$tmp/memshapes" -list | cut -f1)}
over=0
echo "zipgate on its default limits, $COUNT messages per shape, $CONCURRENCY at once, next hop $sink" >&2
for shape in $SHAPES; do
	log="$tmp/zipgate-$shape.log"
	"$tmp/zipgate" serve -listen 127.0.0.1:0 -next-hop "$sink" -data "$tmp/data-$shape" \
		-web-listen 127.0.0.1:0 -admin-listen 127.0.0.1:0 2>"$log" &
	zpid=$!
	pids+=("$zpid")
	wait_for "$log" '"msg":"zipgate started"'
	addr=$(grep -o '"listen":"[^"]*"' "$log" | head -n1 | cut -d'"' -f4)
	idle=$(awk '/^VmRSS:/ {print $2}' "/proc/$zpid/status")
	if ! out=$(timeout "$TIMEOUT" "$tmp/memshapes" -addr "$addr" -shape "$shape" -n "$COUNT" -c "$CONCURRENCY" \
		-timeout "$((TIMEOUT - 5))s"); then
		echo "memshapes: $shape: sending failed; zipgate log:" >&2
		tail -n 20 "$log" >&2
		exit 1
	fi
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$zpid/status")
	stop "$zpid"
	forget "$zpid"
	read -r _ bytes reply secs <<<"$out"
	awk -v s="$shape" -v b="$bytes" -v r="$reply" -v t="$secs" -v h="$hwm" -v i="$idle" -v n="$COUNT" 'BEGIN {
		printf "%-24s %5.1f MB x%d -> %d  peak RSS %5.1f MiB (idle %.1f MiB) in %.1f s\n",
			s, b / 1e6, n, r, h / 1024, i / 1024, t
	}'
	if ((hwm > LIMIT_MIB * 1024)); then
		over=1
	fi
done
stop "$sinkpid"
forget "$sinkpid"
if ((over)); then
	echo "memshapes: a peak RSS is over $LIMIT_MIB MiB" >&2
	exit 1
fi
