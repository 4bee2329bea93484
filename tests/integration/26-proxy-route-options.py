#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Per-route options the config loader fills in struct snap_route / snap_backend, as the
pod sees them: rewrite-target (ingress-nginx semantics: the whole path replaced, $1..$9
from the regex path's groups, the query kept by nginx's rules), ssl-redirect / force-ssl-redirect, proxy-body-size per route against
spec.limits.maxBodySize (decoded chunked bytes counted), retries and retry-on per
backend (0 / off really mean no retry). Ports 22600-22699."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F403

BASE = 22600
PLAIN = "127.0.0.1:%d" % BASE
TLS = "127.0.0.1:%d" % (BASE + 1)
PORT = BASE + 10
A = "127.0.0.2:%d" % PORT           # the PyPod: answers "<name> <target>\n"
DEAD1 = "127.0.0.3:%d" % PORT       # nobody listens: connection refused
DEAD2 = "127.0.0.4:%d" % PORT
DEAD3 = "127.0.0.5:%d" % PORT
B = "127.0.0.6:%d" % PORT
SLOW1 = "127.0.0.7:%d" % PORT
SLOW2 = "127.0.0.8:%d" % PORT

NGX = "nginx.ingress.kubernetes.io/"


def target_seen(p, path, host, method="GET", body=None, headers=None):
    """(status, the request-target the pod received or None, response headers)."""
    h = {"Host": host}
    h.update(headers or {})
    st, rh, data = http(method, p.url(path), h, body)
    if st != 200:
        return st, None, rh
    line = data.decode(errors="replace").strip()
    return st, line.split(" ", 1)[1] if " " in line else line, rh


def expect_target(p, host, path, want):
    st, got, _ = target_seen(p, path, host)
    check(st == 200 and got == want, "%s %s: pod saw %r (status %s), want %r" % (host, path, got,
                                                                                 st, want))


def rewrite_config():
    return (proxy_config(listen=[PLAIN], workers=1) + backend("web", [A]) +
            ingress("rx", [("rw.test", "/something(/|$)(.*)", "ImplementationSpecific", "web", 80)],
                    annotations={NGX + "use-regex": "true", NGX + "rewrite-target": "/$2"}) +
            ingress("api", [("rw.test", "/api/(v[0-9]+)/(.*)", "ImplementationSpecific", "web", 80)],
                    annotations={"ingressd/use-regex": "true",
                                 "ingressd/rewrite-target": "/$2?version=$1"}) +
            ingress("away", [("rw.test", "/away/(.*)", "ImplementationSpecific", "web", 80)],
                    annotations={NGX + "use-regex": "true",
                                 NGX + "rewrite-target": "https://elsewhere.test/new/$1"}) +
            ingress("plain", [("rw.test", "/other", "Prefix", "web", 80)]) +
            # rewrite-target alone implies use-regex, as ingress-nginx enforces
            ingress("implied", [("im.test", "/im(/|$)(.*)", "ImplementationSpecific", "web", 80)],
                    annotations={NGX + "rewrite-target": "/$2"}) +
            ingress("pay", [("nr.test", "/pay", "Prefix", "web", 80)],
                    annotations={NGX + "rewrite-target": "/"}) +
            ingress("keep", [("nr.test", "/keep", "Prefix", "web", 80)],
                    annotations={NGX + "rewrite-target": "/v2/$1"}) +
            ingress("noargs", [("nr.test", "/noargs", "Prefix", "web", 80)],
                    annotations={NGX + "rewrite-target": "/fixed?"}) +
            ingress("ownq", [("nr.test", "/ownq", "Exact", "web", 80)],
                    annotations={NGX + "rewrite-target": "/q?from=ingress"}) +
            ingress("odd", [("nr.test", "/odd", "Exact", "web", 80)],
                    annotations={NGX + "rewrite-target": "/a b#c$x$"}))


