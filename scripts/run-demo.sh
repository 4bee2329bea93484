#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# scripts/run-demo.sh (`make run`): three demo pods and ingressd on conf/demo.yaml.
#
#   pod-a 127.0.0.2:18181, pod-b 127.0.0.3:18181   (Service demo/web)
#   pod-c 127.0.0.4:18181                          (Service demo/api)
#   ingressd 127.0.0.1:18080, admin 127.0.0.1:19901, in the foreground
#
# Ctrl-C (SIGINT) or SIGTERM stops ingressd (graceful drain) and the pods;
# whatever way the script ends, the trap kills every process it started.
# Environment: B (build dir, default build), DEMO_CONFIG (default conf/demo.yaml).
set -eu
cd "$(dirname "$0")/.."
B=${B:-build}
CONFIG=${DEMO_CONFIG:-conf/demo.yaml}
INGRESSD=$B/ingressd
PODSERVER=$B/bench/podserver
for bin in "$INGRESSD" "$PODSERVER"; do
    [ -x "$bin" ] || { echo "run-demo: $bin missing: run make all $PODSERVER" >&2; exit 1; }
done

PIDS=""
PROXY=""
cleanup() {
    trap - EXIT INT TERM
    [ -n "$PROXY" ] && kill -TERM "$PROXY" 2>/dev/null || true
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    # bounded: ingressd drains for at most its drainTimeout; give it 5 s, then SIGKILL
    for _ in $(seq 50); do
        alive=""
        for p in $PROXY $PIDS; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ -z "$alive" ] && break
        sleep 0.1
    done
    for p in $PROXY $PIDS; do kill -KILL "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PODLOG=$(mktemp /tmp/ingressd-demo-pods.XXXXXX)
n=0
for name in pod-a pod-b pod-c; do
    n=$((n + 1))
    addr=127.0.0.$((n + 1)):18181
    "$PODSERVER" --listen "$addr" --name "$name" >>"$PODLOG" 2>&1 &
    PIDS="$PIDS $!"
done
# each pod prints "listening ADDR" once bound; wait (bounded) for all three
for _ in $(seq 50); do
    [ "$(grep -c '^listening' "$PODLOG" 2>/dev/null || true)" -ge 3 ] && break
    sleep 0.1
done
if [ "$(grep -c '^listening' "$PODLOG" || true)" -lt 3 ]; then
    echo "run-demo: the pods did not start:" >&2
    cat "$PODLOG" >&2
    exit 1
fi
rm -f "$PODLOG"

"$INGRESSD" -t -c "$CONFIG" >/dev/null || { "$INGRESSD" -t -c "$CONFIG"; exit 1; }

cat <<MSG
ingressd demo: pods pod-a, pod-b (Service demo/web) and pod-c (Service demo/api) are up.
Starting $INGRESSD -c $CONFIG (Ctrl-C to stop). Try, in another terminal:

  curl -i -H 'Host: demo.local' http://127.0.0.1:18080/          # web: pod-a / pod-b, round robin
  curl -i -H 'Host: demo.local' http://127.0.0.1:18080/api/users # api: pod-c
  curl -i -H 'Host: other.example' http://127.0.0.1:18080/       # defaultBackend: web
  curl -s -H 'Host: demo.local' http://127.0.0.1:18080/echo      # what the pod received
  curl -s 'http://127.0.0.1:18080/?size=100000' -H 'Host: demo.local' | wc -c
  curl -i http://127.0.0.1:19901/healthz
  curl -s http://127.0.0.1:19901/metrics
  curl -s http://127.0.0.1:19901/config
  curl -s http://127.0.0.1:19901/endpoints
  curl -s -X POST http://127.0.0.1:19901/reload   # after editing $CONFIG (also watched)
  wrk -c 50 -d 5 -H 'Host: demo.local' http://127.0.0.1:18080/

MSG

"$INGRESSD" -c "$CONFIG" &
PROXY=$!
set +e
wait "$PROXY"
rc=$?
set -e
PROXY=""
exit "$rc"
