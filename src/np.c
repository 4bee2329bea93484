/* SPDX-License-Identifier: Apache-2.0 */
/*
 * np: NetworkPolicy for traffic that comes through ingressd.
 *
 * Kubernetes enforces NetworkPolicy at the pod; a proxy in front of the pods
 * can apply the same decision earlier, with the client's address as the
 * peer. The compile step (loader thread, np_build) answers once per backend
 * "which policies select these pods?" and flattens the admitting rules into
 * arrays in the snapshot arena:
 *
 *   policy selects a backend  <=>  same namespace, policyTypes includes
 *   Ingress (or is absent), and every podSelector.matchLabels pair is in the
 *   Service's selector (empty podSelector = every pod of the namespace)
 *
 *   client admitted           <=>  no policy selects the backend, or some
 *   rule of a selecting policy admits both the client IP (ipBlock cidr minus
 *   except; no `from` = everyone; pod/namespace selector peers never match an
 *   outside client) and the pod port (no `ports` = all; TCP only; named ports
 *   resolve through the Service's targetPort name; endPort ranges)
 *
 * np_allow() only reads that immutable table: lock-free, no allocation, any
 * worker. IPv4-mapped IPv6 clients are matched as IPv4.
 */
#include "ingressd/np.h"

#include <netinet/in.h>
#include <string.h>

#include "ingressd/arena.h"
#include "ingressd/k8s.h"
#include "ingressd/snap-t.h"

struct np_cidr {
    int family;                        /* AF_INET / AF_INET6 */
    unsigned prefix;
    unsigned char addr[16];
};

struct np_peer {
    struct np_cidr cidr;
    struct np_cidr *except;
    uint32_t nexcept;
};

struct np_portrange {
    uint16_t lo, hi;
};

struct np_rule {
    bool all_peers;                    /* no `from`: every source */
    struct np_peer *peers;
    uint32_t npeers;
    bool all_ports;                    /* no `ports`: every port */
    struct np_portrange *ports;
    uint32_t nports;
};

struct np_be {
    bool selected;                     /* some policy selects these pods */
    struct np_rule *rules;
    uint32_t nrules;
};

struct np_table {
    struct np_be *be;                  /* by backend id */
    uint32_t nbe;
};

/* ---- compile (loader thread) ---- */

static bool parse_cidr(const char *s, struct np_cidr *c)
{
    /* k8s_netpol.c validated the syntax already; this only converts */
    return s && k8s_parse_cidr(s, c->addr, &c->family, &c->prefix);
}

static bool selects(const struct k8s_obj *pol, const struct np_backend_in *in)
{
    const struct k8s_netpol *np = &pol->u.np;
    if (!in->svc || strcmp(pol->meta.ns, in->svc->meta.ns) != 0)
        return false;
    if (np->policy_types.n) {
        bool ingress = false;
        for (uint32_t i = 0; i < np->policy_types.n; i++)
            ingress |= !strcmp(np->policy_types.v[i], "Ingress");
        if (!ingress)
            return false;
    }
    const struct k8s_kvs *sel = &in->svc->u.svc.selector;
    for (uint32_t i = 0; i < np->pod_selector.n; i++) {
        const char *v = k8s_kv_get(sel, np->pod_selector.v[i].k);
        if (!v || strcmp(v, np->pod_selector.v[i].v) != 0)
            return false;
    }
    return true;
}

static void compile_rule(struct arena *a, const struct k8s_np_rule *r,
                         const struct np_backend_in *in, struct np_rule *out)
{
    memset(out, 0, sizeof(*out));
    out->all_peers = r->nfrom == 0;
    out->peers = r->nfrom ? arena_calloc(a, r->nfrom, sizeof(*out->peers)) : NULL;
    for (uint32_t i = 0; i < r->nfrom; i++) {
        const struct k8s_np_peer *p = &r->from[i];
        if (!p->has_ipblock)
            continue;                  /* pod/namespace selectors: never an outside client */
        struct np_peer *q = &out->peers[out->npeers];
        if (!parse_cidr(p->ipblock.cidr, &q->cidr))
            continue;
        q->except = p->ipblock.except.n
                        ? arena_calloc(a, p->ipblock.except.n, sizeof(*q->except))
                        : NULL;
        for (uint32_t e = 0; e < p->ipblock.except.n; e++)
            if (parse_cidr(p->ipblock.except.v[e], &q->except[q->nexcept]))
                q->nexcept++;
        out->npeers++;
    }
    out->all_ports = r->nports == 0;
    out->ports = r->nports ? arena_calloc(a, r->nports, sizeof(*out->ports)) : NULL;
    for (uint32_t i = 0; i < r->nports; i++) {
        const struct k8s_np_port *p = &r->ports[i];
        struct np_portrange pr;
        if (p->protocol && strcmp(p->protocol, "TCP") != 0)
            continue;                  /* HTTP is TCP */
        if (!p->port.set) {
            pr = (struct np_portrange){ 1, 65535 };
        } else if (p->port.is_num) {
            pr.lo = (uint16_t)p->port.num;
            pr.hi = (uint16_t)(p->end_port ? p->end_port : p->port.num);
        } else if (in->target_name && p->port.str && !strcmp(in->target_name, p->port.str) &&
                   in->target_port) {
            pr.lo = pr.hi = (uint16_t)in->target_port;
        } else {
            continue;                  /* a named port these pods do not expose to us */
        }
        out->ports[out->nports++] = pr;
    }
}

