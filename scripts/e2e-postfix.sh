#!/usr/bin/env bash
# e2e-postfix.sh: zipgate behind a real Postfix, end to end.
#
# Starts a private Postfix on loopback wired exactly like deploy/postfix/
# (submission 127.0.0.1:2525 -> content_filter zipgate:[127.0.0.1]:10025 ->
# reinjection 127.0.0.1:10026 -> one catch-all Maildir), a fresh zipgate
# with a short password delay, sends with swaks and checks what arrives:
#
#   A  swaks-built, three attachments with Japanese names (text, random
#      binary, fake PDF), two recipients: each recipient gets exactly one
#      zip, which 7z and bsdtar open with the password from the password
#      mail (and refuse with a wrong one); bytes and names as sent; the body
#      text is still there.
#   D  the same for a message built by Python's email package (RFC 2231
#      file names, Shift_JIS text file).
#   B  canceled with `zipgate jobs cancel` right after delivery: its
#      password never arrives (checked past its due time plus a margin).
#   C  no attachments: arrives byte for byte as sent, no X-Zipgate field.
#   E  split by policy (issue 8): one message with a file to a colleague
#      (local_domains), a partner whose rule is `pass` (set with `zipgate
#      policy set` on the running server) and an `encrypt` partner: the
#      colleague and the pass partner each get the original byte for byte,
#      the encrypt partner a zip that opens with the password mail that
#      only it gets; each recipient one copy.
#   H  held (issue 9): two messages to a domain whose rule holds mail for
#      10 minutes: nothing arrives; the sender cancels H1 and sends H2 from
#      the page their notice links to (posting its form, as a browser does):
#      H2 arrives once byte for byte, H1 never, the held copies are gone
#      from disk, and the sender is told how each ended.
#   The password mails arrive after the delay and not before (checked at a
#   point before it, arrival times printed); the sender gets a notice per
#   job and a confirmation (released / canceled); nothing is delivered
#   twice, nothing bounces, the queue ends empty, zipgate logs no warning.
#
# Prints one summary line and exits non-zero on any failure. Needs root
# (Postfix), installs postfix, swaks, p7zip-full and libarchive-tools with
# apt when missing. Ports 2525, 10025 and 10026 must be free.
#
#   bash scripts/e2e-postfix.sh          # E2E_DELAY=8 (seconds) by default
set -euo pipefail

# shellcheck source=scripts/e2e/lib.sh
source "$(dirname "$0")/e2e/lib.sh"

DELAY=${E2E_DELAY:-8}
RCPT1=bob@partner.example
RCPT2=carol@other.example
RCPTS=$RCPT1,$RCPT2
BODY_A='本文です。添付ファイルを送ります。 Body text of message A.'

main() {
	local t_start
	t_start=$(now)
	e2e_init
	pf_setup
	pf_start
	dkim_setup
	zg_start "$W/data" "${DELAY}s" -config "$W/zipgate.toml"
	make_files
	LEDGER=$W/ledger.tsv
	: >"$LEDGER"

	set_policies
	send_messages
	send_split_e
	send_held
	wait_delivered
	check_no_password_yet
	check_passwords_and_zips
	check_split_e
	check_held
	check_untouched_c
	check_canceled_b
	check_notices
	check_jobs_list
	check_dkim
	check_zipgate_log
	final_tally
	log "done in $(elapsed_since "$t_start")s, $(failures) failed checks"
	(($(failures) == 0))
}

# make_files writes the attachments: real bytes, names a Japanese user
# would give them (full-width parentheses, spaces, a dot in the middle).
make_files() {
	F=$W/files
	mkdir -p "$F/a" "$F/d" "$F/b"
	printf '報告書 2026年11月\n売上は前年比 120%% でした。\r\nEnglish line too.\n' >"$F/a/報告書_2026年.txt"
	head -c 49152 /dev/urandom >"$F/a/データ（乱数）.bin"
	{ printf '%%PDF-1.4\n'; head -c 20000 /dev/urandom; } >"$F/a/見積書 v2.pdf"
	"$PYTHON" -c 'import sys; sys.stdout.buffer.write("議事録 第3回\n出席者: 山田、鈴木\n".encode("shift_jis"))' >"$F/d/議事録・第3回.txt"
	head -c 102400 /dev/urandom >"$F/d/設計図.dat"
	printf 'キャンセルされるはずの添付\n' >"$F/b/取消.txt"
}

