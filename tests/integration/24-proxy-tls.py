#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Data-plane side of TLS: X-Forwarded-Proto https and HSTS on TLS listeners, 421 when
Host is not covered by the connection's certificate, 308 from plain HTTP for hosts
with TLS, and an idle keep-alive connection's memory. Ports 22400-22499."""
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F403

BASE = 22400
PLAIN = "127.0.0.1:%d" % BASE
TLS = "127.0.0.1:%d" % (BASE + 1)
A = "127.0.0.2:%d" % (BASE + 2)


def make_cert(cn):
    d = tempfile.mkdtemp(prefix="ingressd-cert-")
    k, c = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", k,
                    "-out", c, "-days", "2", "-subj", "/CN=" + cn, "-addext",
                    "subjectAltName=DNS:" + cn], check=True, capture_output=True)
    return open(c).read(), open(k).read()


def setup():
    crt, key = make_cert("a.test")
    Pod(A, "pod-a")
    return Proxy(proxy_config(listen=[PLAIN, {"address": TLS, "tls": True}], workers=1,
                              extra_spec={"tls": {"hstsMaxAge": 3600}})
                 + secret_tls("a-tls", crt, key) + backend("web", [A]) + backend("other", [A])
                 + ingress("web", [("a.test", "/", "Prefix", "web", 80)], tls=[(["a.test"], "a-tls")])
                 + ingress("other", [("b.test", "/", "Prefix", "other", 80)]))


def curl_tls(sni, path, host=None):
    args = ["-k", "-D", "-", "--resolve", "%s:%d:127.0.0.1" % (sni, BASE + 1),
            "https://%s:%d%s" % (sni, BASE + 1, path)]
    if host:
        args += ["-H", "Host: " + host]
    return curl(*args).stdout


@test
def tls_listener_sets_forwarded_proto_and_hsts():
    setup()
    out = curl_tls("a.test", "/echo/x")
    check(out.startswith("HTTP/1.1 200"), "served over TLS: %r" % out[:100])
    check("X-Forwarded-Proto: https" in out, "X-Forwarded-Proto https: %r" % out)
    check("Strict-Transport-Security: max-age=3600" in out, "HSTS on TLS: %r" % out)


@test
def host_not_covered_by_certificate_is_421():
    setup()
    out = curl_tls("a.test", "/x", host="b.test")
    check(out.startswith("HTTP/1.1 421"), "domain fronting refused: %r" % out[:100])
    out = curl_tls("a.test", "/x", host="A.TEST:%d" % (BASE + 1))
    check(out.startswith("HTTP/1.1 200"), "same host, other case and a port: %r" % out[:100])


@test
def plain_http_for_tls_host_redirects_308():
    p = setup()
    st, h, _ = http("GET", p.url("/x?y=1"), {"Host": "a.test"})
    check(st == 308 and h["Location"] == "https://a.test/x?y=1", "308: %s %s" % (st, h["Location"]))
    check("Strict-Transport-Security" not in h, "no HSTS over plain HTTP")
    st, _, _ = http("GET", p.url("/x"), {"Host": "b.test"})
    check(st == 200, "host without TLS served over HTTP: %s" % st)


@test
def idle_keepalive_connection_memory():
    p = setup()

    def open_idle(n):
        out = []
        for _ in range(n):
            s = socket.create_connection(split_addr(PLAIN), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n")
            s.recv(4096)
            out.append(s)
        return out
    warm = open_idle(50)
    time.sleep(0.2)
    r0 = p.rss_kb()
    n = 3000
    idle = open_idle(n)
    time.sleep(0.3)
    r1 = p.rss_kb()
    per = (r1 - r0) * 1024.0 / n
    print("    %.0f bytes per idle keep-alive connection (%d connections)" % (per, n))
    for s in warm + idle:
        s.close()
    if "asan" not in INGRESSD_BIN:
        check(per < 5000, "under 5 KB per idle keep-alive connection: %.0f" % per)


main()
