/* SPDX-License-Identifier: Apache-2.0 */
/*
 * k8s_ingress: networking.k8s.io/v1 Ingress and IngressClass field tables,
 * plus the checks a table cannot express: host syntax (RFC 1123, a wildcard
 * only as the whole first label), paths beginning with '/', a backend naming
 * exactly one of service/resource and one of port number/name, regexes that
 * compile (PCRE2's message and offset) when use-regex is on.
 *
 * References to other objects (Service, port, Secret) are checked later in
 * snap.c, which sees every object. Loader thread.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <pcre2.h>
#include <stdio.h>
#include <string.h>

#include "ingressd/arena.h"
#include "k8s-int.h"

#define ING(m) offsetof(struct k8s_ingress, m)

static const struct k8s_field port_fields[] = {
    { .name = "number", .type = KF_U32, .off = offsetof(struct k8s_ing_backend, port_number),
      .min = 1, .max = 65535 },
    { .name = "name", .type = KF_STR, .off = offsetof(struct k8s_ing_backend, port_name) },
    { NULL },
};

static const struct k8s_field svc_backend_fields[] = {
    { .name = "name", .type = KF_STR, .off = offsetof(struct k8s_ing_backend, service),
      .required = true },
    { .name = "port", .type = KF_MAP, .sub = port_fields,
      .pos_off = K8S_OFF1(struct k8s_ing_backend, port_pos) },
    { NULL },
};

static const struct k8s_field backend_fields[] = {
    { .name = "service", .type = KF_MAP, .sub = svc_backend_fields,
      .pos_off = K8S_OFF1(struct k8s_ing_backend, pos) },
    { .name = "resource", .type = KF_IGNORE,
      .set_off = K8S_OFF1(struct k8s_ing_backend, has_resource) },
    { NULL },
};

static const char *const path_types[] = { "Exact", "Prefix", "ImplementationSpecific", NULL };

static const struct k8s_field path_fields[] = {
    { .name = "path", .type = KF_STR, .off = offsetof(struct k8s_ing_path, path),
      .pos_off = K8S_OFF1(struct k8s_ing_path, path_pos) },
    { .name = "pathType", .type = KF_ENUM, .off = offsetof(struct k8s_ing_path, path_type),
      .enums = path_types, .required = true },
    { .name = "backend", .type = KF_MAP, .off = offsetof(struct k8s_ing_path, backend),
      .sub = backend_fields, .required = true,
      .set_off = K8S_OFF1(struct k8s_ing_path, backend.set) },
    { NULL },
};

static const struct k8s_field path_elem = { .name = "-", .type = KF_MAP, .sub = path_fields,
                                            .pos_off = K8S_OFF1(struct k8s_ing_path, pos) };

static const struct k8s_field http_fields[] = {
    { .name = "paths", .type = KF_SEQ, .off = offsetof(struct k8s_ing_rule, paths),
      .required = true, .sub = &path_elem, .elem_size = sizeof(struct k8s_ing_path),
      .cnt_off = offsetof(struct k8s_ing_rule, npaths) },
    { NULL },
};

static const struct k8s_field rule_fields[] = {
    { .name = "host", .type = KF_STR, .off = offsetof(struct k8s_ing_rule, host) },
    { .name = "http", .type = KF_MAP, .sub = http_fields },
    { NULL },
};

static const struct k8s_field rule_elem = { .name = "-", .type = KF_MAP, .sub = rule_fields,
                                            .pos_off = K8S_OFF1(struct k8s_ing_rule, pos) };

static const struct k8s_field str_elem = { .name = "-", .type = KF_STR };

static const struct k8s_field tls_fields[] = {
    { .name = "hosts", .type = KF_SEQ, .off = offsetof(struct k8s_ing_tls, hosts.v),
      .sub = &str_elem, .elem_size = sizeof(char *),
      .cnt_off = offsetof(struct k8s_ing_tls, hosts.n) },
    { .name = "secretName", .type = KF_STR, .off = offsetof(struct k8s_ing_tls, secret),
      .pos_off = K8S_OFF1(struct k8s_ing_tls, secret_pos) },
    { NULL },
};

static const struct k8s_field tls_elem = { .name = "-", .type = KF_MAP, .sub = tls_fields,
                                           .pos_off = K8S_OFF1(struct k8s_ing_tls, pos) };

static const struct k8s_field spec_fields[] = {
    { .name = "ingressClassName", .type = KF_STR, .off = ING(class_name),
      .pos_off = ING(class_pos) + 1 },
    { .name = "defaultBackend", .type = KF_MAP, .off = ING(default_backend),
      .sub = backend_fields, .set_off = ING(default_backend.set) + 1 },
    { .name = "backend", .type = KF_MAP, .off = ING(default_backend), .sub = backend_fields,
      .set_off = ING(default_backend.set) + 1 },
    { .name = "rules", .type = KF_SEQ, .off = ING(rules), .sub = &rule_elem,
      .elem_size = sizeof(struct k8s_ing_rule), .cnt_off = ING(nrules) },
    { .name = "tls", .type = KF_SEQ, .off = ING(tls), .sub = &tls_elem,
      .elem_size = sizeof(struct k8s_ing_tls), .cnt_off = ING(ntls) },
    { NULL },
};

static const struct k8s_field top_fields[] = {
    { .name = "spec", .type = KF_MAP, .sub = spec_fields, .required = true },
    { .name = "status", .type = KF_IGNORE },
    { NULL },
};

/* RFC 1123 host, optionally "*." + host; no IP addresses (the Ingress API forbids them) */
static const char *host_problem(const char *h)
{
    const char *p = h;
    if (!strncmp(p, "*.", 2))
        p += 2;
    if (!*p)
        return "is empty";
    if (strchr(p, '*'))
        return "may only use a wildcard as the whole first label (\"*.foo.com\")";
    if (strlen(p) > 253)
        return "is longer than 253 characters";
    if (k8s__is_ip(p))
        return "must be a DNS name, not an IP address";
    size_t lab = 0;
    for (; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '.') {
            if (lab == 0)
                return "has an empty label";
            lab = 0;
            continue;
        }
        if (!(islower(ch) || isdigit(ch) || ch == '-'))
            return "must consist of lower case alphanumeric characters, '-' or '.'";
        if (++lab > 63)
            return "has a label longer than 63 characters";
    }
    if (lab == 0)
        return "has an empty label";
    return NULL;
}

