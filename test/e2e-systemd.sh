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
not() { ! "$@"; }

[[ -x $BIN ]] || { echo "e2e-systemd: build bin/askrd first (make build)" >&2; exit 1; }
rootfs_once "$ROOTFS" php8.2-cgi,curl,ca-certificates,procps

# What the container gets, read-only: askrd, the units, a config and a hello worker that also has a
# route with a PHP warning, one with a PHP fatal error and one that says what PHP sees of HTTPS,
# and says its code version (version.php, which the host changes for the CoW reload).
mkdir -p "$STAGE/app/public" "$STAGE/dropin"
cat >"$STAGE/app/worker.php" <<'PHP'
<?php
require __DIR__ . '/version.php'; // APP_VERSION: the code version a deploy changes
$handler = static function (array $request): void {
    switch (parse_url($request['uri'], PHP_URL_PATH)) {
        case '/warning':
            echo 'warned', $undefinedOnPurpose; // PHP Warning:  Undefined variable; the request goes on
            return;
        case '/fatal':
            ini_set('memory_limit', '16M');
            $waste = str_repeat('x', 64 << 20); // PHP Fatal error:  Allowed memory size … exhausted
            return;
        case '/https':
            echo 'HTTPS=', $_SERVER['HTTPS'] ?? '', ' scheme=', $_SERVER['REQUEST_SCHEME'] ?? '';
            return;
    }
    echo "Hello from askr ", APP_VERSION, " worker ", getmypid(), "\n";
};
askr_cow_ready();
while (askr_handle_request($handler)) {
}
PHP
echo 'static hello' >"$STAGE/app/public/hello.txt"
echo "<?php const APP_VERSION = 'v1';" >"$STAGE/app/version.php"
cat >"$STAGE/askr.toml" <<'TOML'
[server]
root = "/srv/askr/public"
workers = 2
shutdown_timeout = 10
[worker]
script = "/srv/askr/worker.php"
TOML
# A short watchdog, so that the test sees systemd act on it; no start rate limit, so that the test
# may restart askr 20 times in a row (systemd's default allows 5 starts in 10 s).
printf '[Unit]\nStartLimitIntervalSec=0\n[Service]\nWatchdogSec=3\nTimeoutAbortSec=3\n' >"$STAGE/dropin/test.conf"

boot "$REPO/build/nspawn.log" -D "$ROOTFS" --volatile=overlay --private-network \
	--bind-ro="$BIN:/usr/bin/askrd" \
	--bind-ro="$REPO/packaging/systemd/askr.socket:/etc/systemd/system/askr.socket" \
	--bind-ro="$REPO/packaging/systemd/askr.service:/etc/systemd/system/askr.service" \
	--bind-ro="$REPO/packaging/systemd/askr-https.socket:/etc/systemd/system/askr-https.socket" \
	--bind-ro="$STAGE/dropin:/etc/systemd/system/askr.service.d" \
	--bind-ro="$STAGE/askr.toml:/etc/askr.toml" \
	--bind-ro="$STAGE/app:/srv/askr"

