#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# bench/tls.sh: ingressd's TLS termination against nginx and HAProxy, on the same
# certificate, the same pods and the same worker count (issue 6: "make bench adds
# TLS keep-alive throughput and new-handshake rate, side by side with nginx and
# haproxy on the same certificate; target at least nginx's figures").
#
# Self-contained on purpose: it shares no process, port or file with bench/run.sh,
# so it can run after it (or alone) without either one knowing about the other.
# The measuring itself (wrk, CPU of the proxy's process tree from /proc/PID/stat,
# the median table) is bench/measure.py's, the same code run.sh uses, so the
# figures of both scripts mean the same thing.
#
# What it does:
#   1. makes one EC P-256 certificate (CN and SAN bench.local) with the openssl CLI;
#      all three proxies present it;
#   2. starts two podservers (127.0.0.2/.3:32001; plain HTTP, round robin, upstream
#      keep-alive in every proxy) and the three proxies:
#        ingressd 127.0.0.1:32443 (admin :32901)  tls: true listener, defaultCertificate
#                                                  and Ingress spec.tls both the bench Secret
#        nginx    127.0.0.1:32543                  ssl, TLSv1.2 TLSv1.3, upstream keepalive
#        haproxy  127.0.0.1:32643                  bind ssl crt PEM alpn http/1.1, http-reuse always
#      each with BENCH_WORKERS workers (ingressd workers = nginx worker_processes =
#      haproxy nbthread), the same ECDHE groups (X25519:P-256:P-384), no access log,
#      and the same forwarding headers (ingressd adds them, so the others do too);
#   3. runs the load against each, interleaved (round 1: every variant x every proxy,
#      then round 2 ...), for three variants:
#        tls        TLS keep-alive: wrk -t1 -c50
#        tlsresume  a new connection per request (wrk -t1 -c50, Connection: close).
#                   NOT a full handshake: wrk reconnects through SSL_clear(), which
#                   keeps the session, so each connection is a resumed TLS 1.2
#                   handshake (checked with nginx's $ssl_session_reused)
#        tlsfull    a new connection and a FULL handshake per request (TLS 1.3,
#                   ECDHE + ECDSA signature): bench/tls_handshake.py, BENCH_HS_PROCS
#                   (default 4) python client processes; its req/s is bounded by the
#                   python client, so compare CPU us/request there
#      The Debian wrk negotiates TLS 1.2 only (it fails against a TLS-1.3-only
#      server), so tls and tlsresume are TLS 1.2 (ECDHE-ECDSA-AES128/256-GCM).
#      wrk connects to 127.0.0.1 but sends SNI and Host bench.local (a Lua
#      wrk.resolve override), as a real client would, so ingressd picks the
#      certificate by SNI; tls_handshake.py does the same;
#   4. prints one table (median over rounds: req/s, p50/p99, CPU us/request of the
#      proxy's process tree, x nginx / x haproxy, non-2xx and socket errors summed)
#      and a one-line verdict against the issue's target.
#
# Knobs: BENCH_DURATION (seconds per run, default 10), BENCH_ROUNDS (3),
# BENCH_WORKERS (1), BENCH_QUICK=1 (2 s, 1 round), BENCH_HS_PROCS (4: client
# processes of the tlsfull variant), B (build dir, default build).
# Needs build/ingressd and build/bench/podserver (make; make build/bench/podserver),
# wrk, nginx, haproxy, openssl, curl, python3. A proxy that is missing or does not
# answer 200 at start is skipped (said so, with its log); the others still run.
#
# Results: stdout, and bench/out/tls-STAMP.{txt,jsonl} (also copied to
# bench/out/tls-latest.txt). Scratch files live in bench/out/tls-tmp.XXXXXX and are
# removed on exit. The machine has 2 cores shared by wrk, the pods and the proxy:
# req/s is compressed and noisy there; CPU us/request is the fair comparison.
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${B:-build}
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    DUR=${BENCH_DURATION:-2}; ROUNDS=${BENCH_ROUNDS:-1}
else
    DUR=${BENCH_DURATION:-10}; ROUNDS=${BENCH_ROUNDS:-3}
fi
WORKERS=${BENCH_WORKERS:-1}
HOST=bench.local
VARIANTS="tls tlsresume tlsfull"
HS_PROCS=${BENCH_HS_PROCS:-4}
TARGETS="ingressd nginx haproxy"
POD_PORT=32001
PODS="127.0.0.2 127.0.0.3"
ECDH_GROUPS="X25519:P-256:P-384" # ingressd's fixed preference (src/tls.c); the others get it too

