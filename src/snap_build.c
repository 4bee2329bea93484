/* SPDX-License-Identifier: Apache-2.0 */
/*
 * snap_build: the second half of a load, once every object is decoded and
 * quarantine has decided which version of each object is live.
 *
 *   reference checks   Ingress -> Service (+ port), Ingress/ProxyConfig ->
 *                      kubernetes.io/tls Secret, Service -> CA Secret
 *   resolution         Ingress backend -> Service port (number or name) ->
 *                      targetPort -> EndpointSlice / Endpoints port, named
 *                      as the EndpointSlice controller names it (the Service
 *                      port's name, "" when unnamed) -> endpoints + readiness
 *   policy             ProxyConfig defaults <- Service annotations <- Ingress
 *                      annotations; a backend whose Ingress overrides the
 *                      policy gets its own name ("ns/svc:port@ns/ingress")
 *   contents           settings, backends (+ hash rings), routes
 *                      (route_build), NetworkPolicy table, TLS store
 *
 * Everything derived lives in the snapshot arena, except the endpoint sets
 * (struct snap_epset: one block per Service port, refcounted, shared with the
 * previous snapshot when their inputs did not change); names and paths point
 * into the refcounted objects the snapshot keeps. Lookups are hash maps, so the
 * build is linear in objects + paths + endpoints. Loader thread.
 */
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingressd/arena.h"
#include "ingressd/hc.h"
#include "ingressd/lb.h"
#include "ingressd/tls.h"
#include "snap-int.h"

/* the live version of an object (resolution) */
struct k8s_obj *snap__find(struct build *b, enum k8s_kind k, const char *key)
{
    return smap_get(&b->by_kind, k, key);
}

/* any decoded version of an object, broken or not (reference checks) */
static struct k8s_obj *find_any(struct build *b, enum k8s_kind k, const char *key)
{
    return smap_get(&b->seen, k, key);
}

/* "x<sep>y" in the arena; the hot string builder of a load (no printf) */
static char *join(struct arena *a, const char *x, char sep, const char *y)
{
    size_t lx = strlen(x), ly = strlen(y);
    char *d = arena_alloc(a, lx + ly + 2);
    memcpy(d, x, lx);
    d[lx] = sep;
    memcpy(d + lx + 1, y, ly + 1);
    return d;
}

