#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""1 GiB through the proxy both ways, byte-exact, with the proxy's RSS under 64 MiB
while it passes (bodies are streamed with backpressure, never buffered whole).
Large Content-Length responses are spliced pod -> pipe -> client: several on one
keep-alive connection, read slowly, and one the pod cuts short.
Ports 22300-22399."""
import hashlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F403

BASE = 22300
LISTEN = "127.0.0.1:%d" % BASE
A = "127.0.0.2:%d" % (BASE + 1)
GIB = 1 << 30
RSS_LIMIT_KB = 64 * 1024
if "asan" in INGRESSD_BIN:          # the sanitizer quarantines freed memory
    RSS_LIMIT_KB = 1 << 30


def setup():
    Pod(A, "pod-a")
    return Proxy(proxy_config(listen=[LISTEN], workers=2) + backend("web", [A]) +
                 ingress("web", [("a.test", "/", "Prefix", "web", 80)]))


@test
def one_gib_download_byte_exact():
    p = setup()
    w = RssWatch(p)
    s = socket.create_connection(split_addr(LISTEN), timeout=30)
    s.sendall(b"GET /?size=%d HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n" % GIB)
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, body = buf.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % GIB in head, head)
    # the podserver body repeats a 13-byte pattern: check every piece at its offset
    big = PATTERN * ((1 << 20) // len(PATTERN) + 2)
    n, mismatch = 0, False
    d = body
    while True:
        if d:
            off = n % len(PATTERN)
            if d != big[off:off + len(d)]:
                mismatch = True
            n += len(d)
        if n >= GIB:
            break
        d = s.recv(1 << 20)
        if not d:
            break
    s.close()
    peak = w.stop()
    check(n == GIB, "received %d of %d bytes" % (n, GIB))
    check(not mismatch, "content byte-exact")
    print("    proxy RSS peak %d KiB" % peak)
    check(peak < RSS_LIMIT_KB, "proxy RSS peak %d KiB < 64 MiB" % peak)


@test
def one_gib_upload_byte_exact():
    p = setup()
    w = RssWatch(p)
    s = socket.create_connection(split_addr(LISTEN), timeout=60)
    s.sendall(b"POST /echo/up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n" % GIB)
    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    for i in range(GIB // len(block)):
        s.sendall(block)
        h.update(block)
    got = b""
    s.settimeout(60)
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    peak = w.stop()
    check(b"HTTP/1.1 200" in got, "answered: %r" % got[:200])
    check(b"body-bytes=%d" % GIB in got and b"body-sha256=" + h.hexdigest().encode() in got,
          "pod received 1 GiB byte-exact: %r" % got[-200:])
    print("    proxy RSS peak %d KiB" % peak)
    check(peak < RSS_LIMIT_KB, "proxy RSS peak %d KiB < 64 MiB" % peak)


@test
def chunked_upload_256_mib():
    p = setup()
    w = RssWatch(p)
    s = socket.create_connection(split_addr(LISTEN), timeout=60)
    s.sendall(b"POST /echo/up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n")
    block = os.urandom((1 << 20) - 7)
    h = hashlib.sha256()
    total = 0
    for i in range(256):
        s.sendall(b"%x\r\n" % len(block) + block + b"\r\n")
        h.update(block)
        total += len(block)
    s.sendall(b"0\r\n\r\n")
    got = b""
    s.settimeout(60)
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    peak = w.stop()
    check(b"body-bytes=%d" % total in got and b"body-sha256=" + h.hexdigest().encode() in got,
          "chunked upload byte-exact: %r" % got[-200:])
    check(peak < RSS_LIMIT_KB, "proxy RSS peak %d KiB" % peak)


def read_response(s, deadline):
    """One Content-Length response from socket S: (head, body); body may be short if
    the connection closed first."""
    buf = b""
    while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    cl = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            cl = int(v.strip())
    while cl is not None and len(body) < cl and time.monotonic() < deadline:
        d = s.recv(min(65536, cl - len(body)))
        if not d:
            break
        body += d
    return head, body, cl


@test
def large_responses_on_one_keepalive_connection():
    """Bodies above and below the splice threshold, in turn, on one connection, the
    last one only read after a pause: each byte-exact, the connection kept."""
    p = setup()
    s = socket.create_connection(split_addr(LISTEN), timeout=10)
    deadline = time.monotonic() + 30
    big = PATTERN * ((16 << 20) // len(PATTERN) + 2)
    for size, slow in ((1 << 20, False), (40000, False), (100, False), (4 << 20, False),
                       (300000, False), (16 << 20, True)):
        s.sendall(b"GET /?size=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % size)
        if slow:
            time.sleep(0.5)  # the proxy meets a full client socket and waits for it
        head, body, cl = read_response(s, deadline)
        check(head.startswith(b"HTTP/1.1 200") and cl == size, "size %d: %r" % (size, head[:80]))
        check(len(body) == size and body == big[:size], "size %d: %d bytes, byte-exact %s" % (
            size, len(body), body == big[:size]))
    s.sendall(b"GET /?size=10 HTTP/1.1\r\nHost: a.test\r\n\r\n")
    head, body, _ = read_response(s, deadline)
    check(head.startswith(b"HTTP/1.1 200") and body == big[:10], "the connection still serves")
    s.close()


@test
def pod_cutting_a_large_body_short_cuts_the_client():
    """The pod promises 3,000,000 bytes and closes after 100,000: the client gets the
    100,000 and then a close (never a complete-looking response), the proxy goes on."""
    cut = "127.0.0.3:%d" % (BASE + 1)

    def short(pod, s, req):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n" + b"x" * 100000)
        return False
    PyPod(cut, short, name="cut")
    Pod(A, "pod-a")
    p = Proxy(proxy_config(listen=[LISTEN], workers=1) + backend("web", [A]) + backend("cut", [cut]) +
              ingress("web", [("a.test", "/", "Prefix", "web", 80), ("b.test", "/", "Prefix", "cut", 80)]))
    s = socket.create_connection(split_addr(LISTEN), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n")
    head, body, cl = read_response(s, time.monotonic() + 10)
    check(head.startswith(b"HTTP/1.1 200") and cl == 3000000, head[:80])
    check(len(body) == 100000, "the client got the %d bytes the pod sent" % len(body))
    try:
        rest = s.recv(10)
    except OSError:
        rest = b""
    check(rest == b"", "then the connection closed")
    s.close()
    st, _, b = http("GET", p.url("/?size=50000"), {"Host": "a.test"})
    check(st == 200 and len(b) == 50000, "the proxy still serves (%s, %d bytes)" % (st, len(b)))


main()
