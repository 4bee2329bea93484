#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""TLS across reloads (issue 6): session resumption with tickets (also after a
reload), a certificate changed by SIGHUP without dropping an established TLS
connection, a broken Secret on reload keeps the last good certificate serving.
Ports 25200-25299.
"""
import json
import re
import socket
import ssl
import subprocess
from http.client import HTTPConnection

from lib import *
from tlsutil import cert_path, mkcert, s_client

BASE = 25200
HTTPS = "127.0.0.1:%d" % BASE
ADMIN = "127.0.0.1:%d" % (BASE + 2)
POD = "127.0.0.4:%d" % (BASE + 10)

def config(cert="a1", key=None, extra=""):
    crt, k = mkcert(cert, "a.example.com", ["a.example.com"])
    if key:
        k = mkcert(key, "a.example.com", ["a.example.com"])[1]
    return (proxy_config(listen=[{"address": HTTPS, "tls": True}], admin=ADMIN, workers=2)
            + backend("web", [POD])
            + secret_tls("a-tls", crt, k)
            + ingress("a", [("a.example.com", "/", "Prefix", "web", 80)],
                      tls=[(["a.example.com"], "a-tls")])
            + extra)


def generation(p):
    st, _, body = p.admin("/config")
    check(st == 200, "/config answered %s" % st)
    return json.loads(body)["generation"]


def reload_and_wait(p, text):
    g0 = generation(p)
    p.reload(text)
    wait_until(lambda: generation(p) > g0, 5, msg="a new generation")


def s_client_session(version, sess_out=None, sess_in=None):
    """One connection that sends a request (so TLS 1.3 tickets arrive); 'New' or 'Reused'."""
    args = [version, "-ign_eof"]
    if sess_out:
        args += ["-sess_out", sess_out]
    if sess_in:
        args += ["-sess_in", sess_in]
    out = s_client(HTTPS, *args, sni="a.example.com",
                   data=b"GET / HTTP/1.1\r\nHost: a.example.com\r\nConnection: close\r\n\r\n")
    m = re.search(r"^(New|Reused), TLSv", out, re.M)
    check(m, "handshake completed: %s" % out[-500:])
    check("HTTP/1.1 200" in out, "request answered: %s" % out[-300:])
    return m.group(1)


def fingerprint_of(der):
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-fingerprint", "-sha256"],
                       input=der, capture_output=True, timeout=10)
    return r.stdout.decode().strip()


def file_fingerprint(name):
    r = subprocess.run(["openssl", "x509", "-in", cert_path(name + ".crt"), "-noout",
                        "-fingerprint", "-sha256"], capture_output=True, timeout=10)
    return r.stdout.decode().strip()


def tls_conn():
    """A keep-alive HTTPS connection to a.example.com (SNI) on the TLS listener."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw_sock = socket.create_connection(split_addr(HTTPS), timeout=5)
    s = ctx.wrap_socket(raw_sock, server_hostname="a.example.com")
    c = HTTPConnection("a.example.com", BASE, timeout=5)
    c.sock = s
    return c, s


def new_conn_fingerprint():
    c, s = tls_conn()
    try:
        return fingerprint_of(s.getpeercert(binary_form=True))
    finally:
        c.close()


@test
def resumption_with_tickets():
    Pod(POD, "web")
    p = Proxy(config())
    for ver in ("-tls1_3", "-tls1_2"):
        sess = cert_path("sess" + ver)
        check(s_client_session(ver, sess_out=sess) == "New", "first handshake is full")
        check(s_client_session(ver, sess_in=sess) == "Reused", "%s resumes with the ticket" % ver)
    # a reload builds new contexts; ticket keys are process-wide, so resumption survives
    sess = cert_path("sess-reload")
    check(s_client_session("-tls1_3", sess_out=sess) == "New", "full handshake")
    reload_and_wait(p, config(extra=ingress("b", [("b.example.com", "/", "Prefix", "web", 80)])))
    check(s_client_session("-tls1_3", sess_in=sess) == "Reused", "resumed after a reload")


@test
def certificate_change_by_reload_keeps_established_connections():
    Pod(POD, "web")
    p = Proxy(config("a1"))
    old_fp, new_fp = file_fingerprint("a1"), None
    c, s = tls_conn()
    st, _, _ = http("GET", "https://a.example.com/", {"Host": "a.example.com"}, conn=c)
    check(st == 200, "first request on the kept connection: %s" % st)
    check(fingerprint_of(s.getpeercert(binary_form=True)) == old_fp, "served the first certificate")

    reload_and_wait(p, config("a2"))
    new_fp = file_fingerprint("a2")
    wait_until(lambda: new_conn_fingerprint() == new_fp, 5, msg="new connections get the new cert")

    # the established connection lives on, on its old certificate, and keeps working
    for i in range(3):
        st, _, _ = http("GET", "https://a.example.com/?i=%d" % i, {"Host": "a.example.com"}, conn=c)
        check(st == 200, "request %d on the connection from before the reload: %s" % (i, st))
    check(fingerprint_of(s.getpeercert(binary_form=True)) == old_fp, "still the old certificate")
    c.close()


@test
def broken_secret_on_reload_keeps_the_last_good_certificate():
    Pod(POD, "web")
    p = Proxy(config("a1"))
    good = file_fingerprint("a1")
    check(new_conn_fingerprint() == good, "the good certificate")
    # tls.key from another certificate: a configuration error naming the Secret
    p.reload(config("a3", key="other"))
    p.wait_log(r"Secret default/a-tls.*(does not match|tls\.key)")
    check(new_conn_fingerprint() == good, "the last good certificate keeps serving")
    c, _ = tls_conn()
    st, _, _ = http("GET", "https://a.example.com/", {"Host": "a.example.com"}, conn=c)
    check(st == 200, "and answering: %s" % st)
    c.close()


main()