static const char *nskey(struct build *b, const char *ns, const char *name)
{
    return join(b->tmp, ns, '/', name);
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

static void xerr(struct build *b, struct k8s_obj *o, struct k8s_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* a reference problem: counted in a dry run, reported otherwise */
static void xerr(struct build *b, struct k8s_obj *o, struct k8s_pos pos, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    if (b->dry) {
        b->dry_hits++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    k8s_obj_error(o, b->errs, pos, "%s", msg);
}

/* ---- cross-object checks (fresh objects only; a reused one was checked when good) ---- */

static void check_tls_secret(struct build *b, struct k8s_obj *o, const char *ns, const char *name,
                             struct k8s_pos pos, const char *field)
{
    struct k8s_obj *sec = find_any(b, K8S_SECRET, nskey(b, ns, name));
    if (!sec)
        xerr(b, o, pos, "%s: Secret %s/%s not found", field, ns, name);
    else if (strcmp(sec->u.sec.type, "kubernetes.io/tls") != 0)
        xerr(b, o, pos, "%s: Secret %s/%s is of type %s, not kubernetes.io/tls",
                      field, ns, name, sec->u.sec.type);
}

/*
 * rule < 0: spec.defaultBackend; else spec.rules[rule].http.paths[path].backend.
 * The name is formatted only for a message: 10,000 clean paths must not pay
 * an snprintf each.
 */
static const char *backend_where(char *buf, size_t cap, int rule, uint32_t path)
{
    if (rule < 0)
        return "spec.defaultBackend";
    snprintf(buf, cap, "spec.rules[%d].http.paths[%u].backend", rule, path);
    return buf;
}

static void check_backend_ref(struct build *b, struct k8s_obj *o, const struct k8s_ing_backend *bk,
                              int rule, uint32_t path)
{
    char wbuf[96];
    const char *where;
    if (!bk->set || !bk->service)
        return;
    struct k8s_obj *so = find_any(b, K8S_SERVICE, nskey(b, o->meta.ns, bk->service));
    if (!so) {
        where = b->dry ? "" : backend_where(wbuf, sizeof(wbuf), rule, path);
        xerr(b, o, bk->pos, "%s.service.name: Service %s/%s not found", where,
                      o->meta.ns, bk->service);
        return;
    }
    if ((!bk->port_name && !bk->port_number) || so->nerrors)
        return; /* reported by the decoder, here or on the Service */
    if (!svc_port(&so->u.svc, bk)) {
        where = b->dry ? "" : backend_where(wbuf, sizeof(wbuf), rule, path);
        if (bk->port_name)
            xerr(b, o, bk->port_pos,
                          "%s.service.port.name: Service %s/%s has no port named \"%s\"", where,
                          o->meta.ns, bk->service, bk->port_name);
        else
            xerr(b, o, bk->port_pos,
                          "%s.service.port.number: Service %s/%s has no port %u", where,
                          o->meta.ns, bk->service, bk->port_number);
    }
}

void snap__check_ingress(struct build *b, struct k8s_obj *o)
{
    struct k8s_ingress *ing = &o->u.ing;
    char where[96];
    check_backend_ref(b, o, &ing->default_backend, -1, 0);
    for (uint32_t i = 0; i < ing->nrules; i++)
        for (uint32_t j = 0; j < ing->rules[i].npaths; j++)
            check_backend_ref(b, o, &ing->rules[i].paths[j].backend, (int)i, j);
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

void snap__check_service(struct build *b, struct k8s_obj *o)
{
    const char *ca = o->u.svc.policy.upstream_ca;
    if (ca) {
        const char *ns, *name;
        split_nsname(b, ca, &ns, &name);
        if (!strchr(ca, '/'))
            ns = o->meta.ns;
        if (!find_any(b, K8S_SECRET, nskey(b, ns, name))) {
            const struct k8s_kv *kv = k8s_kv_find(&o->meta.annotations, "ingressd/upstream-ca-secret");
            if (!kv)
                kv = k8s_kv_find(&o->meta.annotations, "nginx.ingress.kubernetes.io/proxy-ssl-secret");
            xerr(b, o, kv ? kv->pos : o->pos, "metadata.annotations.%s: Secret %s/%s not found",
                          kv ? kv->k : "ingressd/upstream-ca-secret", ns, name);
        }
    }
}

void snap__check_proxycfg(struct build *b, struct k8s_obj *o)
{
    const struct k8s_ing_backend *bk = &o->u.pc.default_backend;
    if (bk->set && bk->service) {
        const char *ns = bk->ns ? bk->ns : "default";
        struct k8s_obj *so = find_any(b, K8S_SERVICE, nskey(b, ns, bk->service));
        if (!so)
            xerr(b, o, bk->pos, "spec.defaultBackend.service.name: Service %s/%s not found", ns,
                 bk->service);
        else if (!so->nerrors && bk->port_name && !svc_port(&so->u.svc, bk))
            xerr(b, o, bk->port_pos,
                 "spec.defaultBackend.service.port.name: Service %s/%s has no port named \"%s\"",
                 ns, bk->service, bk->port_name);
        else if (!so->nerrors && bk->port_number && !svc_port(&so->u.svc, bk))
            xerr(b, o, bk->port_pos,
                 "spec.defaultBackend.service.port.number: Service %s/%s has no port %u", ns,
                 bk->service, bk->port_number);
    }
    const char *dc = o->u.pc.s.default_certificate;
    if (dc && strchr(dc, '/')) {
        const char *ns, *name;
        split_nsname(b, dc, &ns, &name);
        check_tls_secret(b, o, ns, name, o->u.pc.defcert_pos, "spec.defaultCertificate");
    }
}

/* ---- resolution ---- */

/*
 * The socket address of a dotted-quad IPv4 endpoint, parsed as strictly as
 * inet_pton (four decimal parts 0-255, no leading zeros); false for anything
 * else, which then goes the general way. e is zeroed. 50,000 endpoints went
 * through "ip:port" -> strrchr -> inet_pton (a twentieth of a cold load).
 */
static bool ep_sockaddr_v4(struct snap_endpoint *e, const char *ip, uint32_t port)
{
    uint32_t a = 0;
    const char *p = ip;
    if (port == 0 || port > 65535)
        return false;
    for (int part = 0; part < 4; part++) {
        unsigned v = 0, digits = 0;
        if (part && *p++ != '.')
            return false;
        for (; *p >= '0' && *p <= '9'; p++) {
            if (digits && v == 0)
                return false; /* a leading zero */
            v = v * 10 + (unsigned)(*p - '0');
            if (++digits > 3 || v > 255)
                return false;
        }
        if (!digits)
            return false;
        a = a << 8 | v;
    }
    if (*p)
        return false;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&e->sa;
    in4->sin_family = AF_INET;
    in4->sin_port = htons((uint16_t)port);
    in4->sin_addr.s_addr = htonl(a);
    e->salen = sizeof(*in4);
    return true;
}

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
    char digits[8], *q = digits + sizeof(digits) - 1;
    uint32_t pv = port;
    *q = '\0';
    do
        *--q = (char)('0' + pv % 10);
    while ((pv /= 10) != 0);
    /* scratch: epset_for() copies the names into the set's own block */
    if (strchr(ip, ':')) {
        size_t l = strlen(ip);
        char *br = arena_alloc(b->tmp, l + 3);
        br[0] = '[';
        memcpy(br + 1, ip, l);
        br[l + 1] = ']';
        br[l + 2] = '\0';
        e->addr = join(b->tmp, br, ':', q);
    } else {
        e->addr = join(b->tmp, ip, ':', q);
    }
    if (!ep_sockaddr_v4(e, ip, port) && !k8s_parse_hostport(e->addr, &e->sa, &e->salen))
        return; /* decoders reject bad addresses; a reused object cannot carry one */
    e->ready = ready;
    e->terminating = terminating;
    b->neps++;
}

/*
 * The pod port for Service port sp in one group of endpoint ports: the port
 * named like the Service port (EndpointSlice controller rule; "" = unnamed),
 * else the one named like a named targetPort, else a numeric targetPort when
 * the group lists no ports at all, else a group's single port when one side
 * left it unnamed (hand-written slices and Endpoints). 0 = none.
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
    if (n == 1 && (!*ports[0].name || !*sp->name) && ports[0].port)
        return ports[0].port;
    return 0;
}

/*
 * The same pod may sit in two slices for a moment (the controller moves
 * endpoints between slices non-atomically): keep one entry per address, ready
 * if any copy says so, so it is not balanced to twice.
 */
static void dedupe_eps(struct build *b)
{
    struct smap seen;
    uint32_t out = 0;
    smap_init(&seen, b->neps);
    for (uint32_t i = 0; i < b->neps; i++) {
        struct snap_endpoint *e = &b->eps[i];
        uintptr_t have = (uintptr_t)smap_get(&seen, 0, e->addr);
        if (have) {
            struct snap_endpoint *k = &b->eps[have - 1];
            if (e->ready && !e->terminating && !(k->ready && !k->terminating)) {
                k->ready = true;
                k->terminating = false;
            }
            continue;
        }
        b->eps[out] = *e;
        smap_set(&seen, 0, b->eps[out].addr, (void *)(uintptr_t)(out + 1));
        out++;
    }
    b->neps = out;
    smap_free(&seen);
}

static uint32_t resolve_endpoints(struct build *b, const struct k8s_obj *svc,
                                  const struct k8s_svc_port *sp)
{
    uint32_t port_seen = 0, groups = 0;
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
            groups++;
            for (uint32_t i = 0; i < e->naddrs; i++)
                ep_push(b, e->addrs[i].ip, port, e->addrs[i].ready, e->addrs[i].terminating);
        }
    } else {
        const struct k8s_obj *eo = snap__find(b, K8S_ENDPOINTS, svc->key);
        const struct k8s_endpointslice *e = eo ? &eo->u.eps : NULL;
        for (uint32_t s = 0; e && s < e->nsubsets; s++) {
            const struct k8s_ep_subset *ss = &e->subsets[s];
            uint32_t port = group_port(ss->ports, ss->nports, sp);
            if (!port)
                continue;
            several |= port_seen && port_seen != port;
            port_seen = port;
            groups++;
            for (uint32_t i = 0; i < ss->naddrs; i++)
                if (ss->addrs[i].ip)
                    ep_push(b, ss->addrs[i].ip, port, true, false);
            for (uint32_t i = 0; i < ss->nnot_ready; i++)
                if (ss->not_ready[i].ip)
                    ep_push(b, ss->not_ready[i].ip, port, false, false);
        }
    }
    if (groups > 1)
        dedupe_eps(b);
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
    const struct k8s_obj *sec = snap__find(b, K8S_SECRET, nskey(b, ns, name));
    if (!sec)
        return NULL;
    *len = sec->u.sec.ca ? sec->u.sec.calen : sec->u.sec.crtlen;
    return sec->u.sec.ca ? sec->u.sec.ca : sec->u.sec.crt;
}

/*
 * The health entry the previous set of the same Service port holds for addr,
 * with one more ref, or NULL. Endpoints usually keep their order, so the
 * same index is tried first; a map of the old set is built only on a
 * mismatch. Taking a ref by atomic increment is safe: the previous snapshot
 * holds its set (and so one ref per entry) for the whole load, and
 * hc_ep_put frees only at zero; it spares the health table's mutex and hash
 * chain for the endpoints that stay.
 */
static const char *u32_str(uint32_t v, char buf[12]);
static bool buf_cat(char *buf, size_t cap, size_t *len, const char *s);

static struct hc_ep *prev_hc(const struct snap_epset *pes, struct smap *pmap, uint32_t i,
                             const char *addr)
{
    const struct snap_endpoint *pe = NULL;
    if (!pes)
        return NULL;
    if (i < pes->neps && !strcmp(pes->eps[i].addr, addr)) {
        pe = &pes->eps[i];
    } else {
        if (!pmap->cap) {
            smap_init(pmap, pes->neps);
            for (uint32_t j = 0; j < pes->neps; j++)
                smap_set(pmap, 0, pes->eps[j].addr, (void *)&pes->eps[j]);
        }
        pe = smap_get(pmap, 0, addr);
    }
    if (!pe || !pe->hc)
        return NULL;
    atomic_fetch_add_explicit(&pe->hc->refs, 1, memory_order_relaxed);
    return pe->hc;
}

void snap__epset_put(struct snap_epset *e)
{
    if (!e || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < e->neps; i++)
        hc_ep_put(e->eps[i].hc);
    free(e);
}

static void epset_keep(struct build *b, struct snap_epset *e)
{
    if (b->nepsets == b->capepsets) {
        b->capepsets = b->capepsets ? b->capepsets * 2 : 64;
        b->epsets = realloc(b->epsets, b->capepsets * sizeof(*b->epsets));
        if (!b->epsets)
            abort();
    }
    b->epsets[b->nepsets++] = e;
    smap_set(&b->cur_eps, 0, e->key, e);
}

/* the objects the endpoints of svc come from, in order (tmp arena) */
static uint32_t epset_inputs(struct build *b, const struct k8s_obj *svc,
                             const struct k8s_obj ***out)
{
    uint32_t n = 0;
    struct chain *ch = smap_get(&b->slices, 0, svc->key);
    for (struct chain *c = ch; c; c = c->next)
        n++;
    const struct k8s_obj *eo = ch ? NULL : snap__find(b, K8S_ENDPOINTS, svc->key);
    if (eo)
        n = 1;
    const struct k8s_obj **v = arena_alloc(b->tmp, (n ? n : 1) * sizeof(*v));
    n = 0;
    for (struct chain *c = ch; c; c = c->next)
        v[n++] = c->o;
    if (eo)
        v[n++] = eo;
    *out = v;
    return n;
}

/*
 * The endpoint set of Service port sp: shared with this build's other
 * backends of the same port, else taken over from the previous snapshot when
 * its inputs are the very same objects, else resolved anew.
 */
static struct snap_epset *epset_for(struct build *b, const struct k8s_obj *so,
                                    const struct k8s_svc_port *sp, const char *svckey)
{
    char key[600], portbuf[12];
    size_t kl = 0;
    if (!buf_cat(key, sizeof(key), &kl, svckey) || !buf_cat(key, sizeof(key), &kl, ":") ||
        !buf_cat(key, sizeof(key), &kl, u32_str(sp->port, portbuf)))
        return NULL;
    struct snap_epset *e = smap_get(&b->cur_eps, 0, key);
    if (e)
        return e;

    const struct k8s_obj **srcs;
    uint32_t nsrcs = epset_inputs(b, so, &srcs);
    uint32_t port_index = (uint32_t)(sp - so->u.svc.ports);
    const struct snap_objset *pos = b->prev ? b->prev->objects : NULL;
    struct snap_epset *pes = pos ? smap_get(&pos->epidx, 0, key) : NULL;
    if (pes && pes->svc == so && pes->port_index == port_index && pes->nsrcs == nsrcs &&
        (!nsrcs || !memcmp(pes->srcs, srcs, nsrcs * sizeof(*srcs)))) {
        atomic_fetch_add_explicit(&pes->refs, 1, memory_order_relaxed);
        epset_keep(b, pes);
        return pes;
    }

    uint32_t pod_port = resolve_endpoints(b, so, sp);
    size_t strbytes = 0;
    for (uint32_t i = 0; i < b->neps; i++)
        strbytes += strlen(b->eps[i].addr) + 1;
    /* one block: the set, its inputs, its endpoints, their names, its key */
    size_t sz = sizeof(*e) + nsrcs * sizeof(*srcs) + b->neps * sizeof(*e->eps) + strbytes + kl + 1;
    char *blk = calloc(1, sz + 16);
    if (!blk)
        abort();
    e = (struct snap_epset *)blk;
    char *p = blk + sizeof(*e);
    p += (16 - ((uintptr_t)p & 15)) & 15; /* endpoints hold sockaddr_storage: align */
    e->eps = (struct snap_endpoint *)p;
    p += b->neps * sizeof(*e->eps);
    e->srcs = (const struct k8s_obj **)p;
    p += nsrcs * sizeof(*srcs);
    atomic_init(&e->refs, 1);
    e->svc = so;
    e->port_index = port_index;
    e->nsrcs = nsrcs;
    if (nsrcs)
        memcpy(e->srcs, srcs, nsrcs * sizeof(*srcs));
    e->neps = b->neps;
    e->pod_port = pod_port;
    struct smap pmap = { 0 };
    for (uint32_t i = 0; i < b->neps; i++) {
        struct snap_endpoint *ep = &e->eps[i];
        *ep = b->eps[i];
        size_t l = strlen(b->eps[i].addr) + 1;
        memcpy(p, b->eps[i].addr, l);
        ep->addr = p;
        p += l;
        ep->hc = prev_hc(pes, &pmap, i, ep->addr);
        if (!ep->hc)
            ep->hc = hc_ep_get(ep->addr);
        e->nready += ep->ready && !ep->terminating;
    }
    smap_free(&pmap);
    memcpy(p, key, kl + 1);
    e->key = p;
    epset_keep(b, e);
    return e;
}

/* decimal of v into buf[12], returns the start */
static const char *u32_str(uint32_t v, char buf[12])
{
    char *q = buf + 11;
    *q = '\0';
    do
        *--q = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    return q;
}

/* appends s to buf (NUL-terminated); false when it does not fit */
static bool buf_cat(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t l = strlen(s);
    if (*len + l + 1 > cap)
        return false;
    memcpy(buf + *len, s, l + 1);
    *len += l;
    return true;
}

/* the backend index for an Ingress backend, creating it on first use; -1 = none */
static int backend_for(struct build *b, const struct k8s_obj *ingo, const struct k8s_ing_backend *bk)
{
    if (!bk->set || !bk->service || bk->has_resource)
        return -1;
    /* an Ingress's backends live in its namespace; ProxyConfig's names one */
    bool is_ing = ingo->kind == K8S_INGRESS;
    struct k8s_policy none;
    k8s_policy_init(&none);
    const struct k8s_policy *ip = is_ing ? &ingo->u.ing.policy : &none;
    const char *svckey = nskey(b, is_ing ? ingo->meta.ns : bk->ns ? bk->ns : "default", bk->service);
    const struct k8s_obj *so = snap__find(b, K8S_SERVICE, svckey);
    const struct k8s_svc_port *sp = so ? svc_port(&so->u.svc, bk) : NULL;
    /* the name, built on the stack: most calls find an existing backend */
    char namebuf[768], portbuf[12];
    const char *port = bk->port_name && !sp ? bk->port_name
                                            : u32_str(sp ? sp->port : bk->port_number, portbuf);
    size_t nl = 0;
    bool fits = buf_cat(namebuf, sizeof(namebuf), &nl, svckey) &&
                buf_cat(namebuf, sizeof(namebuf), &nl, ":") &&
                buf_cat(namebuf, sizeof(namebuf), &nl, port) &&
                (!ip->any || (buf_cat(namebuf, sizeof(namebuf), &nl, "@") &&
                              buf_cat(namebuf, sizeof(namebuf), &nl, ingo->key)));
    if (!fits)
        return -1; /* names are bounded by the API (253 + 63 + 253 + ...) */
    const char *name = namebuf;
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
    name = arena_strndup(b->a, namebuf, nl);
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
    if (is_ing && ip->upstream_ca)
        ca = find_ca(b, ingo, ip->upstream_ca, &calen);
    if (so && so->u.svc.type == K8S_SVC_EXTERNALNAME) {
        be->external_name = so->u.svc.external_name;
        be->external_port = sp ? (uint16_t)sp->port : 0;
    } else if (sp) {
        struct snap_epset *es = epset_for(b, so, sp, svckey);
        b->npin[idx].target_name = sp->target.is_num ? NULL : sp->target.str;
        b->npin[idx].target_port = sp->target.is_num ? sp->target.num : es ? es->pod_port : 0;
        if (es) {
            be->eps = es->eps;
            be->neps = es->neps;
            be->nready = es->nready;
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
    act->ssl_redirect = ((act->has_tls && ing->annot.ssl_redirect != 0) ||
                         ing->annot.force_ssl_redirect) && b->any_tls_listener;
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
    /* ingress-nginx enforces use-regex whenever rewrite-target is set, so the
     * documented `/something(/|$)(.*)` -> `/$2` manifests work unchanged */
    bool regex = p->path_type == K8S_PATH_IMPL &&
                 (o->u.ing.annot.use_regex || o->u.ing.annot.rewrite_target);
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
        .line = (unsigned)((int32_t)p->pos.line + o->line_shift),
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

/* ---- the snapshot ---- */

struct snap *snap__build(struct build *b, const char *path)
{
    struct snap *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->magic = SNAP_MAGIC;
    atomic_init(&s->refs, 1);
    s->gen = b->prev ? b->prev->gen + 1 : 1;
    s->arena = arena_new(256 * 1024);
    s->source = arena_strdup(s->arena, path);
    b->s = s;
    b->a = s->arena;

    /* settings */
    const struct k8s_proxycfg *pc = &b->pc->u.pc;
    s->cfg = pc->s;
    s->cfg.nlisteners = pc->nlisten;
    s->cfg.listeners = arena_calloc(b->a, pc->nlisten ? pc->nlisten : 1, sizeof(*s->cfg.listeners));
    for (uint32_t i = 0; i < pc->nlisten; i++) {
        struct snap_listener *l = &s->cfg.listeners[i];
        l->address = pc->listen[i].address;
        l->tls = pc->listen[i].tls;
        k8s_parse_hostport(l->address, &l->sa, &l->salen);
        b->any_tls_listener |= l->tls;
    }

    /* indexes over the live set */
    smap_init(&b->slices, 64);
    smap_init(&b->be_idx, 64);
    smap_init(&b->cur_eps, 64);
    bool default_adopts = false;
    uint32_t nnp = 0;
    for (uint32_t i = 0; i < b->live.n; i++) {
        struct k8s_obj *o = b->live.v[i];
        if (!o)
            continue;
        if (o->kind == K8S_ENDPOINTSLICE && o->u.eps.service) {
            struct chain *c = arena_alloc(b->tmp, sizeof(*c));
            const char *k = nskey(b, o->meta.ns, o->u.eps.service);
            c->o = o;
            c->next = NULL;
            /* keep file order within a Service: append */
            struct chain *head = smap_get(&b->slices, 0, k);
            if (!head) {
                smap_set(&b->slices, 0, k, c);
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
    for (uint32_t i = 0; i < b->live.n; i++) {
        struct k8s_obj *o = b->live.v[i];
        if (!o || o->kind != K8S_INGRESS || !ingress_served(b, o, default_adopts))
            continue;
        const struct k8s_ingress *ing = &o->u.ing;
        s->ningresses++;
        for (uint32_t r = 0; r < ing->nrules; r++)
            for (uint32_t p = 0; p < ing->rules[r].npaths; p++)
                add_route(b, o, &ing->rules[r], &ing->rules[r].paths[p]);
        if (ing->default_backend.set && !b->defrec.act) {
            b->defrec.act = new_action(b, o, NULL, NULL, false);
            b->defrec.be = backend_for(b, o, &ing->default_backend);
        }
    }
    if (!b->defrec.act && pc->default_backend.set) {
        struct snap_route *act = arena_calloc(b->a, 1, sizeof(*act));
        act->ingress = "ProxyConfig";
        act->seq = b->nspecs;
        b->defrec.act = act;
        b->defrec.be = backend_for(b, b->pc, &pc->default_backend);
    }
    s->nrules = b->nspecs;

    /* backends into the arena, then point the actions at them */
    s->nbackends = b->nbes;
    s->backends = b->nbes ? arena_memdup(b->a, b->bes, b->nbes * sizeof(*b->bes)) : NULL;
    for (uint32_t i = 0; i < b->nspecs; i++)
        b->recs[i].act->backend = b->recs[i].be >= 0 ? &s->backends[b->recs[i].be] : NULL;
    if (b->defrec.act) {
        b->defrec.act->backend = b->defrec.be >= 0 ? &s->backends[b->defrec.be] : NULL;
        s->default_route = b->defrec.act;
    }
    for (uint32_t i = 0; i < s->nbackends; i++)
        if (s->backends[i].algo == LB_HASH || s->backends[i].affinity == LB_AFFINITY_CLIENT_IP)
            s->backends[i].ring = lb_ring_build(b->a, &s->backends[i]);
    s->routes = route_build(b->a, b->specs, b->nspecs, b->errs);
    /* kept for admin /config; the strings belong to the objects this snapshot holds */
    s->route_specs = b->nspecs ? arena_memdup(b->a, b->specs, b->nspecs * sizeof(*b->specs)) : NULL;
    s->nroute_specs = b->nspecs;

    /* NetworkPolicy */
    if (nnp) {
        struct k8s_obj **pols = arena_alloc(b->tmp, nnp * sizeof(*pols));
        uint32_t k = 0;
        for (uint32_t i = 0; i < b->live.n; i++)
            if (b->live.v[i] && b->live.v[i]->kind == K8S_NETPOL)
                pols[k++] = b->live.v[i];
        s->netpol = np_build(b->a, pols, k, b->npin, b->nbes);
    }

    /* TLS termination */
    if (b->any_tls_listener) {
        struct tls_cert_spec *specs = NULL, def = { 0 }, *defp = NULL;
        uint32_t nspecs = 0, cap = 0;
        for (uint32_t i = 0; i < b->live.n; i++) {
            struct k8s_obj *o = b->live.v[i];
            if (!o || o->kind != K8S_INGRESS || !ingress_served(b, o, default_adopts))
                continue;
            for (uint32_t t = 0; t < o->u.ing.ntls; t++) {
                const struct k8s_ing_tls *tl = &o->u.ing.tls[t];
                const struct k8s_obj *sec =
                    tl->secret ? snap__find(b, K8S_SECRET, nskey(b, o->meta.ns, tl->secret)) : NULL;
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
        const struct k8s_obj *dsec = dc ? snap__find(b, K8S_SECRET, dc) : NULL;
        if (dsec && dsec->u.sec.crt && dsec->u.sec.key) {
            def = (struct tls_cert_spec){
                .secret = dsec->key, .crt = dsec->u.sec.crt, .crtlen = dsec->u.sec.crtlen,
                .key = dsec->u.sec.key, .keylen = dsec->u.sec.keylen, .file = dsec->file,
                .line = dsec->pos.line,
            };
            defp = &def;
        }
        s->tls = tls_store_build(specs, nspecs, defp, &s->cfg.tls, b->errs);
        free(specs);
    }

    return s;
}
