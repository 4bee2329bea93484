#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Full-TLS-handshake load for bench/run.sh's tlsfull variant (pure python3 stdlib).

  tls_handshake.py OUT.jsonl NAME VARIANT ROUND PID HOST PORT SECONDS PROCS

Why it exists: wrk cannot measure new handshakes. With `Connection: close` it
reconnects through SSL_clear(), which keeps the session, so every "new"
connection is an abbreviated (resumed) TLS 1.2 handshake: no key exchange, no
signature (checked against nginx's $ssl_session_reused: 1840 of 1845 were
resumed). The Debian wrk also fails against a TLS-1.3-only server. This client
makes a fresh SSL object per request and offers no session, so each
request pays a full handshake (TLS 1.3, ECDHE + the server's ECDSA signature),
sends `GET / HTTP/1.1` with Host HOST and Connection: close (SNI HOST, to
127.0.0.1:PORT), and reads the response to its end.

PROCS processes run it in parallel for SECONDS. The client verifies nothing
(CERT_NONE): verification would only add client CPU. Python is slow, so req/s
here is bounded by the client on a 2-core machine; the figure that compares
proxies is CPU us/request of the proxy (bench/measure.py's cpu_rss over PID's
process tree, as for the wrk runs). Appends one JSON line in measure.py's
schema to OUT.jsonl (so `measure.py report` tabulates it) and prints the same
one-line summary.
"""
import json
import os
import socket
import ssl
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import measure  # noqa: E402  (cpu_rss: the same CPU accounting as the wrk runs)


def worker(host, port, deadline, wfd):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    req = ("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode()
    lat, non2xx, errs, version = [], 0, 0, None
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=host) as s:
                    version = version or s.version()
                    s.sendall(req)
                    buf = b"".join(iter(lambda: s.recv(65536), b""))  # to the close
            if not buf.startswith(b"HTTP/1.1 2"):
                non2xx += 1
            lat.append(time.monotonic() - t0)
        except (OSError, ssl.SSLError):
            errs += 1
    os.write(wfd, json.dumps({"lat": lat, "non2xx": non2xx, "errs": errs,
                              "version": version}).encode())
    os.close(wfd)


def main(argv):
    out, name, variant, rnd, pid, host, port, secs, procs = argv[1:10]
    pid, port, secs, procs = int(pid), int(port), float(secs), int(procs)
    c0, _ = measure.cpu_rss(pid)
    t0 = time.monotonic()
    deadline = t0 + secs
    kids = []
    for _ in range(procs):
        rfd, wfd = os.pipe()
        k = os.fork()
        if k == 0:
            os.close(rfd)
            try:
                worker(host, port, deadline, wfd)
            finally:
                os._exit(0)
        os.close(wfd)
        kids.append((k, rfd))
    res = []
    for k, rfd in kids:
        chunks = []
        while True:
            d = os.read(rfd, 1 << 20)
            if not d:
                break
            chunks.append(d)
        os.close(rfd)
        os.waitpid(k, 0)
        try:
            res.append(json.loads(b"".join(chunks)))
        except ValueError:
            res.append({"lat": [], "non2xx": 0, "errs": 1, "version": None})
    wall = time.monotonic() - t0
    c1, rss = measure.cpu_rss(pid)
    lat = sorted(x for r in res for x in r["lat"])
    n = len(lat)
    q = (lambda p: lat[min(n - 1, int(p * n))] * 1000.0) if n else (lambda p: None)
    r = {"requests": n, "rps": n / wall if wall else 0.0, "p50_ms": q(0.50), "p99_ms": q(0.99),
         "non2xx": sum(x["non2xx"] for x in res), "sockerr": sum(x["errs"] for x in res),
         "name": name, "variant": variant, "round": int(rnd), "cpu_s": c1 - c0, "rss_kb": rss,
         "wall_s": wall, "us_per_req": (c1 - c0) * 1e6 / n if n else None,
         "tls_version": next((x["version"] for x in res if x["version"]), None)}
    with open(out, "a") as f:
        f.write(json.dumps(r) + "\n")
    print("  %-9s %-10s r%s  %9.0f req/s  p50 %7.3fms  p99 %7.3fms  cpu %6.1fus/req  "
          "rss %7d kB  non2xx %d  sockerr %d  (%s, full handshakes, %d client procs)" % (
              name, variant, rnd, r["rps"], r["p50_ms"] or 0, r["p99_ms"] or 0,
              r["us_per_req"] or 0, rss, r["non2xx"], r["sockerr"], r["tls_version"], procs),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
