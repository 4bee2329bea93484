/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap: resolution (Ingress -> Service port -> targetPort -> EndpointSlice /
 * Endpoints), IngressClass filtering, quarantine against a previous snapshot.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "ingressd/np.h"
#include "ingressd/route.h"
#include "ingressd/snap.h"

TestSuite(snap);

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/ingressd-test-snap-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t n = strlen(text);
    cr_assert(write(fd, text, n) == (ssize_t)n);
    close(fd);
    return path;
}

static struct snap *load_text(const char *text, const struct snap *prev, struct cfg_errs *errs)
{
    char *path = write_tmp(text);
    struct snap_load_opts opts = { 0 };
    struct snap *s = snap_load(path, prev, &opts, errs);
    unlink(path);
    free(path);
    return s;
}

/* the same path every time, as a reload reads it (documents are reused per file) */
static struct snap *load_same_path(const char *path, const char *text, const struct snap *prev,
                                   struct cfg_errs *errs)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    struct snap_load_opts opts = { 0 };
    return snap_load(path, prev, &opts, errs);
}

#define PC "apiVersion: ingressd/v1\nkind: ProxyConfig\nspec:\n  listen:\n  - address: 127.0.0.1:18080\n"

static const char *const basic =
    PC
    "---\n"
    "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: shop}\n"
    "spec:\n  rules:\n  - host: shop.example.com\n    http:\n      paths:\n"
    "      - path: /\n        pathType: Prefix\n        backend: {service: {name: web, port: {name: http}}}\n"
    "      - path: /api\n        pathType: Exact\n        backend: {service: {name: api, port: {number: 8080}}}\n"
    "---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
    "spec:\n  ports:\n  - {name: http, port: 80, targetPort: web-http}\n"
    "---\n"
    "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  ports:\n  - {port: 8080, targetPort: 9000}\n"
    "---\n"
    "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\n"
    "ports: [{name: http, port: 8081}]\n"
    "endpoints:\n- addresses: [127.0.0.2]\n  conditions: {ready: true}\n"
    "- addresses: [127.0.0.3]\n  conditions: {ready: false}\n"
    "- addresses: [127.0.0.4]\n  conditions: {ready: true, terminating: true}\n"
    "---\n"
    "apiVersion: v1\nkind: Endpoints\nmetadata: {name: api}\n"
    "subsets:\n- addresses: [{ip: 127.0.0.5}]\n  notReadyAddresses: [{ip: 127.0.0.6}]\n  ports: [{port: 9000}]\n";

Test(snap, resolves_named_target_ports_through_slices_and_endpoints)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct snap *s = load_text(basic, NULL, &errs);
    cr_assert_not_null(s);
    cr_assert_eq(errs.nerrors, 0);
    cr_assert_eq(s->gen, 1);
    cr_assert_eq(s->ningresses, 1);
    cr_assert_eq(s->nrules, 2);
    cr_assert_eq(s->nservices, 2);
    const struct snap_backend *web = snap_find_backend(s, "default/web:80");
    cr_assert_not_null(web);
    cr_assert_eq(web->neps, 3);
    cr_assert_str_eq(web->eps[0].addr, "127.0.0.2:8081");
    cr_assert(web->eps[0].ready && !web->eps[1].ready && web->eps[2].terminating);
    cr_assert_eq(web->nready, 1);
    cr_assert_not_null(web->eps[0].hc);
    const struct snap_backend *api = snap_find_backend(s, "default/api:8080");
    cr_assert_not_null(api);
    cr_assert_eq(api->neps, 2);
    cr_assert_str_eq(api->eps[0].addr, "127.0.0.5:9000");
    cr_assert(api->eps[0].ready && !api->eps[1].ready);
    snap_release(s);
    cfg_errs_free(&errs);
}

static const char *const svc_web =
    "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, labels: {}}\n"
    "spec:\n  selector: {app: web, tier: front}\n  ports:\n  - {name: http, port: 80, targetPort: http}\n"
    "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
    "metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\n"
    "ports: [{name: http, port: 8080}]\nendpoints: [{addresses: [127.0.0.2]}]\n";

