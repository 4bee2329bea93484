#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Hot reload triggers and outcomes (issue 5).

Every trigger (SIGHUP, in-place write, rename-over, ConfigMap ..data swap,
directory of *.yaml, POST /reload) applies a route change; invalid YAML
changes nothing and is reported in /config and /metrics; a broken Ingress is
quarantined (its previous version keeps serving) while another change in the
same file applies. Ports 24000-24099.
"""
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from lib import *

BASE = 24000
LISTEN = "127.0.0.1:%d" % BASE
ADMIN = "127.0.0.1:%d" % (BASE + 1)


def pods():
    a = Pod("127.0.0.2:%d" % (BASE + 10), "pod-a")
    b = Pod("127.0.0.3:%d" % (BASE + 10), "pod-b")
    return a, b


def conf(route_to="svc-a", extra="", host="a.test"):
    """Host HOST routed to ROUTE_TO; both services exist."""
    return (proxy_config(listen=[LISTEN], admin=ADMIN, workers=2)
            + backend("svc-a", ["127.0.0.2:%d" % (BASE + 10)])
            + backend("svc-b", ["127.0.0.3:%d" % (BASE + 10)])
            + ingress("web", [(host, "/", "Prefix", route_to, 80)])
            + extra)


def pod_for(p, host="a.test", path="/"):
    st, h, _ = http("GET", p.url(path), {"Host": host}, timeout=2)
    return h.get("X-Pod") if st == 200 else st


def admin_json(p, path):
    st, _, body = p.admin(path)
    check(st == 200, "%s answered %s" % (path, st))
    return json.loads(body)


def generation(p):
    return admin_json(p, "/config")["generation"]


def time_to_generation(p, gen0, t0, timeout=3.0):
    """Polls /config until the generation passes gen0; returns ms since t0."""
    wait_until(lambda: generation(p) > gen0, timeout, 0.002, "a new generation")
    return (time.monotonic() - t0) * 1000.0


def assert_quick(label, samples_ms):
    med = statistics.median(samples_ms)
    print("    %s: write-to-new-generation %s ms (median %.1f)" % (
        label, ", ".join("%.1f" % s for s in samples_ms), med))
    check(med <= 150, "%s: median %.1f ms > 150 ms" % (label, med))
    check(max(samples_ms) <= 400, "%s: a reload took %.1f ms" % (label, max(samples_ms)))


@test
def signals_right_after_the_listener_accepts_are_handled():
    """The listeners accept before the main loop's signal handlers exist: a SIGHUP
    sent the moment the port answers is a reload, not death, and a SIGTERM is a
    drain with exit code 0, not a kill."""
    pods()
    for i in range(8):
        sig = signal.SIGHUP if i % 2 == 0 else signal.SIGTERM
        p = Proxy(conf("svc-a"), wait=False)
        wait_until(lambda: port_open(LISTEN) or p.proc.poll() is not None, 5.0, 0.001,
                   "the listener to accept")
        p.send_signal(sig)
        if sig == signal.SIGHUP:
            p.wait_log(r"SIGHUP: reloading", timeout=5.0)
            check(p.proc.poll() is None, "round %d: alive after an early SIGHUP (exit %s)" % (
                i, p.proc.returncode))
            p.wait_ready()
            rc = p.stop()
        else:
            try:
                rc = p.proc.wait(10)
            except subprocess.TimeoutExpired:
                rc = p.stop()
        check(rc == 0, "round %d: %s -> exit code %s:\n%s" % (i, sig.name, rc, p.log()[-1500:]))


@test
def sighup_changes_routes():
    pods()
    p = Proxy(conf("svc-a"))
    check(pod_for(p) == "pod-a", "starts on pod-a")
    # SIGHUP alone (no file event) reloads: a new generation, logged as such
    g0 = generation(p)
    p.send_signal(signal.SIGHUP)
    wait_until(lambda: generation(p) > g0, 2.0, 0.01, "a new generation after SIGHUP")
    p.wait_log(r"reload generation \d+: applied in [\d.]+ ms \(0 quarantined\) \[SIGHUP")
    # and with a changed file (the watch may see it too; both coalesce)
    p.write_config(conf("svc-b"))
    p.send_signal(signal.SIGHUP)
    wait_until(lambda: pod_for(p) == "pod-b", 2.0, 0.01, "route to pod-b after SIGHUP")


@test
def in_place_write_reloads_quickly():
    pods()
    p = Proxy(conf("svc-a"))
    samples = []
    for i, svc in enumerate(["svc-b", "svc-a", "svc-b"]):
        g0 = generation(p)
        t0 = time.monotonic()
        p.write_config(conf(svc), atomic=False)
        samples.append(time_to_generation(p, g0, t0))
        check(pod_for(p) == ("pod-b" if svc == "svc-b" else "pod-a"), "route follows write %d" % i)
        time.sleep(0.2)
    assert_quick("in-place", samples)


@test
def rename_over_reloads_quickly():
    pods()
    p = Proxy(conf("svc-a"))
    samples = []
    for svc in ["svc-b", "svc-a", "svc-b"]:
        g0 = generation(p)
        t0 = time.monotonic()
        p.write_config(conf(svc), atomic=True)
        samples.append(time_to_generation(p, g0, t0))
        check(pod_for(p) == ("pod-b" if svc == "svc-b" else "pod-a"), "route follows rename")
        time.sleep(0.2)
    assert_quick("rename-over", samples)


def configmap_publish(d, version, text):
    """What the kubelet does: write ..TS/, point ..data_tmp at it, rename over ..data,
    remove the previous timestamped directory."""
    ts = "..2026_11_29_00_00_%02d.%d" % (version, os.getpid())
    os.mkdir(os.path.join(d, ts))
    with open(os.path.join(d, ts, "ingressd.yaml"), "w") as f:
        f.write(text)
    old = os.path.realpath(os.path.join(d, "..data")) if os.path.lexists(os.path.join(d, "..data")) else None
    os.symlink(ts, os.path.join(d, "..data_tmp"))
    os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))
    if old:
        shutil.rmtree(old, ignore_errors=True)


@test
def configmap_data_swap_reloads_quickly():
    pods()
    d = tempfile.mkdtemp(prefix="ingressd-cm-")
    try:
        configmap_publish(d, 1, conf("svc-a"))
        os.symlink("..data/ingressd.yaml", os.path.join(d, "ingressd.yaml"))
        p = Proxy(conf("svc-a"), args=["-c", os.path.join(d, "ingressd.yaml")])
        check(pod_for(p) == "pod-a", "starts on pod-a")
        samples = []
        for v, svc in enumerate(["svc-b", "svc-a", "svc-b"], start=2):
            g0 = generation(p)
            t0 = time.monotonic()
            configmap_publish(d, v, conf(svc))
            samples.append(time_to_generation(p, g0, t0))
            check(pod_for(p) == ("pod-b" if svc == "svc-b" else "pod-a"), "route follows ..data")
            time.sleep(0.2)
        assert_quick("..data swap", samples)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def configmap_volume_as_directory():
    """-c names a ConfigMap volume: DIR/*.yaml are symlinks into ..data/, swapped by rename."""
    pods()
    d = tempfile.mkdtemp(prefix="ingressd-cmdir-")
    try:
        configmap_publish(d, 1, conf("svc-a"))
        os.symlink("..data/ingressd.yaml", os.path.join(d, "ingressd.yaml"))
        p = Proxy(conf("svc-a"), args=["-c", d])
        check(pod_for(p) == "pod-a", "starts on pod-a")
        g0 = generation(p)
        t0 = time.monotonic()
        configmap_publish(d, 2, conf("svc-b"))
        ms = time_to_generation(p, g0, t0)
        check(pod_for(p) == "pod-b", "route follows the ..data swap")
        time.sleep(0.3)
        check(generation(p) == g0 + 1, "one reload per update (%d)" % (generation(p) - g0))
        assert_quick("ConfigMap directory", [ms])
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def directory_of_yaml_reloads_quickly():
    pods()
    d = tempfile.mkdtemp(prefix="ingressd-dir-")
    try:
        # the ProxyConfig and Services in one file, the Ingress in another
        with open(os.path.join(d, "00-base.yaml"), "w") as f:
            f.write(proxy_config(listen=[LISTEN], admin=ADMIN, workers=2)
                    + backend("svc-a", ["127.0.0.2:%d" % (BASE + 10)])
                    + backend("svc-b", ["127.0.0.3:%d" % (BASE + 10)]))
        ing = os.path.join(d, "10-ingress.yaml")
        with open(ing, "w") as f:
            f.write(ingress("web", [("a.test", "/", "Prefix", "svc-a", 80)]))
        with open(os.path.join(d, "README.txt"), "w") as f:
            f.write("not configuration\n")
        p = Proxy(conf("svc-a"), args=["-c", d])
        check(pod_for(p) == "pod-a", "starts on pod-a")
        g0 = generation(p)
        t0 = time.monotonic()
        with open(ing, "w") as f:
            f.write(ingress("web", [("a.test", "/", "Prefix", "svc-b", 80)]))
        samples = [time_to_generation(p, g0, t0)]
        check(pod_for(p) == "pod-b", "route follows the edited file")
        time.sleep(0.2)
        # a new file in the directory is part of the configuration
        g0 = generation(p)
        t0 = time.monotonic()
        with open(os.path.join(d, "20-more.yaml"), "w") as f:
            f.write(ingress("more", [("b.test", "/", "Prefix", "svc-a", 80)]))
        samples.append(time_to_generation(p, g0, t0))
        check(pod_for(p, "b.test") == "pod-a", "a new *.yaml adds its routes")
        time.sleep(0.2)
        # editing a non-yaml file is not a change
        g0 = generation(p)
        with open(os.path.join(d, "README.txt"), "w") as f:
            f.write("still not configuration\n")
        time.sleep(0.4)
        check(generation(p) == g0, "README.txt changes do not reload")
        assert_quick("directory", samples)
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def post_reload_answers_with_the_new_generation():
    pods()
    p = Proxy(conf("svc-a"))
    g0 = generation(p)
    p.write_config(conf("svc-b"))
    st, _, body = p.admin("/reload", method="POST", body=b"")
    check(st == 200, "POST /reload answered %s %r" % (st, body))
    r = json.loads(body)
    check(r["ok"] is True and r["generation"] > g0, "new generation in %r" % r)
    # the answer comes after every worker got the snapshot: no wait needed
    check(pod_for(p) == "pod-b", "routed to pod-b right after POST /reload")
    st, _, _ = p.admin("/reload")
    check(st == 405, "GET /reload is 405, got %s" % st)


@test
def concurrent_reload_requests_coalesce_and_none_is_lost():
    import threading
    pods()
    p = Proxy(conf("svc-a"))
    g0 = generation(p)
    results = []

    def post():
        st, _, body = p.admin("/reload", method="POST", body=b"", timeout=10)
        results.append((st, json.loads(body)["generation"] if st == 200 else None))

    ts = [threading.Thread(target=post) for _ in range(20)]
    for i, t in enumerate(ts):
        t.start()
        if i == 10:
            # the file changes in the middle of the burst: the last answers must see it
            p.write_config(conf("svc-b"))
            p.send_signal(signal.SIGHUP)
    for t in ts:
        t.join(15)
    time.sleep(0.3)   # the watch saw the write too: let its debounced reload land first
    check(len(results) == 20 and all(st == 200 for st, _ in results),
          "every POST /reload answered 200: %r" % results)
    g1 = generation(p)
    # (exact coalescing is unit-tested in test_rld.c; here: never more builds than requests)
    check(1 <= g1 - g0 <= 22, "%d generations for 20 POSTs + 1 SIGHUP + 1 write" % (g1 - g0))
    check(pod_for(p) == "pod-b", "the last file content applied")
    st, _, body = p.admin("/reload", method="POST", body=b"")
    check(st == 200 and json.loads(body)["generation"] == g1 + 1,
          "a request after the burst makes exactly one more generation")


@test
def invalid_yaml_changes_nothing_and_is_reported():
    pods()
    p = Proxy(conf("svc-a"))
    g0 = generation(p)
    m0 = p.metrics()
    p.write_config("---\napiVersion: v1\nkind: [Service\n  metadata: {name: x\n")
    p.wait_log(r"reload failed")
    time.sleep(0.2)
    check(generation(p) == g0, "generation unchanged")
    check(pod_for(p) == "pod-a", "still routed to pod-a")
    c = admin_json(p, "/config")
    lr = c["last_reload"]
    check(lr["ok"] is False, "/config last_reload.ok false: %r" % lr)
    check(lr["error"] and re.search(r"ingressd\.yaml:\d+", lr["error"]),
          "/config error names file:line: %r" % lr["error"])
    m = p.metrics()
    check(m.get('ingressd_reloads_total{result="failed"}', 0) >=
          m0.get('ingressd_reloads_total{result="failed"}', 0) + 1, "failed reloads counted")
    check(m.get("ingressd_last_reload_success") == 0, "last_reload_success 0")
    check(m.get("ingressd_config_generation") == g0, "metrics generation unchanged")
    check(re.search(r"ingressd\.yaml:\d+:\d+: error", p.log()), "the log has file:line:col")
    st, _, body = p.admin("/reload", method="POST", body=b"")
    check(st == 500 and json.loads(body)["ok"] is False, "POST /reload reports the failure")
    # and a good file afterwards applies
    p.write_config(conf("svc-b"))
    wait_until(lambda: pod_for(p) == "pod-b", 2.0, 0.01, "recovery to a valid file")
    check(p.metrics().get("ingressd_last_reload_success") == 1, "last_reload_success back to 1")


@test
def broken_ingress_quarantined_while_others_apply():
    pods()
    two = lambda web_to, shop_svc: (
        proxy_config(listen=[LISTEN], admin=ADMIN, workers=2)
        + backend("svc-a", ["127.0.0.2:%d" % (BASE + 10)])
        + backend("svc-b", ["127.0.0.3:%d" % (BASE + 10)])
        + ingress("web", [("a.test", "/", "Prefix", web_to, 80)])
        + ingress("shop", [("shop.test", "/", "Prefix", shop_svc, 80)]))
    p = Proxy(two("svc-a", "svc-b"))
    check(pod_for(p) == "pod-a" and pod_for(p, "shop.test") == "pod-b", "initial routes")
    g0 = generation(p)
    # web moves to svc-b (valid); shop now names a Service that does not exist
    p.write_config(two("svc-b", "missing"))
    wait_until(lambda: generation(p) > g0, 2.0, 0.01, "the partial reload")
    check(pod_for(p) == "pod-b", "the valid change applied")
    check(pod_for(p, "shop.test") == "pod-b", "the broken Ingress keeps its previous version")
    c = admin_json(p, "/config")
    q = [x for x in c["quarantined"] if "shop" in x["object"]]
    check(q, "shop quarantined in /config: %r" % c["quarantined"])
    check(q[0]["serving_previous"] is True, "serving_previous: %r" % q[0])
    check(q[0]["file"].endswith("ingressd.yaml") and q[0]["line"] > 0, "file:line in %r" % q[0])
    check("missing" in q[0]["error"], "the error names the missing service: %r" % q[0])
    check(p.metrics().get("ingressd_quarantined_objects", 0) >= 1, "metrics count it")
    p.wait_log(r"ingressd\.yaml:\d+:\d+: error: Ingress default/shop")
    p.wait_log(r"\(1 quarantined\)")
    # fixing it clears the quarantine
    p.write_config(two("svc-b", "svc-a"))
    wait_until(lambda: pod_for(p, "shop.test") == "pod-a", 2.0, 0.01, "the fixed Ingress")
    check(not admin_json(p, "/config")["quarantined"], "quarantine cleared")


@test
def new_broken_ingress_is_left_out():
    pods()
    p = Proxy(conf("svc-a"))
    p.write_config(conf("svc-b", extra=ingress("new", [("new.test", "/", "Prefix", "nope", 80)])))
    wait_until(lambda: pod_for(p) == "pod-b", 2.0, 0.01, "the valid part applied")
    check(pod_for(p, "new.test") == 404, "a new broken Ingress serves nothing")
    q = admin_json(p, "/config")["quarantined"]
    check(any("new" in x["object"] and x["serving_previous"] is False for x in q),
          "listed as quarantined without a previous version: %r" % q)


@test
def listeners_and_state_follow_reloads():
    """Added listeners accept, removed ones stop; counters and endpoint state that
    live outside the snapshot survive a reload."""
    pods()
    second = "127.0.0.1:%d" % (BASE + 2)
    with_second = (proxy_config(listen=[LISTEN, second], admin=ADMIN, workers=2)
                   + backend("svc-a", ["127.0.0.2:%d" % (BASE + 10)])
                   + backend("svc-b", ["127.0.0.3:%d" % (BASE + 10)])
                   + ingress("web", [("a.test", "/", "Prefix", "svc-a", 80)]))
    p = Proxy(conf("svc-a"))
    check(not port_open(second), "second listener not there yet")
    for _ in range(20):
        check(pod_for(p) == "pod-a", "served")
    m0 = p.metrics()
    ep0 = {e["address"]: e for s in admin_json(p, "/endpoints")["services"]
           if s["name"] == "default/svc-a" for e in s["endpoints"]}
    p.write_config(with_second)
    st, _, _ = p.admin("/reload", method="POST", body=b"")
    check(st == 200, "reload applied")
    wait_until(lambda: port_open(second), 2.0, 0.02, "the added listener to accept")
    st, h, _ = http("GET", "http://%s/" % second, {"Host": "a.test"})
    check(st == 200 and h.get("X-Pod") == "pod-a", "the added listener routes")
    m1 = p.metrics()
    check(m1["ingressd_requests_total"] >= m0["ingressd_requests_total"],
          "request counter survives the reload (%s -> %s)" % (
              m0["ingressd_requests_total"], m1["ingressd_requests_total"]))
    ep1 = {e["address"]: e for s in admin_json(p, "/endpoints")["services"]
           if s["name"] == "default/svc-a" for e in s["endpoints"]}
    for a, e in ep0.items():
        check(ep1[a]["requests"] >= e["requests"] > 0,
              "endpoint %s requests survive (%s -> %s)" % (a, e["requests"], ep1[a]["requests"]))
    p.write_config(conf("svc-a"))
    st, _, _ = p.admin("/reload", method="POST", body=b"")
    check(st == 200, "reload applied")
    wait_until(lambda: not port_open(second), 2.0, 0.02, "the removed listener to stop accepting")
    check(pod_for(p) == "pod-a", "the remaining listener still serves")


@test
def admin_pages_and_methods():
    pods()
    p = Proxy(conf("svc-a"))
    st, h, body = p.admin("/healthz")
    check(st == 200 and body == b"ok\n", "healthz ok")
    e = admin_json(p, "/endpoints")
    names = {s["name"]: s for s in e["services"]}
    check("default/svc-a" in names, "/endpoints names NAMESPACE/NAME: %r" % list(names))
    ep = names["default/svc-a"]["endpoints"][0]
    check(ep["address"] == "127.0.0.2:%d" % (BASE + 10), "endpoint IP:PORT: %r" % ep)
    for k in ("ready", "terminating", "health", "ejections", "active_connections", "requests",
              "ewma_ms"):
        check(k in ep, "/endpoints has %s" % k)
    c = admin_json(p, "/config")
    for k in ("generation", "source", "last_reload", "listeners", "counts", "quarantined"):
        check(k in c, "/config has %s" % k)
    check(c["listeners"][0]["address"] == LISTEN, "listeners listed")
    st, _, _ = p.admin("/nope")
    check(st == 404, "unknown path 404, got %s" % st)
    st, _, _ = p.admin("/metrics", method="DELETE")
    check(st == 405, "DELETE /metrics 405, got %s" % st)
    st, h, body = p.admin("/metrics")
    check("text/plain" in h.get("Content-Type", ""), "metrics content type")
    text = body.decode()
    for name in ("ingressd_requests_total", 'ingressd_responses_total{code="2xx"}',
                 "ingressd_config_generation", 'ingressd_reloads_total{result="ok"}',
                 "ingressd_last_reload_timestamp_seconds", "ingressd_last_reload_duration_seconds",
                 "ingressd_last_reload_success", "ingressd_quarantined_objects"):
        check(name in text, "/metrics has %s" % name)
    # bounded cardinality: many distinct paths add no series
    n0 = len(text.splitlines())
    for i in range(50):
        http("GET", p.url("/x/%d?q=%d" % (i, i)), {"Host": "a.test"})
    n1 = len(p.admin("/metrics")[2].decode().splitlines())
    check(n1 == n0, "series count unchanged by traffic (%d -> %d)" % (n0, n1))


main()
