#!/usr/bin/env bash
# bench/run.sh — askrd vs nginx + php-fpm on this machine, same PHP worker count.
#
#   make bench                      (installs nginx-light php8.2-fpm wrk, builds bin/askrd, runs this)
#   WORKERS=4 DURATION=20s CONNS=64 bash bench/run.sh
#   other knobs: THREADS WARMUP FPM_LISTEN=unix|tcp REPORT=path CLASSIC_ROUNDS CLASSIC_RETRIES WP_CONNS WP_TIMEOUT
#     SCENARIOS="hello laravel laravel-workers classic-hello classic-wordpress cow slow-readers" (the default; "classic" = both classic-*)
#   CoW knobs: RESPAWN_N MEM_WORKERS MEM_REQUESTS MEM_CONNS MAXREQ_WORKERS MAXREQ_CONNS MAXREQ_DURATION
#   slow-readers knobs: SLOW_WORKERS SLOW_READERS SLOW_PINGS
#
# Scenarios:
#   hello    askrd + examples/hello-worker.php   vs  nginx + php-fpm running an equivalent per-request script
#   laravel  askrd + examples/laravel-worker.php vs  nginx + php-fpm running examples/laravel/public/index.php
#            (route "/", the Blade page; skipped when examples/laravel is missing)
#   classic-hello      askrd's per-request mode (`serve --root DIR`, no worker script: php-cgi in
#            FastCGI mode) vs nginx + php-fpm, both running the same hello-world index.php afresh for
#            every request; nginx routes as askrd does (try_files $uri $uri/ /index.php?$args, PATH_INFO split)
#   classic-wordpress  the same two on Debian's WordPress (/usr/share/wordpress, /wp-content/ aliased to
#            /var/lib/wordpress/wp-content as README.Debian says): GET / (the front page with the
#            install's "Hello world!" post). The script starts a private MariaDB (mariadb-install-db +
#            mariadbd in the temp dir, Unix socket only; the system service and /var/lib/mysql stay
#            unused), writes /etc/wordpress/config-<unique host>.php (removed on exit), runs the
#            install wizard once over HTTP through nginx + php-fpm, and every request sends that host
#            in its Host header. Skipped with a note when the packages of `make deps-wordpress` are
#            missing or /etc/wordpress is not writable (not root).
#   laravel-workers  askrd only, the Laravel example's "/" (Blade, returning visitor's session), three
#            workers in turn for LW_ROUNDS rounds (order rotated each round): the example's worker as
#            it was before the generic one (git show $LARAVEL_BEFORE:examples/laravel-worker.php: a
#            handful of resets written for that app), the generic examples/laravel-worker.php (every
#            reset of docs/laravel.md), and the generic one with --paranoid (the state-bleed detector).
#            Goal (issue 13): the generic worker's resets cost under 5 % of requests/s.
#   cow      = cow-respawn cow-memory cow-maxreq: askrd `serve --cow` (CoW template mode) vs askrd's
#            normal worker mode, both on the Laravel example (askrd only, no php-fpm):
#     cow-respawn  --workers 1; RESPAWN_N times: SIGKILL the worker, poll GET /api/json until a 200
#                  from a new pid; latency p50/p99 (bench/cowbench.go does the timing)
#     cow-memory   --workers MEM_WORKERS; MEM_REQUESTS requests per worker to "/", then the summed
#                  PSS (smaps_rollup) of askrd's php-cgi descendants (template + workers) and askrd's RSS
#     cow-maxreq   --max-requests 1 (a fresh worker for every request): wrk on GET /api/json
#   slow-readers askrd only, --workers SLOW_WORKERS (4), in worker, CoW and per-request mode, on
#            internal/integration/testdata/slowreader (the app of TestSlowReaders): SLOW_PINGS
#            (200) pings one after the other, alone and then while SLOW_READERS (8) clients hold a
#            4 MiB answer each without reading it (bench/cowbench.go slowreaders); ping p50/p99.
#            Goal (issue 12): p99 under 50 ms beside the slow readers.
#
# Every server is started by this script from a private temp dir (its own nginx.conf and
# php-fpm.conf, pid/log/temp files there), listens on 127.0.0.1 only, and is stopped on exit.
# Nothing under /etc is written but classic-wordpress's site config (above), and the system's
# nginx/php-fpm/MariaDB services are left alone; php-fpm reads Debian's fpm php.ini
# (/etc/php/8.2/fpm/php.ini + conf.d) like the packaged service does.
# Only one server runs at a time. Results go to docs/bench.md (and stdout); the raw wrk output
# and the server logs of the last run are kept in bench/out/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD

WORKERS=${WORKERS:-2}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
ASKRD=${ASKRD:-$REPO/bin/askrd}
PHP_FPM=${PHP_FPM:-php-fpm8.2}
NGINX=${NGINX:-nginx}
WRK=${WRK:-wrk}
# How nginx reaches php-fpm: unix (a socket in the temp dir, as Debian's packaged pool does; the
# faster of the two, so the stronger baseline) or tcp (a 127.0.0.1 port).
FPM_LISTEN=${FPM_LISTEN:-unix}
REPORT=${REPORT:-$REPO/docs/bench.md}
OUTDIR=$REPO/bench/out
READY_TIMEOUT=${READY_TIMEOUT:-30}
# Polled until the server answers (any status): a page no app has, so a 404 that starts no session.
READY_PATH=/askr-bench-ready

SCENARIOS=${SCENARIOS:-hello laravel laravel-workers classic-hello classic-wordpress cow slow-readers}
LARAVEL_BASE=${LARAVEL_BASE:-$REPO/examples/laravel}
LARAVEL_WORKER=${LARAVEL_WORKER:-$REPO/examples/laravel-worker.php}

# CoW template mode vs normal worker mode (askrd only, Laravel example)
GO=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
RESPAWN_N=${RESPAWN_N:-30}                 # kills per mode
MEM_WORKERS=${MEM_WORKERS:-8}              # workers in the memory run
MEM_REQUESTS=${MEM_REQUESTS:-1000}         # requests per worker before memory is read
MEM_CONNS=${MEM_CONNS:-16}                 # concurrent connections of that load
MEM_MAX=${MEM_MAX:-60s}                    # bound on that load
MAXREQ_WORKERS=${MAXREQ_WORKERS:-$WORKERS} # workers in the --max-requests 1 run
MAXREQ_THREADS=${MAXREQ_THREADS:-2}
MAXREQ_CONNS=${MAXREQ_CONNS:-8}
MAXREQ_DURATION=${MAXREQ_DURATION:-10s}
# classic-wordpress: a front page takes tens of ms of CPU, so fewer connections than CONNS keep the
# queueing (and latency) sane; wrk's own 2 s timeout would count slow answers as errors
WP_CONNS=${WP_CONNS:-8}
# classic-*: the differences are small, so each server is measured this many times, alternately
CLASSIC_ROUNDS=${CLASSIC_ROUNDS:-3}
CLASSIC_RETRIES=${CLASSIC_RETRIES:-2} # a run disturbed by other processes is measured again, this often at most
WP_TIMEOUT=${WP_TIMEOUT:-10s}
# laravel-workers: the commit whose examples/laravel-worker.php is "today's example worker" (the last
# one before the generic worker replaced it), and the rounds
LARAVEL_BEFORE=${LARAVEL_BEFORE:-5630246}
LW_ROUNDS=${LW_ROUNDS:-3}
GOAL_RESET_COST_PCT=5
LW_ROWS=() LW_NOTES=()
# slow-readers
SLOW_WORKERS=${SLOW_WORKERS:-4}
SLOW_READERS=${SLOW_READERS:-8}
SLOW_PINGS=${SLOW_PINGS:-200}
GOAL_SLOW_P99_MS=50
declare -A SLOW # "mode/key" -> value (cowbench slowreaders' output)
SLOW_ROWS=()
# goals stated for CoW mode
GOAL_RESPAWN_P50_MS=10
GOAL_RESPAWN_SPEEDUP=20
GOAL_PSS_PCT=35

TMP=""
PIDS=()        # every server process this script started (killed on exit)
HELPER_PIDS=() # processes that outlive one server (classic-wordpress's mariadbd): stopped by their
               # scenario or on exit, their CPU counted with the servers'
WP_CONFIG=""   # /etc/wordpress/config-<host>.php this script wrote (removed on exit)
ROWS=()        # markdown table rows
NOTES=()       # per-scenario lines under the table
FOREIGN=()     # "scenario / server N%": CPU other processes used during each measured run
# "scenario/server" -> value, for the ratio lines (ERRN: errors as a number; FPCT: CPU % other
# processes used during the run)
declare -A RPS P50 P99 MEM ERRS ERRN FPCT
COWBENCH=""    # the built bench/cowbench.go
declare -A RESP MEMR LOAD    # CoW results: "mode/key" -> value (cowbench's output)
COW_RESPAWN_ROWS=() COW_RESPAWN_NOTES=()
COW_MEM_ROWS=() COW_MEM_NOTES=()
COW_MAXREQ_ROWS=() COW_MAXREQ_NOTES=()
COW_FOREIGN=() # "run N%": CPU other processes used during each CoW measurement
# shellcheck disable=SC2034 # written through measure's ROW_TABLE nameref (ROW_TABLE=DISCARD)
DISCARD=()

