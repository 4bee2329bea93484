#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""SIGTERM drain (issue 5, contract "SIGTERM: graceful drain then exit").

Listeners close at once (new connections refused), a request in flight
completes, a keep-alive connection gets Connection: close on its next
response, /healthz answers 503 "draining" meanwhile, and the process exits 0
as soon as nothing is in flight -- or when spec.drainTimeout passes with a
request still hung. Ports 26000-26099.
"""
import signal
import threading
import time

from lib import *

BASE = 26000
LISTEN = "127.0.0.1:%d" % BASE
ADMIN = "127.0.0.1:%d" % (BASE + 1)


def conf(pod_addr, drain=None):
    extra = {"drainTimeout": drain} if drain else None
    return (proxy_config(listen=[LISTEN], admin=ADMIN, workers=2, extra_spec=extra)
            + backend("app", [pod_addr])
            + ingress("app", [(None, "/", "Prefix", "app", 80)]))


def exit_within(p, seconds):
    """Waits for the process to exit; returns (exit code, seconds waited)."""
    t0 = time.monotonic()
    try:
        rc = p.proc.wait(timeout=seconds)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
        raise TestFailure("ingressd still running %.1f s after SIGTERM\n%s" % (
            seconds, p.log()[-2000:]))
    return rc, time.monotonic() - t0


def in_thread(fn):
    out = {}

    def run():
        try:
            out["r"] = fn()
        except Exception as e:  # noqa: BLE001
            out["e"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


@test
def idle_process_exits_at_once():
    pod = Pod("127.0.0.2:%d" % (BASE + 10), "app")
    p = Proxy(conf(pod.addr))
    check(http("GET", p.url("/"))[0] == 200, "serving")
    p.send_signal(signal.SIGTERM)
    rc, dt = exit_within(p, 5)
    check(rc == 0, "exit status 0, got %s" % rc)
    check(dt < 1.0, "exited %.2f s after SIGTERM with nothing in flight" % dt)


@test
def inflight_request_completes_and_new_connections_are_refused():
    slow = PyPod.slow("127.0.0.2:%d" % (BASE + 20), 1.5)
    p = Proxy(conf(slow.addr))
    t, out = in_thread(lambda: http("GET", p.url("/slow"), timeout=10))
    wait_until(lambda: len(slow.requests) >= 1, 3, 0.01, "the slow request to reach the pod")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    wait_until(lambda: not port_open(LISTEN, 0.1), 1.0, 0.02, "the listener to close")
    st, _, body = http("GET", "http://%s/healthz" % ADMIN, timeout=2)
    check(st == 503 and body == b"draining\n", "/healthz 503 draining during the drain (%s)" % st)
    t.join(10)
    check("e" not in out, "in-flight request failed: %r" % out.get("e"))
    st, h, body = out["r"]
    check(st == 200 and body == b"slow\n", "in-flight request completed (%s %r)" % (st, body))
    rc, _ = exit_within(p, 5)
    dt = time.monotonic() - t0
    check(rc == 0, "exit status 0, got %s" % rc)
    check(dt < 1.5 + 1.0, "exited %.2f s after SIGTERM (request took 1.5 s)" % dt)


@test
def keepalive_connection_gets_connection_close():
    slow = PyPod.slow("127.0.0.2:%d" % (BASE + 30), 1.0)
    p = Proxy(conf(slow.addr))
    c = HTTPConnection(*split_addr(p.addr), timeout=10)
    st, h, _ = http("GET", p.url("/first"), conn=c)
    check(st == 200, "first request on the keep-alive connection")
    # the second request on the same connection is in flight when SIGTERM comes
    t, out = in_thread(lambda: http("GET", p.url("/second"), conn=c))
    wait_until(lambda: len(slow.requests) >= 2, 3, 0.01, "the second request to reach the pod")
    p.send_signal(signal.SIGTERM)
    t.join(10)
    check("e" not in out, "second request failed: %r" % out.get("e"))
    st, h, _ = out["r"]
    check(st == 200, "second request completed (%s)" % st)
    check((h.get("Connection") or "").lower() == "close",
          "Connection: close on the response during the drain (got %r)" % h.get("Connection"))
    c.close()
    rc, _ = exit_within(p, 5)
    check(rc == 0, "exit status 0, got %s" % rc)


@test
def sighup_during_drain_is_harmless():
    slow = PyPod.slow("127.0.0.2:%d" % (BASE + 50), 1.0)
    p = Proxy(conf(slow.addr))
    t, out = in_thread(lambda: http("GET", p.url("/slow"), timeout=10))
    wait_until(lambda: len(slow.requests) >= 1, 3, 0.01, "the slow request to reach the pod")
    p.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    p.send_signal(signal.SIGHUP)   # a reload request now must neither reload nor kill
    t.join(10)
    check("e" not in out and out["r"][0] == 200, "in-flight request completed: %r" % out)
    rc, _ = exit_within(p, 5)
    check(rc == 0, "exit status 0 after a SIGHUP during the drain, got %s" % rc)


@test
def hung_request_bounded_by_drain_timeout():
    silent = PyPod.silent("127.0.0.2:%d" % (BASE + 40))
    p = Proxy(conf(silent.addr, drain="1s"))
    t, out = in_thread(lambda: http("GET", p.url("/hang"), timeout=20))
    wait_until(lambda: len(silent.requests) >= 1, 3, 0.01, "the request to reach the pod")
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc, _ = exit_within(p, 5)
    dt = time.monotonic() - t0
    check(rc == 0, "exit status 0 after the drain timeout, got %s" % rc)
    check(0.8 <= dt <= 2.0, "exited %.2f s after SIGTERM with drainTimeout 1s" % dt)
    t.join(5)


main()
