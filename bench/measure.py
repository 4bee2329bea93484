#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Measurement helpers for bench/run.sh and bench/tls_handshake.py (pure python3 stdlib).

  measure.py wait ADDR [TIMEOUT]             exit 0 once ADDR accepts TCP, 1 on timeout
  measure.py run  OUT.jsonl NAME VARIANT ROUND PID URL -- WRK-ARGS...
        runs `wrk --latency WRK-ARGS URL`, measuring the CPU time (utime+stime) of
        PID and all its descendants (nginx workers) across the run and their RSS at
        the end; appends one JSON line to OUT.jsonl and prints a one-line summary.
  measure.py idle OUT.jsonl NAME PID ADDR HOST N
        opens N keep-alive connections to ADDR, sends one request on each and reads
        the response (so every connection has served a request and sits idle), then
        reports (RSS after - RSS before) / N for PID's process tree.
  measure.py report OUT.jsonl [WORKERS]     prints the comparison table (medians over rounds)

CPU and RSS come from /proc/PID/stat and /proc/PID/status, summed over the tree.
"""
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree(pid):
    """PID and all its descendants (by ppid), as found in /proc now."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_rss(pid):
    """(cpu seconds, rss kB) summed over PID's tree. The root's cutime+cstime (its reaped
    children) is included, so workers that exit during a run (nginx and HAProxy
    reloads) still count: a child alive at the start and reaped before the end moves
    from the live sum to the root's cutime, and the difference is what it used."""
    cpu, rss = 0.0, 0
    for p in tree(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                fl = f.read().rsplit(")", 1)[1].split()
            cpu += (int(fl[11]) + int(fl[12])) / CLK_TCK
            if p == pid:
                cpu += (int(fl[13]) + int(fl[14])) / CLK_TCK
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return cpu, rss


def parse_wrk(out):
    """wrk --latency output -> this file's JSON-line fields. The parsing itself is the
    integration harness's (tests/integration/lib.py), so that tests and bench read wrk
    alike; imported here, lazily: lib installs signal handlers when imported."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "tests", "integration"))
    import lib  # noqa: E402
    w = lib.parse_wrk(out)
    r = {k: w[k] for k in ("requests", "rps", "p50_ms", "p99_ms", "non2xx")}
    r["sockerr"] = w["socket_errors"]
    if w["socket_errors"]:
        r["sockerr_detail"] = "Socket errors: " + ", ".join(
            "%s %d" % kv for kv in w["errors"].items())
    return r


def cmd_wait(addr, timeout="10"):
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + float(timeout)
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=0.3).close()
            return 0
        except OSError:
            time.sleep(0.05)
    return 1


def cmd_run(out, name, variant, rnd, pid, url, *wrk_args):
    pid = int(pid)
    wrk_args = [a for a in wrk_args if a != "--"]
    c0, _ = cpu_rss(pid)
    t0 = time.monotonic()
    p = subprocess.run(["wrk", "--latency"] + wrk_args + [url], capture_output=True, text=True)
    wall = time.monotonic() - t0
    c1, rss = cpu_rss(pid)
    r = parse_wrk(p.stdout)
    r.update(name=name, variant=variant, round=int(rnd), cpu_s=c1 - c0, rss_kb=rss, wall_s=wall,
             us_per_req=(c1 - c0) * 1e6 / r["requests"] if r["requests"] else None)
    if p.returncode != 0:
        r["error"] = p.stderr.strip()[:200]
    with open(out, "a") as f:
        f.write(json.dumps(r) + "\n")
    print("  %-9s %-10s r%s  %9.0f req/s  p50 %7.3fms  p99 %7.3fms  cpu %6.1fus/req  "
          "rss %7d kB  non2xx %d  sockerr %d%s" % (
              name, variant, rnd, r["rps"], r["p50_ms"] or 0, r["p99_ms"] or 0,
              r["us_per_req"] or 0, rss, r["non2xx"], r["sockerr"],
              ("  ERROR " + r["error"]) if "error" in r else ""), flush=True)
    return 0


def _open_batch(h, port, req, k, deadline):
    """Open K connections, send REQ on each, read each response head: (socks, failed)."""
    sel = selectors.DefaultSelector()
    socks, failed, pending = [], 0, 0
    for _ in range(k):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((h, port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, [b""])
        pending += 1
    while pending and time.monotonic() < deadline:
        for key, ev in sel.select(timeout=1):
            s = key.fileobj
            try:
                if ev & selectors.EVENT_WRITE:
                    s.send(req)
                    sel.modify(s, selectors.EVENT_READ, key.data)
                    continue
                d = s.recv(65536)
                if not d:
                    raise OSError("closed")
                key.data[0] += d
                if b"\r\n\r\n" in key.data[0]:
                    sel.unregister(s)
                    pending -= 1
            except OSError:
                sel.unregister(s)
                pending -= 1
                failed += 1
    sel.close()
    return socks, failed + pending


def cmd_idle(out, name, pid, addr, host, n):
    pid, n = int(pid), int(n)
    h, port = addr.rsplit(":", 1)
    port = int(port)
    req = ("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host).encode()
    # warm up, so lazily allocated pools exist before "before"
    warm, _ = _open_batch(h, port, req, 50, time.monotonic() + 10)
    for s in warm:
        s.close()
    time.sleep(0.5)
    _, rss0 = cpu_rss(pid)
    socks, failed = [], 0
    deadline = time.monotonic() + 60
    while len(socks) < n and time.monotonic() < deadline:
        ss, f = _open_batch(h, port, req, min(500, n - len(socks)), deadline)
        socks += ss
        failed += f
    time.sleep(1.0)
    _, rss1 = cpu_rss(pid)
    ok = max(1, len(socks) - failed)
    per = (rss1 - rss0) * 1024.0 / ok
    r = {"name": name, "variant": "idle", "conns": len(socks), "failed": failed, "rss0_kb": rss0,
         "rss1_kb": rss1, "bytes_per_conn": per}
    for s in socks:
        s.close()
    with open(out, "a") as f:
        f.write(json.dumps(r) + "\n")
    print("  %-9s idle: %d conns (%d failed): RSS %d -> %d kB = %.0f bytes/conn" % (
        name, len(socks), failed, rss0, rss1, per), flush=True)
    return 0


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, f):
    return "-" if v is None else f % v


def cmd_report(path, workers="1"):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    runs = [r for r in rows if r.get("variant") != "idle"]
    idle = {r["name"]: r for r in rows if r.get("variant") == "idle"}
    variants, names = [], []
    for r in runs:
        if r["variant"] not in variants:
            variants.append(r["variant"])
        if r["name"] not in names:
            names.append(r["name"])
    agg = {}
    for v in variants:
        for n in names:
            rs = [r for r in runs if r["variant"] == v and r["name"] == n]
            if not rs:
                continue
            agg[v, n] = {
                "rps": med([r["rps"] for r in rs]), "p50": med([r["p50_ms"] for r in rs]),
                "p99": med([r["p99_ms"] for r in rs]), "rss": med([r["rss_kb"] for r in rs]),
                "us": med([r["us_per_req"] for r in rs]),
                "non2xx": sum(r["non2xx"] for r in rs), "sockerr": sum(r["sockerr"] for r in rs),
                "n": len(rs)}
    print("ingressd benchmark (median of %d round(s); workers/threads = %s; %d CPUs shared by "
          "wrk, pods and proxy)" % (max((a["n"] for a in agg.values()), default=0), workers,
                                     os.cpu_count()))
    hdr = ("%-10s %-9s %10s %9s %9s %9s %9s %8s %9s %9s %7s %7s" % (
        "variant", "target", "req/s", "p50 ms", "p99 ms", "RSS MB", "CPU us/r", "x ceil",
        "x nginx", "x haprx", "non2xx", "sockerr"))
    print(hdr)
    print("-" * len(hdr))
    for v in variants:
        ceil = agg.get((v, "ceiling"))
        for n in names:
            a = agg.get((v, n))
            if not a:
                continue
            xc = a["rps"] / ceil["rps"] if ceil and ceil["rps"] and n != "ceiling" else None
            xn = xh = None
            if n == "ingressd":
                ng, hp = agg.get((v, "nginx")), agg.get((v, "haproxy"))
                xn = a["rps"] / ng["rps"] if ng and ng["rps"] else None
                xh = a["rps"] / hp["rps"] if hp and hp["rps"] else None
            print("%-10s %-9s %10s %9s %9s %9s %9s %8s %9s %9s %7d %7d" % (
                v, n, fmt(a["rps"], "%.0f"), fmt(a["p50"], "%.3f"), fmt(a["p99"], "%.3f"),
                fmt(a["rss"] and a["rss"] / 1024.0, "%.1f"), fmt(a["us"], "%.1f"),
                fmt(xc, "%.2f"), fmt(xn, "%.2f"), fmt(xh, "%.2f"), a["non2xx"], a["sockerr"]))
        print()
    # CPU per request ratios: the fair comparison on a shared machine
    print("CPU per request, ingressd / other (lower is better; target <= 0.67 vs nginx):")
    for v in variants:
        i = agg.get((v, "ingressd"))
        parts = []
        for o in ("nginx", "haproxy"):
            a = agg.get((v, o))
            if i and a and i["us"] and a["us"]:
                parts.append("%s %.2f" % (o, i["us"] / a["us"]))
        print("  %-10s %s" % (v, ", ".join(parts) if parts else "-"))
    if idle:
        print()
        print("memory per idle keep-alive connection (RSS delta / connections):")
        for n, r in idle.items():
            print("  %-9s %6.0f bytes/conn  (%d conns, %d failed, RSS %d -> %d kB)" % (
                n, r["bytes_per_conn"], r["conns"], r["failed"], r["rss0_kb"], r["rss1_kb"]))
    targets(agg, idle)
    return 0


def targets(agg, idle):
    """The data-plane issue's targets, checked against this run (medians)."""
    g = lambda v, n, k: (agg.get((v, n)) or {}).get(k)
    lines = []

    def add(ok, text):
        lines.append("  %-5s %s" % ("-" if ok is None else ("MET" if ok else "MISS"), text))

    i, ng, hp = (g("ka50", n, "rps") for n in ("ingressd", "nginx", "haproxy"))
    add(None if None in (i, ng, hp) else (i >= ng and i >= hp),
        "ka50 throughput >= nginx and haproxy: %s vs %s / %s req/s" % tuple(
            fmt(x, "%.0f") for x in (i, ng, hp)))
    iu, nu = g("ka50", "ingressd", "us"), g("ka50", "nginx", "us")
    add(None if None in (iu, nu) else iu <= nu * 2 / 3,
        "ka50 CPU/request <= 2/3 of nginx: %s vs %s us (limit %s)" % (
            fmt(iu, "%.1f"), fmt(nu, "%.1f"), fmt(nu and nu * 2 / 3, "%.1f")))
    p = [g("ka50", n, "p99") for n in ("ingressd", "nginx", "haproxy")]
    add(None if None in p else p[0] <= min(p[1:]),
        "ka50 p99 no higher than either: %s vs %s / %s ms" % tuple(fmt(x, "%.2f") for x in p))
    a = agg.get(("ka1000", "ingressd"))
    add(None if not a else (a["non2xx"] == 0 and a["sockerr"] == 0),
        "-c 1000: zero non-2xx and socket errors: %s / %s" % (
            a and a["non2xx"], a and a["sockerr"]))
    r = idle.get("ingressd")
    add(None if not r else r["bytes_per_conn"] < 5000,
        "idle keep-alive connection < 5 KB: %s bytes" % (fmt(r and r["bytes_per_conn"], "%.0f")))
    s2, s1000 = g("ka50", "ingressd", "us"), g("rules1000", "ingressd", "us")
    add(None if None in (s2, s1000) else s1000 <= s2 * 1.1,
        "no loss from 2 to 1,000 rules (CPU/request within 10%%): %s -> %s us" % (
            fmt(s2, "%.1f"), fmt(s1000, "%.1f")))
    rl = agg.get(("reload", "ingressd"))
    add(None if not rl else (rl["non2xx"] == 0 and rl["sockerr"] == 0),
        "reload 10x/s under load: zero non-2xx and socket errors: %s / %s" % (
            rl and rl["non2xx"], rl and rl["sockerr"]))
    # TLS (issue 6: "at least nginx's figures"). tls and tlsresume are TLS 1.2 (the
    # Debian wrk speaks no 1.3) and tlsresume's handshakes are resumed ones (wrk keeps
    # the session); tlsfull is full TLS 1.3 handshakes from a python client that
    # bounds its req/s, so its CPU per request is printed beside it
    for v, what in (("tls", "TLS 1.2 keep-alive req/s"),
                    ("tlsresume", "TLS 1.2 resumed handshakes/s (wrk, Connection: close)"),
                    ("tlsfull", "TLS 1.3 full handshakes/s (tls_handshake.py)")):
        ti, tn = g(v, "ingressd", "rps"), g(v, "nginx", "rps")
        iu, nu = g(v, "ingressd", "us"), g(v, "nginx", "us")
        add(None if None in (ti, tn) else ti >= tn, "%s >= nginx: %s vs %s (CPU us/req %s vs %s)" % (
            what, fmt(ti, "%.0f"), fmt(tn, "%.0f"), fmt(iu, "%.1f"), fmt(nu, "%.1f")))
    print()
    print("targets (issue figures; req/s and p99 are noisy on a shared 2-core machine):")
    print("\n".join(lines))


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    cmd = {"wait": cmd_wait, "run": cmd_run, "idle": cmd_idle, "report": cmd_report}[argv[1]]
    return cmd(*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
