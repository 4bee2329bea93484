#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Consistent hashing and session affinity through the real proxy: two replicas with
the same configuration agree, ClientIP affinity holds across workers and replicas,
cookie affinity sets and follows its cookie, removing 1 of 10 endpoints moves about a
tenth of the keys. Ports 23200-23299; pods on 127.0.0.2-127.0.0.11; clients bind
127.0.0.100-127.0.0.160 as source addresses."""
import os
import socket
import sys
from http.client import HTTPConnection

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F401,F403

BASE = 23200
ADMIN = "127.0.0.1:%d"


def config(listen, admin, addrs, annotations=None, workers=2, **svc):
    return (proxy_config(listen=[listen], admin=admin, workers=workers)
            + backend("web", addrs, annotations=annotations, **svc)
            + ingress("web", [("aff.test", "/", "Prefix", "web", 80)]))


def get_from(listen, source_ip=None, headers=None, path="/"):
    """One GET on a fresh connection (so a 2-worker proxy spreads them over workers),
    optionally from SOURCE_IP. Returns (status, X-Pod, response headers)."""
    host, port = split_addr(listen)
    c = HTTPConnection(host, port, timeout=5,
                       source_address=(source_ip, 0) if source_ip else None)
    try:
        h = {"Host": "aff.test"}
        h.update(headers or {})
        c.request("GET", path, headers=h)
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("X-Pod"), r
    finally:
        c.close()


def pods(n, port):
    return [Pod("127.0.0.%d:%d" % (2 + i, port), "pod-%d" % i) for i in range(n)]


@test
def hash_by_header_agrees_across_replicas():
    ps = pods(5, BASE + 1)
    ann = {"ingressd/load-balance": "hash", "ingressd/hash-by": "header:X-User"}
    l1, l2 = "127.0.0.1:%d" % (BASE + 10), "127.0.0.1:%d" % (BASE + 11)
    Proxy(config(l1, ADMIN % (BASE + 90), [p.addr for p in ps], ann))
    # the second replica lists the endpoints in another order
    Proxy(config(l2, ADMIN % (BASE + 91), [p.addr for p in reversed(ps)], ann))
    used = set()
    for i in range(200):
        u = {"X-User": "user-%d" % i}
        s1, p1, _ = get_from(l1, headers=u)
        s2, p2, _ = get_from(l2, headers=u)
        s3, p3, _ = get_from(l1, headers=u)
        check(s1 == s2 == s3 == 200, "statuses %s %s %s" % (s1, s2, s3))
        check(p1 == p2 == p3, "user-%d: %s / %s / %s" % (i, p1, p2, p3))
        used.add(p1)
    check(len(used) == 5, "200 keys spread over the 5 pods: %r" % used)


@test
def client_ip_affinity_across_workers_and_replicas():
    ps = pods(4, BASE + 2)
    l1, l2 = "127.0.0.1:%d" % (BASE + 20), "127.0.0.1:%d" % (BASE + 21)
    Proxy(config(l1, ADMIN % (BASE + 92), [p.addr for p in ps], session_affinity="ClientIP",
                 affinity_timeout=600))
    Proxy(config(l2, ADMIN % (BASE + 93), [p.addr for p in ps], session_affinity="ClientIP",
                 affinity_timeout=600))
    used = set()
    for i in range(40):
        src = "127.0.0.%d" % (100 + i)
        got = set()
        for _ in range(4):
            for l in (l1, l2):
                st, pod, _ = get_from(l, source_ip=src)
                check(st == 200, "status %s" % st)
                got.add(pod)
        check(len(got) == 1, "client %s saw %r" % (src, got))
        used |= got
    check(len(used) >= 3, "40 clients spread over the pods: %r" % used)


@test
def cookie_affinity_sets_and_follows_the_cookie():
    ps = pods(4, BASE + 3)
    l = "127.0.0.1:%d" % (BASE + 30)
    Proxy(config(l, ADMIN % (BASE + 94), [p.addr for p in ps],
                 {"ingressd/affinity": "cookie"}))
    st, pod, r = get_from(l)
    check(st == 200, "status %s" % st)
    sc = r.getheader("Set-Cookie") or ""
    check(sc.startswith("INGRESSD="), "Set-Cookie INGRESSD=...: %r" % sc)
    cookie = sc.split(";")[0]
    for _ in range(12):
        st, p2, r2 = get_from(l, headers={"Cookie": "a=b; " + cookie})
        check(st == 200 and p2 == pod, "cookie %s followed to %s, got %s" % (cookie, pod, p2))
        check(r2.getheader("Set-Cookie") is None, "no new cookie while it is followed")


@test
def removing_1_of_10_endpoints_moves_about_a_tenth_of_keys():
    ps = pods(10, BASE + 4)
    l = "127.0.0.1:%d" % (BASE + 40)
    ann = {"ingressd/load-balance": "hash", "ingressd/hash-by": "path"}
    p = Proxy(config(l, ADMIN % (BASE + 95), [x.addr for x in ps], ann))
    keys = ["/k/%d" % i for i in range(1000)]
    before = {}
    c = HTTPConnection(*split_addr(l), timeout=5)
    for k in keys:
        st, h, _ = http("GET", "http://%s%s" % (l, k), {"Host": "aff.test"}, conn=c)
        check(st == 200, "status %s" % st)
        before[k] = h.get("X-Pod")
    c.close()
    gen0 = p.admin("/config")[2]
    p.reload(config(l, ADMIN % (BASE + 95), [x.addr for x in ps if x.name != "pod-3"], ann))
    wait_until(lambda: p.admin("/config")[2] != gen0, 5, msg="reload applied")

    def moved_after():
        after = {}
        c2 = HTTPConnection(*split_addr(l), timeout=5)
        for k in keys:
            st, h, _ = http("GET", "http://%s%s" % (l, k), {"Host": "aff.test"}, conn=c2)
            check(st == 200, "status %s" % st)
            after[k] = h.get("X-Pod")
        c2.close()
        return after
    after = wait_until(lambda: (lambda a: a if "pod-3" not in a.values() else None)(moved_after()),
                       5, msg="pod-3 out of the ring")
    moved = sum(1 for k in keys if before[k] != after[k])
    owned = sum(1 for k in keys if before[k] == "pod-3")
    print("    removing 1 of 10 endpoints moved %d of %d keys (%.1f%%); pod-3 owned %d"
          % (moved, len(keys), 100 * moved / len(keys), owned))
    check(moved == owned, "only pod-3's keys move (%d moved, %d owned)" % (moved, owned))
    check(moved <= 150, "at most ~15%% of keys move: %d" % moved)


main()
