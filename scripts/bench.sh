#!/usr/bin/env bash
# bench.sh: what zipgate adds to the time of a message, against 7-Zip, and
# its peak memory, with a real zipgate process.
#
# Builds zipgate, a sink next hop (scripts/benchsink) and a sender
# (scripts/benchsend); for each workload starts a fresh zipgate on
# 127.0.0.1 (default config, port 0) in front of the sink. Every message
# must get 250.
#
# Added time, one line per kind in BENCH_KINDS: BENCH_ROUNDS rounds (after
# one warm-up round), each sending the same mail once straight to the sink
# and once through zipgate, one at a time; the line gives the medians of
# both times and of the differences (the added time). For kinds with an
# attachment of BENCH_SIZE_MB MiB it also gives the median of BENCH_7Z_RUNS
# runs of `7z a -tzip -mem=AES256` on the bare file, the ratio of the
# added time to it (issue 12: at most 0.20), and both zip sizes. Kinds:
#   random  incompressible (stored), like photos, PDFs, Office files
#   csv     a Japanese customer list (deflated to about a fifth)
#   text    repetitive Japanese and English lines (deflated to 4 %)
#   none    no attachment: zipgate parses it and lets it pass
#
# Memory, one line per entry of BENCH_MEMORY, each on a fresh zipgate:
# VmHWM (peak RSS, from /proc/PID/status) after
#   small       3 messages of 1 MB (a 730 000-byte random attachment)
#   large       1 message of 51.6 MB (36 MiB random attachment; under the
#               default smtp.max_message_bytes of 50 MiB)
#   concurrent  10 messages with a 10 MiB random attachment sent over 10
#               connections at once (Postfix's default process limit)
#
# BENCH_ZIPGATE names a zipgate binary to measure instead of building this
# tree's (to compare with an older build on the same harness).
#
# The machine is usually shared: wall-clock figures vary from run to run,
# which is why each is a median. Nothing here asserts a time; CI runs a
# small version and only prints it.
#
# Messages per second through a real Postfix, zipgate passing against
# zipgate zipping: scripts/bench-postfix.sh.
#
#   flock /work/e2e.lock bash scripts/bench.sh
#   BENCH_ROUNDS=3 BENCH_KINDS="random none" BENCH_MEMORY= bash scripts/bench.sh
set -euo pipefail

ROUNDS=${BENCH_ROUNDS:-5}
SIZE_MB=${BENCH_SIZE_MB:-10}
KINDS=${BENCH_KINDS-random csv text none}
SEVENZIP_RUNS=${BENCH_7Z_RUNS:-5}
MEMORY=${BENCH_MEMORY-small large concurrent}
TIMEOUT=${BENCH_TIMEOUT:-600} # seconds, per workload

cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
tmp=$(mktemp -d "${TMPDIR:-/tmp}/zipgate-bench.XXXXXX")
PROG=bench
# shellcheck source=lib/procs.sh
. scripts/lib/procs.sh

# median of the numbers on stdin, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "building..." >&2
if [[ -n ${BENCH_ZIPGATE:-} ]]; then
	cp "$BENCH_ZIPGATE" "$tmp/zipgate"
else
	go build -o "$tmp/zipgate" ./cmd/zipgate
fi
go build -o "$tmp/benchsink" ./scripts/benchsink
go build -o "$tmp/benchsend" ./scripts/benchsend

"$tmp/benchsink" -addr-file "$tmp/sink.addr" -save "$tmp/last.eml" 2>"$tmp/sink.log" &
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
# Nor the admin pages.
if [[ $serve_help == *-admin-listen* ]]; then
	webflag+=(-admin-listen 127.0.0.1:0)
fi

ZG_PID="" ZG_ADDR="" ZG_LOG="" ZG_STARTS=0

# zg_start: a fresh zipgate (own data dir) in front of the sink.
zg_start() {
	ZG_STARTS=$((ZG_STARTS + 1))
	ZG_LOG=$tmp/zipgate-$ZG_STARTS.log
	"$tmp/zipgate" serve -listen 127.0.0.1:0 -next-hop "$sink" -data "$tmp/data-$ZG_STARTS" "${webflag[@]}" 2>"$ZG_LOG" &
	ZG_PID=$!
	pids+=("$ZG_PID")
	wait_for "$ZG_LOG" '"msg":"zipgate started"'
	# Port 0: the kernel picks a free port; zipgate logs the one it got.
	ZG_ADDR=$(grep -o '"listen":"[^"]*"' "$ZG_LOG" | head -n1 | cut -d'"' -f4)
}

zg_stop() {
	stop "$ZG_PID"
	forget "$ZG_PID"
	ZG_PID=""
}

# zg_check ACTION N: zipgate logged N messages with that action and a 250.
zg_check() {
	local got
	got=$(grep -c "\"action\":\"$1\".*\"result\":\"250\"" "$ZG_LOG" || true)
	if [[ $got -ne $2 ]]; then
		echo "bench: zipgate logged $got messages with action $1 and 250, want $2; its log:" >&2
		tail -n 20 "$ZG_LOG" >&2
		return 1
	fi
}

# zip_size EML: the size of the zip attached to a saved message.
zip_size() {
	python3 -c 'import email, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"))
print(sum(len(p.get_payload(decode=True)) for p in m.walk() if p.get_content_type() == "application/zip"))' "$1"
}