/*
 * false when check_backend() would say nothing: the common case, checked
 * first so the message prefix is only formatted for a backend with a problem
 * (10,000 paths x snprintf was a visible share of a large load).
 */
static bool backend_needs_check(const struct k8s_ing_backend *b)
{
    return b->set && (b->has_resource || !b->pos.line || !b->port_pos.line ||
                      (b->port_name && b->port_number) || (!b->port_name && !b->port_number));
}

static void check_backend(struct k8s_dctx *c, const struct k8s_ing_backend *b, const char *where,
                          struct k8s_pos at)
{
    if (!b->set)
        return;
    if (b->has_resource && b->pos.line)
        k8s__err_at(c, b->pos, "%s: service and resource are mutually exclusive", where);
    else if (b->has_resource)
        k8s_obj_warn(c->o, c->errs, at,
                     "%s.resource: resource backends are not supported, the path answers 503",
                     where);
    else if (!b->pos.line)
        k8s__err_at(c, at, "%s.service: required field is missing", where);
    else if (!b->port_pos.line)
        k8s__err_at(c, b->pos, "%s.service.port: required field is missing", where);
    else if (b->port_name && b->port_number)
        k8s__err_at(c, b->port_pos, "%s.service.port: number and name are mutually exclusive",
                    where);
    else if (!b->port_name && !b->port_number)
        k8s__err_at(c, b->port_pos, "%s.service.port: one of number or name is required", where);
}