# send_messages submits A, D, B and C, noting each one's send time.
send_messages() {
	MID_A="<a.$$@e2e.zipgate.test>"
	MID_B="<b.$$@e2e.zipgate.test>"
	MID_C="<c.$$@e2e.zipgate.test>"
	MID_D="<d.$$@e2e.zipgate.test>"

	T_A=$(now)
	send_swaks "$LEDGER" "$MID_A" "$RCPTS" 1 --header "Subject: 見積書の送付 (A)" --body "$BODY_A" \
		--attach-type text/plain --attach-name "報告書_2026年.txt" --attach "$F/a/報告書_2026年.txt" \
		--attach-type application/octet-stream --attach-name "データ（乱数）.bin" --attach "$F/a/データ（乱数）.bin" \
		--attach-type application/pdf --attach-name "見積書 v2.pdf" --attach "$F/a/見積書 v2.pdf" >/dev/null ||
		die "could not submit message A"

	# D: what a standards-minded MUA writes (RFC 2231 names, a charset).
	"$PYTHON" - "$F/d" "$F/d.eml" "$MID_D" "$SENDER" "$RCPTS" <<'EOF'
import email.message, email.policy, email.utils, os, sys
src, out, mid, sender, rcpts = sys.argv[1:]
m = email.message.EmailMessage()
m["From"], m["To"], m["Subject"] = sender, rcpts.replace(",", ", "), "設計資料 (D)"
m["Date"], m["Message-ID"] = email.utils.formatdate(localtime=True), mid
m.set_content("設計資料を添付します。\nDesign documents attached.\n")
for name in sorted(os.listdir(src)):
    with open(os.path.join(src, name), "rb") as f:
        m.add_attachment(f.read(), "application", "octet-stream", filename=name)
with open(out, "wb") as f:
    f.write(m.as_bytes(policy=email.policy.SMTP))
EOF
	grep -q "filename\*=utf-8''" "$F/d.eml" || fail "message D does not use RFC 2231 names as intended"
	T_D=$(now)
	send_swaks "$LEDGER" "$MID_D" "$RCPTS" 1 --data "@$F/d.eml" >/dev/null || die "could not submit message D"

	T_B=$(now)
	send_swaks "$LEDGER" "$MID_B" "$RCPTS" 1 --header "Subject: 誤送信 (B)" --body "to be canceled" \
		--attach-type text/plain --attach-name "取消.txt" --attach "$F/b/取消.txt" >/dev/null ||
		die "could not submit message B"

	# C: no attachments, 8-bit UTF-8 body, RFC 2047 subject; must pass
	# untouched. No line starts with a dot and no "%" (swaks tokens).
	local trail='   ' # trailing spaces: easy to lose on the way
	cat >"$F/c.eml" <<EOF
From: Alice <$SENDER>
To: $RCPT1, $RCPT2
Subject: =?UTF-8?B?5re75LuY44Gq44GX?= (C)
Date: $(date -R)
Message-ID: $MID_C
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

添付のないメールです。そのまま届くはずです。
A mail without attachments. Trailing spaces stay:$trail
	tab-indented line
EOF
	send_swaks "$LEDGER" "$MID_C" "$RCPTS" 0 --data "@$F/c.eml" >/dev/null || die "could not submit message C"
	log "submitted A, D, B, C to $RCPTS"
}