log() { printf '>> %s\n' "$*" >&2; }
die() {
	printf 'bench: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------------------------
# process handling

cleanup() {
	local pid
	for pid in "${PIDS[@]}" "${HELPER_PIDS[@]}"; do stop_pid "$pid"; done
	PIDS=() HELPER_PIDS=()
	if [[ -n $WP_CONFIG ]]; then
		rm -f "$WP_CONFIG"
		WP_CONFIG=""
	fi
	if [[ -n $TMP && -d $TMP ]]; then
		# keep the logs of the last run for inspection
		mkdir -p "$OUTDIR"
		local f name
		for f in "$TMP"/*.log "$TMP"/*/*.log; do
			[[ -f $f ]] || continue
			name=${f#"$TMP"/}
			cp -f "$f" "$OUTDIR/${name//\//-}" 2>/dev/null || true
		done
		rm -rf "$TMP"
	fi
}

# stop_pid PID: SIGTERM, up to 10s grace, then SIGKILL.
stop_pid() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# stop_all: stops every server started so far (between scenarios; one server at a time).
stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
	PIDS=()
}

# free_port: a TCP port on 127.0.0.1 nothing listens on, below the kernel's ephemeral range (the
# load generators' own connections, and other programs', take their local ports from that range,
# so a port picked there can be taken before the server binds it).
free_port() {
	local p i lo=20000 hi
	hi=$(awk '{ print $1 - 1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32767)
	((hi > lo + 1000)) || { lo=10000 hi=32767; }
	for ((i = 0; i < 100; i++)); do
		p=$((lo + RANDOM % (hi - lo)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	die "no free port on 127.0.0.1"
}

# wait_ready URL PID LOGFILE: waits until URL answers (any HTTP status) while PID lives.
wait_ready() {
	local url=$1 pid=$2 logfile=$3 deadline=$((SECONDS + READY_TIMEOUT))
	while ((SECONDS < deadline)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$logfile" >&2 || true
			die "server (pid $pid) exited before answering $url; log above ($logfile)"
		fi
		if curl -s -o /dev/null --max-time 2 "$url"; then return 0; fi
		sleep 0.2
	done
	tail -n 30 "$logfile" >&2 || true
	die "$url not answering after ${READY_TIMEOUT}s"
}

# check_response URL LABEL [CURL ARGS...]: the page must answer 200; prints a one-line summary.
check_response() {
	local url=$1 label=$2 out code size
	shift 2
	out=$(curl -s -o "$TMP/body" -w '%{http_code} %{size_download}' --max-time 30 "$@" "$url") || true
	read -r code size <<<"$out"
	if [[ $code != 200 ]]; then
		head -c 2000 "$TMP/body" >&2 || true
		echo >&2
		die "$label: GET $url answered ${code:-nothing} (body above)"
	fi
	log "$label: GET $url -> 200, $size bytes: $(head -c 60 "$TMP/body" | tr '\n' ' ')"
}

# tree_rss_mb PID...: resident memory of the PIDs and all their descendants, in MiB.
tree_rss_mb() {
	ps -e -o pid=,ppid=,rss= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) root[r[i]] = 1 }
		{ parent[$1] = $2; rss[$1] = $3 }
		END {
			for (p in rss) {
				for (q = p; q != "" && q != 0; q = parent[q]) if (q in root) { sum += rss[p]; break }
			}
			printf "%.0f", sum / 1024
		}'
}

# ---------------------------------------------------------------------------------------------
# servers

# start_askrd NAME PORT ROOT SCRIPT [VAR=VALUE...] [-- SERVE FLAGS...]: askrd in worker mode (the
# flags after -- come last, so `--workers N` there overrides $WORKERS); sets SERVER_PID.
start_askrd() {
	local name=$1 port=$2 root=$3 script=$4
	shift 4
	local logfile=$TMP/askrd-$name.log envs=() flags=()
	while (($# > 0)); do
		if [[ $1 == -- ]]; then
			shift
			flags=("$@")
			break
		fi
		envs+=("$1")
		shift
	done
	env "${envs[@]}" "$ASKRD" serve --root "$root" --worker-script "$script" \
		--workers "$WORKERS" "${flags[@]}" --listen "127.0.0.1:$port" >"$logfile" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_ready "http://127.0.0.1:$port$READY_PATH" "$SERVER_PID" "$logfile"
}

# start_askrd_classic NAME PORT ROOT [SERVE FLAGS...]: askrd in per-request mode (no worker script:
# WORKERS php-cgi processes in FastCGI mode, each running one request at a time, as php-fpm's
# children do); sets SERVER_PID. Set by the caller (dynamic scope): ASKRD_CONFIG (an askr.toml
# read first, e.g. for [server] alias; the flags override it) and READY_URL_PATH.
start_askrd_classic() {
	local name=$1 port=$2 root=$3
	shift 3
	local logfile=$TMP/askrd-$name.log cfg=()
	[[ -z ${ASKRD_CONFIG:-} ]] || cfg=(--config "$ASKRD_CONFIG")
	"$ASKRD" serve "${cfg[@]}" --root "$root" --workers "$WORKERS" "$@" --listen "127.0.0.1:$port" \
		>"$logfile" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_ready "http://127.0.0.1:$port${READY_URL_PATH:-$READY_PATH}" "$SERVER_PID" "$logfile"
	grep -q 'mode=per-request' "$logfile" || {
		tail -n 20 "$logfile" >&2
		die "$name: $ASKRD did not start in per-request mode (log above; an askrd built before per-request mode?)"
	}
}

# start_fpm_nginx NAME PORT DOCROOT [VAR=VALUE...]: php-fpm (pm = static, WORKERS children) plus
# nginx in front of it; the VAR=VALUE pairs become the pool's env[]. Sets SERVER_PID (nginx master)
# and FPM_PID. Set by the caller (dynamic scope):
#   NGINX_ROUTING  front (default): every URL that is no file runs /index.php, as a worker-mode app
#                  wants; classic: the usual per-request PHP site, what askrd's per-request mode
#                  does too (try_files $uri $uri/ /index.php?$args, any existing .php file runs,
#                  PATH_INFO split after ".php", MIME types for static files)
#   NGINX_ALIASES  "PREFIX=DIR" words: nginx alias locations, static files only (.php → 403)
#   NGINX_SERVER_NAME  server_name (default: none, so PHP sees an empty SERVER_NAME)
#   READY_URL_PATH what to poll until the server answers (default READY_PATH)
start_fpm_nginx() {
	local name=$1 port=$2 docroot=$3
	shift 3
	local dir=$TMP/$name-fpm fpm_addr fpm_args=() user_fpm="" user_nginx="" kv
	local routing=${NGINX_ROUTING:-front} aliases=${NGINX_ALIASES:-} a locations="" mime="" fpm_pass
	mkdir -p "$dir"/{body,fastcgi,proxy,scgi,uwsgi}
	if [[ $FPM_LISTEN == unix ]]; then
		fpm_addr=$dir/php-fpm.sock
	else
		fpm_addr=127.0.0.1:$(free_port)
	fi
	if ((EUID == 0)); then
		# root: the files in the temp dir are root's, so run the PHP and nginx workers as root too
		user_fpm=$'user = root\ngroup = root'
		user_nginx='user root root;'
		fpm_args+=(-R)
	fi
	fpm_args+=(-d opcache.enable=1) # Debian's default too; set at startup (a pool value would warn)

	{
		cat <<-EOF
			[global]
			pid = $dir/php-fpm.pid
			error_log = $dir/php-fpm-error.log
			daemonize = no
			log_level = notice

			[bench]
			$user_fpm
			listen = $fpm_addr
			listen.backlog = 511
			pm = static
			pm.max_children = $WORKERS
			pm.max_requests = 0
			catch_workers_output = yes
			php_admin_value[error_log] = $dir/php-fpm-php.log
		EOF
		for kv in "$@"; do echo "env[${kv%%=*}] = ${kv#*=}"; done
	} >"$dir/php-fpm.conf"

	fpm_pass=$([[ $FPM_LISTEN == unix ]] && echo "unix:$fpm_addr" || echo "$fpm_addr")
	if [[ $routing == classic ]]; then
		mime="include /etc/nginx/mime.types;"
		for a in $aliases; do
			locations+="
        location ^~ ${a%%=*} {
            alias ${a#*=};
            location ~ \.php\$ { return 403; }
        }"
		done
		locations+="
        location / {
            try_files \$uri \$uri/ /index.php?\$args;
        }
        location ~ [^/]\.php(/|\$) {
            fastcgi_split_path_info ^(.+?\.php)(/.*)\$;
            try_files \$fastcgi_script_name =404;
            set \$path_info \$fastcgi_path_info; # try_files resets \$fastcgi_path_info
            fastcgi_param PATH_INFO \$path_info;
            fastcgi_param HTTPS \$https if_not_empty;
            fastcgi_param REMOTE_USER \$remote_user;
            fastcgi_param HTTP_PROXY \"\"; # httpoxy"
	else
		[[ -z $aliases ]] || die "NGINX_ALIASES needs NGINX_ROUTING=classic"
		locations="
        location / {
            try_files \$uri /index.php?\$query_string;
        }
        location ~ \.php\$ {
            try_files \$uri =404;"
	fi
	cat >"$dir/nginx.conf" <<-EOF
		$user_nginx
		worker_processes $(nproc);
		pid $dir/nginx.pid;
		error_log $dir/nginx-error.log warn;
		events { worker_connections 4096; }
		http {
		    access_log off;
		    sendfile on;
		    keepalive_requests 100000;
		    client_body_temp_path $dir/body;
		    fastcgi_temp_path $dir/fastcgi;
		    proxy_temp_path $dir/proxy;
		    scgi_temp_path $dir/scgi;
		    uwsgi_temp_path $dir/uwsgi;
		    $mime
		    default_type application/octet-stream;
		    server {
		        listen 127.0.0.1:$port;${NGINX_SERVER_NAME:+
		        server_name $NGINX_SERVER_NAME;}
		        root $docroot;
		        index index.php;$locations
		            fastcgi_pass $fpm_pass;
		            fastcgi_index index.php;
		            fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
		            fastcgi_param QUERY_STRING \$query_string;
		            fastcgi_param REQUEST_METHOD \$request_method;
		            fastcgi_param CONTENT_TYPE \$content_type;
		            fastcgi_param CONTENT_LENGTH \$content_length;
		            fastcgi_param SCRIPT_NAME \$fastcgi_script_name;
		            fastcgi_param REQUEST_URI \$request_uri;
		            fastcgi_param DOCUMENT_URI \$document_uri;
		            fastcgi_param DOCUMENT_ROOT \$document_root;
		            fastcgi_param SERVER_PROTOCOL \$server_protocol;
		            fastcgi_param REQUEST_SCHEME \$scheme;
		            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
		            fastcgi_param SERVER_SOFTWARE nginx/\$nginx_version;
		            fastcgi_param REMOTE_ADDR \$remote_addr;
		            fastcgi_param REMOTE_PORT \$remote_port;
		            fastcgi_param SERVER_ADDR \$server_addr;
		            fastcgi_param SERVER_PORT \$server_port;
		            fastcgi_param SERVER_NAME \$server_name;
		            fastcgi_param REDIRECT_STATUS 200;
		        }
		    }
		}
	EOF

	"$PHP_FPM" "${fpm_args[@]}" --nodaemonize --fpm-config "$dir/php-fpm.conf" \
		>"$dir/php-fpm.log" 2>&1 &
	FPM_PID=$!
	PIDS+=("$FPM_PID")
	wait_fpm "$fpm_addr" "$dir/php-fpm-error.log"

	"$NGINX" -t -q -p "$dir" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" >"$dir/nginx.log" 2>&1 ||
		{ cat "$dir/nginx.log" >&2; die "nginx rejected $dir/nginx.conf"; }
	"$NGINX" -p "$dir" -e "$dir/nginx-error.log" -c "$dir/nginx.conf" -g 'daemon off;' \
		>>"$dir/nginx.log" 2>&1 &
	SERVER_PID=$!
	PIDS+=("$SERVER_PID")
	wait_ready "http://127.0.0.1:$port${READY_URL_PATH:-$READY_PATH}" "$SERVER_PID" "$dir/nginx-error.log"
}

# wait_fpm ADDR LOGFILE: waits until php-fpm accepts connections on ADDR (host:port or socket path).
wait_fpm() {
	local addr=$1 logfile=$2 deadline=$((SECONDS + READY_TIMEOUT))
	while ((SECONDS < deadline)); do
		kill -0 "$FPM_PID" 2>/dev/null || { cat "$logfile" >&2 || true; die "php-fpm exited; log above"; }
		if [[ $addr == /* ]]; then
			[[ -S $addr ]] && return 0
		elif (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "php-fpm not listening on $addr after ${READY_TIMEOUT}s"
}

# ---------------------------------------------------------------------------------------------
# load and results

# seconds DURATION: wrk's duration ("10s", "1m", "90") in seconds.
seconds() {
	local d=$1
	case $d in
	*h) echo $((${d%h} * 3600)) ;;
	*m) echo $((${d%m} * 60)) ;;
	*s) echo "${d%s}" ;;
	*) echo "$d" ;;
	esac
}

# run_wrk URL DURATION OUTFILE [WRK ARGS...]: one bounded wrk run against 127.0.0.1.
run_wrk() {
	local url=$1 dur=$2 out=$3
	shift 3
	[[ $url == http://127.0.0.1:* ]] || die "refusing to load $url (127.0.0.1 only)"
	timeout --signal=INT --kill-after=10 $(($(seconds "$dur") + 30)) \
		"$WRK" -t"$THREADS" -c"$CONNS" -d"$dur" --latency "$@" "$url" >"$out" 2>&1 ||
		{ cat "$out" >&2; die "wrk failed against $url"; }
}

# parse_wrk FILE: prints "rps p50_ms p99_ms non2xx socket_errors requests".
parse_wrk() {
	awk '
		function ms(v) {
			if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
			if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
			if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
			if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
			return v + 0
		}
		/^Requests\/sec:/             { rps = $2 }
		/^ +50% /                     { p50 = ms($2) }
		/^ +99% /                     { p99 = ms($2) }
		/requests in /                { reqs = $1 }
		/Non-2xx or 3xx responses:/   { non2xx = $NF }
		/Socket errors:/ {
			line = $0; sub(/.*Socket errors: /, "", line)
			n = split(line, parts, /, /)
			for (i = 1; i <= n; i++) { split(parts[i], kv, " "); sock += kv[2] }
		}
		END { printf "%s %.3f %.3f %d %d %s\n", rps == "" ? "0" : rps, p50, p99, non2xx, sock, reqs == "" ? "0" : reqs }
	' "$1"
}

# cpu_idle_pct: how idle all CPUs were over the next second, in percent (from /proc/stat).
cpu_idle_pct() {
	local a b
	a=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / { print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); d = y[2] - x[2]
		printf "%.0f", (d > 0 ? 100 * (y[1] - x[1]) / d : 100) }'
}

# machine_ticks: "busy total" CPU ticks of all CPUs since boot (steal counts as busy).
machine_ticks() { awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat; }

# tree_ticks PID...: CPU ticks used so far by the PIDs and their live descendants, including the
# children they have reaped (cutime + cstime: workers that exited, e.g. with --max-requests 1).
tree_ticks() {
	local pids
	pids=$(ps -e -o pid=,ppid= | awk -v roots="$*" '
		BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) root[r[i]] = 1 }
		{ parent[$1] = $2 }
		END { for (p in parent) for (q = p; q != "" && q != 0; q = parent[q]) if (q in root) { print "/proc/" p "/stat"; break } }')
	# shellcheck disable=SC2086 # one path per word
	cat $pids 2>/dev/null | awk '{ sub(/.*\) /, ""); t += $12 + $13 + $14 + $15 } END { printf "%d\n", t }'
}

# child_ticks FILE: CPU ticks used by the shell's finished children (wrk, curl, ...), from the
# output of `times` saved in FILE (run in the main shell: a subshell starts counting at zero).
child_ticks() {
	awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
		for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] }
		printf "%d\n", s * hz }' "$1"
}

# foreign_cpu_pct BEFORE AFTER: share of the machine's CPU capacity that processes other than the
# servers (with their helpers, e.g. mariadbd) and wrk used between two snapshots ("machine_busy
# machine_total ours wrk").
foreign_cpu_pct() {
	awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ")
		total = y[2] - x[2]; other = (y[1] - x[1]) - (y[3] - x[3]) - (y[4] - x[4])
		printf "%.0f", (total > 0 && other > 0 ? 100 * other / total : 0) }'
}

# cpu_snapshot VAR: stores "machine_busy machine_total servers wrk" CPU ticks in VAR.
cpu_snapshot() {
	times >"$TMP/times"
	printf -v "$1" '%s %s %s' "$(machine_ticks)" "$(tree_ticks "${PIDS[@]}" "${HELPER_PIDS[@]}")" "$(child_ticks "$TMP/times")"
}

fmt_ms() { awk -v v="$1" 'BEGIN { if (v < 10) printf "%.2f ms", v; else if (v < 100) printf "%.1f ms", v; else printf "%.0f ms", v }'; }

# measure SCENARIO SERVER URL [WRK ARGS...]: warm-up, measured run, one table row.
measure() {
	local scenario=$1 server=$2 url=$3 key="$1/$2" raw="$OUTDIR/wrk-$1-${2//[^a-z]/}.txt"
	shift 3
	local rps p50 p99 non2xx sock reqs errors rss
	log "$scenario / $server: warm-up $WARMUP"
	run_wrk "$url" "$WARMUP" "$TMP/warmup.txt" "$@"
	log "$scenario / $server: wrk -t$THREADS -c$CONNS -d$DURATION --latency${*:+ (+$# extra args)} $url"
	local before after foreign
	cpu_snapshot before
	run_wrk "$url" "$DURATION" "$raw" "$@"
	cpu_snapshot after
	foreign=$(foreign_cpu_pct "$before" "$after")
	local -n foreign_list=${FOREIGN_TABLE:-FOREIGN}
	foreign_list+=("$scenario / $server $foreign%")
	if ((foreign >= 10)); then
		log "$scenario / $server: WARNING: other processes used $foreign% of the CPUs during the run"
	fi
	read -r rps p50 p99 non2xx sock reqs < <(parse_wrk "$raw")
	rss=$(tree_rss_mb "${PIDS[@]}")
	log_problems "$scenario" "$server"
	errors=$((non2xx + sock))
	if ((errors > 0)); then
		errors="$errors ($non2xx non-2xx/3xx, $sock socket)"
	fi
	local pid
	for pid in "${PIDS[@]}"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "$scenario / $server: WARNING: server process $pid exited during the measured run"
			errors="$errors; server exited during the run"
			local -n exit_notes=${NOTE_TABLE:-NOTES}
			exit_notes+=("- **$scenario / $server**: a server process exited during the measured run, so its numbers are not valid (its log is in bench/out/; \`level=INFO msg=draining\` in an askrd log means it was sent SIGTERM/SIGINT).")
			break
		fi
	done
	RPS[$key]=$rps P50[$key]=$p50 P99[$key]=$p99 ERRS[$key]=$errors ERRN[$key]=$((non2xx + sock)) FPCT[$key]=$foreign
	local -n table=${ROW_TABLE:-ROWS}
	table+=("| $scenario | $server | $(printf '%.0f' "$rps") | $(fmt_ms "$p50") | $(fmt_ms "$p99") | $errors |")
	MEM[$key]=$rss
	log "$scenario / $server: $rps req/s, p50 $(fmt_ms "$p50"), p99 $(fmt_ms "$p99"), errors $errors, $reqs requests"
}

# log_problems SCENARIO SERVER: warnings and errors the servers logged so far become notes (in
# the array named by NOTE_TABLE, default NOTES).
log_problems() {
	local f n pattern files
	local -n problem_notes=${NOTE_TABLE:-NOTES}
	if [[ $2 == askrd* ]]; then
		files=("$TMP/askrd-$1.log")
	else
		files=("$TMP/$1-fpm"/nginx-error.log "$TMP/$1-fpm"/php-fpm-error.log "$TMP/$1-fpm"/php-fpm-php.log)
	fi
	for f in "${files[@]}"; do
		[[ -f $f ]] || continue
		case $f in
		*/askrd-*) pattern='level=(WARN|ERROR)' ;;
		*nginx-error.log) pattern='\[(warn|error|crit|alert|emerg)\]' ;;
		*) pattern='WARNING|ERROR|Warning|Fatal|Error' ;;
		esac
		# (--paranoid's own startup warning is what was asked for)
		n=$(grep -E "$pattern" "$f" | grep -cv 'msg="paranoid mode on' || true)
		if ((n > 0)); then
			log "$1 / $2: $n warning/error lines in ${f##*/}:"
			grep -E "$pattern" "$f" | grep -v 'msg="paranoid mode on' | sort | uniq -c | sort -rn | head -n 5 >&2
			problem_notes+=("- **$1 / $2**: $n warning/error lines in its log ${f##*/} (kept in bench/out/), e.g. \`$(grep -E "$pattern" "$f" | grep -m1 -v 'msg="paranoid mode on' | cut -c1-200)\`")
		fi
	done
}

# ratio_note SCENARIO [goal]: the askr/php-fpm line under the table; with "goal", whether askrd's
# throughput is at least php-fpm's (the goal of per-request mode), and errors on either side.
ratio_note() {
	local s=$1 goal=${2:-} a="$1/askrd" f="$1/nginx + php-fpm"
	[[ -n ${RPS[$a]:-} && -n ${RPS[$f]:-} ]] || return 0
	NOTES+=("$(awk -v s="$s" -v ar="${RPS[$a]}" -v fr="${RPS[$f]}" -v a5="${P50[$a]}" -v f5="${P50[$f]}" \
		-v a9="${P99[$a]}" -v f9="${P99[$f]}" -v am="${MEM[$a]}" -v fm="${MEM[$f]}" -v goal="$goal" \
		-v ae="${ERRS[$a]}" -v fe="${ERRS[$f]}" 'BEGIN {
			r = (fr > 0) ? sprintf("%.2fx", ar / fr) : "n/a"
			l5 = (f5 > 0) ? sprintf("%.2fx", a5 / f5) : "n/a"
			l9 = (f9 > 0) ? sprintf("%.2fx", a9 / f9) : "n/a"
			printf "- **%s** askr/php-fpm: throughput %s, p50 latency %s, p99 latency %s (RSS after the run: askrd + workers %s MiB, nginx + php-fpm %s MiB)", s, r, l5, l9, am, fm
			if (goal != "") {
				met = (fr > 0 && ar >= fr && ae == "0") ? "met" : "**not met**"
				printf "; goal: at least equal to php-fpm (throughput >= 1.00x, no errors): %s", met
				if (ae != "0" || fe != "0") printf " (errors: askrd %s, php-fpm %s)", ae, fe
			}
		}')")
}

# ---------------------------------------------------------------------------------------------
# scenarios

scenario_hello() {
	local port docroot=$TMP/hello-public
	# The php-fpm twin of examples/hello-worker.php: same headers and text, once per request
	# (there is no state across requests, so "served" is always 1).
	mkdir -p "$docroot"
	cat >"$docroot/index.php" <<-'EOF'
		<?php
		header('Content-Type: text/plain; charset=utf-8');
		echo "Hello from askr worker ", getmypid(), "\n";
		echo "method=", $_SERVER['REQUEST_METHOD'], " uri=", $_SERVER['REQUEST_URI'], " served=", 1, "\n";
	EOF
	cat >"$docroot/opcache.php" <<-'EOF'
		<?php $s = opcache_get_status(false); echo ($s && $s['opcache_enabled']) ? "on" : "off";
	EOF

	port=$(free_port)
	start_askrd hello "$port" "$REPO/examples/hello/public" "$REPO/examples/hello-worker.php"
	check_response "http://127.0.0.1:$port/" "hello / askrd"
	measure hello askrd "http://127.0.0.1:$port/"
	stop_all

	port=$(free_port)
	start_fpm_nginx hello "$port" "$docroot"
	check_response "http://127.0.0.1:$port/" "hello / nginx + php-fpm"
	[[ $(curl -s --max-time 5 "http://127.0.0.1:$port/opcache.php") == on ]] ||
		die "opcache is not enabled in the php-fpm pool"
	measure hello "nginx + php-fpm" "http://127.0.0.1:$port/"
	stop_all
	ratio_note hello
}

scenario_laravel() {
	local port missing=() cookie
	[[ -f $LARAVEL_BASE/public/index.php ]] || missing+=("${LARAVEL_BASE#"$REPO"/}/public/index.php")
	[[ -f $LARAVEL_WORKER ]] || missing+=("${LARAVEL_WORKER#"$REPO"/}")
	if ((${#missing[@]} > 0)); then
		log "SKIPPING laravel: ${missing[*]} not found (the Laravel example is not in this checkout yet)"
		NOTES+=("- **laravel**: skipped, ${missing[*]} not found in this checkout.")
		return 0
	fi
	# "/" runs the web middleware group, which starts a (file) session. wrk sends no cookies of
	# its own, so without help every request would write a new session file under
	# examples/laravel/storage. Like a returning visitor, every wrk request sends the cookies of
	# one first visit instead: one session file per server, read and written on each request.

	port=$(free_port)
	start_askrd laravel "$port" "$LARAVEL_BASE/public" "$LARAVEL_WORKER" "ASKR_APP_BASE=$LARAVEL_BASE"
	cookie=$(visitor_cookie "http://127.0.0.1:$port/")
	check_response "http://127.0.0.1:$port/" "laravel / askrd" -H "Cookie: $cookie"
	SESSION_FILES=$(count_sessions)
	measure laravel askrd "http://127.0.0.1:$port/" -H "Cookie: $cookie"
	session_check laravel askrd
	stop_all

	port=$(free_port)
	start_fpm_nginx laravel "$port" "$LARAVEL_BASE/public" "ASKR_APP_BASE=$LARAVEL_BASE"
	cookie=$(visitor_cookie "http://127.0.0.1:$port/")
	check_response "http://127.0.0.1:$port/" "laravel / nginx + php-fpm" -H "Cookie: $cookie"
	SESSION_FILES=$(count_sessions)
	measure laravel "nginx + php-fpm" "http://127.0.0.1:$port/" -H "Cookie: $cookie"
	session_check laravel "nginx + php-fpm"
	stop_all
	ratio_note laravel
}

# scenario_laravel_workers: the three Laravel workers (see the header) on the example's "/", in
# LW_ROUNDS rounds whose order rotates; each worker's row is its median round by rps.
scenario_laravel_workers() {
	have_laravel laravel-workers || return 0
	local before=$TMP/laravel-worker-before.php
	if ! git -C "$REPO" show "$LARAVEL_BEFORE:examples/laravel-worker.php" >"$before" 2>/dev/null; then
		log "SKIPPING laravel-workers: git show $LARAVEL_BEFORE:examples/laravel-worker.php failed (not a git checkout?)"
		LW_NOTES+=("- **laravel-workers**: skipped, the worker of commit $LARAVEL_BEFORE could not be read with git.")
		return 0
	fi
	local names=(before generic paranoid) r i n name port cookie
	declare -A lw_script=([before]=$before [generic]=$LARAVEL_WORKER [paranoid]=$LARAVEL_WORKER)
	declare -A lw_flags=([before]="" [generic]="" [paranoid]=--paranoid)
	for ((r = 1; r <= LW_ROUNDS; r++)); do
		for ((i = 0; i < 3; i++)); do
			name=${names[$(((i + r - 1) % 3))]}
			n="laravel-$name-r$r"
			port=$(free_port)
			# shellcheck disable=SC2086 # flags: empty or one word
			start_askrd "$n" "$port" "$LARAVEL_BASE/public" "${lw_script[$name]}" "ASKR_APP_BASE=$LARAVEL_BASE" -- ${lw_flags[$name]}
			cookie=$(visitor_cookie "http://127.0.0.1:$port/")
			check_response "http://127.0.0.1:$port/" "$n / askrd" -H "Cookie: $cookie"
			ROW_TABLE=DISCARD NOTE_TABLE=LW_NOTES measure "$n" askrd "http://127.0.0.1:$port/" -H "Cookie: $cookie"
			stop_all
		done
	done
	local sorted mid list k
	for name in "${names[@]}"; do
		mapfile -t sorted < <(for ((r = 1; r <= LW_ROUNDS; r++)); do
			k="laravel-$name-r$r/askrd"
			[[ -n ${RPS[$k]:-} ]] && echo "${RPS[$k]} $k"
		done | sort -g)
		((${#sorted[@]} > 0)) || continue
		mid=${sorted[$(((${#sorted[@]} - 1) / 2))]#* }
		list=$(for ((r = 1; r <= LW_ROUNDS; r++)); do printf '%.0f ' "${RPS[laravel-$name-r$r/askrd]:-0}"; done)
		RPS[lw/$name]=${RPS[$mid]}
		LW_ROWS+=("| $name | $(printf '%.0f' "${RPS[$mid]}") | $(fmt_ms "${P50[$mid]}") | $(fmt_ms "${P99[$mid]}") | ${ERRS[$mid]} | ${list% } |")
	done
	local cost
	if [[ -n ${RPS[lw/before]:-} && -n ${RPS[lw/generic]:-} ]]; then
		cost=$(awk -v a="${RPS[lw/generic]}" -v b="${RPS[lw/before]}" 'BEGIN { printf "%.1f", (1 - a / b) * 100 }')
		LW_NOTES+=("- the generic worker's resets cost $cost % of the requests/s of the example's earlier worker (goal: under $GOAL_RESET_COST_PCT %): $(awk -v c="$cost" -v g="$GOAL_RESET_COST_PCT" 'BEGIN { print (c < g) ? "met" : "**not met**" }')")
	fi
	if [[ -n ${RPS[lw/generic]:-} && -n ${RPS[lw/paranoid]:-} ]]; then
		cost=$(awk -v a="${RPS[lw/paranoid]}" -v b="${RPS[lw/generic]}" 'BEGIN { printf "%.1f", (1 - a / b) * 100 }')
		LW_NOTES+=("- the state-bleed detector (\`--paranoid\`) costs $cost % of the generic worker's requests/s")
	fi
}

# write_lw_report: the laravel-workers section, if it ran.
write_lw_report() {
	((${#LW_ROWS[@]} + ${#LW_NOTES[@]} > 0)) || return 0
	local row
	echo
	echo "## Laravel workers: the generic worker's resets and the state-bleed detector (askrd only)"
	echo
	echo "The Laravel example's GET / (Blade page, returning visitor's session), \`--workers $WORKERS\`, \`wrk -t$THREADS -c$CONNS -d$DURATION\` after a $WARMUP warm-up, $LW_ROUNDS rounds with the order rotated; each row is that worker's median round. before: examples/laravel-worker.php of commit $LARAVEL_BEFORE (resets written for that one app); generic: today's examples/laravel-worker.php (= /usr/share/askr/workers/laravel.php, every reset of docs/laravel.md); paranoid: generic with \`--paranoid\`."
	echo
	echo "| worker | rps | p50 | p99 | errors | rps of each round |"
	echo "|---|---:|---:|---:|---:|---|"
	for row in "${LW_ROWS[@]}"; do echo "$row"; done
	echo
	for row in "${LW_NOTES[@]}"; do echo "$row"; done
}

# visitor_cookie URL: the Cookie header value a browser would send after one visit to URL.
visitor_cookie() {
	local jar=$TMP/cookies.txt
	rm -f "$jar"
	curl -s -o /dev/null --max-time 30 -c "$jar" "$1" || die "GET $1 failed"
	# Netscape cookie jar: name in column 6, value in column 7; "#HttpOnly_" lines are cookies too
	awk -F'\t' 'NF >= 7 && ($1 !~ /^#/ || $1 ~ /^#HttpOnly_/) { printf "%s%s=%s", sep, $6, $7; sep = "; " }' "$jar"
}

count_sessions() { find "$LARAVEL_BASE/storage/framework/sessions" -type f ! -name '.gitignore' 2>/dev/null | wc -l; }

# session_check SCENARIO SERVER: the load reused the visitor's session, or a note says it did not.
session_check() {
	local created=$(($(count_sessions) - SESSION_FILES))
	if ((created > 0)); then
		log "$1 / $2: WARNING: $created new session files during the load (the session cookie was not honoured)"
		local -n session_notes=${NOTE_TABLE:-NOTES}
		session_notes+=("- **$1 / $2**: $created new session files appeared under storage/framework/sessions during the load: the visitor's session cookie was not reused.")
	fi
}

# ---------------------------------------------------------------------------------------------
# per-request ("classic") PHP: askrd without a worker script vs nginx + php-fpm

# opcache_probe DOCROOT: DOCROOT/opcache.php prints "on" when opcache is enabled for the request.
opcache_probe() {
	cat >"$1/opcache.php" <<-'EOF'
		<?php $s = opcache_get_status(false); echo ($s && $s['opcache_enabled']) ? "on" : "off";
	EOF
}

# need_opcache URL LABEL: URL (an opcache_probe) must say "on".
need_opcache() {
	local got
	got=$(curl -s --max-time 10 "$1" || true)
	[[ $got == on ]] || die "$2: opcache is not enabled ($1 answered '${got:0:100}')"
}

scenario_classic_hello() {
	local docroot=$TMP/classic-hello-public
	# One file both servers run afresh for every request: no framework, so what is measured is
	# the server (HTTP, FastCGI, PHP's request startup and shutdown).
	mkdir -p "$docroot"
	cat >"$docroot/index.php" <<-'EOF'
		<?php
		header('Content-Type: text/plain; charset=utf-8');
		echo "Hello from PHP ", getmypid(), "\n";
		echo "method=", $_SERVER['REQUEST_METHOD'], " uri=", $_SERVER['REQUEST_URI'], "\n";
	EOF
	opcache_probe "$docroot"
	local NGINX_ROUTING=classic
	classic_rounds classic-hello classic_hello_askrd classic_hello_fpm "$docroot"
	ratio_note classic-hello goal
}

# classic_hello_askrd NAME DOCROOT, classic_hello_fpm NAME DOCROOT: one measured run of each server.
classic_hello_askrd() {
	local port
	port=$(free_port)
	start_askrd_classic "$1" "$port" "$2"
	check_response "http://127.0.0.1:$port/" "$1 / askrd"
	need_opcache "http://127.0.0.1:$port/opcache.php" "$1 / askrd"
	measure "$1" askrd "http://127.0.0.1:$port/"
	stop_all
}
classic_hello_fpm() {
	local port
	port=$(free_port)
	start_fpm_nginx "$1" "$port" "$2"
	check_response "http://127.0.0.1:$port/" "$1 / nginx + php-fpm"
	need_opcache "http://127.0.0.1:$port/opcache.php" "$1 / nginx + php-fpm"
	measure "$1" "nginx + php-fpm" "http://127.0.0.1:$port/"
	stop_all
}

# classic_run FN NAME SERVER [ARGS...]: FN NAME ARGS... (one measured run of SERVER), repeated up to
# CLASSIC_RETRIES times while other processes use 10% or more of the CPUs during it; the repeated
# runs' CPU figures move from FOREIGN to REPEATED.
classic_run() {
	local fn=$1 name=$2 server=$3 try
	shift 3
	for ((try = 0; ; try++)); do
		ROW_TABLE=DISCARD "$fn" "$name" "$@"
		((${FPCT[$name/$server]:-0} >= 10 && try < CLASSIC_RETRIES)) || break
		log "$name / $server: disturbed by other processes (${FPCT[$name/$server]}% of the CPUs), measuring again"
		REPEATED+=("$name / $server ${FPCT[$name/$server]}%")
		unset 'FOREIGN[-1]'
	done
}
REPEATED=()

# classic_rounds SCENARIO ASKRD_FN FPM_FN [ARGS...]: CLASSIC_ROUNDS rounds of one measured run per
# server (FN SCENARIO-rN ARGS...), askrd first in odd rounds and php-fpm first in even ones, so a
# machine that gets busier or quieter during the scenario does not favour one side. Each server's
# table row is its median round by rps (with that round's p50 and p99), leaving out the rounds in
# which other processes used 10% or more of the CPUs unless all of them were disturbed; errors are
# summed over all rounds; a note lists every round's rps. The per-round results stay in RPS etc. as
# SCENARIO-rN/SERVER.
classic_rounds() {
	local s=$1 fa=$2 ff=$3 r
	shift 3
	REPEATED=()
	for ((r = 1; r <= CLASSIC_ROUNDS; r++)); do
		if ((r % 2 == 1)); then
			classic_run "$fa" "$s-r$r" askrd "$@"
			classic_run "$ff" "$s-r$r" "nginx + php-fpm" "$@"
		else
			classic_run "$ff" "$s-r$r" "nginx + php-fpm" "$@"
			classic_run "$fa" "$s-r$r" askrd "$@"
		fi
	done
	if ((${#REPEATED[@]} > 0)); then
		NOTES+=("- **$s**: runs measured again because other processes used 10% or more of the CPUs during them: $(printf '%s; ' "${REPEATED[@]}" | sed 's/; $//')")
	fi
	local server key k mid errn exited list all="" sorted=() clean
	for server in askrd "nginx + php-fpm"; do
		for clean in 1 0; do # undisturbed rounds only, else all of them
			mapfile -t sorted < <(for ((r = 1; r <= CLASSIC_ROUNDS; r++)); do
				key="$s-r$r/$server"
				[[ -n ${RPS[$key]:-} ]] && ((clean == 0 || ${FPCT[$key]:-0} < 10)) && echo "${RPS[$key]} $key"
			done | sort -g)
			((${#sorted[@]} == 0)) || break
		done
		((${#sorted[@]} > 0)) || continue
		mid=${sorted[$(((${#sorted[@]} - 1) / 2))]#* }
		errn=0 exited="" list=""
		for ((r = 1; r <= CLASSIC_ROUNDS; r++)); do
			key="$s-r$r/$server"
			errn=$((errn + ${ERRN[$key]:-0}))
			[[ ${ERRS[$key]:-} != *exited* ]] || exited="; server exited during a run"
			list+=", $(printf '%.0f' "${RPS[$key]}")"
			((${FPCT[$key]:-0} < 10)) || list+=" (disturbed: ${FPCT[$key]}%$( ((clean == 0)) || echo ", left out"))"
		done
		k="$s/$server"
		RPS[$k]=${RPS[$mid]} P50[$k]=${P50[$mid]} P99[$k]=${P99[$mid]} MEM[$k]=${MEM[$mid]} ERRS[$k]=$errn$exited
		ROWS+=("| $s | $server | $(printf '%.0f' "${RPS[$k]}") | $(fmt_ms "${P50[$k]}") | $(fmt_ms "${P99[$k]}") | ${ERRS[$k]} |")
		all+="; $server ${list#, }"
	done
	NOTES+=("- **$s**: rps of each round (askrd first in odd rounds, php-fpm first in even ones; the table shows each server's median round, rounds in which other processes used 10% or more of the CPUs left out when there are others): ${all#; }")
}

# Debian's WordPress (the wordpress package): the code in WP_ROOT, themes/plugins/uploads in
# WP_CONTENT (served as /wp-content/), one config file per Host in WP_CONFIG_DIR.
WP_ROOT=/usr/share/wordpress
WP_CONTENT=/var/lib/wordpress/wp-content
WP_CONFIG_DIR=/etc/wordpress
WP_HOST=""      # the site's host name (unique, resolves nowhere; sent as the Host header)
MARIADB_SOCK="" # the private MariaDB's socket
declare -A WP_BYTES # server -> size of the front page it sent

# wp_missing: prints what classic-wordpress lacks (nothing when it can run).
wp_missing() {
	local f missing=()
	for f in "$WP_ROOT/wp-config.php" "$WP_CONTENT/themes/twentytwentythree/theme.json" \
		/usr/sbin/mariadbd /usr/bin/mariadb-install-db /usr/bin/mariadb /etc/php/8.2/mods-available/mysqli.ini; do
		[[ -e $f ]] || missing+=("$f")
	done
	((${#missing[@]} == 0)) || {
		echo "${missing[*]} (make deps-wordpress installs wordpress, wordpress-theme-twentytwentythree, mariadb-server, php8.2-mysql)"
		return
	}
	[[ -w $WP_CONFIG_DIR ]] || echo "$WP_CONFIG_DIR is not writable (the site config goes there: run as root)"
}

wp_version() { sed -n "s/^\$wp_version = '\(.*\)';/\1/p" "$WP_ROOT/wp-includes/version.php" 2>/dev/null; }

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

mariadb_sql() { timeout 30 mariadb --no-defaults --socket="$MARIADB_SOCK" -u root -e "$1"; }

# start_mariadb DIR: a private MariaDB with its data in DIR/data, listening only on DIR/mysqld.sock
# (no TCP); root@localhost authenticates by the socket's peer. Sets MARIADB_SOCK and MARIADB_PID.
start_mariadb() {
	local dir=$1 as_root=() deadline
	mkdir -p "$dir"
	((EUID != 0)) || as_root=(--user=root) # mariadbd refuses to run as root without it
	log "classic-wordpress: private MariaDB in $dir"
	timeout 120 mariadb-install-db --no-defaults --datadir="$dir/data" --skip-test-db \
		--auth-root-authentication-method=socket "${as_root[@]}" >"$dir/install-db.log" 2>&1 ||
		{ tail -n 30 "$dir/install-db.log" >&2; die "mariadb-install-db failed (log above)"; }
	MARIADB_SOCK=$dir/mysqld.sock
	/usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --socket="$MARIADB_SOCK" --skip-networking \
		--pid-file="$dir/mysqld.pid" --log-error="$dir/mysqld.log" --innodb-buffer-pool-size=64M \
		--innodb-use-native-aio=0 "${as_root[@]}" >"$dir/mariadbd.out" 2>&1 &
	MARIADB_PID=$!
	HELPER_PIDS+=("$MARIADB_PID")
	deadline=$((SECONDS + 60))
	until [[ -S $MARIADB_SOCK ]] && mariadb_sql "SELECT 1" >/dev/null 2>&1; do
		kill -0 "$MARIADB_PID" 2>/dev/null || { tail -n 30 "$dir/mysqld.log" >&2; die "mariadbd exited (log above)"; }
		((SECONDS < deadline)) || die "mariadbd not answering on $MARIADB_SOCK after 60s"
		sleep 0.2
	done
}

# wp_site: a private MariaDB with an empty wordpress database, and WP_CONFIG_DIR/config-WP_HOST.php
# pointing at it (removed on exit). The site is not installed yet (wp_install).
wp_site() {
	local password file k keys=""
	start_mariadb "$TMP/mariadb"
	password=$(rand_hex 12)
	mariadb_sql "CREATE DATABASE wordpress CHARACTER SET utf8mb4;
		CREATE USER 'wordpress'@'localhost' IDENTIFIED BY '$password';
		GRANT ALL ON wordpress.* TO 'wordpress'@'localhost';" || die "creating the wordpress database failed"
	WP_HOST=askr-bench-$$-$(rand_hex 4).local
	file=$WP_CONFIG_DIR/config-$WP_HOST.php
	(umask 027 && set -o noclobber && : >"$file") || die "cannot create $file"
	WP_CONFIG=$file
	for k in AUTH_KEY SECURE_AUTH_KEY LOGGED_IN_KEY NONCE_KEY AUTH_SALT SECURE_AUTH_SALT LOGGED_IN_SALT NONCE_SALT; do
		keys+="define('$k', '$(rand_hex 32)');"$'\n'
	done
	cat >"$file" <<-EOF
		<?php
		// Written by askr's bench/run.sh (pid $$) for its classic-wordpress scenario; removed when it
		// ends. Debian's $WP_ROOT/wp-config.php loads it for Host: $WP_HOST.
		define('DB_NAME', 'wordpress');
		define('DB_USER', 'wordpress');
		define('DB_PASSWORD', '$password');
		define('DB_HOST', 'localhost:$MARIADB_SOCK'); // host:socket, the bench's private MariaDB
		define('DB_CHARSET', 'utf8mb4');
		define('DB_COLLATE', '');
		$keys
		// No HTTP from WordPress (update checks, the install's loopback probes, cron): the host name
		// resolves nowhere and the bench must not depend on the network.
		define('WP_HTTP_BLOCK_EXTERNAL', true);
		\$GLOBALS['wp_filter']['block_local_requests'][10][] = array('function' => '__return_true', 'accepted_args' => 1);
		define('DISABLE_WP_CRON', true);
		define('AUTOMATIC_UPDATER_DISABLED', true);
	EOF
}

# wp_install BASE_URL: the install wizard, once, as a browser would (with the site's Host).
wp_install() {
	local base=$1 code password
	password=Pw-$(rand_hex 12)
	code=$(curl -s -o "$TMP/body" -w '%{http_code}' --max-time 60 -H "Host: $WP_HOST" "$base/wp-admin/install.php") || true
	if [[ $code != 200 ]] || ! grep -q 'name="weblog_title"' "$TMP/body"; then
		head -c 2000 "$TMP/body" >&2
		die "classic-wordpress: GET /wp-admin/install.php answered $code, not the wizard"
	fi
	log "classic-wordpress: installing the site $WP_HOST through $base"
	code=$(curl -s -o "$TMP/body" -w '%{http_code}' --max-time 120 -H "Host: $WP_HOST" \
		--data-urlencode "weblog_title=askr bench" --data-urlencode "user_name=askr" \
		--data-urlencode "admin_password=$password" --data-urlencode "admin_password2=$password" \
		--data-urlencode "admin_email=askr-bench@example.org" --data-urlencode "blog_public=0" \
		--data-urlencode "language=" --data-urlencode "Submit=Install WordPress" \
		"$base/wp-admin/install.php?step=2") || true
	if [[ $code != 200 ]] || ! grep -q '<h1>Success!</h1>' "$TMP/body"; then
		head -c 2000 "$TMP/body" >&2
		die "classic-wordpress: the install wizard answered $code without Success"
	fi
}

# wp_check BASE_URL NAME SERVER: the front page is a 200 with the install's post, and /wp-content/
# (the alias) serves the theme's files.
wp_check() {
	local base=$1 label="$2 / $3"
	check_response "$base/" "$label" -H "Host: $WP_HOST"
	grep -q 'Hello world!' "$TMP/body" ||
		{ head -c 2000 "$TMP/body" >&2; die "$label: the front page shows no 'Hello world!' post"; }
	WP_BYTES[$3]=$(wc -c <"$TMP/body")
	cp "$TMP/body" "$OUTDIR/wordpress-front-page-${3//[^a-z]/}.html"
	check_response "$base/wp-content/themes/twentytwentythree/style.css" "$label" -H "Host: $WP_HOST"
}

# classic_wordpress_askrd NAME, classic_wordpress_fpm NAME: one measured run of each server on the
# installed site (the caller sets ASKRD_CONFIG, NGINX_* and CONNS).
classic_wordpress_askrd() {
	local port
	port=$(free_port)
	start_askrd_classic "$1" "$port" "$WP_ROOT"
	wp_check "http://127.0.0.1:$port" "$1" askrd
	measure "$1" askrd "http://127.0.0.1:$port/" -H "Host: $WP_HOST" --timeout "$WP_TIMEOUT"
	stop_all
}
classic_wordpress_fpm() {
	local port
	port=$(free_port)
	start_fpm_nginx "$1" "$port" "$WP_ROOT"
	wp_check "http://127.0.0.1:$port" "$1" "nginx + php-fpm"
	measure "$1" "nginx + php-fpm" "http://127.0.0.1:$port/" -H "Host: $WP_HOST" --timeout "$WP_TIMEOUT"
	stop_all
}

scenario_classic_wordpress() {
	local port missing cfg
	missing=$(wp_missing)
	if [[ -n $missing ]]; then
		log "SKIPPING classic-wordpress: $missing"
		NOTES+=("- **classic-wordpress**: skipped: $missing.")
		return 0
	fi
	wp_site
	# Both servers as Debian's README says: the document root WP_ROOT, /wp-content/ from WP_CONTENT
	# (static files only). Readiness is polled on a static file, so no PHP runs for a foreign Host.
	# server_name is the site's, as in a real vhost: WordPress compares asset hosts with SERVER_NAME
	# (askrd passes the request's host there), so the pages are the same byte for byte.
	local NGINX_ROUTING=classic NGINX_ALIASES="/wp-content/=$WP_CONTENT/" READY_URL_PATH=/readme.html
	local NGINX_SERVER_NAME=$WP_HOST
	cfg=$TMP/askr-wordpress.toml
	printf '[server]\nalias = { "/wp-content/" = "%s" }\n' "$WP_CONTENT" >"$cfg"
	local ASKRD_CONFIG=$cfg

	# the install wizard runs once, behind the reference server
	port=$(free_port)
	start_fpm_nginx classic-wordpress-install "$port" "$WP_ROOT"
	wp_install "http://127.0.0.1:$port"
	stop_all

	CONNS=$WP_CONNS classic_rounds classic-wordpress classic_wordpress_askrd classic_wordpress_fpm
	ratio_note classic-wordpress goal
	NOTES+=("- **classic-wordpress**: the front page as checked before the runs: ${WP_BYTES[askrd]} bytes from askrd, ${WP_BYTES[nginx + php-fpm]} from nginx + php-fpm$([[ ${WP_BYTES[askrd]} == "${WP_BYTES[nginx + php-fpm]}" ]] || echo " (**they differ**)") (both pages are kept in bench/out/).")

	stop_pid "$MARIADB_PID"
	HELPER_PIDS=()
	rm -f "$WP_CONFIG"
	WP_CONFIG=""
}

# ---------------------------------------------------------------------------------------------
# CoW template mode (askrd --cow) vs askrd's normal worker mode, on the Laravel example

# have_laravel SCENARIO: true when the Laravel example is in the checkout; otherwise a skip note.
have_laravel() {
	local missing=()
	[[ -f $LARAVEL_BASE/public/index.php ]] || missing+=("${LARAVEL_BASE#"$REPO"/}/public/index.php")
	[[ -f $LARAVEL_WORKER ]] || missing+=("${LARAVEL_WORKER#"$REPO"/}")
	((${#missing[@]} == 0)) && return 0
	log "SKIPPING $1: ${missing[*]} not found"
	COW_SKIPPED+=("- **$1**: skipped, ${missing[*]} not found in this checkout.")
	return 1
}
COW_SKIPPED=()

# build_cowbench: bench/cowbench.go (respawn timing, a counted load, PSS) into the temp dir, once.
build_cowbench() {
	[[ -z $COWBENCH ]] || return 0
	[[ -x $GO ]] || command -v "$GO" >/dev/null || die "go not found (needed to build bench/cowbench.go); set GO="
	log "building bench/cowbench.go"
	(cd "$REPO" && "$GO" build -o "$TMP/cowbench" ./bench/cowbench.go) || die "go build bench/cowbench.go failed"
	COWBENCH=$TMP/cowbench
}

# cow_flags MODE: the serve flag of a mode ("cow" → --cow, "normal" → nothing).
cow_flags() { if [[ $1 == cow ]]; then echo --cow; fi; }
mode_label() { [[ $1 == cow ]] && echo "askrd --cow (CoW template)" || echo "askrd (normal worker mode)"; }

# read_kv ARRAY PREFIX FILE: "key value" lines of FILE into ARRAY[PREFIX/key].
read_kv() {
	local -n kv_arr=$1
	local k v
	while read -r k v; do
		# shellcheck disable=SC2034 # kv_arr is a nameref: this writes the caller's array
		[[ -n $k ]] && kv_arr["$2/$k"]=$v
	done <"$3"
}

# askrd_alive SCENARIO: the server we started is still running, or die with its log.
askrd_alive() {
	kill -0 "$SERVER_PID" 2>/dev/null && return 0
	tail -n 30 "$TMP/askrd-$1.log" >&2 || true
	die "$1: askrd (pid $SERVER_PID) exited during the run; log above"
}

# cow_foreign LABEL BEFORE AFTER: records the CPU other processes used between two cpu_snapshots.
cow_foreign() {
	local f
	f=$(foreign_cpu_pct "$2" "$3")
	COW_FOREIGN+=("$1 $f%")
	if ((f >= 10)); then
		log "$1: WARNING: other processes used $f% of the CPUs during the run"
	fi
}

# ratio A B: A/B with 2 decimals, or n/a.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a + 0) printf "%.2f", a / b; else print "n/a" }'; }
kb_mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

scenario_cow_respawn() {
	have_laravel cow-respawn || return 0
	build_cowbench
	local mode port name url errs
	for mode in cow normal; do
		name=respawn-$mode
		port=$(free_port)
		# shellcheck disable=SC2046 # cow_flags is one word or none
		start_askrd "$name" "$port" "$LARAVEL_BASE/public" "$LARAVEL_WORKER" "ASKR_APP_BASE=$LARAVEL_BASE" \
			-- --workers 1 $(cow_flags "$mode")
		url="http://127.0.0.1:$port/api/json"
		check_response "$url" "$name / askrd"
		log "$name: $RESPAWN_N x (SIGKILL the worker, poll $url until a 200 from a new pid)"
		local before after
		cpu_snapshot before
		timeout --kill-after=5 $((RESPAWN_N * 12 + 30)) \
			"$COWBENCH" respawn -url "$url" -askrd "$SERVER_PID" -n "$RESPAWN_N" >"$OUTDIR/respawn-$mode.txt" ||
			{ cat "$OUTDIR/respawn-$mode.txt" >&2; die "$name: cowbench respawn failed"; }
		cpu_snapshot after
		cow_foreign "$name" "$before" "$after"
		askrd_alive "$name"
		read_kv RESP "$mode" "$OUTDIR/respawn-$mode.txt"
		errs=$(grep -c 'level=ERROR msg="worker failed"' "$TMP/askrd-$name.log" || true)
		RESP[$mode/logged_502]=$errs
		log "$name: p50 $(fmt_ms "${RESP[$mode/p50_ms]}"), p99 $(fmt_ms "${RESP[$mode/p99_ms]}"), ${RESP[$mode/samples]}/$RESPAWN_N respawns seen, ${RESP[$mode/non200]} non-200 answers while respawning"
		stop_all
	done
	local m
	for m in cow normal; do
		COW_RESPAWN_ROWS+=("| $(mode_label "$m") | $(fmt_ms "${RESP[$m/p50_ms]}") | $(fmt_ms "${RESP[$m/p99_ms]}") | $(fmt_ms "${RESP[$m/min_ms]}") | $(fmt_ms "${RESP[$m/max_ms]}") | ${RESP[$m/samples]}/$RESPAWN_N | ${RESP[$m/non200]} |")
	done
	local s50 s99 met
	s50=$(ratio "${RESP[normal/p50_ms]}" "${RESP[cow/p50_ms]}")
	s99=$(ratio "${RESP[normal/p99_ms]}" "${RESP[cow/p99_ms]}")
	met=$(awk -v p="${RESP[cow/p50_ms]}" -v r="$s50" -v gp="$GOAL_RESPAWN_P50_MS" -v gr="$GOAL_RESPAWN_SPEEDUP" 'BEGIN {
		a = (p == p + 0 && p <= gp) ? "met" : "**not met**"
		b = (r == r + 0 && r >= gr) ? "met" : "**not met**"
		printf "CoW p50 <= %d ms: %s (%.2f ms); CoW >= %dx faster than normal mode at p50: %s (%sx)", gp, a, p, gr, b, r }')
	COW_RESPAWN_NOTES+=("- CoW is **${s50}x** faster than normal mode at p50 and **${s99}x** at p99.")
	COW_RESPAWN_NOTES+=("- Goals: $met.")
	COW_RESPAWN_NOTES+=("- p99 is the nearest-rank percentile of $RESPAWN_N samples, i.e. the slowest respawn when there are fewer than 100. All samples (ms) are in bench/out/respawn-cow.txt and respawn-normal.txt.")
	if [[ "${RESP[cow/logged_502]}" != 0 || "${RESP[normal/logged_502]}" != 0 ]]; then
		COW_RESPAWN_NOTES+=("- Some requests reached a dead worker and got a **502** (\`worker died during the request\`: ${RESP[cow/logged_502]} in CoW mode, ${RESP[normal/logged_502]} in normal mode); the poller goes straight on, so they are part of the latency.")
	else
		COW_RESPAWN_NOTES+=("- No request failed: one that reached the dead worker was sent to another (askrd retries a GET whose worker died before answering).")
	fi
}

scenario_cow_memory() {
	have_laravel cow-memory || return 0
	build_cowbench
	local mode port name url cookie total
	total=$((MEM_WORKERS * MEM_REQUESTS))
	for mode in cow normal; do
		name=memory-$mode
		port=$(free_port)
		# shellcheck disable=SC2046
		start_askrd "$name" "$port" "$LARAVEL_BASE/public" "$LARAVEL_WORKER" "ASKR_APP_BASE=$LARAVEL_BASE" \
			-- --workers "$MEM_WORKERS" $(cow_flags "$mode")
		url="http://127.0.0.1:$port/"
		# as in the laravel scenario: a returning visitor, so no new session file per request
		cookie=$(visitor_cookie "$url")
		check_response "$url" "$name / askrd" -H "Cookie: $cookie"
		SESSION_FILES=$(count_sessions)
		log "$name: $total GETs of / ($MEM_REQUESTS per worker, $MEM_CONNS connections, at most $MEM_MAX)"
		local before after
		cpu_snapshot before
		timeout --kill-after=5 $(($(seconds "$MEM_MAX") + 30)) \
			"$COWBENCH" load -url "$url" -n "$total" -c "$MEM_CONNS" -H "Cookie: $cookie" -max "$MEM_MAX" \
			>"$OUTDIR/memory-load-$mode.txt" || { cat "$OUTDIR/memory-load-$mode.txt" >&2; die "$name: load failed"; }
		cpu_snapshot after
		cow_foreign "$name" "$before" "$after"
		askrd_alive "$name"
		"$COWBENCH" mem -askrd "$SERVER_PID" >"$OUTDIR/memory-$mode.txt" || die "$name: cowbench mem failed"
		read_kv LOAD "$mode" "$OUTDIR/memory-load-$mode.txt"
		read_kv MEMR "$mode" "$OUTDIR/memory-$mode.txt"
		log "$name: ${LOAD[$mode/requests]} requests in ${LOAD[$mode/seconds]}s (${LOAD[$mode/non2xx]} non-2xx/3xx, ${LOAD[$mode/errors]} errors); php-cgi PSS $(kb_mib "${MEMR[$mode/total_pss_kb]}") in ${MEMR[$mode/php_procs]} processes; askrd RSS $(kb_mib "${MEMR[$mode/askrd_rss_kb]}")"
		NOTE_TABLE=COW_MEM_NOTES session_check "$name" askrd
		NOTE_TABLE=COW_MEM_NOTES log_problems "$name" askrd
		local want_t=0
		[[ $mode == cow ]] && want_t=1
		if [[ ${MEMR[$mode/workers]} != "$MEM_WORKERS" || ${MEMR[$mode/templates]} != "$want_t" ]]; then
			COW_MEM_NOTES+=("- **$name**: expected $want_t template(s) + $MEM_WORKERS workers below askrd, found ${MEMR[$mode/templates]} + ${MEMR[$mode/workers]}.")
		fi
		if ((${LOAD[$mode/requests]} < total || ${LOAD[$mode/non2xx]} + ${LOAD[$mode/errors]} > 0)); then
			COW_MEM_NOTES+=("- **$name**: the load got ${LOAD[$mode/ok]} good answers of $total wanted (${LOAD[$mode/non2xx]} non-2xx/3xx, ${LOAD[$mode/errors]} errors, ${LOAD[$mode/seconds]}s).")
		fi
		stop_all
	done
	local m per
	for m in cow normal; do
		per=$(awk -v k="${MEMR[$m/workers_pss_kb]}" -v n="${MEMR[$m/workers]}" 'BEGIN { printf "%.1f MiB", (n > 0 ? k / n / 1024 : 0) }')
		COW_MEM_ROWS+=("| $(mode_label "$m") | ${MEMR[$m/templates]} + ${MEMR[$m/workers]} | **$(kb_mib "${MEMR[$m/total_pss_kb]}")** | $( [[ $m == cow ]] && kb_mib "${MEMR[$m/template_pss_kb]}" || echo "-") | $per | $(kb_mib "${MEMR[$m/total_rss_kb]}") | $(kb_mib "${MEMR[$m/total_private_kb]}") | $(kb_mib "${MEMR[$m/askrd_rss_kb]}") | ${LOAD[$m/requests]} in ${LOAD[$m/seconds]} s |")
	done
	local pct met
	pct=$(awk -v c="${MEMR[cow/total_pss_kb]}" -v n="${MEMR[normal/total_pss_kb]}" 'BEGIN { printf "%.0f", (n > 0 ? 100 * c / n : 0) }')
	met=$(awk -v p="$pct" -v g="$GOAL_PSS_PCT" 'BEGIN { print (p <= g ? "met" : "**not met**") }')
	COW_MEM_NOTES=("- CoW total PSS is **$pct%** of normal mode's ($(kb_mib "${MEMR[cow/total_pss_kb]}") vs $(kb_mib "${MEMR[normal/total_pss_kb]}")). Goal <= $GOAL_PSS_PCT%: $met." "${COW_MEM_NOTES[@]}")
	COW_MEM_NOTES+=("- The load reached every worker: CPU time per worker after the run, min-max: CoW ${MEMR[cow/worker_cpu_min_ms]}-${MEMR[cow/worker_cpu_max_ms]} ms, normal ${MEMR[normal/worker_cpu_min_ms]}-${MEMR[normal/worker_cpu_max_ms]} ms (normal-mode workers include their own boot).")
	COW_MEM_NOTES+=("- PSS (proportional set size) splits each shared page among the processes that map it, so the sum over processes is what they cost together; RSS counts shared pages once per process. \"private\" is Private_Clean + Private_Dirty summed over the php-cgi processes.")
}

scenario_cow_maxreq() {
	have_laravel cow-maxreq || return 0
	local mode port name url
	local THREADS=$MAXREQ_THREADS CONNS=$MAXREQ_CONNS DURATION=$MAXREQ_DURATION
	for mode in cow normal; do
		name=maxreq1-$mode
		port=$(free_port)
		# shellcheck disable=SC2046
		start_askrd "$name" "$port" "$LARAVEL_BASE/public" "$LARAVEL_WORKER" "ASKR_APP_BASE=$LARAVEL_BASE" \
			-- --workers "$MAXREQ_WORKERS" --max-requests 1 $(cow_flags "$mode")
		url="http://127.0.0.1:$port/api/json"
		check_response "$url" "$name / askrd"
		ROW_TABLE=DISCARD NOTE_TABLE=COW_MAXREQ_NOTES FOREIGN_TABLE=COW_FOREIGN measure "$name" askrd "$url"
		stop_all
	done
	local m k
	for m in cow normal; do
		k=maxreq1-$m/askrd
		COW_MAXREQ_ROWS+=("| $(mode_label "$m") | $(printf '%.0f' "${RPS[$k]}") | $(fmt_ms "${P50[$k]}") | $(fmt_ms "${P99[$k]}") | ${ERRS[$k]} |")
	done
	COW_MAXREQ_NOTES=("- CoW/normal throughput: **$(ratio "${RPS[maxreq1-cow/askrd]}" "${RPS[maxreq1-normal/askrd]}")x**; p50 latency $(ratio "${P50[maxreq1-cow/askrd]}" "${P50[maxreq1-normal/askrd]}")x." "${COW_MAXREQ_NOTES[@]}")
}

# ---------------------------------------------------------------------------------------------
# report

scenario_slow_readers() {
	build_cowbench
	local dir=$REPO/internal/integration/testdata/slowreader mode name port before after met foreign
	for mode in normal cow per-request; do
		name=slow-readers-$mode
		port=$(free_port)
		if [[ $mode == per-request ]]; then
			start_askrd_classic "$name" "$port" "$dir/public" --workers "$SLOW_WORKERS"
		else
			# shellcheck disable=SC2046 # cow_flags is one word or none
			start_askrd "$name" "$port" "$dir/public" "$dir/worker.php" -- --workers "$SLOW_WORKERS" $(cow_flags "$mode")
		fi
		check_response "http://127.0.0.1:$port/ping.php" "$name / askrd"
		log "$name: $SLOW_PINGS pings alone, then beside $SLOW_READERS clients holding 4 MiB each unread"
		cpu_snapshot before
		timeout --kill-after=5 300 "$COWBENCH" slowreaders -url "http://127.0.0.1:$port" -big /big.php -ping /ping.php \
			-readers "$SLOW_READERS" -n "$SLOW_PINGS" >"$OUTDIR/$name.txt" ||
			{ cat "$OUTDIR/$name.txt" >&2; die "$name: cowbench slowreaders failed"; }
		cpu_snapshot after
		foreign=$(foreign_cpu_pct "$before" "$after")
		((foreign < 10)) || log "$name: WARNING: other processes used $foreign% of the CPUs during the run"
		askrd_alive "$name"
		read_kv SLOW "$mode" "$OUTDIR/$name.txt"
		log "$name: ping p99 $(fmt_ms "${SLOW[$mode/base_p99_ms]}") alone, $(fmt_ms "${SLOW[$mode/slow_p99_ms]}") beside the slow readers (${SLOW[$mode/slow_heads]}/$SLOW_READERS heads)"
		stop_all
		local label
		case $mode in
		normal) label="askrd (worker mode)" ;;
		cow) label="askrd --cow" ;;
		*) label="askrd per-request mode" ;;
		esac
		met=$(awk -v p="${SLOW[$mode/slow_p99_ms]}" -v g="$GOAL_SLOW_P99_MS" -v f="${SLOW[$mode/slow_failed]}" \
			'BEGIN { print (p == p + 0 && p < g && f == 0) ? "met" : "**not met**" }')
		SLOW_ROWS+=("| $label | $(fmt_ms "${SLOW[$mode/base_p50_ms]}") | $(fmt_ms "${SLOW[$mode/base_p99_ms]}") | $(fmt_ms "${SLOW[$mode/slow_p50_ms]}") | $(fmt_ms "${SLOW[$mode/slow_p99_ms]}") | $(fmt_ms "${SLOW[$mode/slow_max_ms]}") | ${SLOW[$mode/slow_heads]}/$SLOW_READERS | ${SLOW[$mode/slow_failed]} | $foreign% | $met |")
	done
}

# write_slow_report: the slow-readers section (stdout), if it ran.
write_slow_report() {
	((${#SLOW_ROWS[@]} > 0)) || return 0
	local row
	echo
	echo "## Slow readers (askrd only, \`--workers $SLOW_WORKERS\`)"
	echo
	echo "$SLOW_PINGS GET /ping.php one after the other on one keep-alive connection, alone, then while $SLOW_READERS clients each hold GET /big.php (4 MiB) after reading its head (a 4 KiB receive buffer, so the kernel takes little of it): askrd keeps 1 MiB of each answer in memory and spools the rest (\`[server] response_spool_size\`), so the workers are free (internal/integration/testdata/slowreader, bench/cowbench.go slowreaders). Goal: ping p99 < $GOAL_SLOW_P99_MS ms beside the slow readers, no ping failed. \"other CPU\": the share of all CPUs other processes used during the run (10% or more: rerun on an idle machine)."
	echo
	echo "| mode | p50 alone | p99 alone | p50 beside slow readers | p99 beside slow readers | max | readers with a head | failed pings | other CPU | goal |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
	for row in "${SLOW_ROWS[@]}"; do echo "$row"; done
}

write_report() {
	local mem_total php_v askr_v nginx_v wrk_v cpu row
	mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	php_v=$(php-cgi -v 2>/dev/null | head -n1 | awk '{ print $2 }')
	askr_v=$("$ASKRD" version 2>/dev/null || echo "unknown")
	nginx_v=$("$NGINX" -v 2>&1 | sed 's/.*nginx\///')
	wrk_v=$("$WRK" -v 2>&1 | head -n1 | awk '{ print $2 }' || true)
	mkdir -p "$(dirname "$REPORT")"
	{
		echo "# askr benchmark: askrd vs nginx + php-fpm"
		echo
		echo "Generated by \`make bench\` (bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC')."
		echo
		echo "- machine: $(nproc) CPUs (${cpu:-unknown CPU}), $mem_total RAM, $(uname -sr)"
		echo "- PHP $php_v (Debian): askrd runs php-cgi workers, the baseline runs php-fpm; both read Debian's php.ini, opcache on"
		echo "- $askr_v, nginx $nginx_v, wrk $wrk_v"
		echo "- workers: askrd \`--workers $WORKERS\` vs php-fpm \`pm = static\`, \`pm.max_children = $WORKERS\` (nginx: $(nproc) worker processes, FastCGI over a $([[ $FPM_LISTEN == unix ]] && echo "unix socket" || echo "127.0.0.1 TCP port"))"
		echo "- load: \`wrk -t$THREADS -c$CONNS -d$DURATION --latency\` on 127.0.0.1 after a $WARMUP warm-up; load generator and servers share the machine, one server at a time"
		echo "- errors: wrk's non-2xx/3xx responses + socket errors (connect/read/write/timeout)"
		if [[ -n ${RPS["laravel/askrd"]:-} ]]; then
			echo "- laravel: GET / (web middleware: cookies, file session, CSRF token, Blade view); every request sends the cookies of one earlier visit, like a returning visitor, so each reads and writes one session file"
		fi
		if [[ -n ${RPS["classic-hello/askrd"]:-}${RPS["classic-wordpress/askrd"]:-} ]]; then
			echo "- classic-*: askrd's per-request mode (\`askrd serve --root DIR\`, no worker script: $WORKERS php-cgi processes in FastCGI mode, each request running its PHP file afresh, opcache per process) vs nginx + php-fpm routing the same way (\`try_files \$uri \$uri/ /index.php?\$args\`, PATH_INFO split); classic-hello: a two-line index.php, the same file for both. Each server is measured $CLASSIC_ROUNDS times, the two alternating (a run during which other processes used 10% or more of the CPUs is repeated, up to $CLASSIC_RETRIES times); its row is its median undisturbed round by rps (p50 and p99 of that round), errors summed over all rounds"
		fi
		if [[ -n ${RPS["classic-wordpress/askrd"]:-} ]]; then
			echo "- classic-wordpress: Debian's WordPress $(wp_version) (root $WP_ROOT, \`/wp-content/\` aliased to $WP_CONTENT, theme twentytwentythree), GET / (the front page with the install's \"Hello world!\" post, anonymous, no cookies) with the site's Host header, \`wrk -c$WP_CONNS --timeout $WP_TIMEOUT\` (fewer connections than above: a page takes tens of ms); installed once through its wizard; a private MariaDB $(mariadbd --version 2>/dev/null | awk '{ print $3 }') on a Unix socket serves both runs (its CPU is counted with the server's, not as another process)"
		fi
		echo "- CPU idle just before the run (1 s sample): $IDLE_BEFORE%${BUSY:+ (**the machine was busy: other processes compete with the servers; numbers are noisy**)}"
		echo
		echo "| scenario | server | rps | p50 | p99 | errors |"
		echo "|---|---|---:|---:|---:|---:|"
		for row in "${ROWS[@]}"; do echo "$row"; done
		echo
		for row in "${NOTES[@]}"; do echo "$row"; done
		if ((${#FOREIGN[@]} > 0)); then
			printf -- '- CPU used by other processes during each measured run (share of all CPUs): %s' "${FOREIGN[0]}"
			printf '; %s' "${FOREIGN[@]:1}"
			noisy "${FOREIGN[@]}" && echo " -- **10% or more: those numbers are disturbed; rerun on an idle machine**" || echo
		fi
		write_lw_report
		write_cow_report
		write_slow_report
	} >"$REPORT"
}

# noisy "LABEL N%"...: true if any N is 10 or more.
noisy() {
	local e n
	for e in "$@"; do
		n=${e##* }
		n=${n%\%}
		((n >= 10)) && return 0
	done
	return 1
}

# write_cow_report: the CoW sections (stdout), if any CoW scenario ran.
write_cow_report() {
	((${#COW_RESPAWN_ROWS[@]} + ${#COW_MEM_ROWS[@]} + ${#COW_MAXREQ_ROWS[@]} + ${#COW_SKIPPED[@]} > 0)) || return 0
	local row
	echo
	echo "## CoW template mode vs normal worker mode (askrd only, Laravel example)"
	echo
	echo "\`askrd serve --cow\` boots one php-cgi template that runs examples/laravel-worker.php up to \`askr_cow_ready()\` and forks the workers from it; normal mode starts and boots every worker on its own. Both: \`ASKR_APP_BASE=examples/laravel\`, \`--root examples/laravel/public --worker-script examples/laravel-worker.php\`, 127.0.0.1 only, one server at a time, same run and machine as above."
	for row in "${COW_SKIPPED[@]}"; do echo "$row"; done
	if ((${#COW_RESPAWN_ROWS[@]} > 0)); then
		echo
		echo "### Worker respawn latency (\`--workers 1\`, $RESPAWN_N kills per mode)"
		echo
		echo "Each round reads the worker's pid from GET /api/json, sends it SIGKILL, then polls GET /api/json back to back (keep-alive) until a 200 from a new pid arrives; latency = kill → that response (bench/cowbench.go)."
		echo
		echo "| mode | p50 | p99 | min | max | respawns seen | non-200 answers while respawning |"
		echo "|---|---:|---:|---:|---:|---:|---:|"
		for row in "${COW_RESPAWN_ROWS[@]}"; do echo "$row"; done
		echo
		for row in "${COW_RESPAWN_NOTES[@]}"; do echo "$row"; done
	fi
	if ((${#COW_MEM_ROWS[@]} > 0)); then
		echo
		echo "### Memory (\`--workers $MEM_WORKERS\`, after $MEM_REQUESTS requests per worker)"
		echo
		echo "$((MEM_WORKERS * MEM_REQUESTS)) GETs of the Laravel \"/\" page (Blade, returning visitor's session) over $MEM_CONNS keep-alive connections, then the Pss/Rss of every php-cgi process below askrd (found through /proc/*/stat; in CoW mode the workers are the template's children) from /proc/PID/smaps_rollup, and askrd's own RSS."
		echo
		echo "| mode | php-cgi (template + workers) | total PSS | template PSS | PSS per worker | total RSS | private | askrd RSS | load |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
		for row in "${COW_MEM_ROWS[@]}"; do echo "$row"; done
		echo
		for row in "${COW_MEM_NOTES[@]}"; do echo "$row"; done
	fi
	if ((${#COW_MAXREQ_ROWS[@]} > 0)); then
		echo
		echo "### Throughput with \`--max-requests 1\` (a new worker for every request, \`--workers $MAXREQ_WORKERS\`)"
		echo
		echo "\`wrk -t$MAXREQ_THREADS -c$MAXREQ_CONNS -d$MAXREQ_DURATION --latency\` on GET /api/json (Laravel \"api\" group, no session) after a $WARMUP warm-up."
		echo
		echo "| mode | rps | p50 | p99 | errors |"
		echo "|---|---:|---:|---:|---:|"
		for row in "${COW_MAXREQ_ROWS[@]}"; do echo "$row"; done
		echo
		for row in "${COW_MAXREQ_NOTES[@]}"; do echo "$row"; done
	fi
	if ((${#COW_FOREIGN[@]} > 0)); then
		echo
		printf -- '- CPU used by other processes during each CoW measurement (share of all CPUs): %s' "${COW_FOREIGN[0]}"
		printf '; %s' "${COW_FOREIGN[@]:1}"
		noisy "${COW_FOREIGN[@]}" && echo " -- **10% or more: those numbers are disturbed; rerun on an idle machine**" || echo
	fi
}

main() {
	local tool
	for tool in "$WRK" "$NGINX" "$PHP_FPM" curl php-cgi; do
		command -v "$tool" >/dev/null || die "$tool not found (make deps-bench installs nginx-light php8.2-fpm wrk)"
	done
	[[ -x $ASKRD ]] || die "$ASKRD not found; run: go build -o bin/askrd ./cmd/askrd"
	[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "WORKERS must be a positive number, got '$WORKERS'"
	[[ $FPM_LISTEN == tcp || $FPM_LISTEN == unix ]] || die "FPM_LISTEN must be tcp or unix"

	TMP=$(mktemp -d "${TMPDIR:-/tmp}/askr-bench.XXXXXX")
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	rm -rf "$OUTDIR"
	mkdir -p "$OUTDIR"
	IDLE_BEFORE=$(cpu_idle_pct)
	BUSY=$(awk -v i="$IDLE_BEFORE" 'BEGIN { if (i < 90) print "busy" }')
	[[ -z $BUSY ]] || log "WARNING: the CPUs were only $IDLE_BEFORE% idle before the run: expect noisy numbers"

	local s
	for s in $SCENARIOS; do
		case $s in
		hello) scenario_hello ;;
		laravel) scenario_laravel ;;
		laravel-workers) scenario_laravel_workers ;;
		classic-hello) scenario_classic_hello ;;
		classic-wordpress) scenario_classic_wordpress ;;
		classic)
			scenario_classic_hello
			scenario_classic_wordpress
			;;
		cow)
			scenario_cow_respawn
			scenario_cow_memory
			scenario_cow_maxreq
			;;
		cow-respawn) scenario_cow_respawn ;;
		cow-memory) scenario_cow_memory ;;
		cow-maxreq) scenario_cow_maxreq ;;
		slow-readers) scenario_slow_readers ;;
		*) die "unknown scenario '$s' (SCENARIOS: hello laravel laravel-workers classic cow slow-readers, or classic-hello classic-wordpress cow-respawn cow-memory cow-maxreq)" ;;
		esac
	done

	write_report
	echo
	cat "$REPORT"
	echo
	log "report written to ${REPORT#"$REPO"/}; raw wrk output and server logs in bench/out/"
}

main "$@"
