#!/usr/bin/env bash
# deb-check.sh: builds the Debian packages and checks them the way an
# admin meets them: contents, conffile and unit of each; then installs the
# one for this machine with dpkg, runs the installed zipgate as the unit
# would, removes it (data kept), installs it again (edits kept) and purges
# it (data gone).
#
#   CI=true bash scripts/deb-check.sh
#
# It changes this machine (a package, the user zipgate, /etc/zipgate,
# /var/lib/zipgate), so it refuses to run outside CI unless
# DEB_CHECK_INSTALL=1 says this is a throwaway machine. Needs root.
# systemd need not run: nothing here starts the service through it.
# Prints one summary line; exits non-zero on any failed check.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export PATH=/usr/local/go/bin:$PATH
export LC_ALL=C.UTF-8

CONF=/etc/zipgate/zipgate.toml
DATA=/var/lib/zipgate
UNIT=/usr/lib/systemd/system/zipgate.service
FAILS=0
CHECKS=0

log() { printf '%s deb-check: %s\n' "$(date +%T)" "$*" >&2; }
fail() {
	log "FAIL: $*"
	FAILS=$((FAILS + 1))
}
# check DESCRIPTION COMMAND...: one check; the command's output shows on failure.
check() {
	local what=$1 out
	shift
	CHECKS=$((CHECKS + 1))
	if out=$("$@" 2>&1); then
		log "ok: $what"
	else
		fail "$what"
		printf '%s\n' "$out" | tail -n 15 >&2
	fi
}
# has FILE REGEX: FILE has a line matching REGEX (ERE); shows FILE if not.
has() { grep -Eq -- "$2" "$1" || { cat "$1"; return 1; }; }
hasnt() { ! grep -E -- "$2" "$1"; }

((EUID == 0)) || { log "run as root: it installs a package"; exit 1; }
if [[ ${CI:-} != true && ${DEB_CHECK_INSTALL:-} != 1 ]]; then
	log "this installs and purges the zipgate package and its user on this machine;"
	log "run it in CI, or set DEB_CHECK_INSTALL=1 on a throwaway machine"
	exit 1
