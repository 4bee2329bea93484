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
void hc_apply(struct snap *s);          /* takes its own ref; reconciles probes */
void hc_stop(void);

#endif
