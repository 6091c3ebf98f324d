#!/usr/bin/env bash
# package.sh: builds the Debian packages of zipgate with nfpm.
#
#   bash scripts/package.sh                 # dist/zipgate_<version>_amd64.deb and _arm64.deb
#   ARCHES=amd64 OUT=/tmp/debs bash scripts/package.sh
#
# Each package holds a static zipgate (CGO_ENABLED=0) in /usr/bin, the
# systemd unit, /etc/zipgate/zipgate.toml as a conffile, the Postfix
# snippets under /usr/share/doc/zipgate/examples, and the maintainer
# scripts of deploy/deb (user zipgate, /var/lib/zipgate 0700, nothing
# started). nfpm is a Go tool pinned in tools/go.mod: no download but
# Go modules. The version comes from git describe:
#   tag v1.2.3                  -> 1.2.3
#   4 commits after v1.2.3      -> 1.2.3+git4.g<hash>
#   no tag yet                  -> 0.0.0+git<commits>.g<hash>
#   uncommitted changes         -> ... .dirty
#   ZIPGATE_VERSION=1.2.3-1     -> 1.2.3-1
# and goes into the binary (zipgate version) with the full commit.
# Prints the path of each package built.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export PATH=/usr/local/go/bin:$PATH
ARCHES=${ARCHES:-amd64 arm64}
OUT=${OUT:-$REPO/dist}

log() { printf 'package.sh: %s\n' "$*" >&2; }

# debian_version prints the package version made from git describe.
debian_version() {
	local desc base n hash dirty=""
	if ! git rev-parse --git-dir >/dev/null 2>&1; then
		echo "0.0.0+unknown"
		return
	fi
	[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || dirty=.dirty
	if desc=$(git describe --tags --match 'v[0-9]*' --long --abbrev=12 2>/dev/null) &&
		[[ $desc =~ ^v([0-9][0-9A-Za-z.~]*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		base=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]} hash=${BASH_REMATCH[3]}
		if ((n == 0)); then
			echo "$base${dirty:++git0$dirty}"
		else
			echo "$base+git$n.g$hash$dirty"
		fi
		return
	fi
	hash=$(git describe --always --abbrev=12)
	echo "0.0.0+git$(git rev-list --count HEAD).g$hash$dirty"
}

# ZIPGATE_VERSION overrides it (a release build, an upgrade test).
VERSION=${ZIPGATE_VERSION:-$(debian_version)}
COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || COMMIT=$COMMIT-dirty
# Files in the packages carry the commit's time, so two builds of one
# commit give the same packages.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH

BUILD=$(mktemp -d "${TMPDIR:-/tmp}/zipgate-package.XXXXXX")
trap 'rm -rf "$BUILD"' EXIT
mkdir -p "$OUT"

log "version $VERSION, commit $COMMIT"
go -C tools build -o "$BUILD/nfpm" github.com/goreleaser/nfpm/v2/cmd/nfpm

for arch in $ARCHES; do
	bin=$BUILD/$arch/zipgate
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -buildvcs=false \
		-ldflags "-s -w -X github.com/zipgate/zipgate/internal/cli.Version=$VERSION -X github.com/zipgate/zipgate/internal/cli.Commit=$COMMIT" \
		-o "$bin" ./cmd/zipgate
	deb=$OUT/zipgate_${VERSION}_$arch.deb
	ZG_VERSION=$VERSION ZG_ARCH=$arch ZG_BINARY=$bin \
		"$BUILD/nfpm" package --config deploy/deb/nfpm.yaml --packager deb --target "$deb" >&2
	echo "$deb"
done
