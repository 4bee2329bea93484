/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lb: load-balancing algorithms behind one small ops table (HAProxy lb_ops,
 * h2o balancer callbacks): round_robin, least_conn, ewma (P2C), hash (ring).
 * Called by workers on the request path; lock-free (atomics on hc_ep and on
 * the per-backend cursor kept outside the snapshot).
 */
#ifndef INGRESSD_LB_H
#define INGRESSD_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ingressd/str.h"

struct snap_backend;
struct snap_endpoint;

#define LB_MAX_TRIED 8

struct lb_req {                        /* what a pick may look at */
    const struct sockaddr *client;     /* downstream peer address */
    struct str path;
    /* returns the value of header `name` (case-insensitive) or STR_NULL */
    struct str (*get_header)(void *ctx, struct str name);
    void *ctx;
    /* endpoints already tried for this request (never picked again) */
    const struct snap_endpoint *tried[LB_MAX_TRIED];
    unsigned ntried;
    /* out: set when the response must carry Set-Cookie for cookie affinity */
    bool set_cookie;
    char cookie_value[32];
    /* scratch written by lb_pick() for the algorithms; callers need not set it */
    uint64_t now_ms;
    bool panic;                        /* panic mode: health ignored for this pick */
};

enum lb_result { LB_OK = 0, LB_CONNECT_FAIL, LB_RESET, LB_TIMEOUT, LB_HTTP_5XX };

struct lb_ops {
    const char *name;
    /* returns a usable endpoint (lb_ep_usable) or NULL; never touches counters */
    const struct snap_endpoint *(*pick)(const struct snap_backend *be, struct lb_req *req);
    /* optional: the request on ep ended (lb_done already did counters and health) */
    void (*report)(const struct snap_backend *be, const struct snap_endpoint *ep,
                   enum lb_result res, uint64_t latency_us, uint64_t now_ms);
    /* optional: loader-thread preparation (nothing needs it today) */
    void (*init)(const struct snap_backend *be);
};

/*
 * Picks an endpoint that is ready, not terminating, usable by health, and not
 * in req->tried. All such down => NULL (caller answers 503 + Retry-After),
 * unless panic mode applies. Increments the chosen endpoint's active count.
 */
const struct snap_endpoint *lb_pick(const struct snap_backend *be, struct lb_req *req,
                                    uint32_t panic_threshold_pct);

/* the request on ep ended (or failed): feeds passive health and EWMA */
void lb_done(const struct snap_backend *be, const struct snap_endpoint *ep, enum lb_result res,
             uint64_t latency_us);

/* retry budget: at least 3 concurrent retries, else budget_pct of live requests */
bool lb_retry_begin(uint32_t budget_pct);
void lb_retry_end(void);
void lb_request_begin(void);
void lb_request_end(void);

/* builds the consistent-hash ring for a backend (loader thread, into arena) */
struct arena;
struct lb_ring *lb_ring_build(struct arena *a, const struct snap_backend *be);

const char *lb_algo_name(int algo);
int lb_algo_parse(const char *s);      /* <0 if unknown */

/* ---- additions (lb/hc engineer) ---- */

/*
 * lb_ring_build(): call it for every backend with algo == LB_HASH or
 * affinity == LB_AFFINITY_CLIENT_IP, after be->eps is final (cookie affinity
 * needs no ring: its cookie names the endpoint). Without a ring those
 * backends still work (rendezvous hashing, O(neps) per pick, same agreement
 * across replicas), the ring only makes it O(log n).
 */

/* the ops table of an algorithm (enum lb_algo); unknown -> round_robin */
const struct lb_ops *lb_ops_get(int algo);

/* true when ep may take this request: ready, not terminating, not tried, and
 * (unless req->panic) usable by health at req->now_ms */
bool lb_ep_usable(const struct snap_endpoint *ep, const struct lb_req *req);

/* the stable 64-bit hash every replica agrees on (FNV-1a 64 + murmur3 fmix64) */
uint64_t lb_hash64(const void *p, size_t n);

/*
 * Cookie affinity value naming an endpoint: 16 lowercase hex digits of
 * lb_hash64(addr) - stable across reloads, workers and replicas, and never an
 * index. out must hold 17 bytes. The data plane answers with
 *   Set-Cookie: <be->affinity_cookie>=<req->cookie_value>; Path=/; HttpOnly
 * when req->set_cookie is true after lb_pick().
 */
void lb_cookie_value(const char *addr, char out[17]);

/* points on a ring (tests and /config); 0 for NULL */
uint32_t lb_ring_points(const struct lb_ring *r);

/* live requests and retries as the retry budget counts them (metrics, tests) */
void lb_budget_stats(uint64_t *live_requests, uint64_t *live_retries);

#endif
