/* SPDX-License-Identifier: Apache-2.0 */
/* lb: PLACEHOLDER until the balancers land: plain round robin over ready endpoints. */
#include "ingressd/lb.h"

#include <stdatomic.h>

#include "ingressd/snap-t.h"

static atomic_uint rr_cursor;

const struct snap_endpoint *lb_pick(const struct snap_backend *be, struct lb_req *req,
                                    uint32_t panic_threshold_pct)
{
    (void)panic_threshold_pct;
    if (!be->neps)
        return NULL;
    unsigned start = atomic_fetch_add_explicit(&rr_cursor, 1, memory_order_relaxed);
    for (uint32_t i = 0; i < be->neps; i++) {
        const struct snap_endpoint *ep = &be->eps[(start + i) % be->neps];
        bool tried = false;
        for (unsigned t = 0; t < req->ntried; t++)
            tried |= req->tried[t] == ep;
        if (ep->ready && !ep->terminating && !tried)
            return ep;
    }
    return NULL;
}
void lb_done(const struct snap_backend *be, const struct snap_endpoint *ep, enum lb_result res,
             uint64_t latency_us)
{
    (void)be; (void)ep; (void)res; (void)latency_us;
}
bool lb_retry_begin(uint32_t budget_pct) { (void)budget_pct; return true; }
void lb_retry_end(void) {}
void lb_request_begin(void) {}
void lb_request_end(void) {}
struct lb_ring *lb_ring_build(struct arena *a, const struct snap_backend *be)
{
    (void)a; (void)be;
    return NULL;
}
const char *lb_algo_name(int algo)
{
    static const char *const names[] = { "round_robin", "least_conn", "ewma", "hash" };
    return algo >= 0 && algo < 4 ? names[algo] : "unknown";
}
int lb_algo_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (__builtin_strcmp(s, lb_algo_name(i)) == 0)
            return i;
    return -1;
}
