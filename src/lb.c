/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lb: choosing the endpoint of a backend for one request, and learning from
 * how it went.
 *
 * Where it sits: proxy.c has routed the request to a snap_backend and calls
 * lb_pick(); when the upstream exchange ends it calls lb_done() with the
 * result and latency; a retry goes through lb_retry_begin() and lb_pick()
 * again with the failed endpoint in req->tried.
 *
 *     lb_pick --> filter (ready, !terminating, !tried, health | panic)
 *            \--> cookie affinity? --> ClientIP affinity? --> ops->pick
 *                 (follow cookie)      (hash of client IP)    rr | least_conn
 *                                                             | ewma | hash
 *     lb_done --> active_conns--, counters, EWMA, passive health (hc_report_*)
 *
 * Algorithms sit behind struct lb_ops {name, pick, report, init} (HAProxy
 * lb_ops, nginx peer.get/free): round_robin and least_conn and ewma live in
 * lb_algo.c, the consistent-hash ring and the affinities in lb_hash.c.
 *
 * Invariants:
 * - The snapshot is never written. Mutable state is either in the endpoint's
 *   shared struct hc_ep (atomics: active_conns, counters, EWMA, health) or in
 *   the round-robin cursor table below, keyed by backend name so a cursor
 *   survives reloads and is shared by every worker.
 * - A pick never returns an endpoint that is not ready, terminating, or
 *   already tried for this request; it returns one that health says is out
 *   only in panic mode (share of healthy endpoints below panic_threshold_pct,
 *   Envoy's rule: spreading over everything beats crushing the few left).
 * - lb_pick() increments active_conns of what it returns; every successful
 *   lb_pick() must be paired with exactly one lb_done().
 * - Retry budget: retries in flight never exceed max(3, budget% of requests
 *   in flight) (Envoy's retry budget with its min_retry_concurrency of 3).
 *
 * Threads: every function here is called by workers concurrently; none locks
 * (the cursor table inserts with a CAS). lb_ring_build() runs on the loader.
 */
#include "ingressd/lb.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingressd/hc.h"
#include "ingressd/snap-t.h"
#include "lb_int.h"

/* ---- per-thread randomness ---- */

static _Thread_local uint64_t lb_rng_state;

uint64_t lb__rand(void)
{
    uint64_t x = lb_rng_state;
    if (!x) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)&lb_rng_state ^ (uint64_t)ts.tv_sec;
        x |= 1;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    lb_rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* ---- round-robin cursors, outside the snapshot ---- */

/*
 * Open-addressed, insert-only table of {backend name -> cursor}. Entries are
 * never removed: a backend name that disappears keeps a few dozen bytes until
 * exit, which buys a lock-free lookup with no reclamation problem. When the
 * table is full, the overflow backends share one cursor (still correct, just
 * less even).
 */
#define LB_CURSOR_SLOTS 8192u

struct lb_cursor {
    uint64_t hash;
    _Atomic uint64_t cursor;
    char name[];                        /* NUL-terminated backend name */
};

static _Atomic(struct lb_cursor *) lb_cursors[LB_CURSOR_SLOTS];
static _Atomic uint64_t lb_cursor_shared;

_Atomic uint64_t *lb__cursor(const struct snap_backend *be)
{
    if (!be->name)
        return &lb_cursor_shared;
    size_t len = strlen(be->name);
    uint64_t h = lb_hash64(be->name, len);
    for (uint32_t i = 0; i < 64; i++) {
        _Atomic(struct lb_cursor *) *slot = &lb_cursors[(h + i) & (LB_CURSOR_SLOTS - 1)];
        struct lb_cursor *c = atomic_load_explicit(slot, memory_order_acquire);
        if (!c) {
            /* first pick of a new backend: publish a cursor (rare; malloc is fine) */
            struct lb_cursor *n = malloc(sizeof(*n) + len + 1);
            if (!n)
                return &lb_cursor_shared;
            n->hash = h;
            atomic_init(&n->cursor, 0);
            memcpy(n->name, be->name, len + 1);
            if (atomic_compare_exchange_strong_explicit(slot, &c, n, memory_order_acq_rel,
                                                        memory_order_acquire))
                return &n->cursor;
            free(n); /* lost the race; c is the winner, check it below */
        }
        if (c->hash == h && strcmp(c->name, be->name) == 0)
            return &c->cursor;
    }
    return &lb_cursor_shared;
}

/* ---- the common filter ---- */

bool lb_ep_usable(const struct snap_endpoint *ep, const struct lb_req *req)
{
    if (!ep->ready || ep->terminating)
        return false;
    for (unsigned t = 0; t < req->ntried && t < LB_MAX_TRIED; t++)
        if (req->tried[t] == ep)
            return false;
    return req->panic || hc_ep_is_usable(ep->hc, req->now_ms);
}

/* share of ready endpoints that health lets through is below pct? */
static bool lb_is_panic(const struct snap_backend *be, uint64_t now_ms, uint32_t pct)
{
    uint32_t ready = 0, healthy = 0;
    for (uint32_t i = 0; i < be->neps; i++) {
        const struct snap_endpoint *ep = &be->eps[i];
        if (!ep->ready || ep->terminating)
            continue;
        ready++;
        healthy += hc_ep_is_usable(ep->hc, now_ms);
    }
    return ready > 0 && (uint64_t)healthy * 100 < (uint64_t)ready * pct;
}

/* ---- ops ---- */

const struct lb_ops *lb_ops_get(int algo)
{
    switch (algo) {
    case LB_LEAST_CONN: return &lb__lc_ops;
    case LB_EWMA: return &lb__ewma_ops;
    case LB_HASH: return &lb__hash_ops;
    default: return &lb__rr_ops;
    }
}

/*
 * Picks the endpoint for this request (see the file header for the rules).
 * req: client/path/get_header as available, tried[] the endpoints that
 * already failed this request; set_cookie/cookie_value are written for
 * cookie affinity. Returns NULL when nothing may take the request (caller:
 * 503 + Retry-After on the first attempt, the last error on a retry). The
 * returned endpoint's active_conns has been incremented: call lb_done().
 */
const struct snap_endpoint *lb_pick(const struct snap_backend *be, struct lb_req *req,
                                    uint32_t panic_threshold_pct)
{
    req->set_cookie = false;
    if (!be || !be->neps)
        return NULL;
    req->now_ms = hc_now_ms();
    req->panic = panic_threshold_pct > 0 && lb_is_panic(be, req->now_ms, panic_threshold_pct);

    const struct lb_ops *ops = lb_ops_get(be->algo);
    const struct snap_endpoint *ep;
    if (be->affinity == LB_AFFINITY_COOKIE)
        ep = lb__cookie_pick(be, req, ops);
    else if (be->affinity == LB_AFFINITY_CLIENT_IP)
        ep = lb__hash_pick(be, req, lb__client_key(req));
    else
        ep = ops->pick(be, req);
    if (ep && ep->hc)
        atomic_fetch_add_explicit(&ep->hc->active_conns, 1, memory_order_relaxed);
    return ep;
}

static uint32_t lb_count_ejected(const struct snap_backend *be, uint64_t now_ms)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < be->neps; i++)
        if (be->eps[i].hc && hc_ep_is_ejected(be->eps[i].hc, now_ms))
            n++;
    return n;
}

