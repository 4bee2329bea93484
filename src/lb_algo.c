/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lb_algo: the stateless-looking algorithms - round_robin, least_conn, ewma.
 *
 * round_robin: nginx's smooth weighted round robin with every weight equal
 *   (EndpointSlices carry no weights today) is exactly a rotation, so the
 *   whole state is one atomic cursor per backend (lb__cursor, kept outside the
 *   snapshot and shared by all workers). One fetch_add per pick, then the
 *   (cursor mod m)-th of the m endpoints that can take the request: 3N picks
 *   over 3 usable endpoints give exactly N each, also when others are not
 *   ready, down or ejected (their share is not handed to a neighbour). Above
 *   256 endpoints the scan is skipped: cursor mod n, next usable on a miss.
 *
 * least_conn: fewest requests in flight (hc_ep.active_conns, shared by all
 *   workers); the scan starts at a random endpoint so ties are broken at random
 *   and equal endpoints are not filled in index order.
 *
 * ewma: power of two choices (Mitzenmacher; Envoy's least_request and
 *   ingress-nginx's ewma): two distinct random usable endpoints (O(1) when
 *   both of the first two draws are usable), keep the one
 *   with the lower score = (ewma_us + 1) * (active_conns + 1). The EWMA
 *   (hc_ewma_*) is time-decayed with a per-sample weight floor, and decays
 *   toward 0 while idle, so a slow endpoint gets traffic again after its
 *   average fades. An endpoint without a
 *   sample scores (active_conns + 1): optimistic, so a new pod gets tried at
 *   once, and the in-flight factor stops a burst from piling onto it before
 *   its first answer.
 *
 * All three are O(1) for round_robin in the common case, O(neps) otherwise.
 * Threads: workers, lock-free.
 */
#include <stdlib.h>

#include "ingressd/hc.h"
#include "ingressd/snap-t.h"
#include "lb_int.h"

#define LB_SMALL 256 /* usable lists up to this size are built on the stack */

/* indexes of the usable endpoints of a backend with at most LB_SMALL of them */
static uint32_t lb_usable_small(const struct snap_backend *be, struct lb_req *req,
                                uint16_t ok[LB_SMALL])
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < be->neps; i++)
        if (lb_ep_usable(&be->eps[i], req))
            ok[m++] = (uint16_t)i;
    return m;
}

/* ---- round robin ---- */

const struct snap_endpoint *lb__rr_from(const struct snap_backend *be, struct lb_req *req,
                                        uint64_t c)
{
    uint32_t n = be->neps;
    if (n <= LB_SMALL) {
        /* rotate over the usable ones (nginx also walks every peer per pick):
         * the share stays exact when some endpoints are out */
        uint16_t ok[LB_SMALL];
        uint32_t m = lb_usable_small(be, req, ok);
        return m ? &be->eps[ok[c % m]] : NULL;
    }
    /* large backends: O(1) when the slot is usable, else its share is spread */
    const struct snap_endpoint *ep = &be->eps[c % n];
    if (lb_ep_usable(ep, req))
        return ep;
    for (uint32_t i = 1; i < n; i++) {
        ep = &be->eps[(c + i) % n];
        if (lb_ep_usable(ep, req))
            return ep;
    }
    return NULL;
}

static const struct snap_endpoint *lb_rr_pick(const struct snap_backend *be, struct lb_req *req)
{
    uint64_t c = atomic_fetch_add_explicit(lb__cursor(be), 1, memory_order_relaxed);
    return lb__rr_from(be, req, c);
}

const struct lb_ops lb__rr_ops = { .name = "round_robin", .pick = lb_rr_pick };

/* ---- least connections ---- */

static const struct snap_endpoint *lb_lc_pick(const struct snap_backend *be, struct lb_req *req)
{
    uint32_t n = be->neps;
    uint32_t start = (uint32_t)(lb__rand() % n);
    const struct snap_endpoint *best = NULL;
    uint32_t best_conns = UINT32_MAX;
    for (uint32_t i = 0; i < n; i++) {
        const struct snap_endpoint *ep = &be->eps[(start + i) % n];
        if (!lb_ep_usable(ep, req))
            continue;
        uint32_t c = ep->hc ? atomic_load_explicit(&ep->hc->active_conns, memory_order_relaxed) : 0;
        if (c < best_conns) {
            best = ep;
            best_conns = c;
        }
    }
    return best;
}

const struct lb_ops lb__lc_ops = { .name = "least_conn", .pick = lb_lc_pick };

/* ---- ewma, power of two choices ---- */

static double lb_ewma_score(const struct snap_endpoint *ep, uint64_t now_ms)
{
    if (!ep->hc)
        return 1.0;
    double lat = (double)hc_ewma_get(ep->hc, now_ms);
    double act = (double)atomic_load_explicit(&ep->hc->active_conns, memory_order_relaxed);
    return (lat + 1.0) * (act + 1.0);
}

static const struct snap_endpoint *lb_ewma_pick(const struct snap_backend *be, struct lb_req *req)
{
    uint32_t n = be->neps;
    const struct snap_endpoint *a = NULL, *b = NULL;
    if (n >= 2) {
        /* the common case, O(1): two distinct random endpoints that are both usable */
        uint32_t i = (uint32_t)(lb__rand() % n);
        uint32_t j = (uint32_t)(lb__rand() % (n - 1));
        if (j >= i)
            j++;
        if (lb_ep_usable(&be->eps[i], req) && lb_ep_usable(&be->eps[j], req)) {
            a = &be->eps[i];
            b = &be->eps[j];
            return lb_ewma_score(a, req->now_ms) <= lb_ewma_score(b, req->now_ms) ? a : b;
        }
    }
    /* some are out: choose among the usable ones only */
    if (n <= LB_SMALL) {
        uint16_t ok[LB_SMALL];
        uint32_t m = lb_usable_small(be, req, ok);
        if (m == 0)
            return NULL;
        if (m == 1)
            return &be->eps[ok[0]];
        uint32_t i = (uint32_t)(lb__rand() % m);
        uint32_t j = (uint32_t)(lb__rand() % (m - 1));
        if (j >= i)
            j++;
        a = &be->eps[ok[i]];
        b = &be->eps[ok[j]];
    } else {
        /* large backends: two random probes, linear fallback when unlucky */
        for (int tries = 0; tries < 8 && !b; tries++) {
            const struct snap_endpoint *ep = &be->eps[lb__rand() % n];
            if (!lb_ep_usable(ep, req) || ep == a)
                continue;
            if (!a)
                a = ep;
            else
                b = ep;
        }
        if (!a)
            return lb__rr_from(be, req, lb__rand());
        if (!b)
            return a;
    }
    return lb_ewma_score(a, req->now_ms) <= lb_ewma_score(b, req->now_ms) ? a : b;
}

const struct lb_ops lb__ewma_ops = { .name = "ewma", .pick = lb_ewma_pick };
