#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Requests that two implementations could read two ways are refused (400 + close) and
never reach a pod; path normalisation cannot be used to bypass a route; Host is
validated; h2c and CONNECT are refused. Ports 22100-22199."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F403

BASE = 22100
LISTEN = "127.0.0.1:%d" % BASE
A = "127.0.0.2:%d" % (BASE + 1)
ADMIN = "127.0.0.3:%d" % (BASE + 2)


def setup():
    web = PyPod(A, name="web")
    adm = PyPod(ADMIN, name="admin")
    p = Proxy(proxy_config(listen=[LISTEN], workers=1) + backend("web", [A]) +
              backend("admin", [ADMIN]) +
              ingress("web", [("a.test", "/", "Prefix", "web", 80),
                              ("a.test", "/admin", "Prefix", "admin", 80)]))
    return web, adm, p


def status_and_closed(data):
    """(status of the first response, whether the proxy closed after it)."""
    rs = parse_responses(data)
    return (rs[0][0] if rs else None), rs


AMBIGUOUS = [
    ("CL+TE", b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("TE+CL", b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
              b"Content-Length: 4\r\n\r\n0\r\n\r\n"),
    ("dup CL", b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd"),
    ("CL list", b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4, 4\r\n\r\nabcd"),
    ("CL sign", b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: +4\r\n\r\nabcd"),
    ("CL junk", b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4x\r\n\r\nabcd"),
    ("TE gzip", b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip\r\n\r\nabcd"),
    ("TE chunked,gzip", b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
    ("TE xchunked", b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ("TE on 1.0", b"POST / HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("TE space", b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    ("bad chunk size", b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nabc\r\n0\r\n\r\n"),
    ("chunk size overflow", b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"10000000000000000000000\r\nabc\r\n0\r\n\r\n"),
    ("bare CR ends chunked body", b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"5\r\nhello\r\n0\r\n\r8"),
    ("bare CR after chunk data", b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\nhello\rX0\r\n\r\n"),
    ("ctl in header", b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: a\x01b\r\n\r\n"),
    ("nul in header", b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: a\x00b\r\n\r\n"),
    ("ctl in target", b"GET /a\x01b HTTP/1.1\r\nHost: a.test\r\n\r\n"),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: a.test\r\nX-A: a\r\n b\r\n\r\n"),
    ("bare LF", b"GET / HTTP/1.1\nHost: a.test\n\n"),
    ("bare CR", b"GET / HTTP/1.1\r\nHost: a.test\rX: y\r\n\r\n"),
    ("no Host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n"),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"),
    ("userinfo Host", b"GET / HTTP/1.1\r\nHost: evil@a.test\r\n\r\n"),
    ("port not numeric", b"GET / HTTP/1.1\r\nHost: a.test:http\r\n\r\n"),
    ("empty port", b"GET / HTTP/1.1\r\nHost: a.test:\r\n\r\n"),
    ("space in Host", b"GET / HTTP/1.1\r\nHost: a .test\r\n\r\n"),
    ("absolute-form disagrees", b"GET http://b.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"),
    ("absolute-form userinfo", b"GET http://u@a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n"),
    ("h2c", b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"),
    ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    ("bad version", b"GET / HTTP/1.2x\r\nHost: a.test\r\n\r\n"),
    ("bad percent", b"GET /a%zz HTTP/1.1\r\nHost: a.test\r\n\r\n"),
    ("relative target", b"GET a/b HTTP/1.1\r\nHost: a.test\r\n\r\n"),
]


@test
def ambiguous_requests_are_refused_and_never_forwarded():
    web, adm, p = setup()
    for name, req in AMBIGUOUS:
        data = raw(LISTEN, req + b"GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n", timeout=3)
        st, rs = status_and_closed(data)
        check(st is not None and 400 <= st < 500, "%s: answered %s: %r" % (name, st, data[:200]))
        check(len(rs) == 1, "%s: connection closed after the refusal, got %d responses" %
              (name, len(rs)))
    time.sleep(0.2)
    check(not web.requests and not adm.requests,
          "no pod received anything: %r" % [(r.method, r.target) for r in web.requests +
                                            adm.requests])
    # and the proxy still works
    st, _, body = http("GET", p.url("/ok"), {"Host": "a.test"})
    check(st == 200 and body == b"web /ok\n", "still serving: %s %r" % (st, body))


@test
def connect_is_refused():
    web, adm, p = setup()
    data = raw(LISTEN, b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", timeout=3)
    st, _ = status_and_closed(data)
    check(st == 405, "CONNECT -> %s" % st)
    check(not web.requests and not adm.requests, "not forwarded")


@test
def normalised_paths_cannot_bypass_routes():
    web, adm, p = setup()
    cases = ["/%61dmin", "/public/../admin", "//admin", "/./admin", "/admin/./", "/x/%2e%2e/admin",
             "/%2E%2E/admin", "///admin//x", "/admin#frag"]
    for t in cases:
        before = len(adm.requests)
        st, _, body = http("GET", p.url(t), {"Host": "a.test"})
        check(st == 200 and body.startswith(b"admin "), "%s routed to admin: %s %r" % (t, st, body))
        check(len(adm.requests) == before + 1, "%s reached the admin pod" % t)
        got = adm.requests[-1].target
        check(got.startswith("/admin") and "%" not in got and ".." not in got and "//" not in got,
              "%s: the pod received the routed target %r" % (t, got))
    check(not web.requests, "no normalised /admin reached the web pod: %r" %
          [r.target for r in web.requests])
    # query strings are left alone; reserved escapes stay escaped
    http("GET", p.url("/x?a=/../admin&b=%2F"), {"Host": "a.test"})
    check(web.requests[-1].target == "/x?a=/../admin&b=%2F", "query untouched: %r" %
          web.requests[-1].target)
    http("GET", p.url("/a%2fb"), {"Host": "a.test"})
    check(web.requests[-1].target == "/a%2Fb", "reserved stays encoded: %r" % web.requests[-1].target)


@test
def absolute_form_routes_by_authority():
    web, adm, p = setup()
    data = raw(LISTEN, b"GET http://a.test/admin/x HTTP/1.1\r\nHost: a.test\r\n"
               b"Connection: close\r\n\r\n", timeout=3)
    st, _ = status_and_closed(data)
    check(st == 200 and adm.requests and adm.requests[-1].target == "/admin/x",
          "absolute-form routed and sent origin-form: %s %r" %
          (st, adm.requests[-1].target if adm.requests else None))


@test
def host_with_port_and_case():
    web, adm, p = setup()
    st, _, body = http("GET", p.url("/p"), {"Host": "A.Test:%d" % BASE})
    check(st == 200 and body == b"web /p\n", "Host with port and upper case routes: %s" % st)
    st, _, _ = http("GET", p.url("/p"), {"Host": "[::1]:80"})
    check(st == 404, "IPv6 literal Host is valid (no route): %s" % st)


@test
def mutated_requests_never_hurt_the_proxy():
    import random
    rnd = random.Random(1234)
    web, adm, p = setup()
    base = (b"POST /admin/x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Length: 5\r\nX-A: b\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    for i in range(300):
        b = bytearray(base if i % 3 else os.urandom(rnd.randint(1, 200)))
        for _ in range(rnd.randint(1, 6)):
            op = rnd.randint(0, 2)
            pos = rnd.randrange(len(b))
            if op == 0:
                b[pos] = rnd.randrange(256)
            elif op == 1:
                del b[pos]
            else:
                b.insert(pos, rnd.choice(b"\r\n :;,\t\x00-0aZ"))
        try:
            raw(LISTEN, bytes(b), timeout=0.5, shutdown=True)
        except OSError:
            pass
    st, _, body = http("GET", p.url("/ok"), {"Host": "a.test"})
    check(st == 200 and body == b"web /ok\n", "still serving after 300 mutated requests")
    check(p.proc.poll() is None, "proxy alive")


main()
