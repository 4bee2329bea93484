/* SPDX-License-Identifier: Apache-2.0 */
/* np: NetworkPolicy selection and admission, IPv4 and IPv6. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

#include "ingressd/arena.h"
#include "ingressd/cfg.h"
#include "ingressd/k8s.h"
#include "ingressd/np.h"
#include "ingressd/snap-t.h"
#include "ingressd/ydoc.h"

TestSuite(np);

static const char *const svc_yaml =
    "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
    "spec:\n  selector: {app: web, tier: front}\n  ports: [{name: http, port: 80, targetPort: web}]\n";

struct fixture {
    struct k8s_objs objs;
    struct arena *a;
    struct np_table *t;
    struct snap_backend be;
};

/* decodes svc_yaml + policies; backend 0 is the Service, pod port 8080 named "web" */
static void setup(struct fixture *f, const char *policies)
{
    struct cfg_errs errs;
    char *text = NULL;
    cfg_errs_init(&errs);
    cr_assert(asprintf(&text, "%s%s", svc_yaml, policies) > 0);
    struct ydoc *d = ydoc_parse("np.yaml", text, strlen(text), &errs);
    cr_assert_not_null(d);
    memset(f, 0, sizeof(*f));
    k8s_decode_stream(d, &f->objs, &errs);
    cr_assert_eq(errs.nerrors, 0, "%s", errs.n ? errs.v[0].msg : "");
    struct k8s_obj *pols[8];
    uint32_t n = 0;
    for (uint32_t i = 1; i < f->objs.n; i++)
        pols[n++] = f->objs.v[i];
    struct np_backend_in in = { .svc = f->objs.v[0], .target_name = "web", .target_port = 8080 };
    f->a = arena_new(0);
    f->t = np_build(f->a, pols, n, &in, 1);
    f->be.id = 0;
    ydoc_free(d);
    free(text);
    cfg_errs_free(&errs);
}

static void teardown(struct fixture *f)
{
    arena_free(f->a);
    k8s_objs_free(&f->objs);
}

static bool allow4(struct fixture *f, const char *ip, uint16_t port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    cr_assert(inet_pton(AF_INET, ip, &sa.sin_addr) == 1);
    return np_allow(f->t, &f->be, (struct sockaddr *)&sa, port);
}

static bool allow6(struct fixture *f, const char *ip, uint16_t port)
{
    struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
    cr_assert(inet_pton(AF_INET6, ip, &sa.sin6_addr) == 1);
    return np_allow(f->t, &f->be, (struct sockaddr *)&sa, port);
}

#define NP_HEAD "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"

Test(np, no_policy_allows_everyone)
{
    struct fixture f;
    setup(&f, "");
    cr_assert_null(f.t);
    cr_assert(allow4(&f, "192.0.2.1", 8080));
    teardown(&f);
}

Test(np, selection_by_labels_namespace_and_policy_types)
{
    struct fixture f;
    /* other namespace, other labels, egress-only: none selects, so all are allowed */
    setup(&f, NP_HEAD "metadata: {name: a, namespace: other}\nspec: {podSelector: {}, ingress: []}\n"
              NP_HEAD "metadata: {name: b, namespace: shop}\nspec: {podSelector: {matchLabels: {app: db}}}\n"
              NP_HEAD "metadata: {name: c, namespace: shop}\nspec: {podSelector: {}, policyTypes: [Egress]}\n");
    cr_assert_null(f.t);
    cr_assert(allow4(&f, "192.0.2.1", 8080));
    teardown(&f);

    /* empty podSelector selects every pod of the namespace; no rules = deny all */
    setup(&f, NP_HEAD "metadata: {name: deny, namespace: shop}\nspec: {podSelector: {}}\n");
    cr_assert_not_null(f.t);
    cr_assert_not(allow4(&f, "192.0.2.1", 8080));
    cr_assert_not(allow6(&f, "2001:db8::1", 8080));
    teardown(&f);

    /* a subset of the Service's selector selects its pods */
    setup(&f, NP_HEAD "metadata: {name: s, namespace: shop}\n"
              "spec: {podSelector: {matchLabels: {tier: front}}, ingress: [{}]}\n");
    cr_assert(allow4(&f, "192.0.2.1", 1234), "an empty rule admits everything");
    teardown(&f);
}

Test(np, rules_combine_peers_and_ports)
{
    struct fixture f;
    setup(&f, NP_HEAD "metadata: {name: p, namespace: shop}\n"
              "spec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n"
              "  - from: [{ipBlock: {cidr: 192.0.2.0/24, except: [192.0.2.128/25]}}]\n"
              "    ports: [{port: 9000, endPort: 9010}, {protocol: UDP, port: 8080}]\n"
              "  - from: [{ipBlock: {cidr: \"2001:db8::/48\"}}, {podSelector: {}}]\n"
              "    ports: [{port: web}]\n"
              "  - from: [{namespaceSelector: {}}]\n");
    cr_assert(allow4(&f, "192.0.2.5", 9005));
    cr_assert(allow4(&f, "192.0.2.5", 9010));
    cr_assert_not(allow4(&f, "192.0.2.5", 9011));
    cr_assert_not(allow4(&f, "192.0.2.200", 9005), "except");
    cr_assert_not(allow4(&f, "192.0.2.5", 8080), "UDP rules do not admit HTTP");
    cr_assert(allow6(&f, "2001:db8:0:1::1", 8080), "named port resolves to 8080");
    cr_assert_not(allow6(&f, "2001:db8:1::1", 8080));
    cr_assert(allow6(&f, "::ffff:192.0.2.5", 9000), "IPv4-mapped");
    cr_assert_not(allow4(&f, "10.0.0.1", 8080), "selector peers never match outside clients");
    teardown(&f);
}
