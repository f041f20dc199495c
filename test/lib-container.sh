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

# within SECONDS CMD...: whether CMD succeeds within SECONDS (polled).
within() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < end)) || return 1
		sleep 0.1
	done
}

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

# leader: the container's PID 1 (its systemd), for nsenter. systemd-nspawn's first child is a
# helper that sets the container up and exits; PID 1 is the child that runs in a PID namespace of
# its own and has left nspawn's code for the container's init (its comm is no longer nspawn's).
leader() {
	local pid host
	host=$(readlink /proc/self/ns/pid)
	for pid in $(pgrep -P "$NSPAWN"); do
		[[ $(readlink "/proc/$pid/ns/pid" 2>/dev/null || echo "$host") != "$host" ]] || continue
		[[ $(cat "/proc/$pid/comm" 2>/dev/null || echo systemd-nspawn) != systemd-nspawn ]] || continue
		echo "$pid"
		return 0
	done
	return 1
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
		local end=$((SECONDS + 60))
		while ((SECONDS < end)) && kill -0 "$NSPAWN" 2>/dev/null; do
			LEADER=$(leader) && break
			sleep 0.1
		done
		[[ -n $LEADER ]] && break
		kill -KILL "$NSPAWN" 2>/dev/null || true
		wait "$NSPAWN" 2>/dev/null || true
		sleep 2
	done
	[[ -n $LEADER ]] || { cat "$logf"; echo "container did not start" >&2; exit 1; }
	local state="" end=$((SECONDS + 120))
	while ((SECONDS < end)); do
		state=$(ns systemctl is-system-running 2>/dev/null || true)
		[[ $state == running || $state == degraded ]] && break
		sleep 0.2
	done
	log "container systemd: $state (pid $LEADER)"
	if [[ $state != running && $state != degraded ]]; then
		ns systemctl list-jobs --no-pager 2>&1 | tail -20 || true
		tail -20 "$logf"
		echo "the container's systemd did not finish booting in 120 s" >&2
		exit 1
	fi
}

ns() { nsenter -t "$LEADER" -a "$@"; }

# journal_has UNIT REGEX [SECONDS]: whether the unit's journal shows REGEX within SECONDS (30 by
# default; journald writes asynchronously, and a loaded machine delays it). The journal is read
# whole before grep looks at it: with pipefail, `journalctl | grep -q` fails when grep matches early
# and journalctl dies of SIGPIPE on a long journal (after a watchdog abort has printed every
# goroutine's stack).
journal_has() {
	local journal end=$((SECONDS + ${3:-30}))
	while :; do
		journal=$(ns journalctl -u "$1" --no-pager 2>/dev/null || true)
		grep -q -E "$2" <<<"$journal" && return 0
		((SECONDS < end)) || return 1
		sleep 0.2
	done
}
