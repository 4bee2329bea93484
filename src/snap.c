/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap: configuration file -> immutable snapshot. The one path used by
 * start-up, every reload and `ingressd -t` (nginx's ngx_init_cycle with
 * ngx_test_config), so what -t accepts is exactly what a reload serves.
 *
 *   read file(s) --> ydoc trees --> k8s objects (field tables, k8s_*.c)
 *        |                               |
 *   invalid YAML: NULL            per object: errors? --> quarantine:
 *   (nothing changes)             last good version from prev->objects,
 *                                 or left out when new
 *                                        |
 *        cross-object checks (Service/port/Secret references) --> quarantine
 *                                        |
 *        resolution: Ingress backend -> Service port -> targetPort ->
 *        EndpointSlice/Endpoints port (by the Service port's name, as the
 *        EndpointSlice controller writes them) -> endpoints + readiness
 *                                        |
 *        snapshot arena: settings, backends (policy from annotations),
 *        routes (route_build), TLS store, NetworkPolicy table
 *
 * Why objects are refcounted and kept by the snapshot: quarantine must keep
 * serving the *last good version* of an object that is now broken. Each
 * decoded object owns a small arena (k8s.h); the snapshot holds a ref on
 * every object it was built from (snap->objects) and points into them for
 * names and paths instead of copying, so a reload that keeps an object pays
 * nothing to keep it. Everything derived (backends, endpoints, routes) is in
 * the snapshot's own arena and dies with it.
 *
 * Lookups while building are hash maps keyed by "ns/name" (Services,
 * Secrets, Endpoints), by "ns/service" (EndpointSlices, chained) and by
 * backend name, so a load is linear in the number of objects, paths and
 * endpoints. Loader thread (or main for -t); snap_release() from any thread.
 */
#include "ingressd/snap.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ingressd/arena.h"
#include "ingressd/hc.h"
#include "ingressd/k8s.h"
#include "ingressd/lb.h"
#include "ingressd/np.h"
#include "ingressd/route.h"
#include "ingressd/str.h"
#include "ingressd/tls.h"
#include "ingressd/ydoc.h"

/* ---- a small string-keyed hash map (open addressing, grows at 50%) ---- */

struct smap_ent {
    const char *k;                     /* not owned */
    uint64_t h;
    uint32_t tag;                      /* kind, so one map can hold several */
    void *v;
};

struct smap {
    struct smap_ent *e;
    uint32_t cap, n;
};

static uint64_t smap_hash(uint32_t tag, const char *k)
{
    return str_hash(str_cstr(k)) ^ ((uint64_t)tag * 0x9e3779b97f4a7c15ull);
}

static void smap_init(struct smap *m, uint32_t hint)
{
    uint32_t cap = 16;
    while (cap < hint * 2)
        cap <<= 1;
    m->e = calloc(cap, sizeof(*m->e));
    if (!m->e)
        abort();
    m->cap = cap;
    m->n = 0;
}

static void smap_free(struct smap *m)
{
    free(m->e);
    memset(m, 0, sizeof(*m));
}

static struct smap_ent *smap_slot(const struct smap *m, uint32_t tag, const char *k, uint64_t h)
{
    for (uint32_t i = (uint32_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        struct smap_ent *e = &m->e[i];
        if (!e->k || (e->h == h && e->tag == tag && !strcmp(e->k, k)))
            return e;
    }
}

static void *smap_get(const struct smap *m, uint32_t tag, const char *k)
{
    if (!m->cap)
        return NULL;
    return smap_slot(m, tag, k, smap_hash(tag, k))->v;
}

/* sets k -> v; returns the previous value (NULL if new) */
static void *smap_set(struct smap *m, uint32_t tag, const char *k, void *v)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct smap old = *m;
        smap_init(m, old.cap);
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.e[i].k) {
                *smap_slot(m, old.e[i].tag, old.e[i].k, old.e[i].h) = old.e[i];
                m->n++;
            }
        free(old.e);
    }
    uint64_t h = smap_hash(tag, k);
    struct smap_ent *e = smap_slot(m, tag, k, h);
    void *prev = e->v;
    if (!e->k) {
        m->n++;
        *e = (struct smap_ent){ k, h, tag, v };
    } else {
        e->v = v;
    }
    return prev;
}

/* ---- the object set a snapshot keeps (refs + index for the next load) ---- */

struct snap_objset {
    struct k8s_objs objs;              /* refs, file order */
    struct smap idx;                   /* (kind, key) -> obj */
};

static void objset_free(struct snap_objset *os)
{
    if (!os)
        return;
    k8s_objs_free(&os->objs);
    smap_free(&os->idx);
    free(os);
}

static struct k8s_obj *prev_version(const struct snap *prev, const struct k8s_obj *o)
{
    const struct snap_objset *os = prev ? prev->objects : NULL;
    return os ? smap_get(&os->idx, o->kind, o->key) : NULL;
}

/* ---- reading the configuration ---- */

struct src_file {
    char *path;
    char *text;
    size_t len;
};

