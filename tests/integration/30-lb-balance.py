#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Load balancing through the real proxy: round-robin share, ewma, least_conn.
Ports 23000-23099; pods on 127.0.0.2-127.0.0.9."""
import os
import sys
import threading
import time
from http.client import HTTPConnection

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F401,F403

BASE = 23000
LISTEN = "127.0.0.1:%d" % BASE
ADMIN = "127.0.0.1:%d" % (BASE + 90)


def count_pods(n_total, nthreads, host="lb.test", path="/", headers=None):
    """Sends N_TOTAL GETs over NTHREADS keep-alive connections; returns ({pod: n}, errors)."""
    counts, errors, lock = {}, [], threading.Lock()
    per = n_total // nthreads

    def run():
        local, c = {}, None
        try:
            for i in range(per):
                if c is None:
                    c = HTTPConnection(*split_addr(LISTEN), timeout=10)
                h = {"Host": host}
                h.update(headers or {})
                c.request("GET", path, headers=h)
                r = c.getresponse()
                r.read()
                if r.status != 200:
                    with lock:
                        errors.append(r.status)
                pod = r.getheader("X-Pod", "?")
                local[pod] = local.get(pod, 0) + 1
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = None
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(repr(e))
        finally:
            if c:
                c.close()
            with lock:
                for k, v in local.items():
                    counts[k] = counts.get(k, 0) + v

    ths = [threading.Thread(target=run) for _ in range(nthreads)]
    for t in ths:
        t.start()
    for t in ths:
        t.join(timeout=300)
    return counts, errors


def config(addrs, annotations=None, workers=2, extra_spec=None):
    return (proxy_config(listen=[LISTEN], admin=ADMIN, workers=workers, extra_spec=extra_spec)
            + backend("web", addrs, annotations=annotations)
            + ingress("web", [("lb.test", "/", "Prefix", "web", 80)]))


@test
def round_robin_share_within_1pct_over_30000_requests():
    pods = [Pod("127.0.0.%d:%d" % (2 + i, BASE + 1), "pod-%d" % i) for i in range(3)]
    Proxy(config([p.addr for p in pods]))
    counts, errors = count_pods(30000, 3)
    check(not errors, "errors: %r" % errors[:5])
    total = sum(counts.values())
    check(total == 30000, "answered %d of 30000" % total)
    shares = {k: v / total for k, v in sorted(counts.items())}
    print("    rr shares over %d requests: %s" % (total, ", ".join(
        "%s=%d (%.3f%%)" % (k, counts[k], 100 * s) for k, s in shares.items())))
    check(set(shares) == {"pod-0", "pod-1", "pod-2"}, "pods seen: %r" % counts)
    for k, s in shares.items():
        check(abs(s - 1 / 3) <= 0.01, "%s share %.4f is not within 1%% of 1/3" % (k, s))


@test
def ewma_sends_most_traffic_away_from_a_10x_slower_pod():
    fast = [PyPod.slow("127.0.0.%d:%d" % (2 + i, BASE + 2), 0.005, name="fast-%d" % i)
            for i in range(2)]
    slow = PyPod.slow("127.0.0.4:%d" % (BASE + 2), 0.05, name="slow")
    Proxy(config([p.addr for p in fast] + [slow.addr],
                 annotations={"ingressd/load-balance": "ewma"}))
    counts, errors = count_pods(600, 4)
    check(not errors, "errors: %r" % errors[:5])
    total = sum(counts.values())
    share = counts.get("slow", 0) / total
    print("    ewma: %r, slow share %.1f%%" % (counts, 100 * share))
    check(share < 0.10, "slow pod got %.1f%% of traffic (even split is 33%%)" % (100 * share))


@test
def least_conn_avoids_the_pod_holding_long_requests():
    slow = PyPod.slow("127.0.0.2:%d" % (BASE + 3), 2.0, name="slow")
    fast = [Pod("127.0.0.%d:%d" % (3 + i, BASE + 3), "fast-%d" % i) for i in range(2)]
    Proxy(config([slow.addr] + [p.addr for p in fast],
                 annotations={"ingressd/load-balance": "least_conn"}))
    # park two long requests on the slow pod (least_conn sends the first ones anywhere,
    # so send a few and keep them in flight)
    parked = []

    def park():
        try:
            http("GET", "http://%s/park" % LISTEN, {"Host": "lb.test"}, timeout=10)
        except Exception:  # noqa: BLE001
            pass
    for _ in range(6):
        t = threading.Thread(target=park)
        t.start()
        parked.append(t)
    wait_until(lambda: len(slow.requests) >= 1, 5, msg="a request parked on the slow pod")
    time.sleep(0.2)
    counts, errors = count_pods(200, 2)
    check(not errors, "errors: %r" % errors[:5])
    print("    least_conn with %d parked on slow: %r" % (len(slow.requests), counts))
    # an exact tie (a fast pod momentarily as busy as the slow one) may still pick it
    check(counts.get("slow", 0) <= 5, "new requests avoid the busy pod: %r" % counts)
    for t in parked:
        t.join(timeout=10)


main()
