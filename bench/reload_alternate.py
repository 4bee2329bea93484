#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""wrk at full load while the configuration alternates ten times a second (issue 5).

Two configuration versions differ in routes and endpoints: version A sends
/load to svc-a (pods .2, .3) and /probe to pod .2; version B sends /load to
svc-b (pods .4, .5) and /probe to pod .4. A writer renames the other version
over the watched file every 100 ms; after each write a prober polls /probe on
a fresh connection until the answering pod changes, which gives "route
change visible N ms after the write". wrk runs on /load all along; the figure
of merit is zero non-2xx responses and zero socket errors.

  bench/reload_alternate.py [SECONDS]     (env: B build dir, WORKERS, CONNS)
Called by `bench/reload_bench.sh alternate [SECONDS]`. Ports 24920-24939.
"""
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (parse_wrk: the same wrk parsing as make bench and the tests)

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
B = os.environ.get("B", "build")
INGRESSD = os.path.join(ROOT, B, "ingressd")
PODSERVER = os.path.join(ROOT, B, "bench", "podserver")
WORKERS = int(os.environ.get("WORKERS", "2"))
CONNS = int(os.environ.get("CONNS", "50"))
LISTEN = ("127.0.0.1", 24920)
ADMIN = ("127.0.0.1", 24921)
PODPORT = 24930


def version(v):
    load_svc, probe_ip = ("svc-a", "127.0.0.2") if v == 0 else ("svc-b", "127.0.0.4")
    out = ("---\napiVersion: ingressd/v1\nkind: ProxyConfig\nspec:\n  listen:\n"
           "    - address: %s:%d\n  admin: %s:%d\n  workers: %d\n" % (LISTEN + ADMIN + (WORKERS,)))
    for svc, ips in (("svc-a", ["127.0.0.2", "127.0.0.3"]), ("svc-b", ["127.0.0.4", "127.0.0.5"]),
                     ("probe", [probe_ip])):
        out += ("---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: bench}\n"
                "spec:\n  ports: [{name: http, port: 80, targetPort: %d}]\n" % (svc, PODPORT))
        out += ("---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
                "  name: %s-x\n  namespace: bench\n  labels: {kubernetes.io/service-name: %s}\n"
                "addressType: IPv4\nports: [{name: http, port: %d}]\nendpoints:\n"
                % (svc, svc, PODPORT))
        for ip in ips:
            out += "  - addresses: [%s]\n    conditions: {ready: true}\n" % ip
    out += ("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n"
            "  name: alt\n  namespace: bench\nspec:\n  rules:\n    - host: alt.test\n"
            "      http:\n        paths:\n"
            "          - {path: /load, pathType: Prefix, backend: {service: {name: %s, port: {number: 80}}}}\n"
            "          - {path: /probe, pathType: Prefix, backend: {service: {name: probe, port: {number: 80}}}}\n"
            % load_svc)
    return out


def probe_pod():
    s = socket.create_connection(LISTEN, timeout=2)
    try:
        s.sendall(b"GET /probe HTTP/1.1\r\nHost: alt.test\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            d = s.recv(4096)
            if not d:
                break
            data += d
        m = re.search(rb"\r\nX-Pod: (\S+)", data, re.I)
        return m.group(1).decode() if m else None
    finally:
        s.close()


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    work = tempfile.mkdtemp(prefix="ingressd-alt-")
    procs = []
    try:
        for i, ip in enumerate(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]):
            procs.append(subprocess.Popen([PODSERVER, "--listen", "%s:%d" % (ip, PODPORT),
                                           "--name", "pod-%s" % ip.rsplit(".", 1)[1]],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cfg = os.path.join(work, "ingressd.yaml")
        for v in (0, 1):
            with open(os.path.join(work, "v%d.yaml" % v), "w") as f:
                f.write(version(v))
        shutil.copyfile(os.path.join(work, "v0.yaml"), cfg)
        log = open(os.path.join(work, "ingressd.log"), "wb")
        px = subprocess.Popen([INGRESSD, "-c", cfg], stdout=log, stderr=subprocess.STDOUT)
        procs.append(px)
        deadline = time.time() + 10
        while True:
            try:
                if probe_pod() == "pod-2":
                    break
            except OSError:
                pass
            if time.time() > deadline:
                sys.exit("ingressd did not start")
            time.sleep(0.02)

        stop = threading.Event()
        lags, writes, misses = [], [0], [0]

        def writer():
            v = 1
            while not stop.is_set():
                t0 = time.monotonic()
                want = "pod-4" if v == 1 else "pod-2"
                shutil.copyfile(os.path.join(work, "v%d.yaml" % v), cfg + ".next")
                tw = time.monotonic()
                os.replace(cfg + ".next", cfg)
                writes[0] += 1
                while True:
                    try:
                        if probe_pod() == want:
                            lags.append((time.monotonic() - tw) * 1000)
                            break
                    except OSError:
                        pass
                    if time.monotonic() - tw > 1.0:
                        misses[0] += 1
                        break
                v ^= 1
                left = 0.1 - (time.monotonic() - t0)
                if left > 0:
                    stop.wait(left)

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        w = subprocess.run(["wrk", "-t2", "-c%d" % CONNS, "-d%ds" % seconds, "--timeout", "5s",
                            "-H", "Host: alt.test", "http://%s:%d/load" % LISTEN],
                           capture_output=True, text=True, timeout=seconds + 60)
        stop.set()
        th.join(5)
        r = measure.parse_wrk(w.stdout)
        if not r["requests"]:
            sys.exit("wrk did not run: %s" % w.stderr.strip()[:200])
        reqs, rps, non2xx, sockerr = r["requests"], r["rps"], r["non2xx"], r["sockerr"]
        lags.sort()
        p = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] if lags else float("nan")
        print("alternate %ds, %d workers, %d conns: %d requests (%.0f req/s), non-2xx %d, socket "
              "errors %d; %d config writes, route change visible after write: p50 %.1f ms, "
              "p90 %.1f ms, p99 %.1f ms, max %.1f ms, %d within 100 ms, %d > 1 s" % (
                  seconds, WORKERS, CONNS, reqs, rps, non2xx, sockerr, writes[0],
                  statistics.median(lags) if lags else float("nan"), p(0.90), p(0.99),
                  lags[-1] if lags else float("nan"), sum(1 for x in lags if x <= 100),
                  misses[0]))
        return 0 if non2xx == 0 and sockerr == 0 and misses[0] == 0 else 1
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.send_signal(signal.SIGTERM)
        for pr in procs:
            try:
                pr.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pr.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