static int read_file(const char *path, struct src_file *f, struct cfg_errs *errs)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    for (;;) {
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        size_t r = fread(buf + len, 1, cap - len, fp);
        len += r;
        if (r == 0)
            break;
    }
    bool err = ferror(fp);
    fclose(fp);
    if (err) {
        cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL, "cannot read: %s", strerror(errno));
        free(buf);
        return -1;
    }
    f->path = strdup(path);
    f->text = buf;
    f->len = len;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* path: a file, or a directory whose *.yaml / *.yml files are read in name order */
static int read_config(const char *path, struct src_file **out, size_t *nout,
                       struct cfg_errs *errs)
{
    struct stat st;
    *out = NULL;
    *nout = 0;
    if (stat(path, &st) < 0) {
        cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        *out = calloc(1, sizeof(**out));
        if (!*out)
            abort();
        if (read_file(path, *out, errs) < 0)
            return -1;
        *nout = 1;
        return 0;
    }
    DIR *d = opendir(path);
    if (!d) {
        cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' ||
            !((l > 5 && !strcmp(de->d_name + l - 5, ".yaml")) ||
              (l > 4 && !strcmp(de->d_name + l - 4, ".yml"))))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = realloc(names, cap * sizeof(*names));
            if (!names)
                abort();
        }
        if (asprintf(&names[n], "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/",
                     de->d_name) < 0)
            abort();
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    *out = calloc(n ? n : 1, sizeof(**out));
    if (!*out)
        abort();
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0 && read_file(names[i], &(*out)[*nout], errs) == 0)
            (*nout)++;
        else
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

static void free_files(struct src_file *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].path);
        free(f[i].text);
    }
    free(f);
}

/* ---- the build ---- */

struct chain {                         /* EndpointSlices of one Service */
    struct k8s_obj *o;
    struct chain *next;
};

struct route_rec {
    struct snap_route *act;
    int be;                            /* backend index or -1 */
};

struct build {
    struct snap *s;
    struct arena *a;                   /* the snapshot's */
    struct arena *tmp;                 /* scratch, freed after the build */
    struct cfg_errs *errs;
    const struct snap *prev;
    struct k8s_objs live;              /* what the snapshot is built from (refs) */
    struct k8s_obj *pc;
    struct smap by_kind;               /* (kind, key) -> live obj */
    struct smap slices;                /* "ns/service" -> struct chain */
    struct snap_quarantine *q;
    uint32_t nq, capq;
    /* backends under construction */
    struct snap_backend *bes;
    struct np_backend_in *npin;
    uint32_t nbes, capbes;
    struct smap be_idx;                /* name -> (index + 1) */
    struct route_spec *specs;
    struct route_rec *recs;
    uint32_t nspecs, capspecs;
    struct route_rec defrec;
    struct snap_endpoint *eps;         /* scratch vector for one backend */
    uint32_t neps, capeps;
    bool any_tls_listener;
};

static void quarantine(struct build *b, const struct k8s_obj *bad, bool serving_previous)
{
    if (b->nq == b->capq) {
        b->capq = b->capq ? b->capq * 2 : 8;
        b->q = realloc(b->q, b->capq * sizeof(*b->q));
        if (!b->q)
            abort();
    }
    b->q[b->nq++] = (struct snap_quarantine){
        .object = arena_strdup(b->a, bad->id),
        .file = arena_strdup(b->a, bad->file),
        .line = bad->first_error_pos.line ? bad->first_error_pos.line : bad->pos.line,
        .error = arena_strdup(b->a, bad->first_error ? bad->first_error : "rejected"),
        .serving_previous = serving_previous,
    };
}

/*
 * Replaces live[i] (broken) by its previous good version, or removes it.
 * Returns the object now at that place (NULL when removed).
 */
static struct k8s_obj *reject(struct build *b, uint32_t i)
{
    struct k8s_obj *bad = b->live.v[i];
    struct k8s_obj *pv = prev_version(b->prev, bad);
    quarantine(b, bad, pv != NULL);
    b->live.v[i] = pv ? k8s_obj_ref(pv) : NULL;
    k8s_obj_put(bad);
    return b->live.v[i];
}

static struct k8s_obj *find(struct build *b, enum k8s_kind k, const char *key)
{
    return smap_get(&b->by_kind, k, key);
}

static const char *nskey(struct build *b, const char *ns, const char *name)
{
    return arena_printf(b->tmp, "%s/%s", ns, name);
}

static const struct k8s_svc_port *svc_port(const struct k8s_service *svc,
                                           const struct k8s_ing_backend *bk)
{
    for (uint32_t i = 0; i < svc->nports; i++) {
        const struct k8s_svc_port *p = &svc->ports[i];
        if (bk->port_name ? !strcmp(p->name, bk->port_name) : p->port == bk->port_number)
            return p;
    }
    return NULL;
}

/* ---- cross-object checks (fresh objects only; a reused one was checked when good) ---- */

