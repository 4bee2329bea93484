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