case $B in /*) BD=$B;; *) BD=$ROOT/$B;; esac
INGRESSD=$BD/ingressd
PODSERVER=$BD/bench/podserver
MEASURE="python3 $ROOT/bench/measure.py"
for bin in "$INGRESSD" "$PODSERVER" wrk python3 curl openssl; do
    command -v "$bin" >/dev/null 2>&1 || { echo "tls bench: missing $bin (make; make build/bench/podserver; scripts/install-deps.sh)"; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard"
NOFILE=$hard

mkdir -p bench/out
TMP=$(mktemp -d "$ROOT/bench/out/tls-tmp.XXXXXX")
STAMP=$(date -u +%Y%m%d-%H%M%S)
JSONL=$ROOT/bench/out/tls-$STAMP.jsonl
TXT=$ROOT/bench/out/tls-$STAMP.txt
: >"$JSONL"

# every process this script starts goes into PIDS; the trap ends them all (TERM,
# then KILL after 5 s) and removes the scratch directory, whatever way we exit
PIDS=""
cleanup() {
    trap - EXIT INT TERM
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
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

start() { # NAME CMD...: run CMD in the background, log to $TMP/NAME.log
    local name=$1; shift
    "$@" >"$TMP/$name.log" 2>&1 &
    PIDS="$PIDS $!"
    LAST_PID=$!
}
log() { echo "$*" | tee -a "$TXT"; }

declare -A PORT=([ingressd]=32443 [nginx]=32543 [haproxy]=32643)
ADMIN_PORT=32901

# ---- ports: a leftover process on one of them would take a target's place ----
busy=""
for a in 127.0.0.1:${PORT[ingressd]} 127.0.0.1:${PORT[nginx]} 127.0.0.1:${PORT[haproxy]} \
         127.0.0.1:$ADMIN_PORT 127.0.0.2:$POD_PORT 127.0.0.3:$POD_PORT; do
    $MEASURE wait "$a" 0.2 && busy="$busy $a"
done
[ -z "$busy" ] || { echo "tls bench: addresses already in use:$busy"; exit 1; }

# ---- the certificate all three present -------------------------------------
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

# ---- pods ------------------------------------------------------------------------
for ip in $PODS; do
    start "pod_${ip##*.}" "$PODSERVER" --listen "$ip:$POD_PORT" --name "pod-${ip##*.}" --threads 1
done
for ip in $PODS; do
    $MEASURE wait "$ip:$POD_PORT" 5 || { echo "tls bench: podserver $ip did not start"; exit 1; }
done

# ---- configurations --------------------------------------------------------------
cat >"$TMP/ingressd.yaml" <<EOF
apiVersion: ingressd/v1
kind: ProxyConfig
spec:
  listen:
    - address: 127.0.0.1:${PORT[ingressd]}
      tls: true
  admin: 127.0.0.1:$ADMIN_PORT
  workers: $WORKERS
  defaultCertificate: default/bench-tls
---
apiVersion: v1
kind: Secret
metadata: {name: bench-tls, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$TMP/tls.crt")
  tls.key: $(base64 -w0 "$TMP/tls.key")
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
    printf '  - addresses: ["%s"]\n    conditions: {ready: true}\n' "$ip" >>"$TMP/ingressd.yaml"
done
cat >>"$TMP/ingressd.yaml" <<EOF
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: default}
spec:
  tls:
    - hosts: [$HOST]
      secretName: bench-tls
  rules:
    - host: $HOST
      http:
        paths:
          - {path: /, pathType: Prefix, backend: {service: {name: bench, port: {number: 80}}}}
EOF

mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
{
    [ "$(id -u)" = 0 ] && echo "user root;"
    cat <<EOF
worker_processes $WORKERS;
worker_rlimit_nofile $NOFILE;
daemon off;
master_process on;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections $NOFILE; use epoll; accept_mutex off; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
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
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve $ECDH_GROUPS;
    upstream bench {
EOF
    for ip in $PODS; do echo "        server $ip:$POD_PORT;"; done
    cat <<EOF
        keepalive 512;
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl reuseport backlog=4096;
        server_name $HOST;
        ssl_certificate $TMP/tls.crt;
        ssl_certificate_key $TMP/tls.key;
        location / { proxy_pass http://bench; }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"

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
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $TMP/tls.pem alpn http/1.1 curves $ECDH_GROUPS
    option forwardfor
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Real-IP %[src]
    http-response set-header X-Request-ID %[unique-id]
    default_backend be_bench

backend be_bench
    balance roundrobin
EOF
    for ip in $PODS; do echo "    server pod${ip##*.} $ip:$POD_PORT"; done
} >"$TMP/haproxy.cfg"

# ---- start the proxies -------------------------------------------------------------
declare -A PID OK
start ingressd "$INGRESSD" -c "$TMP/ingressd.yaml"; PID[ingressd]=$LAST_PID
if [ -x "$NGINX" ]; then
    start nginx "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/logs/error.log" -c "$TMP/nginx/nginx.conf"
    PID[nginx]=$LAST_PID
fi
if [ -x "$HAPROXY" ]; then
    start haproxy "$HAPROXY" -db -f "$TMP/haproxy.cfg"; PID[haproxy]=$LAST_PID
fi

log "ingressd TLS bench $STAMP: $(nproc) CPUs, workers=$WORKERS, ${DUR}s x $ROUNDS round(s), certificate EC P-256 ($HOST)"
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared: compare CPU us/request)"
log "ingressd $(git rev-parse --short HEAD 2>/dev/null || echo '?'), nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), $("$HAPROXY" -v 2>/dev/null | head -1 | cut -d' ' -f1-3), wrk $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"

# a proxy takes part only if it answers 200 over TLS with SNI bench.local
for t in $TARGETS; do
    [ -n "${PID[$t]:-}" ] || { log "!! $t not installed: skipped"; continue; }
    code=000
    if $MEASURE wait "127.0.0.1:${PORT[$t]}" 10; then
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' --cacert "$TMP/tls.crt" \
                --resolve "$HOST:${PORT[$t]}:127.0.0.1" "https://$HOST:${PORT[$t]}/" || true)
            [ "$code" = 200 ] && break
            sleep 0.2
        done
    fi
    if [ "$code" = 200 ]; then
        OK[$t]=1
    else
        log "!! $t (127.0.0.1:${PORT[$t]}) answered '$code' to GET https://$HOST/: skipped. Its log:"
        tail -n 5 "$TMP/$t.log" 2>/dev/null | sed 's/^/   | /' | tee -a "$TXT"
    fi
done
[ "${OK[ingressd]:-0}" = 1 ] || { log "tls bench: ingressd did not answer; nothing to compare"; exit 1; }

run_one() { # TARGET VARIANT ROUND DURATION OUT
    local t=$1 v=$2 r=$3 d=$4 out=$5 close=""
    [ "${OK[$t]:-0}" = 1 ] || return 0
    if [ "$v" = tlsfull ]; then
        python3 "$ROOT/bench/tls_handshake.py" "$out" "$t" "$v" "$r" "${PID[$t]}" "$HOST" \
            "${PORT[$t]}" "$d" "$HS_PROCS"
        return
    fi
    [ "$v" = tlsresume ] && close="-H Connection:close"
    # shellcheck disable=SC2086
    $MEASURE run "$out" "$t" "$v" "$r" "${PID[$t]}" "https://$HOST:${PORT[$t]}/" -- \
        -t1 -c50 $close -d "${d}s" --timeout 5s -s "$TMP/sni.lua"
}

log ""
log "== warm-up (1 s per proxy)"
for t in $TARGETS; do run_one "$t" tls 0 1 "$TMP/warmup.jsonl" >/dev/null; done

for r in $(seq "$ROUNDS"); do
    log ""
    log "== round $r/$ROUNDS"
    for v in $VARIANTS; do
        for t in $TARGETS; do
            run_one "$t" "$v" "$r" "$DUR" "$JSONL" | tee -a "$TXT"
        done
    done
done

# the table is measure.py's (the same as make bench's); its list of the data-plane
# issue's targets is cut to the TLS lines, the only ones this run can check
log ""
$MEASURE report "$JSONL" "$WORKERS" | grep -v '^  -  ' | tee -a "$TXT"

# one-line verdict against issue 6: "target at least nginx's figures"
python3 - "$JSONL" <<'EOF' | tee -a "$TXT"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(v, n, k):
    xs = [r[k] for r in rows if r["variant"] == v and r["name"] == n and r.get(k) is not None]
    return statistics.median(xs) if xs else None
parts, ok, missing = [], True, False
for v, what in (("tls", "keep-alive req/s"), ("tlsresume", "resumed handshakes/s"),
                ("tlsfull", "full handshakes/s")):
    i, n = med(v, "ingressd", "rps"), med(v, "nginx", "rps")
    iu, nu = med(v, "ingressd", "us_per_req"), med(v, "nginx", "us_per_req")
    if i is None or n is None:
        missing = True
        parts.append("%s: no nginx figure" % what)
        continue
    errs = sum(r["non2xx"] + r["sockerr"] for r in rows if r["variant"] == v and r["name"] == "ingressd")
    met = i >= n and errs == 0
    ok = ok and met
    parts.append("%s %.0f vs nginx %.0f (x%.2f; CPU/req x%s)%s" % (
        what, i, n, i / n if n else 0, "%.2f" % (iu / nu) if iu and nu else "-",
        ", %d ingressd errors" % errs if errs else ""))
verdict = "UNKNOWN" if missing else ("MET" if ok else "MISS")
print("verdict (issue 6, TLS at least nginx's figures): %s: %s" % (verdict, "; ".join(parts)))
EOF
cp "$TXT" bench/out/tls-latest.txt
echo "results: $TXT ($JSONL)"