static void check_tls_secret(struct build *b, struct k8s_obj *o, const char *ns, const char *name,
                             struct k8s_pos pos, const char *field)
{
    struct k8s_obj *sec = find(b, K8S_SECRET, nskey(b, ns, name));
    if (!sec)
        k8s_obj_error(o, b->errs, pos, "%s: Secret %s/%s not found", field, ns, name);
    else if (strcmp(sec->u.sec.type, "kubernetes.io/tls") != 0)
        k8s_obj_error(o, b->errs, pos, "%s: Secret %s/%s is of type %s, not kubernetes.io/tls",
                      field, ns, name, sec->u.sec.type);
}

static void check_backend_ref(struct build *b, struct k8s_obj *o, const struct k8s_ing_backend *bk,
                              const char *where)
{
    if (!bk->set || !bk->service)
        return;
    struct k8s_obj *so = find(b, K8S_SERVICE, nskey(b, o->meta.ns, bk->service));
    if (!so) {
        k8s_obj_error(o, b->errs, bk->pos, "%s.service.name: Service %s/%s not found", where,
                      o->meta.ns, bk->service);
        return;
    }
    if (!bk->port_name && !bk->port_number)
        return; /* reported by the decoder */
    if (!svc_port(&so->u.svc, bk)) {
        if (bk->port_name)
            k8s_obj_error(o, b->errs, bk->port_pos,
                          "%s.service.port.name: Service %s/%s has no port named \"%s\"", where,
                          o->meta.ns, bk->service, bk->port_name);
        else
            k8s_obj_error(o, b->errs, bk->port_pos,
                          "%s.service.port.number: Service %s/%s has no port %u", where,
                          o->meta.ns, bk->service, bk->port_number);
    }
}

static void check_ingress(struct build *b, struct k8s_obj *o)
{
    struct k8s_ingress *ing = &o->u.ing;
    char where[96];
    check_backend_ref(b, o, &ing->default_backend, "spec.defaultBackend");
    for (uint32_t i = 0; i < ing->nrules; i++)
        for (uint32_t j = 0; j < ing->rules[i].npaths; j++) {
            snprintf(where, sizeof(where), "spec.rules[%u].http.paths[%u].backend", i, j);
            check_backend_ref(b, o, &ing->rules[i].paths[j].backend, where);
        }
    for (uint32_t i = 0; i < ing->ntls; i++)
        if (ing->tls[i].secret) {
            snprintf(where, sizeof(where), "spec.tls[%u].secretName", i);
            check_tls_secret(b, o, o->meta.ns, ing->tls[i].secret,
                             ing->tls[i].secret_pos.line ? ing->tls[i].secret_pos : ing->tls[i].pos,
                             where);
        }
}

static void split_nsname(struct build *b, const char *s, const char **ns, const char **name)
{
    const char *slash = strchr(s, '/');
    if (slash) {
        *ns = arena_strndup(b->tmp, s, (size_t)(slash - s));
        *name = slash + 1;
    } else {
        *ns = "default";
        *name = s;
    }
}

static void check_service(struct build *b, struct k8s_obj *o)
{
    const char *ca = o->u.svc.policy.upstream_ca;
    if (ca) {
        const char *ns, *name;
        split_nsname(b, ca, &ns, &name);
        if (!strchr(ca, '/'))
            ns = o->meta.ns;
        if (!find(b, K8S_SECRET, nskey(b, ns, name))) {
            const struct k8s_kv *kv = k8s_kv_find(&o->meta.annotations, "ingressd/upstream-ca-secret");
            if (!kv)
                kv = k8s_kv_find(&o->meta.annotations, "nginx.ingress.kubernetes.io/proxy-ssl-secret");
            k8s_obj_error(o, b->errs, kv ? kv->pos : o->pos, "metadata.annotations.%s: Secret %s/%s not found",
                          kv ? kv->k : "ingressd/upstream-ca-secret", ns, name);
        }
    }
}

static void check_proxycfg(struct build *b, struct k8s_obj *o)
{
    const char *dc = o->u.pc.s.default_certificate;
    if (dc && strchr(dc, '/')) {
        const char *ns, *name;
        split_nsname(b, dc, &ns, &name);
        check_tls_secret(b, o, ns, name, o->u.pc.defcert_pos, "spec.defaultCertificate");
    }
}

/* ---- resolution ---- */

static void ep_push(struct build *b, const char *ip, uint32_t port, bool ready, bool terminating)
{
    if (b->neps == b->capeps) {
        b->capeps = b->capeps ? b->capeps * 2 : 64;
        b->eps = realloc(b->eps, b->capeps * sizeof(*b->eps));
        if (!b->eps)
            abort();
    }
    struct snap_endpoint *e = &b->eps[b->neps];
    memset(e, 0, sizeof(*e));
    e->addr = strchr(ip, ':') ? arena_printf(b->a, "[%s]:%u", ip, port)
                              : arena_printf(b->a, "%s:%u", ip, port);
    if (!k8s_parse_hostport(e->addr, &e->sa, &e->salen))
        return; /* decoders reject bad addresses; a reused object cannot carry one */
    e->ready = ready;
    e->terminating = terminating;
    b->neps++;
}

