/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lb_hash: consistent hashing (algo "hash") and session affinity.
 *
 * The ring (ketama, as nginx's `hash ... consistent` and twemproxy's ketama):
 * each endpoint owns LB_RING_VNODES points at lb_hash64("<ip:port>#<i>") on a
 * 2^64 circle; a key goes to the owner of the first point at or after
 * lb_hash64(key), walking clockwise past endpoints that cannot take the
 * request (not ready, terminating, tried, down or ejected). Properties:
 * - it depends only on the endpoint addresses (not on slice order, indexes,
 *   worker or process), so every worker and every replica with the same
 *   EndpointSlices sends a key to the same endpoint;
 * - removing one of n endpoints moves only the keys it owned (about 1/n;
 *   the unit test measures it); adding one takes about 1/(n+1);
 * - an endpoint that is down keeps its points: its keys fall to their next
 *   clockwise owners and come back when it recovers.
 * The ring is built once per snapshot on the loader thread (lb_ring_build,
 * into the snapshot arena) and is immutable; point -> endpoint index is valid
 * for that snapshot only, which is the only place it is used.
 * Without a ring (the loader did not build one) picks use rendezvous hashing
 * (highest lb_hash64(key, address) wins): same agreement and movement
 * properties, O(neps) per pick.
 *
 * Keys (ingressd/hash-by, nginx.ingress.kubernetes.io/upstream-hash-by):
 * remote_addr (client IP, port excluded), header:NAME, cookie:NAME, path.
 * A request without the key (header or cookie absent) hashes the client IP:
 * still deterministic, and it spreads such clients instead of piling them on
 * the endpoint of the empty string.
 *
 * Session affinity:
 * - ClientIP (Service.spec.sessionAffinity): the ring with the client IP as
 *   key, whatever the algorithm. No per-process state, so there is nothing to
 *   time out: sessionAffinityConfig.clientIP.timeoutSeconds is accepted and
 *   has no effect beyond "sticky for as long as the endpoint set allows".
 * - Cookie (ingressd/affinity: cookie): the cookie names an endpoint by
 *   lb_cookie_value(address) - a hash of the address, never an index, so it
 *   means the same thing after a reload, on another worker and on another
 *   replica. A cookie naming a usable endpoint is followed; otherwise the
 *   backend's algorithm picks and the response sets the cookie.
 *
 * Threads: lb_ring_build on the loader; everything else on workers, read-only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "ingressd/arena.h"
#include "ingressd/hc.h"
#include "ingressd/snap-t.h"
#include "lb_int.h"

/* ---- hashing ---- */

static uint64_t lb_fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

static uint64_t lb_fnv_more(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

#define LB_FNV_BASIS 0xcbf29ce484222325ull

uint64_t lb_hash64(const void *p, size_t n)
{
    return lb_fmix64(lb_fnv_more(LB_FNV_BASIS, p, n));
}

void lb_cookie_value(const char *addr, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h = lb_hash64(addr, strlen(addr));
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[h & 0xf];
        h >>= 4;
    }
    out[16] = '\0';
}

/* ---- the ring ---- */

static int lb_point_cmp(const void *a, const void *b, void *arg)
{
    const struct snap_backend *be = arg;
    const struct lb_ring_point *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    /* a tie is decided by address, not index, to stay replica-independent */
    return strcmp(be->eps[x->ep].addr, be->eps[y->ep].addr);
}

/*
 * Builds the ring of be's endpoints into arena a (loader thread). Returns
 * NULL for a backend without endpoints. Store it in be->ring before the
 * snapshot is published.
 */
struct lb_ring *lb_ring_build(struct arena *a, const struct snap_backend *be)
{
    if (!be || !be->neps)
        return NULL;
    struct lb_ring *r = arena_calloc(a, 1, sizeof(*r));
    r->neps = be->neps;
    r->npts = 0;
    r->pts = arena_calloc(a, (size_t)be->neps * LB_RING_VNODES, sizeof(*r->pts));
    for (uint32_t i = 0; i < be->neps; i++) {
        const char *addr = be->eps[i].addr;
        if (!addr)
            continue;
        size_t len = strlen(addr);
        uint64_t base = lb_fnv_more(LB_FNV_BASIS, addr, len);
        base = lb_fnv_more(base, "#", 1);
        for (uint32_t v = 0; v < LB_RING_VNODES; v++) {
            char num[12];
            int nn = snprintf(num, sizeof(num), "%u", v);
            r->pts[r->npts].h = lb_fmix64(lb_fnv_more(base, num, (size_t)nn));
            r->pts[r->npts].ep = i;
            r->npts++;
        }
    }
    qsort_r(r->pts, r->npts, sizeof(*r->pts), lb_point_cmp, (void *)be);
    return r;
}

uint32_t lb_ring_points(const struct lb_ring *r)
{
    return r ? r->npts : 0;
}

