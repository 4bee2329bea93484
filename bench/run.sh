#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/run.sh: ingressd against nginx and HAProxy, same machine, same routes,
# same pods, same worker count, in one run (`make bench`; read bench/README.md).
#
# What it does:
#   1. starts two podservers (127.0.0.2/.3:31001), the shared backends, and
#      two instances of each proxy: a "small" route table (host bench.local,
#      / and /api) and a "big" one (1,000 Prefix paths /app0../app999 + /):
#        ingressd  127.0.0.1:31080 / :31081     (admin :31901 / :31902)
#        nginx     127.0.0.1:31180 / :31181     (upstream keepalive, HTTP/1.1)
#        haproxy   127.0.0.1:31280 / :31281     (http-reuse always)
#      all three add the same forwarding headers (X-Forwarded-For/-Proto,
#      X-Real-IP, X-Request-ID) so none does less work than the others;
#   2. runs wrk against each target (the pod directly = the ceiling, then the
#      proxies) for every variant, interleaved: round 1 all variants x all
#      targets, then round 2 ..., so drifts hit everyone alike; the table is
#      the median over rounds;
#   3. measures CPU (utime+stime of the proxy's process tree, nginx workers
#      included) per request, RSS, and memory per idle keep-alive connection;
#   4. runs build/bench/bench_route if it exists.
#
# Variants: ka50 (keep-alive, wrk -c 50), ka1000 (-c 1000), close (new
# connection per request), 1k / 64k (response bodies), rules1000 (the big
# table, a path near its end).
#
# Knobs (environment): BENCH_DURATION (s per run, default 10), BENCH_ROUNDS
# (3), BENCH_WORKERS (1: ingressd workers = nginx worker_processes = haproxy
# nbthread), BENCH_IDLE_CONNS (5000), BENCH_VARIANTS, BENCH_TARGETS,
# BENCH_QUICK=1 (2 s, 1 round, 1000 idle conns: a smoke run), B (build dir).
#
# Results: stdout and bench/out/bench-STAMP.{txt,jsonl} (latest.txt too).
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${B:-build}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    DUR=${BENCH_DURATION:-2}; ROUNDS=${BENCH_ROUNDS:-1}; IDLE_N=${BENCH_IDLE_CONNS:-1000}
else
    DUR=${BENCH_DURATION:-10}; ROUNDS=${BENCH_ROUNDS:-3}; IDLE_N=${BENCH_IDLE_CONNS:-5000}
fi
WORKERS=${BENCH_WORKERS:-1}
VARIANTS=${BENCH_VARIANTS:-"ka50 ka1000 close 1k 64k rules1000"}
TARGETS=${BENCH_TARGETS:-"ceiling ingressd nginx haproxy"}
HOST=bench.local
NRULES=1000