/*
 * The request lb_pick() gave to ep has ended with res after latency_us
 * (upstream time to the end of the response head, or to the failure).
 * Decrements active_conns, counts, feeds the EWMA (successes, 5xx and
 * timeouts: they are real latencies) and passive health. Any worker.
 */
void lb_done(const struct snap_backend *be, const struct snap_endpoint *ep, enum lb_result res,
             uint64_t latency_us)
{
    if (!ep || !ep->hc)
        return;
    struct hc_ep *h = ep->hc;
    uint32_t ac = atomic_load_explicit(&h->active_conns, memory_order_relaxed);
    while (ac > 0 && !atomic_compare_exchange_weak_explicit(&h->active_conns, &ac, ac - 1,
                                                            memory_order_relaxed,
                                                            memory_order_relaxed))
        ;
    atomic_fetch_add_explicit(&h->requests, 1, memory_order_relaxed);
    uint64_t now = hc_now_ms();
    if (res == LB_OK || res == LB_HTTP_5XX || res == LB_TIMEOUT)
        hc_ewma_update(h, latency_us, now);
    if (res == LB_OK) {
        hc_report_success(h, latency_us);
    } else {
        atomic_fetch_add_explicit(&h->failures, 1, memory_order_relaxed);
        struct snap_outlier_conf oc;
        hc_get_outlier(&oc);
        if (be)
            hc_report_failure(h, &oc, be->neps, lb_count_ejected(be, now));
        else
            hc_report_failure(h, &oc, 1, 0);
    }
    if (be) {
        const struct lb_ops *ops = lb_ops_get(be->algo);
        if (ops->report)
            ops->report(be, ep, res, latency_us, now);
    }
}

