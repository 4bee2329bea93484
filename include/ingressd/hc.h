/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hc: endpoint health, shared by every worker and every snapshot.
 *
 * One struct hc_ep per "ip:port", in a global table; snapshots hold refs on
 * the entries of their endpoints, so state (active check results, passive
 * ejections, counters, EWMA latency) survives a reload for endpoints that
 * remain. All fields are atomics: workers read/update them lock-free, the
 * health thread (active probes, off the worker loops) writes check results.
 */
#ifndef INGRESSD_HC_H
#define INGRESSD_HC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct snap;
struct snap_outlier_conf;

enum hc_state { HC_UNKNOWN = 0, HC_UP, HC_DOWN };

struct hc_ep {
    char key[64];                       /* "ip:port" */
    _Atomic unsigned refs;
    _Atomic int active_state;           /* enum hc_state from active checks (UNKNOWN = none) */
    _Atomic uint32_t check_ok_streak;   /* consecutive passing active checks */
    _Atomic uint32_t check_fail_streak;
    _Atomic uint32_t consec_failures;   /* passive: consecutive failed requests */
    _Atomic uint32_t ejections;         /* how many times ejected (grows the ejection time) */
    _Atomic uint64_t ejected_until_ms;  /* monotonic ms; 0 = not ejected */
    _Atomic uint32_t active_conns;      /* requests in flight (least_conn) */
    _Atomic uint64_t requests;
    _Atomic uint64_t failures;
    _Atomic uint64_t ewma_us;           /* latency EWMA, microseconds (0 = no sample) */
    _Atomic uint64_t ewma_stamp_ms;
    /* added by lb/hc (append-only; read through the atomics or hc_ep_snapshot) */
    _Atomic uint32_t probation;         /* 1 after an ejection until the next success:
                                           one failure re-ejects at once */
    _Atomic uint64_t last_eject_end_ms; /* end of the previous ejection (multiplier decay) */
    _Atomic uint32_t ewma_samples;      /* latency samples seen (EWMA weight floor) */
    struct hc_ep *next;                 /* health table chain; under the table mutex only */
    uint32_t hash;                      /* of key; set once at creation */
};

/* returns the entry for addr with one ref taken (creates it). Any thread. */
struct hc_ep *hc_ep_get(const char *addr);
void hc_ep_put(struct hc_ep *ep);       /* NULL is a no-op */

uint64_t hc_now_ms(void);               /* CLOCK_MONOTONIC in ms */

/* true when the endpoint may receive new requests now (not down, not ejected) */
bool hc_ep_is_usable(const struct hc_ep *ep, uint64_t now_ms);

/* passive reports from workers */
void hc_report_success(struct hc_ep *ep, uint64_t latency_us);
/* returns true if this failure ejected the endpoint */
bool hc_report_failure(struct hc_ep *ep, const struct snap_outlier_conf *oc,
                       uint32_t backend_neps, uint32_t backend_nejected);

/* the health checker thread: started once by main, then fed every new snapshot */
int hc_start(void);
void hc_apply(struct snap *s);          /* copies what it needs (keeps no ref); reconciles probes */
void hc_stop(void);

/* ---- additions (lb/hc engineer) ---- */

/*
 * Admin /endpoints: a consistent-enough copy of one entry (each field is one
 * relaxed atomic load; fields may be from slightly different instants).
 * Reading the atomics of struct hc_ep directly is equally fine.
 */
struct hc_ep_view {
    const char *state;                  /* hc_state_name() */
    int active_state;                   /* enum hc_state */
    bool ejected;                       /* ejected right now */
    uint64_t ejected_remaining_ms;      /* 0 unless ejected */
    uint32_t ejections;
    uint32_t consec_failures;
    uint32_t active_conns;
    uint64_t requests;
    uint64_t failures;
    uint64_t ewma_us;                   /* decayed to now_ms, 0 = no sample yet */
};
void hc_ep_snapshot(const struct hc_ep *ep, uint64_t now_ms, struct hc_ep_view *out);

/* "up" | "down" | "ejected" | "unknown" (no active checks, not ejected) */
const char *hc_state_name(const struct hc_ep *ep, uint64_t now_ms);

/* true while ep is inside an ejection period */
bool hc_ep_is_ejected(const struct hc_ep *ep, uint64_t now_ms);

/*
 * The outlier-detection settings lb_done() ejects with. hc_apply() sets them
 * from snap->cfg.outlier; before the first hc_apply() the defaults hold
 * (5 consecutive failures, 1 s base, 30 s cap, 50 %). Any thread.
 */
void hc_set_outlier(const struct snap_outlier_conf *oc);
void hc_get_outlier(struct snap_outlier_conf *out);

/*
 * Latency EWMA (ingress-nginx's time-decayed EWMA): a sample is blended in
 * with weight 1 - exp(-dt/tau), tau = HC_EWMA_TAU_MS, dt the time since the
 * previous sample, but never less than 1/(n+1) for the n-th sample (n capped
 * at HC_EWMA_MIN_N): the first samples are a plain mean (a cold first request
 * does not stick for tau), and at high request rates a slowdown still shows
 * within ~HC_EWMA_MIN_N samples while one spike fades as fast. hc_ewma_get()
 * decays the average toward 0 with the idle time, so a once-slow endpoint is
 * eventually retried. Lock-free; concurrent updates may lose a sample
 * (harmless for a moving average).
 */
#define HC_EWMA_TAU_MS 10000
#define HC_EWMA_MIN_N 16
void hc_ewma_update(struct hc_ep *ep, uint64_t sample_us, uint64_t now_ms);
uint64_t hc_ewma_get(const struct hc_ep *ep, uint64_t now_ms);

/* number of probes the health thread runs right now (tests, /metrics) */
uint32_t hc_probe_count(void);

/* number of entries in the health table (tests: entries are freed with their last ref) */
uint32_t hc_table_size(void);

#endif