/*
 * The pod port for Service port sp in one group of endpoint ports: the port
 * named like the Service port (EndpointSlice controller rule; "" = unnamed),
 * else the one named like a named targetPort, else a numeric targetPort when
 * the group lists no ports at all (hand-written slices). 0 = none.
 */
static uint32_t group_port(const struct k8s_ep_port *ports, uint32_t n,
                           const struct k8s_svc_port *sp)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(ports[i].name, sp->name) && ports[i].port)
            return ports[i].port;
    if (!sp->target.is_num && sp->target.str)
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(ports[i].name, sp->target.str) && ports[i].port)
                return ports[i].port;
    if (n == 0 && sp->target.is_num)
        return sp->target.num;
    if (n == 1 && !*ports[0].name && !*sp->name && ports[0].port)
        return ports[0].port;
    return 0;
}

static uint32_t resolve_endpoints(struct build *b, const struct k8s_obj *svc,
                                  const struct k8s_svc_port *sp)
{
    uint32_t port_seen = 0;
    bool several = false;
    b->neps = 0;
    struct chain *ch = smap_get(&b->slices, 0, svc->key);
    if (ch) {
        for (; ch; ch = ch->next) {
            const struct k8s_endpointslice *e = &ch->o->u.eps;
            uint32_t port = group_port(e->ports, e->nports, sp);
            if (!port)
                continue;
            several |= port_seen && port_seen != port;
            port_seen = port;
            for (uint32_t i = 0; i < e->naddrs; i++)
                ep_push(b, e->addrs[i].ip, port, e->addrs[i].ready, e->addrs[i].terminating);
        }
    } else {
        const struct k8s_obj *eo = find(b, K8S_ENDPOINTS, svc->key);
        const struct k8s_endpointslice *e = eo ? &eo->u.eps : NULL;
        for (uint32_t s = 0; e && s < e->nsubsets; s++) {
            const struct k8s_ep_subset *ss = &e->subsets[s];
            uint32_t port = group_port(ss->ports, ss->nports, sp);
            if (!port)
                continue;
            several |= port_seen && port_seen != port;
            port_seen = port;
            for (uint32_t i = 0; i < ss->naddrs; i++)
                if (ss->addrs[i].ip)
                    ep_push(b, ss->addrs[i].ip, port, true, false);
            for (uint32_t i = 0; i < ss->nnot_ready; i++)
                if (ss->not_ready[i].ip)
                    ep_push(b, ss->not_ready[i].ip, port, false, false);
        }
    }
    return several ? 0 : port_seen;
}

static void apply_policy(struct snap_backend *be, const struct k8s_policy *p)
{
    if (p->algo >= 0)
        be->algo = (enum lb_algo)p->algo;
    if (p->hash_by >= 0) {
        be->hash_by = (enum lb_hash_by)p->hash_by;
        be->hash_key = p->hash_key;
    }
    if (p->affinity >= 0)
        be->affinity = (enum lb_affinity)p->affinity;
    if (p->affinity_cookie)
        be->affinity_cookie = p->affinity_cookie;
    if (p->hc_set & K8S_HC_PATH)
        be->hc.path = p->hc.path;
    if (p->hc_set & K8S_HC_INTERVAL)
        be->hc.interval_ms = p->hc.interval_ms;
    if (p->hc_set & K8S_HC_TIMEOUT)
        be->hc.timeout_ms = p->hc.timeout_ms;
    if (p->hc_set & K8S_HC_HEALTHY)
        be->hc.healthy_threshold = p->hc.healthy_threshold;
    if (p->hc_set & K8S_HC_UNHEALTHY)
        be->hc.unhealthy_threshold = p->hc.unhealthy_threshold;
    if (p->hc_set & K8S_HC_PORT)
        be->hc.port = p->hc.port;
    if (p->retry_on)
        be->retry_on = p->retry_on & 0x7fffffffu;
    if (p->retries >= 0)
        be->retries = (uint32_t)p->retries;
    if (p->upstream_tls >= 0)
        be->upstream_tls = p->upstream_tls == 1;
}

static const unsigned char *find_ca(struct build *b, const struct k8s_obj *owner, const char *ref,
                                    size_t *len)
{
    const char *ns, *name;
    split_nsname(b, ref, &ns, &name);
    if (!strchr(ref, '/'))
        ns = owner->meta.ns;
    const struct k8s_obj *sec = find(b, K8S_SECRET, nskey(b, ns, name));
    if (!sec)
        return NULL;
    *len = sec->u.sec.ca ? sec->u.sec.calen : sec->u.sec.crtlen;
    return sec->u.sec.ca ? sec->u.sec.ca : sec->u.sec.crt;
}

