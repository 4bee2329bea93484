/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rld: reloads. Triggers (SIGHUP, a debounced watch on the configuration
 * path, POST /reload) only *request* a reload; the loader thread runs
 * snap_load() off the worker loops, then publishes the result to the workers,
 * the health checker and the admin view. One reload at a time, none lost: a
 * request arriving during a reload causes exactly one more after it. The
 * outcome is reported once every worker serves the new generation.
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
    uint32_t last_quarantined;         /* objects quarantined by the last applied load */
    uint32_t last_errors;              /* error diagnostics of the last load */
    char last_trigger[32];             /* "SIGHUP", "file change", "POST /reload" */
    char source[256];                  /* the configuration path being watched */
};

/*
 * Outcome callback for rld_request_async(): runs on the main thread's loop
 * (the base given to rld_start). rc 0 = applied (maybe with quarantine),
 * <0 = rejected, the current snapshot kept. st is the status right after it.
 */
typedef void (*rld_done_fn)(void *arg, int rc, const struct rld_status *st);

/* base: the main thread's loop (signals, watch). initial: the startup snapshot. */
int rld_start(struct event_base *base, const char *path, struct snap *initial);
/* any thread; returns at once */
void rld_request(const char *why);
/*
 * request a reload and block until its outcome (any thread but M, whose loop
 * would stall: admin uses rld_request_async). 0 when applied, <0 rejected,
 * -ETIMEDOUT when not done within timeout_ms (the reload still happens).
 */
int rld_request_wait(const char *why, uint32_t timeout_ms);
/*
 * request a reload and get its outcome later through cb on the main loop
 * (the admin listener must not block). 0 queued, <0 not running.
 */
int rld_request_async(const char *why, rld_done_fn cb, void *arg);
/* forgets a pending async request (its cb will not run); main thread only */
void rld_request_cancel(void *arg);
/* the snapshot currently published, with a ref the caller releases */
struct snap *rld_current(void);
void rld_status(struct rld_status *out);
void rld_stop(void);
/*
 * snap_release() for workers: when the ref dropped is the last one, the free
 * (arena, health refs) runs on the loader thread instead of the caller's loop.
 * Falls back to snap_release() when reloads are not running.
 */
void rld_defer_release(struct snap *s);

/* unit tests: replace snap_load (NULL restores it); before rld_start */
struct snap_load_opts;
struct cfg_errs;
void rld_test_set_loader(struct snap *(*fn)(const char *, const struct snap *,
                                            const struct snap_load_opts *, struct cfg_errs *));

#endif
