#!/usr/bin/env bash
# fuzz.sh: run every fuzz target for a number of executions, one worker
# each (-parallel=1, leaving a core to others), and print per target the
# executions, the wall time, the new interesting inputs, and the fuzz
# worker's peak RSS (VmHWM, sampled every second), so a memory blow-up
# shows. Stops at the first failure (the failing input is written to the
# package's testdata/fuzz, as go test does).
#
#   bash scripts/fuzz.sh                 # FUZZ_EXECS per target (default 200000)
#   FUZZ_EXECS=1000000 FUZZ_TARGETS="rewrite:FuzzRewrite" bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."

EXECS=${FUZZ_EXECS:-200000}
TARGETS=${FUZZ_TARGETS:-"rewrite:FuzzRewrite rewrite:FuzzSignatureParsers mimeparam:FuzzParse mimeparam:FuzzFileName zipper:FuzzSafeName zipper:FuzzIsEncryptedZip"}
log=$(mktemp "${TMPDIR:-/tmp}/zipgate-fuzz.XXXXXX")
trap 'rm -f "$log"' EXIT

for t in $TARGETS; do
	pkg=${t%%:*} name=${t#*:}
	start=$(date +%s)
	go test "./internal/$pkg" -run '^$' -fuzz "^$name\$" -fuzztime "${EXECS}x" -parallel 1 >"$log" 2>&1 &
	gopid=$!
	peak=0
	while kill -0 "$gopid" 2>/dev/null; do
		for w in $(pgrep -f -- "-test.fuzzworker" || true); do
			# Only workers this run started: their parent's parent is ours.
			[[ $(ps -o ppid= -p "$(ps -o ppid= -p "$w" | tr -d ' ')" 2>/dev/null | tr -d ' ') == "$gopid" ]] || continue
			h=$(awk '/^VmHWM:/ {print $2}' "/proc/$w/status" 2>/dev/null || echo 0)
			((h > peak)) && peak=$h
		done
		sleep 1
	done
	if ! wait "$gopid"; then
		cat "$log"
		echo "fuzz: $pkg $name failed" >&2
		exit 1
	fi
	secs=$(($(date +%s) - start))
	last=$(grep -E '^fuzz: elapsed' "$log" | tail -n1)
	execs=$(sed -E 's/.*execs: ([0-9]+).*/\1/' <<<"$last")
	interesting=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	printf '%-10s %-22s %9s execs in %4d s, %s new interesting, worker peak RSS %d MiB\n' \
		"$pkg" "$name" "$execs" "$secs" "${interesting:-0}" $((peak / 1024))
done
