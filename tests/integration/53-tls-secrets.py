#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""kubernetes.io/tls Secrets as configuration (issue 6): `-t` reports a key that
does not match, an expired or unparsable certificate, naming the Secret;
stringData works like data; spec.defaultCertificate picks the fallback.
Ports 25300-25399.
"""
import os
import re
import subprocess

from lib import *
from tlsutil import cert_path, mkcert
import tlsutil

BASE = 25300
HTTPS = "127.0.0.1:%d" % BASE
POD = "127.0.0.5:%d" % (BASE + 10)

def mkcert_dated(name, cn, start, end):
    """A certificate valid from START to END (YYYYMMDDHHMMSSZ): `openssl ca` can backdate,
    `openssl req -x509` cannot on OpenSSL 3.0."""
    d = cert_path("ca-" + name)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("01\n")
    with open(os.path.join(d, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nserial = serial\n"
                "new_certs_dir = .\ndefault_md = sha256\npolicy = p\ncopy_extensions = copy\n"
                "[p]\ncommonName = supplied\n")
    run = lambda *a: subprocess.run(list(a), cwd=d, check=True, capture_output=True, timeout=30)
    run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "k.pem", "-out", "r.csr", "-subj", "/CN=" + cn,
        "-addext", "subjectAltName=DNS:" + cn)
    run("openssl", "ca", "-batch", "-notext", "-config", "ca.cnf", "-selfsign", "-keyfile", "k.pem",
        "-in", "r.csr", "-startdate", start, "-enddate", end, "-out", "c.pem")
    return open(os.path.join(d, "c.pem")).read(), open(os.path.join(d, "k.pem")).read()


def secret_string_data(name, crt, key, ns="default"):
    return doc({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
                "type": "kubernetes.io/tls", "stringData": {"tls.crt": crt, "tls.key": key}})


def config(secrets, default=None):
    spec = {"defaultCertificate": default} if default else None
    return (proxy_config(listen=[{"address": HTTPS, "tls": True}], workers=1, extra_spec=spec)
            + backend("web", [POD])
            + secrets
            + ingress("a", [("a.example.com", "/", "Prefix", "web", 80)],
                      tls=[(["a.example.com"], "a-tls")]))


def served_cn(sni):
    return tlsutil.served_cn(HTTPS, sni)


@test
def check_reports_bad_secrets_by_name():
    a = mkcert("a", "a.example.com", ["a.example.com"])
    other = mkcert("o", "o.example.com", ["o.example.com"])
    rc, out = check_config(config(secret_tls("a-tls", *a)))
    check(rc == 0, "a good pair validates: %s" % out)

    rc, out = check_config(config(secret_tls("a-tls", a[0], other[1])))
    check(rc == 1, "mismatched key is an error: rc=%s %s" % (rc, out))
    check(re.search(r"Secret default/a-tls.*tls\.key does not match tls\.crt", out),
          "names the Secret and the problem: %s" % out)

    old = mkcert_dated("old", "a.example.com", "20240101000000Z", "20240201000000Z")
    rc, out = check_config(config(secret_tls("a-tls", *old)))
    check(rc == 1 and re.search(r"Secret default/a-tls.*certificate expired on 2024-02-01T00:00:00Z",
                                out), "expired certificate: %s" % out)

    rc, out = check_config(config(secret_tls("a-tls", "not a certificate\n", a[1])))
    check(rc == 1 and re.search(r"Secret default/a-tls.*tls\.crt: no PEM certificate found", out),
          "garbage certificate: %s" % out)

    rc, out = check_config(config(""))
    check(rc == 1 and "a-tls" in out, "a missing Secret is reported: %s" % out)


@test
def string_data_and_default_certificate():
    Pod(POD, "web")
    a = mkcert("a", "a.example.com", ["a.example.com"])
    d = mkcert("d", "fallback.example.net", ["fallback.example.net"])
    Proxy(config(secret_string_data("a-tls", *a) + secret_tls("fallback", *d, ns="infra"),
                 default="infra/fallback"))
    check(served_cn("a.example.com") == "a.example.com", "stringData Secret serves")
    check(served_cn(None) == "fallback.example.net", "defaultCertificate without SNI")
    check(served_cn("zzz.invalid") == "fallback.example.net", "defaultCertificate on no match")


main()
