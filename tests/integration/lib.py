# SPDX-License-Identifier: Apache-2.0
"""Integration-test harness for ingressd: pure python3 stdlib.

Every test file tests/integration/NN-topic.py does roughly:

    from lib import *
    BASE = 20000 + NN * 100                 # this file's port range

    @test
    def routes_by_host():
        a = Pod("127.0.0.2:%d" % (BASE + 1), "pod-a")
        p = Proxy(proxy_config(listen=["127.0.0.1:%d" % BASE]) +
                  backend("web", [a.addr]) +
                  ingress("web", [("a.test", "/", "Prefix", "web", 80)]))
        st, hdrs, body = http("GET", p.url("/"), {"Host": "a.test"})
        check(st == 200 and hdrs["X-Pod"] == "pod-a", "routed to pod-a")

    main()

What is here:
  - processes: Pod (the C podserver), PyPod (small threaded python servers
    for exotic upstream behaviour), Proxy (build/ingressd -c on a temp config).
    Every process started is registered; the runner stops those a test
    started when the test ends, pass or fail, and everything at exit.
  - config builders returning YAML documents ("---\\n..." each, so they
    concatenate with +): proxy_config, ingress, service, endpointslice,
    endpoints, secret_tls, backend (service + slice in one call), and
    make_config (all of it in one call).
  - clients: http (http.client), curl (subprocess), raw (bytes over a
    socket), wrk (parsed summary).
  - wait_until, check, and the @test / main() runner.

Every wait is bounded: nothing here blocks without a timeout.
Binaries come from $INGRESSD_BIN / $PODSERVER_BIN (tests/integration/run.sh
sets them), defaulting to build/ under the repository root.
"""

import atexit
import base64
import errno
import hashlib
import http.client as httpclient
from http.client import HTTPConnection
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
INGRESSD_BIN = os.environ.get("INGRESSD_BIN", os.path.join(ROOT, "build", "ingressd"))
PODSERVER_BIN = os.environ.get("PODSERVER_BIN", os.path.join(ROOT, "build", "bench", "podserver"))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PATTERN = b"hello, world\n"


class TestFailure(AssertionError):
    pass


class Abort(TestFailure):
    """Raised inside a wait_until predicate to stop waiting at once (e.g. process died)."""


def check(cond, msg="check failed"):
    """Assert COND; the message says what was expected (and ideally what was seen)."""
    if not cond:
        raise TestFailure(msg)
    return cond


class RssWatch:
    """Samples a Proxy's RSS every 50 ms in a thread until stop(), which returns the peak (kB)."""

    def __init__(self, proc):
        self.proc, self.peak, self._stop = proc, 0, threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.rss_kb())
            except Exception:
                pass
            time.sleep(0.05)

    def stop(self):
        self._stop.set()
        self.t.join()
        return self.peak


def wait_until(pred, timeout=5.0, interval=0.05, msg=None):
    """Poll PRED until it returns a truthy value (returned) or TIMEOUT passes (raises).
    Exceptions from PRED count as "not yet"; the last one is reported."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Abort:
            raise
        except Exception as e:  # noqa: BLE001 - "not yet"
            last = e
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1fs waiting for %s%s" % (
                timeout, msg or getattr(pred, "__name__", "condition"),
                " (last error: %r)" % (last,) if last else ""))
        time.sleep(interval)


def split_addr(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def port_open(addr, timeout=0.2):
    try:
        with socket.create_connection(split_addr(addr), timeout=timeout):
            return True
    except OSError:
        return False


def filler(n):
    """The body the podserver sends for ?size=N: the repeating 13-byte pattern."""
    return (PATTERN * (n // len(PATTERN) + 1))[:n]


# ---- process registry -------------------------------------------------------

_live = []          # objects with .stop(); stopped at test end / exit
_live_lock = threading.Lock()


def _register(obj):
    with _live_lock:
        _live.append(obj)


def _unregister(obj):
    with _live_lock:
        if obj in _live:
            _live.remove(obj)


def cleanup(keep=0):
    """Stop every registered process/server beyond the first KEEP, newest first."""
    while True:
        with _live_lock:
            if len(_live) <= keep:
                return
            obj = _live[-1]
        try:
            obj.stop()
        except Exception:  # noqa: BLE001 - cleanup must go on
            traceback.print_exc()
        _unregister(obj)


_tmpdirs = []


def _rm_tmpdirs():
    if os.environ.get("KEEP_TMP"):
        return
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_rm_tmpdirs)
atexit.register(cleanup)  # runs first (atexit is LIFO): processes stop, then dirs go


def _on_signal(sig, frame):
    cleanup()
    sys.exit(128 + sig)


for _s in (signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_s, _on_signal)
    except (ValueError, OSError):
        pass


def _proc_stat(pid):
    """(utime+stime seconds, rss kB) of PID, summed over its threads (it is one process)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, rss