static char *ingress(const char *name, const char *cls_field, const char *annotations,
                     const char *host)
{
    char *s = NULL;
    cr_assert(asprintf(&s,
                       "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n"
                       "metadata:\n  name: %s\n  annotations: {%s}\n"
                       "spec:\n%s  rules:\n  - host: %s\n    http:\n      paths:\n"
                       "      - path: /\n        pathType: Prefix\n"
                       "        backend: {service: {name: web, port: {number: 80}}}\n",
                       name, annotations, cls_field, host) > 0);
    return s;
}

Test(snap, ingress_class_filtering_and_default_class_adoption)
{
    char *a = ingress("a", "  ingressClassName: ingressd\n", "", "a.example.com");
    char *b = ingress("b", "  ingressClassName: nginx\n", "", "b.example.com");
    char *c = ingress("c", "", "kubernetes.io/ingress.class: ingressd", "c.example.com");
    char *d = ingress("d", "", "", "d.example.com");
    char *text = NULL;
    const char *ic = "---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\n"
                     "metadata:\n  name: ingressd\n  annotations: {ingressclass.kubernetes.io/is-default-class: \"true\"}\n"
                     "spec: {controller: x}\n";
    struct cfg_errs errs;
    cfg_errs_init(&errs);

    cr_assert(asprintf(&text, PC "  ingressClass: ingressd\n%s%s%s%s%s", svc_web, a, b, c, d) > 0);
    struct snap *s = load_text(text, NULL, &errs);
    cr_assert_not_null(s);
    cr_assert_eq(s->ningresses, 2, "a (class name) and c (annotation); got %u", s->ningresses);
    snap_release(s);
    free(text);

    cr_assert(asprintf(&text, PC "  ingressClass: ingressd\n%s%s%s%s%s%s", svc_web, ic, a, b, c, d) > 0);
    s = load_text(text, NULL, &errs);
    cr_assert_eq(s->ningresses, 3, "the default class adopts d; got %u", s->ningresses);
    snap_release(s);
    free(text);

    cr_assert(asprintf(&text, PC "%s%s%s%s%s", svc_web, a, b, c, d) > 0);
    s = load_text(text, NULL, &errs);
    cr_assert_eq(s->ningresses, 4, "no spec.ingressClass: serve all");
    cr_assert_eq(errs.nerrors, 0);
    snap_release(s);
    free(text);
    free(a), free(b), free(c), free(d);
    cfg_errs_free(&errs);
}

Test(snap, quarantine_keeps_last_good_version)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    char tpath[] = "/tmp/ingressd-test-reload-XXXXXX";
    int tfd = mkstemp(tpath);
    cr_assert(tfd >= 0);
    close(tfd);
    char *good = ingress("shop", "", "", "shop.example.com");
    char *text = NULL;
    cr_assert(asprintf(&text, PC "%s%s", svc_web, good) > 0);
    struct snap *s1 = load_same_path(tpath, text, NULL, &errs);
    cr_assert_not_null(s1);
    cr_assert_eq(s1->nquarantine, 0);
    free(text);

    /* the Ingress now names a port the Service lacks, and a new Ingress is broken too */
    char *bad = ingress("shop", "", "", "shop.example.com");
    char *p = strstr(bad, "number: 80");
    memcpy(p, "number: 81", 10);
    char *newbad = ingress("fresh", "", "ingressd/use-regex: \"true\"", "new.example.com");
    p = strstr(newbad, "pathType: Prefix");
    memcpy(p, "pathType: Bogus!", 16);
    cr_assert(asprintf(&text, PC "%s%s%s", svc_web, bad, newbad) > 0);
    struct snap *s2 = load_same_path(tpath, text, s1, &errs);
    cr_assert_not_null(s2);
    cr_assert_eq(s2->gen, 2);
    cr_assert_eq(s2->nquarantine, 2);
    cr_assert_str_eq(s2->quarantine[0].object, "Ingress default/shop");
    cr_assert(s2->quarantine[0].serving_previous);
    cr_assert_not_null(strstr(s2->quarantine[0].error, "has no port 81"));
    cr_assert_str_eq(s2->quarantine[1].object, "Ingress default/fresh");
    cr_assert_not(s2->quarantine[1].serving_previous);
    cr_assert_eq(s2->ningresses, 1, "the old shop keeps serving, fresh is left out");
    cr_assert_not_null(snap_find_backend(s2, "default/web:80"));

    /* the previous snapshot can go first: s2 holds its own refs on reused objects */
    snap_release(s1);
    cr_assert_eq(s2->nrules, 1);
    cr_assert_str_eq(s2->backends[0].name, "default/web:80");

    /* a third load quarantines again from s2 (the reused object travels on) */
    struct snap *s3 = load_same_path(tpath, text, s2, &errs);
    cr_assert_eq(s3->gen, 3);
    cr_assert_eq(s3->ningresses, 1);
    cr_assert(s3->quarantine[0].serving_previous);
    snap_release(s2);
    snap_release(s3);

    /* invalid YAML: nothing */
    cr_assert_null(load_same_path(tpath, "a: [\n", NULL, &errs));
    free(text), free(good), free(bad), free(newbad);
    unlink(tpath);
    cfg_errs_free(&errs);
}

