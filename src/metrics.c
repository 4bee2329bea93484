/* SPDX-License-Identifier: Apache-2.0 */
/*
 * met: the Prometheus text exposition of ingressd, and the escapers the admin
 * JSON pages share.
 *
 * Where the figures come from
 * ---------------------------
 * Counters are never kept here. Workers count per worker (no shared cache
 * line on the request path) and wrk_pool_stats() sums them on scrape (Envoy
 * stats, style.md 3.1); reload figures come from rld_status(); endpoint
 * figures are the hc_ep atomics the health table shares across workers and
 * snapshots, so they survive reloads for endpoints that remain.
 *
 * Cardinality
 * -----------
 * Every label value comes from configuration, never from traffic: status
 * classes (code="2xx"), reload result, and backend/endpoint pairs of the
 * *current* snapshot only, so an endpoint removed by a reload disappears from
 * the page and the series count is bounded by the configuration. A scraper
 * hitting /metrics under load costs one pass over the snapshot's endpoints.
 *
 * Threads: pure functions over their arguments; called on the main thread.
 */
#include "ingressd/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingressd/hc.h"
#include "ingressd/rld.h"
#include "ingressd/snap.h"
#include "ingressd/wrk.h"

/* ---- buffer ---- */

void met_buf_init(struct met_buf *b) { memset(b, 0, sizeof(*b)); }

