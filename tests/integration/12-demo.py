#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""`make run` end to end: scripts/run-demo.sh starts the three demo pods and ingressd on
conf/demo.yaml (the contract's addresses 127.0.0.1:18080 and admin :19901), the curl
commands it prints work, and SIGTERM leaves no process behind. Skipped (passes with a
note) when those addresses are already taken, e.g. by a demo someone is running."""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import *  # noqa: E402,F403
from lib import _Proc, _register  # noqa: E402

PROXY, ADMIN = "127.0.0.1:18080", "127.0.0.1:19901"
PODS = ["127.0.0.%d:18181" % i for i in (2, 3, 4)]


class Demo(_Proc):
    def __init__(self):
        env = dict(os.environ, B=os.path.dirname(INGRESSD_BIN))
        self.out = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([os.path.join(ROOT, "scripts", "run-demo.sh")], cwd=ROOT,
                                     env=env, stdout=self.out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        _register(self)

    def output(self):
        self.out.seek(0)
        return self.out.read().decode(errors="replace")


@test
def demo_runs_and_cleans_up():
    taken = [a for a in [PROXY, ADMIN] + PODS if port_open(a)]
    if taken:
        print("    note: %s already in use; demo test skipped" % ", ".join(taken))
        return
    d = Demo()
    wait_until(lambda: http("GET", "http://%s/healthz" % ADMIN, timeout=1)[0] == 200, 15,
               msg="demo admin /healthz")
    out = d.output()
    check("curl -i -H 'Host: demo.local' http://127.0.0.1:18080/" in out,
          "prints the curl commands:\n%s" % out)
    seen = set()
    for _ in range(6):
        st, h, _ = http("GET", "http://%s/" % PROXY, {"Host": "demo.local"})
        check(st == 200, "demo.local / -> %s" % st)
        seen.add(h.get("X-Pod"))
    check(seen == {"pod-a", "pod-b"}, "web round-robins pod-a/pod-b: %r" % seen)
    st, h, _ = http("GET", "http://%s/api/users" % PROXY, {"Host": "demo.local"})
    check(st == 200 and h.get("X-Pod") == "pod-c", "/api -> pod-c: %s %s" % (st, h.get("X-Pod")))
    st, h, _ = http("GET", "http://%s/" % PROXY, {"Host": "other.example"})
    check(st == 200 and h.get("X-Pod") in ("pod-a", "pod-b"), "default backend: %s" % st)
    for path in ("/metrics", "/config", "/endpoints"):
        st, _, body = http("GET", "http://%s%s" % (ADMIN, path))
        check(st == 200 and body, "admin %s: %s" % (path, st))
    d.send_signal(signal.SIGTERM)
    d.proc.wait(timeout=15)
    wait_until(lambda: not any(port_open(a) for a in [PROXY, ADMIN] + PODS), 10,
               msg="demo pods and proxy gone after SIGTERM")


main()