# sevenzip FILE: "SECONDS BYTES", the median time of 7-Zip's AES-256 zip of
# FILE and the size of that zip.
sevenzip() {
	local f=$1 out=$tmp/7z.zip i t0 t1 us
	for ((i = 0; i < SEVENZIP_RUNS; i++)); do
		rm -f "$out"
		t0=$(date +%s%N)
		7z a -tzip -mem=AES256 -pBench-Passw0rd "$out" "$f" >/dev/null
		t1=$(date +%s%N)
		echo $(((t1 - t0) / 1000))
	done >"$tmp/7z.times"
	us=$(median <"$tmp/7z.times")
	awk -v us="$us" -v b="$(stat -c %s "$out")" 'BEGIN { printf "%.6f %d\n", us / 1e6, b }'
}

# added KIND: one line, the time zipgate adds to a mail, against 7-Zip.
added() {
	local kind=$1 label out rounds bytes direct through add
	if [[ $kind == none ]]; then
		label="none (no attachment)"
	else
		label="$kind $SIZE_MB MiB"
	fi
	zg_start
	rm -f "$tmp/last.eml"
	if ! out=$(timeout "$TIMEOUT" "$tmp/benchsend" -addr "$ZG_ADDR" -direct "$sink" -n "$ROUNDS" \
		-size $((SIZE_MB << 20)) -kind "$kind" -timeout "$((TIMEOUT - 5))s"); then
		echo "bench: $label: sending failed; zipgate log:" >&2
		tail -n 20 "$ZG_LOG" >&2
		return 1
	fi
	local action=encrypt
	[[ $kind != none ]] || action=pass
	zg_check "$action" $((ROUNDS + 1))
	zg_stop
	read -r rounds bytes direct through add <<<"$out"
	if [[ $kind == none ]]; then
		awk -v l="$label" -v d="$direct" -v t="$through" -v a="$add" -v r="$rounds" 'BEGIN {
			printf "%s: straight %.1f ms, through zipgate %.1f ms, added %.1f ms (medians of %d; target <= 2 ms)\n",
				l, d * 1e3, t * 1e3, a * 1e3, r
		}'
		return 0
	fi
	# Wait for the sink to have written the last rewritten message.
	local i
	for ((i = 0; i < 50; i++)); do [[ -s $tmp/last.eml ]] && break; sleep 0.1; done
	local zsize sz="" sevensecs="" sevensize=""
	zsize=$(zip_size "$tmp/last.eml")
	if command -v 7z >/dev/null; then
		"$tmp/benchsend" -kind "$kind" -size $((SIZE_MB << 20)) -write-file "$tmp/$kind.bin"
		read -r sevensecs sevensize <<<"$(sevenzip "$tmp/$kind.bin")"
		rm -f "$tmp/$kind.bin"
	fi
	awk -v l="$label" -v d="$direct" -v t="$through" -v a="$add" -v r="$rounds" -v mb="$bytes" \
		-v s="$sevensecs" -v ss="$sevensize" -v z="$zsize" -v sr="$SEVENZIP_RUNS" 'BEGIN {
		printf "%s (%.2f MB mail): straight %.3f s, through zipgate %.3f s, added %.3f s (medians of %d)", l, mb / 1e6, d, t, a, r
		if (s == "") { printf "; 7z not installed, no comparison\n"; exit }
		printf "; 7z %.3f s (median of %d), added/7z %.2f (target <= 0.20); zip %d B, 7z %d B (%+.1f %%)\n",
			s, sr, a / s, z, ss, (z - ss) * 100 / ss
	}'
}

# memory NAME: one line, zipgate's peak RSS for a memory workload.
memory() {
	local name=$1 label n size conc
	case $name in
	small) label="1 MB mail x3" n=3 size=730000 conc=1 ;;
	large) label="51.6 MB mail (36 MiB attachment) x1" n=1 size=$((36 << 20)) conc=1 ;;
	concurrent) label="10 MiB attachment x10 over 10 connections at once" n=10 size=$((10 << 20)) conc=10 ;;
	*)
		echo "bench: unknown BENCH_MEMORY entry $name" >&2
		return 1
		;;
	esac
	zg_start
	local idle out
	idle=$(awk '/^VmRSS:/ {print $2}' "/proc/$ZG_PID/status")
	if ! out=$(timeout "$TIMEOUT" "$tmp/benchsend" -addr "$ZG_ADDR" -n "$n" -size "$size" \
		-kind random -c "$conc" -timeout "$((TIMEOUT - 5))s"); then
		echo "bench: memory $label: sending failed; zipgate log:" >&2
		tail -n 20 "$ZG_LOG" >&2
		return 1
	fi
	local hwm
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$ZG_PID/status")
	zg_check encrypt "$n"
	zg_stop
	read -r msgs bytes secs <<<"$out"
	awk -v l="$label" -v h="$hwm" -v i="$idle" -v m="$msgs" -v b="$bytes" -v s="$secs" 'BEGIN {
		printf "memory, %s: peak RSS (VmHWM) %.1f MiB (idle %.1f MiB; target <= 64 MiB); %.2f msg/s, %.1f MB/s\n",
			l, h / 1024, i / 1024, m / s, b / s / 1e6
	}'
}

echo "zipgate on 127.0.0.1, sink next hop $sink; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for kind in $KINDS; do
	added "$kind"
done
for m in $MEMORY; do
	memory "$m"
done

stop "$sinkpid"
forget "$sinkpid"
cat "$tmp/sink.log" >&2
