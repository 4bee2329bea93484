#!/usr/bin/env python3
"""Regenerates the golden -t inputs (run from the repo root); the .expect files are then
written by: for f in tests/conf/*/*.yaml; do build/ingressd -t -c $f 2>${f%.yaml}.expect >/dev/null; done
(review every diff by hand before committing)."""
import base64, os
crt = base64.b64encode(open('tests/conf/certs/shop.crt','rb').read()).decode()
key = base64.b64encode(open('tests/conf/certs/shop.key','rb').read()).decode()

PC = """apiVersion: ingressd/v1
kind: ProxyConfig
metadata:
  name: ingressd
spec:
  listen:
    - address: 127.0.0.1:18080
{extra}"""
SVC = """---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - name: http
      port: 80
      targetPort: 8080
"""
SLICE = """---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
  - name: http
    port: 8080
endpoints:
  - addresses: ["127.0.0.2"]
"""
def ING(paths=None, meta_extra="", spec_extra="", host="shop.example.com", api="networking.k8s.io/v1"):
    if paths is None:
        paths = """          - path: /
            pathType: Prefix
            backend:
              service:
                name: web
                port:
                  number: 80
"""
    return f"""---
apiVersion: {api}
kind: Ingress
metadata:
  name: shop
{meta_extra}spec:
{spec_extra}  rules:
    - host: {host}
      http:
        paths:
{paths}"""

def pc(extra=""):
    return PC.format(extra=extra)

def base(pcx="", ing=None, svc=SVC, sl=SLICE, more=""):
    return pc(pcx) + (ing if ing is not None else ING()) + svc + sl + more

SECRET = f"""---
apiVersion: v1
kind: Secret
metadata:
  name: shop-tls
type: kubernetes.io/tls
data:
  tls.crt: {crt}
  tls.key: {key}
"""

inv = {}
inv["01-yaml-syntax"] = pc() + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web\nspec: {}\n"
inv["02-no-proxyconfig"] = SVC.replace("---\n", "", 1) + SLICE
inv["03-missing-listen"] = "apiVersion: ingressd/v1\nkind: ProxyConfig\nspec:\n  workers: 2\n" + SVC + SLICE
inv["04-bad-listen-address"] = base().replace("127.0.0.1:18080", "localhost")
inv["05-workers-type"] = base("  workers: two\n")
inv["06-bad-duration"] = base("  drainTimeout: 5 minutes\n")
inv["07-bad-size"] = base("  limits:\n    maxBodySize: 10q\n")
inv["08-unknown-loadbalance"] = base("  loadBalance: random\n")
inv["09-unknown-pathtype"] = base(ing=ING().replace("pathType: Prefix", "pathType: Regex"))
inv["10-missing-pathtype"] = base(ing=ING().replace("            pathType: Prefix\n", ""))
inv["11-missing-service"] = base(ing=ING().replace("name: web", "name: shop-web"))
inv["12-missing-port-number"] = base(ing=ING().replace("number: 80", "number: 8080"))
inv["13-missing-port-name"] = base(ing=ING().replace("number: 80", "name: https"))
inv["14-bad-regex"] = base(ing=ING(meta_extra="  annotations:\n    ingressd/use-regex: \"true\"\n").replace(
    "- path: /\n            pathType: Prefix", "- path: /api/(v1|v2\n            pathType: ImplementationSpecific"))
