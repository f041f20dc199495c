#!/usr/bin/env bash
# Builds the Debian package (make deb): build/deb/askr_<version>_<arch>.deb.
#
# dpkg-buildpackage runs in a copy of the source tree, build/deb/src: the files git knows about
# (tracked, and new files not ignored) as they are in the working tree, with packaging/debian as
# debian/. The Go modules are vendored into the copy first (`go mod vendor`, from the module cache
# or the network), so the package build itself needs no network; where the kernel allows it, it runs
# in a network namespace of its own to make sure. lintian checks the result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
OUT=$REPO/build/deb
SRC=$OUT/src
export PATH=/usr/local/go/bin:$PATH

log() { printf '== %s\n' "$*"; }

command -v go >/dev/null || { echo "build-deb: Go 1.26 is needed (expected in /usr/local/go/bin)" >&2; exit 1; }
if ! command -v dpkg-buildpackage >/dev/null || ! command -v dh >/dev/null; then
	echo "build-deb: dpkg-dev and debhelper are needed (make deps-deb)" >&2
	exit 1
fi

log "copy the source tree to ${SRC#"$REPO"/}"
rm -rf "$SRC"
mkdir -p "$SRC"
# Tracked files and new, not ignored ones, as they are in the working tree (a tracked file deleted
# there is left out).
git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [[ -e $f || -L $f ]] && printf '%s\0' "$f"; done |
	sort -zu | tar -C "$REPO" --null -T - -cf - | tar -C "$SRC" -xf -
mv "$SRC/packaging/debian" "$SRC/debian"

# ASKR_DEB_VERSION=0.1.0-2 (for upgrade tests): a changelog entry for that version, in the copy only.
if [[ -n ${ASKR_DEB_VERSION:-} ]]; then
	maint=$(sed -n 's/^Maintainer: //p' "$SRC/debian/control")
	{
		printf 'askr (%s) bookworm; urgency=medium\n\n' "$ASKR_DEB_VERSION"
		printf '  * Build of the working tree as %s (make deb ASKR_DEB_VERSION=...).\n\n' "$ASKR_DEB_VERSION"
		printf ' -- %s  %s\n\n' "$maint" "$(date -R)"
		cat "$SRC/debian/changelog"
	} >"$SRC/debian/changelog.new"
	mv "$SRC/debian/changelog.new" "$SRC/debian/changelog"
fi
VERSION=$(cd "$SRC" && dpkg-parsechangelog -S Version)
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)
DEB=$OUT/askr_${VERSION}_${ARCH}.deb

log "vendor the Go modules"
(cd "$SRC" && GOFLAGS=-mod=mod go mod vendor)

log "dpkg-buildpackage -us -uc -b"
rm -f "$DEB" "$OUT/askr-dbgsym_${VERSION}_$ARCH".*deb "$OUT/askr_${VERSION}_$ARCH".{buildinfo,changes}
build=(dpkg-buildpackage -us -uc -b)
if unshare --net true 2>/dev/null; then
	build=(unshare --net -- "${build[@]}") # no network at all, loopback down
else
	echo "build-deb: cannot create a network namespace here; building with the network present" >&2
fi
(cd "$SRC" && "${build[@]}")

log "built ${DEB#"$REPO"/}"
dpkg-deb -I "$DEB"

if command -v lintian >/dev/null; then
	log "lintian"
	# Overrides (debian/askr.lintian-overrides, each with its reason) are shipped in the package
	# and shown as O:. Any error or warning not overridden fails the build.
	report=$(lintian --display-info --show-overrides --fail-on none "$DEB" 2>&1 | { grep -v 'running with root privileges' || true; })
	[[ -z $report ]] || printf '%s\n' "$report"
	if grep -q '^[EW]: ' <<<"$report"; then
		echo "build-deb: lintian reports errors or warnings (lintian --info $DEB explains them)" >&2
		exit 1
	fi
	echo "lintian: 0 errors, 0 warnings"
fi
