#!/usr/bin/env bash
# `apt install askr` end to end, under real systemd in a throwaway Debian 12 container
# (systemd-nspawn --volatile=overlay on a debootstrapped rootfs without PHP, cached in build/).
# The container shares the host's network so that apt can fetch php-cgi from the archive; all
# requests go to 127.0.0.1 inside it.
#
#   make e2e-deb                (builds the package twice: 0.1.0-1 and an upgrade, 0.1.0-2)
# shellcheck disable=SC2016 # dpkg-query's formats and the sh -c scripts are expanded in the container
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
ROOTFS=$REPO/build/rootfs-deb
OLD=${OLD_DEB:?OLD_DEB: the .deb to install first}
NEW=${NEW_DEB:?NEW_DEB: the .deb to upgrade to}
. test/lib-container.sh
not() { ! "$@"; }

rootfs_once "$ROOTFS" curl,ca-certificates,procps
cp "$OLD" "$STAGE/old.deb"
cp "$NEW" "$STAGE/new.deb"
# A Laravel app that is not the example (the leak tests' app), served by the packaged worker.
cp -r "$REPO/internal/integration/testdata/laravel-app" "$STAGE/laravel-app"

boot "$REPO/build/nspawn-deb.log" -D "$ROOTFS" --volatile=overlay --bind-ro="$STAGE:/stage"

log "apt install ./askr_*.deb"
ns apt-get update -qq >/dev/null
if ns env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /stage/old.deb >"$REPO/build/apt-install.log" 2>&1; then
	ok "apt install of the package (and php-cgi from the archive)"
else
	bad "apt install failed"; tail -20 "$REPO/build/apt-install.log"