static const struct snap_endpoint *lb_ring_walk(const struct snap_backend *be,
                                                const struct lb_ring *r, struct lb_req *req,
                                                uint64_t key)
{
    uint32_t lo = 0, hi = r->npts;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->pts[mid].h < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (uint32_t i = 0; i < r->npts; i++) {
        const struct lb_ring_point *pt = &r->pts[(lo + i) % r->npts];
        const struct snap_endpoint *ep = &be->eps[pt->ep];
        if (lb_ep_usable(ep, req))
            return ep;
    }
    return NULL;
}

/* rendezvous (highest random weight) hashing: the fallback without a ring */
static const struct snap_endpoint *lb_hrw(const struct snap_backend *be, struct lb_req *req,
                                          uint64_t key)
{
    const struct snap_endpoint *best = NULL;
    uint64_t best_w = 0;
    for (uint32_t i = 0; i < be->neps; i++) {
        const struct snap_endpoint *ep = &be->eps[i];
        if (!ep->addr || !lb_ep_usable(ep, req))
            continue;
        uint64_t h = lb_fnv_more(LB_FNV_BASIS, &key, sizeof(key));
        uint64_t w = lb_fmix64(lb_fnv_more(h, ep->addr, strlen(ep->addr)));
        if (!best || w > best_w || (w == best_w && strcmp(ep->addr, best->addr) < 0)) {
            best = ep;
            best_w = w;
        }
    }
    return best;
}

const struct snap_endpoint *lb__hash_pick(const struct snap_backend *be, struct lb_req *req,
                                          uint64_t key)
{
    const struct lb_ring *r = be->ring;
    if (r && r->npts && r->neps == be->neps)
        return lb_ring_walk(be, r, req, key);
    return lb_hrw(be, req, key);
}

/* ---- keys ---- */

uint64_t lb__client_key(const struct lb_req *req)
{
    const struct sockaddr *sa = req->client;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        return lb_hash64(&sin->sin_addr, 4);
    }
    if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *b = sin6->sin6_addr.s6_addr;
        static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp(b, v4mapped, 12) == 0)
            return lb_hash64(b + 12, 4); /* same key as the plain IPv4 client */
        return lb_hash64(b, 16);
    }
    return lb_hash64("", 0);
}

/* Cookie: a=1; b=2 - returns the value of `name`, quotes stripped */
static struct str lb_cookie_in(struct str hdr, const char *name)
{
    size_t nl = strlen(name);
    while (hdr.n) {
        struct str pair = str_trim(str_next_token(&hdr, ';'));
        struct str k = str_trim(str_next_token(&pair, '='));
        if (k.n == nl && memcmp(k.p, name, nl) == 0) {
            struct str v = str_trim(pair);
            if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"')
                v = str_make(v.p + 1, v.n - 2);
            return v;
        }
    }
    return STR_NULL;
}

struct str lb__cookie(const struct lb_req *req, const char *name)
{
    if (!req->get_header || !name)
        return STR_NULL;
    struct str hdr = req->get_header(req->ctx, STR_LIT("cookie"));
    if (!hdr.p)
        return STR_NULL;
    return lb_cookie_in(hdr, name);
}

static bool lb_hash_key(const struct snap_backend *be, const struct lb_req *req, uint64_t *key)
{
    struct str v = STR_NULL;
    switch (be->hash_by) {
    case LB_HASH_REMOTE_ADDR:
        return false;
    case LB_HASH_HEADER:
        if (req->get_header && be->hash_key)
            v = req->get_header(req->ctx, str_cstr(be->hash_key));
        break;
    case LB_HASH_COOKIE:
        v = lb__cookie(req, be->hash_key);
        break;
    case LB_HASH_PATH:
        v = req->path;
        break;
    }
    if (!v.p)
        return false;
    *key = lb_hash64(v.p, v.n);
    return true;
}

static const struct snap_endpoint *lb_hashalgo_pick(const struct snap_backend *be,
                                                    struct lb_req *req)
{
    uint64_t key;
    if (!lb_hash_key(be, req, &key))
        key = lb__client_key(req);
    return lb__hash_pick(be, req, key);
}

const struct lb_ops lb__hash_ops = { .name = "hash", .pick = lb_hashalgo_pick };

/* ---- cookie affinity ---- */

const struct snap_endpoint *lb__cookie_pick(const struct snap_backend *be, struct lb_req *req,
                                            const struct lb_ops *ops)
{
    const char *name = be->affinity_cookie ? be->affinity_cookie : "INGRESSD";
    struct str v = lb__cookie(req, name);
    if (v.n == 16) {
        for (uint32_t i = 0; i < be->neps; i++) {
            const struct snap_endpoint *ep = &be->eps[i];
            if (!ep->addr)
                continue;
            char cv[17];
            lb_cookie_value(ep->addr, cv);
            if (memcmp(cv, v.p, 16) == 0) {
                if (lb_ep_usable(ep, req))
                    return ep;
                break;
            }
        }
    }
    const struct snap_endpoint *ep = ops->pick(be, req);
    if (ep && ep->addr) {
        lb_cookie_value(ep->addr, req->cookie_value);
        req->set_cookie = true;
    }
    return ep;
}