void met_buf_free(struct met_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static bool met_reserve(struct met_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->n + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;   /* the page is cut short rather than the process aborted */
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void met_put(struct met_buf *b, const char *s, size_t n)
{
    if (!met_reserve(b, n))
        return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void met_printf(struct met_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        met_put(b, small, (size_t)n);
        return;
    }
    if (!met_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

/* ---- escaping ---- */

/* length of a valid UTF-8 sequence at s (1..4), 0 if invalid */
static size_t met_utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    unsigned cp = c & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;   /* also catches the terminating NUL */
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void met_json_str(struct met_buf *b, const char *s)
{
    if (!s) {
        met_put(b, "null", 4);
        return;
    }
    met_put(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const unsigned char *run = p;
        /* copy runs of plain characters in one go */
        while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            met_put(b, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        unsigned c = *p;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            met_put(b, esc, 2);
            p++;
        } else if (c < 0x20) {
            const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (named)
                met_put(b, named, 2);
            else
                met_printf(b, "\\u%04x", c);
            p++;
        } else {
            size_t n = met_utf8_len(p);
            if (n) {
                met_put(b, (const char *)p, n);
                p += n;
            } else {
                met_put(b, "\\ufffd", 6);   /* JSON must be valid UTF-8 */
                p++;
            }
        }
    }
    met_put(b, "\"", 1);
}

void met_label_str(struct met_buf *b, const char *s)
{
    met_put(b, "\"", 1);
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '\\' || *p == '"') {
            char e[2] = { '\\', *p };
            met_put(b, e, 2);
        } else if (*p == '\n') {
            met_put(b, "\\n", 2);
        } else {
            met_put(b, p, 1);
        }
    }
    met_put(b, "\"", 1);
}

/* ---- names ---- */

const char *met_algo_name(int algo)
{
    switch (algo) {
    case LB_ROUND_ROBIN: return "round_robin";
    case LB_LEAST_CONN: return "least_conn";
    case LB_EWMA: return "ewma";
    case LB_HASH: return "hash";
    default: return "unknown";
    }
}

const char *met_ep_health(const struct hc_ep *ep, uint64_t now_ms)
{
    /* one vocabulary with the health table and /endpoints */
    return hc_state_name(ep, now_ms);
}

/* ---- exposition ---- */

#define MET_MAX_EP_SERIES     10000   /* endpoints with their own series */
#define MET_MAX_EP_SERIES_STR "10000"

static void met_head(struct met_buf *b, const char *name, const char *type, const char *help)
{
    met_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void met_scalar(struct met_buf *b, const char *name, const char *type, const char *help,
                       unsigned long long v)
{
    met_head(b, name, type, help);
    met_printf(b, "%s %llu\n", name, v);
}

static void met_ep_labels(struct met_buf *b, const struct snap_backend *be,
                          const struct snap_endpoint *ep)
{
    met_put(b, "{backend=", 9);
    met_label_str(b, be->name);
    met_put(b, ",endpoint=", 10);
    met_label_str(b, ep->addr);
    met_put(b, "}", 1);
}

enum met_ep_field { MET_EP_UP, MET_EP_READY, MET_EP_ACTIVE, MET_EP_REQS, MET_EP_FAILS,
                    MET_EP_EJECTIONS, MET_EP_EWMA };

static const struct {
    const char *name, *type, *help;
} met_ep_fields[] = {
    [MET_EP_UP] = { "ingressd_endpoint_up", "gauge",
                    "1 when the endpoint may receive new requests (ready, not terminating, not down or ejected)." },
    [MET_EP_READY] = { "ingressd_endpoint_ready", "gauge", "EndpointSlice conditions.ready." },
    [MET_EP_ACTIVE] = { "ingressd_endpoint_active_connections", "gauge",
                        "Requests in flight to the endpoint." },
    [MET_EP_REQS] = { "ingressd_endpoint_requests_total", "counter",
                      "Requests sent to the endpoint (shared by every backend naming the same IP:PORT)." },
    [MET_EP_FAILS] = { "ingressd_endpoint_failures_total", "counter",
                       "Failed requests to the endpoint (connect errors, resets, timeouts)." },
    [MET_EP_EJECTIONS] = { "ingressd_endpoint_ejections_total", "counter",
                           "Passive health ejections of the endpoint." },
    [MET_EP_EWMA] = { "ingressd_endpoint_latency_ewma_seconds", "gauge",
                      "Exponentially weighted moving average of the endpoint's response latency." },
};

/* per-backend endpoint counts: bounded by the number of Service ports, always shown */
static void met_backends(struct met_buf *b, const struct snap *s, uint64_t now_ms)
{
    met_head(b, "ingressd_backend_endpoints", "gauge",
             "Endpoints of a backend (Service port) by state: total, ready (EndpointSlice), "
             "usable (ready, not terminating, not down or ejected).");
    for (uint32_t i = 0; i < s->nbackends; i++) {
        const struct snap_backend *be = &s->backends[i];
        uint32_t usable = 0;
        for (uint32_t j = 0; j < be->neps; j++) {
            const struct snap_endpoint *ep = &be->eps[j];
            const char *hs = met_ep_health(ep->hc, now_ms);
            usable += ep->ready && !ep->terminating && strcmp(hs, "down") != 0 &&
                      strcmp(hs, "ejected") != 0;
        }
        static const char *const states[] = { "total", "ready", "usable" };
        uint32_t v[] = { be->neps, be->nready, usable };
        for (int k = 0; k < 3; k++) {
            met_put(b, "ingressd_backend_endpoints{backend=", 35);
            met_label_str(b, be->name);
            met_printf(b, ",state=\"%s\"} %u\n", states[k], v[k]);
        }
    }
}

static void met_endpoints(struct met_buf *b, const struct snap *s, uint64_t now_ms)
{
    if (!s || !s->nbackends)
        return;
    met_backends(b, s, now_ms);
    uint64_t neps = 0;
    for (uint32_t i = 0; i < s->nbackends; i++)
        neps += s->backends[i].neps;
    /*
     * seven series per endpoint: 50,000 endpoints would make a 30 MB page that
     * takes the main loop a second to render on every scrape. Past the cap,
     * the per-backend counts above are what scrapes get; /endpoints has the rest.
     */
    met_scalar(b, "ingressd_endpoint_series_omitted", "gauge",
               "1 when the configuration has more than " MET_MAX_EP_SERIES_STR
               " endpoints and per-endpoint series are left out (see /endpoints).",
               neps > MET_MAX_EP_SERIES);
    if (neps > MET_MAX_EP_SERIES)
        return;
    for (size_t f = 0; f < sizeof(met_ep_fields) / sizeof(met_ep_fields[0]); f++) {
        met_head(b, met_ep_fields[f].name, met_ep_fields[f].type, met_ep_fields[f].help);
        for (uint32_t i = 0; i < s->nbackends; i++) {
            const struct snap_backend *be = &s->backends[i];
            for (uint32_t j = 0; j < be->neps; j++) {
                const struct snap_endpoint *ep = &be->eps[j];
                const struct hc_ep *h = ep->hc;
                met_put(b, met_ep_fields[f].name, strlen(met_ep_fields[f].name));
                met_ep_labels(b, be, ep);
                switch ((enum met_ep_field)f) {
                case MET_EP_UP: {
                    const char *hs = met_ep_health(h, now_ms);
                    bool up = ep->ready && !ep->terminating && strcmp(hs, "down") != 0 &&
                              strcmp(hs, "ejected") != 0;
                    met_printf(b, " %d\n", up ? 1 : 0);
                    break;
                }
                case MET_EP_READY: met_printf(b, " %d\n", ep->ready ? 1 : 0); break;
                case MET_EP_ACTIVE:
                    met_printf(b, " %u\n", h ? (unsigned)atomic_load(&h->active_conns) : 0u);
                    break;
                case MET_EP_REQS:
                    met_printf(b, " %llu\n", h ? (unsigned long long)atomic_load(&h->requests) : 0ull);
                    break;
                case MET_EP_FAILS:
                    met_printf(b, " %llu\n", h ? (unsigned long long)atomic_load(&h->failures) : 0ull);
                    break;
                case MET_EP_EJECTIONS:
                    met_printf(b, " %u\n", h ? (unsigned)atomic_load(&h->ejections) : 0u);
                    break;
                case MET_EP_EWMA: {
                    struct hc_ep_view v;
                    hc_ep_snapshot(h, now_ms, &v);   /* decayed to now, as lb sees it */
                    met_printf(b, " %.6f\n", (double)v.ewma_us / 1e6);
                    break;
                }
                }
            }
        }
    }
}

/*
 * Appends the /metrics page. Families are contiguous (one HELP/TYPE each), as
 * the text format requires.
 */
void met_render(struct met_buf *b, const struct snap *s, const struct met_input *in)
{
    const struct wrk_stats *w = in->wrk;
    const struct rld_status *r = in->rld;

    if (w) {
        met_scalar(b, "ingressd_requests_total", "counter", "HTTP requests received from clients.",
                   (unsigned long long)w->requests);
        met_head(b, "ingressd_responses_total", "counter", "Responses sent to clients by status class.");
        for (int c = 1; c <= 5; c++)
            met_printf(b, "ingressd_responses_total{code=\"%dxx\"} %llu\n", c,
                       (unsigned long long)w->responses_by_class[c]);
        met_scalar(b, "ingressd_upstream_connect_errors_total", "counter",
                   "Failed connects to endpoints.", (unsigned long long)w->upstream_connect_errors);
        met_scalar(b, "ingressd_upstream_timeouts_total", "counter",
                   "Upstream connect or read timeouts.", (unsigned long long)w->upstream_timeouts);
        met_scalar(b, "ingressd_upstream_retries_total", "counter",
                   "Requests retried on another endpoint.", (unsigned long long)w->retries);
        met_scalar(b, "ingressd_connections_accepted_total", "counter",
                   "Client connections accepted.", (unsigned long long)w->conns_accepted);
        met_scalar(b, "ingressd_connections_active", "gauge", "Client connections open.",
                   (unsigned long long)w->conns_active);
        met_scalar(b, "ingressd_received_bytes_total", "counter", "Bytes received from clients.",
                   (unsigned long long)w->bytes_in);
        met_scalar(b, "ingressd_sent_bytes_total", "counter", "Bytes sent to clients.",
                   (unsigned long long)w->bytes_out);
        met_scalar(b, "ingressd_workers_config_generation_min", "gauge",
                   "Oldest configuration generation a worker still serves.",
                   (unsigned long long)w->snap_gen_min);
    }
    met_scalar(b, "ingressd_requests_in_flight", "gauge", "Requests and tunnels in flight.",
               (unsigned long long)in->inflight);
    met_scalar(b, "ingressd_draining", "gauge", "1 once SIGTERM started the drain.",
               in->draining ? 1 : 0);

    if (r) {
        met_scalar(b, "ingressd_config_generation", "gauge",
                   "Generation of the configuration snapshot served.", (unsigned long long)r->gen);
        met_head(b, "ingressd_reloads_total", "counter", "Configuration reloads by outcome.");
        met_printf(b, "ingressd_reloads_total{result=\"ok\"} %llu\n",
                   (unsigned long long)r->reloads_ok);
        met_printf(b, "ingressd_reloads_total{result=\"failed\"} %llu\n",
                   (unsigned long long)r->reloads_failed);
        met_head(b, "ingressd_last_reload_timestamp_seconds", "gauge",
                 "Unix time the last reload (or the start-up load) finished.");
        met_printf(b, "ingressd_last_reload_timestamp_seconds %.3f\n",
                   (double)r->last_time_unix_ms / 1000.0);
        met_head(b, "ingressd_last_reload_duration_seconds", "gauge",
                 "Time the last reload took to parse, build and publish.");
        met_printf(b, "ingressd_last_reload_duration_seconds %.6f\n",
                   (double)r->last_duration_us / 1e6);
        met_scalar(b, "ingressd_last_reload_success", "gauge",
                   "1 when the last reload applied (maybe with quarantined objects), 0 when rejected.",
                   r->last_ok ? 1 : 0);
        met_scalar(b, "ingressd_last_reload_errors", "gauge",
                   "Error diagnostics of the last reload.", r->last_errors);
    }
    if (s) {
        met_scalar(b, "ingressd_quarantined_objects", "gauge",
                   "Objects rejected by the last load (serving their last good version, or left out).",
                   s->nquarantine);
        met_head(b, "ingressd_config_objects", "gauge", "Objects in the served configuration.");
        met_printf(b, "ingressd_config_objects{kind=\"ingress\"} %u\n", s->ningresses);
        met_printf(b, "ingressd_config_objects{kind=\"rule\"} %u\n", s->nrules);
        met_printf(b, "ingressd_config_objects{kind=\"service\"} %u\n", s->nservices);
        met_printf(b, "ingressd_config_objects{kind=\"backend\"} %u\n", s->nbackends);
        met_printf(b, "ingressd_config_objects{kind=\"endpoint\"} %u\n", s->nendpoints);
        met_endpoints(b, s, in->now_ms);
    }
}
