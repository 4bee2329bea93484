/* SPDX-License-Identifier: Apache-2.0 */
/*
 * k8s_netpol: networking.k8s.io/v1 NetworkPolicy. Only what decides whether
 * an outside client may reach a pod through ingressd is kept: podSelector
 * matchLabels, policyTypes, ingress rules with ipBlock peers and ports. Peers
 * selecting pods or namespaces never match an outside client, so they are
 * recorded only as "present". CIDRs are checked here with inet_pton; np.c
 * compiles them per backend. Loader thread.
 */
#include <stdio.h>
#include <string.h>

#include "ingressd/arena.h"
#include "k8s-int.h"

#define NP(m) offsetof(struct k8s_netpol, m)

static const struct k8s_field str_elem = { .name = "-", .type = KF_STR };

static const struct k8s_field ipblock_fields[] = {
    { .name = "cidr", .type = KF_STR, .off = offsetof(struct k8s_np_ipblock, cidr),
      .required = true },
    { .name = "except", .type = KF_SEQ, .off = offsetof(struct k8s_np_ipblock, except.v),
      .sub = &str_elem, .elem_size = sizeof(char *),
      .cnt_off = offsetof(struct k8s_np_ipblock, except.n) },
    { NULL },
};

static const struct k8s_field peer_fields[] = {
    { .name = "ipBlock", .type = KF_MAP, .off = offsetof(struct k8s_np_peer, ipblock),
      .sub = ipblock_fields, .set_off = K8S_OFF1(struct k8s_np_peer, has_ipblock),
      .pos_off = K8S_OFF1(struct k8s_np_peer, ipblock.pos) },
    { .name = "podSelector", .type = KF_IGNORE,
      .set_off = K8S_OFF1(struct k8s_np_peer, has_pod_selector) },
    { .name = "namespaceSelector", .type = KF_IGNORE,
      .set_off = K8S_OFF1(struct k8s_np_peer, has_ns_selector) },
    { NULL },
};

static const struct k8s_field peer_elem = { .name = "-", .type = KF_MAP, .sub = peer_fields };

static const char *const protocols[] = { "TCP", "UDP", "SCTP", NULL };

static const struct k8s_field port_fields[] = {
    { .name = "protocol", .type = KF_STR, .off = offsetof(struct k8s_np_port, protocol) },
    { .name = "port", .type = KF_INTSTR, .off = offsetof(struct k8s_np_port, port) },
    { .name = "endPort", .type = KF_U32, .off = offsetof(struct k8s_np_port, end_port), .min = 1,
      .max = 65535 },
    { NULL },
};

static const struct k8s_field port_elem = { .name = "-", .type = KF_MAP, .sub = port_fields,
                                            .pos_off = K8S_OFF1(struct k8s_np_port, pos) };

static const struct k8s_field rule_fields[] = {
    { .name = "from", .type = KF_SEQ, .off = offsetof(struct k8s_np_rule, from), .sub = &peer_elem,
      .elem_size = sizeof(struct k8s_np_peer), .cnt_off = offsetof(struct k8s_np_rule, nfrom) },
    { .name = "ports", .type = KF_SEQ, .off = offsetof(struct k8s_np_rule, ports),
      .sub = &port_elem, .elem_size = sizeof(struct k8s_np_port),
      .cnt_off = offsetof(struct k8s_np_rule, nports) },
    { NULL },
};

static const struct k8s_field rule_elem = { .name = "-", .type = KF_MAP, .sub = rule_fields };

static const struct k8s_field selector_fields[] = {
    { .name = "matchLabels", .type = KF_KVS, .off = NP(pod_selector) },
    { .name = "matchExpressions", .type = KF_IGNORE, .set_off = NP(has_match_expressions) + 1 },
    { NULL },
};

static const struct k8s_field spec_fields[] = {
    { .name = "podSelector", .type = KF_MAP, .sub = selector_fields, .required = true },
    { .name = "policyTypes", .type = KF_SEQ, .off = NP(policy_types.v), .sub = &str_elem,
      .elem_size = sizeof(char *), .cnt_off = NP(policy_types.n) },
    { .name = "ingress", .type = KF_SEQ, .off = NP(ingress), .sub = &rule_elem,
      .elem_size = sizeof(struct k8s_np_rule), .cnt_off = NP(ningress),
      .set_off = NP(has_ingress_field) + 1 },
    { .name = "egress", .type = KF_IGNORE, .set_off = NP(has_egress_field) + 1 },
    { NULL },
};

static const struct k8s_field top_fields[] = {
    { .name = "spec", .type = KF_MAP, .sub = spec_fields, .required = true },
    { NULL },
};