inv["15-duplicate-service"] = base(more=SVC)
inv["16-bad-cidr"] = base(more="""---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: office-only
spec:
  podSelector:
    matchLabels:
      app: web
  ingress:
    - from:
        - ipBlock:
            cidr: 10.0.0.0/33
""")
inv["17-except-outside-cidr"] = base(more="""---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: office-only
spec:
  podSelector: {}
  ingress:
    - from:
        - ipBlock:
            cidr: 10.0.0.0/8
            except: ["192.168.0.0/16"]
""")
inv["18-bad-endpoint-address"] = base(sl=SLICE.replace('"127.0.0.2"', '"127.0.0.300"'))
inv["19-slice-without-service-label"] = base(sl=SLICE.replace("  labels:\n    kubernetes.io/service-name: web\n", ""))
inv["20-bad-host"] = base(ing=ING(host="Shop.Example.COM"))
inv["21-path-not-absolute"] = base(ing=ING().replace("- path: /\n", "- path: api\n"))
inv["22-rules-wrong-type"] = pc() + """---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop
spec:
  rules:
    host: shop.example.com
""" + SVC + SLICE
inv["23-missing-default-certificate"] = base("  defaultCertificate: default/missing-tls\n")
inv["24-bad-base64"] = base(more=SECRET.replace(crt, "not*base64!"))
inv["25-tls-secret-without-key"] = base(more=SECRET.replace("  tls.key: " + key + "\n", ""))
inv["26-bad-annotation"] = base(svc=SVC.replace("  name: web\n", "  name: web\n  annotations:\n    ingressd/load-balance: fastest\n"))
inv["27-bad-apiversion"] = base(ing=ING(api="extensions/v1beta1"))
inv["28-port-out-of-range"] = base(svc=SVC.replace("port: 80\n", "port: 70000\n"))
inv["29-port-number-and-name"] = base(ing=ING().replace("                  number: 80\n", "                  number: 80\n                  name: http\n"))
inv["30-duplicate-port-name"] = base(svc=SVC + "    - name: http\n      port: 81\n")
inv["31-bad-admin-address"] = base("  admin: 127.0.0.1\n")
inv["32-missing-kind"] = base(more="---\napiVersion: v1\nmetadata:\n  name: orphan\n")
inv["33-bad-target-port-name"] = base(svc=SVC.replace("targetPort: 8080", "targetPort: Web_HTTP"))
inv["34-bad-expected-status"] = base("  healthCheck:\n    path: /healthz\n    interval: 2s\n    expectedStatus: ok\n")
inv["35-bool-as-string"] = base().replace("    - address: 127.0.0.1:18080\n", "    - address: 127.0.0.1:18080\n      tls: \"yes\"\n")
inv["36-tls-secret-not-found"] = base(ing=ING(spec_extra="  tls:\n    - hosts: [shop.example.com]\n      secretName: shop-tls\n"))
inv["37-externalname-without-name"] = base(svc=SVC.replace("spec:\n  ports:", "spec:\n  type: ExternalName\n  ports:"))
inv["38-undefined-alias"] = pc() + "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec: *base\n"
inv["39-missing-name"] = base(svc=SVC.replace("metadata:\n  name: web\n", "metadata:\n  labels: {app: web}\n"))
inv["40-bad-affinity-timeout"] = base(svc=SVC.replace("spec:\n", "spec:\n  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 0\n"))
inv["41-bad-hash-by"] = base(ing=ING(meta_extra="  annotations:\n    nginx.ingress.kubernetes.io/upstream-hash-by: \"$host\"\n"))
inv["42-endport-below-port"] = base(more="""---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: ports
spec:
  podSelector: {}
  ingress:
    - ports:
        - port: 9000
          endPort: 8000
""")
inv["43-duplicate-listen"] = base().replace("    - address: 127.0.0.1:18080\n", "    - address: 127.0.0.1:18080\n    - address: 127.0.0.1:18080\n")
inv["44-address-type"] = base(sl=SLICE.replace("addressType: IPv4", "addressType: IPv5"))
inv["45-list-item-not-object"] = pc() + "---\napiVersion: v1\nkind: List\nitems:\n  - just a string\n" + SVC + SLICE
# several independent mistakes in one file
inv["90-several-mistakes"] = pc("  workers: 0\n  drainTimeout: soon\n") + ING().replace("number: 80", "number: 81").replace("pathType: Prefix", "pathType: prefix") + SVC.replace("port: 80", "port: eighty") + SLICE.replace('"127.0.0.2"', '"127.0.0.2", "::1"') + SVC
inv["91-several-objects"] = base(
    ing=ING(meta_extra="  annotations:\n    ingressd/ssl-redirect: sometimes\n").replace("name: web", "name: api"),
    more=SECRET.replace(crt, "####") + """---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: np
spec:
  podSelector: {}
  policyTypes: [Ingress, Sideways]
  ingress:
    - from:
        - ipBlock: {cidr: "2001:db8::/129"}
""")
inv["92-quoted-numbers"] = base("  workers: \"2\"\n  retries: \"3\"\n", svc=SVC.replace("port: 80", "port: \"80\""))

