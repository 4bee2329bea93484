/* SPDX-License-Identifier: Apache-2.0 */
/*
 * k8s_annot: annotations that change how a backend is balanced, checked and
 * reached, and how an Ingress routes. Another field table: one row per
 * annotation, each with its value grammar. The ingressd/ names and the
 * ingress-nginx names for the same thing share a row's setter, so existing
 * manifests keep working (contract: "the same value means the same thing").
 *
 * Unknown ingressd/ annotations are warned about (likely typos); other
 * prefixes belong to other controllers and are ignored. Loader thread.
 *
 * Backend policy (on a Service; on an Ingress they override the Service's
 * for that Ingress's backends, which then get their own "@ns/ingress" name):
 *   ingressd/load-balance              round_robin|least_conn|ewma|hash
 *     nginx.ingress.kubernetes.io/load-balance          (same values)
 *   ingressd/hash-by                   remote_addr|path|header:NAME|cookie:NAME (implies hash)
 *     nginx.ingress.kubernetes.io/upstream-hash-by      $remote_addr|$request_uri|$http_NAME|$cookie_NAME
 *   ingressd/affinity                  cookie|none
 *     nginx.ingress.kubernetes.io/affinity
 *   ingressd/affinity-cookie-name      cookie name (default INGRESSD)
 *     nginx.ingress.kubernetes.io/session-cookie-name
 *   ingressd/health-check-path         /path (else TCP connect)
 *   ingressd/health-check-interval     duration (0 = no active checks)
 *   ingressd/health-check-timeout      duration
 *   ingressd/health-check-healthy-threshold / -unhealthy-threshold   1-100
 *   ingressd/health-check-port         1-65535 (else the endpoint's port)
 *   ingressd/retry-on                  error,timeout,http_502,http_503,http_504 | off
 *   ingressd/retries                   0-10
 *   ingressd/backend-protocol          HTTP|HTTPS
 *     nginx.ingress.kubernetes.io/backend-protocol
 *   ingressd/upstream-ca-secret        [ns/]name of a Secret with ca.crt: verify HTTPS pods
 *     nginx.ingress.kubernetes.io/proxy-ssl-secret
 * Routing (Ingress only):
 *   ingressd/use-regex                 "true": ImplementationSpecific paths are PCRE2
 *     nginx.ingress.kubernetes.io/use-regex
 *   ingressd/ssl-redirect              "false" disables the 308 to https for TLS hosts
 *     nginx.ingress.kubernetes.io/ssl-redirect
 *   ingressd/force-ssl-redirect        "true": redirect even hosts without spec.tls
 *     nginx.ingress.kubernetes.io/force-ssl-redirect
 *   ingressd/rewrite-target            replacement path ($1.. from a regex path)
 *     nginx.ingress.kubernetes.io/rewrite-target
 *   ingressd/proxy-body-size           size, 0 = unlimited (per-route max body)
 *     nginx.ingress.kubernetes.io/proxy-body-size
 * Service spec.sessionAffinity: ClientIP (+ sessionAffinityConfig.clientIP
 * .timeoutSeconds) is read from the Service spec itself (k8s_service.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingressd/arena.h"
#include "ingressd/str.h"
#include "k8s-int.h"

struct annot_row {
    const char *name;
    bool ingress_only;
    /* returns false with a message in msg on a bad value */
    bool (*set)(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia, const char *v,
                char *msg, size_t msglen);
};

static bool bad(char *msg, size_t len, const char *what, const char *v)
{
    snprintf(msg, len, "%s, got \"%s\"", what, v);
    return false;
}

static bool parse_boolstr(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
        return *out = true, true;
    if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
        return *out = false, true;
    return false;
}

static bool set_lb(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                   const char *v, char *msg, size_t len)
{
    static const char *const names[] = { "round_robin", "least_conn", "ewma", "hash" };
    (void)c, (void)ia;
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, names[i])) {
            p->algo = i;
            return true;
        }
    return bad(msg, len, "want round_robin, least_conn, ewma or hash", v);
}

