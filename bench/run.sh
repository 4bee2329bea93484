#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/run.sh: ingressd against nginx and HAProxy on the same machine, with the
# same routes, the same pods and the same worker count, in one run (`make bench`;
# read bench/README.md).
#
# What it does:
#   1. starts two podservers (127.0.0.2/.3:31001), the shared backends, and one
#      instance of each proxy per route table ("table"):
#        small  host bench.local, / and /api               ingressd :31080  nginx :31180  haproxy :31280
#        big    + 1,000 Prefix paths /app0 ... /app999     ingressd :31081  nginx :31181  haproxy :31281
#        tls    small, HTTPS on one self-signed P-256 cert ingressd :31082  nginx :31182  haproxy :31282
#        rl     small, reloaded 10x/s during its run       ingressd :31083  nginx :31183  haproxy :31283
#      (ingressd admin ports are 31901-31904). All three add the same forwarding
#      headers (X-Forwarded-For/-Proto, X-Real-IP, X-Request-ID), so none of them does
#      less work than the others.
#   2. measures memory per idle keep-alive connection while the processes are fresh;
#   3. runs wrk against each target (the pod directly = the ceiling, then the
#      proxies) for every variant, interleaved: round 1 runs all variants x all
#      targets, then round 2 ..., so drifts hit every target alike; the table
#      shows the median over the rounds;
#   4. reports CPU (utime+stime of the proxy's process tree, nginx workers
#      included) per request and RSS;
#   5. runs build/bench/bench_route if it exists.
#
# Variants: ka50 (keep-alive, wrk -c 50), ka1000 (-c 1000), close (a new
# connection per request), 1k / 64k (response bodies), rules1000 (the big
# table, a path near its end), tls (HTTPS keep-alive, TLS 1.2: the Debian wrk
# speaks no TLS 1.3), tlsresume (HTTPS, wrk with Connection: close: a new connection
# per request, but wrk reconnects through SSL_clear(), which keeps the session, so
# each one is a RESUMED TLS 1.2 handshake, no key exchange, no signature),
# tlsfull (a new connection and a FULL TLS 1.3 handshake per request, ECDHE +
# ECDSA signature, by bench/tls_handshake.py: BENCH_HS_PROCS python client
# processes, default 4; its req/s is bounded by the python client, compare CPU
# us/request), reload (ka50 while the configuration alternates between two
# versions, routes and endpoints, 10 times a second: ingressd rewrites its file
# (watched), nginx -s reload, HAProxy master-worker SIGUSR2).
# The TLS clients connect to 127.0.0.1 but send SNI and Host bench.local, as a
# real client would (wrk: a Lua wrk.resolve override), so ingressd picks the
# certificate by SNI. All three proxies offer TLS 1.2 and 1.3 and the same ECDHE
# groups (X25519:P-256:P-384, ingressd's fixed preference).
#
# Knobs (environment): BENCH_DURATION (seconds per run, default 10), BENCH_ROUNDS
# (3), BENCH_WORKERS (1: ingressd workers = nginx worker_processes = haproxy
# nbthread), BENCH_IDLE_CONNS (5000), BENCH_VARIANTS, BENCH_TARGETS,
# BENCH_QUICK=1 (2 s, 1 round, 1000 idle conns: a smoke run), BENCH_HS_PROCS (4:
# client processes of tlsfull), BENCH_SCALE=0 (skip
# bench/reload_bench.sh: reload time at 10,000 rules / 50,000 endpoints), B (build dir).
#
# Results: stdout and bench/out/bench-STAMP.{txt,jsonl} (also copied to latest.txt).
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
VARIANTS=${BENCH_VARIANTS:-"ka50 ka1000 close 1k 64k rules1000 tls tlsresume tlsfull reload"}
HS_PROCS=${BENCH_HS_PROCS:-4}
ECDH_GROUPS="X25519:P-256:P-384" # ingressd's fixed preference (src/tls.c); the others get it too
TARGETS=${BENCH_TARGETS:-"ceiling ingressd nginx haproxy"}
HOST=bench.local
NRULES=1000
RULE_PATH=/app$((NRULES - 223))/x