Test(snap, annotations_shape_backends_and_routes)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    char *plain = ingress("plain", "", "", "plain.example.com");
    char *hashed = ingress("hashed", "",
                           "nginx.ingress.kubernetes.io/upstream-hash-by: \"$cookie_user\", "
                           "ingressd/ssl-redirect: \"false\", "
                           "nginx.ingress.kubernetes.io/proxy-body-size: 1m",
                           "hashed.example.com");
    char *tls = ingress("secure", "  tls: [{hosts: [\"*.example.com\"], secretName: cert}]\n", "",
                        "secure.example.com");
    char *text = NULL;
    cr_assert(asprintf(&text,
                       "apiVersion: ingressd/v1\nkind: ProxyConfig\nspec:\n  listen:\n"
                       "  - address: 127.0.0.1:18080\n  - {address: 127.0.0.1:18443, tls: true}\n"
                       "  loadBalance: least_conn\n"
                       "%s%s%s%s"
                       "---\napiVersion: v1\nkind: Secret\nmetadata: {name: cert}\ntype: kubernetes.io/tls\n"
                       "stringData: {tls.crt: x, tls.key: y}\n"
                       "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext}\n"
                       "spec: {type: ExternalName, externalName: example.org, ports: [{port: 443}]}\n",
                       svc_web, plain, hashed, tls) > 0);
    struct snap *s = load_text(text, NULL, &errs);
    cr_assert_not_null(s);
    /* (the Secret is not a real certificate: once tls_check_pair checks, it errors) */
    cr_assert_eq(s->nbackends, 2);
    const struct snap_backend *b0 = snap_find_backend(s, "default/web:80");
    const struct snap_backend *b1 = snap_find_backend(s, "default/web:80@default/hashed");
    cr_assert_not_null(b0);
    cr_assert_not_null(b1);
    cr_assert_eq(b0->algo, LB_LEAST_CONN);
    cr_assert_eq(b1->algo, LB_HASH);
    cr_assert_eq(b1->hash_by, LB_HASH_COOKIE);
    cr_assert_str_eq(b1->hash_key, "user");
    cr_assert_str_eq(b0->eps[0].addr, "127.0.0.2:8080", "named targetPort through the slice");
    cr_assert_eq(s->nrules, 3);
    cr_assert_eq(s->cfg.nlisteners, 2);
    snap_release(s);
    free(text), free(plain), free(hashed), free(tls);
    cfg_errs_free(&errs);
}