@test
def rewrite_target_regex_captures():
    PyPod(A, name="web")
    p = Proxy(rewrite_config())
    expect_target(p, "rw.test", "/something", "/")
    expect_target(p, "rw.test", "/something/", "/")
    expect_target(p, "rw.test", "/something/new", "/new")
    expect_target(p, "rw.test", "/something/new/deep?x=1&y=%20", "/new/deep?x=1&y=%20")
    # captures come from the normalised path the route matched
    expect_target(p, "rw.test", "/something/./a/../b//c", "/b/c")
    expect_target(p, "rw.test", "/something/%7Euser", "/~user")
    # own query in the target: the request's arguments follow with '&' (nginx)
    expect_target(p, "im.test", "/im/deep/er", "/deep/er")
    expect_target(p, "rw.test", "/api/v2/users", "/users?version=v2")
    expect_target(p, "rw.test", "/api/v12/a/b?page=3", "/a/b?version=v12&page=3")
    # anchored regex: "/somethingelse" is not "/something" + (/|$)
    st, _, _ = target_seen(p, "/somethingelse", "rw.test")
    check(st == 404, "no rule matches /somethingelse: %s" % st)
    # a route without rewrite-target on the same host is untouched
    expect_target(p, "rw.test", "/other/x?k=v", "/other/x?k=v")
    # keep-alive: a rewritten request, then a plain one, on one connection
    data = raw(PLAIN, b"GET /something/one HTTP/1.1\r\nHost: rw.test\r\n\r\n"
                      b"GET /other/two HTTP/1.1\r\nHost: rw.test\r\n\r\n"
                      b"GET /something/three?z HTTP/1.1\r\nHost: rw.test\r\nConnection: close\r\n\r\n",
               timeout=5)
    rs = parse_responses(data)
    bodies = [r[2] for r in rs]
    check(bodies == [b"web /one\n", b"web /other/two\n", b"web /three?z\n"],
          "pipelined rewritten/plain requests: %r" % bodies)


@test
def rewrite_target_absolute_url_is_refused_by_the_loader():
    # nginx would answer 302 to it; ingressd's loader wants a path: the Ingress is rejected
    pod = PyPod(A, name="web")
    p = Proxy(rewrite_config())
    st, _, _ = http("GET", p.url("/away/page?q=1"), {"Host": "rw.test"})
    check(st == 404, "the rejected Ingress serves nothing: %s" % st)
    check(not any(r.target.startswith("/away") for r in pod.requests), "pod not asked")
    check("rewrite-target" in p.log(), "the loader said why")


@test
def rewrite_target_without_regex_replaces_the_whole_path():
    PyPod(A, name="web")
    p = Proxy(rewrite_config())
    # ingress-nginx >= 0.22: `rewrite "(?i)/pay" / break;` -> everything under /pay is "/"
    expect_target(p, "nr.test", "/pay", "/")
    expect_target(p, "nr.test", "/pay/x/y?z=1", "/?z=1")
    # a literal path has no groups: $1 is empty
    expect_target(p, "nr.test", "/keep/deep/er", "/v2/")
    # a final '?' drops the request's arguments
    expect_target(p, "nr.test", "/noargs/a?b=1", "/fixed")
    expect_target(p, "nr.test", "/ownq?c=d", "/q?from=ingress&c=d")
    expect_target(p, "nr.test", "/ownq", "/q?from=ingress")
    # bytes a request line cannot carry are %-encoded; "$x" and a final "$" stay literal
    expect_target(p, "nr.test", "/odd", "/a%20b%23c$x$")
    # POST with a body through a rewritten route
    st, got, _ = target_seen(p, "/pay/form", "nr.test", "POST", b"a=1&b=2",
                             {"Content-Type": "application/x-www-form-urlencoded"})
    check(st == 200 and got == "/", "POST rewritten: %s %r" % (st, got))


