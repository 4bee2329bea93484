/* SPDX-License-Identifier: Apache-2.0 */
/* k8s: field-table decoding, defaults, error collection, List unwrapping. */
#include <criterion/criterion.h>
#include <string.h>

#include "ingressd/arena.h"
#include "ingressd/cfg.h"
#include "ingressd/k8s.h"
#include "ingressd/ydoc.h"

TestSuite(k8s);

static void decode(const char *text, struct k8s_objs *out, struct cfg_errs *errs)
{
    struct ydoc *d = ydoc_parse("t.yaml", text, strlen(text), errs);
    cr_assert_not_null(d);
    k8s_decode_stream(d, out, errs);
    ydoc_free(d);
}

static bool has_msg(const struct cfg_errs *e, const char *needle, unsigned line)
{
    for (size_t i = 0; i < e->n; i++)
        if (strstr(e->v[i].msg, needle) && (!line || e->v[i].line == line))
            return true;
    return false;
}

Test(k8s, proxyconfig_defaults_apply)
{
    struct k8s_objs objs = { 0 };
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    decode("apiVersion: ingressd/v1\nkind: ProxyConfig\nspec:\n  listen:\n  - address: 127.0.0.1:1\n"
           "  timeouts: {upstreamConnect: 250ms}\n  limits: {maxBodySize: 8k}\n",
           &objs, &errs);
    cr_assert_eq(errs.n, 0);
    cr_assert_eq(objs.n, 1);
    const struct snap_settings *s = &objs.v[0]->u.pc.s;
    cr_assert_eq(s->drain_timeout_ms, 30000);
    cr_assert_eq(s->timeouts.client_header, 10000);
    cr_assert_eq(s->timeouts.upstream_connect, 250);
    cr_assert_eq(s->timeouts.tunnel_idle, 3600000);
    cr_assert_eq(s->max_body_size, 8192);
    cr_assert_eq(s->max_header_size, 32768);
    cr_assert_eq(s->retries, 2);
    cr_assert_eq(s->retry_budget_pct, 20);
    cr_assert_eq(s->upstream_keepalive, 320);
    cr_assert_eq(s->health.healthy_threshold, 2);
    cr_assert_eq(s->health.unhealthy_threshold, 3);
    cr_assert_eq(s->health.status_min, 200);
    cr_assert_eq(s->health.status_max, 399);
    cr_assert_eq(s->outlier.consecutive_failures, 5);
    cr_assert_eq(s->outlier.max_ejection_pct, 50);
    cr_assert_eq(s->tls.ticket_rotate_ms, 3600000);
    cr_assert(s->workers >= 1);
    cr_assert_null(s->admin);
    k8s_objs_free(&objs);
    cfg_errs_free(&errs);
}

Test(k8s, errors_are_collected_not_stopped_at_first)
{
    struct k8s_objs objs = { 0 };
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    decode("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a, namespace: x}\n"
           "spec:\n  rules:\n  - host: 1.2.3.4\n    http:\n      paths:\n"
           "      - path: /a\n        pathType: Nope\n        backend: {service: {name: s, port: {number: 0}}}\n"
           "      - path: /b\n        backend: {service: {name: s, port: {}}}\n"
           "  extra: 1\n",
           &objs, &errs);
    cr_assert_eq(objs.n, 1);
    struct k8s_obj *o = objs.v[0];
    cr_assert_str_eq(o->id, "Ingress x/a");
    cr_assert(o->nerrors >= 4, "got %u", o->nerrors);
    cr_assert(has_msg(&errs, "spec.rules[0].host: \"1.2.3.4\" must be a DNS name", 6));
    cr_assert(has_msg(&errs, "spec.rules[0].http.paths[0].pathType: unknown value \"Nope\"", 10));
    cr_assert(has_msg(&errs, "paths[0].backend.service.port.number: 0 is out of range", 11));
    cr_assert(has_msg(&errs, "paths[1].pathType: required field is missing", 0));
    cr_assert(has_msg(&errs, "paths[1].backend.service.port: one of number or name is required", 0));
    cr_assert(has_msg(&errs, "spec.extra: unknown field", 14));
    cr_assert_eq(errs.nwarnings, 1);
    k8s_objs_free(&objs);
    cfg_errs_free(&errs);
}