/* the backend index for an Ingress backend, creating it on first use; -1 = none */
static int backend_for(struct build *b, const struct k8s_obj *ingo, const struct k8s_ing_backend *bk)
{
    if (!bk->set || !bk->service || bk->has_resource)
        return -1;
    const struct k8s_policy *ip = &ingo->u.ing.policy;
    const char *svckey = nskey(b, ingo->meta.ns, bk->service);
    const struct k8s_obj *so = find(b, K8S_SERVICE, svckey);
    const struct k8s_svc_port *sp = so ? svc_port(&so->u.svc, bk) : NULL;
    char portbuf[16];
    const char *port = sp ? (snprintf(portbuf, sizeof(portbuf), "%u", sp->port), portbuf)
                          : bk->port_name ? bk->port_name
                                          : (snprintf(portbuf, sizeof(portbuf), "%u", bk->port_number), portbuf);
    const char *name = ip->any ? arena_printf(b->a, "%s:%s@%s", svckey, port, ingo->key)
                               : arena_printf(b->a, "%s:%s", svckey, port);
    uintptr_t have = (uintptr_t)smap_get(&b->be_idx, 0, name);
    if (have)
        return (int)(have - 1);

    if (b->nbes == b->capbes) {
        b->capbes = b->capbes ? b->capbes * 2 : 64;
        b->bes = realloc(b->bes, b->capbes * sizeof(*b->bes));
        b->npin = realloc(b->npin, b->capbes * sizeof(*b->npin));
        if (!b->bes || !b->npin)
            abort();
    }
    uint32_t idx = b->nbes++;
    smap_set(&b->be_idx, 0, name, (void *)(uintptr_t)(idx + 1));
    struct snap_backend *be = &b->bes[idx];
    const struct snap_settings *cfg = &b->s->cfg;
    memset(be, 0, sizeof(*be));
    be->id = idx;
    be->name = name;
    be->service = arena_strdup(b->a, svckey);
    be->algo = cfg->load_balance;
    be->hash_by = LB_HASH_REMOTE_ADDR;
    be->affinity = LB_AFFINITY_NONE;
    be->affinity_timeout_s = 10800;
    be->affinity_cookie = "INGRESSD";
    be->hc = cfg->health;
    be->retry_on = RETRY_ON_ERROR;
    be->retries = cfg->retries;
    b->npin[idx] = (struct np_backend_in){ .svc = so };

    const unsigned char *ca = NULL;
    size_t calen = 0;
    if (so) {
        const struct k8s_service *svc = &so->u.svc;
        if (svc->session_affinity == 1) {
            be->affinity = LB_AFFINITY_CLIENT_IP;
            be->affinity_timeout_s = svc->affinity_timeout_s;
        }
        apply_policy(be, &svc->policy);
        if (svc->policy.upstream_ca)
            ca = find_ca(b, so, svc->policy.upstream_ca, &calen);
    }
    apply_policy(be, ip);
    if (ip->upstream_ca)
        ca = find_ca(b, ingo, ip->upstream_ca, &calen);
    if (so && so->u.svc.type == K8S_SVC_EXTERNALNAME) {
        be->external_name = so->u.svc.external_name;
        be->external_port = sp ? (uint16_t)sp->port : 0;
    } else if (sp) {
        uint32_t pod_port = resolve_endpoints(b, so, sp);
        b->npin[idx].target_name = sp->target.is_num ? NULL : sp->target.str;
        b->npin[idx].target_port = sp->target.is_num ? sp->target.num : pod_port;
        if (b->neps) {
            be->eps = arena_memdup(b->a, b->eps, b->neps * sizeof(*b->eps));
            be->neps = b->neps;
            for (uint32_t i = 0; i < be->neps; i++) {
                be->eps[i].hc = hc_ep_get(be->eps[i].addr);
                be->nready += be->eps[i].ready && !be->eps[i].terminating;
            }
        }
    }
    if (be->upstream_tls) {
        char msg[256] = "";
        be->upstream_verify = ca != NULL;
        be->upstream_sni = be->external_name;
        be->upstream_ssl_ctx = tls_client_ctx_new(ca, calen, ca != NULL, msg, sizeof(msg));
        if (!be->upstream_ssl_ctx && msg[0])
            cfg_errs_add(b->errs, CFG_WARNING, ingo->file, ingo->pos.line, ingo->pos.col, ingo->id,
                         "upstream TLS for %s: %s", name, msg);
    }
    return (int)idx;
}

static bool host_covered(const struct k8s_ingress *ing, const char *host)
{
    if (!host)
        return false;
    for (uint32_t i = 0; i < ing->ntls; i++)
        for (uint32_t j = 0; j < ing->tls[i].hosts.n; j++) {
            const char *h = ing->tls[i].hosts.v[j];
            if (!strcasecmp(h, host))
                return true;
            /* "*.foo.com" covers exactly one more label */
            if (h[0] == '*' && h[1] == '.') {
                const char *dot = strchr(host, '.');
                if (dot && host[0] != '*' && !strcasecmp(dot + 1, h + 2))
                    return true;
            }
        }
    return false;
}

