#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Long-lived traffic survives reloads (issue 5): an open WebSocket, a slow
streaming download and a large slow upload all complete byte-exact across 100
reloads; a keep-alive connection picks up the new routes on its next request.
Ports 24200-24299.
"""
import hashlib
import json
import os
import socket
import threading
import time

from lib import *

BASE = 24200
LISTEN = "127.0.0.1:%d" % BASE
ADMIN = "127.0.0.1:%d" % (BASE + 1)


def conf(stream_addr, ws_addr, echo_addr, flip=0):
    # flip changes something real each time (an extra route) so every reload rebuilds
    return (proxy_config(listen=[LISTEN], admin=ADMIN, workers=2)
            + backend("stream", [stream_addr])
            + backend("ws", [ws_addr])
            + backend("echo", [echo_addr])
            + ingress("ll", [("ll.test", "/stream", "Prefix", "stream", 80),
                             ("ll.test", "/ws", "Prefix", "ws", 80),
                             ("ll.test", "/echo", "Prefix", "echo", 80),
                             ("ll.test", "/flip%d" % flip, "Exact", "echo", 80)]))


def generation(p):
    return json.loads(p.admin("/config")[2])["generation"]


def reload_n(p, n, spacing=0.02):
    """N reloads through POST /reload, SPACING s apart; returns generations made."""
    g0 = generation(p)
    for i in range(n):
        p.write_config(conf(*p.addrs, flip=i), atomic=True)
        st, _, body = p.admin("/reload", method="POST", body=b"", timeout=10)
        check(st == 200, "reload %d: %s %r" % (i, st, body))
        time.sleep(spacing)
    return generation(p) - g0


def setup():
    stream = PyPod.stream("127.0.0.2:%d" % (BASE + 10), chunks=60, chunk_size=4096,
                          interval=0.05)
    ws = PyPod.websocket_echo("127.0.0.3:%d" % (BASE + 10))
    echo = Pod("127.0.0.4:%d" % (BASE + 10), "echo")
    addrs = (stream.addr, ws.addr, echo.addr)
    p = Proxy(conf(*addrs))
    p.addrs = addrs
    return p


@test
def slow_download_survives_100_reloads():
    p = setup()
    result = {}

    def download():
        try:
            result["r"] = http("GET", p.url("/stream"), {"Host": "ll.test"}, timeout=30)
        except Exception as e:  # noqa: BLE001
            result["e"] = e

    t = threading.Thread(target=download)
    t.start()
    n = reload_n(p, 100, 0.02)   # ~3 s of reloads inside a ~3 s download
    t.join(40)
    check("e" not in result, "download failed: %r" % result.get("e"))
    st, h, body = result["r"]
    check(st == 200, "status %s" % st)
    check(body == filler(4096) * 60, "byte-exact body (%d bytes)" % len(body))
    check(n >= 100, "%d generations during the download" % n)


@test
def websocket_tunnel_survives_100_reloads():
    p = setup()
    s = socket.create_connection(split_addr(p.addr), timeout=10)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: ll.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        check(d, "handshake answered")
        head += d
    check(head.startswith(b"HTTP/1.1 101"), "101 Switching Protocols: %r" % head[:80])
    rest = head.split(b"\r\n\r\n", 1)[1]
    errors = []
    stop = threading.Event()

    def reloader():
        try:
            reload_n(p, 100, 0.01)
        except Exception as e:  # noqa: BLE001
            errors.append(e)
        stop.set()

    t = threading.Thread(target=reloader)
    t.start()
    sent = 0
    got = rest
    i = 0
    while not stop.is_set() or i < 20:
        msg = os.urandom(64) + b"%08d" % i
        s.sendall(msg)
        sent += len(msg)
        while len(got) < sent:
            d = s.recv(65536)
            check(d, "tunnel closed after %d of %d bytes (reload %s)" % (len(got), sent, i))
            got += d
        i += 1
        time.sleep(0.005)
    t.join(30)
    check(not errors, "reloads: %r" % errors)
    check(len(got) == sent, "echoed %d of %d bytes" % (len(got), sent))
    s.close()


@test
def slow_upload_survives_100_reloads():
    p = setup()
    body = os.urandom(4 * 1024 * 1024)
    result = {}

    def upload():
        try:
            s = socket.create_connection(split_addr(p.addr), timeout=30)
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: ll.test\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % len(body))
            for off in range(0, len(body), 64 * 1024):   # 64 chunks, ~3 s
                s.sendall(body[off:off + 64 * 1024])
                time.sleep(0.045)
            data = b""
            s.settimeout(30)
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            result["r"] = data
        except Exception as e:  # noqa: BLE001
            result["e"] = e

    t = threading.Thread(target=upload)
    t.start()
    reload_n(p, 100, 0.02)
    t.join(60)
    check("e" not in result, "upload failed: %r" % result.get("e"))
    resp = result["r"]
    check(resp.startswith(b"HTTP/1.1 200"), "200 for the upload: %r" % resp[:60])
    check(b"body-bytes=%d" % len(body) in resp, "every byte arrived")
    check(b"body-sha256=" + hashlib.sha256(body).hexdigest().encode() in resp, "byte-exact upload")


@test
def keepalive_connection_uses_new_routes_on_next_request():
    p = setup()
    c = HTTPConnection(*split_addr(p.addr), timeout=5)
    st, _, _ = http("GET", p.url("/flip0"), {"Host": "ll.test"}, conn=c)
    check(st == 200, "/flip0 routed before the reload (%s)" % st)
    p.write_config(conf(*p.addrs, flip=1))
    st, _, _ = p.admin("/reload", method="POST", body=b"")
    check(st == 200, "reload")
    st, _, _ = http("GET", p.url("/flip1"), {"Host": "ll.test"}, conn=c)
    check(st == 200, "same connection sees /flip1 after the reload (%s)" % st)
    st, _, _ = http("GET", p.url("/flip0"), {"Host": "ll.test"}, conn=c)
    check(st == 404, "and no longer /flip0 (%s)" % st)
    c.close()


main()
