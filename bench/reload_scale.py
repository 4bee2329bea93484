#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reload at scale, for bench/run.sh: how long ingressd takes from a file change to
serving the new snapshot on every worker, with 10,000 Ingress rules and 50,000
endpoints, and what that costs in memory. Pure python3 stdlib.

  reload_scale.py INGRESSD POD_ADDR OUT.jsonl [WORKERS] [RULES] [ENDPOINTS] [REPEAT]

The configuration: 100 Ingresses x 100 rules (hosts h0.bench ... h99.bench, paths
/p0 ... /p99) over 1,000 Services of 50 endpoints each (loopback addresses that
nobody needs to answer: no health checks are configured, and only the probe
route below is requested), plus a probe Service whose one endpoint is the real
pod POD_ADDR and an Ingress "probe" on host probe.bench.

Two kinds of change, REPEAT times each, alternating back and forth:
  full   the probe Ingress's path moves between /v0 and /v1: a route change,
         which needs the router rebuilt;
  slice  the probe EndpointSlice's endpoint flips between ready and not ready:
         an EndpointSlice-only change (pods added or removed).
For each change it measures, from the rename of the new file over the old one:
  - "first": the first probe request (a new connection each time) that shows the
    new state (200 on the new path or after ready, 404/503 otherwise);
  - "all": admin /config reporting workers_generation_min >= the new generation
    (every worker has adopted the new snapshot);
  - ingressd's own "applied in X ms" from its log;
  - peak RSS while it happened (sampled every 2 ms) against the steady RSS before.
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