# all_delivered: every recipient has a copy of each of A, B, C and D.
all_delivered() {
	(($(mails --kind message | awk -F'\t' -v want="$MID_A $MID_B $MID_C $MID_D" '
		BEGIN { split(want, w, " "); for (i in w) ok[w[i]] = 1 }
		ok[$5] { seen[$5 " " $3] = 1 }
		END { print length(seen) }') == 8))
}

# first_copy MID RCPT: the (first) delivered copy of a sent message.
first_copy() {
	local f
	f=$(mails --kind message --mid "$1" --rcpt "$2" --files | head -n 1)
	[[ -n $f ]] && echo "$f"
}

wait_delivered() {
	wait_until 30 "A, B, C and D delivered to both recipients" all_delivered || die "messages not delivered"
	log "delivered: A, B, C, D to both recipients ($(elapsed_since "$T_A")s after sending A)"
	ID_B=$(zid_of "$MID_B")
	cancel_b # first, well before its password is due
	ID_A=$(zid_of "$MID_A")
	ID_D=$(zid_of "$MID_D")
	log "zipgate ids: A=$ID_A B=$ID_B D=$ID_D"
	[[ $(zid_of "$MID_A" "$RCPT2") == "$ID_A" ]] || fail "the two recipients of A got different zipgate ids"
}

# zid_of MID [RCPT]: the id in X-Zipgate of the delivered message.
zid_of() {
	local kind id
	IFS=$'\t' read -r kind id _ < <(mails --kind message --mid "$1" --rcpt "${2:-$RCPT1}")
	if [[ $kind != encrypted || $id == - ]]; then
		fail "$1 was delivered without 'X-Zipgate: encrypted' (kind '$kind')"
		echo none
		return 0
	fi
	echo "$id"
}

cancel_b() {
	local out
	if out=$(zg_jobs cancel "$W/data" "$ID_B" 2>&1) && grep -q "canceled" <<<"$out"; then
		log "canceled job $ID_B (B) $(elapsed_since "$T_B")s after sending it"
	else
		fail "zipgate jobs cancel $ID_B: $out"
	fi
}

# check_no_password_yet: before the delay has passed since A was sent, no
# password mail may exist; the check is only valid before that point.
check_no_password_yet() {
	local t n
	t=$(now)
	n=$(mails --kind password | wc -l)
	if ! before "$t" "$(awk -v a="$T_A" -v d="$DELAY" 'BEGIN { printf "%.3f", a + d }')"; then
		fail "could not check for early passwords: delivery took $(elapsed_since "$T_A")s, longer than the delay (${DELAY}s)"
	elif ((n > 0)); then
		fail "$n password mail(s) arrived $(awk -v a="$T_A" -v b="$t" 'BEGIN { printf "%.1f", b - a }')s after sending, before the ${DELAY}s delay"
	else
		log "no password mail $(awk -v a="$T_A" -v b="$t" 'BEGIN { printf "%.1f", b - a }')s after sending (delay ${DELAY}s): good"
	fi
}

passwords_in() {
	(($(mails --kind password | awk -F'\t' -v a="$ID_A" -v d="$ID_D" '$2 == a || $2 == d' | wc -l) >= 4))
}

check_passwords_and_zips() {
	wait_until $((DELAY + 30)) "the password mails of A and D (both recipients)" passwords_in || return 0
	check_job A "$ID_A" "$T_A" "$F/a" "$MID_A"
	check_job D "$ID_D" "$T_D" "$F/d" "$MID_D"
	local f
	f=$(first_copy "$MID_A" "$RCPT1")
	mailcheck has-text "$f" "$BODY_A" || fail "the body text of A is gone after the rewrite ($f)"
}

# check_job NAME ID SENT_AT FILES_DIR MID: for each recipient, the password
# mail came after the delay and opens that recipient's zip with 7z and
# bsdtar, giving the files as sent.
check_job() {
	local name=$1 id=$2 sent=$3 dir=$4 mid=$5 r found pwf arrival pw zip out
	for r in "$RCPT1" "$RCPT2"; do
		found=$(mails --kind password --id "$id" --rcpt "$r")
		[[ $(wc -l <<<"$found") == 1 && -n $found ]] || {
			fail "$name: want one password mail to $r, found: ${found:-none}"
			continue
		}
		IFS=$'\t' read -r _ _ _ arrival _ _ pwf _ <<<"$found"
		log "$name: password mail to $r arrived $(awk -v a="$sent" -v b="$arrival" 'BEGIN { printf "%.2f", b - a }')s after sending (delay ${DELAY}s)"
		before "$arrival" "$(awk -v a="$sent" -v d="$DELAY" 'BEGIN { printf "%.3f", a + d }')" &&
			fail "$name: the password mail to $r arrived before the delay"
		pw=$(mailcheck password "$pwf") || {
			fail "$name: no password in $pwf"
			continue
		}
		out=$W/out/$name-${r%@*}
		mkdir -p "$out"
		zip=$(mailcheck extract-zip "$(first_copy "$mid" "$r")" "$out") || {
			fail "$name: the copy for $r does not hold exactly one zip"
			continue
		}
		check_zip "$name/$r" "$zip" "$pw" "$dir" "$out"
	done
}

# check_zip LABEL ZIP PASSWORD ORIGINALS_DIR OUT: 7z and bsdtar both open
# it with the password, refuse a wrong one, and give the original names
# and bytes.
check_zip() {
	local label=$1 zip=$2 pw=$3 orig=$4 out=$5 tool n
	n=$(find "$orig" -type f | wc -l)
	[[ $(7z l -slt "$zip" | grep -c '^Method = .*AES-256') == "$n" ]] ||
		fail "$label: 7z does not list $n AES-256 entries: $(7z l -slt "$zip" | grep -E '^(Path|Method) =' | tr '\n' ' ')"
	if 7z t -p"wrong$pw" "$zip" >/dev/null 2>&1; then
		fail "$label: 7z opened the zip with a wrong password"
	fi
	mkdir -p "$out/bsdtar-wrong"
	if (cd "$out/bsdtar-wrong" && bsdtar -xf "$zip" --passphrase "wrong$pw") >/dev/null 2>&1; then
		fail "$label: bsdtar opened the zip with a wrong password"
	fi
	mkdir -p "$out/7z" "$out/bsdtar"
	7z x -p"$pw" -o"$out/7z" "$zip" >"$out/7z.log" 2>&1 || fail "$label: 7z x failed: $(tail -n 3 "$out/7z.log")"
	(cd "$out/bsdtar" && bsdtar -xf "$zip" --passphrase "$pw") >"$out/bsdtar.log" 2>&1 ||
		fail "$label: bsdtar failed: $(tail -n 3 "$out/bsdtar.log")"
	for tool in 7z bsdtar; do
		if ! diff <(cd "$orig" && find . -type f | sort) <(cd "$out/$tool" && find . -type f | sort) >"$out/$tool.names.diff"; then
			fail "$label: names from $tool differ from the originals: $(cat "$out/$tool.names.diff")"
			continue
		fi
		if ! diff -r "$orig" "$out/$tool" >/dev/null; then
			fail "$label: bytes from $tool differ from the originals"
			continue
		fi
	done
	log "$label: zip $(basename "$zip") (AES-256) opens with 7z and bsdtar; $n files, names and bytes as sent"
}

check_untouched_c() {
	local r f
	for r in "$RCPT1" "$RCPT2"; do
		f=$(first_copy "$MID_C" "$r") || {
			fail "C: no copy for $r"
			continue
		}
		if grep -qi '^X-Zipgate:' "$f"; then
			fail "C: the copy for $r has an X-Zipgate field"
		fi
		if mailcheck untouched "$F/c.eml" "$f"; then
			log "C: the copy for $r is byte for byte the message sent (below Postfix's trace fields)"
		else
			fail "C: the copy for $r was changed ($f)"
		fi
	done
}

# check_canceled_b: the scheduler would send at T_B + DELAY; wait past
# that (plus its 5 s poll and a delivery) and make sure nothing came.
check_canceled_b() {
	local until_t left n
	until_t=$(awk -v a="$T_B" -v d="$DELAY" 'BEGIN { printf "%.3f", a + d + 10 }')
	left=$(awk -v a="$until_t" -v b="$(now)" 'BEGIN { d = a - b; if (d < 0) d = 0; printf "%.1f", d }')
	log "B: waiting ${left}s, past its due time plus a margin"
	sleep "$left"
	n=$(mails --kind password --id "$ID_B" | wc -l)
	if ((n > 0)); then
		fail "B: the canceled job's password mail arrived ($n copies)"
	else
		log "B: no password mail $(elapsed_since "$T_B")s after sending (canceled; delay ${DELAY}s): good"
	fi
}

# notices ID: subjects of the mails the sender got about job ID.
notices() { mails --kind notice --id "$1" --rcpt "$SENDER" | cut -f8; }

notices_in() {
	(($(mails --kind notice --rcpt "$SENDER" | awk -F'\t' -v ids=" $ID_A $ID_B $ID_D " 'index(ids, " " $2 " ")' | wc -l) >= 6))
}

# check_notices: per job the sender gets the notice (with the cancel link)
# and then one confirmation: released for A and D, canceled for B.
check_notices() {
	wait_until 20 "two notices to $SENDER for each of A, D and B" notices_in || true
	local id want name subjects
	for name in A D B; do
		case $name in
		A) id=$ID_A want=released ;;
		D) id=$ID_D want=released ;;
		B) id=$ID_B want=canceled ;;
		esac
		subjects=$(notices "$id")
		if [[ $(wc -l <<<"$subjects") != 2 ]] || ! grep -q "^\[zipgate\] $want: " <<<"$subjects" ||
			[[ $(grep -c -v "^\[zipgate\] $want: " <<<"$subjects") != 1 ]]; then
			fail "$name: want the notice and a '$want' confirmation to $SENDER, got: $(paste -sd '|' <<<"$subjects")"
		else
			log "$name: sender notices: $(paste -sd '|' <<<"$subjects")"
		fi
	done
}