case $B in /*) BD=$B;; *) BD=$ROOT/$B;; esac
INGRESSD=$BD/ingressd
PODSERVER=$BD/bench/podserver
MEASURE="python3 $ROOT/bench/measure.py"
for bin in "$INGRESSD" "$PODSERVER" wrk python3 curl openssl; do
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
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: run CMD in the background, log to $TMP/NAME.log, remember its pid
start() {
    local name=$1; shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS="$PIDS $!"
    LAST_PID=$!
}

log() { echo "$*" | tee -a "$TXT"; }
has() { case " $1 " in *" $2 "*) return 0;; *) return 1;; esac; }

# variant -> "table path wrk-args"
vspec() {
    case $1 in
    ka50)      echo "small / -t1 -c50";;
    ka1000)    echo "small / -t2 -c1000";;
    close)     echo "small / -t1 -c50 -H Connection:close";;
    1k)        echo "small /?size=1024 -t1 -c50";;
    64k)       echo "small /?size=65536 -t1 -c50";;
    rules1000) echo "big $RULE_PATH -t1 -c50";;
    tls)       echo "tls / -t1 -c50";;
    tlsresume) echo "tls / -t1 -c50 -H Connection:close";;
    tlsfull)   echo "tls / tls_handshake.py";;
    reload)    echo "rl / -t1 -c50";;
    *)         echo "";;
    esac
}
TABLES=""
for v in $VARIANTS; do
    spec=$(vspec "$v")
    [ -n "$spec" ] || { echo "bench: unknown variant $v"; exit 1; }
    t=${spec%% *}
    has "$TABLES" "$t" || TABLES="$TABLES $t"
done
has "$TABLES" small || TABLES="small $TABLES" # the idle-connection test uses it

table_off() { case $1 in small) echo 0;; big) echo 1;; tls) echo 2;; rl) echo 3;; esac; }
# url TABLE ADDR PATH: the tls table is asked for https://bench.local:PORT (SNI
# bench.local; curl --resolve, wrk sni.lua and tls_handshake.py connect to 127.0.0.1)
url() {
    if [ "$1" = tls ]; then echo "https://$HOST:${2##*:}$3"; else echo "http://$2$3"; fi
}

# ---- ports ---------------------------------------------------------------------
# every address this run listens on must be free: a leftover process would
# silently take a target's place (or make it skip)
busy=$(python3 - <<'EOF'
import socket
busy = []
for port in (31001, 31080, 31081, 31082, 31083, 31180, 31181, 31182, 31183, 31280, 31281,
             31282, 31283, 31901, 31902, 31903, 31904):
    for ip in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
        s = socket.socket()
        s.settimeout(0.2)
        if s.connect_ex((ip, port)) == 0:
            busy.append("%s:%d" % (ip, port))
        s.close()
print(" ".join(busy))
EOF
)
if [ -n "$busy" ]; then
    echo "bench: addresses already in use: $busy"
    ss -ltnp 2>/dev/null | grep -E ":(3100[0-9]|310[89][0-9]|311[89][0-9]|312[89][0-9]|3190[0-9]) " || true
    exit 1
fi

# ---- pods --------------------------------------------------------------------
POD_PORT=31001
PODS="127.0.0.2 127.0.0.3"
for ip in $PODS; do
    start "pod_${ip##*.}" "$PODSERVER" --listen "$ip:$POD_PORT" --name "pod-${ip##*.}" --threads 1
    [ "$ip" = 127.0.0.2 ] && PID_POD=$LAST_PID
done
for ip in $PODS; do $MEASURE wait "$ip:$POD_PORT" 5 || { echo "bench: podserver $ip did not start"; exit 1; }; done

# the TLS certificate all three proxies present
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$HOST" -addext "subjectAltName=DNS:$HOST" \
    -keyout "$TMP/tls.key" -out "$TMP/tls.crt" >/dev/null 2>&1
cat "$TMP/tls.crt" "$TMP/tls.key" >"$TMP/tls.pem"

# wrk resolves the URL's host itself and sends it as SNI and Host; point
# bench.local at the proxy's address instead of needing /etc/hosts
cat >"$TMP/sni.lua" <<'EOF'
wrk.resolve = function(host, service)
    wrk.addrs = wrk.lookup("127.0.0.1", service)
end
EOF

# ---- configurations ----------------------------------------------------------
# Each generator writes one proxy's configuration for TABLE; VERSION b is the
# second configuration of the reload variant: one endpoint instead of two, and one
# more route (/v2).

gen_ingressd() { # TABLE PORT ADMIN OUT [b]
    local table=$1 port=$2 admin=$3 f=$4 ver=${5:-a} pods=$PODS tlsl=""
    [ "$ver" = b ] && pods=${PODS%% *}
    [ "$table" = tls ] && tlsl="
      tls: true
  defaultCertificate: default/bench-tls"
    cat >"$f" <<EOF
apiVersion: ingressd/v1
kind: ProxyConfig
spec:
  listen:
    - address: 127.0.0.1:$port$tlsl
  admin: 127.0.0.1:$admin
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
    for ip in $pods; do
        printf '  - addresses: ["%s"]\n    conditions: {ready: true}\n' "$ip" >>"$f"
    done
    if [ "$table" = tls ]; then
        cat >>"$f" <<EOF
---
apiVersion: v1
kind: Secret
metadata: {name: bench-tls, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$TMP/tls.crt")
  tls.key: $(base64 -w0 "$TMP/tls.key")
EOF
    fi
    cat >>"$f" <<EOF
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: default}
spec:
EOF
    [ "$table" = tls ] && printf '  tls:\n    - hosts: [%s]\n      secretName: bench-tls\n' "$HOST" >>"$f"
    cat >>"$f" <<EOF
  rules:
    - host: $HOST
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}
          - {path: /api, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}
EOF
    [ "$ver" = b ] && echo "          - {path: /v2, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}" >>"$f"
    if [ "$table" = big ]; then
        i=0
        while [ $i -lt $NRULES ]; do
            echo "          - {path: /app$i, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}" >>"$f"
            i=$((i + 1))
        done
    fi
}

gen_nginx() { # TABLE PORT DIR OUT [b]
    local table=$1 port=$2 d=$3 f=$4 ver=${5:-a} pods=$PODS user="" ssl=""
    [ "$ver" = b ] && pods=${PODS%% *}
    mkdir -p "$d/logs" "$d/tmp"
    [ "$(id -u)" = 0 ] && user="user root;"
    [ "$table" = tls ] && ssl=" ssl"
    local tlsconf=""
    [ "$table" = tls ] && tlsconf="
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve $ECDH_GROUPS;"
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
    proxy_buffer_size 16k;$tlsconf
    upstream bench {
EOF
        for ip in $pods; do echo "        server $ip:$POD_PORT;"; done
        cat <<EOF
        keepalive 512;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:$port$ssl reuseport backlog=4096;
        server_name $HOST;
EOF
        [ "$table" = tls ] && printf '        ssl_certificate %s;\n        ssl_certificate_key %s;\n' "$TMP/tls.crt" "$TMP/tls.key"
        echo "        location / { proxy_pass http://bench; }"
        echo "        location /api { proxy_pass http://bench; }"
        [ "$ver" = b ] && echo "        location /v2 { proxy_pass http://bench; }"
        if [ "$table" = big ]; then
            i=0
            while [ $i -lt $NRULES ]; do
                echo "        location /app$i/ { proxy_pass http://bench; }"
                i=$((i + 1))
            done
        fi
        echo "    }"
        echo "}"
    } >"$f"
}

gen_haproxy() { # TABLE PORT MAP OUT [b]
    # routes in a map file matched on host+path prefix (map_beg), as HAProxy's
    # own Kubernetes ingress controllers do; longest prefixes first
    local table=$1 port=$2 m=$3 f=$4 ver=${5:-a} pods=$PODS ssl=""
    [ "$ver" = b ] && pods=${PODS%% *}
    [ "$table" = tls ] && ssl=" ssl crt $TMP/tls.pem alpn http/1.1 curves $ECDH_GROUPS"
    : >"$m"
    if [ "$table" = big ]; then
        i=$((NRULES - 1))
        while [ $i -ge 0 ]; do
            echo "$HOST/app$i/ be_bench" >>"$m"
            i=$((i - 1))
        done
    fi
    [ "$ver" = b ] && echo "$HOST/v2 be_bench" >>"$m"
    printf '%s/api be_bench\n%s/ be_bench\n' "$HOST" "$HOST" >>"$m"
    {
        cat <<EOF
global
    nbthread $WORKERS
    maxconn $((NOFILE / 2 - 100))
    tune.bufsize 16384
    ssl-default-bind-options ssl-min-ver TLSv1.2

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
    bind 127.0.0.1:$port$ssl
    option forwardfor
    http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]
    http-request set-header X-Real-IP %[src]
    http-response set-header X-Request-ID %[unique-id]
    use_backend %[base,lower,map_beg($m,be_404)]

backend be_404
    http-request deny deny_status 404

backend be_bench
    balance roundrobin
EOF
        for ip in $pods; do echo "    server pod${ip##*.} $ip:$POD_PORT"; done
    } >"$f"
}

# ---- start the proxies ---------------------------------------------------------
declare -A ADDR PID OK CFG
for tab in small big; do
    ADDR[ceiling.$tab]=127.0.0.2:$POD_PORT
    PID[ceiling.$tab]=$PID_POD
    OK[ceiling.$tab]=1
done

for t in ingressd nginx haproxy; do
    has "$TARGETS" "$t" || continue
    for tab in $TABLES; do
        off=$(table_off "$tab")
        case $t in
        ingressd)
            port=$((31080 + off))
            CFG[$t.$tab]=$TMP/ingressd-$tab.yaml
            gen_ingressd "$tab" "$port" $((31901 + off)) "${CFG[$t.$tab]}"
            if [ "$tab" = rl ]; then
                gen_ingressd rl "$port" $((31901 + off)) "$TMP/ingressd-rl.a" a
                gen_ingressd rl "$port" $((31901 + off)) "$TMP/ingressd-rl.b" b
            fi
            start "${t}_$tab" "$INGRESSD" -c "${CFG[$t.$tab]}"
            ;;
        nginx)
            port=$((31180 + off))
            d=$TMP/nginx-$tab
            CFG[$t.$tab]=$d/nginx.conf
            gen_nginx "$tab" "$port" "$d" "${CFG[$t.$tab]}"
            if [ "$tab" = rl ]; then
                gen_nginx rl "$port" "$d" "$d/nginx.a" a
                gen_nginx rl "$port" "$d" "$d/nginx.b" b
            fi
            start "${t}_$tab" "$NGINX" -p "$d" -e "$d/logs/error.log" -c "${CFG[$t.$tab]}"
            ;;
        haproxy)
            port=$((31280 + off))
            CFG[$t.$tab]=$TMP/haproxy-$tab.cfg
            gen_haproxy "$tab" "$port" "$TMP/haproxy-$tab.map" "${CFG[$t.$tab]}"
            if [ "$tab" = rl ]; then
                # the reloaded instance runs master-worker (-W): SIGUSR2 reloads it
                gen_haproxy rl "$port" "$TMP/haproxy-rl.map.a" "$TMP/haproxy-rl.a" a
                gen_haproxy rl "$port" "$TMP/haproxy-rl.map.b" "$TMP/haproxy-rl.b" b
                start "${t}_$tab" "$HAPROXY" -W -db -f "${CFG[$t.$tab]}"
            else
                start "${t}_$tab" "$HAPROXY" -db -f "${CFG[$t.$tab]}"
            fi
            ;;
        esac
        ADDR[$t.$tab]=127.0.0.1:$port
        PID[$t.$tab]=$LAST_PID
    done
done

log "ingressd bench $STAMP: $(nproc) CPUs, workers=$WORKERS, ${DUR}s x $ROUNDS round(s)"
log "variants: $VARIANTS"
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared: compare CPU us/request)"
log "ingressd $(git rev-parse --short HEAD 2>/dev/null || echo '?'), nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), $("$HAPROXY" -v | head -1 | cut -d' ' -f1-3), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"

# a (target, table) takes part only if it answers 200 through that table
for t in ingressd nginx haproxy; do
    has "$TARGETS" "$t" || continue
    for tab in $TABLES; do
        a=${ADDR[$t.$tab]}
        path=/
        [ "$tab" = big ] && path=$RULE_PATH
        code=000
        if $MEASURE wait "$a" 10; then
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' -H "Host: $HOST" \
                    --cacert "$TMP/tls.crt" --resolve "$HOST:${a##*:}:127.0.0.1" \
                    "$(url "$tab" "$a" "$path")" || true)
                [ "$code" = 200 ] && break
                sleep 0.2
            done
        fi
        # ... and only if it is still running: on a shared machine another process may hold
        # one of its ports (it exits) and answer in its place
        if [ "$code" = 200 ] && ! kill -0 "${PID[$t.$tab]}" 2>/dev/null; then
            code="$code from someone else: $t exited"
        fi
        if [ "$code" = 200 ]; then
            OK[$t.$tab]=1
        else
            log "!! $t ($tab table, $a) answered '$code' to GET $path: its $tab runs are skipped. Its log:"
            tail -n 5 "$TMP/${t}_$tab.log" 2>/dev/null | sed 's/^/   | /' | tee -a "$TXT"
        fi
    done
done

# ---- reloading ----------------------------------------------------------------------
# reloader TARGET: swap the rl configuration between versions a and b and make the
# proxy load it, 10 times a second, until killed
reloader() {
    local t=$1 v=a cfg=${CFG[$1.rl]} pid=${PID[$1.rl]}
    while :; do
        v=$([ "$v" = a ] && echo b || echo a)
        case $t in
        ingressd) cp "$TMP/ingressd-rl.$v" "$cfg.tmp" && mv "$cfg.tmp" "$cfg";; # file watch
        nginx)    cp "$TMP/nginx-rl/nginx.$v" "$cfg" && kill -HUP "$pid";;       # = nginx -s reload
        haproxy)  cp "$TMP/haproxy-rl.$v" "$cfg" && kill -USR2 "$pid";;          # master-worker reload
        esac
        sleep 0.1
    done
}

# ---- the runs ----------------------------------------------------------------------
run_one() { # TARGET VARIANT ROUND DURATION [jsonl]
    local t=$1 v=$2 r=$3 d=$4 out=${5:-$JSONL}
    local spec table path wargs rpid=""
    spec=$(vspec "$v")
    # shellcheck disable=SC2086
    set -- $spec
    table=$1; path=$2; shift 2
    [ "${OK[$t.$table]:-0}" = 1 ] || return 0
    if [ "$v" = tlsfull ]; then
        python3 "$ROOT/bench/tls_handshake.py" "$out" "$t" "$v" "$r" "${PID[$t.$table]}" "$HOST" \
            "${ADDR[$t.$table]##*:}" "$d" "$HS_PROCS" | tee -a "$TXT"
        return 0
    fi
    wargs=""
    [ "$table" = tls ] && wargs="-s $TMP/sni.lua"
    for a in "$@"; do
        case $a in -H) ;; Connection:close) wargs="$wargs -H Connection:close";; *) wargs="$wargs $a";; esac
    done
    if [ "$table" = rl ] && [ "$out" = "$JSONL" ]; then
        reloader "$t" >/dev/null 2>&1 &
        rpid=$!
        PIDS="$PIDS $rpid"
    fi
    # shellcheck disable=SC2086
    $MEASURE run "$out" "$t" "$v" "$r" "${PID[$t.$table]}" "$(url "$table" "${ADDR[$t.$table]}" "$path")" -- \
        $wargs -d "${d}s" --timeout 5s -H "Host: $HOST" | tee -a "$TXT"
    if [ -n "$rpid" ]; then
        kill "$rpid" 2>/dev/null || true
        wait "$rpid" 2>/dev/null || true
    fi
}

# first, while the processes are fresh: memory freed by earlier runs would hide
# what idle connections cost (malloc reuses it without growing RSS)
log ""
log "== memory per idle keep-alive connection ($IDLE_N connections each, fresh processes)"
for t in $TARGETS; do
    [ "${OK[$t.small]:-0}" = 1 ] || continue
    $MEASURE idle "$JSONL" "$t" "${PID[$t.small]}" "${ADDR[$t.small]}" "$HOST" "$IDLE_N" | tee -a "$TXT"
done

log ""
log "== warm-up (1 s per target and table)"
for t in $TARGETS; do
    for v in ka50 rules1000 tls; do
        has "$VARIANTS" "$v" && run_one "$t" "$v" 0 1 "$TMP/warmup.jsonl" >/dev/null
    done
done

for r in $(seq "$ROUNDS"); do
    log ""
    log "== round $r/$ROUNDS"
    for v in $VARIANTS; do
        for t in $TARGETS; do
            run_one "$t" "$v" "$r" "$DUR"
        done
    done
done

# reload at scale: ingressd only (the reload issue's figure; bench/reload_bench.sh
# belongs to the reload work), after the comparison so that its memory churn does
# not disturb the other runs
if has "$TARGETS" ingressd && [ "${BENCH_SCALE:-1}" = 1 ] && [ -x bench/reload_bench.sh ]; then
    log ""
    log "== reload at scale (bench/reload_bench.sh): file change -> every worker on the new snapshot"
    B=$B WORKERS=$WORKERS timeout 600 bench/reload_bench.sh \
        "$([ "${BENCH_QUICK:-0}" = 1 ] && echo 2 || echo 6)" 2>&1 | tee -a "$TXT" || true
fi

if [ -x "$BD/bench/bench_route" ]; then
    log ""
    log "== bench_route"
    "$BD/bench/bench_route" 2>&1 | tee -a "$TXT"
fi

# keep the generated configurations next to the results, to check the comparison
CONFDIR=$ROOT/bench/out/configs-$STAMP
mkdir -p "$CONFDIR"
for f in "$TMP"/*.yaml "$TMP"/*.cfg "$TMP"/*.map "$TMP"/ingressd-rl.[ab] "$TMP"/haproxy-rl.[ab] \
         "$TMP"/haproxy-rl.map.[ab]; do
    [ -e "$f" ] && cp "$f" "$CONFDIR/"
done
for d in "$TMP"/nginx-*; do
    [ -d "$d" ] || continue
    for f in "$d"/nginx.conf "$d"/nginx.[ab]; do
        [ -e "$f" ] && cp "$f" "$CONFDIR/$(basename "$d")-$(basename "$f")"
    done
done

log ""
$MEASURE report "$JSONL" "$WORKERS" | tee -a "$TXT"
cp "$TXT" bench/out/latest.txt
echo "results: $TXT ($JSONL); configurations: $CONFDIR"