static void check_cidr(struct k8s_dctx *c, struct k8s_pos pos, const char *what, const char *s,
                       int *fam_out, unsigned char addr_out[16], unsigned *pfx_out)
{
    unsigned char a[16];
    int fam;
    unsigned pfx;
    if (!k8s_parse_cidr(s, a, &fam, &pfx)) {
        k8s__err_at(c, pos, "%s: invalid CIDR \"%s\"", what, s);
        *fam_out = 0;
        return;
    }
    *fam_out = fam;
    memcpy(addr_out, a, 16);
    *pfx_out = pfx;
}

static bool in_prefix(const unsigned char *net, unsigned pfx, const unsigned char *a)
{
    unsigned full = pfx / 8, rem = pfx % 8;
    if (memcmp(net, a, full))
        return false;
    return !rem || ((net[full] ^ a[full]) & (0xff00u >> rem) & 0xff) == 0;
}

static void np_check(struct k8s_dctx *c, const struct ydoc_node *n)
{
    struct k8s_netpol *np = &c->o->u.np;
    char what[160];
    (void)n;
    if (np->has_match_expressions)
        k8s_obj_warn(c->o, c->errs, c->o->pos,
                     "spec.podSelector.matchExpressions: not supported, only matchLabels select pods");
    for (uint32_t i = 0; i < np->policy_types.n; i++)
        if (strcmp(np->policy_types.v[i], "Ingress") && strcmp(np->policy_types.v[i], "Egress"))
            k8s_obj_error(c->o, c->errs, c->o->pos,
                          "spec.policyTypes[%u]: unknown value \"%s\" (want Ingress or Egress)", i,
                          np->policy_types.v[i]);
    for (uint32_t r = 0; r < np->ningress; r++) {
        struct k8s_np_rule *rule = &np->ingress[r];
        for (uint32_t f = 0; f < rule->nfrom; f++) {
            struct k8s_np_peer *p = &rule->from[f];
            if (!p->has_ipblock)
                continue;
            if (p->has_pod_selector || p->has_ns_selector)
                k8s__err_at(c, p->ipblock.pos,
                            "spec.ingress[%u].from[%u]: ipBlock cannot be combined with a selector",
                            r, f);
            if (!p->ipblock.cidr)
                continue;
            int fam = 0, efam = 0;
            unsigned char net[16], ex[16];
            unsigned pfx = 0, epfx = 0;
            snprintf(what, sizeof(what), "spec.ingress[%u].from[%u].ipBlock.cidr", r, f);
            check_cidr(c, p->ipblock.pos, what, p->ipblock.cidr, &fam, net, &pfx);
            for (uint32_t e = 0; e < p->ipblock.except.n; e++) {
                snprintf(what, sizeof(what), "spec.ingress[%u].from[%u].ipBlock.except[%u]", r, f, e);
                check_cidr(c, p->ipblock.pos, what, p->ipblock.except.v[e], &efam, ex, &epfx);
                if (fam && efam && (efam != fam || epfx < pfx || !in_prefix(net, pfx, ex)))
                    k8s__err_at(c, p->ipblock.pos, "%s: \"%s\" is not inside cidr \"%s\"", what,
                                p->ipblock.except.v[e], p->ipblock.cidr);
            }
        }
        for (uint32_t k = 0; k < rule->nports; k++) {
            struct k8s_np_port *pp = &rule->ports[k];
            if (!pp->protocol)
                pp->protocol = "TCP";
            bool ok = false;
            for (int i = 0; protocols[i]; i++)
                ok |= !strcmp(protocols[i], pp->protocol);
            if (!ok)
                k8s__err_at(c, pp->pos, "spec.ingress[%u].ports[%u].protocol: unknown value \"%s\" (want TCP, UDP or SCTP)",
                            r, k, pp->protocol);
            if (pp->end_port && (!pp->port.set || !pp->port.is_num))
                k8s__err_at(c, pp->pos, "spec.ingress[%u].ports[%u].endPort: needs a numeric port", r, k);
            else if (pp->end_port && pp->end_port < pp->port.num)
                k8s__err_at(c, pp->pos, "spec.ingress[%u].ports[%u].endPort: %u is below port %u",
                            r, k, pp->end_port, pp->port.num);
        }
    }
}

static const char *const versions[] = { "networking.k8s.io/v1", NULL };

const struct k8s_kind_def k8s__netpol_def = {
    .kind = K8S_NETPOL, .name = "NetworkPolicy", .api_versions = versions, .top = top_fields,
    .check = np_check,
};