Test(snap, netpol_admits_by_cidr_and_port)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    char *ing = ingress("shop", "", "", "shop.example.com");
    char *text = NULL;
    cr_assert(asprintf(&text, PC "%s%s"
                       "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\n"
                       "spec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n"
                       "  - from:\n    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}\n"
                       "    - ipBlock: {cidr: \"2001:db8::/32\"}\n"
                       "    ports: [{port: http}]\n"
                       "  - from: [{podSelector: {}}]\n",
                       svc_web, ing) > 0);
    struct snap *s = load_text(text, NULL, &errs);
    cr_assert_not_null(s);
    cr_assert_eq(errs.nerrors, 0);
    cr_assert_not_null(s->netpol);
    const struct snap_backend *be = &s->backends[0];
    struct sockaddr_in in = { .sin_family = AF_INET };
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
    inet_pton(AF_INET, "10.2.3.4", &in.sin_addr);
    cr_assert(np_allow(s->netpol, be, (struct sockaddr *)&in, 8080));
    cr_assert_not(np_allow(s->netpol, be, (struct sockaddr *)&in, 9090), "port not admitted");
    inet_pton(AF_INET, "10.1.3.4", &in.sin_addr);
    cr_assert_not(np_allow(s->netpol, be, (struct sockaddr *)&in, 8080), "except");
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    cr_assert_not(np_allow(s->netpol, be, (struct sockaddr *)&in, 8080));
    inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
    cr_assert(np_allow(s->netpol, be, (struct sockaddr *)&in6, 8080));
    inet_pton(AF_INET6, "::ffff:10.2.3.4", &in6.sin6_addr);
    cr_assert(np_allow(s->netpol, be, (struct sockaddr *)&in6, 8080), "v4-mapped");
    inet_pton(AF_INET6, "2001:db9::1", &in6.sin6_addr);
    cr_assert_not(np_allow(s->netpol, be, (struct sockaddr *)&in6, 8080));
    snap_release(s);
    free(text);

    /* a policy that does not select the Service's pods changes nothing */
    cr_assert(asprintf(&text, PC "%s%s"
                       "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\n"
                       "spec:\n  podSelector: {matchLabels: {app: other}}\n  ingress: []\n",
                       svc_web, ing) > 0);
    s = load_text(text, NULL, &errs);
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    cr_assert(np_allow(s->netpol, &s->backends[0], (struct sockaddr *)&in, 8080));
    snap_release(s);
    free(text), free(ing);
    cfg_errs_free(&errs);
}

Test(snap, reload_reuses_unchanged_documents_with_exact_diagnostics)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    char tpath[] = "/tmp/ingressd-test-reload-XXXXXX";
    int tfd = mkstemp(tpath);
    cr_assert(tfd >= 0);
    close(tfd);
    char *ing = ingress("shop", "", "", "shop.example.com");
    char *text = NULL;
    cr_assert(asprintf(&text, PC "%s%s", svc_web, ing) > 0);
    struct snap *s1 = load_same_path(tpath, text, NULL, &errs);
    cr_assert_not_null(s1);
    free(text);

    /* slice changes (a pod added): the Ingress and Service documents are reused */
    char *svc2 = strdup(svc_web);
    char *p = strstr(svc2, "[127.0.0.2]");
    cr_assert_not_null(p);
    char *svc3 = NULL;
    cr_assert(asprintf(&svc3, "%.*s[127.0.0.2, 127.0.0.3]%s", (int)(p - svc2), svc2,
                       p + strlen("[127.0.0.2]")) > 0);
    cr_assert(asprintf(&text, PC "%s%s", svc3, ing) > 0);
    struct snap *s2 = load_same_path(tpath, text, s1, &errs);
    cr_assert_not_null(s2);
    cr_assert_eq(errs.nerrors, 0);
    const struct snap_backend *be = snap_find_backend(s2, "default/web:80");
    cr_assert_not_null(be);
    cr_assert_eq(be->neps, 2);
    cr_assert_str_eq(be->eps[1].addr, "127.0.0.3:8080");
    free(text);

    /* the Service goes away and lines shift: the reused Ingress is reported at its new line */
    cr_assert(asprintf(&text, PC "---\n# a comment\n# and another\n%s", ing) > 0);
    struct snap *s3 = load_same_path(tpath, text, s2, &errs);
    cr_assert_not_null(s3);
    cr_assert_eq(errs.nerrors, 1);
    const struct cfg_err *e = &errs.v[errs.n - 1];
    cr_assert_not_null(strstr(e->msg, "Service default/web not found"), "%s", e->msg);
    /* PC is 5 lines, then "---" + 2 comments; the Ingress' backend.service is on its line 17 */
    unsigned want = 0;
    {
        unsigned line = 1;
        const char *q = text;
        const char *svc_line = strstr(text, "backend: {service:");
        for (; q < svc_line; q++)
            line += *q == '\n';
        want = line;
    }
    cr_assert_eq(e->line, want, "line %u, want %u", e->line, want);
    cr_assert_eq(s3->nquarantine, 1);
    cr_assert(s3->quarantine[0].serving_previous);
    cr_assert_eq(s3->ningresses, 1);
    snap_release(s1);
    snap_release(s2);
    snap_release(s3);
    free(text), free(ing), free(svc2), free(svc3);
    unlink(tpath);
    cfg_errs_free(&errs);
}

