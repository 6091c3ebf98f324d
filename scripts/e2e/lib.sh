# shellcheck shell=bash disable=SC2034 # (globals are read by the scripts that source this)
# lib.sh: shared by scripts/e2e-postfix.sh and scripts/faults.sh.
#
# Brings up a private Postfix on loopback, wired exactly like
# deploy/postfix/*.snippet (plus the test-only settings of
# postfix-notes.md), and a zipgate behind it; sends mail with swaks;
# waits with bounds. The checks on delivered mail are in mailcheck.py.
#
# Layout under $W (a fresh temp dir):
#   zipgate              the binary under test
#   zipgate-N.log        its stderr, one file per start
#   postfix/etc          config_directory (main.cf, master.cf, maps)
#   postfix/queue        queue_directory
#   postfix/log          maillog_file postfix.log
#   postfix/mail/sink    the catch-all Maildir every recipient lands in
#
# Needs root: Postfix's master runs as root and delivers as uid 65534.

# The ports are fixed: deploy/postfix/*.snippet names 10025 and 10026.
SUBMIT_PORT=2525
FILTER_PORT=10025
REINJECT_PORT=10026

SENDER=alice@example.jp # envelope sender of every test message

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
E2E_DIR=$REPO/scripts/e2e
PATH=/usr/local/go/bin:$PATH

# 7z and bsdtar turn UTF-8 names in a zip into local names through the
# locale; under C they mangle (7z) or refuse (bsdtar) Japanese names.
export LC_ALL=C.UTF-8

W=""           # work dir, set by e2e_init
ZG_PID=""      # the running zipgate, if any
ZG_LOG=""      # its log
ZG_STARTS=0    # how many times zipgate was started (names the logs)
PF_STARTED=""  # set once postfix start succeeded
BG_PIDS=()     # background senders, stopped on exit

log() { printf '%s %s\n' "$(date +%T.%3N)" "$*" >&2; }

# fail records a failed check and goes on, so one run shows every problem.
# Failures are kept in a file: fail may run in a subshell, $(...).
fail() {
	log "FAIL: $*"
	[[ -z $W ]] || echo "$*" >>"$W/failures"
}

# failures: how many checks failed so far.
failures() { if [[ -n $W && -f $W/failures ]]; then wc -l <"$W/failures"; else echo 0; fi; }

# die is for faults that make further checks pointless.
die() {
	log "FATAL: $*"
	exit 1
}

now() { date +%s.%N; }

# elapsed_since T: seconds since the time T (from now), one decimal.
elapsed_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# before A B: true when time A is earlier than time B (fractional seconds).
before() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# ---------------------------------------------------------------- tools

