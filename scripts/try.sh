#!/usr/bin/env bash
# try.sh: zipgate in five minutes, on this machine, behind a real Postfix.
#
#   sudo bash scripts/try.sh          # runs until Ctrl-C
#   TRY_ONCE=1 bash scripts/try.sh    # CI: send, check, stop, one line
#
# Brings up a private Postfix on loopback (its own configuration, queue and
# log in a temp dir: a system Postfix, if any, is left alone) wired as
# deploy/postfix/ says: submission on 127.0.0.1:2525 -> content_filter to
# zipgate on 127.0.0.1:10025 -> reinjection on 127.0.0.1:10026 -> local
# delivery into one Maildir per address (every domain is delivered here:
# nothing leaves this machine). zipgate is built from this checkout and
# runs with a short password delay (TRY_DELAY, 60 s). A sample mail with a
# Japanese file name goes from alice@example.jp to bob@partner.example;
# the script shows where the zipped message, alice's notice with her link
# (cancel / release now) and, after the delay, the password mail are, and
# how to open the zip. Then everything stays up for mail of your own until
# Ctrl-C, which stops only what this script started (the files stay).
#
# TRY_ONCE=1 (CI): delay 5 s; waits for the password mail, opens the zip
# with 7z using that password, compares the files with what was sent,
# stops, prints one summary line, exits non-zero on any failure.
#
# Needs root (Postfix's master runs as root) and ports 2525, 10025 and
# 10026 free; installs Postfix, swaks, 7-Zip and libarchive with apt when
# they are missing (Postfix preseeded with "No configuration", so an
# install writes no system configuration).
set -euo pipefail

# shellcheck source=scripts/e2e/lib.sh
source "$(dirname "$0")/e2e/lib.sh"

ONCE=${TRY_ONCE:-}
if [[ -n $ONCE ]]; then
	DELAY=${TRY_DELAY:-5}
else
	DELAY=${TRY_DELAY:-60}
fi
SENDER=alice@example.jp # as in lib.sh: send_swaks sends from it
RCPT=bob@partner.example
SUBJECT="見積書の送付 (zipgate try.sh)"

main() {
	local t0
	t0=$(now)
	e2e_init
	# The sender page on its usual port when that is free.
	port_open 8025 || WEB_PORT=8025
	trap try_cleanup EXIT
	trap 'exit 0' INT
	trap 'exit 143' TERM
	pf_setup
	maildir_per_address
	pf_start
	zg_start "$W/data" "${DELAY}s"

	make_sample
	T_SENT=$(now)
	send_swaks "$W/ledger.tsv" "<try.$$@example.jp>" "$RCPT" 1 \
		--header "Subject: $SUBJECT" --body "$BODY" \
		--attach-type application/pdf --attach-name "見積書_2026年11月.pdf" --attach "$F/見積書_2026年11月.pdf" \
		--attach-type text/plain --attach-name "議事録.txt" --attach "$F/議事録.txt" >/dev/null ||
		die "could not submit the sample mail"

	show_message
	show_notice
	show_password
	if [[ -n $ONCE ]]; then
		check_zip_opens
		summary "$t0"
		return
	fi
	hold
}

# maildir_per_address gives the test addresses a Maildir each,
# mail/DOMAIN/USER/, as a mail host has them; lib.sh's catch-all (every
# other address, any domain) becomes mail/others/. virtual(8) allows no
# regexp substitution, hence the list.
maildir_per_address() {
	printf '%s example.jp/alice/\n%s partner.example/bob/\n' "$SENDER" "$RCPT" >"$PF_CONF/vmailbox"
	echo '/./ others/' >"$PF_CONF/vmailbox.regexp"
	sed -i "s|^virtual_mailbox_maps = .*|virtual_mailbox_maps = texthash:$PF_CONF/vmailbox, regexp:$PF_CONF/vmailbox.regexp|" "$PF_CONF/main.cf"
	grep -q "^virtual_mailbox_maps = texthash:" "$PF_CONF/main.cf" || die "main.cf from lib.sh changed: no virtual_mailbox_maps line"
	BOB=$PF_MAIL/partner.example/bob
	ALICE=$PF_MAIL/example.jp/alice
}

make_sample() {
	F=$W/sent
	mkdir -p "$F"
	{ printf '%%PDF-1.4\n%% 見積書 2026年11月\n'; head -c 30000 /dev/urandom; } >"$F/見積書_2026年11月.pdf"
	printf '議事録 第3回\n出席者: 山田、鈴木\nMinutes of the third meeting.\n' >"$F/議事録.txt"
	BODY=$'お世話になっております。見積書と議事録を添付します。\nPlease find the quote and the minutes attached.'
}

# one MAILDIR KIND: the first mail of KIND (mailcheck.py kinds) there.
one() { SINK=$1 mails --kind "$2" --files | head -n 1; }

show_message() {
	wait_until 30 "the zipped message in bob's Maildir" one_exists "$BOB" encrypted || die "the message did not arrive"
	MSG=$(one "$BOB" encrypted)
	ZID=$(SINK=$BOB mails --kind encrypted | cut -f2 | head -n 1)
	mkdir -p "$W/zip"
	ZIP=$(mailcheck extract-zip "$MSG" "$W/zip") || die "the message to bob holds no single zip"
	say ""
	say "1. bob@partner.example got the message, its attachments in one zip ($(elapsed_since "$T_SENT") s after sending):"
	say "     $MSG"
	say "   the zip, saved from it: $ZIP"
	# The names are readable without the password; the contents are not.
	7z l -slt "$ZIP" | awk -F' = ' '/^Path = / { p = $2 } /^Method = / { printf "       %s  (%s)\n", p, $2 }'
}