Test(snap, endpoints_in_two_slices_count_once)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    char *ing = ingress("shop", "", "", "shop.example.com");
    char *text = NULL;
    cr_assert(asprintf(&text, PC "%s%s"
                       "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                       "metadata: {name: web-2, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\n"
                       "ports: [{name: http, port: 8080}]\n"
                       "endpoints: [{addresses: [127.0.0.2], conditions: {ready: false}}, {addresses: [127.0.0.9]}]\n",
                       svc_web, ing) > 0);
    struct snap *s = load_text(text, NULL, &errs);
    cr_assert_not_null(s);
    const struct snap_backend *be = snap_find_backend(s, "default/web:80");
    cr_assert_eq(be->neps, 2);
    cr_assert(be->eps[0].ready, "a ready copy wins");
    cr_assert_str_eq(be->eps[1].addr, "127.0.0.9:8080");
    cr_assert_eq(be->nready, 2);
    snap_release(s);
    free(text), free(ing);
    cfg_errs_free(&errs);
}

Test(snap, routes_defaults_tls_redirect_and_regex)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    const char *text =
        "apiVersion: ingressd/v1\nkind: ProxyConfig\nspec:\n  listen:\n"
        "  - address: 127.0.0.1:18080\n  - {address: 127.0.0.1:18443, tls: true}\n"
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        "metadata:\n  name: secure\n"
        "spec:\n  defaultBackend: {service: {name: web, port: {name: http}}}\n"
        "  tls: [{hosts: [\"*.example.com\"]}]\n"
        "  rules:\n  - host: a.example.com\n    http:\n      paths:\n"
        "      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n"
        "  - host: other.org\n    http:\n      paths:\n"
        "      - {path: /x, pathType: Exact, backend: {service: {name: web, port: {number: 80}}}}\n"
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        "metadata:\n  name: rx\n  annotations:\n    ingressd/use-regex: \"true\"\n"
        "    nginx.ingress.kubernetes.io/ssl-redirect: \"false\"\n"
        "    nginx.ingress.kubernetes.io/rewrite-target: /$1\n"
        "spec:\n  tls: [{hosts: [b.example.com]}]\n"
        "  defaultBackend: {service: {name: ext, port: {number: 443}}}\n"
        "  rules:\n  - host: b.example.com\n    http:\n      paths:\n"
        "      - {path: \"/v[0-9]+/(.*)\", pathType: ImplementationSpecific, backend: {service: {name: ext, port: {number: 443}}}}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: ext}\n"
        "spec: {type: ExternalName, externalName: example.org, ports: [{port: 443}]}\n";
    char *all = NULL;
    cr_assert(asprintf(&all, "%s%s", text, svc_web) > 0);
    struct snap *s = load_text(all, NULL, &errs);
    cr_assert_not_null(s);
    cr_assert_eq(errs.nerrors, 0, "%s", errs.n ? errs.v[0].msg : "");
    cr_assert_not_null(s->default_route, "the first Ingress defaultBackend");
    cr_assert_str_eq(s->default_route->backend->name, "default/web:80");
    cr_assert_str_eq(s->default_route->ingress, "default/secure");

    const struct snap_route *r = route_match(s->routes, "a.example.com", 13, "/any", 4);
    cr_assert_not_null(r);
    cr_assert(r->has_tls && r->ssl_redirect, "host covered by *.example.com");
    r = route_match(s->routes, "other.org", 9, "/x", 2);
    cr_assert_not_null(r);
    cr_assert_not(r->has_tls);
    cr_assert_not(r->ssl_redirect);

    r = route_match(s->routes, "b.example.com", 13, "/v2/users", 9);
    cr_assert_not_null(r, "regex path");
    cr_assert(r->use_regex);
    cr_assert(r->has_tls && !r->ssl_redirect, "redirect disabled by annotation");
    cr_assert_str_eq(r->rewrite_target, "/$1");
    cr_assert_str_eq(r->backend->external_name, "example.org");
    cr_assert_eq(r->backend->external_port, 443);
    cr_assert_eq(r->backend->neps, 0);
    cr_assert_null(route_match(s->routes, "b.example.com", 13, "/nope", 5));
    snap_release(s);
    free(all);
    cfg_errs_free(&errs);
}

