# Processes a measuring script starts, and their end. Source it after
# setting PROG (the script's name, for messages) and tmp (its scratch
# directory); append every pid started to pids. On exit it stops those
# processes, by pid only, and removes $tmp.

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
	echo "$PROG: timed out waiting for '$2' in $1" >&2
	cat "$1" >&2 || true
	return 1
}