INGRESSD=$ROOT/$B/ingressd
PODSERVER=$ROOT/$B/bench/podserver
MEASURE="python3 $ROOT/bench/measure.py"
for bin in "$INGRESSD" "$PODSERVER" wrk python3; do
    command -v "$bin" >/dev/null 2>&1 || { echo "bench: missing $bin (make; scripts/install-deps.sh)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

# -c 1000 plus 5,000 idle connections: every process needs many descriptors
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard"
NOFILE=$hard

TMP=$(mktemp -d /tmp/ingressd-bench.XXXXXX)
mkdir -p bench/out
STAMP=$(date -u +%Y%m%d-%H%M%S)
JSONL=$ROOT/bench/out/bench-$STAMP.jsonl
TXT=$ROOT/bench/out/bench-$STAMP.txt
: >"$JSONL"

PIDS=""
cleanup() {
    trap - EXIT INT TERM
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    # bounded wait: whatever ignores SIGTERM for 5 s gets SIGKILL
    for _ in $(seq 50); do
        alive=""
        for p in $PIDS; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for p in $PIDS; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: run CMD in the background, log to $TMP/NAME.log, remember its pid
start() {
    local name=$1; shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS="$PIDS $!"
    eval "PID_$name=$!"
}

log() { echo "$*" | tee -a "$TXT"; }

# ---- pods --------------------------------------------------------------------
POD_PORT=31001
PODS="127.0.0.2 127.0.0.3"
for ip in $PODS; do
    n=pod_${ip##*.}
    start "$n" "$PODSERVER" --listen "$ip:$POD_PORT" --name "$n" --threads 1
done
for ip in $PODS; do $MEASURE wait "$ip:$POD_PORT" 5 || { echo "bench: podserver $ip did not start"; exit 1; }; done
PID_ceiling=$PID_pod_2

# ---- configurations ----------------------------------------------------------
# paths for the big table: /app0 ... /app999, all to the same service
gen_ingressd() { # NAME PORT ADMIN BIG
    local f=$TMP/ingressd-$1.yaml
    cat >"$f" <<EOF
apiVersion: ingressd/v1
kind: ProxyConfig
spec:
  listen:
    - address: 127.0.0.1:$2
  admin: 127.0.0.1:$3
  workers: $WORKERS
---
apiVersion: v1
kind: Service
metadata: {name: bench, namespace: default}
spec:
  selector: {app: bench}
  ports:
    - {name: http, port: 80, targetPort: $POD_PORT, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bench-1
  namespace: default
  labels: {kubernetes.io/service-name: bench}
addressType: IPv4
ports:
  - {name: http, port: $POD_PORT, protocol: TCP}
endpoints:
EOF
    for ip in $PODS; do
        printf '  - addresses: ["%s"]\n    conditions: {ready: true}\n' "$ip" >>"$f"
    done
    cat >>"$f" <<EOF
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: default}
spec:
  rules:
    - host: $HOST
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}
          - {path: /api, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}
EOF
    if [ "$4" = 1 ]; then
        i=0
        while [ $i -lt $NRULES ]; do
            echo "          - {path: /app$i, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}" >>"$f"
            i=$((i + 1))
        done
    fi
}

gen_nginx() { # NAME PORT BIG
    local d=$TMP/nginx-$1
    mkdir -p "$d/logs" "$d/tmp"
    local user=""
    [ "$(id -u)" = 0 ] && user="user root;"
    {
        cat <<EOF
$user
worker_processes $WORKERS;
worker_rlimit_nofile $NOFILE;
daemon off;
master_process on;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections $NOFILE; use epoll; accept_mutex off; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host \$host;
    proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto \$scheme;
    proxy_set_header X-Real-IP \$remote_addr;
    proxy_set_header X-Request-ID \$request_id;
    add_header X-Request-ID \$request_id;
    proxy_buffers 8 16k;
    proxy_buffer_size 16k;
    upstream bench {
EOF
        for ip in $PODS; do echo "        server $ip:$POD_PORT;"; done
        cat <<EOF
        keepalive 512;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$2 reuseport backlog=4096;
        server_name $HOST;
        location / { proxy_pass http://bench; }
        location /api { proxy_pass http://bench; }
EOF
        if [ "$3" = 1 ]; then
            i=0
            while [ $i -lt $NRULES ]; do
                echo "        location /app$i/ { proxy_pass http://bench; }"
                i=$((i + 1))
            done
        fi
        echo "    }"
        echo "}"
    } >"$d/nginx.conf"
}

gen_haproxy() { # NAME PORT BIG
    # routes in a map file matched on host+path prefix (map_beg), as HAProxy's
    # own Kubernetes ingress controllers do; longest prefixes first
    local f=$TMP/haproxy-$1.cfg m=$TMP/haproxy-$1.map
    : >"$m"
    if [ "$3" = 1 ]; then
        i=$((NRULES - 1))
        while [ $i -ge 0 ]; do
            echo "$HOST/app$i/ be_bench" >>"$m"
            i=$((i - 1))
        done
    fi
    printf '%s/api be_bench\n%s/ be_bench\n' "$HOST" "$HOST" >>"$m"
    {
        cat <<EOF
global
    nbthread $WORKERS
    maxconn $((NOFILE / 2 - 100))
    tune.bufsize 16384

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    unique-id-format %{+X}o\ %ci:%cp_%fi:%fp_%Ts_%rt:%pid
    unique-id-header X-Request-ID

frontend fe
    bind 127.0.0.1:$2
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Real-IP %[src]
    http-response set-header X-Request-ID %[unique-id]
    use_backend %[base,lower,map_beg($m,be_404)]

backend be_404
    http-request deny deny_status 404

backend be_bench
    balance roundrobin
EOF
        for ip in $PODS; do echo "    server pod${ip##*.} $ip:$POD_PORT"; done
    } >"$f"
}

# ---- start the proxies ---------------------------------------------------------
declare -A ADDR PID OK
ADDR[ceiling.small]=127.0.0.2:$POD_PORT
ADDR[ceiling.big]=127.0.0.2:$POD_PORT
PID[ceiling]=$PID_ceiling
OK[ceiling]=1

has_target() { case " $TARGETS " in *" $1 "*) return 0;; *) return 1;; esac; }

if has_target ingressd; then
    gen_ingressd small 31080 31901 0
    gen_ingressd big 31081 31902 1
    start ingressd_small "$INGRESSD" -c "$TMP/ingressd-small.yaml"
    start ingressd_big "$INGRESSD" -c "$TMP/ingressd-big.yaml"
    ADDR[ingressd.small]=127.0.0.1:31080; ADDR[ingressd.big]=127.0.0.1:31081
fi
if has_target nginx; then
    gen_nginx small 31180 0
    gen_nginx big 31181 1
    start nginx_small "$NGINX" -p "$TMP/nginx-small" -e "$TMP/nginx-small/logs/error.log" -c "$TMP/nginx-small/nginx.conf"
    start nginx_big "$NGINX" -p "$TMP/nginx-big" -e "$TMP/nginx-big/logs/error.log" -c "$TMP/nginx-big/nginx.conf"
    ADDR[nginx.small]=127.0.0.1:31180; ADDR[nginx.big]=127.0.0.1:31181
fi
if has_target haproxy; then
    gen_haproxy small 31280 0
    gen_haproxy big 31281 1
    start haproxy_small "$HAPROXY" -db -f "$TMP/haproxy-small.cfg"
    start haproxy_big "$HAPROXY" -db -f "$TMP/haproxy-big.cfg"
    ADDR[haproxy.small]=127.0.0.1:31280; ADDR[haproxy.big]=127.0.0.1:31281
fi

log "ingressd bench $STAMP: $(nproc) CPUs, workers=$WORKERS, ${DUR}s x $ROUNDS round(s), variants: $VARIANTS"
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared: compare CPU us/request)"
log "ingressd $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $("$NGINX" -v 2>&1 | sed 's/.*: //'), $("$HAPROXY" -v | head -1 | cut -d' ' -f1-3), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"

# a target takes part only if both its tables answer 200 through it
for t in ingressd nginx haproxy; do
    has_target "$t" || continue
    OK[$t]=1
    for tab in small big; do
        a=${ADDR[$t.$tab]}
        path=/
        [ "$tab" = big ] && path=/app$((NRULES - 223))/x
        code=000
        if $MEASURE wait "$a" 10; then
            code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -H "Host: $HOST" "http://$a$path" || true)
        fi
        if [ "$code" != 200 ]; then
            OK[$t]=0
            log "!! $t ($tab table, $a) answered '$code' to GET $path: skipped. Its log:"
            tail -n 5 "$TMP/${t}_$tab.log" 2>/dev/null | sed 's/^/   | /' | tee -a "$TXT"
        fi
    done
    eval "PID[$t]=\$PID_${t}_small"
    eval "PID[$t.big]=\$PID_${t}_big"
done
PID[ceiling.big]=$PID_ceiling

# ---- the runs ----------------------------------------------------------------------
# variant -> "table path wrk-args"
vspec() {
    case $1 in
    ka50)      echo "small / -t1 -c50";;
    ka1000)    echo "small / -t2 -c1000";;
    close)     echo "small / -t1 -c50 -H Connection:close";;
    1k)        echo "small /?size=1024 -t1 -c50";;
    64k)       echo "small /?size=65536 -t1 -c50";;
    rules1000) echo "big /app$((NRULES - 223))/x -t1 -c50";;
    *)         echo "";;
    esac
}

