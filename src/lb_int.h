/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lb_int.h: what the lb_*.c files share and nobody else sees (h2o's
 * `prefix__x` rule for cross-file internals).
 */
#ifndef INGRESSD_LB_INT_H
#define INGRESSD_LB_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include "ingressd/lb.h"

struct lb_ring_point {
    uint64_t h;                        /* position on the 2^64 circle */
    uint32_t ep;                       /* index into be->eps of the snapshot that built it */
};

struct lb_ring {                       /* immutable, in the snapshot arena */
    struct lb_ring_point *pts;         /* sorted by h (ties: endpoint address) */
    uint32_t npts;
    uint32_t neps;                     /* be->neps at build time (sanity check) */
};

#define LB_RING_VNODES 160             /* points per endpoint (ketama's figure) */

/* per-thread xorshift64* (no shared cache line on the request path) */
uint64_t lb__rand(void);

/* the per-backend round-robin cursor, outside the snapshot (lock-free table) */
_Atomic uint64_t *lb__cursor(const struct snap_backend *be);

/* round robin over usable endpoints starting at cursor value c */
const struct snap_endpoint *lb__rr_from(const struct snap_backend *be, struct lb_req *req,
                                        uint64_t c);

/* consistent choice for a key: ring walk, or rendezvous hashing without a ring */
const struct snap_endpoint *lb__hash_pick(const struct snap_backend *be, struct lb_req *req,
                                          uint64_t key);

/* the hash key of the client address (IP only, v4-mapped v6 folded to v4) */
uint64_t lb__client_key(const struct lb_req *req);

/* finds cookie `name` in the request's Cookie header(s); STR_NULL if absent */
struct str lb__cookie(const struct lb_req *req, const char *name);

/* cookie affinity on top of any algorithm */
const struct snap_endpoint *lb__cookie_pick(const struct snap_backend *be, struct lb_req *req,
                                            const struct lb_ops *ops);

extern const struct lb_ops lb__rr_ops, lb__lc_ops, lb__ewma_ops, lb__hash_ops;

#endif