one_exists() { [[ -n $(one "$1" "$2") ]]; }

show_notice() {
	wait_until 30 "the notice in alice's Maildir" one_exists "$ALICE" notice || die "the sender notice did not arrive"
	NOTICE=$(one "$ALICE" notice)
	LINK=$(mailcheck text "$NOTICE" | grep -Eo 'https?://[^[:space:]]+/s/[^[:space:]]+' | head -n 1) || true
	[[ -n $LINK ]] || fail "no link to the sender page in $NOTICE"
	say ""
	say "2. alice@example.jp (the sender) got a notice with her link to cancel or release now:"
	say "     $NOTICE"
	say "     $LINK"
	[[ -n $ONCE ]] && return
	say "   (from another machine: ssh -L $WEB_PORT:127.0.0.1:$WEB_PORT this-host, then open the link)"
}

show_password() {
	local due
	due=$(awk -v a="$T_SENT" -v d="$DELAY" 'BEGIN { printf "%d", a + d }')
	say ""
	say "3. the password mail goes to bob $DELAY s after the message, at $(date -d "@$due" +%T); waiting..."
	local deadline=$((due + 40))
	while :; do
		PWMAIL=$(one "$BOB" password)
		[[ -z $PWMAIL ]] || break
		if "$W/zipgate" jobs show -data "$W/data" "$ZID" 2>/dev/null | grep -q '^State: *canceled'; then
			say "   canceled from the sender page: no password mail will come, so the zip stays closed."
			say "   alice's confirmation: $(SINK=$ALICE mails --kind notice --files | tail -n 1)"
			PW=""
			return
		fi
		(($(date +%s) < deadline)) || die "no password mail $((deadline - ${T_SENT%.*})) s after sending"
		sleep 1
	done
	PW=$(mailcheck password "$PWMAIL") || die "no password in $PWMAIL"
	say "   arrived $(elapsed_since "$T_SENT") s after sending:"
	say "     $PWMAIL"
	say "   password: $PW"
	say "   open the zip:  7z x -p'$PW' -o$W/zip/out '$ZIP'"
}

check_zip_opens() {
	local out=$W/zip/out
	if 7z t -p"wrong$PW" "$ZIP" >/dev/null 2>&1; then
		fail "7z opened the zip with a wrong password"
	fi
	if ! 7z x -p"$PW" -o"$out" "$ZIP" >"$W/7z.log" 2>&1; then
		fail "7z could not open the zip with the password from the password mail: $(tail -n 3 "$W/7z.log")"
	elif ! diff -r "$F" "$out" >/dev/null; then
		fail "the files in the zip differ from those sent: $(diff -rq "$F" "$out" | head -n 3)"
	fi
}

summary() {
	local n
	n=$(find "$W/zip/out" -type f 2>/dev/null | wc -l)
	if (($(failures) > 0)); then
		echo "try: FAILED ($(failures) problems, above): message, notice, password mail, 7z opened $n of 2 files"
		return 1
	fi
	echo "try: OK in $(elapsed_since "$1") s: zipped message and notice with link delivered, password mail after ${DELAY} s, 7z opened the zip with it: $n files as sent"
}

# hold keeps everything up until Ctrl-C, and says what is where.
hold() {
	say ""
	say "Everything keeps running. Send mail of your own (any domain lands here):"
	say "  swaks --server 127.0.0.1:$SUBMIT_PORT --from you@example.jp --to someone@example.com --attach @FILE"
	say "  Maildirs:   $ALICE/ $BOB/ and $PF_MAIL/others/ (the rest)"
	say "  jobs:       $W/zipgate jobs list -data $W/data"
	say "  logs:       $ZG_LOG (zipgate), $PF_LOG/postfix.log (Postfix)"
	say "Ctrl-C stops zipgate and this private Postfix; the files stay in $W."
	while zg_alive; do
		sleep 1
	done
	die "zipgate stopped by itself; its log: $ZG_LOG"
}

say() { printf '%s\n' "$*"; }

# try_cleanup stops what this script started, by pid (lib.sh's cleanup
# does the same but also deletes the work dir on success).
try_cleanup() {
	local rc=$?
	[[ -z $ONCE ]] && log "stopping zipgate and the private Postfix"
	[[ -n $ZG_PID ]] && zg_stop_quietly
	if [[ -n $PF_STARTED ]]; then
		postfix -c "$PF_CONF" stop >/dev/null 2>&1 ||
			{ [[ -f $PF_QUEUE/pid/master.pid ]] && kill "$(tr -d ' ' <"$PF_QUEUE/pid/master.pid")" 2>/dev/null; }
	fi
	if ((rc != 0 || $(failures) > 0)); then
		show_logs
		log "work dir kept: $W"
		((rc != 0)) || rc=1
	elif [[ -n $ONCE && -z ${KEEP_WORKDIR:-} ]]; then
		rm -rf "$W"
	else
		say ""
		say "stopped zipgate and the private Postfix; the mail and logs stay in $W (rm -rf it when done)"
	fi
	exit "$rc"
}

main "$@"
