/* SPDX-License-Identifier: Apache-2.0 */
/*
 * k8s_service: v1 Service field table and checks (unique port names and
 * numbers, ExternalName needs spec.externalName, named targetPorts are
 * IANA_SVC_NAME-ish), plus the Service's balancing annotations (k8s_annot.c).
 * Loader thread.
 */
#include <string.h>

#include "ingressd/arena.h"
#include "k8s-int.h"

#define SVC(m) offsetof(struct k8s_service, m)
#define SP(m) offsetof(struct k8s_svc_port, m)

static const char *const protocols[] = { "TCP", "UDP", "SCTP", NULL };
static const char *const svc_types[] = { "ClusterIP", "NodePort", "LoadBalancer", "ExternalName",
                                         NULL };
static const char *const affinities[] = { "None", "ClientIP", NULL };

static const struct k8s_field port_fields[] = {
    { .name = "name", .type = KF_STR, .off = SP(name) },
    { .name = "port", .type = KF_U32, .off = SP(port), .required = true, .min = 1, .max = 65535 },
    { .name = "targetPort", .type = KF_INTSTR, .off = SP(target) },
    { .name = "nodePort", .type = KF_U32, .off = SP(node_port), .min = 1, .max = 65535 },
    { .name = "protocol", .type = KF_STR, .off = SP(protocol) },
    { .name = "appProtocol", .type = KF_IGNORE },
    { NULL },
};

static const struct k8s_field port_elem = { .name = "-", .type = KF_MAP, .sub = port_fields,
                                            .pos_off = K8S_OFF1(struct k8s_svc_port, pos) };

static const struct k8s_field client_ip_fields[] = {
    { .name = "timeoutSeconds", .type = KF_U32, .off = SVC(affinity_timeout_s), .min = 1,
      .max = 86400 },
    { NULL },
};

static const struct k8s_field affinity_cfg_fields[] = {
    { .name = "clientIP", .type = KF_MAP, .sub = client_ip_fields },
    { NULL },
};

static const struct k8s_field spec_fields[] = {
    { .name = "type", .type = KF_ENUM, .off = SVC(type), .enums = svc_types },
    { .name = "externalName", .type = KF_STR, .off = SVC(external_name) },
    { .name = "selector", .type = KF_KVS, .off = SVC(selector), .set_off = SVC(has_selector) + 1 },
    { .name = "sessionAffinity", .type = KF_ENUM, .off = SVC(session_affinity),
      .enums = affinities },
    { .name = "sessionAffinityConfig", .type = KF_MAP, .sub = affinity_cfg_fields },
    { .name = "ports", .type = KF_SEQ, .off = SVC(ports), .sub = &port_elem,
      .elem_size = sizeof(struct k8s_svc_port), .cnt_off = SVC(nports) },
    { .name = "clusterIP", .type = KF_IGNORE },
    { .name = "clusterIPs", .type = KF_IGNORE },
    { .name = "ipFamilies", .type = KF_IGNORE },
    { .name = "ipFamilyPolicy", .type = KF_IGNORE },
    { .name = "externalIPs", .type = KF_IGNORE },
    { .name = "externalTrafficPolicy", .type = KF_IGNORE },
    { .name = "internalTrafficPolicy", .type = KF_IGNORE },
    { .name = "healthCheckNodePort", .type = KF_IGNORE },
    { .name = "loadBalancerIP", .type = KF_IGNORE },
    { .name = "loadBalancerClass", .type = KF_IGNORE },
    { .name = "loadBalancerSourceRanges", .type = KF_IGNORE },
    { .name = "allocateLoadBalancerNodePorts", .type = KF_IGNORE },
    { .name = "publishNotReadyAddresses", .type = KF_IGNORE },
    { .name = "trafficDistribution", .type = KF_IGNORE },
    { NULL },
};

static const struct k8s_field top_fields[] = {
    { .name = "spec", .type = KF_MAP, .sub = spec_fields, .required = true },
    { .name = "status", .type = KF_IGNORE },
    { NULL },
};

static void svc_init(struct k8s_obj *o)
{
    k8s_policy_init(&o->u.svc.policy);
    o->u.svc.affinity_timeout_s = 10800;
}

static void svc_check(struct k8s_dctx *c, const struct ydoc_node *n)
{
    struct k8s_service *s = &c->o->u.svc;
    (void)n;
    k8s__policy_parse(c, &s->policy, NULL);
    if (s->type == K8S_SVC_EXTERNALNAME && !s->external_name)
        k8s_obj_error(c->o, c->errs, c->o->pos,
                      "spec.externalName: required when spec.type is ExternalName");
    for (uint32_t i = 0; i < s->nports; i++) {
        struct k8s_svc_port *p = &s->ports[i];
        if (!p->name)
            p->name = "";
        if (!p->protocol)
            p->protocol = "TCP";
        else {
            bool ok = false;
            for (int k = 0; protocols[k]; k++)
                ok |= !strcmp(protocols[k], p->protocol);
            if (!ok)
                k8s__err_at(c, p->pos, "spec.ports[%u].protocol: unknown value \"%s\" (want TCP, UDP or SCTP)",
                            i, p->protocol);
        }
        if (!p->target.set) {
            p->target = (struct k8s_intstr){ .set = true, .is_num = true, .num = p->port };
        } else if (!p->target.is_num && p->target.str &&
                   (!*p->target.str || strlen(p->target.str) > 15 ||
                    strspn(p->target.str, "abcdefghijklmnopqrstuvwxyz0123456789-") !=
                        strlen(p->target.str))) {
            k8s__err_at(c, p->pos, "spec.ports[%u].targetPort: \"%s\" is not a valid port name",
                        i, p->target.str);
        }
        if (s->nports > 1 && !*p->name)
            k8s__err_at(c, p->pos, "spec.ports[%u].name: required when the Service has several ports",
                        i);
        for (uint32_t j = 0; j < i; j++) {
            if (*p->name && !strcmp(p->name, s->ports[j].name))
                k8s__err_at(c, p->pos, "spec.ports[%u].name: \"%s\" is already used by spec.ports[%u]",
                            i, p->name, j);
            if (p->port && p->port == s->ports[j].port && !strcmp(p->protocol, s->ports[j].protocol))
                k8s__err_at(c, p->pos, "spec.ports[%u].port: %u is already used by spec.ports[%u]",
                            i, p->port, j);
        }
    }
}

static const char *const v1[] = { "v1", NULL };

const struct k8s_kind_def k8s__service_def = {
    .kind = K8S_SERVICE, .name = "Service", .api_versions = v1, .top = top_fields,
    .init = svc_init, .check = svc_check,
};