ns systemctl start askr.socket
check "askr.service waits for the first connection" not ns systemctl is-active --quiet askr.service
code=$(ns curl -s -o /dev/null -w '%{http_code}' --max-time 30 http://127.0.0.1/ || true)
check "first request started askr.service through the socket: $code" test "$code" = 200
# active once READY=1: when both workers serve (the first request needed only one)
check "askr.service active" within 60 ns systemctl is-active --quiet askr.service
status="" end=$((SECONDS + 30))
while ((SECONDS < end)); do
	status=$(ns systemctl show -p StatusText --value askr.service)
	[[ $status == mode=* ]] && break
	sleep 0.1
done
check "systemctl status shows: '$status'" test "${status%% *}" = mode=worker

# The journal ranks askrd's lines by their level (the native protocol: internal/journal).
log "journal priorities"
code=$(ns curl -s -o /dev/null -w '%{http_code}' --max-time 30 http://127.0.0.1/warning || true)
check "a PHP warning is answered: $code" test "$code" = 200
code=$(ns curl -s -o /dev/null -w '%{http_code}' --max-time 30 http://127.0.0.1/fatal || true)
check "a PHP fatal error is a 500: $code" test "$code" = 500
# journal_p PRIORITY: askr.service's journal at PRIORITY or worse, as journalctl -p shows it.
journal_p() { ns journalctl -u askr.service -p "$1" --no-pager 2>/dev/null || true; }
journal_p_has() { grep -q -F "$2" <<<"$(journal_p "$1")"; }
check "journalctl -u askr -p err shows the PHP fatal error" \
	within 30 journal_p_has err 'level=ERROR msg="PHP Fatal error:  Allowed memory size'
# shellcheck disable=SC2016 # PHP's variable name, not the shell's
check "journalctl -u askr -p warning shows the PHP warning" \
	within 30 journal_p_has warning 'level=WARN msg="PHP Warning:  Undefined variable $undefinedOnPurpose'
check "journalctl -u askr -p err shows no warning" not journal_p_has err 'level=WARN'
check "journalctl -u askr -p warning shows no INFO line" not journal_p_has warning 'level=INFO'
check "journalctl -u askr (all) has the INFO lines" journal_has askr.service 'level=INFO msg="workers ready"'
# the fields: the worker's pid and script, and the attributes of askrd's own lines
fatal=$(ns journalctl -u askr.service -p err -o export --no-pager 2>/dev/null | tr -d '\0' || true)
check "the fatal error's entry has ASKR_PID and ASKR_WORKER=worker.php" \
	grep -q -E '^ASKR_PID=[0-9]+$' <<<"$fatal"
check "ASKR_WORKER=worker.php" grep -q -x 'ASKR_WORKER=worker.php' <<<"$fatal"
check "journalctl -u askr ASKR_MODE=worker finds 'askrd serving'" \
	grep -q 'msg="askrd serving"' <<<"$(ns journalctl -u askr.service ASKR_MODE=worker --no-pager 2>/dev/null || true)"

# askrd status: root is answered, one line per worker; an unrelated user is refused.
log "askrd status"
# worker_pids: the pids the workers of askr.service have (its main process's children).
worker_pids() { ns pgrep -P "$(ns systemctl show -p MainPID --value askr.service)" | sort -n; }
# status_pids: the pids askrd status lists (the lines that begin with a number).
status_pids() { ns askrd status 2>/dev/null | awk '$1 ~ /^[0-9]+$/ { print $1 }' | sort -n; }
# status_lists_workers: whether askrd status, as root, succeeds with one line per worker.
status_lists_workers() {
	local out want
	out=$(ns askrd status 2>/dev/null) || return 1
	want=$(worker_pids)
	[[ -n $want && $(awk '$1 ~ /^[0-9]+$/ { print $1 }' <<<"$out" | sort -n) == "$want" ]]
}
if within 30 status_lists_workers; then
	ok "askrd status as root lists every worker"
else
	bad "askrd status as root does not list the workers ($(worker_pids | tr '\n' ' '))"
	ns askrd status 2>&1 | sed 's/^/     | /' || true
fi
rc=0
out=$(ns setpriv --reuid=nobody --regid=nogroup --clear-groups askrd status 2>&1) || rc=$?
# refused: not by the usage (64) nor as a crash, but with the admin API's answer
check "askrd status as nobody: refused, exit $rc: ${out:0:200}" \
	test "$rc" != 0 -a "$rc" != 64 -a "${out/refused/}" != "$out" -a "${out/usage:/}" = "$out"

# Each request of the first loop is a new connection (a curl), as a client's first request is:
# whether it waits in askr.socket's queue while askrd restarts or was accepted by the askrd that
# stops, it must be answered. The loop counts its requests in /run/loop.n and notes each failure
# (curl's exit status and message) in /run/loop.fail. The second loop sends 20 requests per
# keep-alive connection: the stopping askrd answers with Connection: close, or closes the
# connection while it is idle, and the client goes on with a new one (curl, as browsers, retries a
# request on a reused connection closed before any answer).
log "20 restarts under two continuous request loops"
# shellcheck disable=SC2016 # the container's shell expands it
ns sh -c 'n=0; f=0; rm -f /run/stop-loop /run/loop.fail; while [ ! -e /run/stop-loop ] && [ $n -lt 100000 ]; do
	c=$(curl -sS -o /dev/null -w "%{http_code}" --max-time 30 http://127.0.0.1/ 2>/run/loop.err); rc=$?; n=$((n+1))
	[ "$c" = 200 ] || { f=$((f+1)); echo "request $n: curl exit $rc, HTTP $c, $(cat /run/loop.err)" >>/run/loop.fail; }
	echo "$n" >/run/loop.n; done
	echo "$n $f" >/run/loop.result' &
LOOP=$!
# shellcheck disable=SC2016 # the container's shell expands it
ns sh -c 'n=0; f=0; u=""; for i in $(seq 1 20); do u="$u -o /dev/null http://127.0.0.1/"; done
	while [ ! -e /run/stop-loop ] && [ $n -lt 1000000 ]; do
	for c in $(curl -sS -w "%{http_code}\n" --max-time 30 $u 2>>/run/kloop.fail); do n=$((n+1)); [ "$c" = 200 ] || f=$((f+1)); done; done
	echo "$n $f" >/run/kloop.result' &
KLOOP=$!
# loop_passes N [FILE]: waits (up to 60 s) until the loop that counts its requests in FILE
# (/run/loop.n) has made N more.
loop_passes() {
	local from to end=$((SECONDS + 60)) file=${2:-/run/loop.n}
	from=$(ns cat "$file" 2>/dev/null || echo 0)
	while ((SECONDS < end)); do
		to=$(ns cat "$file" 2>/dev/null || echo 0)
		((to >= from + $1)) && return 0
		sleep 0.05
	done
	return 1
}
restarts=0
loop_passes 5 || bad "the request loop does not run"
for i in $(seq 1 20); do
	ns systemctl restart askr.service || { bad "systemctl restart $i failed"; break; }
	restarts=$i
	loop_passes 5 || { bad "the request loop stalled after restart $i"; break; }
done
ns touch /run/stop-loop
wait "$LOOP" "$KLOOP" || true
read -r n f < <(ns cat /run/loop.result 2>/dev/null || echo "0 -")
check "$restarts restarts during $n requests on new connections: ${f:-?} failed" test "$restarts" = 20 -a "$f" = 0 -a "$n" -gt 0
{ ns cat /run/loop.fail 2>/dev/null | head -20 | sed 's/^/     | /'; } || true
read -r n f < <(ns cat /run/kloop.result 2>/dev/null || echo "0 -")
check "$restarts restarts during $n requests on keep-alive connections: ${f:-?} failed" test "$restarts" = 20 -a "$f" = 0 -a "$n" -gt 0
{ ns cat /run/kloop.fail 2>/dev/null | head -20 | sed 's/^/     | /'; } || true

log "watchdog: SIGSTOP askrd"
pid=$(ns systemctl show -p MainPID --value askr.service)
ns kill -STOP "$pid"
restarted="" end=$((SECONDS + 60))
while ((SECONDS < end)); do
	now=$(ns systemctl show -p MainPID --value askr.service)
	if [[ $now != "$pid" && $now != 0 ]]; then restarted=$now; break; fi
	sleep 0.1
done
check "watchdog restarted askrd ($pid → $restarted)" test -n "$restarted"
if journal_has askr.service "(Watchdog timeout|Failed with result 'watchdog')"; then
	ok "journal shows the watchdog timeout"
else
	bad "no 'Watchdog timeout' in the journal"
	ns journalctl --no-pager | grep -i -E 'askr|watchdog' | tail -15
fi
code=$(ns curl -s -o /dev/null -w '%{http_code}' --max-time 30 http://127.0.0.1/ || true)
check "serves again after the watchdog restart: $code" test "$code" = 200

# A reload while the unit is still activating (before READY=1: the curl above needed one worker,
# READY=1 needs both) is merged by systemd into the start job, and ExecReload never runs.
check "askr.service active again" within 60 ns systemctl is-active --quiet askr.service

log "reload through the admin socket"
main=$(ns systemctl show -p MainPID --value askr.service)
before=$(status_pids)
check "systemctl reload (rolling)" ns systemctl reload askr.service
# ExecReload= is askrd reload, which asks through the admin socket, not by a signal.
check "journal: the reload was asked through the admin API" journal_has askr.service 'admin (API|socket)[^"]*reload'
check "journal: no SIGHUP reload" not journal_has askr.service 'SIGHUP: rolling reload' 0
# all_new: whether askrd status lists as many workers as before the reload, none of them an old one.
all_new() {
	local now
	now=$(status_pids)
	[[ -n $now && $(wc -l <<<"$now") == $(wc -l <<<"$before") && -z $(comm -12 <(echo "$before") <(echo "$now")) ]]
}
check "askrd status: every worker replaced (before: ${before//$'\n'/ })" within 60 all_new
check "the same askrd reloaded (MainPID $main)" test "$(ns systemctl show -p MainPID --value askr.service)" = "$main"
# The journal is written asynchronously: the canary's line may come after systemctl returns.
if journal_has askr.service 'reload: canary serves'; then
	ok "journal shows the canary"
else
	bad "no reload through the admin socket, or no canary, in the journal"
	ns journalctl -u askr.service --no-pager | tail -15
fi
code=$(ns curl -s -o /dev/null -w '%{http_code}' --max-time 30 http://127.0.0.1/ || true)
check "serves after the reload: $code" test "$code" = 200

log "CoW mode: systemctl reload under a request loop"
# A drop-in turns CoW mode on; the app's code changes on disk (version.php, replaced by a rename as a
# deploy does) and systemctl reload (askrd reload through the admin socket) boots a new template
# whose workers replace the old ones while a request loop runs.
printf '[Service]\nExecStart=\nExecStart=/usr/bin/askrd serve --config /etc/askr.toml --cow\n' >"$STAGE/dropin/cow.conf"
ns systemctl daemon-reload
check "systemctl restart in CoW mode" ns systemctl restart askr.service
check "askr.service active in CoW mode" within 60 ns systemctl is-active --quiet askr.service
status_text() { ns systemctl show -p StatusText --value askr.service; }
status_is() { [[ $(status_text) =~ $1 ]]; }
# check_status WHAT REGEX: whether STATUS= matches REGEX within 30 s (it is updated every second).
check_status() {
	if within 30 status_is "$2"; then ok "$1: '$(status_text)'"; else bad "$1: '$(status_text)'"; fi
}
check_status "STATUS= says mode=cow" '^mode=cow .*generation=[0-9]+'
gen=$(status_text | grep -o -E 'generation=[0-9]+' | cut -d= -f2)
# template_pid: the CoW template's pid, from askrd status --json.
template_pid() { ns askrd status --json 2>/dev/null | grep -o -E '"template_pid": *[0-9]+' | grep -o -E '[0-9]+$'; }
tmpl=$(template_pid || true)
check "askrd status --json names the template: '$tmpl'" test -n "$tmpl" -a "$tmpl" != 0
before=$(status_pids)
main=$(ns systemctl show -p MainPID --value askr.service)
# The loop notes each failure and each v1 answer to a request sent once /run/cow-new exists (set when
# every old worker and the old template are gone).
# shellcheck disable=SC2016 # the container's shell expands it
ns sh -c 'n=0; f=0; old=0; v2=0; rm -f /run/stop-cow /run/cow.fail /run/cow-new
	while [ ! -e /run/stop-cow ] && [ $n -lt 100000 ]; do
	new=0; [ -e /run/cow-new ] && new=1
	b=$(curl -sS --max-time 30 -w " %{http_code}" http://127.0.0.1/ 2>/run/cow.err); rc=$?; n=$((n+1))
	case "$b" in
	"Hello from askr v1 "*" 200") [ $new = 0 ] || { old=$((old+1)); echo "request $n: v1 after the roll" >>/run/cow.fail; } ;;
	"Hello from askr v2 "*" 200") v2=$((v2+1)) ;;
	*) f=$((f+1)); echo "request $n: curl exit $rc, $b, $(cat /run/cow.err)" >>/run/cow.fail ;;
	esac
	echo "$n" >/run/cow.n; done
	echo "$n $f $old $v2" >/run/cow.result' &
COWLOOP=$!
loop_passes 20 /run/cow.n || bad "the CoW request loop does not run"
echo "<?php const APP_VERSION = 'v2';" >"$STAGE/app/version.php.new"
mv "$STAGE/app/version.php.new" "$STAGE/app/version.php"
rc=0
n0=$(ns cat /run/cow.n)
out=$(ns systemctl reload askr.service 2>&1) || rc=$?
n1=$(ns cat /run/cow.n)
check "systemctl reload in CoW mode: exit $rc ${out:0:300}" test "$rc" = 0
check "the loop ran during the reload (request $n0 → $n1)" test "$n1" -gt "$n0"
[[ $rc == 0 ]] || { ns journalctl -u askr.service --no-pager | tail -15 | sed 's/^/     | /'; } || true
check "the same askrd reloaded (MainPID $main)" test "$(ns systemctl show -p MainPID --value askr.service)" = "$main"
check "askrd status: every worker replaced (before: ${before//$'\n'/ })" within 60 all_new
check "the old template $tmpl exited" within 60 not ns test -e "/proc/$tmpl"
now=$(template_pid || true)
check "a new template: $tmpl → $now" test -n "$now" -a "$now" != "$tmpl"
ns touch /run/cow-new
loop_passes 50 /run/cow.n || bad "the CoW request loop stalled after the reload"
ns touch /run/stop-cow
wait "$COWLOOP" || true
read -r n f old v2 < <(ns cat /run/cow.result 2>/dev/null || echo "0 - - -")
check "CoW reload during $n requests: ${f:-?} failed, ${old:-?} v1 answers after the roll, ${v2:-?} v2 answers" \
	test "$f" = 0 -a "$old" = 0 -a "$v2" -gt 0 -a "$n" -gt 0
{ ns cat /run/cow.fail 2>/dev/null | head -20 | sed 's/^/     | /'; } || true
check_status "STATUS= shows the new generation $((gen + 1))" "^mode=cow .*generation=$((gen + 1))( |$)"
sysstatus=$(ns systemctl status askr.service --no-pager 2>&1 || true)
check "systemctl status shows the new generation" grep -q -E "Status: \"mode=cow .*generation=$((gen + 1))( |\")" <<<"$sysstatus"

log "queue worker and sidecar: systemctl stop leaves no process of the unit"
# The config gets a queue worker (in CoW mode a fork of the template) and a [[sidecar]] whose shell
# leaves a job in the background; askrd must stop them all itself, before it exits: with
# KillMode=mixed systemd would SIGKILL what is left in the cgroup, and say so in the journal.
cat >"$STAGE/app/queue.php" <<'PHP'
<?php
echo "queue worker ", getmypid(), " role ", askr_worker_role(), "\n";
while (true) {
    sleep(1);
}
PHP
# appended in place: the file is bound into the container
cat >>"$STAGE/askr.toml" <<'TOML'
[queue]
workers = 1
script = "/srv/askr/queue.php"
[[sidecar]]
name = "ticker"
command = "sh -c 'sleep 3001 & sleep 3002'"
grace = 5
TOML
check "systemctl restart with [queue] and [[sidecar]]" ns systemctl restart askr.service
check "askr.service active" within 60 ns systemctl is-active --quiet askr.service
# sidecars_running: whether askrd status --json shows the queue worker and the sidecar running.
sidecars_running() {
	local js
	js=$(ns askrd status --json 2>/dev/null | tr -d ' \n') || return 1
	grep -q -E '"name":"queue","kind":"queue","index":0,"pid":[1-9][0-9]*,"state":"running"' <<<"$js" &&
		grep -q -E '"name":"ticker","kind":"sidecar","index":0,"pid":[1-9][0-9]*,"state":"running"' <<<"$js"
}
check "askrd status --json: the queue worker and the sidecar run" within 60 sidecars_running
# The unit's cgroup: under cgroup v2 /sys/fs/cgroup/…, on a hybrid host /sys/fs/cgroup/unified/….
cg=$(ns systemctl show -p ControlGroup --value askr.service) cgroup=""
for root in /sys/fs/cgroup /sys/fs/cgroup/unified; do
	if [[ -n $cg ]] && ns test -e "$root$cg/cgroup.procs"; then cgroup=$root$cg && break; fi
done
check "the unit's cgroup: '$cgroup' (ControlGroup=$cg)" test -n "$cgroup"
# unit_has PATTERN: whether a process of the unit's cgroup has a command line matching PATTERN.
unit_has() {
	local pids
	pids=$(ns cat "$cgroup/cgroup.procs" 2>/dev/null | paste -s -d, -) || return 1
	[[ -n $pids ]] && ns ps -o args= -p "$pids" | grep -q -E "$1"
}
unit_has_sleeps() { unit_has '^sleep 3001' && unit_has '^sleep 3002'; }
if within 30 unit_has_sleeps; then
	ok "the unit's cgroup has the sidecar's sleep 3001 and sleep 3002"
else
	bad "the unit's cgroup ($cgroup) has no sleep 3001 and sleep 3002"
	ns ps -e -o pid=,ppid=,args= 2>&1 | sed 's/^/     | /' || true
fi
check "journal: the queue worker's output, role queue" journal_has askr.service 'queue worker [0-9]+ role queue'
since=$(ns date '+%Y-%m-%d %H:%M:%S')

log "stop"
ns systemctl stop askr.service
result=$(ns systemctl show -p Result --value askr.service)
status=$(ns systemctl show -p ExecMainStatus --value askr.service)
check "systemctl stop: clean (Result=$result, status $status)" test "$result" = success -a "$status" = 0
procs=$(ns cat "$cgroup/cgroup.procs" 2>/dev/null || true)
check "the unit's cgroup is empty or gone: '${procs//$'\n'/ }'" test -n "$cgroup" -a -z "$procs"
left=$(ns ps -e -o pid=,args= | grep -E 'sleep 300[12]|php-cgi|askrd' | grep -v grep || true)
check "ps finds no sidecar, PHP process or askrd: '${left//$'\n'/; }'" test -z "$left"
killed=$(ns journalctl -u askr.service --since "$since" --no-pager 2>/dev/null | grep -E 'Killing process|remains running' || true)
check "systemd killed nothing askrd left: '${killed//$'\n'/; }'" test -z "$killed"

log "https socket: askr-https.socket, [tls] and force_https"
# As askrd(8) tells an admin: a certificate in /etc/askr.toml, then, while askr runs,
#   systemctl enable askr-https.socket && systemctl restart askr
# Enabled, the socket is wanted by askr.service, whose restart starts it first; systemd passes
# askrd every socket whose Service= is askr.service. The certificate is made in the container,
# readable by www-data through its group.
# mkcert SERIAL DIR: a self-signed certificate for localhost and 127.0.0.1 in DIR/cert.pem and
# DIR/key.pem.
mkcert() {
	ns openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' -set_serial "$1" \
		-keyout "$2/key.pem" -out "$2/cert.pem" >/dev/null 2>&1 &&
		ns chgrp www-data "$2/key.pem" "$2/cert.pem" && ns chmod 0640 "$2/key.pem" "$2/cert.pem"
}
ns install -d -m 0750 -g www-data /etc/askr /etc/askr/tls /etc/askr/new
check "a certificate made with openssl (serial 0x1001)" mkcert 0x1001 /etc/askr/tls
ns cp /etc/askr/tls/cert.pem /run/ca1.pem
rm -f "$STAGE/dropin/cow.conf" # worker mode again
cat >"$STAGE/askr.toml" <<'TOML'
[server]
root = "/srv/askr/public"
workers = 2
shutdown_timeout = 10
force_https = true
[worker]
script = "/srv/askr/worker.php"
[tls]
cert = "/etc/askr/tls/cert.pem"
key = "/etc/askr/tls/key.pem"
TOML
ns systemctl daemon-reload
check "askr-https.socket is not enabled until the admin enables it" \
	test "$(ns systemctl is-enabled askr-https.socket 2>/dev/null || true)" = disabled
# Without the https socket, [tls] makes the http socket serve HTTPS.
check "systemctl start askr with [tls], no https socket" ns systemctl start askr.service
out=$(ns curl -sS --max-time 30 --cacert /run/ca1.pem https://127.0.0.1:80/https 2>&1 || true)
check "port 80 serves HTTPS then: '$out'" test "$out" = "HTTPS=on scheme=https"
main=$(ns systemctl show -p MainPID --value askr.service)
if ns sh -c 'systemctl enable askr-https.socket && systemctl restart askr' >/dev/null 2>&1; then
	ok "while askr runs: systemctl enable askr-https.socket && systemctl restart askr"
else
	bad "systemctl enable askr-https.socket && systemctl restart askr failed"
	ns journalctl -u askr-https.socket -u askr.service --no-pager | tail -15 | sed 's/^/     | /' || true
fi
check "askr-https.socket enabled" test "$(ns systemctl is-enabled askr-https.socket)" = enabled
check "askr-https.socket active" ns systemctl is-active --quiet askr-https.socket
check "askr.service active with both sockets" within 60 ns systemctl is-active --quiet askr.service
check "askrd restarted (MainPID $main → $(ns systemctl show -p MainPID --value askr.service))" \
	test "$(ns systemctl show -p MainPID --value askr.service)" != "$main"
# https URL [CURL-OPTIONS...]: what curl says of an HTTPS request to 127.0.0.1, verified against
# the first certificate.
https() { ns curl -sS --max-time 30 --cacert /run/ca1.pem --resolve localhost:443:127.0.0.1 "$@" 2>&1 || true; }
out=$(https -w ' %{http_code} %{http_version}' https://localhost/https)
check "HTTPS on 443 (HTTP/2), PHP sees HTTPS=on: '$out'" test "$out" = "HTTPS=on scheme=https 200 2"
out=$(ns curl -s --max-time 30 -o /dev/null -w '%{http_code} %{redirect_url}' 'http://127.0.0.1/a/b?c=d' || true)
check "HTTP on 80 redirects to HTTPS: '$out'" test "$out" = "308 https://127.0.0.1/a/b?c=d"
out=$(ns curl -s --max-time 30 -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: www.example.test' http://127.0.0.1/ || true)
check "the redirect keeps the Host: '$out'" test "$out" = "308 https://www.example.test/"
out=$(https -L --resolve localhost:80:127.0.0.1 -w ' %{http_code} %{num_redirects}' http://localhost/https)
check "curl -L from http:// ends on HTTPS: '$out'" test "$out" = "HTTPS=on scheme=https 200 1"

# served_serial: the serial of the certificate served on 443 (openssl prints it in hex).
served_serial() {
	ns sh -c 'openssl s_client -connect 127.0.0.1:443 -servername localhost </dev/null 2>/dev/null |
		openssl x509 -noout -serial' 2>/dev/null | sed -n 's/^serial=//p'
}
check "openssl s_client sees serial 1001: '$(served_serial)'" test "$(served_serial)" = 1001

log "https socket: systemctl reload under an HTTPS request loop"
# shellcheck disable=SC2016 # the container's shell expands it
ns sh -c 'n=0; f=0; rm -f /run/stop-tls /run/tls.fail; while [ ! -e /run/stop-tls ] && [ $n -lt 100000 ]; do
	c=$(curl -sS -k -o /dev/null -w "%{http_code}" --max-time 30 https://127.0.0.1/ 2>/run/tls.err); rc=$?; n=$((n+1))
	[ "$c" = 200 ] || { f=$((f+1)); echo "request $n: curl exit $rc, HTTP $c, $(cat /run/tls.err)" >>/run/tls.fail; }
	echo "$n" >/run/tls.n; done
	echo "$n $f" >/run/tls.result' &
TLSLOOP=$!
loop_passes 5 /run/tls.n || bad "the HTTPS request loop does not run"
main=$(ns systemctl show -p MainPID --value askr.service)
check "systemctl reload" ns systemctl reload askr.service
loop_passes 20 /run/tls.n || bad "the HTTPS request loop stalled after the reload"
ns touch /run/stop-tls
wait "$TLSLOOP" || true
read -r n f < <(ns cat /run/tls.result 2>/dev/null || echo "0 -")
check "reload during $n HTTPS requests: ${f:-?} failed" test "$f" = 0 -a "$n" -gt 0
{ ns cat /run/tls.fail 2>/dev/null | head -20 | sed 's/^/     | /'; } || true
check "the same askrd reloaded (MainPID $main)" test "$(ns systemctl show -p MainPID --value askr.service)" = "$main"

log "https socket: a new certificate on disk"
# As certbot renews: new files renamed over the old ones; systemctl reload reads them.
# swapcert SERIAL: a new certificate with SERIAL replaces /etc/askr/tls's pair.
swapcert() {
	mkcert "$1" /etc/askr/new && ns mv /etc/askr/new/key.pem /etc/askr/tls/key.pem &&
		ns mv /etc/askr/new/cert.pem /etc/askr/tls/cert.pem
}
serial_is() { [[ $(served_serial) == "$1" ]]; }
check "a new certificate (serial 0x2002) renamed over the files" swapcert 0x2002
check "systemctl reload after the renewal" ns systemctl reload askr.service
serial=$(served_serial)
check "the new certificate is served once systemctl reload returns: serial '$serial'" test "$serial" = 2002
# without a reload: askrd notices the files changed
check "another certificate (serial 0x3003), no reload" swapcert 0x3003
within 60 serial_is 3003 || true
serial=$(served_serial)
check "askrd serves it once it sees the files change: serial '$serial'" test "$serial" = 3003
out=$(https -k -w ' %{http_code}' https://localhost/https)
check "and HTTPS still answers: '$out'" test "$out" = "HTTPS=on scheme=https 200"
check "the same askrd throughout (MainPID $main)" test "$(ns systemctl show -p MainPID --value askr.service)" = "$main"

log "https socket: turned off as askrd(8) says"
check "systemctl disable askr-https.socket; systemctl stop askr-https.socket && systemctl restart askr" \
	ns sh -c 'systemctl disable -q askr-https.socket && systemctl stop askr-https.socket && systemctl restart askr'
check "askr-https.socket inactive" not ns systemctl is-active --quiet askr-https.socket
code=$(ns curl -s -k -o /dev/null -w '%{http_code}' --max-time 30 https://127.0.0.1/ || true)
check "nothing answers on 443: $code" test "$code" = 000
out=$(ns curl -sS --max-time 30 -k https://127.0.0.1:80/https 2>&1 || true)
check "port 80 serves HTTPS again ([tls], no https socket): '$out'" test "$out" = "HTTPS=on scheme=https"

summary e2e-systemd
