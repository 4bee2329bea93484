/* SPDX-License-Identifier: Apache-2.0 */
/*
 * k8s_endpoints: discovery.k8s.io/v1 EndpointSlice and v1 Endpoints, both
 * decoded into struct k8s_endpointslice (flat address list + named ports),
 * so resolution in snap.c has one shape to read.
 *
 * Readiness follows the EndpointSlice API: conditions.ready absent means
 * ready ("unknown state should be interpreted as ready"); terminating absent
 * means not terminating. v1 Endpoints: addresses are ready,
 * notReadyAddresses are not. Loader thread.
 */
#include <arpa/inet.h>
#include <string.h>

#include "ingressd/arena.h"
#include "k8s-int.h"

#define EPS(m) offsetof(struct k8s_endpointslice, m)

struct eps_raw {                       /* endpoints[] as written */
    struct k8s_strs addresses;
    bool ready, ready_set, terminating;
    struct k8s_pos pos;
};

static const struct k8s_field str_elem = { .name = "-", .type = KF_STR };

static const struct k8s_field cond_fields[] = {
    { .name = "ready", .type = KF_BOOL, .off = offsetof(struct eps_raw, ready),
      .set_off = K8S_OFF1(struct eps_raw, ready_set) },
    { .name = "serving", .type = KF_IGNORE },
    { .name = "terminating", .type = KF_BOOL, .off = offsetof(struct eps_raw, terminating) },
    { NULL },
};

static const struct k8s_field raw_fields[] = {
    { .name = "addresses", .type = KF_SEQ, .off = offsetof(struct eps_raw, addresses.v),
      .required = true, .sub = &str_elem, .elem_size = sizeof(char *),
      .cnt_off = offsetof(struct eps_raw, addresses.n) },
    { .name = "conditions", .type = KF_MAP, .sub = cond_fields },
    { .name = "hostname", .type = KF_IGNORE },
    { .name = "nodeName", .type = KF_IGNORE },
    { .name = "zone", .type = KF_IGNORE },
    { .name = "targetRef", .type = KF_IGNORE },
    { .name = "hints", .type = KF_IGNORE },
    { .name = "deprecatedTopology", .type = KF_IGNORE },
    { NULL },
};

static const struct k8s_field raw_elem = { .name = "-", .type = KF_MAP, .sub = raw_fields,
                                           .pos_off = K8S_OFF1(struct eps_raw, pos) };

static const struct k8s_field port_fields[] = {
    { .name = "name", .type = KF_STR, .off = offsetof(struct k8s_ep_port, name) },
    { .name = "port", .type = KF_U32, .off = offsetof(struct k8s_ep_port, port), .min = 1,
      .max = 65535 },
    { .name = "protocol", .type = KF_STR, .off = offsetof(struct k8s_ep_port, protocol) },
    { .name = "appProtocol", .type = KF_IGNORE },
    { NULL },
};

static const struct k8s_field port_elem = { .name = "-", .type = KF_MAP, .sub = port_fields };

static const char *const addr_types[] = { "IPv4", "IPv6", "FQDN", NULL };

static const struct k8s_field slice_top[] = {
    { .name = "addressType", .type = KF_ENUM, .off = EPS(address_type), .enums = addr_types,
      .required = true },
    { .name = "endpoints", .type = KF_SEQ, .off = EPS(raw), .sub = &raw_elem,
      .elem_size = sizeof(struct eps_raw), .cnt_off = EPS(nraw) },
    { .name = "ports", .type = KF_SEQ, .off = EPS(ports), .sub = &port_elem,
      .elem_size = sizeof(struct k8s_ep_port), .cnt_off = EPS(nports) },
    { NULL },
};

static void fix_ports(struct k8s_ep_port *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!p[i].name)
            p[i].name = "";
        if (!p[i].protocol)
            p[i].protocol = "TCP";
    }
}

