#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Reload benchmark (issue 5): time from a configuration file change to every
# worker serving the new snapshot, for a large configuration (default 10,000
# Ingress rules and 50,000 endpoints), for an EndpointSlice-only change and
# for a full change side by side, plus peak RSS during a reload vs steady RSS.
#
#   bench/reload_bench.sh [ROUNDS]        (env: B=build dir, INGRESSES, RULES,
#                                          SERVICES, ENDPOINTS, WORKERS)
#   bench/reload_bench.sh alternate [S]   wrk for S s (default 30) while the
#                                          configuration alternates 10x/s: non-2xx,
#                                          socket errors, write-to-visible latency
#                                          (bench/reload_alternate.py)
#
# Method: variants are generated ahead of time; each round copies the next
# variant beside the watched file and renames it over (as kubectl/editors do),
# then polls admin /config every millisecond until `generation` grew and
# `workers_generation_min` (the oldest snapshot a worker still serves) reached
# it. The figure therefore includes the watch debounce (<= 100 ms quiet/cap),
# the parse and build on the loader thread, and the workers' adoption.
# /config's last_reload.duration_ms (parse+build+publish alone) is reported
# beside it (and the log, kept as /tmp/ingressd-reload-bench.log, splits
# it into load and publish). Peak RSS: VmHWM after resetting it through /proc/PID/clear_refs.
set -e
cd "$(dirname "$0")/.."
B=${B:-build}
if [ "$1" = alternate ]; then
    [ -x "$B/ingressd" ] || make -s B="$B" all
    [ -x "$B/bench/podserver" ] || make -s B="$B" "$B/bench/podserver"
    exec env B="$B" python3 bench/reload_alternate.py "${2:-30}"
fi
ROUNDS=${1:-6}
INGRESSES=${INGRESSES:-1000}
RULES=${RULES:-10}
SERVICES=${SERVICES:-1000}
ENDPOINTS=${ENDPOINTS:-50}
WORKERS=${WORKERS:-2}
LISTEN=127.0.0.1:24900
ADMIN=127.0.0.1:24901

[ -x "$B/ingressd" ] || make -s B="$B" all
WORK=$(mktemp -d /tmp/ingressd-reload-bench-XXXXXX)
PID=
cleanup() {
    [ -f "$WORK/ingressd.log" ] && cp "$WORK/ingressd.log" /tmp/ingressd-reload-bench.log
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

gen() { # variant change file
    python3 bench/gen_big_config.py --out "$3" --variant "$1" --change "$2" \
        --ingresses "$INGRESSES" --rules "$RULES" --services "$SERVICES" \
        --endpoints "$ENDPOINTS" --listen $LISTEN --admin $ADMIN --workers "$WORKERS"
}
for change in slices full; do
    for v in 0 1; do gen $v $change "$WORK/$change-$v.yaml"; done
done
cp "$WORK/full-0.yaml" "$WORK/ingressd.yaml"
echo "config: $INGRESSES ingresses x $RULES rules, $SERVICES services x $ENDPOINTS endpoints," \
     "$(wc -c < "$WORK/ingressd.yaml") bytes, $WORKERS workers"

T0=$(date +%s.%N)
"$B/ingressd" -c "$WORK/ingressd.yaml" --log "$WORK/ingressd.log" &
PID=$!
python3 - "$PID" "$ADMIN" "$T0" <<'EOF'
import json, sys, time, urllib.request
pid, admin, t0 = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
deadline = time.time() + 60
while True:
    try:
        urllib.request.urlopen("http://%s/healthz" % admin, timeout=1).read()
        break
    except Exception:
        if time.time() > deadline:
            sys.exit("ingressd did not start")
        time.sleep(0.01)
print("start-up to admin serving: %.0f ms" % ((time.time() - t0) * 1000))
EOF

python3 - "$PID" "$ADMIN" "$WORK" "$ROUNDS" <<'EOF'
import json, os, shutil, statistics, sys, time, urllib.request
pid, admin, work, rounds = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = os.path.join(work, "ingressd.yaml")

def config():
    with urllib.request.urlopen("http://%s/config?routes=0" % admin, timeout=5) as r:
        return json.loads(r.read())

def status(key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0

def reset_peak():
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

def one(path):
    c0 = config()
    g0 = c0["generation"]
    shutil.copyfile(path, cfg + ".next")       # not timed: the file is ready beforehand
    time.sleep(0.3)
    steady = status("VmRSS")
    peak_ok = reset_peak()
    t0 = time.monotonic()
    wall_ms = int(time.time() * 1000)
    os.replace(cfg + ".next", cfg)
    while True:
        c = config()
        wg = c.get("workers_generation_min", c["generation"]) or c["generation"]
        if c["generation"] > g0 and wg >= c["generation"]:
            break
        if not c["last_reload"]["ok"] and c["last_reload"]["reloads_failed"] > c0["last_reload"]["reloads_failed"]:
            sys.exit("reload failed: %s" % c["last_reload"]["error"])
        if time.monotonic() - t0 > 30:
            sys.exit("no new generation within 30 s")
        time.sleep(0.001)
    total = (time.monotonic() - t0) * 1000
    peak = status("VmHWM") if peak_ok else 0
    # the outcome is recorded a moment after the swap: read this reload's own duration
    while c["last_reload"]["time_unix_ms"] < wall_ms and time.monotonic() - t0 < 30:
        time.sleep(0.001)
        c = config()
    return total, c["last_reload"]["duration_ms"], steady, peak

for change in ("slices", "full"):
    tot, dur, ratio = [], [], []
    one(os.path.join(work, "%s-0.yaml" % change))   # prime: the previous mode's file differs fully
    for i in range(rounds):
        total, d, steady, peak = one(os.path.join(work, "%s-%d.yaml" % (change, (i + 1) % 2)))
        tot.append(total)
        dur.append(d)
        if peak:
            ratio.append(peak / steady)
    print("%-6s change: file-to-all-workers median %.1f ms (min %.1f, max %.1f); "
          "reload build+publish median %.1f ms; peak/steady RSS max %.2f (steady %d MiB)" % (
              "slices" if change == "slices" else "full", statistics.median(tot), min(tot),
              max(tot), statistics.median(dur), max(ratio) if ratio else float("nan"),
              status("VmRSS") // 1024))
EOF
