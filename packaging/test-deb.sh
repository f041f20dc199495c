#!/usr/bin/env bash
# The Debian package's maintainer behaviour under real systemd, in a throwaway Debian 12 container
# (systemd-nspawn --volatile=overlay --private-network on the rootfs `make e2e-systemd` debootstraps
# into build/rootfs, which stays unchanged). The host's port 80 and dpkg database are never touched.
#
#   make deb && bash packaging/test-deb.sh        (as root; build/rootfs from make e2e-systemd)
#
# Checks: install with port 80 taken (postinst explains, exit 0; the port drop-in works), purge,
# a clean install (socket enabled and started, the welcome page, the PHP extension loaded),
# askr-https.socket (shipped disabled; enabled, it serves HTTPS), an upgrade under load (the sockets
# are not restarted, the service is, edits to /etc/askr.toml survive, no request fails), remove
# (units stopped, conffile kept) and purge (conffile and state gone).
# shellcheck disable=SC2016 # dpkg-query's formats and the loop's sh -c are expanded in the container
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
ROOTFS=$REPO/build/rootfs
. test/lib-container.sh
not() { ! "$@"; }
quiet() { "$@" >/dev/null 2>&1; }
[[ -x $ROOTFS/usr/bin/php-cgi8.2 ]] || { echo "test-deb: no Debian 12 rootfs in build/rootfs (run make e2e-systemd once)" >&2; exit 1; }
DEB=$REPO/build/deb/askr_$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)_$(dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null).deb
[[ -f $DEB ]] || { echo "test-deb: build the package first (make deb)" >&2; exit 1; }


# The package, and the same package as a later version to upgrade to.
cp "$DEB" "$STAGE/askr_1.deb"
VERSION=$(dpkg-deb -f "$DEB" Version)
dpkg-deb -R "$DEB" "$STAGE/next"
sed -i "s/^Version: .*/Version: $VERSION+test1/" "$STAGE/next/DEBIAN/control"
dpkg-deb -b --root-owner-group "$STAGE/next" "$STAGE/askr_2.deb" >/dev/null
rm -rf "$STAGE/next"

boot "$REPO/build/deb/nspawn.log" -D "$ROOTFS" --volatile=overlay --private-network --bind-ro="$STAGE:/debs"
apt() { ns env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 "$@"; }
http() { ns curl -s -o /dev/null -w '%{http_code}' --max-time 30 "$@" || true; }
active() { [[ $(ns systemctl is-active "$1" 2>/dev/null) == active ]]; }
inactive() { ! active "$1"; }

log "install while another server has port 80"
ns systemd-run -q --unit=port80 php -S 0.0.0.0:80 -t /tmp
within 30 ns curl -s -o /dev/null --max-time 5 http://127.0.0.1/ || bad "php -S does not listen on port 80"
out=$(apt install /debs/askr_1.deb 2>&1) && rc=0 || rc=$?
check "apt install exits 0 with port 80 taken" test "$rc" = 0
check "the package is installed and configured" \
	test "$(ns dpkg-query -W -f '${db:Status-Abbrev}' askr)" = "ii "
check "postinst says the socket could not start" grep -q 'askr.socket could not be started' <<<"$out"
check "postinst shows the ListenStream= drop-in" grep -q 'ListenStream=8080' <<<"$out"
grep -A14 'could not be started' <<<"$out" | sed 's/^/     | /'
ns mkdir -p /etc/systemd/system/askr.socket.d
printf '[Socket]\nListenStream=\nListenStream=8080\n' | ns tee /etc/systemd/system/askr.socket.d/override.conf >/dev/null
ns systemctl daemon-reload
ns systemctl restart askr.socket askr
check "after the drop-in, askr serves on port 8080" test "$(http http://127.0.0.1:8080/)" = 200
ns systemctl stop port80

log "purge"
apt purge askr >/dev/null 2>&1
ns rm -rf /etc/systemd/system/askr.socket.d
ns systemctl daemon-reload
check "purge removed /etc/askr.toml" ns test ! -e /etc/askr.toml
check "purge removed the package" test "$(ns dpkg-query -W -f '${db:Status-Abbrev}' askr 2>/dev/null || true)" != "ii "

