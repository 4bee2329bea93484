#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""TLS termination: certificate choice by SNI, 421 on a Host the certificate does
not name, 308 from the plain listener, X-Forwarded-Proto, HSTS (issue 6).

Certificates are made by the openssl CLI in a temp dir. Ports 25000-25099.
"""
import re

from lib import *
from tlsutil import cert_path, mkcert
import tlsutil

BASE = 25000
HTTPS = "127.0.0.1:%d" % BASE
HTTP = "127.0.0.1:%d" % (BASE + 1)
ADMIN = "127.0.0.1:%d" % (BASE + 2)
POD = "127.0.0.2:%d" % (BASE + 10)
PORT = BASE

def served_cn(sni):
    """The subject CN the TLS listener presents for SNI (None: send no SNI)."""
    return tlsutil.served_cn(HTTPS, sni)


def config(extra_spec=None, extra=""):
    a = mkcert("a", "a.example.com", ["a.example.com"])
    w = mkcert("w", "wild.example.com", ["*.example.com"])
    b = mkcert("b", "b.example.org", ["b.example.org"])
    d = mkcert("d", "default.example.net", ["default.example.net"])
    spec = {"defaultCertificate": "default/default-tls"}
    spec.update(extra_spec or {})
    return (proxy_config(listen=[{"address": HTTPS, "tls": True}, HTTP], admin=ADMIN, workers=2,
                         extra_spec=spec)
            + backend("web", [POD])
            + secret_tls("a-tls", *a) + secret_tls("wild-tls", *w) + secret_tls("b-tls", *b)
            + secret_tls("default-tls", *d)
            + ingress("a", [("a.example.com", "/", "Prefix", "web", 80)],
                      tls=[(["a.example.com"], "a-tls")])
            + ingress("wild", [("*.example.com", "/", "Prefix", "web", 80)],
                      tls=[(["*.example.com"], "wild-tls")])
            + ingress("b", [("b.example.org", "/", "Prefix", "web", 80)],
                      tls=[(["b.example.org"], "b-tls")])
            + ingress("noredir", [("noredir.example.com", "/", "Prefix", "web", 80)],
                      tls=[(["noredir.example.com"], "wild-tls")],
                      annotations={"ingressd/ssl-redirect": "false"})
            + ingress("nginxnoredir", [("nn.example.com", "/", "Prefix", "web", 80)],
                      tls=[(["nn.example.com"], "wild-tls")],
                      annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "false"})
            + ingress("plain", [("plain.example.net", "/", "Prefix", "web", 80)])
            + extra)


def https(host, urlpath="/", cacert=None, hdrs=(), extra=()):
    """curl --resolve HOST to the TLS listener, verifying against CACERT (or -k)."""
    args = ["--resolve", "%s:%d:127.0.0.1" % (host, PORT), "-o", "-", "-D", "-",
            "-w", "\\nstatus=%{http_code}\\n"]
    args += ["--cacert", cert_path(cacert)] if cacert else ["-k"]
    for h in hdrs:
        args += ["-H", h]
    return curl(*(args + list(extra) + ["https://%s:%d%s" % (host, PORT, urlpath)]))


def status_of(r):
    m = re.search(r"status=(\d+)", r.stdout)
    return int(m.group(1)) if m else None


@test
def sni_chooses_exact_then_wildcard_then_default():
    Pod(POD, "web")
    Proxy(config())
    check(served_cn("a.example.com") == "a.example.com", "exact host gets its certificate")
    check(served_cn("A.EXAMPLE.COM") == "a.example.com", "SNI is case-insensitive")
    check(served_cn("x.example.com") == "wild.example.com", "wildcard certificate for x")
    check(served_cn("b.example.org") == "b.example.org", "another tenant's certificate")
    cn = served_cn("deep.x.example.com")
    check(cn == "default.example.net", "wildcard covers one label only; got %r" % cn)
    check(served_cn("nobody.invalid") == "default.example.net", "no match gets the default")
    check(served_cn(None) == "default.example.net", "no SNI gets the default")


@test
def verified_https_reaches_the_pod_with_forwarded_proto():
    Pod(POD, "web")
    Proxy(config())
    r = https("a.example.com", "/echo", cacert="a.crt")
    check(r.returncode == 0 and status_of(r) == 200,
          "curl verifies a.example.com against a.crt: rc=%d %s %s" % (
              r.returncode, r.stderr.strip(), r.stdout[:300]))
    check(re.search(r"^x-forwarded-proto: https\r?$", r.stdout, re.M | re.I),
          "X-Forwarded-Proto says https:\n%s" % r.stdout)
    r = https("x.example.com", "/", cacert="w.crt")
    check(r.returncode == 0 and status_of(r) == 200, "wildcard verified: %s" % r.stderr.strip())
    # ALPN: a client offering h2 and http/1.1 speaks HTTP/1.1
    r = https("a.example.com", "/", cacert="a.crt", extra=["--http2", "-w", "v=%{http_version}"])
    check("v=1.1" in r.stdout, "ALPN lands on http/1.1: %s" % r.stdout[-200:])


@test
def host_not_named_by_the_certificate_is_421():
    Pod(POD, "web")
    Proxy(config())
    r = https("a.example.com", "/", cacert="a.crt", hdrs=["Host: b.example.org"])
    check(status_of(r) == 421, "a's certificate, b's Host: 421, got %s" % status_of(r))
    r = https("a.example.com", "/", cacert="a.crt", hdrs=["Host: plain.example.net"])
    check(status_of(r) == 421, "a's certificate does not name plain.example.net: %s" % status_of(r))
    r = https("x.example.com", "/", cacert="w.crt", hdrs=["Host: y.example.com"])
    check(status_of(r) == 200, "the wildcard names y.example.com too: %s" % status_of(r))
    r = https("a.example.com", "/", cacert="a.crt", hdrs=["Host: a.example.com:%d" % PORT])
    check(status_of(r) == 200, "Host with port: %s" % status_of(r))
    # no SNI (an IP literal): the default certificate; other tenants' hosts are refused,
    # hosts without TLS configuration are served
    r = curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: b.example.org",
             "https://%s/" % HTTPS)
    check(r.stdout == "421", "no SNI, b's Host: 421, got %s" % r.stdout)
    r = curl("-k", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: plain.example.net",
             "https://%s/" % HTTPS)
    check(r.stdout == "200", "no SNI, host without TLS: 200, got %s" % r.stdout)


@test
def plain_listener_redirects_tls_hosts_with_308():
    Pod(POD, "web")
    Proxy(config())
    r = curl("-o", "/dev/null", "-D", "-", "-w", "status=%{http_code}", "-H", "Host: a.example.com",
             "http://%s/some/path?q=1" % HTTP)
    check("status=308" in r.stdout, "308 for a TLS host on plain HTTP:\n%s" % r.stdout)
    loc = re.search(r"^location: (\S+)", r.stdout, re.M | re.I)
    check(loc and loc.group(1).startswith("https://a.example.com")
          and loc.group(1).endswith("/some/path?q=1"), "Location keeps host and target: %s" % (
              loc.group(1) if loc else None))
    for host in ("plain.example.net", "noredir.example.com", "nn.example.com"):
        r = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: " + host,
                 "http://%s/" % HTTP)
        check(r.stdout == "200", "%s is served on plain HTTP: %s" % (host, r.stdout))


@test
def hsts_when_configured():
    Pod(POD, "web")
    Proxy(config(extra_spec={"tls": {"hstsMaxAge": 31536000}}))
    r = https("a.example.com", "/", cacert="a.crt")
    check(re.search(r"^strict-transport-security: max-age=31536000", r.stdout, re.M | re.I),
          "HSTS header on https responses:\n%s" % r.stdout[:500])
    r = curl("-o", "/dev/null", "-D", "-", "-H", "Host: plain.example.net", "http://%s/" % HTTP)
    check(not re.search(r"^strict-transport-security:", r.stdout, re.M | re.I),
          "never on plain HTTP")


main()