static bool set_hash_by(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                        const char *v, char *msg, size_t len)
{
    (void)ia;
    if (!strcmp(v, "remote_addr"))
        p->hash_by = LB_HASH_REMOTE_ADDR;
    else if (!strcmp(v, "path"))
        p->hash_by = LB_HASH_PATH;
    else if (!strncmp(v, "header:", 7) && v[7])
        p->hash_by = LB_HASH_HEADER, p->hash_key = arena_strdup(c->a, v + 7);
    else if (!strncmp(v, "cookie:", 7) && v[7])
        p->hash_by = LB_HASH_COOKIE, p->hash_key = arena_strdup(c->a, v + 7);
    else
        return bad(msg, len, "want remote_addr, path, header:NAME or cookie:NAME", v);
    if (p->algo < 0)
        p->algo = LB_HASH;
    return true;
}

/* nginx.ingress.kubernetes.io/upstream-hash-by: an nginx variable */
static bool set_nginx_hash_by(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                              const char *v, char *msg, size_t len)
{
    (void)ia;
    if (!strcmp(v, "$remote_addr") || !strcmp(v, "$binary_remote_addr"))
        p->hash_by = LB_HASH_REMOTE_ADDR;
    else if (!strcmp(v, "$request_uri") || !strcmp(v, "$uri"))
        p->hash_by = LB_HASH_PATH;
    else if (!strncmp(v, "$http_", 6) && v[6]) {
        /* nginx spells header names with '_' for '-' */
        char *h = arena_strdup(c->a, v + 6);
        for (char *q = h; *q; q++)
            if (*q == '_')
                *q = '-';
        p->hash_by = LB_HASH_HEADER, p->hash_key = h;
    } else if (!strncmp(v, "$cookie_", 8) && v[8])
        p->hash_by = LB_HASH_COOKIE, p->hash_key = arena_strdup(c->a, v + 8);
    else
        return bad(msg, len, "want $remote_addr, $request_uri, $http_NAME or $cookie_NAME", v);
    p->algo = LB_HASH;
    return true;
}

static bool set_affinity(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                         const char *v, char *msg, size_t len)
{
    (void)c, (void)ia;
    if (!strcmp(v, "cookie"))
        p->affinity = LB_AFFINITY_COOKIE;
    else if (!strcmp(v, "none") || !*v)
        p->affinity = LB_AFFINITY_NONE;
    else
        return bad(msg, len, "want cookie or none", v);
    return true;
}

static bool set_cookie_name(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                            const char *v, char *msg, size_t len)
{
    (void)ia;
    if (!*v || strpbrk(v, " \t;,=\"") != NULL)
        return bad(msg, len, "want a cookie name", v);
    p->affinity_cookie = arena_strdup(c->a, v);
    return true;
}

static bool set_hc_path(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                        const char *v, char *msg, size_t len)
{
    (void)ia;
    if (v[0] != '/')
        return bad(msg, len, "want a path starting with /", v);
    p->hc.path = arena_strdup(c->a, v);
    p->hc_set |= K8S_HC_PATH;
    return true;
}

static bool dur(const char *v, uint32_t *out, char *msg, size_t len)
{
    unsigned long long ms;
    if (!str_parse_duration_ms(v, &ms) || ms > UINT32_MAX)
        return bad(msg, len, "want a duration like 500ms, 2s or 1m", v);
    *out = (uint32_t)ms;
    return true;
}

static bool num(const char *v, unsigned long long min, unsigned long long max, uint32_t *out,
                char *msg, size_t len)
{
    unsigned long long x;
    if (!str_to_u64(str_cstr(v), max, &x) || x < min) {
        snprintf(msg, len, "want an integer %llu-%llu, got \"%s\"", min, max, v);
        return false;
    }
    *out = (uint32_t)x;
    return true;
}

static bool set_hc_interval(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                            const char *v, char *msg, size_t len)
{
    (void)c, (void)ia;
    p->hc_set |= K8S_HC_INTERVAL;
    return dur(v, &p->hc.interval_ms, msg, len);
}

static bool set_hc_timeout(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                           const char *v, char *msg, size_t len)
{
    (void)c, (void)ia;
    p->hc_set |= K8S_HC_TIMEOUT;
    return dur(v, &p->hc.timeout_ms, msg, len);
}