struct np_table *np_build(struct arena *a, struct k8s_obj *const *pols, uint32_t npol,
                          const struct np_backend_in *in, uint32_t nbe)
{
    struct np_table *t = NULL;
    for (uint32_t b = 0; b < nbe; b++) {
        uint32_t nrules = 0;
        bool selected = false;
        for (uint32_t p = 0; p < npol; p++)
            if (selects(pols[p], &in[b])) {
                selected = true;
                nrules += pols[p]->u.np.ningress;
            }
        if (!selected)
            continue;
        if (!t) {
            t = arena_calloc(a, 1, sizeof(*t));
            t->be = arena_calloc(a, nbe, sizeof(*t->be));
            t->nbe = nbe;
        }
        struct np_be *e = &t->be[b];
        e->selected = true;
        e->rules = nrules ? arena_calloc(a, nrules, sizeof(*e->rules)) : NULL;
        for (uint32_t p = 0; p < npol; p++) {
            if (!selects(pols[p], &in[b]))
                continue;
            for (uint32_t r = 0; r < pols[p]->u.np.ningress; r++)
                compile_rule(a, &pols[p]->u.np.ingress[r], &in[b], &e->rules[e->nrules++]);
        }
    }
    return t;
}

/* ---- decide (workers, lock-free) ---- */

static bool in_cidr(const struct np_cidr *c, int family, const unsigned char *addr)
{
    if (c->family != family)
        return false;
    unsigned full = c->prefix / 8, rem = c->prefix % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    return rem == 0 || ((c->addr[full] ^ addr[full]) & (unsigned char)(0xff00u >> rem)) == 0;
}

static bool peer_admits(const struct np_rule *r, int family, const unsigned char *addr)
{
    if (r->all_peers)
        return true;
    for (uint32_t i = 0; i < r->npeers; i++) {
        const struct np_peer *p = &r->peers[i];
        if (!in_cidr(&p->cidr, family, addr))
            continue;
        bool excepted = false;
        for (uint32_t e = 0; e < p->nexcept && !excepted; e++)
            excepted = in_cidr(&p->except[e], family, addr);
        if (!excepted)
            return true;
    }
    return false;
}

static bool port_admits(const struct np_rule *r, uint16_t port)
{
    if (r->all_ports)
        return true;
    for (uint32_t i = 0; i < r->nports; i++)
        if (port >= r->ports[i].lo && port <= r->ports[i].hi)
            return true;
    return false;
}

bool np_allow(const struct np_table *t, const struct snap_backend *be,
              const struct sockaddr *client, uint16_t port)
{
    if (!t || !be || be->id >= t->nbe || !t->be[be->id].selected)
        return true;
    const struct np_be *e = &t->be[be->id];
    unsigned char addr[16];
    int family;
    if (client->sa_family == AF_INET) {
        family = AF_INET;
        memcpy(addr, &((const struct sockaddr_in *)client)->sin_addr, 4);
    } else if (client->sa_family == AF_INET6) {
        const unsigned char *a6 = ((const struct sockaddr_in6 *)client)->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (!memcmp(a6, mapped, 12)) {
            family = AF_INET;
            memcpy(addr, a6 + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(addr, a6, 16);
        }
    } else {
        return false;
    }
    for (uint32_t i = 0; i < e->nrules; i++)
        if (port_admits(&e->rules[i], port) && peer_admits(&e->rules[i], family, addr))
            return true;
    return false;
}
