# SPDX-License-Identifier: Apache-2.0
"""Setup shared by the TLS integration tests (tests/integration/5x-*.py, issue 6).

Those tests make their certificates with the openssl CLI and look at what the
proxy presents with `openssl s_client`; this module holds that once:

  CERTS                    a temp dir for this test file's certificates (removed at exit)
  cert_path(name)          a file in CERTS ("a.crt" for curl --cacert, "sess-1" for s_client)
  mkcert(name, cn, sans)   self-signed EC P-256 NAME.crt / NAME.key in CERTS, made once per
                           name (lib.make_cert does the openssl work); returns the PEMs as text
  s_client(addr, *args, sni=None, data=b"")
                           one `openssl s_client -connect ADDR ARGS` (SNI, or -noservername);
                           its stdout + stderr as text
  served_cn(addr, sni)     the subject CN of the certificate presented for SNI (None: no SNI)

It builds on tests/integration/lib.py (the shared harness) and adds only what is
TLS-specific; every subprocess has a timeout.
"""
import atexit
import os
import re
import shutil
import subprocess
import tempfile

from lib import make_cert

CERTS = tempfile.mkdtemp(prefix="ingressd-tls-")
atexit.register(shutil.rmtree, CERTS, True)


def cert_path(name):
    return os.path.join(CERTS, name)


def mkcert(name, cn, sans):
    """Self-signed EC P-256 certificate NAME.crt/NAME.key (made once; the tests compare
    fingerprints of the files, so a name always means the same certificate);
    returns (crt pem, key pem) as text."""
    crt, key = cert_path(name + ".crt"), cert_path(name + ".key")
    if not os.path.exists(crt):
        c, k = make_cert(cn, sans, days=30)
        with open(key, "wb") as f:
            f.write(k)
        with open(crt, "wb") as f:
            f.write(c)
    with open(crt) as fc, open(key) as fk:
        return fc.read(), fk.read()


def s_client(addr, *args, sni=None, data=b""):
    """openssl s_client against ADDR with ARGS and SNI (None: -noservername), DATA on its
    stdin (empty: handshake, then EOF); its stdout + stderr as text."""
    cmd = ["openssl", "s_client", "-connect", addr] + list(args)
    cmd += ["-servername", sni] if sni else ["-noservername"]
    r = subprocess.run(cmd, input=data, capture_output=True, timeout=10)
    return (r.stdout + r.stderr).decode(errors="replace")


def served_cn(addr, sni, extra=()):
    """The subject CN of the certificate ADDR presents for SNI (None: send no SNI)."""
    m = re.search(r"^subject=.*?CN ?= ?([^,\n/]+)", s_client(addr, *extra, sni=sni), re.M)
    return m.group(1).strip() if m else None