Test(snap, proxyconfig_default_backend_is_the_last_resort)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    char *text = NULL;
    cr_assert(asprintf(&text, PC "  defaultBackend: {service: {name: web, namespace: default, port: {name: http}}}\n%s",
                       svc_web) > 0);
    struct snap *s = load_text(text, NULL, &errs);
    cr_assert_not_null(s);
    cr_assert_eq(errs.nerrors, 0);
    cr_assert_not_null(s->default_route);
    cr_assert_str_eq(s->default_route->backend->name, "default/web:80");
    cr_assert_eq(s->default_route->backend->neps, 1);
    snap_release(s);
    free(text);

    cr_assert(asprintf(&text, PC "  defaultBackend: {service: {name: web, port: {number: 81}}}\n%s",
                       svc_web) > 0);
    s = load_text(text, NULL, &errs);
    cr_assert_null(s, "the only ProxyConfig is broken: nothing to serve");
    cr_assert_not_null(strstr(errs.v[errs.n - 1].msg, "has no port 81"));
    free(text);
    cfg_errs_free(&errs);
}

Test(snap, a_document_written_twice_on_reload_is_one_duplicate)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    char tpath[] = "/tmp/ingressd-test-reload-XXXXXX";
    int tfd = mkstemp(tpath);
    cr_assert(tfd >= 0);
    close(tfd);
    char *text = NULL;
    cr_assert(asprintf(&text, PC "%s", svc_web) > 0);
    struct snap *s1 = load_same_path(tpath, text, NULL, &errs);
    cr_assert_not_null(s1);
    free(text);
    /* the same Service document twice: the cached objects must not be shared by both */
    cr_assert(asprintf(&text, PC "%s%s", svc_web, svc_web) > 0);
    struct snap *s2 = load_same_path(tpath, text, s1, &errs);
    cr_assert_not_null(s2);
    cr_assert_eq(errs.nerrors, 2, "the second Service and the second slice are duplicates");
    cr_assert_eq(s2->nservices, 1);
    struct snap *s3 = load_same_path(tpath, text, s2, &errs);
    cr_assert_not_null(s3);
    snap_release(s1);
    snap_release(s2);
    snap_release(s3);
    free(text);
    unlink(tpath);
    cfg_errs_free(&errs);
}

Test(snap, a_directory_of_yaml_files_is_one_configuration)
{
    char dir[] = "/tmp/ingressd-test-dir-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char p1[128], p2[128], p3[128];
    snprintf(p1, sizeof(p1), "%s/10-proxy.yaml", dir);
    snprintf(p2, sizeof(p2), "%s/20-apps.yaml", dir);
    snprintf(p3, sizeof(p3), "%s/README.md", dir);
    FILE *f = fopen(p1, "w");
    fputs(PC, f);
    fclose(f);
    f = fopen(p2, "w");
    char *ing = ingress("shop", "", "", "shop.example.com");
    fprintf(f, "%s%s", svc_web, ing);
    fputs("---\napiVersion: v1\nkind: Service\nmetadata: {name: bad}\nspec: {ports: [{port: x}]}\n", f);
    fclose(f);
    f = fopen(p3, "w");
    fputs("not: [yaml\n", f);
    fclose(f);

    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct snap_load_opts opts = { 0 };
    struct snap *s = snap_load(dir, NULL, &opts, &errs);
    cr_assert_not_null(s);
    cr_assert_eq(s->ningresses, 1);
    cr_assert_eq(errs.nerrors, 1);
    cr_assert_str_eq(errs.v[0].file, p2, "errors name the file they are in");
    cr_assert_not_null(snap_find_backend(s, "default/web:80"));
    snap_release(s);
    unlink(p1), unlink(p2), unlink(p3);
    rmdir(dir);
    free(ing);
    cfg_errs_free(&errs);
}

