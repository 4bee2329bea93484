/* SPDX-License-Identifier: Apache-2.0 */
/*
 * k8s_proxycfg: the ingressd/v1 ProxyConfig document, decoded straight into
 * struct snap_settings with every default applied first (nginx create_conf +
 * merge_conf in one step: defaults, then whatever the file says).
 *
 * Only spec.listen is required. Every field, its type and its default:
 *
 *   spec.listen[]                  list, required   HTTP listeners
 *     .address                     "ip:port"        required; IPv6 as "[::1]:80"
 *     .tls                         bool   false     terminate TLS (SNI from Ingress spec.tls)
 *   spec.admin                     "ip:port"        none = no admin listener
 *   spec.workers                   int 1-256        CPU count (sysconf)
 *   spec.defaultCertificate        "ns/name"        none = self-signed; kubernetes.io/tls Secret
 *   spec.ingressClass              string           none = serve every Ingress
 *   spec.drainTimeout              duration  30s    SIGTERM: wait for in-flight requests
 *   spec.timeouts.clientHeader     duration  10s    whole request head
 *   spec.timeouts.clientIdle       duration  60s    keep-alive idle
 *   spec.timeouts.clientBody       duration  60s    between two body reads
 *   spec.timeouts.upstreamConnect  duration  5s
 *   spec.timeouts.upstreamRead     duration  60s    between two response reads
 *   spec.timeouts.upstreamIdle     duration  60s    pooled upstream connection
 *   spec.timeouts.tunnelIdle       duration  1h     upgraded (WebSocket) connection
 *   spec.limits.maxBodySize        size      0      0 = unlimited; else 413
 *   spec.limits.maxHeaderSize      size      32k    request head; else 431
 *   spec.loadBalance               enum round_robin round_robin|least_conn|ewma|hash
 *   spec.retries                   int 0-10  2      connect-failure retries
 *   spec.retryBudgetPercent        int 0-100 20     of live requests (>= 3 always)
 *   spec.panicThreshold            int 0-100 0      percent healthy below which all serve
 *   spec.upstreamKeepalive         int       320    idle conns per endpoint per worker (ingress-nginx)
 *   spec.healthCheck.path          string           none = TCP connect check
 *   spec.healthCheck.interval      duration  0      0 = no active checks
 *   spec.healthCheck.timeout       duration  1s
 *   spec.healthCheck.healthyThreshold    int 2
 *   spec.healthCheck.unhealthyThreshold  int 3
 *   spec.healthCheck.port          int              none = the endpoint's port
 *   spec.healthCheck.expectedStatus "200-399"       "LO-HI" or one status
 *   spec.outlierDetection.consecutiveFailures int 5 0 = off
 *   spec.outlierDetection.baseEjectionTime  duration 1s
 *   spec.outlierDetection.maxEjectionTime   duration 30s
 *   spec.outlierDetection.maxEjectionPercent int 50
 *   spec.tls.ciphers               string           TLS 1.2 list (OpenSSL syntax)
 *   spec.tls.ciphersuites          string           TLS 1.3 suites
 *   spec.tls.hstsMaxAge            int seconds 0    0 = no Strict-Transport-Security
 *   spec.tls.hstsIncludeSubdomains bool false
 *   spec.tls.sessionTicketRotation duration 1h
 *   spec.accessLog                 path             none = no access log; "-" = stderr
 *   spec.defaultBackend.service    {name, namespace (default "default"), port: {number|name}}
 *                                                   served when no rule matches and no
 *                                                   Ingress has a defaultBackend; else 404
 *
 * Cross-object checks (defaultCertificate names an existing kubernetes.io/tls
 * Secret) happen in snap.c, which sees every object. Loader thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingressd/arena.h"
#include "ingressd/str.h"
#include "ingressd/tls.h"
#include "k8s-int.h"

#define PC(m) offsetof(struct k8s_proxycfg, m)
#define PCS(m) offsetof(struct k8s_proxycfg, s.m)

static const char *const lb_names[] = { "round_robin", "least_conn", "ewma", "hash", NULL };

static const struct k8s_field listen_fields[] = {
    { .name = "address", .type = KF_STR, .off = offsetof(struct k8s_listen, address),
      .required = true, .pos_off = K8S_OFF1(struct k8s_listen, address_pos) },
    { .name = "tls", .type = KF_BOOL, .off = offsetof(struct k8s_listen, tls) },
    { NULL },
};

static const struct k8s_field listen_elem = { .name = "-", .type = KF_MAP, .sub = listen_fields,
                                              .pos_off = K8S_OFF1(struct k8s_listen, pos) };

static const struct k8s_field timeouts_fields[] = {
    { .name = "clientHeader", .type = KF_DURATION, .off = PCS(timeouts.client_header) },
    { .name = "clientIdle", .type = KF_DURATION, .off = PCS(timeouts.client_idle) },
    { .name = "clientBody", .type = KF_DURATION, .off = PCS(timeouts.client_body) },
    { .name = "upstreamConnect", .type = KF_DURATION, .off = PCS(timeouts.upstream_connect) },
    { .name = "upstreamRead", .type = KF_DURATION, .off = PCS(timeouts.upstream_read) },
    { .name = "upstreamIdle", .type = KF_DURATION, .off = PCS(timeouts.upstream_idle) },
    { .name = "tunnelIdle", .type = KF_DURATION, .off = PCS(timeouts.tunnel_idle) },
    { NULL },
};

static const struct k8s_field limits_fields[] = {
    { .name = "maxBodySize", .type = KF_SIZE, .off = PCS(max_body_size) },
    { .name = "maxHeaderSize", .type = KF_SIZE32, .off = PCS(max_header_size) },
    { NULL },
};

static bool set_status_range(struct k8s_dctx *c, const struct ydoc_node *n, void *dst)
{
    struct snap_hc_conf *hc = dst;
    char *end;
    if (n->type != YDOC_SCALAR) {
        k8s__err(c, n, "expected a status range like \"200-399\", got %s", ydoc_type_name(n));
        return false;
    }
    unsigned long lo = strtoul(n->str, &end, 10), hi = lo;
    if (end != n->str && *end == '-')
        hi = strtoul(end + 1, &end, 10);
    if (end == n->str || *end || lo < 100 || hi > 599 || hi < lo) {
        k8s__err(c, n, "invalid status range \"%s\" (want e.g. 200-399)", n->str);
        return false;
    }
    hc->status_min = (uint16_t)lo;
    hc->status_max = (uint16_t)hi;
    return true;
}

static const struct k8s_field hc_fields[] = {
    { .name = "path", .type = KF_STR, .off = PCS(health.path) },
    { .name = "interval", .type = KF_DURATION, .off = PCS(health.interval_ms) },
    { .name = "timeout", .type = KF_DURATION, .off = PCS(health.timeout_ms) },
    { .name = "healthyThreshold", .type = KF_U32, .off = PCS(health.healthy_threshold), .min = 1,
      .max = 100 },
    { .name = "unhealthyThreshold", .type = KF_U32, .off = PCS(health.unhealthy_threshold),
      .min = 1, .max = 100 },
    { .name = "port", .type = KF_U16, .off = PCS(health.port), .min = 1, .max = 65535 },
    { .name = "expectedStatus", .type = KF_FUNC, .off = PCS(health), .fn = set_status_range },
    { NULL },
};

static const struct k8s_field outlier_fields[] = {
    { .name = "consecutiveFailures", .type = KF_U32, .off = PCS(outlier.consecutive_failures),
      .max = 1000 },
    { .name = "baseEjectionTime", .type = KF_DURATION, .off = PCS(outlier.base_ejection_ms) },
    { .name = "maxEjectionTime", .type = KF_DURATION, .off = PCS(outlier.max_ejection_ms) },
    { .name = "maxEjectionPercent", .type = KF_U32, .off = PCS(outlier.max_ejection_pct),
      .max = 100 },
    { NULL },
};

static const struct k8s_field tls_fields[] = {
    { .name = "ciphers", .type = KF_STR, .off = PCS(tls.ciphers) },
    { .name = "ciphersuites", .type = KF_STR, .off = PCS(tls.ciphersuites) },
    { .name = "hstsMaxAge", .type = KF_U32, .off = PCS(tls.hsts_max_age) },
    { .name = "hstsIncludeSubdomains", .type = KF_BOOL, .off = PCS(tls.hsts_include_subdomains) },
    { .name = "sessionTicketRotation", .type = KF_DURATION, .off = PCS(tls.ticket_rotate_ms) },
    { NULL },
};

#define BK(m) offsetof(struct k8s_ing_backend, m)

static const struct k8s_field dport_fields[] = {
    { .name = "number", .type = KF_U32, .off = BK(port_number), .min = 1, .max = 65535 },
    { .name = "name", .type = KF_STR, .off = BK(port_name) },
    { NULL },
};

static const struct k8s_field dsvc_fields[] = {
    { .name = "name", .type = KF_STR, .off = BK(service), .required = true },
    { .name = "namespace", .type = KF_STR, .off = BK(ns) },
    { .name = "port", .type = KF_MAP, .sub = dport_fields, .required = true,
      .pos_off = BK(port_pos) + 1 },
    { NULL },
};

static const struct k8s_field dbackend_fields[] = {
    { .name = "service", .type = KF_MAP, .sub = dsvc_fields, .required = true,
      .pos_off = BK(pos) + 1 },
    { NULL },
};

static const struct k8s_field spec_fields[] = {
    { .name = "listen", .type = KF_SEQ, .off = PC(listen), .required = true, .sub = &listen_elem,
      .elem_size = sizeof(struct k8s_listen), .cnt_off = PC(nlisten),
      .pos_off = PC(listen_pos) + 1 },
    { .name = "admin", .type = KF_STR, .off = PCS(admin), .pos_off = PC(admin_pos) + 1 },
    { .name = "workers", .type = KF_U32, .off = PCS(workers), .min = 1, .max = 256 },
    { .name = "defaultCertificate", .type = KF_STR, .off = PCS(default_certificate),
      .pos_off = PC(defcert_pos) + 1 },
    { .name = "ingressClass", .type = KF_STR, .off = PCS(ingress_class) },
    { .name = "drainTimeout", .type = KF_DURATION, .off = PCS(drain_timeout_ms) },
    { .name = "timeouts", .type = KF_MAP, .sub = timeouts_fields },
    { .name = "limits", .type = KF_MAP, .sub = limits_fields },
    { .name = "loadBalance", .type = KF_ENUM, .off = PCS(load_balance), .enums = lb_names },
    { .name = "retries", .type = KF_U32, .off = PCS(retries), .max = 10 },
    { .name = "retryBudgetPercent", .type = KF_U32, .off = PCS(retry_budget_pct), .max = 100 },
    { .name = "panicThreshold", .type = KF_U32, .off = PCS(panic_threshold_pct), .max = 100 },
    { .name = "upstreamKeepalive", .type = KF_U32, .off = PCS(upstream_keepalive), .max = 100000 },
    { .name = "healthCheck", .type = KF_MAP, .sub = hc_fields },
    { .name = "outlierDetection", .type = KF_MAP, .sub = outlier_fields },
    { .name = "tls", .type = KF_MAP, .sub = tls_fields, .pos_off = PC(tls_pos) + 1 },
    { .name = "accessLog", .type = KF_STR, .off = PCS(access_log) },
    { .name = "defaultBackend", .type = KF_MAP, .off = PC(default_backend),
      .sub = dbackend_fields, .set_off = PC(default_backend.set) + 1 },
    { NULL },
};

static const struct k8s_field top_fields[] = {
    { .name = "spec", .type = KF_MAP, .sub = spec_fields, .required = true },
    { NULL },
};

/* the defaults the table above documents */
void k8s_proxycfg_defaults(struct snap_settings *s)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    memset(s, 0, sizeof(*s));
    s->workers = ncpu > 0 ? (uint32_t)(ncpu > 256 ? 256 : ncpu) : 1;
    s->drain_timeout_ms = 30000;
    s->timeouts = (struct snap_timeouts){
        .client_header = 10000, .client_idle = 60000, .client_body = 60000,
        .upstream_connect = 5000, .upstream_read = 60000, .upstream_idle = 60000,
        .tunnel_idle = 3600000,
    };
    s->max_body_size = 0;
    s->max_header_size = 32 * 1024;
    s->upstream_keepalive = 320;
    s->retries = 2;
    s->retry_budget_pct = 20;
    s->panic_threshold_pct = 0;
    s->load_balance = LB_ROUND_ROBIN;
    s->health = (struct snap_hc_conf){ .interval_ms = 0, .timeout_ms = 1000,
                                       .healthy_threshold = 2, .unhealthy_threshold = 3,
                                       .status_min = 200, .status_max = 399 };
    s->outlier = (struct snap_outlier_conf){ .consecutive_failures = 5, .base_ejection_ms = 1000,
                                             .max_ejection_ms = 30000, .max_ejection_pct = 50 };
    s->tls.ticket_rotate_ms = 3600000;
}

