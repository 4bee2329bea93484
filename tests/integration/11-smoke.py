#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Basic smoke test of the real binary: it starts on a config, routes by host and path
to the right pods, answers 404 with no route, serves the default backend, keeps
connections alive, answers admin /healthz, validates with -t, exits 0 on SIGTERM.
Ports 21100-21199; pods on 127.0.0.2-127.0.0.5."""
import hashlib
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F403

BASE = 21100
LISTEN = "127.0.0.1:%d" % BASE
ADMIN = "127.0.0.1:%d" % (BASE + 99)
PODPORT = BASE + 1


def pods():
    return {n: Pod("127.0.0.%d:%d" % (i + 2, PODPORT), n)
            for i, n in enumerate(("pod-a", "pod-b", "pod-c"))}


def two_services(default_backend=None, admin=ADMIN):
    return (proxy_config(listen=[LISTEN], admin=admin, workers=2)
            + backend("svc-a", ["127.0.0.2:%d" % PODPORT])
            + backend("svc-b", ["127.0.0.3:%d" % PODPORT])
            + backend("svc-c", ["127.0.0.4:%d" % PODPORT])
            + ingress("smoke", [
                ("a.test", "/", "Prefix", "svc-a", 80),
                ("a.test", "/api", "Prefix", "svc-b", 80),
                ("a.test", "/exact", "Exact", "svc-c", "http"),
                ("b.test", "/", "Prefix", "svc-b", 80),
            ], default_backend=default_backend))


def get(p, path, host, **kw):
    return http("GET", p.url(path), {"Host": host}, **kw)


def pod_of(p, path, host):
    st, h, _ = get(p, path, host)
    return st, h.get("X-Pod")


@test
def routes_by_host_and_path():
    pods()
    p = Proxy(two_services())
    cases = [
        ("/", "a.test", "pod-a"), ("/x/y", "a.test", "pod-a"), ("/api", "a.test", "pod-b"),
        ("/api/v1", "a.test", "pod-b"), ("/apix", "a.test", "pod-a"),
        ("/exact", "a.test", "pod-c"), ("/exact/more", "a.test", "pod-a"),
        ("/", "b.test", "pod-b"), ("/anything", "B.TEST", "pod-b"), ("/", "a.test:80", "pod-a"),
    ]
    for path, host, want in cases:
        st, pod = pod_of(p, path, host)
        check(st == 200 and pod == want, "%s %s -> %s %s, want 200 %s" % (host, path, st, pod, want))


@test
def no_route_is_404():
    pods()
    p = Proxy(two_services())
    st, h, body = get(p, "/", "nowhere.test")
    check(st == 404, "unknown host: %s" % st)
    check(h.get("X-Pod") is None, "404 came from the proxy, not a pod")


@test
def default_backend_catches_the_rest():
    pods()
    p = Proxy(two_services(default_backend=("svc-c", 80)))
    check(pod_of(p, "/", "nowhere.test") == (200, "pod-c"), "unknown host -> default backend")
    check(pod_of(p, "/", "a.test") == (200, "pod-a"), "rules still win")


@test
def request_reaches_pod_intact():
    pods()
    p = Proxy(two_services())
    body = os.urandom(200000)
    st, h, out = http("POST", p.url("/echo/x?q=1"), {"Host": "a.test", "X-Custom": "v1"}, body)
    check(st == 200 and h.get("X-Pod") == "pod-a", "echo via proxy: %s" % st)
    text = out.decode()
    check("POST /echo/x?q=1 HTTP/1.1" in text, "request line: %s" % text[:200])
    check("X-Custom: v1" in text, "custom header forwarded")
    check(any(l.lower() == "host: a.test" for l in text.splitlines()), "Host preserved")
    check("body-sha256=" + hashlib.sha256(body).hexdigest() in text, "body byte-exact")
    st, _, out = get(p, "/?size=3000000", "a.test", timeout=20)
    check(st == 200 and out == filler(3000000), "3 MB response byte-exact")


@test
def keep_alive_through_proxy():
    pods()
    p = Proxy(two_services())
    c = HTTPConnection(*split_addr(LISTEN), timeout=5)
    for i in range(50):
        st, h, body = http("GET", p.url("/k%d" % i), {"Host": "a.test"}, conn=c)
        check(st == 200 and body == b"hello, world\n", "request %d: %s" % (i, st))
    check(c.sock is not None, "client connection kept alive for 50 requests")
    c.close()
    out = raw(LISTEN, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\nGET /api HTTP/1.1\r\nHost: a.test\r\n"
                      b"Connection: close\r\n\r\n", timeout=5)
    rs = parse_responses(out)
    check([r[0] for r in rs] == [200, 200], "pipelined pair: %r" % out[:300])
    check([dict(r[1]).get("X-Pod") for r in rs] == ["pod-a", "pod-b"], "answered in order")


@test
def round_robin_over_endpoints():
    Pod("127.0.0.2:%d" % PODPORT, "pod-a")
    Pod("127.0.0.3:%d" % PODPORT, "pod-b")
    p = Proxy(proxy_config(listen=[LISTEN], admin=ADMIN, workers=1)
              + backend("web", ["127.0.0.2:%d" % PODPORT, "127.0.0.3:%d" % PODPORT])
              + ingress("web", [("w.test", "/", "Prefix", "web", 80)]))
    seen = [pod_of(p, "/", "w.test")[1] for _ in range(20)]
    check(set(seen) == {"pod-a", "pod-b"}, "both endpoints used: %r" % seen)
    check(abs(seen.count("pod-a") - seen.count("pod-b")) <= 2, "balanced: %r" % seen)


@test
def no_ready_endpoint_503_refused_502():
    Pod("127.0.0.2:%d" % PODPORT, "pod-a")
    cfg = (proxy_config(listen=[LISTEN], admin=ADMIN)
           + backend("notready", ["127.0.0.2:%d" % PODPORT], ready=False)
           + backend("dead", ["127.0.0.5:%d" % (BASE + 50)])  # nothing listens there
           + ingress("e", [("e.test", "/notready", "Prefix", "notready", 80),
                           ("e.test", "/dead", "Prefix", "dead", 80)]))
    p = Proxy(cfg)
    st, _, _ = get(p, "/notready", "e.test")
    check(st == 503, "no ready endpoint -> 503, got %s" % st)
    st, _, _ = get(p, "/dead", "e.test", timeout=10)
    check(st == 502, "connection refused -> 502, got %s" % st)


@test
def tls_listener_terminates():
    pods()
    ca = make_cert("test CA", ["ca.test"])
    crt, key = make_cert("a.test", ["a.test", "*.a.test"], ca=ca)
    tls_addr = "127.0.0.1:%d" % (BASE + 2)
    cfg = (proxy_config(listen=[LISTEN, {"address": tls_addr, "tls": True}], admin=ADMIN)
           + secret_tls("a-tls", crt, key)
           + backend("svc-a", ["127.0.0.2:%d" % PODPORT])
           + ingress("a", [("a.test", "/", "Prefix", "svc-a", 80)], tls=[(["a.test"], "a-tls")]))
    p = Proxy(cfg)
    cafile = os.path.join(p.dir, "ca.pem")
    with open(cafile, "wb") as f:
        f.write(ca[0])
    st, h, body = http("GET", "https://%s/" % tls_addr, {"Host": "a.test"}, sni="a.test",
                       context=tls_context(cafile=cafile))
    check(st == 200 and h.get("X-Pod") == "pod-a", "HTTPS with SNI a.test, verified: %s" % st)


@test
def admin_healthz():
    pods()
    p = Proxy(two_services())
    st, _, _ = p.admin("/healthz")
    check(st == 200, "/healthz %s" % st)
    st, _, body = p.admin("/metrics")
    check(st == 200 and body, "/metrics answers")


@test
def validate_flag_exit_codes():
    rc, out = check_config(two_services())
    check(rc == 0, "valid config: exit %d\n%s" % (rc, out))
    rc, out = check_config("kind: [unclosed\n")
    check(rc == 1, "broken YAML: exit %d\n%s" % (rc, out))
    bad = two_services() + ingress("broken", [("x.test", "/", "Prefix", "no-such-svc", 80)])
    rc, out = check_config(bad.replace("pathType: Prefix", "pathType: Sideways", 1))
    check(rc == 1 and ":" in out, "bad pathType: exit %d\n%s" % (rc, out))
    check(re.search(r"ingressd\.yaml:\d+", out), "diagnostic names file:line: %s" % out)
    # -t never binds: it succeeds while something else holds the listen port
    import socket
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(split_addr(LISTEN))
    s.listen(1)
    try:
        rc, out = check_config(two_services())
        check(rc == 0, "-t with the port taken: exit %d\n%s" % (rc, out))
    finally:
        s.close()


@test
def demo_config_is_valid():
    with open(os.path.join(ROOT, "conf", "demo.yaml")) as f:
        rc, out = check_config(f.read())
    check(rc == 0, "conf/demo.yaml (make run) fails -t: %s" % out)


@test
def harness_proxy_helpers():
    pods()
    p = Proxy(two_services())
    check(p.rss_kb() > 0 and p.cpu_seconds() >= 0, "rss/cpu readable")
    r = wrk(p.url("/"), duration=1, conns=10, extra=["-H", "Host: a.test"])
    check(r["requests"] > 100 and r["non2xx"] == 0 and r["socket_errors"] == 0,
          "wrk through the proxy: %r" % {k: v for k, v in r.items() if k != "raw"})
    # reload: b.test moves from svc-b to svc-c
    p.reload(p.config.replace('host: b.test\n      http:\n        paths:\n'
                              '          - path: /\n            pathType: Prefix\n'
                              '            backend:\n              service:\n'
                              '                name: svc-b', 'host: b.test\n      http:\n'
                              '        paths:\n          - path: /\n            pathType: Prefix\n'
                              '            backend:\n              service:\n'
                              '                name: svc-c'))
    wait_until(lambda: pod_of(p, "/", "b.test") == (200, "pod-c"), 5, msg="b.test -> pod-c")
    check(pod_of(p, "/", "a.test") == (200, "pod-a"), "other routes unchanged")


@test
def validate_missing_listen():
    rc, out = check_config("apiVersion: ingressd/v1\nkind: ProxyConfig\nspec:\n  workers: 1\n")
    check(rc == 1, "ProxyConfig without spec.listen: exit %d, want 1\n%s" % (rc, out))
    check("listen" in out, "the diagnostic names spec.listen: %s" % out)


@test
def sigterm_exits_zero():
    pods()
    p = Proxy(two_services())
    check(pod_of(p, "/", "a.test")[0] == 200, "serving")
    t0 = time.monotonic()
    rc = p.stop(timeout=10)
    check(rc == 0, "exit code %s after SIGTERM" % rc)
    check(time.monotonic() - t0 < 5, "idle proxy exits quickly on SIGTERM")


@test
def io_uring_state_is_logged_and_follows_the_switch():
    """The worker says once whether its socket calls are batched (io_uring) and
    INGRESSD_IO_URING=0 turns it off; both ways the proxy serves."""
    pods()
    p = Proxy(two_services())
    m = p.wait_log(r"io_uring(: each loop turn| off \(([^)]*)\))")
    st, pod = pod_of(p, "/", "a.test")
    check(st == 200 and pod == "pod-a", "served with the default I/O (%s %s)" % (st, pod))
    if m.group(2) is not None:
        print("    note: io_uring is off on this machine: %s" % m.group(2))
    p.stop()
    p = Proxy(two_services(), env={"INGRESSD_IO_URING": "0"})
    p.wait_log(r"io_uring off \(INGRESSD_IO_URING=0\)")
    st, pod = pod_of(p, "/api", "a.test")
    check(st == 200 and pod == "pod-b", "served with one call per read and write (%s %s)" % (st, pod))


main()