check_jobs_list() {
	local list
	list=$(zg_jobs list "$W/data" | sed '/^$/,$d') # the jobs, not the held messages under them
	grep -q "^$ID_A  *released " <<<"$list" || fail "jobs list: A ($ID_A) is not released: $list"
	grep -q "^$ID_D  *released " <<<"$list" || fail "jobs list: D ($ID_D) is not released: $list"
	grep -q "^$ID_B  *canceled " <<<"$list" || fail "jobs list: B ($ID_B) is not canceled: $list"
	[[ $(($(wc -l <<<"$list") - 1)) == 4 ]] || fail "jobs list: want 4 jobs (A, B, D, E), got: $list"
}

# set_policies: the admin sets a rule on the running server.
LOCAL_RCPT=jiro@${SENDER#*@}
PASS_RCPT=dave@pass.example
set_policies() {
	"$W/zipgate" policy set pass.example -action pass -note "e2e: gets mail as sent" -config "$W/zipgate.toml" \
		-data "$W/data" >/dev/null || die "zipgate policy set failed"
	"$W/zipgate" policy set hold.example -hold 10m -config "$W/zipgate.toml" -data "$W/data" >/dev/null ||
		die "zipgate policy set failed"
}

# send_split_e: message E (not in the ledger: two of its copies carry the
# file in the clear on purpose, which the tally would call a leak).
send_split_e() {
	MID_E="<e.$$@e2e.zipgate.test>"
	head -c 30000 /dev/urandom >"$F/split.bin"
	{
		printf 'From: Alice <%s>\nTo: %s, %s, %s\nSubject: split (E)\nDate: %s\nMessage-ID: %s\n' \
			"$SENDER" "$LOCAL_RCPT" "$PASS_RCPT" "$RCPT1" "$(date -R)" "$MID_E"
		printf 'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="e-boundary"\n\n'
		printf -- '--e-boundary\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n'
		printf '分割配送のテストです。\n'
		printf -- '--e-boundary\nContent-Type: application/octet-stream; name="split.bin"\n'
		printf 'Content-Disposition: attachment; filename="split.bin"\nContent-Transfer-Encoding: base64\n\n'
		base64 -w 76 "$F/split.bin"
		printf -- '--e-boundary--\n'
	} >"$F/e.eml"
	send_swaks "$W/e.tsv" "$MID_E" "$LOCAL_RCPT,$PASS_RCPT,$RCPT1" 1 --data "@$F/e.eml" >/dev/null ||
		die "could not submit message E"
}

check_split_e() {
	local r f n id pwf pw zip
	wait_until 30 "E delivered to its three recipients" split_delivered || return 0
	for r in "$LOCAL_RCPT" "$PASS_RCPT"; do
		n=$(mails --kind message --mid "$MID_E" --rcpt "$r" | wc -l)
		((n == 1)) || fail "E: $r got $n copies"
		f=$(first_copy "$MID_E" "$r")
		if mailcheck untouched "$F/e.eml" "$f"; then
			log "E: the copy for $r is byte for byte the message sent"
		else
			fail "E: the copy for $r was changed ($f)"
		fi
	done
	(($(mails --kind message --mid "$MID_E" --rcpt "$RCPT1" | wc -l) == 1)) || fail "E: $RCPT1 did not get exactly one copy"
	id=$(zid_of "$MID_E" "$RCPT1")
	wait_until $((DELAY + 30)) "the password mail of E" split_password "$id" || return 0
	n=$(mails --kind password --id "$id" | wc -l)
	((n == 1)) || fail "E: $n password mails, want one, to $RCPT1 only"
	pwf=$(mails --kind password --id "$id" --rcpt "$RCPT1" --files)
	pw=$(mailcheck password "$pwf") || {
		fail "E: no password in $pwf"
		return 0
	}
	mkdir -p "$W/out/E"
	zip=$(mailcheck extract-zip "$(first_copy "$MID_E" "$RCPT1")" "$W/out/E") || {
		fail "E: no zip for $RCPT1"
		return 0
	}
	if 7z x -p"$pw" -o"$W/out/E/7z" "$zip" >/dev/null 2>&1 && cmp -s "$W/out/E/7z/split.bin" "$F/split.bin"; then
		log "E: split as the policies say: the original to $LOCAL_RCPT (local) and $PASS_RCPT (pass), the zip and its password to $RCPT1"
	else
		fail "E: the zip of $RCPT1 does not open to the file sent"
	fi
}

split_delivered() { (($(mails --kind message --mid "$MID_E" | wc -l) >= 3)); }
split_password() { (($(mails --kind password --id "$1" | wc -l) >= 1)); }

# dkim_setup: a signing key for the sender's domain, made by zipgate
# itself, and a config that uses it (DNS is stood in for by the key file).
dkim_setup() {
	(cd "$REPO" && go build -o "$W/dkimverify" ./scripts/e2e/dkimverify) || die "go build dkimverify failed"
	"$W/zipgate" dkim keygen -domain "${SENDER#*@}" -selector e2e -out "$W/dkim.key" >"$W/keygen.out" ||
		die "dkim keygen failed"
	{
		printf '[policy]\nlocal_domains = ["%s"]\n\n' "${SENDER#*@}"
		sed -n '/^\[\[dkim.key\]\]/,$p' "$W/keygen.out"
	} >"$W/zipgate.toml"
	"$W/zipgate" configtest -config "$W/zipgate.toml" >/dev/null || die "configtest refused the DKIM config"
}

# check_dkim: everything zipgate wrote or changed verifies after Postfix
# delivered it: rewritten messages, password mails, sender notices.
check_dkim() {
	local files=()
	mapfile -t files < <(mails --kind encrypted --files; mails --kind password --files; mails --kind notice --files)
	((${#files[@]} > 0)) || fail "no mail from zipgate to check DKIM on"
	if ! "$W/dkimverify" -domain "${SENDER#*@}" -selector e2e -key "$W/dkim.key" "${files[@]}" >"$W/dkim.out"; then
		cat "$W/dkim.out" >&2
		fail "DKIM: some delivered mail does not verify (above)"
	else
		log "DKIM: ${#files[@]} delivered mails from zipgate verify"
	fi
	# Untouched mail is not signed by zipgate.
	local plain
	plain=$(mails --kind plain --files | head -n1)
	[[ -n $plain ]] || fail "DKIM: no untouched mail to check"
	if "$W/dkimverify" -domain "${SENDER#*@}" -selector e2e -key "$W/dkim.key" "$plain" >/dev/null; then
		fail "DKIM: untouched mail was signed"
	fi
}

check_zipgate_log() {
	if grep -E '"level":"(WARN|ERROR)"' "$ZG_LOG" >&2; then
		fail "zipgate logged warnings or errors (above)"
	fi
}

final_tally() {
	wait_until 30 "the Postfix queue to empty" pf_queue_empty || pf_queue >&2
	if ! mailcheck tally "$SINK" "$LEDGER" --label e2e --canceled "$ID_B"; then
		fail "the tally found problems (above)"
	fi
}

# ------------------------------------------------------------- held (H)

HOLD_RCPT=dave@hold.example

# send_held: two messages to a domain whose rule holds mail for 10
# minutes; the sender releases one from their page and cancels the other
# (not in the ledger: their tally is here).
send_held() {
	MID_H1="<h1.$$@e2e.zipgate.test>"
	MID_H2="<h2.$$@e2e.zipgate.test>"
	local mid n
	for n in 1 2; do
		mid=MID_H$n
		printf 'From: Alice <%s>\nTo: %s\nSubject: held (H%s)\nDate: %s\nMessage-ID: %s\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n保留のテスト H%s\n' \
			"$SENDER" "$HOLD_RCPT" "$n" "$(date -R)" "${!mid}" "$n" >"$F/h$n.eml"
		send_swaks "$W/h.tsv" "${!mid}" "$HOLD_RCPT" 0 --data "@$F/h$n.eml" >/dev/null || die "could not submit H$n"
	done
}

# held_link N: the link to the sender's page in the notice about HN.
held_link() {
	local f
	f=$(mails --kind notice --mid "$(eval echo "\$MID_H$1")" --rcpt "$SENDER" --files | head -n 1)
	[[ -n $f ]] && mailcheck text "$f" | grep -Eo 'https?://[^[:space:]]+/h/[A-Za-z0-9_-]+' | head -n 1
}

held_notices_in() { [[ -n $(held_link 1) && -n $(held_link 2) ]]; }

# press LINK ACTION: what a browser does: load the page, post its form.
press() {
	local code
	code=$(mailcheck press "$1" "$2") || {
		fail "H: the page $1 does not load or has no form"
		return 1
	}
	[[ $code == 303 ]] || fail "H: $2 on the page answered $code, want 303"
}

check_held() {
	local l1 l2 n
	wait_until 20 "the notices about the held messages H1 and H2" held_notices_in || return 0
	(($(mails --kind message --mid "$MID_H1" | wc -l) + $(mails --kind message --mid "$MID_H2" | wc -l) == 0)) ||
		fail "H: a held message arrived before anyone released it"
	l1=$(held_link 1)
	l2=$(held_link 2)
	press "$l1" cancel
	press "$l2" send
	wait_until 20 "H2 to arrive after Send now" h2_arrived || return 0
	# The scheduler polls every 5 s; H1 has had its chance to go wrongly.
	sleep 6
	n=$(mails --kind message --mid "$MID_H1" | wc -l)
	((n == 0)) || fail "H: the canceled message H1 arrived ($n copies)"
	n=$(mails --kind message --mid "$MID_H2" --rcpt "$HOLD_RCPT" | wc -l)
	((n == 1)) || fail "H: H2 arrived $n times, want once"
	if mailcheck untouched "$F/h2.eml" "$(first_copy "$MID_H2" "$HOLD_RCPT")"; then
		log "H: H2 released from the sender's page arrived once, byte for byte; H1 canceled there never came"
	else
		fail "H: H2 was changed"
	fi
	[[ -z $(ls -A "$W/data/held" 2>/dev/null) ]] || fail "H: copies left in data_dir/held: $(ls "$W/data/held")"
	local subjects
	subjects=$(mails --kind notice --rcpt "$SENDER" | cut -f8 | grep -E 'held \(H[12]\)' | sort | paste -sd '|')
	[[ $subjects == *"canceled: held (H1)"* && $subjects == *"sent: held (H2)"* ]] ||
		fail "H: the sender was not told how H1 and H2 ended: $subjects"
}

h2_arrived() { (($(mails --kind message --mid "$MID_H2" | wc -l) >= 1)); }

main "$@"