static struct snap_route *new_action(struct build *b, const struct k8s_obj *o, const char *host,
                                     const char *path, bool regex)
{
    const struct k8s_ingress *ing = &o->u.ing;
    struct snap_route *act = arena_calloc(b->a, 1, sizeof(*act));
    act->ingress = o->key;
    act->host = host;
    act->path = path;
    act->has_tls = host_covered(ing, host);
    act->ssl_redirect = act->has_tls && ing->annot.ssl_redirect != 0 && b->any_tls_listener;
    act->rewrite_target = ing->annot.rewrite_target;
    act->rewrite_len = act->rewrite_target ? (uint32_t)strlen(act->rewrite_target) : 0;
    act->has_max_body_size = ing->annot.has_body_size;
    act->max_body_size = ing->annot.max_body_size;
    act->use_regex = regex;
    act->seq = b->nspecs;
    return act;
}

static void add_route(struct build *b, const struct k8s_obj *o, const struct k8s_ing_rule *r,
                      const struct k8s_ing_path *p)
{
    bool regex = p->path_type == K8S_PATH_IMPL && o->u.ing.annot.use_regex;
    if (b->nspecs == b->capspecs) {
        b->capspecs = b->capspecs ? b->capspecs * 2 : 256;
        b->specs = realloc(b->specs, b->capspecs * sizeof(*b->specs));
        b->recs = realloc(b->recs, b->capspecs * sizeof(*b->recs));
        if (!b->specs || !b->recs)
            abort();
    }
    struct snap_route *act = new_action(b, o, r->host, p->path, regex);
    b->recs[b->nspecs] = (struct route_rec){ act, backend_for(b, o, &p->backend) };
    b->specs[b->nspecs++] = (struct route_spec){
        .host = r->host,
        .path = p->path,
        .type = regex ? ROUTE_REGEX : p->path_type == K8S_PATH_EXACT ? ROUTE_EXACT : ROUTE_PREFIX,
        .action = act,
        .file = o->file,
        .line = p->pos.line,
        .col = p->pos.col,
        .obj = o->id,
    };
}

static bool ingress_served(struct build *b, const struct k8s_obj *o, bool default_adopts)
{
    const char *want = b->s->cfg.ingress_class;
    const struct k8s_ingress *ing = &o->u.ing;
    if (!want)
        return true;
    if (ing->class_name)
        return !strcmp(ing->class_name, want);
    if (ing->class_annotation)
        return !strcmp(ing->class_annotation, want);
    return default_adopts;
}

/* ---- public ---- */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void build_free(struct build *b)
{
    k8s_objs_free(&b->live);
    smap_free(&b->by_kind);
    smap_free(&b->slices);
    smap_free(&b->be_idx);
    arena_free(b->tmp);
    free(b->q);
    free(b->bes);
    free(b->npin);
    free(b->specs);
    free(b->recs);
    free(b->eps);
}

/* decode every file; false on unreadable input or invalid YAML (nothing applies) */
static bool decode_all(const char *path, struct k8s_objs *objs, struct cfg_errs *errs)
{
    struct src_file *files;
    size_t nfiles;
    bool ok = read_config(path, &files, &nfiles, errs) == 0;
    struct ydoc **docs = calloc(nfiles ? nfiles : 1, sizeof(*docs));
    if (!docs)
        abort();
    for (size_t i = 0; ok && i < nfiles; i++) {
        docs[i] = ydoc_parse(files[i].path, files[i].text, files[i].len, errs);
        ok = docs[i] != NULL;
    }
    for (size_t i = 0; ok && i < nfiles; i++)
        k8s_decode_stream(docs[i], objs, errs);
    for (size_t i = 0; i < nfiles; i++)
        ydoc_free(docs[i]);
    free(docs);
    free_files(files, nfiles);
    return ok;
}

struct snap *snap_load(const char *path, const struct snap *prev, const struct snap_load_opts *opts,
                       struct cfg_errs *errs)
{
    uint64_t t0 = now_ns();
    struct build b = { .errs = errs, .prev = prev };
    struct k8s_objs objs = { 0 };
    size_t errs0 = errs->nerrors;

    if (!decode_all(path, &objs, errs)) {
        k8s_objs_free(&objs);
        return NULL;
    }
    b.tmp = arena_new(64 * 1024);
    smap_init(&b.by_kind, objs.n);

    /* duplicates, then per-object quarantine; survivors (or their last good versions) go live */
    for (uint32_t i = 0; i < objs.n; i++) {
        struct k8s_obj *o = objs.v[i];
        objs.v[i] = NULL;
        struct k8s_obj *first = o->meta.name || o->kind == K8S_PROXYCONFIG
                                    ? smap_get(&b.by_kind, o->kind, o->key)
                                    : NULL;
        if (!first && o->kind == K8S_PROXYCONFIG && b.pc)
            first = b.pc;
        if (first) {
            k8s_obj_error(o, errs, o->pos, "%s is already defined at %s:%u:%u",
                          o->kind == K8S_PROXYCONFIG ? "a ProxyConfig" : "this object", first->file,
                          first->pos.line, first->pos.col);
            quarantine(&b, o, false);
            k8s_obj_put(o);
            continue;
        }
        k8s_objs_push(&b.live, o);
        if (o->nerrors && !(o = reject(&b, b.live.n - 1)))
            continue;
        smap_set(&b.by_kind, o->kind, o->key, o);
        if (o->kind == K8S_PROXYCONFIG)
            b.pc = o;
    }
    free(objs.v);

