#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The TLS data path (issue 6): conn.c drives OpenSSL on the raw socket (read-ahead,
one record per SSL_write), so check what that must keep: 1 GiB both ways byte-exact
with bounded memory, a slow reader (backpressure), pipelined requests in one TLS
record, a WebSocket tunnel, TLS 1.3 KeyUpdate both ways, the header timeout and the
keep-alive idle timeout, and a close_notify on close. Ports 25500-25599.
"""
import hashlib
import os
import socket
import ssl
import subprocess
import threading
import time

from lib import *
from tlsutil import mkcert

BASE = 25500
HTTPS = "127.0.0.1:%d" % BASE
ADMIN = "127.0.0.1:%d" % (BASE + 1)
POD = "127.0.0.2:%d" % (BASE + 10)
WS = "127.0.0.3:%d" % (BASE + 10)
HOST = "dp.example.com"
GIB = 1 << 30

RSS_LIMIT_KB = 64 * 1024
if "asan" in INGRESSD_BIN:          # the sanitizer quarantines freed memory
    RSS_LIMIT_KB = 1 << 30


def setup(timeouts=None, limits=None):
    crt, key = mkcert("dp", HOST, [HOST])
    Pod(POD, "pod-a")
    PyPod.websocket_echo(WS)
    spec = {"defaultCertificate": "default/dp-tls"}
    if timeouts:
        spec["timeouts"] = timeouts
    if limits:
        spec["limits"] = limits
    return Proxy(proxy_config(listen=[{"address": HTTPS, "tls": True}], admin=ADMIN, workers=2,
                              extra_spec=spec)
                 + backend("web", [POD]) + backend("ws", [WS])
                 + secret_tls("dp-tls", crt, key)
                 + ingress("dp", [(HOST, "/ws", "Prefix", "ws", 80), (HOST, "/", "Prefix", "web", 80)],
                           tls=[([HOST], "dp-tls")]))


def tls_conn(timeout=30, tls13=False, ragged_ok=True):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls13:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    raw = socket.create_connection(split_addr(HTTPS), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=HOST, suppress_ragged_eofs=ragged_ok)


def read_head(s, buf=b""):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        check(d, "connection closed before a response head: %r" % buf[:200])
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def read_response(s, buf=b""):
    """One Content-Length response; returns (head, body, leftover)."""
    head, rest = read_head(s, buf)
    n = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v)
    while len(rest) < n:
        d = s.recv(65536)
        check(d, "connection closed inside a body")
        rest += d
    return head, rest[:n], rest[n:]


@test
def one_gib_download_with_a_slow_reader():
    p = setup()
    w = RssWatch(p)
    s = tls_conn(timeout=60)
    s.sendall(b"GET /?size=%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (GIB, HOST.encode()))
    head, body = read_head(s)
    check(head.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % GIB in head, head)
    big = PATTERN * ((1 << 20) // len(PATTERN) + 2)
    n, mismatch, paused = 0, False, False
    d = body
    while True:
        if d:
            off = n % len(PATTERN)
            if d != big[off:off + len(d)]:
                mismatch = True
            n += len(d)
        if n >= GIB:
            break
        if not paused and n > 64 << 20:
            paused = True
            time.sleep(1.5)      # the socket fills: the proxy must stop reading the pod
        d = s.recv(1 << 20)
        if not d:
            break
    s.close()
    peak = w.stop()
    check(n == GIB, "received %d of %d bytes" % (n, GIB))
    check(not mismatch, "content byte-exact")
    print("    proxy RSS peak %d KiB" % peak)
    check(peak < RSS_LIMIT_KB, "proxy RSS peak %d KiB < 64 MiB" % peak)


@test
def one_gib_upload_byte_exact():
    p = setup()
    w = RssWatch(p)
    s = tls_conn(timeout=60)
    s.sendall(b"POST /echo/up HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n" % (HOST.encode(), GIB))
    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    for _ in range(GIB // len(block)):
        s.sendall(block)
        h.update(block)
    got = b""
    while True:
        try:
            d = s.recv(65536)
        except ssl.SSLError as e:
            check(False, "TLS error after the upload: %r (got %r)" % (e, got[-200:]))
        if not d:
            break
        got += d
    s.close()
    peak = w.stop()
    check(b"HTTP/1.1 200" in got, "answered: %r" % got[:200])
    check(b"body-bytes=%d" % GIB in got and b"body-sha256=" + h.hexdigest().encode() in got,
          "pod received 1 GiB byte-exact: %r" % got[-200:])
    print("    proxy RSS peak %d KiB" % peak)
    check(peak < RSS_LIMIT_KB, "proxy RSS peak %d KiB < 64 MiB" % peak)


@test
def pipelined_requests_in_one_record_and_keepalive():
    setup()
    s = tls_conn()
    reqs = b"".join(b"GET /echo/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, HOST.encode()) for i in range(5))
    s.sendall(reqs)          # one TLS record with five requests
    buf = b""
    for i in range(5):
        head, body, buf = read_response(s, buf)
        check(head.startswith(b"HTTP/1.1 200"), "pipelined %d: %r" % (i, head[:80]))
        check(b"GET /echo/%d HTTP/1.1" % i in body, "pipelined %d answered in order: %r" % (i, body[:80]))
    # then many sequential requests on the same connection, sizes crossing a record
    for size in (0, 1, 13, 16383, 16384, 16385, 100000, 13):
        s.sendall(b"GET /?size=%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (size, HOST.encode()))
        head, body, buf = read_response(s, buf)
        check(head.startswith(b"HTTP/1.1 200") and body == filler(size), "size %d byte-exact" % size)
    s.close()


@test
def websocket_tunnel_over_tls():
    setup()
    s = tls_conn()
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
              % HOST.encode())
    head, got = read_head(s)
    check(head.startswith(b"HTTP/1.1 101"), "101 Switching Protocols: %r" % head[:80])
    sent = 0
    for i in range(200):
        msg = os.urandom(1 + (i * 997) % 40000)
        s.sendall(msg)
        sent += len(msg)
        while len(got) < sent:
            d = s.recv(65536)
            check(d, "tunnel closed after %d of %d bytes" % (len(got), sent))
            got += d
    check(len(got) == sent, "echoed %d of %d bytes" % (len(got), sent))
    s.close()


@test
def tls13_key_update_both_ways():
    setup()
    # s_client: "K" sends a KeyUpdate that asks the peer to update too, "k" one that does not;
    # the proxy must answer (a write from inside SSL_read) and keep serving
    req = b"GET /echo/ku HTTP/1.1\nHost: %s\n\n" % HOST.encode()      # -crlf adds the CRs
    proc = subprocess.Popen(["openssl", "s_client", "-connect", HTTPS, "-servername", HOST,
                             "-tls1_3", "-crlf"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        for part in (req, b"K\n", req, b"k\n", req):
            proc.stdin.write(part)
            proc.stdin.flush()
            time.sleep(0.4)
        proc.stdin.close()
        out = proc.stdout.read().decode(errors="replace")
    finally:
        proc.kill()
        proc.wait(5)
    n = out.count("GET /echo/ku HTTP/1.1")
    check("KEYUPDATE" in out, "s_client sent KeyUpdates: %s" % out[-600:])
    check(n == 3, "three answers across two KeyUpdates (got %d): %s" % (n, out[-600:]))


@test
def error_response_reaches_a_client_still_uploading():
    # 413 at the head, while the client goes on sending its body: the proxy sends
    # close_notify, half-closes and discards (lingers), so no reset destroys the answer
    setup(limits={"maxBodySize": "1k"})
    for _ in range(3):
        s = tls_conn(timeout=10)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
                  % (HOST.encode(), 8 << 20))
        block = b"x" * (64 << 10)
        try:
            for _ in range(32):           # 2 MiB after the head: more than socket buffers
                s.sendall(block)
        except OSError as e:
            check(False, "upload cut before the answer could be read: %r" % e)
        data = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except OSError as e:
            check(data.startswith(b"HTTP/1.1 413"), "413 read before %r: %r" % (e, data[:80]))
        check(data.startswith(b"HTTP/1.1 413"), "413 answered: %r" % data[:80])
        s.close()


@test
def header_and_idle_timeouts_over_tls():
    p = setup(timeouts={"clientHeader": "1s", "clientIdle": "1s"})
    # a handshake, then half a head: 408 (or a close) after the header timeout
    s = tls_conn(timeout=5)
    t0 = time.time()
    s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n" % HOST.encode())
    data = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    except (ssl.SSLError, OSError):
        pass
    dt = time.time() - t0
    check(0.5 < dt < 4, "cut after the header timeout (%.2f s)" % dt)
    check(data == b"" or data.startswith(b"HTTP/1.1 408"), "408 or a close: %r" % data[:80])
    s.close()
    # a TCP connection that never starts its handshake is cut too
    raw = socket.create_connection(split_addr(HTTPS), timeout=5)
    t0 = time.time()
    check(raw.recv(10) == b"", "silent TCP client closed")
    check(time.time() - t0 < 4, "within the header timeout")
    raw.close()
    # keep-alive idle: one request, then silence; closed with a close_notify (a clean
    # EOF: without one, recv raises SSLEOFError here)
    s = tls_conn(timeout=5, ragged_ok=False)
    s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode())
    head, body, rest = read_response(s)
    check(head.startswith(b"HTTP/1.1 200"), head[:80])
    t0 = time.time()
    try:
        d = s.recv(10)
        clean = d == b""
    except ssl.SSLError as e:
        clean = False
        print("    idle close: %r" % e)
    check(time.time() - t0 < 4, "idle connection closed after clientIdle")
    check(clean, "idle close sent close_notify")
    s.close()
    st, _, _ = http("GET", "https://%s/" % HTTPS, {"Host": HOST}, sni=HOST)
    check(st == 200, "still serving: %s" % st)
    check(p.alive(), "proxy alive")


if __name__ == "__main__":
    main()
