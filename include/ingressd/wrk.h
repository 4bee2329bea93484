/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wrk: the worker pool. N threads, each with its own event_base and its own
 * SO_REUSEPORT socket per listener; a connection lives on one worker for its
 * life. Main owns the pool; workers adopt published snapshots at their own pace.
 */
#ifndef INGRESSD_WRK_H
#define INGRESSD_WRK_H

#include <stdint.h>

struct snap;

struct wrk_stats {                      /* summed over workers on scrape */
    uint64_t conns_accepted, conns_active;
    uint64_t requests, responses_by_class[6];   /* [1..5] = 1xx..5xx */
    uint64_t upstream_connect_errors, upstream_timeouts, retries;
    uint64_t bytes_in, bytes_out;
    uint64_t snap_gen_min;               /* oldest generation a worker still serves */
};

/* starts s->cfg.workers workers serving s (takes its own refs). 0 ok, <0 error (logged) */
int wrk_pool_start(struct snap *s);
/* hands a new snapshot to every worker; listeners are diffed by address */
void wrk_pool_publish(struct snap *s);
/* stops accepting, drains in-flight requests for up to timeout_ms, joins threads */
void wrk_pool_drain(uint32_t timeout_ms);
void wrk_pool_stats(struct wrk_stats *out);
/* requests (or tunnels) in flight across workers */
uint64_t wrk_pool_inflight(void);

#endif