class _Proc:
    """A started subprocess: stop() with SIGTERM then SIGKILL, bounded."""
    proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def rss_kb(self):
        return _proc_stat(self.proc.pid)[1]

    def cpu_seconds(self):
        return _proc_stat(self.proc.pid)[0]

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """SIGTERM, wait up to TIMEOUT, then SIGKILL; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        _unregister(self)
        return self.proc.returncode


# ---- podserver ----------------------------------------------------------------

class Pod(_Proc):
    """The C podserver on ADDR ("127.0.0.2:21001"), answering with X-Pod: NAME.
    size: default body size; threads: worker threads; listen: more addresses."""

    def __init__(self, addr, name="pod", size=None, threads=1, listen=(), timeout=5.0):
        self.addr, self.name = addr, name
        self.host, self.port = split_addr(addr)
        args = [PODSERVER_BIN, "--listen", addr, "--name", name, "--threads", str(threads)]
        for a in listen:
            args += ["--listen", a]
        if size is not None:
            args += ["--size", str(size)]
        # a socket of the previous test may take a moment to go: retry a busy address
        # for up to 2 s before calling it a failure
        retry_until = time.monotonic() + 2.0
        while True:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                break
            err = self.proc.stderr.read()
            if b"Address already in use" not in err or time.monotonic() > retry_until:
                raise TestFailure("podserver %s (%s) did not start: %s%s" % (
                    name, addr, err.decode(errors="replace").strip(),
                    " (is another test run using this port range?)"
                    if b"Address already in use" in err else ""))
            time.sleep(0.1)
        _register(self)
        want = 1 + len(listen)
        got, buf = 0, b""
        deadline = time.monotonic() + timeout
        while got < want:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                err = b""
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read()
                self.stop()
                raise TestFailure("podserver %s (%s) did not start: %s" % (
                    name, addr, err.decode(errors="replace").strip() or "timeout"))
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 0.2))
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                buf += chunk
                got = buf.count(b"listening ")
                if not chunk:
                    continue

    def url(self, path="/"):
        return "http://%s%s" % (self.addr, path)

    def __repr__(self):
        return "Pod(%s %s)" % (self.name, self.addr)


# ---- python pods for exotic behaviour ------------------------------------------

class Request:
    """A request as a PyPod read it: method, target, version, headers [(name, value)],
    body bytes, trailers, raw head bytes."""

    def __init__(self, method, target, version, headers, body, trailers, head):
        self.method, self.target, self.version = method, target, version
        self.headers, self.body, self.trailers, self.head = headers, body, trailers, head

    def header(self, name, default=None):
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def __repr__(self):
        return "Request(%s %s %s)" % (self.method, self.target, self.version)


class _Reader:
    """Buffered reads from a socket with a per-call deadline."""

    def __init__(self, sock, timeout=10.0):
        self.sock, self.buf, self.timeout = sock, b"", timeout

    def _fill(self):
        self.sock.settimeout(self.timeout)
        d = self.sock.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def line(self, limit=1 << 20):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            self._fill()
        i = self.buf.index(b"\n") + 1
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def some(self):
        if not self.buf:
            self._fill()
        out, self.buf = self.buf, b""
        return out


def read_message(rd, request=True, head_only=False):
    """Read one HTTP/1.x message from a _Reader: (start-line parts, headers, body, trailers, head).
    Bodies by Content-Length or chunked (request), or until EOF for responses without
    either. Returns None on a clean EOF before the first byte."""
    try:
        first = rd.line()
    except EOFError:
        return None
    head = first
    while first in (b"\r\n", b"\n"):  # tolerate stray CRLF between messages
        first = rd.line()
        head = first
    headers = []
    while True:
        line = rd.line()
        head += line
        if line in (b"\r\n", b"\n"):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers.append((k.strip(), v.strip()))
    start = first.decode("latin-1").rstrip("\r\n").split(" ", 2)
    hmap = {k.lower(): v for k, v in headers}
    body, trailers = b"", []
    if head_only:
        return start, headers, body, trailers, head
    te = hmap.get("transfer-encoding", "").lower()
    if te.endswith("chunked"):
        while True:
            size = int(rd.line().split(b";")[0].strip(), 16)
            if size == 0:
                break
            body += rd.exact(size)
            rd.exact(2)
        while True:
            line = rd.line()
            if line in (b"\r\n", b"\n"):
                break
            k, _, v = line.decode("latin-1").partition(":")
            trailers.append((k.strip(), v.strip()))
    elif "content-length" in hmap:
        body = rd.exact(int(hmap["content-length"]))
    elif not request:
        try:
            while True:
                body += rd.some()
        except (EOFError, OSError):
            pass
    return start, headers, body, trailers, head


class PyPod:
    """A small threaded HTTP server for behaviour the podserver does not have.

    HANDLER(pod, sock, req) answers one parsed Request on SOCK and returns True to
    keep the connection for another request. pod.requests records every request
    read, pod.accepted counts connections. Use the factories below for the usual
    cases; mode="close" closes every connection at accept without reading."""

    def __init__(self, addr, handler=None, name="pypod", mode="http", read_timeout=30.0):
        self.addr, self.name, self.mode = addr, name, mode
        self.handler = handler or PyPod.answer_ok
        self.requests, self.accepted = [], 0
        self.read_timeout = read_timeout
        self._stop = threading.Event()
        self._conns, self._lock = set(), threading.Lock()
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 2.0
        while True:  # a socket of the previous test may take a moment to go
            try:
                self.lsock.bind(split_addr(addr))
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    self.lsock.close()
                    raise TestFailure("PyPod %s: cannot bind %s: %s (is another test run using "
                                      "this port range?)" % (name, addr, e))
                time.sleep(0.05)
        self.lsock.listen(512)
        self.lsock.settimeout(0.1)
        self._thr = threading.Thread(target=self._accept_loop, daemon=True)
        self._thr.start()
        _register(self)

    # -- plumbing
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            if self.mode == "close":
                s.close()
                continue
            with self._lock:
                self._conns.add(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        rd = _Reader(s, self.read_timeout)
        try:
            while not self._stop.is_set():
                m = read_message(rd)
                if m is None:
                    break
                start, headers, body, trailers, head = m
                req = Request(start[0], start[1] if len(start) > 1 else "",
                              start[2] if len(start) > 2 else "", headers, body, trailers, head)
                req.reader = rd
                self.requests.append(req)
                if not self.handler(self, s, req):
                    break
        except (OSError, EOFError, ValueError):
            pass
        finally:
            with self._lock:
                self._conns.discard(s)
            try:
                s.close()
            except OSError:
                pass

    def stop(self):
        self._stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self._thr.join(timeout=2)
        _unregister(self)

    def url(self, path="/"):
        return "http://%s%s" % (self.addr, path)

    # -- response helpers
    @staticmethod
    def send_response(sock, status=200, body=b"", headers=(), reason=None, keep=True):
        reason = reason or httpclient.responses.get(status, "Status")
        h = "HTTP/1.1 %d %s\r\n" % (status, reason)
        names = {k.lower() for k, _ in headers}
        for k, v in headers:
            h += "%s: %s\r\n" % (k, v)
        if "content-length" not in names and "transfer-encoding" not in names:
            h += "Content-Length: %d\r\n" % len(body)
        if not keep:
            h += "Connection: close\r\n"
        sock.sendall(h.encode("latin-1") + b"\r\n" + body)

    @staticmethod
    def _keep(req):
        c = (req.header("connection") or "").lower()
        if req.version == "HTTP/1.0":
            return "keep-alive" in c
        return "close" not in c

    @staticmethod
    def answer_ok(pod, sock, req):
        keep = PyPod._keep(req)
        PyPod.send_response(sock, 200, ("%s %s\n" % (pod.name, req.target)).encode(),
                            [("X-Pod", pod.name)], keep=keep)
        return keep

    # -- factories
    @classmethod
    def slow(cls, addr, delay, name="slow", body=b"slow\n"):
        """Answers 200 after DELAY seconds (per request)."""
        def h(pod, sock, req):
            if pod._stop.wait(delay):
                return False
            keep = cls._keep(req)
            cls.send_response(sock, 200, body, [("X-Pod", pod.name)], keep=keep)
            return keep
        return cls(addr, h, name)

    @classmethod
    def silent(cls, addr, name="silent"):
        """Reads requests and never answers (holds the connection until stopped)."""
        def h(pod, sock, req):
            pod._stop.wait(3600)
            return False
        return cls(addr, h, name)

    @classmethod
    def closing(cls, addr, name="closing", after_read=True):
        """Closes every connection: after reading the request (after_read) or at accept."""
        if not after_read:
            return cls(addr, None, name, mode="close")
        return cls(addr, lambda pod, sock, req: False, name)

    @classmethod
    def raw_response(cls, addr, data, name="raw", keep=False):
        """Sends the bytes DATA as the response to every request (for invalid responses)."""
        def h(pod, sock, req):
            sock.sendall(data)
            return keep
        return cls(addr, h, name)

    @classmethod
    def websocket_echo(cls, addr, name="ws"):
        """Completes a WebSocket handshake (101 + Sec-WebSocket-Accept), then echoes raw
        bytes back until the peer closes; other requests get 200."""
        def h(pod, sock, req):
            if (req.header("upgrade") or "").lower() != "websocket":
                return cls.answer_ok(pod, sock, req)
            key = req.header("sec-websocket-key", "")
            acc = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nX-Pod: %s\r\n\r\n"
                          % (acc, pod.name)).encode())
            rd = req.reader
            try:
                while not pod._stop.is_set():
                    d = rd.some()
                    sock.sendall(d)
            except (OSError, EOFError):
                pass
            return False
        return cls(addr, h, name)

    @classmethod
    def stream(cls, addr, chunks=10, chunk_size=1024, interval=0.1, name="stream",
               trailers=()):
        """Chunked download: CHUNKS chunks of CHUNK_SIZE filler bytes, one every INTERVAL s,
        then TRAILERS [(name, value)] (declared in a Trailer header)."""
        def h(pod, sock, req):
            hdr = "HTTP/1.1 200 OK\r\nX-Pod: %s\r\nTransfer-Encoding: chunked\r\n" % pod.name
            if trailers:
                hdr += "Trailer: %s\r\n" % ", ".join(k for k, _ in trailers)
            sock.sendall(hdr.encode() + b"\r\n")
            data = filler(chunk_size)
            for i in range(chunks):
                sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
                if interval and i + 1 < chunks and pod._stop.wait(interval):
                    return False
            t = "".join("%s: %s\r\n" % kv for kv in trailers)
            sock.sendall(b"0\r\n" + t.encode() + b"\r\n")
            return cls._keep(req)
        return cls(addr, h, name)

    @classmethod
    def trailers(cls, addr, trailers=(("X-Checksum", "abc123"),), body=b"hello\n", name="trailers"):
        """A chunked response with BODY and TRAILERS, immediately."""
        def h(pod, sock, req):
            t = "".join("%s: %s\r\n" % kv for kv in trailers)
            sock.sendall(("HTTP/1.1 200 OK\r\nX-Pod: %s\r\nTransfer-Encoding: chunked\r\n"
                          "Trailer: %s\r\n\r\n" % (pod.name, ", ".join(k for k, _ in trailers)))
                         .encode() + b"%x\r\n" % len(body) + body + b"\r\n0\r\n" + t.encode()
                         + b"\r\n")
            return cls._keep(req)
        return cls(addr, h, name)


# ---- YAML builders ------------------------------------------------------------

def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return str(v)
    s = str(v)
    if (re.match(r"^[A-Za-z_/][A-Za-z0-9_./:@-]*$", s) and
            s.lower() not in ("true", "false", "yes", "no", "on", "off", "null", "y", "n", "~")):
        return s  # plain, as kubectl prints it
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    """A small YAML emitter for dicts, lists and scalars (block style, 2-space indent)."""
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return pad + "{}\n"
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:\n%s" % (pad, k, to_yaml(v, indent + 2)))
            elif isinstance(v, dict):
                out.append("%s%s: {}\n" % (pad, k))
            elif isinstance(v, list):
                out.append("%s%s: []\n" % (pad, k))
            else:
                out.append("%s%s: %s\n" % (pad, k, _scalar(v)))
    elif isinstance(obj, list):
        if not obj:
            return pad + "[]\n"
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = to_yaml(v, indent + 2)
                out.append("%s- %s" % (pad, inner[indent + 2:]))
            else:
                out.append("%s- %s\n" % (pad, _scalar(v) if not isinstance(v, (dict, list))
                                         else ("{}" if isinstance(v, dict) else "[]")))
    else:
        out.append(pad + _scalar(obj) + "\n")
    return "".join(out)


def doc(obj):
    """One YAML document ("---" + body) from a python object."""
    return "---\n" + to_yaml(obj)


def proxy_config(listen=("127.0.0.1:18080",), admin=None, workers=1, extra_spec=None, name=None):
    """The ProxyConfig document. LISTEN items: "ip:port" or {"address":..., "tls": True}."""
    spec = {"listen": [l if isinstance(l, dict) else {"address": l} for l in listen]}
    if admin:
        spec["admin"] = admin
    if workers is not None:
        spec["workers"] = workers
    spec.update(extra_spec or {})
    obj = {"apiVersion": "ingressd/v1", "kind": "ProxyConfig"}
    if name:
        obj["metadata"] = {"name": name}
    obj["spec"] = spec
    return doc(obj)


def _svc_port(port):
    return {"number": port} if isinstance(port, int) else {"name": port}


def ingress(name, rules=(), ns="default", annotations=None, default_backend=None, tls=None,
            ingress_class=None, labels=None):
    """An Ingress. RULES: [(host, path, pathType, svc, port)] (host None = any host; port an
    int number or a str name); DEFAULT_BACKEND: (svc, port); TLS: [(hosts, secretName)]."""
    meta = {"name": name, "namespace": ns}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = {k: str(v) for k, v in annotations.items()}
    spec = {}
    if ingress_class:
        spec["ingressClassName"] = ingress_class
    if default_backend:
        spec["defaultBackend"] = {"service": {"name": default_backend[0],
                                              "port": _svc_port(default_backend[1])}}
    if tls:
        spec["tls"] = [{"hosts": list(h), "secretName": s} if s else {"hosts": list(h)}
                       for h, s in tls]
    by_host, order = {}, []
    for host, path, ptype, svc, port in rules:
        if host not in by_host:
            by_host[host] = []
            order.append(host)
        p = {"pathType": ptype, "backend": {"service": {"name": svc, "port": _svc_port(port)}}}
        if path is not None:
            p = {"path": path, **p}
        by_host[host].append(p)
    if order:
        spec["rules"] = []
        for host in order:
            r = {"host": host} if host else {}
            r["http"] = {"paths": by_host[host]}
            spec["rules"].append(r)
    return doc({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
                "spec": spec})


def service(name, ports=(("http", 80, 8080),), ns="default", annotations=None, type=None,
            external_name=None, selector=None, session_affinity=None, affinity_timeout=None):
    """A v1 Service. PORTS: [(name, port, targetPort)] (name "" or None = unnamed)."""
    meta = {"name": name, "namespace": ns}
    if annotations:
        meta["annotations"] = {k: str(v) for k, v in annotations.items()}
    spec = {}
    if type:
        spec["type"] = type
    if external_name:
        spec["externalName"] = external_name
    spec["selector"] = selector if selector is not None else {"app": name}
    pl = []
    for pname, port, target in ports:
        p = {}
        if pname:
            p["name"] = pname
        p["port"] = port
        if target is not None:
            p["targetPort"] = target
        p["protocol"] = "TCP"
        pl.append(p)
    if pl:
        spec["ports"] = pl
    if session_affinity:
        spec["sessionAffinity"] = session_affinity
        if affinity_timeout:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity_timeout}}
    return doc({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec})


def endpointslice(svc, ports=(("http", 8080),), addresses=(), ready=True, ns="default",
                  name=None):
    """An EndpointSlice for Service SVC. PORTS: [(name, port)] as the controller writes them
    (the Service port's name, the resolved target port). ADDRESSES: "ip" or "ip:port" (the
    port part is ignored, for convenience) or (ip, ready) tuples."""
    eps = []
    for a in addresses:
        r = ready
        if isinstance(a, tuple):
            a, r = a
        ip = a.rsplit(":", 1)[0] if a.count(".") == 3 and ":" in a else a
        eps.append({"addresses": [ip], "conditions": {"ready": bool(r)}})
    return doc({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name or svc + "-slice", "namespace": ns,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": [{"name": n or "", "port": p, "protocol": "TCP"} for n, p in ports],
        "endpoints": eps,
    })


def endpoints(svc, ports=(("http", 8080),), addresses=(), not_ready=(), ns="default"):
    """A v1 Endpoints object (subsets) for Service SVC."""
    sub = {}
    if addresses:
        sub["addresses"] = [{"ip": a.rsplit(":", 1)[0] if ":" in a else a} for a in addresses]
    if not_ready:
        sub["notReadyAddresses"] = [{"ip": a.rsplit(":", 1)[0] if ":" in a else a}
                                    for a in not_ready]
    sub["ports"] = [{"name": n, "port": p, "protocol": "TCP"} if n else
                    {"port": p, "protocol": "TCP"} for n, p in ports]
    return doc({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": svc, "namespace": ns}, "subsets": [sub]})


def secret_tls(name, cert_pem, key_pem, ns="default"):
    """A kubernetes.io/tls Secret from PEM bytes/str."""
    enc = lambda b: base64.b64encode(b.encode() if isinstance(b, str) else b).decode()
    return doc({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": enc(cert_pem), "tls.key": enc(key_pem)}})


def make_cert(cn="test.local", sans=None, days=2, key="ec", ca=None):
    """A certificate and key (PEM bytes) from the openssl CLI: self-signed, or signed by
    CA = (ca_cert_pem, ca_key_pem). SANS: DNS names (default [CN]). KEY: "ec" (P-256) or
    "rsa" (2048)."""
    d = tempfile.mkdtemp(prefix="ingressd-cert-")
    try:
        kp, cp = os.path.join(d, "k.pem"), os.path.join(d, "c.pem")
        kargs = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if key == "ec"
                 else ["-newkey", "rsa:2048"])
        san = "subjectAltName=" + ",".join("DNS:" + n for n in (sans or [cn]))
        run = lambda args: subprocess.run(args, check=True, capture_output=True, timeout=30)
        if ca is None:
            run(["openssl", "req", "-x509", "-nodes", "-days", str(days), "-subj", "/CN=" + cn,
                 "-addext", san, "-keyout", kp, "-out", cp] + kargs)
        else:
            csr, ext = os.path.join(d, "r.csr"), os.path.join(d, "ext.cnf")
            ca_c, ca_k = os.path.join(d, "ca.pem"), os.path.join(d, "cak.pem")
            for path, data in ((ca_c, ca[0]), (ca_k, ca[1]), (ext, san.encode() + b"\n")):
                with open(path, "wb") as f:
                    f.write(data)
            run(["openssl", "req", "-new", "-nodes", "-subj", "/CN=" + cn, "-keyout", kp,
                 "-out", csr] + kargs)
            run(["openssl", "x509", "-req", "-in", csr, "-out", cp, "-days", str(days),
                 "-extfile", ext, "-CA", ca_c, "-CAkey", ca_k, "-CAcreateserial"])
        with open(cp, "rb") as f:
            cert = f.read()
        with open(kp, "rb") as f:
            keyb = f.read()
        return cert, keyb
    finally:
        shutil.rmtree(d, ignore_errors=True)


def backend(svc, addrs, port_name="http", port=80, ns="default", annotations=None, ready=True,
            **svc_opts):
    """Service SVC (port PORT named PORT_NAME) + its EndpointSlice for pods ADDRS
    ("ip:port", all on the same target port, as pods of one Service are)."""
    addrs = list(addrs)
    target = split_addr(addrs[0])[1] if addrs else 8080
    return (service(svc, [(port_name, port, target)], ns=ns, annotations=annotations, **svc_opts)
            + endpointslice(svc, [(port_name, target)], addrs, ready=ready, ns=ns))


def make_config(listen=("127.0.0.1:18080",), services=None, rules=(), admin=None, workers=1,
                default_backend=None, extra_spec=None, ingress_name="test", annotations=None,
                ns="default"):
    """A whole configuration in one call: ProxyConfig + one Service/EndpointSlice per entry
    of SERVICES {name: ["ip:port", ...]} (Service port 80 named "http") + one Ingress with
    RULES [(host, path, pathType, svc, port)] and DEFAULT_BACKEND (svc, port)."""
    out = proxy_config(listen=listen, admin=admin, workers=workers, extra_spec=extra_spec)
    for name, addrs in (services or {}).items():
        out += backend(name, addrs, ns=ns)
    if rules or default_backend:
        out += ingress(ingress_name, rules, ns=ns, annotations=annotations,
                       default_backend=default_backend)
    return out


def parse_listeners(yaml_text):
    """(listen addresses [(addr, tls)], admin addr or None) from the ProxyConfig document,
    read with regexes (stdlib has no YAML): good for what the builders and tests write."""
    for d in re.split(r"^---.*$", yaml_text, flags=re.M):
        if not re.search(r"^kind:\s*[\"']?ProxyConfig", d, re.M):
            continue
        admin = re.search(r"^\s+admin:\s*[\"']?([0-9.]+:\d+)", d, re.M)
        listen = []
        m = re.search(r"^(\s+)listen:\s*\n((?:\1\s+.*\n?|\1-.*\n?|\s*\n)*)", d, re.M)
        if m:
            items = re.split(r"^\s*-\s*", m.group(2), flags=re.M)
            for it in items:
                a = re.search(r"address:\s*[\"']?([0-9.]+:\d+)", it)
                if a:
                    listen.append((a.group(1), bool(re.search(r"tls:\s*true", it))))
        return listen, admin.group(1) if admin else None
    return [], None


# ---- the proxy ------------------------------------------------------------------

class Proxy(_Proc):
    """build/ingressd -c CONFIG (YAML text written to a temp dir), plus ARGS.

    Waits (bounded) until every ProxyConfig listener accepts and admin /healthz
    answers 200, unless wait=False. stderr goes to self.log_path (read it with
    .log()). stop() sends SIGTERM and returns the exit code."""

    def __init__(self, config_yaml, args=(), wait=True, timeout=10.0, env=None,
                 filename="ingressd.yaml"):
        self.dir = tempfile.mkdtemp(prefix="ingressd-it-")
        _tmpdirs.append(self.dir)
        self.path = os.path.join(self.dir, filename)
        self.log_path = os.path.join(self.dir, "stderr.log")
        self.config = config_yaml
        with open(self.path, "w") as f:
            f.write(config_yaml)
        self.listeners, self.admin_addr = parse_listeners(config_yaml)
        self._logf = open(self.log_path, "wb")
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen([INGRESSD_BIN, "-c", self.path] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=subprocess.STDOUT, env=e)
        _register(self)
        if wait:
            self.wait_ready(timeout)

    def wait_ready(self, timeout=10.0):
        def ready():
            if self.proc.poll() is not None:
                raise Abort("ingressd exited with %s during start-up:\n%s" % (
                    self.proc.returncode, self.log()[-3000:]))
            for a, _ in self.listeners:
                if not port_open(a):
                    return False
            if self.admin_addr:
                try:
                    return self.admin("/healthz", timeout=1)[0] == 200
                except OSError:
                    return False
            return True
        try:
            wait_until(ready, timeout, 0.02, "ingressd listeners to accept")
        except Abort:
            raise
        except TestFailure as e:
            raise TestFailure("%s\n-- ingressd log:\n%s" % (e, self.log()[-3000:]))

    @property
    def addr(self):
        return self.listeners[0][0]

    def url(self, path="/", listener=0, scheme=None):
        a, tls = self.listeners[listener]
        return "%s://%s%s" % (scheme or ("https" if tls else "http"), a, path)

    def admin(self, path, method="GET", body=None, timeout=5):
        """(status, headers, body) from the admin listener."""
        return http(method, "http://%s%s" % (self.admin_addr, path), body=body, timeout=timeout)

    def metrics(self):
        """Admin /metrics parsed into {'name{labels}': float}."""
        st, _, body = self.admin("/metrics")
        check(st == 200, "/metrics answered %s" % st)
        out = {}
        for line in body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
        return out

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=5.0):
        """Wait until the log matches regex PATTERN; return the match."""
        return wait_until(lambda: re.search(pattern, self.log()), timeout,
                          msg="log line matching %r" % pattern)

    def write_config(self, yaml_text, atomic=True):
        """Replace the config file (rename over it when ATOMIC, as editors and kubectl do)."""
        self.config = yaml_text
        if atomic:
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                f.write(yaml_text)
            os.replace(tmp, self.path)
        else:
            with open(self.path, "w") as f:
                f.write(yaml_text)

    def reload(self, yaml_text=None):
        """Optionally rewrite the config, then SIGHUP."""
        if yaml_text is not None:
            self.write_config(yaml_text)
        self.send_signal(signal.SIGHUP)

    def stop(self, timeout=35.0, sig=signal.SIGTERM):
        """SIGTERM (drain), wait up to TIMEOUT, SIGKILL after; return the exit code.
        The temp dir (config, log) stays until the test script exits, so .log() still
        works after stop(); KEEP_TMP=1 keeps it for good."""
        rc = super().stop(timeout, sig)
        try:
            self._logf.close()
        except OSError:
            pass
        return rc

    def __repr__(self):
        return "Proxy(%s)" % self.addr if self.listeners else "Proxy()"


def check_config(yaml_text, args=(), timeout=10):
    """Run ingressd -t -c on YAML_TEXT: (exit code, stdout+stderr text)."""
    d = tempfile.mkdtemp(prefix="ingressd-t-")
    try:
        p = os.path.join(d, "ingressd.yaml")
        with open(p, "w") as f:
            f.write(yaml_text)
        r = subprocess.run([INGRESSD_BIN, "-t", "-c", p] + list(args), capture_output=True,
                           timeout=timeout)
        return r.returncode, (r.stdout + r.stderr).decode(errors="replace")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- clients ---------------------------------------------------------------------

class _SNIHTTPSConnection(httpclient.HTTPSConnection):
    """HTTPSConnection that sends SNI as the TLS server name, whatever the address."""

    def __init__(self, host, port, sni, **kw):
        super().__init__(host, port, **kw)
        self._sni = sni

    def connect(self):
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._sni)


def tls_context(cafile=None, alpn=None, min_version=None, max_version=None):
    """An ssl.SSLContext for tests: verifies against CAFILE if given, else verifies nothing."""
    import ssl
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    if not cafile:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def http(method, url, headers=None, body=None, timeout=5.0, conn=None, sni=None, context=None):
    """One request via http.client: (status, headers (case-insensitive .get/[]), body bytes).
    Pass CONN (a HTTPConnection) to reuse a keep-alive connection.
    https: SNI is the URL host unless SNI is given; CONTEXT (see tls_context()) defaults
    to one that verifies nothing."""
    m = re.match(r"(https?)://([^/]+)(.*)", url)
    scheme, hostport, path = m.group(1), m.group(2), m.group(3) or "/"
    h = dict(headers or {})
    c = conn
    if c is None:
        host, port = hostport.rsplit(":", 1) if ":" in hostport else (hostport, None)
        if scheme == "https":
            ctx = context or tls_context()
            if sni is not None:
                c = _SNIHTTPSConnection(host, int(port or 443), sni, timeout=timeout, context=ctx)
            else:
                c = httpclient.HTTPSConnection(host, int(port or 443), timeout=timeout,
                                               context=ctx)
        else:
            c = httpclient.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, r.msg, data
    finally:
        if conn is None:
            c.close()


def http_get(url, headers=None, timeout=5.0):
    return http("GET", url, headers, None, timeout)


def curl(*args, timeout=10.0):
    """curl -sS ARGS (with a --max-time): the CompletedProcess (stdout/stderr as text)."""
    return subprocess.run(["curl", "-sS", "--max-time", str(timeout)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout + 5)


def raw(addr, data, timeout=3.0, shutdown=False, until=None):
    """Send DATA (bytes) to ADDR over a fresh TCP connection and return every byte received
    until the peer closes, TIMEOUT passes (total), or UNTIL (bytes) has been seen.
    SHUTDOWN half-closes after sending."""
    s = socket.create_connection(split_addr(addr), timeout=timeout)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        if data:
            s.sendall(data)
        if shutdown:
            s.shutdown(socket.SHUT_WR)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
            if until is not None and until in out:
                break
    finally:
        s.close()
    return out


raw_request = raw


class _BytesReader(_Reader):
    """A _Reader over bytes already received: running out means EOF."""

    def __init__(self, data):
        super().__init__(None)
        self.buf = data

    def _fill(self):
        raise EOFError


def parse_responses(data, head=False):
    """Split raw bytes into [(status, headers [(k, v)], body)]: pipelined responses framed by
    Content-Length or chunked; a response with neither takes the rest (close-delimited)
    unless its status is 1xx/204/304 or HEAD is true. A truncated last response is dropped."""
    out = []
    rd = _BytesReader(data)
    while rd.buf.strip(b"\r\n"):
        try:
            m = read_message(rd, request=True, head_only=True)
            if m is None:
                break
            start, headers, _, _, _ = m
            status = int(start[1])
            names = {k.lower(): v for k, v in headers}
            if head or status < 200 or status in (204, 304):
                body = b""
            elif "chunked" in names.get("transfer-encoding", "").lower():
                body = b""
                while True:
                    size = int(rd.line().split(b";")[0].strip(), 16)
                    if size == 0:
                        break
                    body += rd.exact(size)
                    rd.exact(2)
                while rd.line() not in (b"\r\n", b"\n"):
                    pass
            elif "content-length" in names:
                body = rd.exact(int(names["content-length"]))
            else:
                body, rd.buf = rd.buf, b""
        except (EOFError, ValueError, IndexError):
            break
        out.append((status, headers, body))
    return out


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    return float(m.group(1)) * _WRK_UNITS[m.group(2)] if m else None


def parse_wrk(out):
    """wrk --latency output -> dict(requests, rps, p50_ms, p99_ms, non2xx, socket_errors,
    errors (connect, read, write, timeout))."""
    r = {"requests": 0, "rps": 0.0, "p50_ms": None, "p99_ms": None, "non2xx": 0,
         "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}, "socket_errors": 0,
         "raw": out}
    m = re.search(r"(\d+) requests in", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % pct, out, re.M)
        if m:
            r[key] = _wrk_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
        r["socket_errors"] = sum(r["errors"].values())
    return r


def wrk(url, duration=5, conns=50, threads=1, extra=(), timeout=None):
    """Run wrk --latency against URL; return parse_wrk()'s dict."""
    args = ["wrk", "--latency", "-t%d" % threads, "-c%d" % conns, "-d%ss" % duration,
            "--timeout", "5s"] + list(extra) + [url]
    p = subprocess.run(args, capture_output=True, text=True,
                       timeout=timeout or float(duration) + 30)
    if p.returncode != 0:
        raise TestFailure("wrk failed (%d): %s" % (p.returncode, p.stderr.strip()))
    return parse_wrk(p.stdout)


