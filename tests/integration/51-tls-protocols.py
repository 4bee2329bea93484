#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""TLS protocol policy (issue 6): TLS 1.0/1.1 refused, 1.2/1.3 served, cipher lists
from ProxyConfig, ALPN http/1.1, the self-signed default certificate when no
defaultCertificate is set (stable across reloads). Ports 25100-25199.
"""
import re
import signal
import subprocess

from lib import *
from tlsutil import mkcert
import tlsutil

BASE = 25100
HTTPS = "127.0.0.1:%d" % BASE
ADMIN = "127.0.0.1:%d" % (BASE + 2)
POD = "127.0.0.3:%d" % (BASE + 10)

def s_client(*args, sni="a.example.com"):
    """openssl s_client against the TLS listener: its stdout+stderr as text."""
    return tlsutil.s_client(HTTPS, *args, sni=sni)


def negotiated(out):
    m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", out, re.M)
    return (m.group(2), m.group(3)) if m and m.group(3) != "(NONE)" else None


def config(tls_spec=None, default_cert=True, extra=""):
    a = mkcert("a", "a.example.com", ["a.example.com"])
    spec = {}
    if tls_spec:
        spec["tls"] = tls_spec
    return (proxy_config(listen=[{"address": HTTPS, "tls": True}], admin=ADMIN, workers=2,
                         extra_spec=spec)
            + backend("web", [POD])
            + secret_tls("a-tls", *a)
            + ingress("a", [("a.example.com", "/", "Prefix", "web", 80)],
                      tls=[(["a.example.com"], "a-tls")])
            + extra)


@test
def old_protocol_versions_refused():
    Pod(POD, "web")
    Proxy(config())
    for flag in ("-tls1", "-tls1_1"):
        # OpenSSL 3 clients only offer these at security level 0: make sure the refusal is ours
        out = s_client(flag, "-cipher", "DEFAULT@SECLEVEL=0")
        check(negotiated(out) is None, "%s must not complete: %s" % (flag, out[-400:]))
        check(re.search(r"alert protocol version|unsupported protocol|wrong version", out),
              "%s refused by a protocol_version alert: %s" % (flag, out[-400:]))
    n = negotiated(s_client("-tls1_2"))
    check(n and n[0] == "TLSv1.2", "TLS 1.2 served: %s" % (n,))
    n = negotiated(s_client("-tls1_3"))
    check(n and n[0] == "TLSv1.3", "TLS 1.3 served: %s" % (n,))
    out = s_client("-alpn", "h2,http/1.1")
    check("ALPN protocol: http/1.1" in out, "ALPN picks http/1.1")
    r = curl("-k", "--tlsv1.0", "--tls-max", "1.1", "-o", "/dev/null", "-w", "%{http_code}",
             "--resolve", "a.example.com:%d:127.0.0.1" % BASE, "https://a.example.com:%d/" % BASE)
    check(r.returncode != 0, "curl --tls-max 1.1 fails: %s" % r.stdout)


@test
def cipher_lists_from_proxyconfig():
    Pod(POD, "web")
    Proxy(config({"ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256",
                  "ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"}))
    n = negotiated(s_client("-tls1_2"))
    check(n == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"), "TLS 1.2 cipher from config: %s" % (n,))
    n = negotiated(s_client("-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"))
    check(n is None, "a cipher not in the list is refused: %s" % (n,))
    n = negotiated(s_client("-tls1_3"))
    check(n == ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"), "TLS 1.3 suite from config: %s" % (n,))
    rc, out = check_config(config({"ciphers": "NOPE-NOTHING"}))
    check(rc == 1 and "NOPE-NOTHING" in out, "-t reports a cipher list with nothing usable: %s" % out)


def default_fingerprint():
    out = s_client(sni=None)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    check(pem, "a certificate without SNI: %s" % out[-300:])
    r = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-subject", "-text"],
                       input=pem.group(0).encode(), capture_output=True, timeout=10)
    return r.stdout.decode()


@test
def self_signed_default_without_default_certificate():
    Pod(POD, "web")
    p = Proxy(config())
    fp = default_fingerprint()
    check("ingressd-default" in fp, "generated default certificate: %s" % fp)
    check("prime256v1" in fp, "an EC P-256 key")
    g0 = json_generation(p)
    p.reload(p.config + ingress("more", [("more.example.com", "/", "Prefix", "web", 80)]))
    wait_until(lambda: json_generation(p) > g0, 5, msg="a reload")
    check(default_fingerprint() == fp, "the same generated certificate after a reload")
    r = curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: more.example.com",
             "https://%s/" % HTTPS)
    check(r.stdout == "200", "a host without TLS configuration is served on the default: %s" % r.stdout)


def json_generation(p):
    import json
    st, _, body = p.admin("/config")
    check(st == 200, "/config answered %s" % st)
    return json.loads(body)["generation"]


main()
