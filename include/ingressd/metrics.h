/* SPDX-License-Identifier: Apache-2.0 */
/*
 * met: rendering of what the admin listener shows. Prometheus text exposition
 * (format 0.0.4) for GET /metrics, plus the small growable buffer and the
 * JSON/label escapers that admin.c uses for /config and /endpoints.
 *
 * Rendering only reads: the counters come in as arguments (wrk_pool_stats()
 * sums the per-worker counters on scrape, rld_status() the reload outcome),
 * the per-endpoint figures from the hc_ep atomics of the snapshot passed in.
 * Label sets are bounded by configuration (status class, backend, endpoint),
 * never by traffic (no per-path or per-client labels). Main thread (admin),
 * or any thread: no global state.
 */
#ifndef INGRESSD_METRICS_H
#define INGRESSD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hc_ep;
struct snap;
struct rld_status;
struct wrk_stats;

struct met_buf {                       /* owned by the caller; met_buf_free releases */
    char *p;                           /* NUL-terminated while !oom */
    size_t n, cap;
    bool oom;                          /* an allocation failed; content is truncated */
};

void met_buf_init(struct met_buf *b);
void met_buf_free(struct met_buf *b);
void met_printf(struct met_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void met_put(struct met_buf *b, const char *s, size_t n);
/* a JSON string literal with quotes; NULL -> null. Invalid UTF-8 becomes U+FFFD. */
void met_json_str(struct met_buf *b, const char *s);
/* a Prometheus label value with quotes (escapes \ " and newline) */
void met_label_str(struct met_buf *b, const char *s);

/* everything the exposition needs besides the snapshot */
struct met_input {
    const struct wrk_stats *wrk;       /* NULL = no data plane figures */
    const struct rld_status *rld;      /* NULL = no reload figures */
    uint64_t inflight;                 /* wrk_pool_inflight() */
    bool draining;
    uint64_t now_ms;                   /* hc_now_ms(), for ejection state */
};

/* appends the whole /metrics page; s may be NULL (no per-endpoint series) */
void met_render(struct met_buf *out, const struct snap *s, const struct met_input *in);

/* "up", "down", "ejected", "unknown": the health view of one endpoint */
const char *met_ep_health(const struct hc_ep *ep, uint64_t now_ms);
const char *met_algo_name(int algo);   /* enum lb_algo -> "round_robin" ... */

#endif
