#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Generates a large ingressd configuration for the reload benchmark (issue 5).

Default shape: 1,000 Ingresses x 10 rules = 10,000 rules, over 1,000 Services
with 50 endpoints each = 50,000 endpoints (one EndpointSlice per Service), in
one multi-document YAML file as `kubectl get -o yaml` users would keep it.

VARIANT selects a version; two variants differ by --change:
  slices  only EndpointSlices change (every 10th Service gets one pod replaced
          and one marked not ready: what a rolling update does), the Ingresses
          and Services are byte-identical;
  full    the Ingress rules change too (every rule's path gets the variant
          number), so every route is rebuilt.

Endpoint addresses are 10.X.Y.Z: the benchmark sends no traffic to them and
no health checks are configured, so nothing connects.

  bench/gen_big_config.py --out /tmp/big.yaml --variant 0
  bench/gen_big_config.py --out /tmp/big.yaml --variant 1 --change slices
"""
import argparse
import os
import sys


def endpoint_ip(svc, i, variant):
    n = svc * 64 + i
    # a rolling update (both kinds of change): in odd variants every 10th Service has
    # its first pod replaced and its second one not ready
    if variant % 2 == 1 and svc % 10 == 0 and i == 0:
        n += 5000000
    return "10.%d.%d.%d" % (1 + (n >> 16) % 250, (n >> 8) & 255, n & 255)


def generate(out, ingresses, rules, services, eps, variant, change, listen, admin, workers):
    w = out.write
    w("---\napiVersion: ingressd/v1\nkind: ProxyConfig\nmetadata:\n  name: bench\nspec:\n"
      "  listen:\n    - address: %s\n  admin: %s\n  workers: %d\n" % (listen, admin, workers))
    for s in range(services):
        w("---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%d\n  namespace: bench\n"
          "spec:\n  selector:\n    app: svc-%d\n  ports:\n    - name: http\n      port: 80\n"
          "      targetPort: 8080\n      protocol: TCP\n" % (s, s))
        w("---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n"
          "  name: svc-%d-abcde\n  namespace: bench\n  labels:\n"
          "    kubernetes.io/service-name: svc-%d\naddressType: IPv4\nports:\n"
          "  - name: http\n    port: 8080\n    protocol: TCP\nendpoints:\n" % (s, s))
        for i in range(eps):
            ready = "true"
            if variant % 2 == 1 and s % 10 == 0 and i == 1:
                ready = "false"
            w("  - addresses:\n      - %s\n    conditions:\n      ready: %s\n"
              % (endpoint_ip(s, i, variant), ready))
    for g in range(ingresses):
        w("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ing-%d\n"
          "  namespace: bench\nspec:\n  rules:\n" % g)
        # rules per Ingress: one host per Ingress, `rules` paths under it
        w("    - host: h%d.bench.test\n      http:\n        paths:\n" % g)
        for r in range(rules):
            svc = (g * rules + r) % services
            suffix = ("/v%d" % variant) if change == "full" else ""
            w("          - path: /p%d%s\n            pathType: Prefix\n            backend:\n"
              "              service:\n                name: svc-%d\n                port:\n"
              "                  number: 80\n" % (r, suffix, svc))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="file to write (written to OUT.tmp, renamed)")
    ap.add_argument("--ingresses", type=int, default=1000)
    ap.add_argument("--rules", type=int, default=10, help="rules (paths) per Ingress")
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=50, help="endpoints per Service")
    ap.add_argument("--variant", type=int, default=0)
    ap.add_argument("--change", choices=["slices", "full"], default="full")
    ap.add_argument("--listen", default="127.0.0.1:24900")
    ap.add_argument("--admin", default="127.0.0.1:24901")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    tmp = a.out + ".tmp"
    with open(tmp, "w") as f:
        generate(f, a.ingresses, a.rules, a.services, a.endpoints, a.variant, a.change,
                 a.listen, a.admin, a.workers)
    os.replace(tmp, a.out)   # the way editors and kubectl apply do it
    return 0


if __name__ == "__main__":
    sys.exit(main())