static void slice_check(struct k8s_dctx *c, const struct ydoc_node *n)
{
    struct k8s_endpointslice *e = &c->o->u.eps;
    struct eps_raw *raw = e->raw;
    (void)n;
    e->service = k8s_kv_get(&c->o->meta.labels, "kubernetes.io/service-name");
    if (!e->service)
        k8s_obj_error(c->o, c->errs, c->o->pos,
                      "metadata.labels: label kubernetes.io/service-name is required");
    fix_ports(e->ports, e->nports);
    uint32_t total = 0;
    for (uint32_t i = 0; i < e->nraw; i++)
        total += raw[i].addresses.n;
    e->addrs = total ? arena_calloc(c->a, total, sizeof(*e->addrs)) : NULL;
    for (uint32_t i = 0; i < e->nraw; i++) {
        for (uint32_t j = 0; j < raw[i].addresses.n; j++) {
            const char *ip = raw[i].addresses.v[j];
            unsigned char b[16];
            int fam = e->address_type == 1 ? AF_INET6 : AF_INET;
            if (e->address_type == 2) {
                k8s_obj_warn(c->o, c->errs, raw[i].pos,
                             "endpoints[%u].addresses[%u]: FQDN endpoints are not supported, skipped",
                             i, j);
                continue;
            }
            if (inet_pton(fam, ip, b) != 1) {
                k8s__err_at(c, raw[i].pos, "endpoints[%u].addresses[%u]: invalid %s address \"%s\"",
                            i, j, addr_types[e->address_type], ip);
                continue;
            }
            e->addrs[e->naddrs++] = (struct k8s_ep_addr){
                .ip = ip, .ready = raw[i].ready_set ? raw[i].ready : true,
                .terminating = raw[i].terminating, .pos = raw[i].pos };
        }
    }
}

static const char *const discovery_v1[] = { "discovery.k8s.io/v1", NULL };

const struct k8s_kind_def k8s__endpointslice_def = {
    .kind = K8S_ENDPOINTSLICE, .name = "EndpointSlice", .api_versions = discovery_v1,
    .top = slice_top, .check = slice_check,
};

/* ---- v1 Endpoints ---- */

static const struct k8s_field addr_fields[] = {
    { .name = "ip", .type = KF_STR, .off = offsetof(struct k8s_ep_addr, ip), .required = true },
    { .name = "hostname", .type = KF_IGNORE },
    { .name = "nodeName", .type = KF_IGNORE },
    { .name = "targetRef", .type = KF_IGNORE },
    { NULL },
};

static const struct k8s_field addr_elem = { .name = "-", .type = KF_MAP, .sub = addr_fields,
                                            .pos_off = K8S_OFF1(struct k8s_ep_addr, pos) };

#define SUB(m) offsetof(struct k8s_ep_subset, m)

static const struct k8s_field subset_fields[] = {
    { .name = "addresses", .type = KF_SEQ, .off = SUB(addrs), .sub = &addr_elem,
      .elem_size = sizeof(struct k8s_ep_addr), .cnt_off = SUB(naddrs) },
    { .name = "notReadyAddresses", .type = KF_SEQ, .off = SUB(not_ready), .sub = &addr_elem,
      .elem_size = sizeof(struct k8s_ep_addr), .cnt_off = SUB(nnot_ready) },
    { .name = "ports", .type = KF_SEQ, .off = SUB(ports), .sub = &port_elem,
      .elem_size = sizeof(struct k8s_ep_port), .cnt_off = SUB(nports) },
    { NULL },
};

static const struct k8s_field subset_elem = { .name = "-", .type = KF_MAP, .sub = subset_fields };

static const struct k8s_field ep_top[] = {
    { .name = "subsets", .type = KF_SEQ, .off = EPS(subsets), .sub = &subset_elem,
      .elem_size = sizeof(struct k8s_ep_subset), .cnt_off = EPS(nsubsets) },
    { NULL },
};

static void ep_check(struct k8s_dctx *c, const struct ydoc_node *n)
{
    struct k8s_endpointslice *e = &c->o->u.eps;
    (void)n;
    e->service = c->o->meta.name;
    for (uint32_t s = 0; s < e->nsubsets; s++) {
        struct k8s_ep_subset *ss = &e->subsets[s];
        fix_ports(ss->ports, ss->nports);
        for (uint32_t i = 0; i < ss->naddrs + ss->nnot_ready; i++) {
            bool ready = i < ss->naddrs;
            struct k8s_ep_addr *a = ready ? &ss->addrs[i] : &ss->not_ready[i - ss->naddrs];
            a->ready = ready;
            if (a->ip && !k8s__is_ip(a->ip))
                k8s__err_at(c, a->pos, "subsets[%u].%s[%u].ip: invalid address \"%s\"", s,
                            ready ? "addresses" : "notReadyAddresses",
                            ready ? i : i - ss->naddrs, a->ip);
            if (a->ip && !k8s__is_ip(a->ip))
                a->ip = NULL;
        }
    }
}

static const char *const v1[] = { "v1", NULL };

const struct k8s_kind_def k8s__endpoints_def = {
    .kind = K8S_ENDPOINTS, .name = "Endpoints", .api_versions = v1, .top = ep_top,
    .check = ep_check,
};
