#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Data plane basics: framing both ways, keep-alive reuse on both sides, pipelining,
HTTP/1.0, HEAD/204/304, 100-continue, WebSocket tunnel, header rewriting, and each
status code the proxy itself produces. Ports 22000-22099."""
import hashlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F403
import lib  # noqa: E402

BASE = 22000
LISTEN = "127.0.0.1:%d" % BASE
A = "127.0.0.2:%d" % (BASE + 1)
B = "127.0.0.3:%d" % (BASE + 2)
DEAD = "127.0.0.4:%d" % (BASE + 3)     # nothing listens there


def cfg(rules, backends, spec=None, workers=1):
    return proxy_config(listen=[LISTEN], workers=workers, extra_spec=spec) + backends + \
        ingress("web", rules)


def one_route(addr, host="a.test", spec=None, svc="web", workers=1):
    return cfg([(host, "/", "Prefix", svc, 80)], backend(svc, [addr]), spec, workers)


def echo_lines(body):
    return body.decode(errors="replace").splitlines()


def hdr(lines, name):
    for l in lines:
        k, _, v = l.partition(": ")
        if k.lower() == name.lower():
            return v
    return None


def rawreq(data, timeout=3.0, **kw):
    return parse_responses(raw(LISTEN, data, timeout=timeout, **kw))


@test
def forwards_get_with_rewritten_headers():
    Pod(A, "pod-a")
    p = Proxy(one_route(A))
    st, h, body = http("GET", p.url("/echo/x?q=1"), {
        "Host": "a.test", "X-Forwarded-For": "10.0.0.1", "Connection": "X-Secret, keep-alive",
        "X-Secret": "s", "Keep-Alive": "timeout=5", "Proxy-Connection": "keep-alive",
        "TE": "trailers", "X-Real-IP": "6.6.6.6", "X-Forwarded-Proto": "gopher",
        "X-Keep": "yes"})
    check(st == 200, "status %s" % st)
    lines = echo_lines(body)
    check(lines[1] == "GET /echo/x?q=1 HTTP/1.1", "request line %r" % lines[1])
    check(hdr(lines, "Host") == "a.test", "Host preserved")
    check(hdr(lines, "X-Forwarded-For") == "10.0.0.1, 127.0.0.1", "XFF appended: %r" %
          hdr(lines, "X-Forwarded-For"))
    check(hdr(lines, "X-Real-IP") == "127.0.0.1", "X-Real-IP replaced")
    check(hdr(lines, "X-Forwarded-Proto") == "http", "X-Forwarded-Proto")
    check(hdr(lines, "X-Forwarded-Host") == "a.test", "X-Forwarded-Host")
    check(hdr(lines, "X-Forwarded-Port") == str(BASE), "X-Forwarded-Port")
    for gone in ("X-Secret", "Keep-Alive", "Proxy-Connection", "TE", "Connection"):
        check(hdr(lines, gone) is None, "%s removed: %r" % (gone, lines))
    check(hdr(lines, "X-Keep") == "yes", "other headers kept")
    rid = hdr(lines, "X-Request-ID")
    check(rid and len(rid) >= 16, "X-Request-ID generated: %r" % rid)
    check(h["X-Request-ID"] == rid, "same id returned to the client: %r vs %r" %
          (h["X-Request-ID"], rid))
    # a client id passes both ways
    st, h, body = http("GET", p.url("/echo/"), {"Host": "a.test", "X-Request-ID": "abc-123"})
    check(hdr(echo_lines(body), "X-Request-ID") == "abc-123", "client id forwarded")
    check(h["X-Request-ID"] == "abc-123", "client id returned")


@test
def connection_never_removes_framing_or_host():
    Pod(A, "pod-a")
    p = Proxy(one_route(A))
    body = b"x" * 1000
    st, h, rb = http("POST", p.url("/echo/"), {"Host": "a.test",
                                              "Connection": "Content-Length, Host, Transfer-Encoding"},
                     body)
    lines = echo_lines(rb)
    check(st == 200, "status %s" % st)
    check(hdr(lines, "Host") == "a.test" and hdr(lines, "Content-Length") == "1000",
          "Host and Content-Length kept: %r" % lines)
    check("body-sha256=" + hashlib.sha256(body).hexdigest() in lines, "body intact")


@test
def request_bodies_content_length_and_chunked_with_trailers():
    Pod(A, "pod-a")
    p = Proxy(one_route(A))
    data = os.urandom(300000)
    st, _, rb = http("POST", p.url("/echo/cl"), {"Host": "a.test"}, data)
    lines = echo_lines(rb)
    check(st == 200 and "body-bytes=300000" in lines and
          "body-sha256=" + hashlib.sha256(data).hexdigest() in lines, "CL body byte-exact")
    chunks = [b"hello ", b"chunked ", b"world" * 1000]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\nX-T: 1\r\n\r\n"
    req = (b"POST /echo/ch HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n" + wire)
    rs = rawreq(req + b"GET /echo/after HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    check(len(rs) == 2, "two responses: %r" % rs)
    lines = echo_lines(rs[0][2])
    whole = b"".join(chunks)
    check("body-bytes=%d" % len(whole) in lines and
          "body-sha256=" + hashlib.sha256(whole).hexdigest() in lines, "chunked body: %r" % lines)
    check(echo_lines(rs[1][2])[1].startswith("GET /echo/after"), "next request after the body")


@test
def response_bodies_and_trailers():
    Pod(A, "pod-a")
    PyPod.trailers(B, trailers=(("X-Checksum", "abc123"),), body=b"hello\n")
    p = Proxy(cfg([("a.test", "/", "Prefix", "web", 80), ("t.test", "/", "Prefix", "tr", 80)],
                  backend("web", [A]) + backend("tr", [B])))
    st, h, body = http("GET", p.url("/?size=2000000"), {"Host": "a.test"}, timeout=20)
    check(st == 200 and body == filler(2000000), "2 MB download byte-exact")
    data = raw(LISTEN, b"GET / HTTP/1.1\r\nHost: t.test\r\nConnection: close\r\n\r\n")
    check(b"Transfer-Encoding: chunked" in data, "chunked passed through: %r" % data)
    check(b"0\r\nX-Checksum: abc123\r\n\r\n" in data, "trailers forwarded: %r" % data)
    check(b"hello\n" in data, "body")


@test
def keepalive_reuses_upstream_connections():
    pod = PyPod(A, name="ka")
    p = Proxy(one_route(A))
    conn = HTTPConnection(*split_addr(LISTEN), timeout=5)
    for i in range(5):
        st, _, body = http("GET", p.url("/k%d" % i), {"Host": "a.test"}, conn=conn)
        check(st == 200 and body == b"ka /k%d\n" % i, "keep-alive request %d: %s %r" % (i, st, body))
    conn.close()
    for i in range(5):
        st, _, _ = http("GET", p.url("/n%d" % i), {"Host": "a.test"})
        check(st == 200, "new client connection %d" % i)
    check(pod.accepted == 1, "pod saw one connection for 10 requests, saw %d" % pod.accepted)


@test
def pipelined_requests_answered_in_order():
    Pod(A, "pod-a")
    Proxy(one_route(A))
    req = b"".join(b"GET /echo/%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i for i in range(10))
    req += b"GET /echo/last HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    rs = rawreq(req, timeout=5)
    check(len(rs) == 11, "11 responses, got %d" % len(rs))
    for i in range(10):
        check(echo_lines(rs[i][2])[1] == "GET /echo/%d HTTP/1.1" % i, "order at %d" % i)
    check(echo_lines(rs[10][2])[1] == "GET /echo/last HTTP/1.1", "last")


@test
def http10_and_connection_close():
    Pod(A, "pod-a")
    PyPod.stream(B, chunks=3, chunk_size=10, interval=0, name="st")
    Proxy(cfg([("a.test", "/", "Prefix", "web", 80), ("s.test", "/", "Prefix", "st", 80)],
              backend("web", [A]) + backend("st", [B])))
    data = raw(LISTEN, b"GET / HTTP/1.0\r\nHost: a.test\r\n\r\n", timeout=3)
    check(data.startswith(b"HTTP/1.1 200") and data.endswith(b"hello, world\n"),
          "1.0 answered and closed: %r" % data)
    # HTTP/1.0 without Host (routed by host-less rules): the pod still gets a Host
    p2 = Proxy(proxy_config(listen=["127.0.0.1:%d" % (BASE + 7)], workers=1) + backend("web", [A]) +
               ingress("any", [(None, "/", "Prefix", "web", 80)]))
    data = raw("127.0.0.1:%d" % (BASE + 7), b"GET /echo/h HTTP/1.0\r\n\r\n", timeout=3)
    check(data.startswith(b"HTTP/1.1 200") and b"Host: %s" % A.encode() in data,
          "Host added for a 1.0 request without one: %r" % data)
    p2.stop()
    # HTTP/1.0 keep-alive
    data = raw(LISTEN, b"GET / HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n" * 2,
               timeout=1.5)
    check(data.count(b"HTTP/1.1 200") == 2 and b"Connection: keep-alive" in data,
          "1.0 keep-alive: %r" % data)
    # a chunked response to an HTTP/1.0 client is decoded and close-delimited
    data = raw(LISTEN, b"GET / HTTP/1.0\r\nHost: s.test\r\n\r\n", timeout=3)
    head, _, body = data.partition(b"\r\n\r\n")
    check(b"chunked" not in head.lower() and body == filler(10) * 3,
          "dechunked for 1.0: %r" % data)
    # Connection: close on 1.1
    got = raw(LISTEN, b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", timeout=3)
    check(b"Connection: close" in got and got.endswith(b"hello, world\n"), "close honoured")


@test
def head_204_304_have_no_body():
    Pod(A, "pod-a")
    Proxy(one_route(A))
    rs = rawreq(b"GET /?status=204 HTTP/1.1\r\nHost: a.test\r\n\r\n"
                b"GET /?status=304 HTTP/1.1\r\nHost: a.test\r\n\r\n"
                b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", timeout=5)
    # parse_responses cannot know the first was HEAD; check raw framing instead
    data = raw(LISTEN, b"HEAD /?size=100 HTTP/1.1\r\nHost: a.test\r\n\r\n"
               b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", timeout=5)
    first, _, rest = data.partition(b"\r\n\r\n")
    check(b"Content-Length: 100" in first and rest.startswith(b"HTTP/1.1 200"),
          "HEAD has no body: %r" % data)
    check(rs[-1][0] == 200 and rs[-1][2] == b"hello, world\n", "after 204/304: %r" % rs)
    check(any(r[0] == 204 and r[2] == b"" for r in rs), "204")
    check(any(r[0] == 304 and r[2] == b"" for r in rs), "304")


@test
def expect_100_continue():
    Pod(A, "pod-a")
    Proxy(one_route(A))
    s = socket.create_connection(split_addr(LISTEN), timeout=3)
    s.sendall(b"POST /echo/ HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n"
              b"Content-Length: 5\r\n\r\n")
    first = s.recv(65536)
    check(first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), "100 before the body: %r" % first)
    s.sendall(b"hello")
    got = first[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
    deadline = time.monotonic() + 3
    while b"body-sha256" not in got and time.monotonic() < deadline:
        got += s.recv(65536)
    s.close()
    check(b"HTTP/1.1 200" in got and b"body-bytes=5" in got and b"Expect" not in got,
          "body forwarded after 100, Expect not forwarded: %r" % got)


@test
def websocket_upgrade_tunnels_raw_bytes():
    PyPod.websocket_echo(A)
    p = Proxy(one_route(A))
    s = socket.create_connection(split_addr(LISTEN), timeout=3)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(65536)
    head, _, rest = got.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 101"), "101: %r" % head)
    check(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head and b"Upgrade: websocket" in head,
          "handshake headers passed: %r" % head)
    for msg in (b"\x81\x05hello", os.urandom(100000)):
        s.sendall(msg)
        echo = rest
        rest = b""
        while len(echo) < len(msg):
            echo += s.recv(65536)
        check(echo == msg, "echoed %d bytes byte-exact" % len(msg))
    s.close()
    st, _, _ = http("GET", p.url("/plain"), {"Host": "a.test"})
    check(st == 200, "proxy fine after the tunnel")


def status_of(data):
    rs = parse_responses(data)
    return rs[0][0] if rs else None, rs[0][1] if rs else []


@test
def status_codes_404_503_502_504_413_431():
    silent = PyPod.silent(B)
    PyPod.raw_response("127.0.0.5:%d" % (BASE + 4), b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\nabc", name="bad")
    Pod(A, "pod-a")
    rules = [("a.test", "/", "Prefix", "web", 80), ("none.test", "/", "Prefix", "empty", 80),
             ("dead.test", "/", "Prefix", "dead", 80), ("slow.test", "/", "Prefix", "silent", 80),
             ("bad.test", "/", "Prefix", "bad", 80)]
    backends = (backend("web", [A]) + backend("empty", [A], ready=False) +
                backend("dead", [DEAD]) + backend("silent", [B]) +
                backend("bad", ["127.0.0.5:%d" % (BASE + 4)]))
    spec = {"timeouts": {"upstreamRead": "700ms", "upstreamConnect": "1s"},
            "limits": {"maxBodySize": "1k", "maxHeaderSize": "4k"}}
    Proxy(cfg(rules, backends, spec))

    def one(req, want, extra=None):
        st, h = status_of(raw(LISTEN, req, timeout=5))
        check(st == want, "%r -> %s, want %s" % (req[:60], st, want))
        names = {k.lower(): v for k, v in h}
        check(names.get("x-request-id"), "error carries X-Request-ID")
        if extra:
            check(extra.lower() in names, "%s header on %s" % (extra, want))
        return names
    one(b"GET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n", 404)
    one(b"GET / HTTP/1.1\r\nHost: none.test\r\nConnection: close\r\n\r\n", 503, "Retry-After")
    one(b"GET / HTTP/1.1\r\nHost: dead.test\r\nConnection: close\r\n\r\n", 502)
    one(b"GET / HTTP/1.1\r\nHost: bad.test\r\nConnection: close\r\n\r\n", 502)
    t0 = time.monotonic()
    one(b"GET / HTTP/1.1\r\nHost: slow.test\r\nConnection: close\r\n\r\n", 504)
    check(time.monotonic() - t0 < 4, "504 after the read timeout")
    one(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5000\r\n\r\n", 413)
    big = b"x" * 3000
    data = raw(LISTEN, b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n" +
               b"%x\r\n%s\r\n0\r\n\r\n" % (len(big), big), timeout=3)
    check(status_of(data)[0] == 413, "chunked body over the limit: %r" % data[:80])
    one(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: " + b"y" * 5000 + b"\r\n\r\n", 431)
    one(b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400)
    # keep-alive survives a 404 on a body-less request
    rs = rawreq(b"GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n"
                b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    check([r[0] for r in rs] == [404, 200], "404 then 200 on one connection: %r" % rs)
    silent.stop()


@test
def connect_failure_retried_on_another_endpoint():
    Pod(A, "pod-a")
    p = Proxy(cfg([("a.test", "/", "Prefix", "web", 80)], backend("web", [A, DEAD.replace(
        str(BASE + 3), str(BASE + 1))])))
    # DEAD-ip with A's port: connect refused; every request must still succeed
    for i in range(20):
        st, h, _ = http("GET", p.url("/r%d" % i), {"Host": "a.test"})
        check(st == 200 and h["X-Pod"] == "pod-a", "request %d: %s" % (i, st))


@test
def external_name_services():
    Pod("127.0.0.1:%d" % (BASE + 5), "ext-local")
    Pod("127.0.0.6:%d" % (BASE + 5), "ext-ip")
    p = Proxy(proxy_config(listen=[LISTEN], workers=1) +
              service("byname", [("http", BASE + 5, BASE + 5)], type="ExternalName",
                      external_name="localhost") +
              service("byip", [("http", BASE + 5, BASE + 5)], type="ExternalName",
                      external_name="127.0.0.6") +
              ingress("web", [("n.test", "/", "Prefix", "byname", BASE + 5),
                              ("i.test", "/", "Prefix", "byip", BASE + 5)]))
    for i in range(3):  # the first resolves, the others hit the worker's cache
        st, h, _ = http("GET", p.url("/"), {"Host": "n.test"})
        check(st == 200 and h["X-Pod"] == "ext-local", "ExternalName localhost: %s %s" %
              (st, h["X-Pod"]))
    st, h, _ = http("GET", p.url("/"), {"Host": "i.test"})
    check(st == 200 and h["X-Pod"] == "ext-ip", "ExternalName 127.0.0.6: %s %s" % (st, h["X-Pod"]))


def hosts_wrapper(d, hosts_text):
    """A wrapper for ingressd (in directory D) that runs it in a private mount namespace
    where HOSTS_TEXT is /etc/hosts, so one name can have several loopback addresses
    without DNS and without touching the machine's /etc/hosts. evdns reads /etc/hosts.
    Returns its path, or None where mount namespaces are not allowed (neither root nor
    unprivileged user namespaces). The wrapper execs, so the pid stays ingressd's."""
    hosts = os.path.join(d, "hosts")
    with open(hosts, "w") as f:
        f.write(hosts_text)
    inner = 'mount --bind "$0" /etc/hosts && exec "$@"'
    for flags in (["-m"], ["-Urm"]):
        try:
            r = subprocess.run(["unshare"] + flags + ["--", "sh", "-c", inner, hosts,
                                                      "cat", "/etc/hosts"],
                               capture_output=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode == 0 and r.stdout.decode() == hosts_text:
            w = os.path.join(d, "ingressd-hosts.sh")
            with open(w, "w") as f:
                f.write("#!/bin/sh\nexec unshare %s -- sh -c %s %s %s \"$@\"\n" % (
                    " ".join(flags), shlex.quote(inner), shlex.quote(hosts),
                    shlex.quote(lib.INGRESSD_BIN)))
            os.chmod(w, 0o755)
            return w
    return None


@test
def external_name_uses_every_address_of_the_answer():
    port = BASE + 8
    addr = lambda ip: "%s:%d" % (ip, port)  # noqa: E731
    # multi: the first address refuses (nothing listens), the other two serve;
    # dead: nothing anywhere; resets: the first reads and closes, the second serves
    hosts = ("127.0.0.1 localhost\n"
             "127.0.0.9 multi.test\n127.0.0.10 multi.test\n127.0.0.11 multi.test\n"
             "127.0.0.12 dead.test\n127.0.0.13 dead.test\n"
             "127.0.0.14 resets.test\n127.0.0.15 resets.test\n127.0.0.14 resets.test\n"
             "127.0.0.14 once.test\n"
             "127.0.0.16 fives.test\n127.0.0.17 fives.test\n")
    d = tempfile.mkdtemp(prefix="ingressd-it-hosts-")
    p = None
    try:
        wrapper = hosts_wrapper(d, hosts)
        if not wrapper:
            print("  (skipped: no mount namespace for a test /etc/hosts here)")
            return
        Pod(addr("127.0.0.10"), "m1")
        Pod(addr("127.0.0.11"), "m2")
        Pod(addr("127.0.0.15"), "r2")
        closing = PyPod.closing(addr("127.0.0.14"))
        PyPod.raw_response(addr("127.0.0.16"), b"HTTP/1.1 503 Service Unavailable\r\n"
                           b"Content-Length: 4\r\n\r\nbusy", name="busy", keep=True)
        Pod(addr("127.0.0.17"), "f2")
        names = [("multi", "multi.test"), ("dead", "dead.test"), ("resets", "resets.test"),
                 ("once", "once.test"), ("fives", "fives.test")]
        conf = proxy_config(listen=[LISTEN], workers=1)
        for svc, name in names:
            ann = {"ingressd/retry-on": "error,http_503"} if svc == "fives" else None
            conf += service(svc, [("http", port, port)], type="ExternalName", external_name=name,
                            annotations=ann)
        conf += ingress("web", [(name, "/", "Prefix", svc, port) for svc, name in names])
        real, lib.INGRESSD_BIN = lib.INGRESSD_BIN, wrapper
        try:
            p = Proxy(conf)
        finally:
            lib.INGRESSD_BIN = real
        # every request lands whichever address it starts on; the cache's cursor spreads them
        seen = []
        for i in range(12):
            st, h, _ = http("GET", p.url("/m%d" % i), {"Host": "multi.test"})
            seen.append((st, h.get("X-Pod")))
        check(all(st == 200 for st, _ in seen),
              "a refused address is retried on the answer's next one: %r" % seen)
        pods = {pod for _, pod in seen}
        check(pods == {"m1", "m2"}, "requests spread over the addresses: %r" % seen)
        # every address refuses: 502, as with one
        for i in range(3):
            st, _, _ = http("GET", p.url("/d%d" % i), {"Host": "dead.test"})
            check(st == 502, "all addresses refused: %s" % st)
        # a reset before any response byte (GET): the next address, never the same one
        # again (the answer lists 127.0.0.14 twice, the retry count would allow it)
        got = []
        for i in range(4):
            before = closing.accepted
            st, h, _ = http("GET", p.url("/r%d" % i), {"Host": "resets.test"})
            got.append((st, h.get("X-Pod"), closing.accepted - before))
        check(all(st == 200 and pod == "r2" and n <= 1 for st, pod, n in got),
              "a reset is retried on another address, each address at most once: %r" % got)
        before = closing.accepted
        st, _, _ = http("GET", p.url("/o"), {"Host": "once.test"})
        check(st == 502 and closing.accepted - before == 1,
              "a one-address answer is tried once: %s, %d connections" %
              (st, closing.accepted - before))
        # retry-on http_503 goes to the next address as it goes to the next endpoint
        got = [http("GET", p.url("/f%d" % i), {"Host": "fives.test"}) for i in range(4)]
        check(all(st == 200 and h.get("X-Pod") == "f2" for st, h, _ in got),
              "a configured 503 retry takes the next address: %r" %
              [(st, h.get("X-Pod")) for st, h, _ in got])
        rc, p = p.stop(), None
        check(rc == 0, "ingressd exited with %s" % rc)
    finally:
        if p:
            p.stop()
        shutil.rmtree(d, ignore_errors=True)


@test
def retries_on_reset_and_configured_5xx_for_idempotent_requests_only():
    Pod(A, "pod-a")
    rb = "127.0.0.7:%d" % (BASE + 1)                    # one Service: one target port
    PyPod.closing(rb)                                   # reads, then closes: a reset
    five = "127.0.0.8:%d" % (BASE + 1)
    PyPod.raw_response(five, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
                       name="busy", keep=True)
    rules = [("r.test", "/", "Prefix", "resets", 80), ("f.test", "/", "Prefix", "fives", 80),
             ("n.test", "/", "Prefix", "noretry", 80)]
    backends = (backend("resets", [A, rb]) +
                backend("fives", [A, five], annotations={"ingressd/retry-on": "error,http_503"}) +
                backend("noretry", [A, five]))
    p = Proxy(cfg(rules, backends))
    # (before passive health ejects the bad pods: at most 4 failures each)
    posts = [http("POST", p.url("/p%d" % i), {"Host": "r.test"}, b"x")[0] for i in range(8)]
    check(502 in posts and 200 in posts, "POST with a body is not replayed after a reset: %r" % posts)
    plain = [http("GET", p.url("/q%d" % i), {"Host": "n.test"})[0] for i in range(8)]
    check(503 in plain, "without retry-on the 503 passes through: %r" % plain)
    for i in range(12):
        st, h, _ = http("GET", p.url("/g%d" % i), {"Host": "r.test"})
        check(st == 200 and h["X-Pod"] == "pod-a", "GET after a reset retried: %s" % st)
        st, h, _ = http("GET", p.url("/g%d" % i), {"Host": "f.test"})
        check(st == 200, "GET after a 503 retried when retry-on says so: %s" % st)


main()