fi
check "php8.2-cgi came with it" ns bash -c "dpkg -s php8.2-cgi >/dev/null 2>&1"
check "askr.socket active after install" ns systemctl is-active --quiet askr.socket
page=$(ns curl -s --max-time 30 http://127.0.0.1/ || true)
if grep -q "askr is running" <<<"$page"; then
	ok "welcome page on port 80 through socket activation"
else
	bad "welcome page: ${page:0:200}"
fi

log "point /etc/askr.toml at a Laravel app, with the packaged generic worker"
check "the package installs the Laravel and Symfony workers" \
	ns test -f /usr/share/askr/workers/laravel.php -a -f /usr/share/askr/workers/symfony.php \
		-a -f /usr/share/askr/workers/laravel-queue.php -a -f /usr/share/askr/workers/laravel-scheduler.php \
		-a -f /usr/share/askr/workers/laravel-console.php
ns env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq php-laravel-framework php8.2-sqlite3 php8.2-mbstring php8.2-xml >/dev/null 2>&1
# (an app checked out from git has storage/ and bootstrap/cache/; ReadWritePaths= needs them to exist)
ns sh -c 'mkdir -p /var/www && cp -r /stage/laravel-app /var/www/app && mkdir -p /var/www/app/storage /var/www/app/bootstrap/cache && chown -R www-data:www-data /var/www/app'
# docs/laravel.md's two lines, edited into the packaged file as an admin would (app_base is the
# root's parent)
ns sed -i -e '1i # edited by the admin' \
	-e 's|^root = "/usr/share/askr/welcome/public"$|root = "/var/www/app/public"|' \
	-e 's|^script = "/usr/share/askr/welcome/worker.php"$|script = "/usr/share/askr/workers/laravel.php"|' /etc/askr.toml
check "/etc/askr.toml names the app and the packaged worker" \
	ns sh -c 'grep -qx "root = \"/var/www/app/public\"" /etc/askr.toml && grep -qx "script = \"/usr/share/askr/workers/laravel.php\"" /etc/askr.toml'
ns sh -c 'mkdir -p /etc/systemd/system/askr.service.d && printf "[Service]\nReadWritePaths=/var/www/app/storage /var/www/app/bootstrap/cache\n" > /etc/systemd/system/askr.service.d/app.conf && systemctl daemon-reload'
ns systemctl restart askr.service || { bad "systemctl restart askr.service failed"; ns journalctl -u askr.service --no-pager | tail -20; }
# the issue's repro: twice with a cookie jar (1, 2), then a visitor without cookies gets 1
ns rm -f /run/jar
s1=$(ns curl -s --max-time 60 -c /run/jar -b /run/jar http://127.0.0.1/session || true)
s2=$(ns curl -s --max-time 30 -c /run/jar -b /run/jar http://127.0.0.1/session || true)
s3=$(ns curl -s --max-time 30 http://127.0.0.1/session || true)
if grep -q '"counter":1' <<<"$s1" && grep -q '"counter":2' <<<"$s2" && grep -q '"counter":1' <<<"$s3"; then
	ok "Laravel app under systemd: a visitor without cookies gets a fresh session (1, 2, then 1)"
else
	bad "Laravel session under systemd: ${s1:0:150} / ${s2:0:150} / ${s3:0:150}"
fi
u=$(ns curl -s --max-time 30 http://127.0.0.1/auth/user || true)
check "no user is logged in for a new visitor (${u:0:100})" grep -q '"check":false' <<<"$u"

log "upgrade under a continuous request loop"
ns sh -c 'n=0; f=0; end=$(( $(date +%s) + 20 )); rm -f /run/stop-loop; while [ ! -e /run/stop-loop ] && [ $(date +%s) -lt $end ] && [ $n -lt 50000 ]; do
	c=$(curl -s -o /dev/null -w "%{http_code}" --max-time 10 http://127.0.0.1/pid); n=$((n+1)); [ "$c" = 200 ] || f=$((f+1)); done
	echo "$n $f" > /run/loop.result' &
LOOP=$!
sleep 2
if ns env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold /stage/new.deb >"$REPO/build/apt-upgrade.log" 2>&1; then
	ok "upgrade installed"
else
	bad "upgrade failed"; tail -20 "$REPO/build/apt-upgrade.log"
fi
sleep 2
ns touch /run/stop-loop
wait "$LOOP" || true
read -r n f < <(ns cat /run/loop.result)
check "upgrade during $n requests: $f failed" test "$f" = 0 -a "$n" -gt 0
check "edited /etc/askr.toml kept" ns grep -q 'edited by the admin' /etc/askr.toml
v=$(ns dpkg-query -W -f='${Version}' askr)
check "askr upgraded to $v" test "$v" = "$(dpkg-deb -f "$NEW" Version)"

log "remove and purge"
ns dpkg -L askr >"$STAGE/files" 2>/dev/null || true
ns env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq askr >/dev/null 2>&1
check "apt remove stopped the service" not ns systemctl is-active --quiet askr.service
ns env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq askr >/dev/null 2>&1
left=""
while read -r f; do
	case $f in /. | /usr | /usr/* | /etc | /etc/logrotate.d | /lib | /lib/systemd | /lib/systemd/system) [[ -d $ROOTFS$f ]] && continue ;; esac
	ns test -e "$f" && left="$left $f"
done <"$STAGE/files"
for f in /etc/askr.toml /usr/bin/askrd /usr/bin/askr /usr/share/askr /lib/systemd/system/askr.service /lib/systemd/system/askr.socket; do
	ns test -e "$f" && left="$left $f"
done
# (the admin's own drop-in for the Laravel paths is not the package's)
extra=$(ns find / -xdev \( -path /proc -o -path /sys -o -path /stage -o -path /var/www -o -path /etc/systemd/system/askr.service.d \) -prune -o -name '*askr*' -print 2>/dev/null | grep -v -E '^/(proc|sys|stage)' || true)
check "apt purge left no askr file${left:+ (left:$left)}${extra:+ (left: $extra)}" test -z "$left$extra"

log "install while port 80 is taken"
cat >"$STAGE/hold80.php" <<'PHP'
<?php $s = stream_socket_server('tcp://0.0.0.0:80'); file_put_contents('/run/hold80.ready', '1'); sleep(120);
PHP
ns sh -c 'rm -f /run/hold80.ready; php-cgi -q /stage/hold80.php >/dev/null 2>&1 & echo $! > /run/hold80.pid'
within 30 ns test -e /run/hold80.ready || bad "php-cgi does not hold port 80"
if ns env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /stage/old.deb >"$REPO/build/apt-port80.log" 2>&1; then
	ok "install with port 80 taken: apt succeeds"
else
	bad "install with port 80 taken failed"; tail -20 "$REPO/build/apt-port80.log"
fi
st=$(ns dpkg-query -W -f='${Status}' askr 2>/dev/null || true)
check "package fully configured ($st)" test "$st" = "install ok installed"
check "the install says port 80 is taken and how to change it" grep -q -i 'port 80' "$REPO/build/apt-port80.log"
ns sh -c 'kill $(cat /run/hold80.pid)' || true

summary e2e-deb
