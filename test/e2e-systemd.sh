#!/usr/bin/env bash
# End to end under real systemd 252: a throwaway Debian 12 container (systemd-nspawn, booted with
# --volatile=overlay --private-network, so each run starts clean and has only loopback) with askr's
# units, driven from the host with nsenter. The rootfs is debootstrapped once into build/rootfs
# (git-ignored). systemd is never booted against the host's own root filesystem.
#
#   make e2e-systemd            (needs root, debootstrap and systemd-container: make deps-e2e)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
ROOTFS=$REPO/build/rootfs
BIN=$REPO/bin/askrd
. test/lib-container.sh

[[ -x $BIN ]] || { echo "e2e-systemd: build bin/askrd first (make build)" >&2; exit 1; }
rootfs_once "$ROOTFS" php8.2-cgi,curl,ca-certificates,procps

# What the container gets, read-only: askrd, the units, a config and the hello example.
mkdir -p "$STAGE/app/public" "$STAGE/dropin"
cp "$REPO/examples/hello-worker.php" "$STAGE/app/worker.php"
echo 'static hello' >"$STAGE/app/public/hello.txt"
cat >"$STAGE/askr.toml" <<'TOML'
[server]
root = "/srv/askr/public"
workers = 2
shutdown_timeout = 10
[worker]
script = "/srv/askr/worker.php"
TOML
# A short watchdog, so that the test sees systemd act on it.
printf '[Service]\nWatchdogSec=3\nTimeoutAbortSec=3\n' >"$STAGE/dropin/test.conf"

boot "$REPO/build/nspawn.log" -D "$ROOTFS" --volatile=overlay --private-network \
	--bind-ro="$BIN:/usr/bin/askrd" \
	--bind-ro="$REPO/packaging/systemd/askr.socket:/etc/systemd/system/askr.socket" \
	--bind-ro="$REPO/packaging/systemd/askr.service:/etc/systemd/system/askr.service" \
	--bind-ro="$STAGE/dropin:/etc/systemd/system/askr.service.d" \
	--bind-ro="$STAGE/askr.toml:/etc/askr.toml" \
	--bind-ro="$STAGE/app:/srv/askr"

ns systemctl start askr.socket
ns systemctl is-active --quiet askr.service && bad "askr.service runs before the first connection" || ok "askr.service waits for the first connection"
code=$(ns curl -s -o /dev/null -w '%{http_code}' --max-time 30 http://127.0.0.1/)
[[ $code == 200 ]] && ok "first request started askr.service through the socket: 200" || bad "first request: $code"
ns systemctl is-active --quiet askr.service && ok "askr.service active" || bad "askr.service not active"
status=""
for _ in $(seq 1 50); do
	status=$(ns systemctl show -p StatusText --value askr.service)
	[[ -n $status ]] && break
	sleep 0.1
done
[[ $status == mode=worker* ]] && ok "systemctl status shows: $status" || bad "StatusText: '$status'"

log "restart under a continuous request loop"
ns sh -c 'n=0; f=0; end=$(( $(date +%s) + 8 )); while [ $(date +%s) -lt $end ] && [ $n -lt 20000 ]; do
	c=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 http://127.0.0.1/); n=$((n+1)); [ "$c" = 200 ] || f=$((f+1)); done
	echo "$n $f" > /run/loop.result' &
LOOP=$!
sleep 2
ns systemctl restart askr.service
wait "$LOOP" || true
read -r n f < <(ns cat /run/loop.result)
[[ $f == 0 && $n -gt 0 ]] && ok "systemctl restart during $n requests: 0 failed" || bad "systemctl restart: $f of $n requests failed"

log "watchdog: SIGSTOP askrd"
pid=$(ns systemctl show -p MainPID --value askr.service)
ns kill -STOP "$pid"
restarted=""
for _ in $(seq 1 150); do
	now=$(ns systemctl show -p MainPID --value askr.service)
	if [[ $now != "$pid" && $now != 0 ]]; then restarted=$now; break; fi
	sleep 0.1
done
[[ -n $restarted ]] && ok "watchdog restarted askrd ($pid → $restarted)" || bad "no restart after SIGSTOP"
if journal_has askr.service "(Watchdog timeout|Failed with result 'watchdog')"; then
	ok "journal shows the watchdog timeout"
else
	bad "no 'Watchdog timeout' in the journal"
	ns journalctl --no-pager | grep -i -E 'askr|watchdog' | tail -15
fi
code=$(ns curl -s -o /dev/null -w '%{http_code}' --max-time 30 http://127.0.0.1/)
[[ $code == 200 ]] && ok "serves again after the watchdog restart" || bad "after watchdog restart: $code"

log "reload"
ns systemctl reload askr.service && ok "systemctl reload (rolling)" || bad "systemctl reload failed"
journal_has askr.service 'canary serves' && ok "journal shows the canary" || bad "no canary in the journal"

log "stop"
ns systemctl stop askr.service
result=$(ns systemctl show -p Result --value askr.service)
status=$(ns systemctl show -p ExecMainStatus --value askr.service)
[[ $result == success && $status == 0 ]] && ok "systemctl stop: clean (Result=$result, status $status)" || bad "stop: Result=$result status=$status"

summary e2e-systemd
