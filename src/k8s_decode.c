/* SPDX-License-Identifier: Apache-2.0 */
/*
 * k8s_decode: the field-table engine and the object envelope.
 *
 * Every Kubernetes object is decoded the same way: the envelope (apiVersion,
 * kind, metadata) first, so the object can be named in every later message,
 * then the kind's own table of fields (k8s_<kind>.c), then the kind's check
 * hook for what a table cannot express. Like nginx's ngx_command_t, a row
 * says the field's name, its type, where the value goes and whether it is
 * required; the engine does type checking, ranges, enums, required and
 * unknown-field reporting for all kinds at once, and keeps going after a
 * mistake so `-t` reports every independent one.
 *
 * Messages read `FILE:LINE:COL: error: Ingress default/shop: spec.rules[0].host: ...`:
 * the path is built while descending (`spec`, `.rules`, `[0]`).
 *
 * Each object gets its own small arena and a refcount (see k8s.h for why).
 * Loader thread only, except k8s_obj_put() (any thread).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingressd/arena.h"
#include "ingressd/cfg.h"
#include "ingressd/str.h"
#include "k8s-int.h"

static const struct k8s_kind_def *const kind_defs[K8S_NKINDS] = {
    [K8S_PROXYCONFIG] = &k8s__proxycfg_def,     [K8S_INGRESS] = &k8s__ingress_def,
    [K8S_INGRESSCLASS] = &k8s__ingressclass_def, [K8S_SERVICE] = &k8s__service_def,
    [K8S_ENDPOINTSLICE] = &k8s__endpointslice_def, [K8S_ENDPOINTS] = &k8s__endpoints_def,
    [K8S_SECRET] = &k8s__secret_def,            [K8S_NETPOL] = &k8s__netpol_def,
};

const char *k8s_kind_name(enum k8s_kind k) { return k < K8S_NKINDS ? kind_defs[k]->name : "?"; }

/* ---- object lifetime ---- */

struct k8s_obj *k8s_obj_ref(struct k8s_obj *o)
{
    if (o)
        atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);
    return o;
}

void k8s_obj_put(struct k8s_obj *o)
{
    if (o && atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel) == 1)
        arena_free(o->arena); /* the object itself lives in its arena */
}

void k8s_objs_push(struct k8s_objs *s, struct k8s_obj *o)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        struct k8s_obj **v = realloc(s->v, s->cap * sizeof(*v));
        if (!v)
            abort();
        s->v = v;
    }
    s->v[s->n++] = o;
}