Test(snap, reused_objects_report_shifted_lines)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    char tpath[] = "/tmp/ingressd-test-reload-XXXXXX";
    int tfd = mkstemp(tpath);
    cr_assert(tfd >= 0);
    close(tfd);
    char *a = ingress("a", "", "", "shop.example.com");
    char *b2 = ingress("b", "", "", "shop.example.com");
    char *text = NULL;
    cr_assert(asprintf(&text, PC "%s%s%s", svc_web, a, b2) > 0);
    struct snap *s1 = load_same_path(tpath, text, NULL, &errs);
    cr_assert_not_null(s1);
    cr_assert_eq(errs.nwarnings, 1, "the same host/path twice: the first Ingress wins");
    unsigned line1 = errs.v[0].line;
    free(text);
    /* three more lines before the Ingresses: both are reused, the warning moves with them */
    cr_assert(asprintf(&text, PC "---\n# one\n# two\n%s%s%s", svc_web, a, b2) > 0);
    struct snap *s2 = load_same_path(tpath, text, s1, &errs);
    cr_assert_not_null(s2);
    cr_assert_eq(errs.nwarnings, 2);
    cr_assert_eq(errs.v[errs.n - 1].line, line1 + 3, "got %u want %u", errs.v[errs.n - 1].line,
                 line1 + 3);
    snap_release(s1);
    snap_release(s2);
    free(text), free(a), free(b2);
    unlink(tpath);
    cfg_errs_free(&errs);
}

/* more than SNAP_PARALLEL_BYTES of documents: decoded on two threads, merged in order */
Test(snap, large_configuration_decodes_in_document_order)
{
    size_t cap = 1 << 20, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    len += (size_t)snprintf(text + len, cap - len, "%s", PC);
    for (int i = 0; i < 400; i++) {
        len += (size_t)snprintf(text + len, cap - len,
                                "---\napiVersion: v1\nkind: Service\nmetadata: {name: s%d}\n"
                                "spec: {ports: [{name: http, port: 80, targetPort: %s}]}\n"
                                "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                                "metadata: {name: s%d-1, labels: {kubernetes.io/service-name: s%d}}\n"
                                "addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints:\n",
                                i, i == 123 ? "Bad_Name" : "8080", i, i);
        for (int e = 0; e < 10; e++)
            len += (size_t)snprintf(text + len, cap - len,
                                    "- addresses: [10.%d.%d.%d]\n  conditions: {ready: true}\n",
                                    i / 250, i % 250, e + 1);
        len += (size_t)snprintf(text + len, cap - len,
                                "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\n"
                                "metadata: {name: i%d}\nspec:\n  rules:\n  - host: h%d.example.com\n"
                                "    http:\n      paths:\n      - path: /%s\n        pathType: %s\n"
                                "        backend: {service: {name: s%d, port: {number: 80}}}\n",
                                i, i, i == 350 ? "x" : "", i == 350 ? "Bogus" : "Prefix", i);
    }
    cr_assert(len > 300 * 1024 && len < cap);
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct snap *s = load_text(text, NULL, &errs);
    cr_assert_not_null(s);
    cr_assert_eq(errs.nerrors, 2);
    cr_assert_not_null(strstr(errs.v[0].obj, "Service default/s123"), "%s", errs.v[0].obj);
    cr_assert_not_null(strstr(errs.v[1].obj, "Ingress default/i350"), "%s", errs.v[1].obj);
    cr_assert(errs.v[0].line < errs.v[1].line);
    cr_assert_eq(s->ningresses, 399);
    cr_assert_eq(s->nservices, 399);
    cr_assert_eq(s->nendpoints, 4000);
    cr_assert_eq(snap_find_backend(s, "default/s7:80")->neps, 10);
    /* and the reload of the same text reuses every document */
    struct snap *s2 = load_text(text, s, &errs);
    cr_assert_not_null(s2);
    cr_assert_eq(s2->ningresses, 399);
    snap_release(s);
    snap_release(s2);
    free(text);
    cfg_errs_free(&errs);
}