log "clean install"
out=$(apt install /debs/askr_1.deb 2>&1) && rc=0 || rc=$?
check "apt install exits 0" test "$rc" = 0
check "no port message on a clean install" not grep -q 'could not be started' <<<"$out"
check "askr.socket enabled" test "$(ns systemctl is-enabled askr.socket)" = enabled
check "askr.socket active" active askr.socket
check "askr.service enabled" test "$(ns systemctl is-enabled askr.service)" = enabled
page=$(ns curl -s --max-time 30 http://127.0.0.1/ || true)
check "the welcome page says askr is running" grep -q '<h1>askr is running</h1>' <<<"$page"
check "the welcome page shows the version (${VERSION%-*})" grep -q "<td>${VERSION%-*}</td>" <<<"$page"
check "the welcome page shows worker mode" grep -q '<td>worker (each worker boots the app)</td>' <<<"$page"
check "/favicon.ico is 404" test "$(http http://127.0.0.1/favicon.ico)" = 404
check "robots.txt is served as a static file" test "$(ns curl -s http://127.0.0.1/robots.txt)" = "$(printf 'User-agent: *\nDisallow: /')"
check "askrd runs as www-data" test "$(ns ps -o user= -p "$(ns systemctl show -p MainPID --value askr.service)")" = www-data
check "askr symlink" test "$(ns askr version)" = "askr ${VERSION%-*}"
check "askrd config-check accepts /etc/askr.toml" quiet ns askrd config-check /etc/askr.toml
check "php-cgi loads /usr/lib/askr/askr.so" ns sh -c 'php-cgi -d extension=/usr/lib/askr/askr.so -m | grep -qx askr'
check "askrd gives its workers the extension (extension=/usr/lib/askr/askr.so in its log)" \
	journal_has askr.service 'extension=/usr/lib/askr/askr.so'

log "the https socket: shipped, not enabled; enabled as askrd(8) says"
check "askr-https.socket is installed" ns test -f /lib/systemd/system/askr-https.socket
check "askr-https.socket not enabled" test "$(ns systemctl is-enabled askr-https.socket 2>/dev/null || true)" = disabled
check "askr-https.socket not started" inactive askr-https.socket
check "nothing on port 443" test "$(http -k https://127.0.0.1/)" = 000
ns sed -i 's/^# self_signed = false$/self_signed = true/' /etc/askr.toml
check "/etc/askr.toml: [tls] self_signed = true" ns grep -qx 'self_signed = true' /etc/askr.toml
check "askr.service runs" active askr.service
check "systemctl enable askr-https.socket && systemctl restart askr" \
	quiet ns sh -c 'systemctl enable askr-https.socket && systemctl restart askr'
check "askr-https.socket active" active askr-https.socket
page=$(ns curl -s -k --max-time 30 https://127.0.0.1/ || true)
check "the welcome page over HTTPS on port 443" grep -q '<h1>askr is running</h1>' <<<"$page"
check "plain HTTP still on port 80" test "$(http http://127.0.0.1/)" = 200
check "askr.service restarts with both sockets" quiet ns systemctl restart askr
check "HTTPS on port 443 after a restart" test "$(http -k https://127.0.0.1/)" = 200
https_before=$(ns systemctl show -p InvocationID --value askr-https.socket)

log "upgrade under load, with an edited /etc/askr.toml"
ns sed -i 's/^# workers = "auto"$/workers = 3/' /etc/askr.toml
ns systemctl restart askr
sock_before=$(ns systemctl show -p InvocationID --value askr.socket)
pid_before=$(ns systemctl show -p MainPID --value askr.service)
ns sh -c 'n=0; f=0; end=$(( $(date +%s) + 10 )); while [ $(date +%s) -lt $end ]; do
	c=$(curl -s -o /dev/null -w "%{http_code}" --max-time 20 http://127.0.0.1/); n=$((n+1)); [ "$c" = 200 ] || f=$((f+1)); done
	echo "$n $f" > /run/loop.result' &
LOOP=$!
sleep 2
out=$(apt install /debs/askr_2.deb 2>&1) && rc=0 || rc=$?
wait "$LOOP" || true
read -r n f < <(ns cat /run/loop.result)
check "upgrade exits 0" test "$rc" = 0
check "upgraded to $VERSION+test1" test "$(ns dpkg-query -W -f '${Version}' askr)" = "$VERSION+test1"
check "askr.socket was not restarted" test "$(ns systemctl show -p InvocationID --value askr.socket)" = "$sock_before"
pid_after=$(ns systemctl show -p MainPID --value askr.service)
check "askr.service was restarted (pid $pid_before -> $pid_after)" test "$pid_after" != "$pid_before" -a "$pid_after" != 0
check "the edit to /etc/askr.toml survived" ns grep -qx 'workers = 3' /etc/askr.toml
check "no .dpkg-dist: the conffile did not change" ns test ! -e /etc/askr.toml.dpkg-dist
check "$n requests during the upgrade, $f failed" test "$f" = 0 -a "$n" -gt 0
check "the old askrd drained (SIGTERM)" journal_has askr.service 'signal: draining'
check "askr-https.socket was not restarted" test "$(ns systemctl show -p InvocationID --value askr-https.socket)" = "$https_before"
check "HTTPS on port 443 after the upgrade" test "$(http -k https://127.0.0.1/)" = 200

log "remove"
apt remove askr >/dev/null 2>&1
check "askr.service stopped" inactive askr.service
check "askr.socket stopped" inactive askr.socket
check "askr-https.socket stopped" inactive askr-https.socket
check "port 80 closed" test "$(http http://127.0.0.1/)" = 000
check "port 443 closed" test "$(http -k https://127.0.0.1/)" = 000
check "/etc/askr.toml kept after remove" ns test -e /etc/askr.toml

log "purge"
apt purge askr >/dev/null 2>&1
check "/etc/askr.toml removed by purge" ns test ! -e /etc/askr.toml
check "no enablement symlinks left" test -z "$(ns find /etc/systemd/system -name 'askr*')"
check "purge removed /var/lib/askr (StateDirectory=)" ns test ! -e /var/lib/askr
state=$(ns dpkg-query -W -f '${db:Status-Abbrev}' askr 2>/dev/null || true)
check "no package state left ('$state')" test "$state" = "" -o "$state" = "pn "

summary test-deb
