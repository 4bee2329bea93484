#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Listeners across reloads: a listener that stays is never closed (no refused connect
while reloads happen), an added one starts accepting, a removed one stops accepting
while the requests it accepted finish; keep-alive connections pick up new routes on
their next request. Ports 22500-22599."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F403

BASE = 22500
L1 = "127.0.0.1:%d" % BASE
L2 = "127.0.0.1:%d" % (BASE + 1)
L3 = "127.0.0.1:%d" % (BASE + 2)
A = "127.0.0.2:%d" % (BASE + 10)
B = "127.0.0.3:%d" % (BASE + 10)
SLOW = "127.0.0.4:%d" % (BASE + 10)


def conf(listen, svc="a"):
    return (proxy_config(listen=listen, workers=2) + backend("a", [A]) + backend("b", [B]) +
            backend("slow", [SLOW]) +
            ingress("web", [("a.test", "/", "Prefix", svc, 80),
                            ("slow.test", "/", "Prefix", "slow", 80)]))


@test
def listeners_diffed_by_address_across_reloads():
    Pod(A, "pod-a")
    Pod(B, "pod-b")
    PyPod.slow(SLOW, 1.5)
    p = Proxy(conf([L1, L2]))
    refused, done = [], threading.Event()

    def hammer():
        while not done.is_set():
            try:
                st, _, _ = http("GET", "http://%s/" % L1, {"Host": "a.test"}, timeout=3)
                if st != 200:
                    refused.append(st)
            except OSError as e:
                refused.append(repr(e))
    t = threading.Thread(target=hammer, daemon=True)
    t.start()
    # a slow request in flight on L2 when L2 goes away
    slow = {}

    def slow_req():
        try:
            slow["r"] = http("GET", "http://%s/" % L2, {"Host": "slow.test"}, timeout=10)
        except OSError as e:
            slow["r"] = e
    ts = threading.Thread(target=slow_req, daemon=True)
    ts.start()
    time.sleep(0.3)
    p.reload(conf([L1, L3], svc="b"))
    wait_until(lambda: port_open(L3), 3, msg="the added listener accepts")
    wait_until(lambda: not port_open(L2), 3, msg="the removed listener stops accepting")
    for i in range(10):
        p.reload(conf([L1, L3], svc="b" if i % 2 else "a"))
        time.sleep(0.05)
    p.reload(conf([L1, L3], svc="b"))
    wait_until(lambda: http("GET", "http://%s/" % L3, {"Host": "a.test"})[1]["X-Pod"] == "pod-b",
               3, msg="new routes on the new listener")
    done.set()
    t.join(5)
    ts.join(10)
    check(not refused, "the kept listener never refused or failed: %r" % refused[:5])
    r = slow.get("r")
    check(isinstance(r, tuple) and r[0] == 200 and r[2] == b"slow\n",
          "the request accepted by the removed listener finished: %r" % (r,))


@test
def keepalive_connection_sees_new_routes_on_next_request():
    Pod(A, "pod-a")
    Pod(B, "pod-b")
    PyPod.slow(SLOW, 0.1)
    p = Proxy(conf([L1]))
    c = HTTPConnection(*split_addr(L1), timeout=5)
    st, h, _ = http("GET", "http://%s/" % L1, {"Host": "a.test"}, conn=c)
    check(h["X-Pod"] == "pod-a", "first on pod-a")
    p.reload(conf([L1], svc="b"))

    def switched():
        st, h, _ = http("GET", "http://%s/" % L1, {"Host": "a.test"}, conn=c)
        return h["X-Pod"] == "pod-b"
    wait_until(switched, 3, msg="same connection routed by the new snapshot")
    c.close()


main()