static void ing_check(struct k8s_dctx *c, const struct ydoc_node *n)
{
    struct k8s_ingress *ing = &c->o->u.ing;
    char where[128];
    (void)n;
    k8s__policy_parse(c, &ing->policy, &ing->annot);
    ing->class_annotation = k8s_kv_get(&c->o->meta.annotations, "kubernetes.io/ingress.class");
    check_backend(c, &ing->default_backend, "spec.defaultBackend", c->o->pos);
    if (!ing->nrules && !ing->default_backend.set && !c->o->nerrors)
        k8s_obj_warn(c->o, c->errs, c->o->pos, "spec: neither rules nor defaultBackend: nothing to route");
    for (uint32_t i = 0; i < ing->nrules; i++) {
        struct k8s_ing_rule *r = &ing->rules[i];
        const char *why;
        if (r->host && !*r->host)
            r->host = NULL; /* "" is the API's "any host" as much as an absent one */
        if (r->host && (why = host_problem(r->host)) != NULL)
            k8s__err_at(c, r->pos, "spec.rules[%u].host: \"%s\" %s", i, r->host, why);
        for (uint32_t j = 0; j < r->npaths; j++) {
            struct k8s_ing_path *p = &r->paths[j];
            struct k8s_pos ppos = p->path_pos.line ? p->path_pos : p->pos;
            if (backend_needs_check(&p->backend)) {
                snprintf(where, sizeof(where), "spec.rules[%u].http.paths[%u].backend", i, j);
                check_backend(c, &p->backend, where, p->pos);
            }
            if (!p->path)
                p->path = "/";
            bool regex = p->path_type == K8S_PATH_IMPL && ing->annot.use_regex;
            if (!regex && p->path[0] != '/') {
                k8s__err_at(c, ppos, "spec.rules[%u].http.paths[%u].path: \"%s\" must begin with '/'",
                            i, j, p->path);
            } else if (regex) {
                int code;
                PCRE2_SIZE off;
                pcre2_code *re = pcre2_compile((PCRE2_SPTR)p->path, PCRE2_ZERO_TERMINATED, 0,
                                               &code, &off, NULL);
                if (!re) {
                    PCRE2_UCHAR buf[256];
                    pcre2_get_error_message(code, buf, sizeof(buf));
                    k8s__err_at(c, ppos,
                                "spec.rules[%u].http.paths[%u].path: invalid regex \"%s\": %s at offset %zu",
                                i, j, p->path, (const char *)buf, (size_t)off);
                }
                pcre2_code_free(re);
            }
        }
    }
    for (uint32_t i = 0; i < ing->ntls; i++)
        for (uint32_t j = 0; j < ing->tls[i].hosts.n; j++) {
            const char *h = ing->tls[i].hosts.v[j], *why;
            if ((why = host_problem(h)) != NULL)
                k8s__err_at(c, ing->tls[i].pos, "spec.tls[%u].hosts[%u]: \"%s\" %s", i, j, h, why);
        }
}

static void ing_init(struct k8s_obj *o)
{
    k8s_policy_init(&o->u.ing.policy);
    o->u.ing.annot.ssl_redirect = -1;
}

static const char *const ing_versions[] = { "networking.k8s.io/v1", NULL };

const struct k8s_kind_def k8s__ingress_def = {
    .kind = K8S_INGRESS, .name = "Ingress", .api_versions = ing_versions, .top = top_fields,
    .init = ing_init, .check = ing_check,
};

/* ---- IngressClass ---- */

static const struct k8s_field ic_spec_fields[] = {
    { .name = "controller", .type = KF_STR, .off = offsetof(struct k8s_ingressclass, controller) },
    { .name = "parameters", .type = KF_IGNORE },
    { NULL },
};

static const struct k8s_field ic_top_fields[] = {
    { .name = "spec", .type = KF_MAP, .sub = ic_spec_fields },
    { NULL },
};

static void ic_check(struct k8s_dctx *c, const struct ydoc_node *n)
{
    (void)n;
    const struct k8s_kv *d =
        k8s_kv_find(&c->o->meta.annotations, "ingressclass.kubernetes.io/is-default-class");
    if (d && !strcmp(d->v, "true"))
        c->o->u.ic.is_default = true;
    else if (d && strcmp(d->v, "false") != 0)
        k8s_obj_error(c->o, c->errs, d->pos,
                      "metadata.annotations.ingressclass.kubernetes.io/is-default-class: want \"true\" or \"false\", got \"%s\"",
                      d->v);
}

const struct k8s_kind_def k8s__ingressclass_def = {
    .kind = K8S_INGRESSCLASS, .name = "IngressClass", .api_versions = ing_versions,
    .top = ic_top_fields, .check = ic_check,
};