# ---- runner ------------------------------------------------------------------------

_tests = []


def test(fn):
    """Register FN as a test (run in definition order by main())."""
    _tests.append(fn)
    return fn


def main(argv=None):
    """Run every registered test (or those named on the command line), print PASS/FAIL
    per test with its time, stop everything each test started, exit 1 on any failure."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = [t for t in _tests if not argv or t.__name__ in argv]
    script = os.path.basename(sys.argv[0])
    for b in (INGRESSD_BIN, PODSERVER_BIN):
        if not os.access(b, os.X_OK):
            print("%s: missing binary %s (run make)" % (script, b))
    failed = []
    base = len(_live)
    for t in chosen:
        t0 = time.monotonic()
        try:
            t()
            ok, why = True, ""
        except Exception as e:  # noqa: BLE001 - report and carry on
            ok = False
            why = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            with _live_lock:
                proxies = [o for o in _live[base:] if isinstance(o, Proxy)]
            for px in proxies:
                why += "-- ingressd log (tail):\n%s\n" % px.log()[-2000:]
        finally:
            cleanup(base)
        dt = time.monotonic() - t0
        print("%s %s (%.2fs)" % ("PASS" if ok else "FAIL", t.__name__, dt), flush=True)
        if not ok:
            failed.append(t.__name__)
            print("    " + why.rstrip().replace("\n", "\n    "), flush=True)
    cleanup()
    print("%s: %d passed, %d failed%s" % (script, len(chosen) - len(failed), len(failed),
                                          (": " + ", ".join(failed)) if failed else ""),
          flush=True)
    sys.exit(1 if failed else 0)
