#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Upstream TLS (issue 6): a Service annotated backend-protocol HTTPS is reached
over TLS; with a CA from a Secret (ingressd/upstream-ca-secret or ingress-nginx's
proxy-ssl-secret) the pod's certificate is verified, and a pod whose certificate
that CA did not sign is not used (502). Ports 25400-25499.
"""
import atexit
import base64
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lib import *

BASE = 25400
LISTEN = "127.0.0.1:%d" % BASE
POD = "127.0.0.6:%d" % (BASE + 10)

CERTS = tempfile.mkdtemp(prefix="ingressd-tls-")
atexit.register(shutil.rmtree, CERTS, True)


def sh(*args):
    subprocess.run(list(args), cwd=CERTS, check=True, capture_output=True, timeout=30)


def make_pki():
    """ca.crt/ca.key, pod.crt signed by it (SAN IP:127.0.0.6), other-ca.crt unrelated."""
    if os.path.exists(os.path.join(CERTS, "pod.crt")):
        return
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
       "-subj", "/CN=pod CA")
    sh("openssl", "req", "-x509", *ec, "-keyout", "other-ca.key", "-out", "other-ca.crt",
       "-days", "30", "-subj", "/CN=other CA")
    sh("openssl", "req", "-new", *ec, "-keyout", "pod.key", "-out", "pod.csr",
       "-subj", "/CN=web.default.svc")
    with open(os.path.join(CERTS, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.6,DNS:web.default.svc\n")
    sh("openssl", "x509", "-req", "-in", "pod.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
       "-CAcreateserial", "-days", "30", "-extfile", "ext.cnf", "-out", "pod.crt")


class TlsPod:
    """An HTTPS pod: answers 200 with X-Pod and the request's X-Forwarded-Proto."""

    def __init__(self, addr, name="tlspod"):
        make_pki()
        self.seen = []
        pod = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                pod.seen.append((self.path, dict(self.headers)))
                body = ("%s %s\n" % (name, self.path)).encode()
                self.send_response(200)
                self.send_header("X-Pod", name)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(CERTS, "pod.crt"), os.path.join(CERTS, "pod.key"))
        self.srv = ThreadingHTTPServer(split_addr(addr), H)
        self.srv.daemon_threads = True
        self.srv.socket = ctx.wrap_socket(self.srv.socket, server_side=True)
        self.thr = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1},
                                    daemon=True)
        self.thr.start()
        register_stoppable(self)

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def register_stoppable(obj):
    # the harness stops registered objects at the end of each test
    import lib
    lib._register(obj)


def ca_secret(name, pem_file):
    with open(os.path.join(CERTS, pem_file), "rb") as f:
        data = base64.b64encode(f.read()).decode()
    return doc({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "default"},
                "type": "Opaque", "data": {"ca.crt": data}})


def config(annotations, extra=""):
    return (proxy_config(listen=[LISTEN], workers=1)
            + backend("web", [POD], port_name="https", port=443, annotations=annotations)
            + ingress("web", [("up.example.com", "/", "Prefix", "web", 443)])
            + extra)


def get():
    st, h, body = http("GET", "http://%s/x" % LISTEN, {"Host": "up.example.com"}, timeout=5)
    return st, h.get("X-Pod")


@test
def https_backend_without_verification():
    TlsPod(POD)
    Proxy(config({"ingressd/backend-protocol": "HTTPS"}))
    st, pod = get()
    check(st == 200 and pod == "tlspod", "reached the HTTPS pod: %s %s" % (st, pod))


@test
def https_backend_verified_with_ca_secret():
    p = TlsPod(POD)
    Proxy(config({"ingressd/backend-protocol": "HTTPS", "ingressd/upstream-ca-secret": "pod-ca"},
                 ca_secret("pod-ca", "ca.crt")))
    st, pod = get()
    check(st == 200 and pod == "tlspod", "verified against ca.crt: %s %s" % (st, pod))
    check(p.seen and p.seen[-1][0] == "/x", "the pod saw the request")


@test
def https_backend_with_the_wrong_ca_is_not_used():
    TlsPod(POD)
    Proxy(config({"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS",
                  "nginx.ingress.kubernetes.io/proxy-ssl-secret": "default/other-ca"},
                 ca_secret("other-ca", "other-ca.crt")))
    st, _ = get()
    check(st == 502, "a pod certificate the CA did not sign: 502, got %s" % st)


main()
