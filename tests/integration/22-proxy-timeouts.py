#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Timeouts: the whole head must arrive within clientHeader (slowloris), 1,000 trickling
clients do not delay a normal one, keep-alive idle connections close after clientIdle,
a stalled request body gets 408, a pod that never answers gets 504, a slow pod within
the read timeout is fine. Ports 22200-22299."""
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F403

BASE = 22200
LISTEN = "127.0.0.1:%d" % BASE
A = "127.0.0.2:%d" % (BASE + 1)
S = "127.0.0.3:%d" % (BASE + 2)


def setup(spec, workers=1):
    Pod(A, "pod-a")
    return Proxy(proxy_config(listen=[LISTEN], workers=workers, extra_spec=spec) +
                 backend("web", [A]) + ingress("web", [("a.test", "/", "Prefix", "web", 80)]))


def read_all(s, timeout):
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return got, True
            got += d
    except socket.timeout:
        return got, False
    except ConnectionResetError:
        return got, True


@test
def slowloris_cut_at_header_timeout():
    setup({"timeouts": {"clientHeader": "1s"}})
    s = socket.create_connection(split_addr(LISTEN), timeout=5)
    t0 = time.monotonic()
    head = b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Slow: "
    closed = False
    got = b""
    for i in range(40):
        try:
            s.sendall(head[i:i + 1] if i < len(head) else b"a")
        except OSError:
            closed = True
            break
        got_i, closed = read_all(s, 0.1)
        got += got_i
        if closed:
            break
    el = time.monotonic() - t0
    s.close()
    check(closed, "connection closed")
    check(0.8 <= el <= 2.5, "cut after about 1s of trickling, not per byte: %.2fs" % el)
    check(got == b"" or got.startswith(b"HTTP/1.1 408"), "408 or silent close: %r" % got)


@test
def a_thousand_slow_clients_do_not_delay_a_normal_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2500:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    p = setup({"timeouts": {"clientHeader": "5s"}}, workers=2)
    slow = []
    for i in range(1000):
        try:
            s = socket.create_connection(split_addr(LISTEN), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHo")
            slow.append(s)
        except OSError:
            break
    check(len(slow) >= 1000, "opened %d slow clients" % len(slow))
    worst = 0.0
    for i in range(20):
        for s in slow[i * 50:(i + 1) * 50]:
            try:
                s.send(b"s")
            except OSError:
                pass
        t0 = time.monotonic()
        st, _, body = http("GET", p.url("/"), {"Host": "a.test"}, timeout=5)
        worst = max(worst, time.monotonic() - t0)
        check(st == 200 and body == b"hello, world\n", "normal client answered")
    for s in slow:
        s.close()
    check(worst < 0.5, "normal client never waited long: worst %.3fs" % worst)


@test
def idle_keepalive_closed_after_client_idle():
    setup({"timeouts": {"clientIdle": "700ms"}})
    s = socket.create_connection(split_addr(LISTEN), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    t0 = time.monotonic()
    got, closed = read_all(s, 3)
    el = time.monotonic() - t0
    s.close()
    check(got.startswith(b"HTTP/1.1 200"), "answered")
    check(closed and 0.5 <= el <= 2.5, "idle connection closed after ~0.7s: %s %.2fs" % (closed, el))


@test
def stalled_body_gets_408():
    setup({"timeouts": {"clientBody": "700ms"}})
    s = socket.create_connection(split_addr(LISTEN), timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\nabc")
    got, closed = read_all(s, 4)
    s.close()
    check(got.startswith(b"HTTP/1.1 408") and closed, "408 and close: %r" % got[:100])


@test
def slow_pod_within_read_timeout_and_silent_pod_504():
    PyPod.slow(S, 0.5)
    silent = PyPod.silent("127.0.0.4:%d" % (BASE + 3))
    p = Proxy(proxy_config(listen=[LISTEN], workers=1,
                           extra_spec={"timeouts": {"upstreamRead": "1s"}}) +
              backend("slow", [S]) + backend("silent", ["127.0.0.4:%d" % (BASE + 3)]) +
              ingress("web", [("slow.test", "/", "Prefix", "slow", 80),
                              ("silent.test", "/", "Prefix", "silent", 80)]))
    st, _, body = http("GET", p.url("/"), {"Host": "slow.test"})
    check(st == 200 and body == b"slow\n", "slow pod within the timeout: %s" % st)
    t0 = time.monotonic()
    st, h, _ = http("GET", p.url("/"), {"Host": "silent.test"}, timeout=10)
    el = time.monotonic() - t0
    check(st == 504 and h["X-Request-ID"], "504 with request id: %s" % st)
    check(0.8 <= el <= 3.5, "after about the read timeout (retries excluded): %.2fs" % el)
    silent.stop()


main()
