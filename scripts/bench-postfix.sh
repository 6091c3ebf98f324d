#!/usr/bin/env bash
# bench-postfix.sh: messages per second through a real Postfix (issue 12):
# Postfix alone, Postfix with zipgate letting every domain pass (`zipgate
# policy set '*' -action pass`: the do-nothing filter), and Postfix with
# zipgate zipping (the default rule), on one private Postfix on loopback
# (scripts/e2e/lib.sh), one after the other on the same machine.
#
# Each run submits BENCH_MAILS mails with a BENCH_ATTACH_KB KiB random
# attachment from BENCH_SENDERS parallel swaks loops and counts the time
# from the first submission to the last mail it makes arriving in the
# Maildir: the message itself, and when zipped also the sender's notice,
# the password mail (delay 0s) and the sender's confirmation, so zipgate's
# own mails are part of its cost. One line per run, and the ratio of the
# zipping run to the pass-through one (issue 12 wants at least 0.90).
# Nothing is asserted: the figures vary with the machine's load.
#
# Needs root (Postfix) and ports 2525, 10025 and 10026 free.
#
#   bash scripts/bench-postfix.sh
#   BENCH_MAILS=20 bash scripts/bench-postfix.sh
set -euo pipefail

# shellcheck source=scripts/e2e/lib.sh
source "$(dirname "$0")/e2e/lib.sh"

MAILS=${BENCH_MAILS:-40}
SENDERS=${BENCH_SENDERS:-4}
ATTACH_KB=${BENCH_ATTACH_KB:-1024}
RCPT=bob@partner.example
LINES=()

main() {
	e2e_init
	pf_setup
	pf_start
	head -c $((ATTACH_KB * 1024)) /dev/urandom >"$W/attach.bin"

	# Postfix alone: no content filter.
	postconf -c "$PF_CONF" -e 'content_filter =' >/dev/null
	postfix -c "$PF_CONF" reload >/dev/null 2>&1
	run "postfix alone" 1
	postconf -c "$PF_CONF" -e 'content_filter = zipgate:[127.0.0.1]:10025' >/dev/null
	postfix -c "$PF_CONF" reload >/dev/null 2>&1

	zg_start "$W/data-pass" 0s
	"$W/zipgate" policy set '*' -action pass -data "$W/data-pass" >/dev/null
	run "zipgate, every domain pass" 1
	zg_stop

	zg_start "$W/data-zip" 0s
	run "zipgate zipping (4 mails each)" 4
	zg_stop

	echo "---- through Postfix: $MAILS mails with a $ATTACH_KB KiB attachment, $SENDERS senders"
	printf '%s\n' "${LINES[@]}"
	awk -v p="$PASS_RATE" -v z="$ZIP_RATE" 'BEGIN { printf "zipping / pass-through: %.2f (issue 12: at least 0.90)\n", z / p }'
}

# run LABEL PER_MAIL: sends the mails, waits for LABEL's deliveries
# (PER_MAIL each), prints messages per second.
run() {
	local label=$1 per=$2 t0 took have want s i rate
	local run_id=${label%% *}.$RANDOM
	: >"$W/$run_id.tsv"
	want=$((MAILS * per + $(sink_count)))
	t0=$(now)
	for ((s = 0; s < SENDERS; s++)); do
		(
			for ((i = s + 1; i <= MAILS; i += SENDERS)); do
				send_swaks "$W/$run_id.tsv" "<$run_id.$i@bench.zipgate.test>" "$RCPT" 1 \
					--header "Subject: bench $i" --body "bench $i" \
					--attach-type application/octet-stream --attach-name "data_$i.bin" --attach "$W/attach.bin" >/dev/null ||
					echo "$i" >>"$W/$run_id.fail"
			done
		) &
		BG_PIDS+=($!)
	done
	wait "${BG_PIDS[@]}" 2>/dev/null || true
	BG_PIDS=()
	[[ ! -s $W/$run_id.fail ]] || die "$label: swaks failed for $(wc -l <"$W/$run_id.fail") mails"
	wait_until 600 "$label: $((MAILS * per)) mails delivered" sink_has "$want" || die "$label did not finish"
	took=$(elapsed_since "$t0")
	have=$(sink_count)
	rate=$(awk -v n="$MAILS" -v t="$took" 'BEGIN { printf "%.2f", n / t }')
	LINES+=("$(printf '%-32s %6.1f s  %s msg/s  (%d mails delivered)' "$label:" "$took" "$rate" $((have - want + MAILS * per)))")
	case $label in
	*pass*) PASS_RATE=$rate ;;
	*zipping*) ZIP_RATE=$rate ;;
	esac
	log "$label: $rate msg/s"
}

# sink_count: mails in the catch-all Maildir.
sink_count() { { find "$SINK/new" "$SINK/cur" -type f 2>/dev/null || true; } | wc -l; }
sink_has() { (($(sink_count) >= $1)); }

main "$@"
