# Shared by the container tests (test/e2e-systemd.sh, test/e2e-deb.sh, packaging/test-deb.sh):
# results, a debootstrapped Debian 12 rootfs made once, a throwaway systemd-nspawn boot of it and
# nsenter into it, and cleanup. Source it after `cd` to the repository.
# shellcheck shell=bash

PASS=0
FAIL=0
log() { printf '== %s\n' "$*"; }
ok() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$*"; }
bad() { FAIL=$((FAIL + 1)); printf 'FAIL %s\n' "$*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

# summary NAME: prints the closing line and fails if anything failed.
summary() {
	echo "$1: $PASS passed, $FAIL failed"
	[[ $FAIL == 0 ]]
}

[[ $(id -u) == 0 ]] || { echo "${0##*/}: must run as root" >&2; exit 1; }

STAGE=$(mktemp -d) # files for the container, bound read-only into it by the caller
NSPAWN=""
LEADER=""
container_cleanup() {
	if [[ -n $NSPAWN ]] && kill -0 "$NSPAWN" 2>/dev/null; then
		kill -TERM "$NSPAWN" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$NSPAWN" 2>/dev/null || true
	fi
	rm -rf "$STAGE"
}
trap container_cleanup EXIT

# rootfs_once DIR PACKAGES: debootstraps Debian 12 (minbase plus PACKAGES, comma-separated) into
# DIR unless it is there already. Never the host's root.
rootfs_once() {
	local dir=$1 pkgs=$2
	[[ -x $dir/usr/bin/systemctl ]] && return 0 # made whole in $dir.tmp, then moved
	log "debootstrap Debian 12 into ${dir#"$PWD"/} (once)"
	rm -rf "$dir.tmp"
	mkdir -p "$(dirname "$dir")"
	debootstrap --variant=minbase --include="systemd,systemd-sysv,dbus,$pkgs" \
		bookworm "$dir.tmp" http://deb.debian.org/debian >"$dir.log" 2>&1 ||
		{ tail -20 "$dir.log"; exit 1; }
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
}

# boot LOGFILE NSPAWN-ARGS...: boots a container with systemd-nspawn (add -D ROOTFS and the
# options) and waits until its systemd runs; then ns runs commands inside it.
boot() {
	local logf=$1
	shift
	log "boot the container"
	# A container of the previous test may still hold the rootfs's lock for a moment: try again.
	for _ in 1 2 3 4 5; do
		systemd-nspawn --register=no --keep-unit -b "$@" >"$logf" 2>&1 &
		NSPAWN=$!
		for _ in $(seq 1 300); do
			LEADER=$(pgrep -P "$NSPAWN" | head -1 || true)
			[[ -n $LEADER ]] && break
			kill -0 "$NSPAWN" 2>/dev/null || break
			sleep 0.1
		done
		[[ -n $LEADER ]] && break
		sleep 2
	done
	[[ -n $LEADER ]] || { cat "$logf"; echo "container did not start" >&2; exit 1; }
	local state=""
	for _ in $(seq 1 300); do
		state=$(ns systemctl is-system-running 2>/dev/null || true)
		[[ $state == running || $state == degraded ]] && break
		sleep 0.2
	done
	log "container systemd: $state"
}

ns() { nsenter -t "$LEADER" -a "$@"; }

# journal_has UNIT REGEX: whether the unit's journal shows REGEX within 10 s (journald writes
# asynchronously). The journal is read whole before grep looks at it: with pipefail, `journalctl |
# grep -q` fails when grep matches early and journalctl dies of SIGPIPE on a long journal (after a
# watchdog abort has printed every goroutine's stack).
journal_has() {
	local journal
	for _ in $(seq 1 100); do
		journal=$(ns journalctl -u "$1" --no-pager 2>/dev/null || true)
		grep -q -E "$2" <<<"$journal" && return 0
		sleep 0.1
	done
	return 1
}