static bool set_hc_healthy(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                           const char *v, char *msg, size_t len)
{
    (void)c, (void)ia;
    p->hc_set |= K8S_HC_HEALTHY;
    return num(v, 1, 100, &p->hc.healthy_threshold, msg, len);
}

static bool set_hc_unhealthy(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                             const char *v, char *msg, size_t len)
{
    (void)c, (void)ia;
    p->hc_set |= K8S_HC_UNHEALTHY;
    return num(v, 1, 100, &p->hc.unhealthy_threshold, msg, len);
}

static bool set_hc_port(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                        const char *v, char *msg, size_t len)
{
    uint32_t port;
    (void)c, (void)ia;
    if (!num(v, 1, 65535, &port, msg, len))
        return false;
    p->hc.port = (uint16_t)port;
    p->hc_set |= K8S_HC_PORT;
    return true;
}

static bool set_retry_on(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                         const char *v, char *msg, size_t len)
{
    struct str s = str_cstr(v);
    uint32_t bits = 0;
    (void)c, (void)ia;
    while (s.n) {
        struct str t = str_trim(str_next_token(&s, ','));
        if (str_ieq_cstr(t, "error"))
            bits |= RETRY_ON_ERROR;
        else if (str_ieq_cstr(t, "timeout"))
            bits |= RETRY_ON_TIMEOUT;
        else if (str_ieq_cstr(t, "http_502"))
            bits |= RETRY_ON_502;
        else if (str_ieq_cstr(t, "http_503"))
            bits |= RETRY_ON_503;
        else if (str_ieq_cstr(t, "http_504"))
            bits |= RETRY_ON_504;
        else if (str_ieq_cstr(t, "off") || str_ieq_cstr(t, "none"))
            bits = 0;
        else
            return bad(msg, len, "want a list of error, timeout, http_502, http_503, http_504", v);
    }
    /* "off" still counts as given: the policy then retries nothing */
    p->retry_on = bits ? bits : 0x80000000u;
    return true;
}

static bool set_retries(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                        const char *v, char *msg, size_t len)
{
    uint32_t n;
    (void)c, (void)ia;
    if (!num(v, 0, 10, &n, msg, len))
        return false;
    p->retries = (int)n;
    return true;
}

static bool set_backend_protocol(struct k8s_dctx *c, struct k8s_policy *p,
                                 struct k8s_ing_annot *ia, const char *v, char *msg, size_t len)
{
    (void)c, (void)ia;
    if (!strcmp(v, "HTTPS") || !strcmp(v, "https"))
        p->upstream_tls = 1;
    else if (!strcmp(v, "HTTP") || !strcmp(v, "http"))
        p->upstream_tls = 0;
    else
        return bad(msg, len, "want HTTP or HTTPS", v);
    return true;
}

static bool set_upstream_ca(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                            const char *v, char *msg, size_t len)
{
    (void)ia;
    if (!*v)
        return bad(msg, len, "want a Secret name", v);
    p->upstream_ca = arena_strdup(c->a, v);
    return true;
}

static bool set_use_regex(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                          const char *v, char *msg, size_t len)
{
    (void)c, (void)p;
    if (!parse_boolstr(v, &ia->use_regex))
        return bad(msg, len, "want \"true\" or \"false\"", v);
    return true;
}

static bool set_ssl_redirect(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                             const char *v, char *msg, size_t len)
{
    bool b;
    (void)c, (void)p;
    if (!parse_boolstr(v, &b))
        return bad(msg, len, "want \"true\" or \"false\"", v);
    ia->ssl_redirect = b;
    return true;
}

static bool set_force_ssl_redirect(struct k8s_dctx *c, struct k8s_policy *p,
                                   struct k8s_ing_annot *ia, const char *v, char *msg, size_t len)
{
    bool b;
    (void)c, (void)p;
    if (!parse_boolstr(v, &b))
        return bad(msg, len, "want \"true\" or \"false\"", v);
    ia->force_ssl_redirect = b;
    return true;
}

static bool set_rewrite(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                        const char *v, char *msg, size_t len)
{
    (void)p;
    if (v[0] != '/' && v[0] != '$')
        return bad(msg, len, "want a path starting with /", v);
    ia->rewrite_target = arena_strdup(c->a, v);
    return true;
}

