#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The podserver itself (the backend every other test and the bench rely on), and the
harness pieces that do not need ingressd: Pod, PyPod, raw, http, wrk parsing.
Ports 21000-21099."""
import hashlib
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F403

BASE = 21000
A = "127.0.0.2:%d" % (BASE + 1)


@test
def answers_with_name_and_size():
    p = Pod(A, "pod-a")
    st, h, body = http("GET", p.url("/x"))
    check(st == 200, "status %s" % st)
    check(h["X-Pod"] == "pod-a", "X-Pod %r" % h["X-Pod"])
    check(body == b"hello, world\n", "default body %r" % body)
    st, h, body = http("GET", p.url("/x?size=100000&status=201"))
    check(st == 201 and body == filler(100000), "?size/?status: %s, %d bytes" % (st, len(body)))
    st, h, body = http("HEAD", p.url("/?size=77"))
    check(st == 200 and h["Content-Length"] == "77" and body == b"", "HEAD: no body")
    st, h, body = http("GET", p.url("/?status=204"))
    check(st == 204 and body == b"" and h["Content-Length"] is None, "204 has no body/length")


@test
def size_option_and_big_download():
    p = Pod(A, "big", size=1024)
    st, _, body = http("GET", p.url("/"))
    check(st == 200 and body == filler(1024), "--size 1024")
    n = 50 * 1000 * 1000 + 7
    st, _, body = http("GET", p.url("/?size=%d" % n), timeout=30)
    check(st == 200 and len(body) == n and hashlib.sha256(body).digest() ==
          hashlib.sha256(filler(n)).digest(), "50 MB download byte-exact")


@test
def echo_dump():
    p = Pod(A, "echo")
    st, h, body = http("POST", p.url("/echo/x?y=1"), {"X-Test": "a b", "Host": "h.test"},
                       b"payload")
    check(st == 200, "status %s" % st)
    lines = body.decode().splitlines()
    check(lines[0] == "pod=echo", lines[0])
    check(lines[1] == "POST /echo/x?y=1 HTTP/1.1", lines[1])
    check("X-Test: a b" in lines and "Host: h.test" in lines, "headers as received: %r" % lines)
    check("body-bytes=7" in lines, "body-bytes")
    check("body-sha256=" + hashlib.sha256(b"payload").hexdigest() in lines, "sha256")


@test
def chunked_body_sha256():
    p = Pod(A, "echo")
    payload = os.urandom(300000)
    chunks = b""
    for i in range(0, len(payload), 7001):
        c = payload[i:i + 7001]
        chunks += b"%x\r\n" % len(c) + c + b"\r\n"
    req = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks +
           b"0\r\nX-Trailer: t1\r\n\r\n")
    out = raw(A, req, timeout=5, until=b"trailer X-Trailer: t1\n")
    rs = parse_responses(out)
    check(len(rs) == 1 and rs[0][0] == 200, "one 200: %r" % out[:200])
    text = rs[0][2].decode()
    check("body-bytes=%d" % len(payload) in text, "body-bytes: %s" % text)
    check("body-sha256=" + hashlib.sha256(payload).hexdigest() in text, "chunked sha256")
    check("trailer X-Trailer: t1" in text, "trailer listed")


@test
def keep_alive_reuses_connection():
    p = Pod(A, "ka")
    c = HTTPConnection(p.host, p.port, timeout=5)
    for i in range(20):
        st, _, body = http("GET", p.url("/k%d" % i), conn=c)
        check(st == 200 and body == b"hello, world\n", "request %d" % i)
    check(c.sock is not None, "connection still open after 20 requests")
    c.close()
    # HTTP/1.0 and Connection: close end the connection after the response
    out = raw(A, b"GET / HTTP/1.0\r\n\r\n", timeout=3)
    check(out.startswith(b"HTTP/1.1 200") and b"Connection: close" in out and
          out.endswith(b"hello, world\n"), "HTTP/1.0 closes: %r" % out)
    out = raw(A, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=0.5)
    check(b"Connection: keep-alive" in out, "HTTP/1.0 keep-alive honoured: %r" % out)
    t0 = time.monotonic()
    out = raw(A, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=3)
    check(time.monotonic() - t0 < 1 and out.endswith(b"hello, world\n"), "close honoured")


@test
def pipelining_in_order():
    p = Pod(A, "pipe")
    req = (b"GET /1?size=3 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
           b"GET /3?delay=200&size=5 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /4?status=404 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /5?size=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    t0 = time.monotonic()
    out = raw(p.addr, req, timeout=5)
    dt = time.monotonic() - t0
    rs = parse_responses(out)
    check([r[0] for r in rs] == [200, 200, 200, 404, 200], "statuses %r" % [r[0] for r in rs])
    check(rs[0][2] == b"hel" and rs[2][2] == b"hello" and rs[4][2] == b"h", "bodies in order")
    check(b"body-bytes=2" in rs[1][2], "echo in the middle")
    check(0.2 <= dt < 2, "delay honoured and close ended it: %.2fs" % dt)


@test
def pipelined_big_responses_past_backpressure():
    Pod(A, "bp")
    n = 3000000
    req = b"GET /?size=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n
    out = raw(A, req * 3 + b"GET /?size=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
              timeout=10)
    rs = parse_responses(out)
    check([len(r[2]) for r in rs] == [n, n, n, 5], "all four answered: %r" % [len(r[2]) for r in rs])


@test
def malformed_gets_400_and_close():
    Pod(A, "bad")
    out = raw(A, b"GARBAGE\r\n\r\n", timeout=3)
    check(out.startswith(b"HTTP/1.1 400"), "400: %r" % out)
    out = raw(A, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
              timeout=3)
    check(out.startswith(b"HTTP/1.1 400"), "duplicate CL -> 400: %r" % out)


@test
def close_chunked_trailers_expect():
    Pod(A, "opt")
    out = raw(A, b"GET /?close=1 HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
    rs = parse_responses(out)
    check(len(rs) == 1 and dict(rs[0][1]).get("Connection") == "close", "?close=1: %r" % out)
    out = raw(A, b"GET /?chunked=1&size=100000&trailers=1 HTTP/1.1\r\nHost: x\r\n"
                 b"Connection: close\r\n\r\n", timeout=3)
    check(b"Transfer-Encoding: chunked" in out and b"Trailer: X-Pod-Trailer" in out, "chunked head")
    check(out.endswith(b"\r\n0\r\nX-Pod-Trailer: opt\r\n\r\n"), "trailer at the end: %r" % out[-60:])
    rs = parse_responses(out)
    check(rs and rs[0][2] == filler(100000), "chunked body")
    st, h, body = http("GET", "http://%s/?chunked=1&size=0" % A)
    check(st == 200 and body == b"", "empty chunked body")
    st, h, body = http("POST", "http://%s/echo?chunked=1" % A, body=b"abc")
    check(st == 200 and b"body-bytes=3" in body and h["Transfer-Encoding"] == "chunked",
          "chunked echo")
    import socket as so
    s = so.create_connection(split_addr(A), timeout=3)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    got = s.recv(100)
    check(got == b"HTTP/1.1 100 Continue\r\n\r\n", "100 Continue before the body: %r" % got)
    s.sendall(b"data")
    got = b""
    while b"body-sha256" not in got:
        got += s.recv(4096)
    check(b"body-bytes=4" in got and b"HTTP/1.1 200" in got, "final response after 100")
    s.close()


@test
def threads_and_multiple_listeners():
    b = "127.0.0.3:%d" % (BASE + 2)
    p = Pod(A, "mt", threads=2, listen=[b])
    for a in (A, b):
        st, h, _ = http("GET", "http://%s/" % a)
        check(st == 200 and h["X-Pod"] == "mt", "listener %s" % a)
    r = wrk(p.url("/"), duration=1, conns=20)
    check(r["requests"] > 1000 and r["non2xx"] == 0 and r["socket_errors"] == 0,
          "wrk: %r" % {k: v for k, v in r.items() if k != "raw"})
    check(r["p50_ms"] is not None and r["p99_ms"] is not None, "latency percentiles parsed")


@test
def sigterm_exits_zero():
    p = Pod(A, "term")
    check(p.stop() == 0, "exit 0 on SIGTERM")


@test
def pypods():
    s = PyPod.slow("127.0.0.4:%d" % (BASE + 10), 0.3)
    t0 = time.monotonic()
    st, _, body = http("GET", s.url("/"))
    check(st == 200 and body == b"slow\n" and time.monotonic() - t0 >= 0.3, "slow pod")
    q = PyPod.silent("127.0.0.4:%d" % (BASE + 11))
    try:
        http("GET", q.url("/"), timeout=0.3)
        check(False, "silent pod answered")
    except socket.timeout:
        pass
    c = PyPod.closing("127.0.0.4:%d" % (BASE + 12))
    check(raw(c.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=2) == b"", "closing pod")
    tr = PyPod.trailers("127.0.0.4:%d" % (BASE + 13))
    rs = parse_responses(raw(tr.addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    check(rs and rs[0][2] == b"hello\n", "trailers pod: %r" % rs)
    st_ = PyPod.stream("127.0.0.4:%d" % (BASE + 14), chunks=3, chunk_size=10, interval=0.05)
    st, _, body = http("GET", st_.url("/"))
    check(st == 200 and body == filler(10) * 3, "stream pod")
    ws = PyPod.websocket_echo("127.0.0.4:%d" % (BASE + 15))
    sock = socket.create_connection(split_addr(ws.addr), timeout=3)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        got += sock.recv(4096)
    check(b"101" in got and b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in got, "ws handshake: %r" % got)
    sock.sendall(b"ping-bytes")
    echoed = b""
    while len(echoed) < 10:
        echoed += sock.recv(100)
    check(echoed == b"ping-bytes", "ws echo")
    sock.close()


@test
def config_builders():
    y = (proxy_config(listen=["127.0.0.1:%d" % BASE, {"address": "127.0.0.1:%d" % (BASE + 1),
                                                      "tls": True}],
                      admin="127.0.0.1:%d" % (BASE + 99), extra_spec={"timeouts": {"upstreamRead": "2s"}})
         + backend("web", ["127.0.0.2:8080", "127.0.0.3:8080"])
         + ingress("web", [("a.test", "/", "Prefix", "web", 80), ("a.test", "/api", "Exact", "web", "http"),
                           (None, "/x", "Prefix", "web", 80)], default_backend=("web", 80),
                   annotations={"ingressd/x": 1}))
    listen, admin = parse_listeners(y)
    check(listen == [("127.0.0.1:%d" % BASE, False), ("127.0.0.1:%d" % (BASE + 1), True)],
          "listeners parsed: %r" % listen)
    check(admin == "127.0.0.1:%d" % (BASE + 99), "admin parsed")
    check(y.count("\n---\n") + y.startswith("---") == 4, "four documents")
    check('"ingressd/x": "1"' in y or 'ingressd/x: "1"' in y, "annotation as string")


main()