void k8s_objs_free(struct k8s_objs *s)
{
    for (uint32_t i = 0; i < s->n; i++)
        k8s_obj_put(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

/* ---- diagnostics ---- */

struct k8s_pos k8s__pos(const struct ydoc_node *n)
{
    return n ? (struct k8s_pos){ n->line, n->col } : (struct k8s_pos){ 0, 0 };
}

static void obj_vdiag(struct k8s_obj *o, struct cfg_errs *errs, enum cfg_sev sev,
                      struct k8s_pos pos, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    cfg_errs_add(errs, sev, o->file, pos.line, pos.col, o->id, "%s", msg);
    if (sev == CFG_ERROR && o->nerrors++ == 0) {
        o->first_error = arena_strdup(o->arena, msg);
        o->first_error_pos = pos;
    }
}

void k8s_obj_error(struct k8s_obj *o, struct cfg_errs *errs, struct k8s_pos pos, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    obj_vdiag(o, errs, CFG_ERROR, pos, fmt, ap);
    va_end(ap);
}

void k8s_obj_warn(struct k8s_obj *o, struct cfg_errs *errs, struct k8s_pos pos, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    obj_vdiag(o, errs, CFG_WARNING, pos, fmt, ap);
    va_end(ap);
}

static size_t path_format(const struct k8s_dctx *c, char *buf, size_t cap);

static void ctx_vdiag(struct k8s_dctx *c, enum cfg_sev sev, struct k8s_pos pos, const char *fmt,
                      va_list ap)
{
    char msg[900], path[512];
    size_t plen = path_format(c, path, sizeof(path));
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (sev == CFG_ERROR)
        k8s_obj_error(c->o, c->errs, pos, "%s%s%s", path, plen ? ": " : "", msg);
    else
        k8s_obj_warn(c->o, c->errs, pos, "%s%s%s", path, plen ? ": " : "", msg);
}

void k8s__err(struct k8s_dctx *c, const struct ydoc_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx_vdiag(c, CFG_ERROR, k8s__pos(n), fmt, ap);
    va_end(ap);
}

void k8s__err_at(struct k8s_dctx *c, struct k8s_pos pos, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx_vdiag(c, CFG_ERROR, pos, fmt, ap);
    va_end(ap);
}

void k8s__warn(struct k8s_dctx *c, const struct ydoc_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctx_vdiag(c, CFG_WARNING, k8s__pos(n), fmt, ap);
    va_end(ap);
}

/*
 * The path grows on every field and list element of every object, so a
 * push only records the piece (snprintf per field was a tenth of a large
 * load); path_format() spells it out for a message, cut at the buffer as
 * before.
 */
size_t k8s__path_key(struct k8s_dctx *c, const char *key)
{
    size_t old = c->plen;
    if (c->plen < K8S_PATH_MAX)
        c->path[c->plen] = (struct k8s_path_seg){ .key = key };
    c->plen++;
    return old;
}

size_t k8s__path_idx(struct k8s_dctx *c, uint32_t i)
{
    size_t old = c->plen;
    if (c->plen < K8S_PATH_MAX)
        c->path[c->plen] = (struct k8s_path_seg){ .key = NULL, .idx = i };
    c->plen++;
    return old;
}

static void path_append(char *buf, size_t cap, size_t *len, const char *s, size_t l)
{
    size_t room = cap - 1 - *len;
    if (l > room)
        l = room;
    memcpy(buf + *len, s, l);
    *len += l;
    buf[*len] = '\0';
}

/* "spec.rules[0].http" into buf; its length */
static size_t path_format(const struct k8s_dctx *c, char *buf, size_t cap)
{
    size_t len = 0, n = c->plen < K8S_PATH_MAX ? c->plen : K8S_PATH_MAX;
    buf[0] = '\0';
    for (size_t k = 0; k < n; k++) {
        const struct k8s_path_seg *g = &c->path[k];
        if (g->key) {
            if (len)
                path_append(buf, cap, &len, ".", 1);
            path_append(buf, cap, &len, g->key, strlen(g->key));
        } else {
            char num[16], *q = num + sizeof(num);
            uint32_t i = g->idx;
            *--q = ']';
            do
                *--q = (char)('0' + i % 10);
            while ((i /= 10) != 0);
            *--q = '[';
            path_append(buf, cap, &len, q, (size_t)(num + sizeof(num) - q));
        }
    }
    return len;
}

/* ---- the engine ---- */

static bool want_scalar(struct k8s_dctx *c, const struct ydoc_node *n, const char *what)
{
    if (n->type == YDOC_SCALAR)
        return true;
    k8s__err(c, n, "expected %s, got %s", what, ydoc_type_name(n));
    return false;
}

static bool parse_bool(const struct ydoc_node *n, bool *out)
{
    /* YAML 1.1 booleans, as the Kubernetes YAML decoder (go-yaml v2) reads them */
    static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On",
                                       "ON", "y", "Y", NULL };
    static const char *const no[] = { "false", "False", "FALSE", "no", "No", "NO", "off", "Off",
                                      "OFF", "n", "N", NULL };
    if (n->type != YDOC_SCALAR || n->quoted)
        return false;
    for (int i = 0; yes[i]; i++)
        if (!strcmp(n->str, yes[i]))
            return *out = true, true;
    for (int i = 0; no[i]; i++)
        if (!strcmp(n->str, no[i]))
            return *out = false, true;
    return false;
}

static bool parse_u32(struct k8s_dctx *c, const struct ydoc_node *n, uint32_t min, uint32_t max,
                      uint32_t *out)
{
    unsigned long long v;
    if (!want_scalar(c, n, "an integer"))
        return false;
    if (n->quoted || strcmp(ydoc_type_name(n), "integer") != 0) {
        k8s__err(c, n, "expected an integer, got %s \"%s\"", ydoc_type_name(n), n->str);
        return false;
    }
    if (n->str[0] == '-' || !str_to_u64(str_cstr(n->str[0] == '+' ? n->str + 1 : n->str),
                                        UINT32_MAX, &v) ||
        v < min || v > (max ? max : UINT32_MAX)) {
        k8s__err(c, n, "%s is out of range (%u-%u)", n->str, min, max ? max : UINT32_MAX);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static void decode_value(struct k8s_dctx *c, const struct k8s_field *f, const struct ydoc_node *n,
                         void *base)
{
    char *dst = (char *)base + f->off;
    switch (f->type) {
    case KF_STR:
        if (want_scalar(c, n, "a string"))
            *(const char **)dst = arena_strndup(c->a, n->str, n->len);
        break;
    case KF_BOOL:
        if (!parse_bool(n, (bool *)dst))
            k8s__err(c, n, "expected a boolean (true or false), got %s%s%s%s", ydoc_type_name(n),
                     n->type == YDOC_SCALAR ? " \"" : "", n->type == YDOC_SCALAR ? n->str : "",
                     n->type == YDOC_SCALAR ? "\"" : "");
        break;
    case KF_U32: parse_u32(c, n, f->min, f->max, (uint32_t *)dst); break;
    case KF_U16: {
        uint32_t v;
        if (parse_u32(c, n, f->min, f->max ? f->max : 65535, &v))
            *(uint16_t *)dst = (uint16_t)v;
        break;
    }
    case KF_DURATION: {
        unsigned long long ms;
        if (!want_scalar(c, n, "a duration"))
            break;
        if (!str_parse_duration_ms(n->str, &ms) || ms > UINT32_MAX)
            k8s__err(c, n, "invalid duration \"%s\" (want e.g. 500ms, 2s, 1m30s)", n->str);
        else
            *(uint32_t *)dst = (uint32_t)ms;
        break;
    }
    case KF_SIZE: {
        unsigned long long b;
        if (!want_scalar(c, n, "a size"))
            break;
        if (!str_parse_size(n->str, &b))
            k8s__err(c, n, "invalid size \"%s\" (want e.g. 512, 8k, 1m, 1g)", n->str);
        else
            *(uint64_t *)dst = b;
        break;
    }
    case KF_SIZE32: {
        unsigned long long b;
        if (!want_scalar(c, n, "a size"))
            break;
        if (!str_parse_size(n->str, &b) || b > UINT32_MAX)
            k8s__err(c, n, "invalid size \"%s\" (want e.g. 512, 8k, 1m)", n->str);
        else
            *(uint32_t *)dst = (uint32_t)b;
        break;
    }
    case KF_ENUM: {
        if (!want_scalar(c, n, "a string"))
            break;
        for (int i = 0; f->enums[i]; i++)
            if (!strcmp(f->enums[i], n->str)) {
                *(int *)dst = i;
                return;
            }
        char want[256];
        size_t wl = 0;
        want[0] = '\0';
        for (int i = 0; f->enums[i]; i++) {
            int k = snprintf(want + wl, sizeof(want) - wl, "%s%s", i ? (f->enums[i + 1] ? ", " : " or ") : "",
                             f->enums[i]);
            if (k > 0 && wl + (size_t)k < sizeof(want))
                wl += (size_t)k;
        }
        k8s__err(c, n, "unknown value \"%s\" (want %s)", n->str, want);
        break;
    }
    case KF_MAP:
        if (n->type != YDOC_MAP) {
            k8s__err(c, n, "expected a map, got %s", ydoc_type_name(n));
            break;
        }
        k8s__decode_map(c, f->sub, n, dst);
        break;
    case KF_SEQ: {
        if (n->type != YDOC_SEQ) {
            k8s__err(c, n, "expected a list, got %s", ydoc_type_name(n));
            break;
        }
        char *arr = n->n ? arena_calloc(c->a, n->n, f->elem_size) : NULL;
        uint32_t cnt = 0;
        for (uint32_t i = 0; i < n->n; i++) {
            const struct ydoc_node *item = n->kids[i];
            size_t old = k8s__path_idx(c, i);
            if (ydoc_is_null(item)) {
                k8s__err(c, item, "expected %s, got null",
                         f->sub->type == KF_MAP ? "a map" : "a value");
            } else {
                decode_value(c, f->sub, item, arr + (size_t)cnt * f->elem_size);
                if (f->sub->pos_off)
                    *(struct k8s_pos *)(arr + (size_t)cnt * f->elem_size + f->sub->pos_off - 1) =
                        k8s__pos(item);
                cnt++;
            }
            k8s__path_restore(c, old);
        }
        *(void **)dst = arr;
        *(uint32_t *)((char *)base + f->cnt_off) = cnt;
        break;
    }
    case KF_KVS: {
        if (n->type != YDOC_MAP) {
            k8s__err(c, n, "expected a map of strings, got %s", ydoc_type_name(n));
            break;
        }
        struct k8s_kvs *kv = (struct k8s_kvs *)dst;
        kv->v = n->n ? arena_calloc(c->a, n->n, sizeof(*kv->v)) : NULL;
        kv->n = 0;
        for (uint32_t i = 0; i < n->n; i++) {
            const struct ydoc_node *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
            if (k->type != YDOC_SCALAR || v->type != YDOC_SCALAR) {
                size_t old = k8s__path_key(c, k->type == YDOC_SCALAR ? k->str : "?");
                k8s__err(c, v, "expected a string, got %s", ydoc_type_name(v));
                k8s__path_restore(c, old);
                continue;
            }
            kv->v[kv->n++] = (struct k8s_kv){ arena_strndup(c->a, k->str, k->len),
                                               arena_strndup(c->a, v->str, v->len), k8s__pos(v) };
        }
        break;
    }
    case KF_INTSTR: {
        struct k8s_intstr *is = (struct k8s_intstr *)dst;
        if (!want_scalar(c, n, "an integer or a string"))
            break;
        is->set = true;
        if (!n->quoted && !strcmp(ydoc_type_name(n), "integer")) {
            uint32_t v;
            if (parse_u32(c, n, 1, 65535, &v)) {
                is->is_num = true;
                is->num = v;
            }
        } else {
            is->str = arena_strndup(c->a, n->str, n->len);
        }
        break;
    }
    case KF_IGNORE: break;
    case KF_FUNC: f->fn(c, n, dst); break;
    }
}

void k8s__decode_map(struct k8s_dctx *c, const struct k8s_field *t, const struct ydoc_node *n,
                     void *base)
{
    uint64_t seen = 0, written = 0;
    for (uint32_t i = 0; i < n->n; i++) {
        const struct ydoc_node *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
        const char *key = k->type == YDOC_SCALAR ? k->str : "?";
        const struct k8s_field *f = NULL;
        unsigned idx = 0;
        for (const struct k8s_field *r = t; r->name; r++, idx++)
            if (r->name[0] == key[0] && !strcmp(r->name, key)) {
                f = r;
                break;
            }
        size_t old = k8s__path_key(c, key);
        if (f && idx < 64 && (written & (1ull << idx))) {
            /* the API server's strict decoding rejects this too */
            k8s__err(c, k, "duplicate field \"%s\"", key);
        } else if (!f) {
            k8s__warn(c, k, "unknown field \"%s\"", key);
        } else if (!ydoc_is_null(v) || f->type == KF_IGNORE) {
            if (idx < 64)
                seen |= 1ull << idx;
            decode_value(c, f, v, base);
            if (f->pos_off)
                *(struct k8s_pos *)((char *)base + f->pos_off - 1) = k8s__pos(v);
            if (f->set_off)
                *(bool *)((char *)base + f->set_off - 1) = true;
        }
        if (f && idx < 64)
            written |= 1ull << idx;
        k8s__path_restore(c, old);
    }
    unsigned idx = 0;
    for (const struct k8s_field *r = t; r->name; r++, idx++)
        if (r->required && !(seen & (1ull << idx))) {
            size_t old = k8s__path_key(c, r->name);
            k8s__err(c, n, "required field is missing");
            k8s__path_restore(c, old);
        }
}

/* ---- the envelope ---- */

struct k8s_envelope {
    const char *api_version, *kind;
    struct k8s_meta meta;
};

static const struct k8s_field meta_fields[] = {
    { .name = "name", .type = KF_STR, .off = offsetof(struct k8s_meta, name) },
    { .name = "namespace", .type = KF_STR, .off = offsetof(struct k8s_meta, ns) },
    { .name = "labels", .type = KF_KVS, .off = offsetof(struct k8s_meta, labels) },
    { .name = "annotations", .type = KF_KVS, .off = offsetof(struct k8s_meta, annotations) },
    { .name = "uid", .type = KF_IGNORE },
    { .name = "resourceVersion", .type = KF_IGNORE },
    { .name = "generation", .type = KF_IGNORE },
    { .name = "creationTimestamp", .type = KF_IGNORE },
    { .name = "deletionTimestamp", .type = KF_IGNORE },
    { .name = "deletionGracePeriodSeconds", .type = KF_IGNORE },
    { .name = "managedFields", .type = KF_IGNORE },
    { .name = "ownerReferences", .type = KF_IGNORE },
    { .name = "finalizers", .type = KF_IGNORE },
    { .name = "generateName", .type = KF_IGNORE },
    { .name = "selfLink", .type = KF_IGNORE },
    { NULL },
};

static const struct k8s_kind_def *kind_lookup(const char *kind)
{
    for (int i = 0; i < K8S_NKINDS; i++)
        if (!strcmp(kind_defs[i]->name, kind))
            return kind_defs[i];
    return NULL;
}

static void decode_object(const struct ydoc *d, const struct ydoc_node *n, struct k8s_objs *out,
                          struct cfg_errs *errs, uint32_t *seq);

static void decode_list(const struct ydoc *d, const struct ydoc_node *n, const char *kind,
                        struct k8s_objs *out, struct cfg_errs *errs, uint32_t *seq)
{
    const struct ydoc_node *items = ydoc_get(n, "items");
    if (!items || ydoc_is_null(items))
        return;
    if (items->type != YDOC_SEQ) {
        cfg_errs_add(errs, CFG_ERROR, d->file, items->line, items->col, kind,
                     "items: expected a list, got %s", ydoc_type_name(items));
        return;
    }
    for (uint32_t i = 0; i < items->n; i++)
        decode_object(d, items->kids[i], out, errs, seq);
}

static void decode_object(const struct ydoc *d, const struct ydoc_node *n, struct k8s_objs *out,
                          struct cfg_errs *errs, uint32_t *seq)
{
    if (n->type != YDOC_MAP) {
        cfg_errs_add(errs, CFG_ERROR, d->file, n->line, n->col, NULL,
                     "expected a Kubernetes object (a map with apiVersion and kind), got %s",
                     ydoc_type_name(n));
        return;
    }
    const struct ydoc_node *kn = ydoc_get(n, "kind");
    const char *kind = ydoc_scalar(kn);
    if (!kind) {
        cfg_errs_add(errs, CFG_ERROR, d->file, n->line, n->col, NULL,
                     "kind: required field is missing");
        return;
    }
    size_t kl = strlen(kind);
    if (kl >= 4 && !strcmp(kind + kl - 4, "List") && ydoc_get(n, "items")) {
        decode_list(d, n, kind, out, errs, seq);
        return;
    }

    const struct k8s_kind_def *def = kind_lookup(kind);
    const struct ydoc_node *mn = ydoc_get(n, "metadata");
    if (!def) {
        const char *name = ydoc_scalar(ydoc_get(mn, "name"));
        const char *ns = ydoc_scalar(ydoc_get(mn, "namespace"));
        char id[512];
        snprintf(id, sizeof(id), "%s %s%s%s", kind, name ? (ns ? ns : "default") : "",
                 name ? "/" : "", name ? name : "(unnamed)");
        cfg_errs_add(errs, CFG_WARNING, d->file, kn->line, kn->col, id,
                     "kind %s is not supported, skipped", kind);
        return;
    }

    struct arena *a = arena_new(2048);
    struct k8s_obj *o = arena_calloc(a, 1, sizeof(*o));
    atomic_init(&o->refs, 1);
    o->arena = a;
    o->kind = def->kind;
    o->kind_name = def->name;
    o->file = arena_strdup(a, d->file);
    o->pos = k8s__pos(n);
    o->seq = (*seq)++;

    struct k8s_dctx c = { .o = o, .errs = errs, .a = a };
    if (def->init)
        def->init(o);
    /* metadata first: every message names the object */
    bool cluster_scoped = def->kind == K8S_INGRESSCLASS || def->kind == K8S_PROXYCONFIG;
    o->id = arena_printf(a, "%s", def->name);
    if (mn && !ydoc_is_null(mn)) {
        if (mn->type != YDOC_MAP) {
            k8s__path_key(&c, "metadata");
            k8s__err(&c, mn, "expected a map, got %s", ydoc_type_name(mn));
            k8s__path_restore(&c, 0);
        } else {
            /* name the object before any metadata message */
            const char *name = ydoc_scalar(ydoc_get(mn, "name"));
            const char *ns = ydoc_scalar(ydoc_get(mn, "namespace"));
            if (name && cluster_scoped)
                o->id = arena_printf(a, "%s %s", def->name, name);
            else if (name)
                o->id = arena_printf(a, "%s %s/%s", def->name, ns ? ns : "default", name);
            k8s__path_key(&c, "metadata");
            k8s__decode_map(&c, meta_fields, mn, &o->meta);
            k8s__path_restore(&c, 0);
        }
    }
    if (!o->meta.ns || cluster_scoped)
        o->meta.ns = cluster_scoped ? "" : "default";
    if (!o->meta.name && def->kind != K8S_PROXYCONFIG)
        k8s_obj_error(o, errs, k8s__pos(mn ? mn : n), "metadata.name: required field is missing");
    o->key = cluster_scoped ? arena_strdup(a, o->meta.name ? o->meta.name : "")
                            : arena_printf(a, "%s/%s", o->meta.ns, o->meta.name ? o->meta.name : "");

    /* apiVersion */
    const struct ydoc_node *av = ydoc_get(n, "apiVersion");
    const char *api = ydoc_scalar(av);
    if (!api) {
        k8s_obj_error(o, errs, k8s__pos(n), "apiVersion: required field is missing");
    } else {
        bool ok = false;
        for (int i = 0; def->api_versions[i]; i++)
            ok |= !strcmp(def->api_versions[i], api);
        if (!ok)
            k8s_obj_error(o, errs, k8s__pos(av), "apiVersion: \"%s\" is not supported for %s (want %s)",
                          api, def->name, def->api_versions[0]);
    }

    /* the kind's own fields */
    for (uint32_t i = 0; i < n->n; i++) {
        const struct ydoc_node *k = n->kids[2 * i], *v = n->kids[2 * i + 1];
        const char *key = k->type == YDOC_SCALAR ? k->str : "?";
        if (ydoc_get(n, key) != v) {
            k8s_obj_error(o, errs, k8s__pos(k), "%s: duplicate field \"%s\"", key, key);
            continue;
        }
        /* status is the cluster's, never configuration (kubectl get -o yaml prints it) */
        if (!strcmp(key, "apiVersion") || !strcmp(key, "kind") || !strcmp(key, "metadata") ||
            !strcmp(key, "status"))
            continue;
        const struct k8s_field *f = NULL;
        for (const struct k8s_field *r = def->top; r->name; r++)
            if (!strcmp(r->name, key))
                f = r;
        if (!f) {
            k8s_obj_warn(o, errs, k8s__pos(k), "%s: unknown field \"%s\"", key, key);
            continue;
        }
        /* one-row table so required/positions behave as for nested maps */
        struct k8s_field one[2] = { *f, { NULL } };
        struct ydoc_node wrap = { .type = YDOC_MAP, .line = n->line, .col = n->col, .n = 1 };
        struct ydoc_node *kv[2] = { (struct ydoc_node *)k, (struct ydoc_node *)v };
        wrap.kids = kv;
        k8s__decode_map(&c, one, &wrap, &o->u);
    }
    for (const struct k8s_field *r = def->top; r->name; r++)
        if (r->required && !ydoc_get(n, r->name))
            k8s_obj_error(o, errs, k8s__pos(n), "%s: required field is missing", r->name);
    if (def->check)
        def->check(&c, n);
    k8s_objs_push(out, o);
}

void k8s_decode_stream(const struct ydoc *d, struct k8s_objs *out, struct cfg_errs *errs)
{
    uint32_t seq = out->n;
    for (size_t i = 0; i < d->ndocs; i++)
        decode_object(d, d->docs[i], out, errs, &seq);
}

/* ---- small shared helpers ---- */

const struct k8s_kv *k8s_kv_find(const struct k8s_kvs *kv, const char *k)
{
    for (uint32_t i = 0; i < kv->n; i++)
        if (!strcmp(kv->v[i].k, k))
            return &kv->v[i];
    return NULL;
}

const char *k8s_kv_get(const struct k8s_kvs *kv, const char *k)
{
    const struct k8s_kv *e = k8s_kv_find(kv, k);
    return e ? e->v : NULL;
}

bool k8s_base64_decode(struct arena *a, const char *in, size_t inlen, const unsigned char **out,
                       size_t *outlen)
{
    /* Kubernetes writes base64 in one line; tolerate folded input by stripping whitespace */
    char *clean = malloc(inlen + 1);
    size_t n = 0;
    if (!clean)
        abort();
    for (size_t i = 0; i < inlen; i++)
        if (in[i] != '\n' && in[i] != '\r' && in[i] != ' ' && in[i] != '\t')
            clean[n++] = in[i];
    /* EVP_DecodeBlock skips some bytes it does not know: check the alphabet first */
    size_t pad = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = clean[i];
        bool alpha = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                     (ch >= '0' && ch <= '9') || ch == '+' || ch == '/';
        if (ch == '=' && i + 2 >= n)
            pad++;
        else if (!alpha || pad) {
            free(clean);
            return false;
        }
    }
    if (n % 4 != 0) {
        free(clean);
        return false;
    }
    unsigned char *buf = arena_alloc(a, n / 4 * 3 + 1);
    int r = n ? EVP_DecodeBlock(buf, (const unsigned char *)clean, (int)n) : 0;
    if (r < 0) {
        free(clean);
        return false;
    }
    /* EVP_DecodeBlock counts the padding as zero bytes: take them back off */
    size_t len = (size_t)r;
    if (n >= 1 && clean[n - 1] == '=')
        len--;
    if (n >= 2 && clean[n - 2] == '=')
        len--;
    free(clean);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return true;
}

bool k8s_parse_hostport(const char *s, struct sockaddr_storage *sa, socklen_t *salen)
{
    char host[64];
    const char *colon;
    unsigned long long port;
    memset(sa, 0, sizeof(*sa));
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof(host))
            return false;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            return false;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    if (!str_to_u64(str_cstr(colon + 1), 65535, &port) || port == 0)
        return false;
    struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
    if (s[0] != '[' && inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *salen = sizeof(*in4);
        return true;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *salen = sizeof(*in6);
        return true;
    }
    return false;
}

bool k8s__is_ip(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

bool k8s_parse_cidr(const char *s, unsigned char addr[16], int *family, unsigned *prefix)
{
    char ip[64];
    const char *slash = strchr(s, '/');
    unsigned long long p;
    if (!slash || (size_t)(slash - s) >= sizeof(ip))
        return false;
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, ip, addr) == 1)
        *family = AF_INET;
    else if (inet_pton(AF_INET6, ip, addr) == 1)
        *family = AF_INET6;
    else
        return false;
    if (!str_to_u64(str_cstr(slash + 1), *family == AF_INET ? 32 : 128, &p))
        return false;
    *prefix = (unsigned)p;
    return true;
}