static bool set_body_size(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia,
                          const char *v, char *msg, size_t len)
{
    unsigned long long b;
    (void)c, (void)p;
    if (!str_parse_size(v, &b))
        return bad(msg, len, "want a size like 512, 8k, 1m or 0 (unlimited)", v);
    ia->has_body_size = true;
    ia->max_body_size = b;
    return true;
}

#define NGX "nginx.ingress.kubernetes.io/"

static const struct annot_row annot_rows[] = {
    { "ingressd/load-balance", false, set_lb },
    { NGX "load-balance", false, set_lb },
    { "ingressd/hash-by", false, set_hash_by },
    { NGX "upstream-hash-by", false, set_nginx_hash_by },
    { "ingressd/affinity", false, set_affinity },
    { NGX "affinity", false, set_affinity },
    { "ingressd/affinity-cookie-name", false, set_cookie_name },
    { NGX "session-cookie-name", false, set_cookie_name },
    { "ingressd/health-check-path", false, set_hc_path },
    { "ingressd/health-check-interval", false, set_hc_interval },
    { "ingressd/health-check-timeout", false, set_hc_timeout },
    { "ingressd/health-check-healthy-threshold", false, set_hc_healthy },
    { "ingressd/health-check-unhealthy-threshold", false, set_hc_unhealthy },
    { "ingressd/health-check-port", false, set_hc_port },
    { "ingressd/retry-on", false, set_retry_on },
    { "ingressd/retries", false, set_retries },
    { "ingressd/backend-protocol", false, set_backend_protocol },
    { NGX "backend-protocol", false, set_backend_protocol },
    { "ingressd/upstream-ca-secret", false, set_upstream_ca },
    { NGX "proxy-ssl-secret", false, set_upstream_ca },
    { "ingressd/use-regex", true, set_use_regex },
    { NGX "use-regex", true, set_use_regex },
    { "ingressd/ssl-redirect", true, set_ssl_redirect },
    { NGX "ssl-redirect", true, set_ssl_redirect },
    { "ingressd/force-ssl-redirect", true, set_force_ssl_redirect },
    { NGX "force-ssl-redirect", true, set_force_ssl_redirect },
    { "ingressd/rewrite-target", true, set_rewrite },
    { NGX "rewrite-target", true, set_rewrite },
    { "ingressd/proxy-body-size", true, set_body_size },
    { NGX "proxy-body-size", true, set_body_size },
    { NULL, false, NULL },
};

void k8s_policy_init(struct k8s_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->algo = p->hash_by = p->affinity = p->retries = p->upstream_tls = -1;
}

/*
 * Reads o's annotations into p (and ia for an Ingress). Bad values are errors
 * attributed to the object, at the annotation's position.
 */
void k8s__policy_parse(struct k8s_dctx *c, struct k8s_policy *p, struct k8s_ing_annot *ia)
{
    const struct k8s_kvs *an = &c->o->meta.annotations;
    for (uint32_t i = 0; i < an->n; i++) {
        const struct k8s_kv *kv = &an->v[i];
        const struct annot_row *r = annot_rows;
        while (r->name && strcmp(r->name, kv->k) != 0)
            r++;
        if (!r->name) {
            if (!strncmp(kv->k, "ingressd/", 9))
                k8s_obj_warn(c->o, c->errs, kv->pos, "metadata.annotations.%s: unknown annotation",
                             kv->k);
            continue;
        }
        if (r->ingress_only && !ia) {
            k8s_obj_warn(c->o, c->errs, kv->pos,
                         "metadata.annotations.%s: only meaningful on an Ingress, ignored", kv->k);
            continue;
        }
        char msg[256];
        struct k8s_ing_annot dummy = { .ssl_redirect = -1 };
        if (!r->set(c, p, ia ? ia : &dummy, kv->v, msg, sizeof(msg)))
            k8s_obj_error(c->o, c->errs, kv->pos, "metadata.annotations.%s: %s", kv->k, msg);
        else if (!r->ingress_only)
            p->any = true;
    }
}
