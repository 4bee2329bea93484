/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rld: reloads. Triggers (SIGHUP, a debounced watch on the configuration
 * path, POST /reload) only *request* a reload; the loader thread runs
 * snap_load() off the worker loops, then publishes the result to the workers,
 * the health checker and the admin view. One reload at a time, none lost: a
 * request arriving during a reload causes exactly one more after it.
 */
#ifndef INGRESSD_RLD_H
#define INGRESSD_RLD_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct snap;

struct rld_status {
    uint64_t gen;                      /* generation served */
    uint64_t reloads_ok, reloads_failed;
    int64_t last_time_unix_ms;         /* when the last reload finished */
    uint64_t last_duration_us;
    bool last_ok;
    char last_error[512];              /* first error of the last failed/partial load */
};

/* base: the main thread's loop (signals, watch). initial: the startup snapshot. */
int rld_start(struct event_base *base, const char *path, struct snap *initial);
/* any thread; returns at once */
void rld_request(const char *why);
/* request a reload and wait for its outcome (admin POST /reload); 0 when applied */
int rld_request_wait(const char *why, uint32_t timeout_ms);
/* the snapshot currently published, with a ref the caller releases */
struct snap *rld_current(void);
void rld_status(struct rld_status *out);
void rld_stop(void);

#endif