fi
for t in dpkg-deb setpriv runuser getent; do
	command -v "$t" >/dev/null || { log "missing $t"; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/zipgate-deb-check.XXXXXX")
SERVE_PID=""
cleanup() {
	[[ -z $SERVE_PID ]] || kill "$SERVE_PID" 2>/dev/null || true
	if dpkg-query -W -f '${Status}' zipgate 2>/dev/null | grep -q 'ok installed\|config-files'; then
		dpkg --purge zipgate >/dev/null 2>&1 || true
	fi
	rm -rf "$W"
}
trap cleanup EXIT

# ------------------------------------------------------------- build
mapfile -t DEBS < <(bash scripts/package.sh)
((${#DEBS[@]} == 2)) || { log "package.sh built ${#DEBS[@]} packages, want amd64 and arm64"; exit 1; }
VERSION=$(dpkg-deb -f "${DEBS[0]}" Version)
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || COMMIT=$COMMIT-dirty
HOST_ARCH=$(dpkg --print-architecture)
log "built: ${DEBS[*]##*/}"

# ---------------------------------------------------------- contents
# contents_ok DEB ARCH: what dpkg-deb shows of the package.
check_contents() {
	local deb=$1 arch=$2 d=$W/$2
	mkdir -p "$d/root" "$d/control"
	dpkg-deb -c "$deb" >"$d/list"
	dpkg-deb -x "$deb" "$d/root"
	dpkg-deb -e "$deb" "$d/control"
	check "$arch: file name is zipgate_<version>_$arch.deb" test "${deb##*/}" = "zipgate_${VERSION}_$arch.deb"
	check "$arch: Architecture: $arch" test "$(dpkg-deb -f "$deb" Architecture)" = "$arch"
	check "$arch: Depends: adduser" has <(dpkg-deb -f "$deb" Depends) '^adduser$'
	check "$arch: /usr/bin/zipgate 0755 root" has "$d/list" '^-rwxr-xr-x root/root .* \./usr/bin/zipgate$'
	check "$arch: the unit in /usr/lib/systemd/system" has "$d/list" '^-rw-r--r-- root/root .* \./usr/lib/systemd/system/zipgate\.service$'
	check "$arch: /etc/zipgate/zipgate.toml 0644" has "$d/list" '^-rw-r--r-- root/root .* \./etc/zipgate/zipgate\.toml$'
	check "$arch: the Postfix snippets as examples" has "$d/list" '\./usr/share/doc/zipgate/examples/postfix/master\.cf\.snippet$'
	check "$arch: no /var/lib/zipgate in the package (postinst makes it)" hasnt "$d/list" 'var/lib'
	check "$arch: conffiles is exactly /etc/zipgate/zipgate.toml" test "$(cat "$d/control/conffiles")" = "$CONF"
	check "$arch: maintainer scripts postinst, prerm, postrm" test -x "$d/control/postinst" -a -x "$d/control/prerm" -a -x "$d/control/postrm"
	check "$arch: the conffile is deploy/zipgate.example.toml" cmp "$d/root$CONF" deploy/zipgate.example.toml
	check "$arch: the unit is deploy/systemd/zipgate.service" cmp "$d/root$UNIT" deploy/systemd/zipgate.service
	check "$arch: the unit runs /usr/bin/zipgate serve on the packaged config" \
		has "$d/root$UNIT" '^ExecStart=/usr/bin/zipgate serve -config /etc/zipgate/zipgate\.toml$'
	check "$arch: the unit checks the config first" \
		has "$d/root$UNIT" '^ExecStartPre=/usr/bin/zipgate configtest -config /etc/zipgate/zipgate\.toml$'
	check "$arch: the unit runs as user zipgate" has "$d/root$UNIT" '^User=zipgate$'
	check "$arch: the unit names no other binary" hasnt "$d/root$UNIT" '^Exec[A-Za-z]*=(-|!|@|\+)*/(usr/local|opt)/'
	check "$arch: data_dir in the conffile is absolute" has "$d/root$CONF" '^data_dir = "/var/lib/zipgate"$'
	go version -m "$d/root/usr/bin/zipgate" >"$d/buildinfo"
	check "$arch: static (CGO_ENABLED=0)" has "$d/buildinfo" $'build\tCGO_ENABLED=0$'
	check "$arch: built for GOARCH=$arch" has "$d/buildinfo" $'build\tGOARCH='"$arch"'$'
	# -trimpath keeps -ldflags out of the build info: look in the binary.
	check "$arch: the binary holds the version" grep -qaF -- "$VERSION" "$d/root/usr/bin/zipgate"
	check "$arch: the binary holds the commit" grep -qaF -- "$COMMIT" "$d/root/usr/bin/zipgate"
}
for deb in "${DEBS[@]}"; do
	arch=$(dpkg-deb -f "$deb" Architecture)
	check_contents "$deb" "$arch"
	[[ $arch == "$HOST_ARCH" ]] && HOST_DEB=$deb
done
[[ -n ${HOST_DEB:-} ]] || { log "no package for this machine's $HOST_ARCH"; exit 1; }
if command -v systemd-analyze >/dev/null; then
	# Offline: it loads the unit as systemd would and checks the binary.
	ln -sf "$W/$HOST_ARCH/root/usr/bin/zipgate" "$W/zipgate-bin"
	sed "s|/usr/bin/zipgate|$W/zipgate-bin|" "$W/$HOST_ARCH/root$UNIT" >"$W/zipgate.service"
	check "systemd-analyze verify accepts the unit" systemd-analyze verify --man=no "$W/zipgate.service"
fi

# ----------------------------------------------------------- install
if dpkg-query -W -f '${Status}' zipgate 2>/dev/null | grep -q 'installed\|config-files'; then
	log "zipgate was installed here before: purging it first"
	dpkg --purge zipgate >/dev/null
fi
# A fresh machine has no user zipgate: make it so, to see postinst make it.
if getent passwd zipgate >/dev/null; then
	userdel zipgate
	getent group zipgate >/dev/null && groupdel zipgate
fi

log "dpkg -i ${HOST_DEB##*/}"
dpkg -i "$HOST_DEB" >"$W/install.log" 2>&1 || { cat "$W/install.log"; fail "dpkg -i failed"; exit 1; }
check "dpkg says installed" test "$(dpkg-query -W -f '${Status} ${Version}' zipgate)" = "install ok installed $VERSION"
check "postinst tells the admin what to do next" has "$W/install.log" 'systemctl enable --now zipgate'
check "zipgate version prints version and commit" \
	test "$(/usr/bin/zipgate version)" = "zipgate $VERSION (commit $COMMIT)"
# system_user: zipgate is a system user (uid under 1000), no login, home $DATA.
system_user() {
	local uid home shell
	IFS=: read -r _ _ uid _ _ home shell _ < <(getent passwd zipgate) || return 1
	echo "uid $uid home $home shell $shell"
	((uid < 1000)) && [[ $home == "$DATA" && $shell == */nologin ]]
}
check "postinst made the system user zipgate (nologin, home $DATA)" system_user
check "$DATA is zipgate's, 0700" test "$(stat -c '%U:%G %a' "$DATA")" = "zipgate:zipgate 700"
check "$CONF is root's, 0644" test "$(stat -c '%U:%G %a' "$CONF")" = "root:root 644"
check "dpkg knows $CONF as a conffile" has <(dpkg-query -W -f '${Conffiles}\n' zipgate) "^ $CONF [0-9a-f]{32}$"
check "the service is not enabled" test ! -e /etc/systemd/system/multi-user.target.wants/zipgate.service
check "nothing runs as zipgate" test -z "$(pgrep -u zipgate)"
check "configtest as zipgate (the unit's ExecStartPre) says configuration OK" \
	test "$(runuser -u zipgate -- zipgate configtest -config "$CONF")" = "configuration OK"
runuser -u nobody -- zipgate configtest -config "$CONF" >"$W/nobody.out" 2>&1 || true
check "configtest as another user names the unwritable data_dir" \
	has "$W/nobody.out" "data_dir: \"$DATA\" is not writable by user nobody"
zipgate jobs list -config "$CONF" >"$W/jobs-empty.out" 2>&1 || true
check "jobs list before the first start: no store, none made" \
	has "$W/jobs-empty.out" "^zipgate: no zipgate store in $DATA; give -data or -config$"
check "... and $DATA is still empty" test -z "$(ls -A "$DATA")"

# The unit's ExecStart, as its user, on free ports (systemd is not
# running here); SIGTERM stops it as systemctl stop would.
setpriv --reuid zipgate --regid zipgate --init-groups \
	/usr/bin/zipgate serve -config "$CONF" -listen 127.0.0.1:0 -web-listen 127.0.0.1:0 -admin-listen 127.0.0.1:0 2>"$W/serve.log" &
SERVE_PID=$!
for _ in $(seq 100); do
	grep -q '"msg":"zipgate started"' "$W/serve.log" && break
	sleep 0.1
done
check "serve as zipgate starts on the packaged config" has "$W/serve.log" '"msg":"zipgate started".*"data_dir":"/var/lib/zipgate"'
kill -TERM "$SERVE_PID"
SERVE_EXIT=0
wait "$SERVE_PID" || SERVE_EXIT=$?
SERVE_PID=""
check "... and stops on SIGTERM with status 0" test "$SERVE_EXIT" = 0
check "it made its store and key, 0600, zipgate's" \
	test "$(stat -c '%U %a' "$DATA/zipgate.db" "$DATA/zipgate.key" | sort -u)" = "zipgate 600"
check "jobs list as root reads that store" has <(zipgate jobs list -config "$CONF") '^ID +STATE '
check "jobs list as zipgate reads it too" has <(runuser -u zipgate -- zipgate jobs list -config "$CONF") '^ID +STATE '
check "every file in $DATA is still zipgate's" test -z "$(find "$DATA" ! -user zipgate)"

# ------------------------------------------------------------ remove
sed -i 's/^log_level = "info"$/log_level = "debug"/' "$CONF"
log "apt-get remove zipgate"
apt-get remove -y zipgate >"$W/remove.log" 2>&1 || { cat "$W/remove.log"; fail "apt-get remove failed"; }
check "remove: dpkg keeps only the config" test "$(dpkg-query -W -f '${Status}' zipgate)" = "deinstall ok config-files"
check "remove: the binary and the unit are gone" test ! -e /usr/bin/zipgate -a ! -e "$UNIT"
check "remove: the data stays (store and key)" test -s "$DATA/zipgate.db" -a -s "$DATA/zipgate.key"
check "remove: the edited config stays" has "$CONF" '^log_level = "debug"$'

log "dpkg -i again"
dpkg -i "$HOST_DEB" >"$W/reinstall.log" 2>&1 || { cat "$W/reinstall.log"; fail "dpkg -i after remove failed"; }
check "reinstall: the admin's edit survives" has "$CONF" '^log_level = "debug"$'
check "reinstall: the store is still there and readable" has <(zipgate jobs list -config "$CONF") '^ID +STATE '

# ----------------------------------------------------------- upgrade
# The same code as a later version: dpkg -i over the installed one.
NEXT=$VERSION.1
NEXT_DEB=$(ZIPGATE_VERSION=$NEXT ARCHES=$HOST_ARCH OUT=$W/next bash scripts/package.sh)
log "dpkg -i ${NEXT_DEB##*/} (upgrade)"
dpkg -i "$NEXT_DEB" >"$W/upgrade.log" 2>&1 || { cat "$W/upgrade.log"; fail "the upgrade failed"; }
check "upgrade: dpkg says $NEXT installed" test "$(dpkg-query -W -f '${Status} ${Version}' zipgate)" = "install ok installed $NEXT"
check "upgrade: zipgate version says $NEXT" test "$(zipgate version)" = "zipgate $NEXT (commit $COMMIT)"
check "upgrade: no first-install text" hasnt "$W/upgrade.log" 'is installed, not running'
check "upgrade: the admin's edit survives, unasked" has "$CONF" '^log_level = "debug"$'
check "upgrade: the store is still there and readable" has <(zipgate jobs list -config "$CONF") '^ID +STATE '

# ------------------------------------------------------------- purge
log "apt-get purge zipgate"
apt-get purge -y zipgate >"$W/purge.log" 2>&1 || { cat "$W/purge.log"; fail "apt-get purge failed"; }
check "purge: dpkg has forgotten zipgate" test -z "$(dpkg-query -W zipgate 2>/dev/null)"
check "purge: $DATA is gone" test ! -e "$DATA"
check "purge: /etc/zipgate is gone" test ! -e /etc/zipgate

if ((FAILS > 0)); then
	log "$FAILS of $CHECKS checks failed"
	exit 1
fi
log "zipgate $VERSION: amd64 and arm64 built and checked; $HOST_ARCH installed, run, removed, reinstalled, upgraded, purged"
echo "deb-check: $CHECKS passed, 0 failed"