valid = {}
valid["02-list"] = """apiVersion: v1
kind: List
items:
  - apiVersion: ingressd/v1
    kind: ProxyConfig
    spec:
      listen:
        - address: 127.0.0.1:18080
  - apiVersion: networking.k8s.io/v1
    kind: Ingress
    metadata: {name: shop, namespace: prod}
    spec:
      rules:
        - http:
            paths:
              - path: /
                pathType: Prefix
                backend: {service: {name: web, port: {number: 80}}}
  - apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: prod}
    spec:
      ports: [{port: 80, targetPort: 8080}]
  - apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: web-x
      namespace: prod
      labels: {kubernetes.io/service-name: web}
    addressType: IPv4
    ports: [{port: 8080}]
    endpoints: [{addresses: [127.0.0.2, 127.0.0.3]}]
"""
valid["03-all-kinds"] = pc("""    - address: 127.0.0.1:18443
      tls: true
  admin: 127.0.0.1:19901
  workers: 2
  defaultCertificate: default/shop-tls
  ingressClass: ingressd
  drainTimeout: 30s
  timeouts: {clientHeader: 10s, clientIdle: 1m, clientBody: 60, upstreamConnect: 500ms, upstreamRead: 1m30s, upstreamIdle: 60s, tunnelIdle: 1h}
  limits: {maxBodySize: 10m, maxHeaderSize: 32k}
  loadBalance: ewma
  retries: 2
  retryBudgetPercent: 20
  panicThreshold: 50
  upstreamKeepalive: 16
  healthCheck: {path: /healthz, interval: 2s, timeout: 1s, healthyThreshold: 2, unhealthyThreshold: 3, expectedStatus: 200-299}
  outlierDetection: {consecutiveFailures: 5, baseEjectionTime: 1s, maxEjectionTime: 30s, maxEjectionPercent: 50}
  tls: {hstsMaxAge: 31536000, hstsIncludeSubdomains: true, sessionTicketRotation: 1h}
  accessLog: "-"
""") + """---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: ingressd
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
spec:
  controller: ingressd.io/controller
""" + ING(meta_extra="""  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/upstream-hash-by: "$http_x_user"
    nginx.ingress.kubernetes.io/rewrite-target: /
    nginx.ingress.kubernetes.io/proxy-body-size: 8m
""", spec_extra="""  ingressClassName: ingressd
  tls:
    - hosts: [shop.example.com]
      secretName: shop-tls
""", paths="""          - path: /api/v[0-9]+/
            pathType: ImplementationSpecific
            backend:
              service:
                name: web
                port:
                  name: http
          - path: /exact
            pathType: Exact
            backend:
              service:
                name: web
                port:
                  number: 80
""") + SVC.replace("  name: web\n", """  name: web
  annotations:
    ingressd/load-balance: hash
    ingressd/hash-by: header:x-user
    ingressd/health-check-path: /ready
    ingressd/health-check-interval: 5s
    ingressd/retry-on: error,timeout,http_503
    ingressd/retries: "3"
""").replace("spec:\n", "spec:\n  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 600\n  selector:\n    app: web\n") + SLICE + SECRET + """---
apiVersion: v1
kind: Endpoints
metadata:
  name: other
subsets:
  - addresses: [{ip: 127.0.0.9}]
    ports: [{port: 9000}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: office-only
spec:
  podSelector:
    matchLabels:
      app: web
  policyTypes: [Ingress]
  ingress:
    - from:
        - ipBlock:
            cidr: 127.0.0.0/8
            except: [127.0.0.99/32]
        - ipBlock:
            cidr: "::1/128"
      ports:
        - protocol: TCP
          port: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ignored
data:
  a: b
"""
valid["04-anchors"] = pc() + """---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: &labels
    app: web
spec:
  selector: *labels
  ports:
    - &port
      name: http
      port: 80
      targetPort: http
""" + ING() + """---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels:
    kubernetes.io/service-name: web
addressType: IPv6
ports:
  - name: http
    port: 8080
endpoints:
  - addresses: ["::1"]
    conditions: {ready: true, serving: true, terminating: false}
    nodeName: node-1
"""
valid["05-warnings-only"] = base("  futureField: 1\n", more="---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n")

os.makedirs('tests/conf/invalid', exist_ok=True)
for k, v in inv.items():
    open(f'tests/conf/invalid/{k}.yaml', 'w').write(v)
for k, v in valid.items():
    open(f'tests/conf/valid/{k}.yaml', 'w').write(v)

key2 = base64.b64encode(open('tests/conf/certs/other.key','rb').read()).decode()
extra = {}
extra["46-key-does-not-match"] = base(more=SECRET.replace(key, key2))
extra["47-bad-ciphers"] = base("  tls:\n    ciphers: NOT-A-CIPHER\n")
extra["48-unknown-annotation-value-on-ingress"] = base(ing=ING(meta_extra="  annotations:\n    nginx.ingress.kubernetes.io/proxy-body-size: huge\n"))
for k, v in extra.items():
    open(f'tests/conf/invalid/{k}.yaml', 'w').write(v)

more = {}
more["49-duplicate-field"] = base(svc=SVC.replace("  ports:\n", "  type: ClusterIP\n  type: NodePort\n  ports:\n"))
more["50-duplicate-top-level-field"] = base(svc=SVC + "spec: {}\n")
for k, v in more.items():
    open(f'tests/conf/invalid/{k}.yaml', 'w').write(v)

more2 = {}
more2["51-default-backend-missing-service"] = base("  defaultBackend:\n    service:\n      name: fallback\n      port:\n        number: 80\n")
for k, v in more2.items():
    open(f'tests/conf/invalid/{k}.yaml', 'w').write(v)