@test
def hash_by_path_uses_the_request_path_not_the_rewritten_one():
    PyPod(A, name="pa")
    PyPod(B, name="pb")
    p = Proxy(proxy_config(listen=[PLAIN], workers=1) +
              backend("h", [A, B], annotations={"ingressd/hash-by": "path"}) +
              ingress("h", [("h.test", "/h", "Prefix", "h", 80)],
                      annotations={NGX + "rewrite-target": "/"}))
    pods = {}
    for i in range(24):
        st, rh, body = http("GET", p.url("/h/item%d?x=%d" % (i, i)), {"Host": "h.test"})
        check(st == 200 and body.endswith(b" /?x=%d\n" % i), "rewritten: %s %r" % (st, body))
        again = http("GET", p.url("/h/item%d?y" % i), {"Host": "h.test"})[1]["X-Pod"]
        check(again == rh["X-Pod"], "one path, one pod: %s vs %s" % (again, rh["X-Pod"]))
        pods[rh["X-Pod"]] = pods.get(rh["X-Pod"], 0) + 1
    check(len(pods) == 2, "24 request paths spread over both pods: %r" % pods)


def make_cert(cn):
    d = tempfile.mkdtemp(prefix="ingressd-cert-")
    k, c = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", k, "-out", c, "-days", "2",
                    "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:" + cn],
                   check=True, capture_output=True, timeout=30)
    return open(c).read(), open(k).read()


@test
def ssl_redirect_annotations():
    crt, key = make_cert("s.test")
    PyPod(A, name="web")
    p = Proxy(proxy_config(listen=[PLAIN, {"address": TLS, "tls": True}], workers=1) +
              secret_tls("s-tls", crt, key) + backend("web", [A]) +
              ingress("tls", [("s.test", "/", "Prefix", "web", 80)], tls=[(["s.test"], "s-tls")]) +
              ingress("tlsrw", [("s.test", "/rw(/|$)(.*)", "ImplementationSpecific", "web", 80)],
                      tls=[(["s.test"], "s-tls")],
                      annotations={NGX + "use-regex": "true", NGX + "rewrite-target": "/$2"}) +
              ingress("off", [("s.test", "/plainok", "Prefix", "web", 80)],
                      tls=[(["s.test"], "s-tls")], annotations={NGX + "ssl-redirect": "false"}) +
              ingress("force", [("f.test", "/", "Prefix", "web", 80)],
                      annotations={"ingressd/force-ssl-redirect": "true"}) +
              ingress("none", [("n.test", "/", "Prefix", "web", 80)]))
    st, h, _ = http("POST", p.url("/a/b?c=1"), {"Host": "s.test"}, b"x")
    check(st == 308 and h["Location"] == "https://s.test/a/b?c=1", "TLS host: %s %s" % (
        st, h["Location"]))
    # the redirect carries the request's path, not the rewritten one
    st, h, _ = http("GET", p.url("/rw/x?y=2"), {"Host": "s.test:%d" % BASE})
    check(st == 308 and h["Location"] == "https://s.test/rw/x?y=2", "rewrite route: %s %s" % (
        st, h["Location"]))
    expect_target(p, "s.test", "/plainok/z", "/plainok/z")
    st, h, _ = http("GET", p.url("/q"), {"Host": "f.test"})
    check(st == 308 and h["Location"] == "https://f.test/q", "force-ssl-redirect: %s %s" % (
        st, h["Location"]))
    expect_target(p, "n.test", "/q", "/q")
    # over TLS the rewrite applies and nothing redirects
    out = curl("-k", "-s", "--resolve", "s.test:%d:127.0.0.1" % (BASE + 1),
               "https://s.test:%d/rw/deep/x?k=1" % (BASE + 1)).stdout
    check(out == "web /deep/x?k=1\n", "TLS + rewrite: %r" % out)


def post(p, path, host, data, chunked_parts=None):
    """Status of a POST with DATA (Content-Length) or CHUNKED_PARTS (chunked)."""
    if chunked_parts is None:
        req = (b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
               % (path.encode(), host.encode(), len(data)) + data)
    else:
        req = (b"POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n" % (path.encode(), host.encode()))
        for part in chunked_parts:
            req += b"%x\r\n%s\r\n" % (len(part), part)
        req += b"0\r\n\r\n"
    rs = parse_responses(raw(PLAIN, req, timeout=5))
    return rs[0][0] if rs else None