LISTEN = "127.0.0.1:31090"
ADMIN = "127.0.0.1:31990"


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def get(addr, path, host, timeout=2.0):
    """Status of GET path on a new connection, or 0 on any error."""
    h, p = addr.rsplit(":", 1)
    try:
        s = socket.create_connection((h, int(p)), timeout=timeout)
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host))
                  .encode())
        data = b""
        while b"\r\n" not in data:
            d = s.recv(4096)
            if not d:
                break
            data += d
        s.close()
        m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def admin_json(path, timeout=5.0):
    h, p = ADMIN.rsplit(":", 1)
    s = socket.create_connection((h, int(p)), timeout=timeout)
    s.sendall(("GET %s HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n" % path).encode())
    data = b""
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        data += d
    s.close()
    body = data.split(b"\r\n\r\n", 1)[1]
    if b"transfer-encoding: chunked" in data.split(b"\r\n\r\n", 1)[0].lower():
        out, rest = b"", body
        while rest:
            size_s, _, rest = rest.partition(b"\r\n")
            size = int(size_s.split(b";")[0], 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        body = out
    return json.loads(body)


def config(workers, nrules, neps, probe_addr, probe_path, probe_ready):
    pod_ip, pod_port = probe_addr.rsplit(":", 1)
    nsvc = max(1, neps // 50)
    per = neps // nsvc
    ning = max(1, nrules // 100)
    rules_per = nrules // ning
    out = ["apiVersion: ingressd/v1\nkind: ProxyConfig\nspec:\n  listen:\n"
           "    - address: %s\n  admin: %s\n  workers: %d\n" % (LISTEN, ADMIN, workers)]
    for i in range(nsvc):
        out.append("---\napiVersion: v1\nkind: Service\nmetadata: {name: svc%d, namespace: scale}\n"
                   "spec:\n  ports:\n    - {name: http, port: 80, targetPort: 8080}\n" % i)
        eps = "".join('  - addresses: ["127.%d.%d.%d"]\n    conditions: {ready: true}\n'
                      % (1 + i // 250, i % 250, j + 1) for j in range(per))
        out.append("---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                   "metadata:\n  name: svc%d-1\n  namespace: scale\n"
                   "  labels: {kubernetes.io/service-name: svc%d}\naddressType: IPv4\n"
                   "ports:\n  - {name: http, port: 8080}\nendpoints:\n%s" % (i, i, eps))
    for k in range(ning):
        paths = "".join("          - {path: /p%d, pathType: Prefix, backend: {service: "
                        "{name: svc%d, port: {number: 80}}}}\n" % (m, (k * rules_per + m) % nsvc)
                        for m in range(rules_per))
        out.append("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n"
                   "metadata: {name: ing%d, namespace: scale}\nspec:\n  rules:\n"
                   "    - host: h%d.bench\n      http:\n        paths:\n%s" % (k, k, paths))
    out.append("---\napiVersion: v1\nkind: Service\nmetadata: {name: probe, namespace: scale}\n"
               "spec:\n  ports:\n    - {name: http, port: 80, targetPort: %s}\n" % pod_port)
    out.append("---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
               "metadata:\n  name: probe-1\n  namespace: scale\n"
               "  labels: {kubernetes.io/service-name: probe}\naddressType: IPv4\n"
               "ports:\n  - {name: http, port: %s}\nendpoints:\n"
               '  - addresses: ["%s"]\n    conditions: {ready: %s}\n'
               % (pod_port, pod_ip, "true" if probe_ready else "false"))
    out.append("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n"
               "metadata: {name: probe, namespace: scale}\nspec:\n  rules:\n"
               "    - host: probe.bench\n      http:\n        paths:\n"
               "          - {path: %s, pathType: Prefix, backend: {service: {name: probe, "
               "port: {number: 80}}}}\n" % probe_path)
    return "".join(out)


class Sampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop_ev = pid, 0, threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            self.peak = max(self.peak, rss_kb(self.pid))
            time.sleep(0.002)


def main(argv):
    ingressd, pod, out_path = argv[1], argv[2], argv[3]
    workers = int(argv[4]) if len(argv) > 4 else 1
    nrules = int(argv[5]) if len(argv) > 5 else 10000
    neps = int(argv[6]) if len(argv) > 6 else 50000
    repeat = int(argv[7]) if len(argv) > 7 else 5
    tmp = tempfile.mkdtemp(prefix="ingressd-scale-")
    cfg = os.path.join(tmp, "scale.yaml")
    logf = os.path.join(tmp, "ingressd.log")
    state = {"path": "/v0", "ready": True}

    def write(**kw):
        state.update(kw)
        text = config(workers, nrules, neps, pod, state["path"], state["ready"])
        with open(cfg + ".tmp", "w") as f:
            f.write(text)
        return text

    text = write()
    os.replace(cfg + ".tmp", cfg)
    print("  config: %d rules, %d endpoints, %.1f MB of YAML" % (nrules, neps, len(text) / 1e6),
          flush=True)
    lf = open(logf, "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen([ingressd, "-c", cfg], stdout=lf, stderr=subprocess.STDOUT)
    results = []
    try:
        deadline = time.monotonic() + 120
        while get(LISTEN, "/v0", "probe.bench") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(logf, "rb") as f:
                    tail = f.read()[-1500:].decode(errors="replace")
                print("  ingressd did not serve the scale config (exit %s):\n%s" % (
                    proc.poll(), tail), flush=True)
                return 0
            time.sleep(0.05)
        start_s = time.monotonic() - t0
        time.sleep(1.0)
        steady = rss_kb(proc.pid)
        print("  started and serving in %.2f s; steady RSS %.1f MB" % (start_s, steady / 1024),
              flush=True)

        def change(kind, i):
            if kind == "full":
                new = "/v1" if state["path"] == "/v0" else "/v0"
                write(path=new)
                want = lambda: get(LISTEN, new, "probe.bench", 1.0) == 200
            else:
                new = not state["ready"]
                write(ready=new)
                want = lambda: get(LISTEN, state["path"], "probe.bench", 1.0) == (200 if new else 503)
            gen0 = admin_json("/config").get("generation", 0)
            with open(logf, "rb") as f:
                log0 = len(f.read())
            base = rss_kb(proc.pid)
            sam = Sampler(proc.pid)
            sam.start()
            t = time.monotonic()
            os.replace(cfg + ".tmp", cfg)
            first = all_ = None
            dl = t + 30
            while time.monotonic() < dl:
                if first is None and want():
                    first = time.monotonic() - t
                if first is not None:
                    try:
                        c = admin_json("/config")
                        if c.get("generation", 0) > gen0 and c.get("workers_generation_min", 0) >= c["generation"]:
                            all_ = time.monotonic() - t
                            break
                    except (OSError, ValueError):
                        pass
                time.sleep(0.002)
            time.sleep(0.3)
            sam.stop_ev.set()
            sam.join()
            with open(logf, "rb") as f:
                newlog = f.read()[log0:].decode(errors="replace")
            m = re.findall(r"applied in ([\d.]+) ms", newlog)
            r = {"variant": "reload-scale", "kind": kind, "i": i, "rules": nrules, "endpoints": neps,
                 "first_ms": first and first * 1000, "all_ms": all_ and all_ * 1000,
                 "applied_ms": float(m[-1]) if m else None, "steady_kb": steady, "before_kb": base,
                 "peak_kb": sam.peak}
            results.append(r)
            print("  %-5s #%d: first request on new state %s ms, all workers %s ms, "
                  "ingressd says %s ms; RSS %.1f -> peak %.1f MB (%.2fx steady)" % (
                      kind, i, "%.1f" % r["first_ms"] if first else "TIMEOUT",
                      "%.1f" % r["all_ms"] if all_ else "TIMEOUT",
                      "%.1f" % r["applied_ms"] if m else "?", base / 1024, sam.peak / 1024,
                      sam.peak / max(1, steady)), flush=True)

        for i in range(repeat):
            change("full", i)
        for i in range(repeat):
            change("slice", i)
        with open(out_path, "a") as f:
            for r in results:
                f.write(json.dumps(r) + "\n")

        def med(kind, key):
            v = [r[key] for r in results if r["kind"] == kind and r[key] is not None]
            return ("%.1f" % statistics.median(v)) if v else "-", ("%.1f" % max(v)) if v else "-"
        print("  reload at scale (%d rules, %d endpoints, %d workers), median / max of %d:" % (
            nrules, neps, workers, repeat))
        for kind in ("full", "slice"):
            pk = max((r["peak_kb"] for r in results if r["kind"] == kind), default=0)
            print("    %-5s all workers %s / %s ms, first request %s / %s ms, ingressd %s / %s ms, "
                  "peak RSS %.2fx steady" % ((kind,) + med(kind, "all_ms") + med(kind, "first_ms")
                                              + med(kind, "applied_ms") + (pk / max(1, steady),)))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        lf.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