    /* references: Services and ProxyConfig first (Ingresses check against the result) */
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t i = 0; i < b.live.n; i++) {
            struct k8s_obj *o = b.live.v[i];
            if (!o || o->nerrors || prev_version(prev, o) == o)
                continue;
            if (pass == 0 && o->kind == K8S_SERVICE)
                check_service(&b, o);
            else if (pass == 0 && o->kind == K8S_PROXYCONFIG)
                check_proxycfg(&b, o);
            else if (pass == 1 && o->kind == K8S_INGRESS)
                check_ingress(&b, o);
            else
                continue;
            if (o->nerrors) {
                struct k8s_obj *pv = reject(&b, i);
                if (pv)
                    smap_set(&b.by_kind, pv->kind, pv->key, pv);
                else if (o->kind == K8S_SERVICE)
                    smap_set(&b.by_kind, K8S_SERVICE, o->key, NULL);
                if (o == b.pc)
                    b.pc = pv;
            }
        }

    if (!b.pc) {
        if (errs->nerrors == errs0)
            cfg_errs_add(errs, CFG_ERROR, path, 0, 0, NULL,
                         "no ProxyConfig (apiVersion: ingressd/v1, kind: ProxyConfig) to serve");
        build_free(&b);
        return NULL;
    }
    if (opts && opts->strict && errs->nerrors > errs0) {
        build_free(&b);
        return NULL;
    }

    struct snap *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->magic = SNAP_MAGIC;
    atomic_init(&s->refs, 1);
    s->gen = prev ? prev->gen + 1 : 1;
    s->arena = arena_new(256 * 1024);
    s->source = arena_strdup(s->arena, path);
    b.s = s;
    b.a = s->arena;

    /* settings */
    const struct k8s_proxycfg *pc = &b.pc->u.pc;
    s->cfg = pc->s;
    s->cfg.nlisteners = pc->nlisten;
    s->cfg.listeners = arena_calloc(b.a, pc->nlisten ? pc->nlisten : 1, sizeof(*s->cfg.listeners));
    for (uint32_t i = 0; i < pc->nlisten; i++) {
        struct snap_listener *l = &s->cfg.listeners[i];
        l->address = pc->listen[i].address;
        l->tls = pc->listen[i].tls;
        k8s_parse_hostport(l->address, &l->sa, &l->salen);
        b.any_tls_listener |= l->tls;
    }

    /* indexes over the live set */
    smap_init(&b.slices, 64);
    smap_init(&b.be_idx, 64);
    bool default_adopts = false;
    uint32_t nnp = 0;
    for (uint32_t i = 0; i < b.live.n; i++) {
        struct k8s_obj *o = b.live.v[i];
        if (!o)
            continue;
        if (o->kind == K8S_ENDPOINTSLICE && o->u.eps.service) {
            struct chain *c = arena_alloc(b.tmp, sizeof(*c));
            const char *k = nskey(&b, o->meta.ns, o->u.eps.service);
            c->o = o;
            c->next = NULL;
            /* keep file order within a Service: append */
            struct chain *head = smap_get(&b.slices, 0, k);
            if (!head) {
                smap_set(&b.slices, 0, k, c);
            } else {
                while (head->next)
                    head = head->next;
                head->next = c;
            }
            s->nendpoints += o->u.eps.naddrs;
        } else if (o->kind == K8S_ENDPOINTS) {
            for (uint32_t j = 0; j < o->u.eps.nsubsets; j++)
                s->nendpoints += o->u.eps.subsets[j].naddrs + o->u.eps.subsets[j].nnot_ready;
        } else if (o->kind == K8S_INGRESSCLASS && s->cfg.ingress_class &&
                   !strcmp(o->meta.name, s->cfg.ingress_class) && o->u.ic.is_default) {
            default_adopts = true;
        } else if (o->kind == K8S_SERVICE) {
            s->nservices++;
        } else if (o->kind == K8S_NETPOL) {
            nnp++;
        }
    }

    /* routes and backends, objects in file order */
    for (uint32_t i = 0; i < b.live.n; i++) {
        struct k8s_obj *o = b.live.v[i];
        if (!o || o->kind != K8S_INGRESS || !ingress_served(&b, o, default_adopts))
            continue;
        const struct k8s_ingress *ing = &o->u.ing;
        s->ningresses++;
        for (uint32_t r = 0; r < ing->nrules; r++)
            for (uint32_t p = 0; p < ing->rules[r].npaths; p++)
                add_route(&b, o, &ing->rules[r], &ing->rules[r].paths[p]);
        if (ing->default_backend.set && !b.defrec.act) {
            b.defrec.act = new_action(&b, o, NULL, NULL, false);
            b.defrec.be = backend_for(&b, o, &ing->default_backend);
        }
    }
    s->nrules = b.nspecs;

    /* backends into the arena, then point the actions at them */
    s->nbackends = b.nbes;
    s->backends = b.nbes ? arena_memdup(b.a, b.bes, b.nbes * sizeof(*b.bes)) : NULL;
    for (uint32_t i = 0; i < b.nspecs; i++)
        b.recs[i].act->backend = b.recs[i].be >= 0 ? &s->backends[b.recs[i].be] : NULL;
    if (b.defrec.act) {
        b.defrec.act->backend = b.defrec.be >= 0 ? &s->backends[b.defrec.be] : NULL;
        s->default_route = b.defrec.act;
    }
    for (uint32_t i = 0; i < s->nbackends; i++)
        if (s->backends[i].algo == LB_HASH || s->backends[i].affinity == LB_AFFINITY_CLIENT_IP)
            s->backends[i].ring = lb_ring_build(b.a, &s->backends[i]);
    s->routes = route_build(b.a, b.specs, b.nspecs, errs);

    /* NetworkPolicy */
    if (nnp) {
        struct k8s_obj **pols = arena_alloc(b.tmp, nnp * sizeof(*pols));
        uint32_t k = 0;
        for (uint32_t i = 0; i < b.live.n; i++)
            if (b.live.v[i] && b.live.v[i]->kind == K8S_NETPOL)
                pols[k++] = b.live.v[i];
        s->netpol = np_build(b.a, pols, k, b.npin, b.nbes);
    }

    /* TLS termination */
    if (b.any_tls_listener) {
        struct tls_cert_spec *specs = NULL, def = { 0 }, *defp = NULL;
        uint32_t nspecs = 0, cap = 0;
        for (uint32_t i = 0; i < b.live.n; i++) {
            struct k8s_obj *o = b.live.v[i];
            if (!o || o->kind != K8S_INGRESS || !ingress_served(&b, o, default_adopts))
                continue;
            for (uint32_t t = 0; t < o->u.ing.ntls; t++) {
                const struct k8s_ing_tls *tl = &o->u.ing.tls[t];
                const struct k8s_obj *sec =
                    tl->secret ? find(&b, K8S_SECRET, nskey(&b, o->meta.ns, tl->secret)) : NULL;
                if (!sec || !sec->u.sec.crt || !sec->u.sec.key)
                    continue;
                if (nspecs == cap) {
                    cap = cap ? cap * 2 : 16;
                    specs = realloc(specs, cap * sizeof(*specs));
                    if (!specs)
                        abort();
                }
                specs[nspecs++] = (struct tls_cert_spec){
                    .secret = sec->key, .hosts = tl->hosts.v, .nhosts = tl->hosts.n,
                    .crt = sec->u.sec.crt, .crtlen = sec->u.sec.crtlen,
                    .key = sec->u.sec.key, .keylen = sec->u.sec.keylen,
                    .file = sec->file, .line = sec->pos.line,
                };
            }
        }
        const char *dc = s->cfg.default_certificate;
        const struct k8s_obj *dsec = dc ? find(&b, K8S_SECRET, dc) : NULL;
        if (dsec && dsec->u.sec.crt && dsec->u.sec.key) {
            def = (struct tls_cert_spec){
                .secret = dsec->key, .crt = dsec->u.sec.crt, .crtlen = dsec->u.sec.crtlen,
                .key = dsec->u.sec.key, .keylen = dsec->u.sec.keylen, .file = dsec->file,
                .line = dsec->pos.line,
            };
            defp = &def;
        }
        s->tls = tls_store_build(specs, nspecs, defp, &s->cfg.tls, errs);
        free(specs);
    }

    /* quarantine records and the object set for the next load */
    s->nquarantine = b.nq;
    s->quarantine = b.nq ? arena_memdup(b.a, b.q, b.nq * sizeof(*b.q)) : NULL;
    struct snap_objset *os = calloc(1, sizeof(*os));
    if (!os)
        abort();
    smap_init(&os->idx, b.live.n);
    for (uint32_t i = 0; i < b.live.n; i++) {
        struct k8s_obj *o = b.live.v[i];
        if (!o)
            continue;
        k8s_objs_push(&os->objs, k8s_obj_ref(o));
        smap_set(&os->idx, o->kind, o->key, o);
    }
    s->objects = os;
    build_free(&b);
    s->load_ns = now_ns() - t0;
    return s;
}

void snap_release(struct snap *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < s->nbackends; i++) {
        struct snap_backend *be = &s->backends[i];
        for (uint32_t j = 0; j < be->neps; j++)
            hc_ep_put(be->eps[j].hc);
        if (be->upstream_ssl_ctx)
            SSL_CTX_free(be->upstream_ssl_ctx);
    }
    tls_store_free(s->tls);
    objset_free(s->objects);
    arena_free(s->arena);
    s->magic = 0;
    free(s);
}

const struct snap_backend *snap_find_backend(const struct snap *s, const char *name)
{
    for (uint32_t i = 0; s && i < s->nbackends; i++)
        if (!strcmp(s->backends[i].name, name))
            return &s->backends[i];
    return NULL;
}