Test(snap, unchanged_services_share_their_endpoints_across_reloads)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    const char *other =
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec: {ports: [{port: 80}]}\n"
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
        "metadata: {name: api-1, labels: {kubernetes.io/service-name: api}}\naddressType: IPv4\n"
        "ports: [{port: 9000}]\nendpoints: [{addresses: [127.0.0.20, 127.0.0.21]}]\n";
    char *ing = ingress("shop", "", "", "shop.example.com");
    char *ing2 = ingress("api", "", "", "api.example.com");
    char *p = strstr(ing2, "name: web");
    memcpy(p, "name: api", 9);
    char *text = NULL;
    char path[] = "/tmp/ingressd-test-share-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert(asprintf(&text, PC "%s%s%s%s", svc_web, other, ing, ing2) > 0);
    struct snap *s1 = load_same_path(path, text, NULL, &errs);
    cr_assert_not_null(s1);
    free(text);
    /* web's slice gains a pod; api's documents are untouched */
    char *svc3 = NULL, *q = strstr(svc_web, "[127.0.0.2]");
    cr_assert(asprintf(&svc3, "%.*s[127.0.0.2, 127.0.0.3]%s", (int)(q - svc_web), svc_web,
                       q + strlen("[127.0.0.2]")) > 0);
    cr_assert(asprintf(&text, PC "%s%s%s%s", svc3, other, ing, ing2) > 0);
    struct snap *s2 = load_same_path(path, text, s1, &errs);
    unlink(path);
    cr_assert_not_null(s2);
    cr_assert_eq(errs.nerrors, 0);
    const struct snap_backend *a1 = snap_find_backend(s1, "default/api:80");
    const struct snap_backend *a2 = snap_find_backend(s2, "default/api:80");
    const struct snap_backend *w1 = snap_find_backend(s1, "default/web:80");
    const struct snap_backend *w2 = snap_find_backend(s2, "default/web:80");
    cr_assert_eq(a1->eps, a2->eps, "api's endpoints are shared, not rebuilt");
    cr_assert_neq(w1->eps, w2->eps);
    cr_assert_eq(w2->neps, 2);
    cr_assert_eq(w1->eps[0].hc, w2->eps[0].hc, "health state carries over");
    snap_release(s1);
    /* s2 stands alone after s1 is gone */
    cr_assert_str_eq(a2->eps[1].addr, "127.0.0.21:9000");
    cr_assert_eq(a2->nready, 2);
    snap_release(s2);
    free(text), free(svc3), free(ing), free(ing2);
    cfg_errs_free(&errs);
}

/*
 * A reused Ingress skips its reference checks only while every Service and
 * Secret is the very object the previous load had: a Service whose port
 * changes (same name, new document) must still get the Ingress reported.
 */
Test(snap, reused_ingress_is_rechecked_when_a_service_changes)
{
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    char tpath[] = "/tmp/ingressd-test-recheck-XXXXXX";
    int tfd = mkstemp(tpath);
    cr_assert(tfd >= 0);
    close(tfd);
    char *ing = ingress("shop", "", "", "shop.example.com");
    char *text = NULL;
    cr_assert(asprintf(&text, PC "%s%s", svc_web, ing) > 0);
    struct snap *s1 = load_same_path(tpath, text, NULL, &errs);
    cr_assert_not_null(s1);
    free(text);

    /* only the slice changes: nothing to report */
    char *slice2 = strdup(svc_web);
    char *p = strstr(slice2, "[127.0.0.2]");
    cr_assert_not_null(p);
    p[9] = '3';
    cr_assert(asprintf(&text, PC "%s%s", slice2, ing) > 0);
    struct snap *s2 = load_same_path(tpath, text, s1, &errs);
    cr_assert_not_null(s2);
    cr_assert_eq(errs.nerrors, 0);
    free(text);

    /* the Service now has port 81 only: the unchanged Ingress is broken */
    char *svc81 = strdup(slice2);
    p = strstr(svc81, "port: 80,");
    cr_assert_not_null(p);
    p[7] = '1';
    cr_assert(asprintf(&text, PC "%s%s", svc81, ing) > 0);
    struct snap *s3 = load_same_path(tpath, text, s2, &errs);
    cr_assert_not_null(s3);
    cr_assert_eq(errs.nerrors, 1);
    cr_assert_not_null(strstr(errs.v[errs.n - 1].msg, "has no port 80"), "%s", errs.v[errs.n - 1].msg);
    cr_assert_eq(s3->nquarantine, 1);
    snap_release(s1);
    snap_release(s2);
    snap_release(s3);
    free(text), free(ing), free(slice2), free(svc81);
    unlink(tpath);
    cfg_errs_free(&errs);
}
