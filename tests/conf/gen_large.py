#!/usr/bin/env python3
"""Writes a large configuration for load-time measurements:
   gen_large.py OUT [ingresses=1000] [rules_per_ingress=10] [services=1000] [eps_per_service=50]
Default: 10,000 Ingress rules and 50,000 endpoints (issue 5's reload figure)."""
import sys

out = sys.argv[1]
ning, nrules, nsvc, neps = (list(map(int, sys.argv[2:6])) + [1000, 10, 1000, 50][len(sys.argv[2:6]):])[:4]
w = open(out, "w")
w.write("apiVersion: ingressd/v1\nkind: ProxyConfig\nspec:\n  listen:\n  - address: 127.0.0.1:18080\n")
for s in range(nsvc):
    w.write(f"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{s}\n  namespace: ns-{s % 10}\n"
            f"spec:\n  selector:\n    app: svc-{s}\n  ports:\n  - name: http\n    port: 80\n    targetPort: http\n")
    w.write(f"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-{s}-abcde\n"
            f"  namespace: ns-{s % 10}\n  labels:\n    kubernetes.io/service-name: svc-{s}\naddressType: IPv4\n"
            "ports:\n- name: http\n  port: 8080\n  protocol: TCP\nendpoints:\n")
    for e in range(neps):
        n = s * neps + e
        w.write(f"- addresses:\n  - 10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}\n"
                f"  conditions:\n    ready: true\n    serving: true\n    terminating: false\n"
                f"  nodeName: node-{n % 7}\n")
for i in range(ning):
    ns = i % 10
    w.write(f"---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ing-{i}\n  namespace: ns-{ns}\n"
            "spec:\n  rules:\n")
    for r in range(nrules):
        svc = ((i * nrules + r) % (nsvc // 10)) * 10 + ns
        w.write(f"  - host: h{i}-{r}.example.com\n    http:\n      paths:\n      - path: /p{r}\n"
                f"        pathType: Prefix\n        backend:\n          service:\n            name: svc-{svc}\n"
                "            port:\n              name: http\n")
w.close()