/* ---- retry budget ---- */

static _Atomic uint64_t lb_live_requests;
static _Atomic uint64_t lb_live_retries;

/*
 * May this request retry now? Allowed while retries in flight stay under
 * max(3, budget_pct% of requests in flight); on true the caller owns one
 * retry slot and must call lb_retry_end() when that attempt ends.
 */
bool lb_retry_begin(uint32_t budget_pct)
{
    uint64_t live = atomic_load_explicit(&lb_live_requests, memory_order_relaxed);
    uint64_t allowed = live * budget_pct / 100;
    if (allowed < 3)
        allowed = 3;
    uint64_t cur = atomic_load_explicit(&lb_live_retries, memory_order_relaxed);
    do {
        if (cur >= allowed)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&lb_live_retries, &cur, cur + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

static void lb_dec(_Atomic uint64_t *v)
{
    uint64_t cur = atomic_load_explicit(v, memory_order_relaxed);
    while (cur > 0 && !atomic_compare_exchange_weak_explicit(v, &cur, cur - 1, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

void lb_retry_end(void) { lb_dec(&lb_live_retries); }
void lb_request_begin(void) { atomic_fetch_add_explicit(&lb_live_requests, 1, memory_order_relaxed); }
void lb_request_end(void) { lb_dec(&lb_live_requests); }

void lb_budget_stats(uint64_t *live_requests, uint64_t *live_retries)
{
    if (live_requests)
        *live_requests = atomic_load_explicit(&lb_live_requests, memory_order_relaxed);
    if (live_retries)
        *live_retries = atomic_load_explicit(&lb_live_retries, memory_order_relaxed);
}

/* ---- names ---- */

static const char *const lb_algo_names[] = { "round_robin", "least_conn", "ewma", "hash" };

const char *lb_algo_name(int algo)
{
    return algo >= 0 && algo < 4 ? lb_algo_names[algo] : "unknown";
}

/*
 * "round_robin" | "least_conn" | "ewma" | "hash", plus the ingress-nginx
 * spellings of nginx.ingress.kubernetes.io/load-balance ("round_robin",
 * "ewma", "least_conn") and the obvious aliases. <0 if unknown.
 */
int lb_algo_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, lb_algo_names[i]) == 0)
            return i;
    if (strcmp(s, "roundrobin") == 0 || strcmp(s, "round-robin") == 0 || strcmp(s, "rr") == 0)
        return LB_ROUND_ROBIN;
    if (strcmp(s, "least-conn") == 0 || strcmp(s, "leastconn") == 0)
        return LB_LEAST_CONN;
    if (strcmp(s, "consistent_hash") == 0 || strcmp(s, "chash") == 0 || strcmp(s, "ring_hash") == 0 ||
        strcmp(s, "maglev") == 0)
        return LB_HASH;
    return -1;
}