run_one() { # TARGET VARIANT ROUND DURATION [jsonl]
    local t=$1 v=$2 r=$3 d=$4 out=${5:-$JSONL}
    local spec table path wargs pid
    spec=$(vspec "$v")
    [ -n "$spec" ] || { echo "bench: unknown variant $v"; exit 1; }
    set -- $spec
    table=$1; path=$2; shift 2
    wargs=""
    for a in "$@"; do
        case $a in -H) ;; Connection:close) wargs="$wargs -H Connection:close";; *) wargs="$wargs $a";; esac
    done
    if [ "$table" = big ]; then pid=${PID[$t.big]}; else pid=${PID[$t]}; fi
    # shellcheck disable=SC2086
    $MEASURE run "$out" "$t" "$v" "$r" "$pid" "http://${ADDR[$t.$table]}$path" -- \
        $wargs -d "${d}s" --timeout 5s -H "Host: $HOST" | tee -a "$TXT"
}

# first, while the processes are fresh: memory freed by earlier runs would hide
# what idle connections cost (malloc reuses it without growing RSS)
log ""
log "== memory per idle keep-alive connection ($IDLE_N connections each, fresh processes)"
for t in $TARGETS; do
    [ "${OK[$t]:-0}" = 1 ] || continue
    $MEASURE idle "$JSONL" "$t" "${PID[$t]}" "${ADDR[$t.small]}" "$HOST" "$IDLE_N" | tee -a "$TXT"
done

log ""
log "== warm-up (1 s each)"
for t in $TARGETS; do
    [ "${OK[$t]:-0}" = 1 ] || continue
    run_one "$t" ka50 0 1 "$TMP/warmup.jsonl" >/dev/null
    [ "$(echo "$VARIANTS" | grep -c rules1000)" = 0 ] || run_one "$t" rules1000 0 1 "$TMP/warmup.jsonl" >/dev/null
done

for r in $(seq "$ROUNDS"); do
    log ""
    log "== round $r/$ROUNDS"
    for v in $VARIANTS; do
        for t in $TARGETS; do
            [ "${OK[$t]:-0}" = 1 ] || continue
            run_one "$t" "$v" "$r" "$DUR"
        done
    done
done


if [ -x "$B/bench/bench_route" ]; then
    log ""
    log "== bench_route"
    "$B/bench/bench_route" 2>&1 | tee -a "$TXT"
fi

log ""
$MEASURE report "$JSONL" "$WORKERS" | tee -a "$TXT"
cp "$TXT" bench/out/latest.txt
echo "results: $TXT ($JSONL)"