@test
def proxy_body_size_per_route():
    PyPod(A, name="web")
    p = Proxy(proxy_config(listen=[PLAIN], workers=1, extra_spec={"limits": {"maxBodySize": 4096}}) +
              backend("web", [A]) +
              ingress("small", [("b.test", "/small", "Prefix", "web", 80)],
                      annotations={NGX + "proxy-body-size": "1024"}) +
              ingress("free", [("b.test", "/free", "Prefix", "web", 80)],
                      annotations={"ingressd/proxy-body-size": "0"}) +
              ingress("global", [("b.test", "/", "Prefix", "web", 80)]))
    check(post(p, "/small", "b.test", b"x" * 1024) == 200, "1024 bytes fit /small")
    check(post(p, "/small", "b.test", b"x" * 1025) == 413, "1025 bytes over /small")
    # chunked: the decoded body counts, not the chunk framing
    check(post(p, "/small", "b.test", None, [b"y" * 100] * 10) == 200,
          "1000 bytes in 10 chunks fit /small")
    check(post(p, "/small", "b.test", None, [b"y" * 500] * 3) == 413,
          "1500 bytes chunked over /small")
    check(post(p, "/global", "b.test", b"x" * 4000) == 200, "spec limit for other routes")
    check(post(p, "/global", "b.test", b"x" * 5000) == 413, "spec limit 4096")
    check(post(p, "/free", "b.test", b"x" * 20000) == 200, "proxy-body-size 0: unlimited")
    check(post(p, "/free", "b.test", None, [b"z" * 5000] * 4) == 200, "unlimited, chunked")


@test
def retries_and_retry_on_per_backend():
    PyPod(A, name="web")
    p = Proxy(proxy_config(listen=[PLAIN], workers=1) +
              backend("none", [A, DEAD1], annotations={"ingressd/retries": "0"}) +
              backend("off", [A, DEAD2], annotations={"ingressd/retry-on": "off"}) +
              backend("dflt", [A, DEAD3]) +
              ingress("r", [("none.test", "/", "Prefix", "none", 80),
                            ("off.test", "/", "Prefix", "off", 80),
                            ("dflt.test", "/", "Prefix", "dflt", 80)]))
    # round robin over two endpoints, one refusing; fewer than the 5 failures that eject it
    got = [http("GET", p.url("/n%d" % i), {"Host": "none.test"})[0] for i in range(6)]
    check(502 in got and 200 in got, "retries 0: a refused connect is not retried: %r" % got)
    got = [http("GET", p.url("/o%d" % i), {"Host": "off.test"})[0] for i in range(6)]
    check(502 in got and 200 in got, "retry-on off: not retried: %r" % got)
    got = [http("GET", p.url("/d%d" % i), {"Host": "dflt.test"})[0] for i in range(6)]
    check(got == [200] * 6, "default retries: every refused connect retried: %r" % got)



@test
def retry_on_timeout_per_backend():
    PyPod(A, name="web")
    PyPod.slow(SLOW1, 3, name="slow1")
    PyPod.slow(SLOW2, 3, name="slow2")
    p = Proxy(proxy_config(listen=[PLAIN], workers=1,
                           extra_spec={"timeouts": {"upstreamRead": "400ms"}}) +
              backend("to", [A, SLOW1], annotations={"ingressd/retry-on": "error,timeout"}) +
              backend("nt", [A, SLOW2]) +
              ingress("t", [("to.test", "/", "Prefix", "to", 80),
                            ("nt.test", "/", "Prefix", "nt", 80)]))
    got = [http("GET", p.url("/t%d" % i), {"Host": "to.test"})[0] for i in range(4)]
    check(got == [200] * 4, "retry-on timeout: a read timeout goes to the other pod: %r" % got)
    got = [http("GET", p.url("/n%d" % i), {"Host": "nt.test"})[0] for i in range(4)]
    check(504 in got and 200 in got, "default retry-on: a read timeout is a 504: %r" % got)
    # never for a request with a body (it may have been acted on)
    got = [http("POST", p.url("/p%d" % i), {"Host": "to.test"}, b"x")[0] for i in range(4)]
    check(504 in got, "POST is not replayed after a timeout: %r" % got)


main()