# ensure_tools installs what is missing (Debian), with Postfix preseeded so
# that its postinst writes no configuration of its own.
ensure_tools() {
	local missing=() t
	for t in postfix swaks 7z bsdtar; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	if ((${#missing[@]} > 0)); then
		log "installing (missing: ${missing[*]})"
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			postfix swaks p7zip-full libarchive-tools >/dev/null
	fi
	for t in postfix postqueue swaks 7z bsdtar python3 go; do
		command -v "$t" >/dev/null || die "$t is not installed"
	done
}

# ------------------------------------------------------------- lifecycle

# e2e_init makes the work dir, checks root and the ports, builds zipgate
# and installs the cleanup trap.
e2e_init() {
	((EUID == 0)) || die "run as root: a private Postfix still needs root to start"
	ensure_tools
	local p
	for p in "$SUBMIT_PORT" "$FILTER_PORT" "$REINJECT_PORT"; do
		if port_open "$p"; then
			die "127.0.0.1:$p is already in use; the Postfix setup needs ports $SUBMIT_PORT, $FILTER_PORT and $REINJECT_PORT free"
		fi
	done
	W=$(mktemp -d "${TMPDIR:-/tmp}/zipgate-e2e.XXXXXX")
	# Postfix daemons (user postfix) and virtual(8) (uid 65534) walk
	# through $W to their directories.
	chmod 755 "$W"
	trap e2e_cleanup EXIT
	trap 'exit 130' INT TERM
	log "work dir $W"
	log "building zipgate"
	(cd "$REPO" && go build -o "$W/zipgate" ./cmd/zipgate) || die "go build failed"
	WEB_PORT=$(free_port)
}

# e2e_cleanup stops what this script started, each by its pid, and on a
# failure shows the logs' tails and keeps the work dir for a look.
e2e_cleanup() {
	local rc=$? pid
	for pid in "${BG_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	[[ -n $ZG_PID ]] && zg_stop_quietly
	pg_stop
	if [[ -n $PF_STARTED ]]; then
		postfix -c "$PF_CONF" stop >/dev/null 2>&1 ||
			{ [[ -f $PF_QUEUE/pid/master.pid ]] && kill "$(tr -d ' ' <"$PF_QUEUE/pid/master.pid")" 2>/dev/null; }
	fi
	if ((rc != 0 || $(failures) > 0)); then
		show_logs
		log "work dir kept: $W"
		((rc != 0)) || rc=1
	elif [[ -n $W && -z ${KEEP_WORKDIR:-} ]]; then
		rm -rf "$W"
	fi
	exit "$rc"
}

show_logs() {
	if [[ -f ${PF_LOG:-}/postfix.log ]]; then
		echo "---- tail of the Postfix log ($PF_LOG/postfix.log)" >&2
		tail -n 40 "$PF_LOG/postfix.log" >&2
	fi
	if [[ -n $ZG_LOG && -f $ZG_LOG ]]; then
		echo "---- tail of the zipgate log ($ZG_LOG)" >&2
		tail -n 20 "$ZG_LOG" >&2
	fi
}

# port_open PORT: something accepts connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s
# until it succeeds; false (and a FAIL) when SECONDS pass first.
wait_until() {
	local limit=$1 what=$2 deadline
	shift 2
	deadline=$(awk -v t="$(now)" -v l="$limit" 'BEGIN { printf "%.3f", t + l }')
	until "$@"; do
		if ! before "$(now)" "$deadline"; then
			fail "timed out after ${limit}s waiting for: $what"
			return 1
		fi
		sleep 0.2
	done
}

# --------------------------------------------------------------- postfix

# pf_setup writes the private instance's configuration: the main.cf of
# postfix-notes.md followed by deploy/postfix/main.cf.snippet as it is,
# and Debian's stock master.cf (chroot off, no port 25) with the test
# submission port and deploy/postfix/master.cf.snippet as it is.
pf_setup() {
	PF=$W/postfix
	PF_CONF=$PF/etc
	PF_QUEUE=$PF/queue
	PF_LOG=$PF/log
	PF_MAIL=$PF/mail
	SINK=$PF_MAIL/sink
	mkdir -p "$PF_CONF" "$PF_QUEUE" "$PF/data" "$PF_LOG" "$PF_MAIL"
	chown postfix:postfix "$PF/data"
	chown 65534:65534 "$PF_MAIL"

	local stock=/etc/postfix/master.cf
	[[ -f $stock ]] || stock=/usr/share/postfix/master.cf.dist
	[[ -f $stock ]] || die "no stock master.cf (looked in /etc/postfix and /usr/share/postfix)"

	cat >"$PF_CONF/main.cf" <<EOF
# Private test instance (scripts/e2e/lib.sh), as in postfix-notes.md.
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF/data
myhostname = pfx.localdomain
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $PF_LOG/postfix.log
maillog_file_prefixes = /var, /dev/stdout, $PF_LOG
# test-only: retry fast instead of every 300 s or more
queue_run_delay = 10s
minimal_backoff_time = 10s
maximal_backoff_time = 60s
# final delivery into one catch-all Maildir (envelope recipient in X-Original-To:)
virtual_mailbox_domains = regexp:$PF_CONF/vdomains.regexp
virtual_mailbox_maps = regexp:$PF_CONF/vmailbox.regexp
virtual_mailbox_base = $PF_MAIL
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534

# ---- deploy/postfix/main.cf.snippet, as shipped
EOF
	cat "$REPO/deploy/postfix/main.cf.snippet" >>"$PF_CONF/main.cf"

	echo '/./ OK' >"$PF_CONF/vdomains.regexp"
	echo '/./ sink/' >"$PF_CONF/vmailbox.regexp"

	# Stock services with chroot "n" (Debian's chroot needs its init
	# script to copy /etc files in) and without the smtpd on port 25.
	awk '
		/^smtp[ \t]+inet[ \t]/ { print "#" $0; next }
		/^[^# \t]/ && NF >= 8 { $5 = "n"; print; next }
		{ print }
	' "$stock" >"$PF_CONF/master.cf"
	cat >>"$PF_CONF/master.cf" <<EOF

# ---- test-only: where the test client submits (postfix-notes.md)
127.0.0.1:$SUBMIT_PORT inet n - n - - smtpd

# ---- deploy/postfix/master.cf.snippet, as shipped
EOF
	cat "$REPO/deploy/postfix/master.cf.snippet" >>"$PF_CONF/master.cf"
}

# pf_start checks the configuration and starts the instance. postfix
# check reports its errors only in maillog_file, hence the log on failure.
pf_start() {
	if ! postfix -c "$PF_CONF" check; then
		show_logs
		die "postfix check failed"
	fi
	if ! postfix -c "$PF_CONF" start; then
		show_logs
		die "postfix start failed"
	fi
	PF_STARTED=1
	wait_until 10 "Postfix listening on 127.0.0.1:$SUBMIT_PORT" port_open "$SUBMIT_PORT" || die "Postfix did not come up"
	wait_until 10 "Postfix reinjection on 127.0.0.1:$REINJECT_PORT" port_open "$REINJECT_PORT" || die "Postfix did not come up"
	log "postfix started (config $PF_CONF)"
}

pf_queue() { postqueue -c "$PF_CONF" -p; }
pf_flush() { postqueue -c "$PF_CONF" -f; }
pf_queue_empty() { pf_queue 2>/dev/null | grep -q '^Mail queue is empty'; }

# pf_log_has REGEX: the Postfix log has a line matching REGEX (ERE).
pf_log_has() { grep -Eq -- "$1" "$PF_LOG/postfix.log"; }

# --------------------------------------------------------------- zipgate

# ------------------------------------------------------------ PostgreSQL

# With ZG_STORE=postgres, zipgate keeps its store in a private PostgreSQL
# cluster instead of SQLite (issue 14): $W/pg, a free loopback port, run
# as the user postgres (PostgreSQL refuses root), with a password; one
# database per zipgate data dir. Durability as shipped (fsync on).
ZG_STORE=${ZG_STORE:-sqlite}
PG_BIN=""
PG_DATA=""
PG_PORT=""

pg_start() {
	PG_BIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
	[[ -x $PG_BIN/initdb ]] || die "PostgreSQL is not installed (apt-get install postgresql)"
	id postgres >/dev/null 2>&1 || die "no user postgres to run PostgreSQL as"
	mkdir -p "$W/pg"
	chown postgres "$W/pg"
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$W/pg/pw"
	chown postgres "$W/pg/pw"
	chmod 600 "$W/pg/pw"
	PG_PORT=$(free_port)
	runuser -u postgres -- "$PG_BIN/initdb" -D "$W/pg/data" -U zipgate --pwfile="$W/pg/pw" --auth=scram-sha-256 \
		-E UTF8 --locale=C.UTF-8 >"$W/pg/initdb.log" 2>&1 || { cat "$W/pg/initdb.log" >&2; die "initdb failed"; }
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$W/pg/data" -l "$W/pg/postgres.log" -w -s \
		-o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=''" start ||
		{ cat "$W/pg/postgres.log" >&2; die "PostgreSQL did not start"; }
	PG_DATA=$W/pg/data
	log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }') on 127.0.0.1:$PG_PORT ($PG_DATA)"
}

pg_stop() {
	[[ -n $PG_DATA ]] || return 0
	runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -s stop || true
	PG_DATA=""
}

# pg_db DATA_DIR: the database of a zipgate data dir, made at first use.
pg_db() {
	local db
	db=zg_$(basename "$1" | tr -c 'a-z0-9\n' '_')
	if [[ ! -f $1.db ]]; then
		PGPASSWORD=$(cat "$W/pg/pw") psql -q -h 127.0.0.1 -p "$PG_PORT" -U zipgate -d postgres \
			-c "CREATE DATABASE $db" >/dev/null || die "CREATE DATABASE $db failed"
		echo "$db" >"$1.db"
	fi
	cat "$1.db"
}

# zg_store_args DATA_DIR: how a zipgate command finds the store of
# DATA_DIR: -data, or with PostgreSQL a configuration naming its database
# (store.url without the password, which is in store.password_file).
zg_store_args() {
	if [[ $ZG_STORE != postgres ]]; then
		echo "-data $1"
		return
	fi
	local db
	db=$(pg_db "$1")
	printf '[store]\nurl = "postgres://zipgate@127.0.0.1:%s/%s?sslmode=disable"\npassword_file = "%s"\n' \
		"$PG_PORT" "$db" "$W/pg/pw" >"$1.toml"
	echo "-config $1.toml -data $1"
}

# zg_start DATA_DIR DELAY [extra serve flags...]: starts zipgate in the
# background and waits for its "started" line.
zg_start() {
	local data=$1 delay=$2 store
	shift 2
	[[ -z $ZG_PID ]] || die "zg_start: zipgate already running (pid $ZG_PID)"
	ZG_STARTS=$((ZG_STARTS + 1))
	ZG_LOG=$W/zipgate-$ZG_STARTS.log
	store=$(zg_store_args "$data")
	# shellcheck disable=SC2086 # $store is flags
	"$W/zipgate" serve -listen "127.0.0.1:$FILTER_PORT" -next-hop "127.0.0.1:$REINJECT_PORT" \
		$store -delay "$delay" -web-listen "127.0.0.1:$WEB_PORT" -admin-listen 127.0.0.1:0 "$@" 2>"$ZG_LOG" &
	ZG_PID=$!
	if ! wait_until 15 "zipgate started (log $ZG_LOG)" zg_log_has '"msg":"zipgate started"'; then
		cat "$ZG_LOG" >&2
		die "zipgate did not start"
	fi
	log "zipgate started (pid $ZG_PID, delay $delay, data $data${*:+, $*})"
}

zg_log_has() { grep -q -- "$1" "$ZG_LOG"; }
zg_alive() { [[ -n $ZG_PID ]] && kill -0 "$ZG_PID" 2>/dev/null; }
zg_gone() { ! kill -0 "$ZG_PID" 2>/dev/null; }

# zg_stop: SIGTERM, then wait for the drain (zipgate allows sessions 30 s)
# and reap; sets ZG_EXIT to its exit status.
zg_stop() {
	local limit=${1:-40}
	ZG_EXIT=""
	[[ -n $ZG_PID ]] || return 0
	kill -TERM "$ZG_PID" 2>/dev/null || true
	if ! wait_until "$limit" "zipgate (pid $ZG_PID) to exit after SIGTERM" zg_gone; then
		kill -KILL "$ZG_PID" 2>/dev/null || true
	fi
	ZG_EXIT=0
	wait "$ZG_PID" || ZG_EXIT=$?
	ZG_PID=""
}

# zg_kill9: the crash: no drain, no cleanup.
zg_kill9() {
	kill -KILL "$ZG_PID"
	wait "$ZG_PID" 2>/dev/null || true
	ZG_PID=""
}

zg_stop_quietly() {
	kill -TERM "$ZG_PID" 2>/dev/null || true
	local i
	for ((i = 0; i < 400; i++)); do
		kill -0 "$ZG_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$ZG_PID" 2>/dev/null || true
	wait "$ZG_PID" 2>/dev/null || true
	ZG_PID=""
}

# zg_jobs SUBCOMMAND DATA_DIR [ARGS...]: the jobs command against the
# store of a data dir.
zg_jobs() {
	local sub=$1 data=$2
	shift 2
	# shellcheck disable=SC2046 # flags
	"$W/zipgate" jobs "$sub" $(zg_store_args "$data") "$@"
}

# ------------------------------------------------------------------ mail

# Debian's own python3 starts in 30 ms; a pyenv shim can take ten times
# that, which matters in polling loops.
PYTHON=/usr/bin/python3
[[ -x $PYTHON ]] || PYTHON=python3
mailcheck() { "$PYTHON" -I "$E2E_DIR/mailcheck.py" "$@"; }

# mails [FILTERS]: what arrived in the sink, one line per mail, oldest
# first: kind id rcpt arrival message-id in-reply-to file subject
# (tab-separated; filters and kinds in mailcheck.py).
mails() { mailcheck list "$SINK" "$@"; }

# send_swaks LEDGER MSGID RCPTS HAS_ATTACHMENTS SWAKS_ARGS...: submits one
# message on the test port with a known Message-ID (swaks adds the field
# unless the message comes whole with --data, which must then have it),
# and notes it in the ledger (the list of sent mail the tally works from)
# once Postfix said 250. Prints Postfix's queue id.
send_swaks() {
	local ledger=$1 mid=$2 rcpts=$3 att=$4 out qid mid_field=()
	shift 4
	[[ " $* " == *" --data "* ]] || mid_field=(--header "Message-Id: $mid")
	if ! out=$(swaks --server "127.0.0.1:$SUBMIT_PORT" --helo client.example --from "$SENDER" \
		--to "$rcpts" "${mid_field[@]}" "$@" 2>&1); then
		log "swaks failed for $mid:"
		printf '%s\n' "$out" | tail -n 5 >&2
		return 1
	fi
	qid=$(printf '%s\n' "$out" | sed -n 's/.*250 .*queued as \([0-9A-Za-z]*\).*/\1/p' | tail -n 1)
	printf '%s\t%s\t%s\t%s\n' "$mid" "$rcpts" "$att" "$qid" >>"$ledger"
	printf '%s\n' "$qid"
}