static void pc_init(struct k8s_obj *o) { k8s_proxycfg_defaults(&o->u.pc.s); }

static void pc_check(struct k8s_dctx *c, const struct ydoc_node *n)
{
    struct k8s_proxycfg *pc = &c->o->u.pc;
    (void)n;
    for (uint32_t i = 0; i < pc->nlisten; i++) {
        struct sockaddr_storage sa;
        socklen_t sl;
        if (pc->listen[i].address && !k8s_parse_hostport(pc->listen[i].address, &sa, &sl))
            k8s__err_at(c, pc->listen[i].address_pos,
                        "spec.listen[%u].address: invalid address \"%s\" (want IP:PORT)", i,
                        pc->listen[i].address);
        for (uint32_t j = 0; j < i; j++)
            if (pc->listen[i].address && pc->listen[j].address &&
                !strcmp(pc->listen[i].address, pc->listen[j].address))
                k8s__err_at(c, pc->listen[i].address_pos,
                            "spec.listen[%u].address: \"%s\" is already listed as spec.listen[%u]",
                            i, pc->listen[i].address, j);
    }
    if (pc->listen && pc->nlisten == 0)
        k8s__err_at(c, pc->listen_pos, "spec.listen: at least one listener is required");
    if (pc->s.admin && !k8s_parse_hostport(pc->s.admin, &pc->s.admin_sa, &pc->s.admin_salen))
        k8s__err_at(c, pc->admin_pos, "spec.admin: invalid address \"%s\" (want IP:PORT)",
                    pc->s.admin);
    const char *dc = pc->s.default_certificate;
    if (dc) {
        const char *slash = strchr(dc, '/');
        if (!slash || slash == dc || !slash[1] || strchr(slash + 1, '/'))
            k8s__err_at(c, pc->defcert_pos,
                        "spec.defaultCertificate: \"%s\" must be NAMESPACE/NAME of a Secret", dc);
    }
    char msg[256];
    if ((pc->s.tls.ciphers || pc->s.tls.ciphersuites) &&
        tls_check_ciphers(pc->s.tls.ciphers, pc->s.tls.ciphersuites, msg, sizeof(msg)) < 0)
        k8s__err_at(c, pc->tls_pos, "spec.tls: %s", msg);
    const struct k8s_ing_backend *db = &pc->default_backend;
    if (db->set && db->port_pos.line && !db->port_name == !db->port_number)
        k8s__err_at(c, db->port_pos, "spec.defaultBackend.service.port: %s",
                    db->port_name ? "number and name are mutually exclusive"
                                  : "one of number or name is required");
    if (pc->s.outlier.max_ejection_ms < pc->s.outlier.base_ejection_ms)
        pc->s.outlier.max_ejection_ms = pc->s.outlier.base_ejection_ms;
}

static const char *const pc_versions[] = { "ingressd/v1", NULL };

const struct k8s_kind_def k8s__proxycfg_def = {
    .kind = K8S_PROXYCONFIG, .name = "ProxyConfig", .api_versions = pc_versions,
    .top = top_fields, .init = pc_init, .check = pc_check,
};