Test(k8s, list_items_are_unwrapped_and_namespace_defaults)
{
    struct k8s_objs objs = { 0 };
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    decode("apiVersion: v1\nkind: List\nitems:\n"
           "- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n  spec: {ports: [{port: 80}]}\n"
           "- apiVersion: v1\n  kind: Service\n  metadata: {name: b, namespace: prod}\n  spec: {ports: [{port: 81, targetPort: http}]}\n",
           &objs, &errs);
    cr_assert_eq(errs.n, 0);
    cr_assert_eq(objs.n, 2);
    cr_assert_str_eq(objs.v[0]->key, "default/a");
    cr_assert_str_eq(objs.v[1]->key, "prod/b");
    cr_assert_eq(objs.v[1]->pos.line, 8);
    const struct k8s_svc_port *p = &objs.v[0]->u.svc.ports[0];
    cr_assert(p->target.is_num && p->target.num == 80, "targetPort defaults to port");
    cr_assert_str_eq(p->name, "");
    const struct k8s_svc_port *q = &objs.v[1]->u.svc.ports[0];
    cr_assert(!q->target.is_num);
    cr_assert_str_eq(q->target.str, "http");
    k8s_objs_free(&objs);
    cfg_errs_free(&errs);
}

Test(k8s, endpointslice_conditions_default_to_ready)
{
    struct k8s_objs objs = { 0 };
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    decode("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
           "metadata: {name: s, labels: {kubernetes.io/service-name: web}}\naddressType: IPv4\n"
           "ports: [{port: 80}]\nendpoints:\n- addresses: [10.0.0.1, 10.0.0.2]\n"
           "- addresses: [10.0.0.3]\n  conditions: {ready: false}\n"
           "- addresses: [10.0.0.4]\n  conditions: {terminating: true}\n",
           &objs, &errs);
    cr_assert_eq(errs.n, 0);
    const struct k8s_endpointslice *e = &objs.v[0]->u.eps;
    cr_assert_str_eq(e->service, "web");
    cr_assert_eq(e->naddrs, 4);
    cr_assert(e->addrs[0].ready && e->addrs[1].ready);
    cr_assert(!e->addrs[2].ready);
    cr_assert(e->addrs[3].ready && e->addrs[3].terminating);
    cr_assert_str_eq(e->ports[0].name, "");
    k8s_objs_free(&objs);
    cfg_errs_free(&errs);
}

Test(k8s, unsupported_kinds_are_warned_and_skipped)
{
    struct k8s_objs objs = { 0 };
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    decode("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", &objs, &errs);
    cr_assert_eq(objs.n, 0);
    cr_assert_eq(errs.nerrors, 0);
    cr_assert_eq(errs.nwarnings, 1);
    cr_assert_str_eq(errs.v[0].obj, "ConfigMap default/c");
    cfg_errs_free(&errs);
}

Test(k8s, base64_padding_is_taken_off)
{
    struct arena *a = arena_new(0);
    const unsigned char *out;
    size_t n;
    cr_assert(k8s_base64_decode(a, "aGVsbG8=", 8, &out, &n));
    cr_assert_eq(n, 5);
    cr_assert(!memcmp(out, "hello", 5));
    cr_assert(k8s_base64_decode(a, "aGk=", 4, &out, &n) && n == 2);
    cr_assert(k8s_base64_decode(a, "aGVs\nbG8h", 9, &out, &n) && n == 6);
    cr_assert(k8s_base64_decode(a, "", 0, &out, &n) && n == 0);
    cr_assert_not(k8s_base64_decode(a, "aGV", 3, &out, &n));
    cr_assert_not(k8s_base64_decode(a, "a*Vs", 4, &out, &n));
    arena_free(a);
}

Test(k8s, annotations_become_policy)
{
    struct k8s_objs objs = { 0 };
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    decode("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  annotations:\n"
           "    ingressd/load-balance: least_conn\n    ingressd/health-check-path: /hz\n"
           "    ingressd/health-check-interval: \"2\"\n    ingressd/retry-on: error,http_503\n"
           "    ingressd/retries: \"4\"\n    ingressd/backend-protocol: HTTPS\n"
           "    ingressd/typo: x\n"
           "spec: {ports: [{port: 80}], sessionAffinity: ClientIP}\n",
           &objs, &errs);
    cr_assert_eq(errs.nerrors, 0);
    cr_assert_eq(errs.nwarnings, 1);
    const struct k8s_service *s = &objs.v[0]->u.svc;
    cr_assert_eq(s->policy.algo, LB_LEAST_CONN);
    cr_assert_str_eq(s->policy.hc.path, "/hz");
    cr_assert_eq(s->policy.hc.interval_ms, 2000);
    cr_assert_eq(s->policy.retry_on, RETRY_ON_ERROR | RETRY_ON_503);
    cr_assert_eq(s->policy.retries, 4);
    cr_assert_eq(s->policy.upstream_tls, 1);
    cr_assert_eq(s->session_affinity, 1);
    cr_assert_eq(s->affinity_timeout_s, 10800);
    k8s_objs_free(&objs);
    cfg_errs_free(&errs);
}
