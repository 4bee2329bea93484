#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Health: pod killed under load (retries, zero client errors), active checks taking a
hung pod out within interval x threshold and a restarted one back after the healthy
threshold, passive ejection of a pod answering 5xx.
Ports 23100-23199; pods on 127.0.0.2-127.0.0.9."""
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F401,F403
import lib as _lib  # noqa: E402  (the underscore helpers)

BASE = 23100
LISTEN = "127.0.0.1:%d" % BASE
ADMIN = "127.0.0.1:%d" % (BASE + 90)
HOST = {"Host": "hc.test"}

INTERVAL_MS, TIMEOUT_MS, UNHEALTHY, HEALTHY = 400, 150, 2, 2
SLACK = 0.5  # seconds, for a loaded 2-core machine (probe scheduling, admin polling)
HC = {
    "ingressd/health-check-path": "/healthz",
    "ingressd/health-check-interval": "%dms" % INTERVAL_MS,
    "ingressd/health-check-timeout": "%dms" % TIMEOUT_MS,
    "ingressd/health-check-unhealthy-threshold": str(UNHEALTHY),
    "ingressd/health-check-healthy-threshold": str(HEALTHY),
}


def config(addrs, annotations=None, workers=2, extra_spec=None):
    return (proxy_config(listen=[LISTEN], admin=ADMIN, workers=workers, extra_spec=extra_spec)
            + backend("web", addrs, annotations=annotations)
            + ingress("web", [("hc.test", "/", "Prefix", "web", 80)]))


def health(proxy):
    """{address: health string} from admin /endpoints."""
    st, _, body = proxy.admin("/endpoints", timeout=2)
    check(st == 200, "/endpoints answered %s" % st)
    out = {}
    for svc in json.loads(body)["services"]:
        for ep in svc["endpoints"]:
            out[ep["address"]] = ep.get("health")
    return out


def wait_health(proxy, addr, state, timeout):
    t0 = time.monotonic()
    wait_until(lambda: health(proxy).get(addr) == state, timeout, 0.02,
               "%s to be %s" % (addr, state))
    return time.monotonic() - t0


def spread(n):
    seen = {}
    for _ in range(n):
        st, h, _ = http("GET", "http://%s/" % LISTEN, HOST, timeout=5)
        check(st == 200, "status %s" % st)
        seen[h.get("X-Pod")] = seen.get(h.get("X-Pod"), 0) + 1
    return seen


class Switchable(PyPod):
    """Answers 200 (X-Pod: NAME) until .hang is set, then accepts and never answers."""

    def __init__(self, addr, name):
        self.hang = False

        def h(pod, sock, req):
            while pod.hang and not pod._stop.is_set():
                pod._stop.wait(0.05)
            if pod._stop.is_set():
                return False
            return PyPod.answer_ok(pod, sock, req)
        super().__init__(addr, h, name)


@test
def killing_one_of_3_pods_under_wrk_fails_no_request():
    pods = [Pod("127.0.0.%d:%d" % (2 + i, BASE + 1), "pod-%d" % i, threads=2) for i in range(3)]
    Proxy(config([p.addr for p in pods]))
    spread(30)
    killer = threading.Timer(2.0, pods[1].stop)
    killer.start()
    r = wrk("http://%s/" % LISTEN, duration=6, conns=20, extra=["-H", "Host: hc.test"])
    killer.join()
    print("    wrk across a pod kill: %d requests, %.0f rps, non-2xx %d, socket errors %r"
          % (r["requests"], r["rps"], r["non2xx"], r["errors"]))
    check(r["requests"] > 1000, "wrk ran: %d" % r["requests"])
    check(r["non2xx"] == 0, "%d failed responses" % r["non2xx"])
    check(r["socket_errors"] == 0, "socket errors %r" % r["errors"])


@test
def hung_pod_out_within_interval_x_threshold_and_back_after_healthy_threshold():
    a = Pod("127.0.0.2:%d" % (BASE + 2), "pod-a")
    b = Pod("127.0.0.3:%d" % (BASE + 2), "pod-b")
    c = Switchable("127.0.0.4:%d" % (BASE + 2), "pod-c")
    p = Proxy(config([a.addr, b.addr, c.addr], annotations=HC))
    for x in (a, b, c):
        wait_health(p, x.addr, "up", 5)
    seen = spread(30)
    check(seen.get("pod-c"), "pod-c serves while healthy: %r" % seen)

    c.hang = True
    dt = wait_health(p, c.addr, "down", 5)
    # fast re-checks between states: worst case interval + threshold x timeout (700 ms here),
    # within interval x threshold (800 ms) as timeout <= interval / 2
    limit = (INTERVAL_MS * UNHEALTHY) / 1000 + SLACK
    print("    hung pod marked down after %.0f ms (interval %d ms x threshold %d, timeout %d ms)"
          % (dt * 1000, INTERVAL_MS, UNHEALTHY, TIMEOUT_MS))
    check(dt <= limit, "down after %.2fs > %.2fs" % (dt, limit))
    seen = spread(60)
    check("pod-c" not in seen, "no request to the hung pod once it is down: %r" % seen)

    c.hang = False
    dt = wait_health(p, c.addr, "up", 5)
    print("    recovered pod up after %.0f ms (healthy threshold %d)" % (dt * 1000, HEALTHY))
    check(dt <= (INTERVAL_MS * HEALTHY) / 1000 + SLACK, "up after %.2fs" % dt)
    wait_until(lambda: "pod-c" in spread(9), 3, msg="pod-c back in rotation")


@test
def restarted_pod_back_in_rotation_after_healthy_threshold():
    a = Pod("127.0.0.2:%d" % (BASE + 3), "pod-a")
    b = Pod("127.0.0.3:%d" % (BASE + 3), "pod-b")
    p = Proxy(config([a.addr, b.addr], annotations=HC))
    wait_health(p, a.addr, "up", 5)
    a.stop()
    dt = wait_health(p, a.addr, "down", 5)
    print("    killed pod down after %.0f ms" % (dt * 1000))
    seen = spread(20)
    check(seen == {"pod-b": 20}, "only pod-b while pod-a is down: %r" % seen)
    a = Pod("127.0.0.2:%d" % (BASE + 3), "pod-a2")
    dt = wait_health(p, a.addr, "up", 5)
    print("    restarted pod up after %.0f ms (healthy threshold %d x %d ms)"
          % (dt * 1000, HEALTHY, INTERVAL_MS))
    check(dt <= (INTERVAL_MS * HEALTHY) / 1000 + SLACK, "up after %.2fs" % dt)
    seen = spread(20)
    check(seen.get("pod-a2") == 10, "round robin includes it again: %r" % seen)


@test
def pod_answering_5xx_is_ejected_passively():
    good = [Pod("127.0.0.%d:%d" % (2 + i, BASE + 4), "pod-%d" % i) for i in range(2)]
    bad = PyPod.raw_response("127.0.0.5:%d" % (BASE + 4),
                             b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n", name="bad")
    p = Proxy(config([g.addr for g in good] + [bad.addr]))
    statuses = {}
    for _ in range(60):
        st, _, _ = http("GET", "http://%s/" % LISTEN, HOST, timeout=5)
        statuses[st] = statuses.get(st, 0) + 1
    print("    with a 502-answering pod: statuses %r, bad pod saw %d requests"
          % (statuses, len(bad.requests)))
    check(len(bad.requests) <= 8, "ejected after 5 consecutive failures: saw %d"
          % len(bad.requests))
    check(health(p).get(bad.addr) == "ejected", "admin shows it ejected: %r" % health(p))


def sick_pod(addr, name):
    """Serves / with 200 but fails its health check path with 503."""
    def h(pod, sock, req):
        keep = PyPod._keep(req)
        if req.target.startswith("/healthz"):
            PyPod.send_response(sock, 503, b"sick\n", keep=keep)
        else:
            PyPod.send_response(sock, 200, b"ok\n", [("X-Pod", pod.name)], keep=keep)
        return keep
    return PyPod(addr, h, name)


@test
def panic_threshold_fails_open_when_too_few_are_healthy():
    good = Pod("127.0.0.2:%d" % (BASE + 5), "good")
    sick = [sick_pod("127.0.0.%d:%d" % (3 + i, BASE + 5), "sick-%d" % i) for i in range(2)]
    addrs = [good.addr] + [x.addr for x in sick]
    p = Proxy(config(addrs, annotations=HC))
    for x in sick:
        wait_health(p, x.addr, "down", 5)
    seen = spread(30)
    check(seen == {"good": 30}, "without panic mode only the healthy pod serves: %r" % seen)
    p.stop()
    p = Proxy(config(addrs, annotations=HC, extra_spec={"panicThreshold": 50}))
    for x in sick:
        wait_health(p, x.addr, "down", 5)
    seen = spread(30)
    print("    1 of 3 healthy under panicThreshold 50: %r" % seen)
    check(len(seen) == 3, "panic mode spreads over every ready pod: %r" % seen)


@test
def not_ready_endpoints_get_no_traffic():
    pods = [Pod("127.0.0.%d:%d" % (2 + i, BASE + 6), "pod-%d" % i) for i in range(3)]
    y = (proxy_config(listen=[LISTEN], admin=ADMIN, workers=2)
         + service("web", [("http", 80, BASE + 6)])
         + endpointslice("web", [("http", BASE + 6)],
                         [pods[0].addr, (pods[1].addr, False), pods[2].addr])
         + ingress("web", [("hc.test", "/", "Prefix", "web", 80)]))
    Proxy(y)
    seen = spread(40)
    check(seen == {"pod-0": 20, "pod-2": 20}, "only ready endpoints, evenly: %r" % seen)


class TlsPod:
    """An HTTPS pod (self-signed): 200 with X-Pod on any path; /healthz answers .health_status."""

    def __init__(self, addr, name):
        self.addr, self.name, self.health_status, self.probes = addr, name, 200, 0
        d = tempfile.mkdtemp(prefix="ingressd-hc-tls-")
        k, c = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", k,
                        "-out", c, "-days", "2", "-subj", "/CN=pod.test"], check=True,
                       capture_output=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(c, k)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(split_addr(addr))
        self.lsock.listen(64)
        self.lsock.settimeout(0.1)
        self._stop = threading.Event()
        self._thr = threading.Thread(target=self._loop, daemon=True)
        self._thr.start()
        _lib._register(self)  # stopped with the test, like every harness process

    def _loop(self):
        while not self._stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        try:
            s.settimeout(5)
            t = self.ctx.wrap_socket(s, server_side=True)
            rd = _lib._Reader(t, 5)
            while True:
                m = read_message(rd)
                if m is None:
                    break
                start, headers, _, _, _ = m
                target = start[1] if len(start) > 1 else "/"
                st = 200
                if target.startswith("/healthz"):
                    self.probes += 1
                    st = self.health_status
                body = b"tls ok\n"
                keep = not any(k.lower() == "connection" and "close" in v.lower()
                               for k, v in headers)
                t.sendall(("HTTP/1.1 %d X\r\nX-Pod: %s\r\nContent-Length: %d\r\n%s\r\n"
                           % (st, self.name, len(body), "" if keep else "Connection: close\r\n")
                           ).encode() + body)
                if not keep:
                    break
        except (OSError, EOFError, ValueError, ssl.SSLError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass

    def stop(self):
        self._stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        self._thr.join(timeout=2)


@test
def https_backend_is_probed_over_tls():
    pod = TlsPod("127.0.0.2:%d" % (BASE + 7), "tls-pod")
    ann = dict(HC)
    ann["ingressd/backend-protocol"] = "HTTPS"
    p = Proxy(config([pod.addr], annotations=ann))
    dt = wait_health(p, pod.addr, "up", 5)
    check(pod.probes >= HEALTHY, "probes reached the pod over TLS: %d" % pod.probes)
    st, h, _ = http("GET", "http://%s/" % LISTEN, HOST, timeout=5)
    check(st == 200 and h.get("X-Pod") == "tls-pod", "proxied over TLS: %s" % st)
    pod.health_status = 503
    wait_health(p, pod.addr, "down", 5)
    pod.health_status = 200
    wait_health(p, pod.addr, "up", 5)
    print("    HTTPS pod up after %.0f ms of TLS probes; 503 -> down -> up again" % (dt * 1000))


main()
