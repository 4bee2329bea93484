/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hc: endpoint health, shared by every worker and every snapshot.
 *
 * The table. One struct hc_ep per "ip:port" lives in a global chained hash
 * table. Snapshots take a ref on the entry of each endpoint when they are built
 * (hc_ep_get) and drop it when they are freed (hc_ep_put); a reload builds the
 * new snapshot before the old one goes, so an endpoint that remains keeps its
 * entry - its active-check state, ejection history, counters and EWMA - across
 * any number of reloads. The table mutex is taken only by get/put (loader,
 * main, health thread); the request path only touches the atomics of an entry
 * it already holds through its snapshot.
 *
 * Passive checks (outlier detection, Envoy's consecutive_5xx). Workers report
 * every finished request through lb_done(): a success clears the failure
 * streak; a failure (connect error, reset, timeout, 5xx) extends it, and when
 * the streak reaches outlier.consecutive_failures the endpoint is ejected for
 *
 *     base_ejection_ms * 2^(previous ejections), capped at max_ejection_ms
 *
 * (1 s the first time with the defaults). At most max_ejection_pct of a
 * backend is ejected at once, but one endpoint always may be (Envoy's rule).
 * After an ejection the endpoint is on probation: it serves again when the time
 * is over, and its first failure before a success re-ejects it at once. The
 * multiplier forgets old ejections after max_ejection_ms of good behaviour.
 * The ejection slot is taken with a CAS on ejected_until_ms so two workers
 * failing together eject (and log) once.
 *
 * Active checks. One health thread (hc_start) with its own event_base runs a
 * probe per endpoint of every backend whose hc conf has interval_ms > 0:
 *
 *     timer --(jittered interval)--> connect --> [GET path] --> status line
 *       ^                               |  timeout / error / bad status
 *       +-------------------------------+--> streaks --> UP / DOWN
 *
 * A probe is an HTTP/1.1 GET of the path (Host: ip:port, Connection: close)
 * that passes on a status in status_min..status_max, or a bare TCP connect when
 * there is no path; for a backend-protocol HTTPS backend both run over TLS
 * with the backend's upstream SSL_CTX and SNI, so a probe passes only where a
 * real request's handshake would. healthy_threshold passes in a row mark the endpoint UP and
 * end an ejection early; unhealthy_threshold failures in a row mark it DOWN
 * (lb never picks it, except in panic mode). Probes fire at a fixed rate; each
 * interval is shortened by a random 0-10% so replicas do not probe in lockstep
 * and an endpoint is never checked later than its interval. A probe still in
 * flight when the next is due counts as a timeout. While an endpoint is between
 * states (a failure while not down, a pass while down) the next check runs at once
 * (HAProxy's fastinter): a hung pod is out after about interval + threshold x
 * timeout, within interval x threshold whenever timeout <= interval / 2 at
 * threshold 2 (or interval x (threshold-1)/threshold in general).
 *
 * hc_apply(snap) runs on any thread: it copies the wanted probes out of the
 * snapshot (no ref kept, so the health thread never pins an old snapshot) and
 * hands the list to the health thread through one atomic slot plus a wake-up
 * event (coalescing: only the newest list matters). The health thread then
 * reconciles by address: probes for endpoints that remain keep their streaks and
 * state (their conf is updated in place), new endpoints get a probe, probes for
 * endpoints that disappeared stop, and their active state returns to UNKNOWN.
 * Endpoints without active checks are UNKNOWN, which is usable: an endpoint
 * serves as soon as its EndpointSlice says ready.
 *
 * Threads: table get/put any thread (mutex); report/usable/ewma any thread
 * (atomics, relaxed unless stated); probes only on the health thread.
 */
#include "ingressd/hc.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <netinet/in.h>

#include "ingressd/log.h"
#include "ingressd/snap-t.h"

/* ---- the shared table ---- */

/* a reload of 50,000 endpoints looks every one up: keep chains short */
#define HC_BUCKETS 65536u

static pthread_mutex_t hc_table_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct hc_ep *hc_table[HC_BUCKETS];
static uint32_t hc_table_n;

static uint32_t hc_key_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/*
 * Returns the entry for addr ("ip:port", < 64 bytes) with one ref taken,
 * creating it UNKNOWN and unejected. Any thread; takes the table mutex.
 */
struct hc_ep *hc_ep_get(const char *addr)
{
    uint32_t h = hc_key_hash(addr), b = h % HC_BUCKETS;
    pthread_mutex_lock(&hc_table_mtx);
    struct hc_ep *ep;
    for (ep = hc_table[b]; ep; ep = ep->next)
        if (ep->hash == h && strcmp(ep->key, addr) == 0)
            break;
    if (ep) {
        atomic_fetch_add_explicit(&ep->refs, 1, memory_order_relaxed);
    } else {
        ep = calloc(1, sizeof(*ep));
        if (!ep)
            abort();
        snprintf(ep->key, sizeof(ep->key), "%s", addr);
        atomic_init(&ep->refs, 1);
        ep->hash = h;
        ep->next = hc_table[b];
        hc_table[b] = ep;
        hc_table_n++;
    }
    pthread_mutex_unlock(&hc_table_mtx);
    return ep;
}

/* drops one ref; the last one unlinks and frees the entry (under the mutex, so
 * a concurrent hc_ep_get of the same key either revives it or makes a new one) */
void hc_ep_put(struct hc_ep *ep)
{
    if (!ep)
        return;
    /* not the last ref: no table change, so no mutex (a snapshot release drops
     * thousands of refs). Only the 1 -> 0 step happens under the mutex, where
     * hc_ep_get cannot revive the entry concurrently. */
    unsigned r = atomic_load_explicit(&ep->refs, memory_order_relaxed);
    while (r > 1)
        if (atomic_compare_exchange_weak_explicit(&ep->refs, &r, r - 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return;
    pthread_mutex_lock(&hc_table_mtx);
    if (atomic_fetch_sub_explicit(&ep->refs, 1, memory_order_acq_rel) == 1) {
        struct hc_ep **pp = &hc_table[ep->hash % HC_BUCKETS];
        while (*pp && *pp != ep)
            pp = &(*pp)->next;
        if (*pp)
            *pp = ep->next;
        hc_table_n--;
        free(ep);
    }
    pthread_mutex_unlock(&hc_table_mtx);
}

uint32_t hc_table_size(void)
{
    pthread_mutex_lock(&hc_table_mtx);
    uint32_t n = hc_table_n;
    pthread_mutex_unlock(&hc_table_mtx);
    return n;
}

/*
 * Called on every pick and every lb_done: the coarse clock (a tick, ~4 ms, of
 * resolution) costs a few ns where the precise one costs tens in VMs, and
 * nothing here needs better than a tick (ejections, EWMA decay, probes).
 */
uint64_t hc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- state queries (workers, admin) ---- */

bool hc_ep_is_ejected(const struct hc_ep *ep, uint64_t now_ms)
{
    uint64_t until = atomic_load_explicit(&ep->ejected_until_ms, memory_order_relaxed);
    return until != 0 && now_ms < until;
}

bool hc_ep_is_usable(const struct hc_ep *ep, uint64_t now_ms)
{
    if (!ep)
        return true;
    if (atomic_load_explicit(&ep->active_state, memory_order_relaxed) == HC_DOWN)
        return false;
    return !hc_ep_is_ejected(ep, now_ms);
}

const char *hc_state_name(const struct hc_ep *ep, uint64_t now_ms)
{
    if (!ep)
        return "unknown";
    /* same precedence as admin's /endpoints: an ejection shows over the active state */
    if (hc_ep_is_ejected(ep, now_ms))
        return "ejected";
    int st = atomic_load_explicit(&ep->active_state, memory_order_relaxed);
    if (st == HC_DOWN)
        return "down";
    return st == HC_UP ? "up" : "unknown";
}

void hc_ep_snapshot(const struct hc_ep *ep, uint64_t now_ms, struct hc_ep_view *out)
{
    memset(out, 0, sizeof(*out));
    out->state = hc_state_name(ep, now_ms);
    if (!ep)
        return;
    out->active_state = atomic_load_explicit(&ep->active_state, memory_order_relaxed);
    uint64_t until = atomic_load_explicit(&ep->ejected_until_ms, memory_order_relaxed);
    out->ejected = until != 0 && now_ms < until;
    out->ejected_remaining_ms = out->ejected ? until - now_ms : 0;
    out->ejections = atomic_load_explicit(&ep->ejections, memory_order_relaxed);
    out->consec_failures = atomic_load_explicit(&ep->consec_failures, memory_order_relaxed);
    out->active_conns = atomic_load_explicit(&ep->active_conns, memory_order_relaxed);
    out->requests = atomic_load_explicit(&ep->requests, memory_order_relaxed);
    out->failures = atomic_load_explicit(&ep->failures, memory_order_relaxed);
    out->ewma_us = hc_ewma_get(ep, now_ms);
}

/* ---- EWMA ---- */

static double hc_ewma_weight(uint64_t dt_ms)
{
    return exp(-(double)dt_ms / (double)HC_EWMA_TAU_MS);
}

void hc_ewma_update(struct hc_ep *ep, uint64_t sample_us, uint64_t now_ms)
{
    if (sample_us == 0)
        sample_us = 1; /* 0 means "no sample" */
    uint64_t cur = atomic_load_explicit(&ep->ewma_us, memory_order_relaxed);
    uint64_t stamp = atomic_load_explicit(&ep->ewma_stamp_ms, memory_order_relaxed);
    uint32_t n = atomic_fetch_add_explicit(&ep->ewma_samples, 1, memory_order_relaxed);
    uint64_t next;
    if (cur == 0 || n == 0) {
        next = sample_us;
    } else {
        double a = 1.0 - hc_ewma_weight(now_ms > stamp ? now_ms - stamp : 0);
        double floor = 1.0 / (double)((n < HC_EWMA_MIN_N ? n : HC_EWMA_MIN_N) + 1);
        if (a < floor)
            a = floor;
        next = (uint64_t)((double)cur * (1.0 - a) + (double)sample_us * a);
        if (next == 0)
            next = 1;
    }
    atomic_store_explicit(&ep->ewma_us, next, memory_order_relaxed);
    atomic_store_explicit(&ep->ewma_stamp_ms, now_ms, memory_order_relaxed);
}

uint64_t hc_ewma_get(const struct hc_ep *ep, uint64_t now_ms)
{
    uint64_t cur = atomic_load_explicit(&ep->ewma_us, memory_order_relaxed);
    if (cur == 0)
        return 0;
    uint64_t stamp = atomic_load_explicit(&ep->ewma_stamp_ms, memory_order_relaxed);
    if (now_ms <= stamp)
        return cur;
    uint64_t v = (uint64_t)((double)cur * hc_ewma_weight(now_ms - stamp));
    return v ? v : 1;
}

/* ---- passive checks ---- */

static _Atomic uint32_t hc_oc_consecutive = 5;
static _Atomic uint32_t hc_oc_base_ms = 1000;
static _Atomic uint32_t hc_oc_max_ms = 30000;
static _Atomic uint32_t hc_oc_max_pct = 50;

void hc_set_outlier(const struct snap_outlier_conf *oc)
{
    atomic_store_explicit(&hc_oc_consecutive, oc->consecutive_failures, memory_order_relaxed);
    atomic_store_explicit(&hc_oc_base_ms, oc->base_ejection_ms ? oc->base_ejection_ms : 1000,
                          memory_order_relaxed);
    atomic_store_explicit(&hc_oc_max_ms, oc->max_ejection_ms ? oc->max_ejection_ms : 30000,
                          memory_order_relaxed);
    atomic_store_explicit(&hc_oc_max_pct, oc->max_ejection_pct, memory_order_relaxed);
}

void hc_get_outlier(struct snap_outlier_conf *out)
{
    out->consecutive_failures = atomic_load_explicit(&hc_oc_consecutive, memory_order_relaxed);
    out->base_ejection_ms = atomic_load_explicit(&hc_oc_base_ms, memory_order_relaxed);
    out->max_ejection_ms = atomic_load_explicit(&hc_oc_max_ms, memory_order_relaxed);
    out->max_ejection_pct = atomic_load_explicit(&hc_oc_max_pct, memory_order_relaxed);
}

void hc_report_success(struct hc_ep *ep, uint64_t latency_us)
{
    (void)latency_us; /* EWMA is fed by lb_done, which knows the result kind */
    if (!ep)
        return;
    /* avoid dirtying the shared cache line on the common all-good path */
    if (atomic_load_explicit(&ep->consec_failures, memory_order_relaxed))
        atomic_store_explicit(&ep->consec_failures, 0, memory_order_relaxed);
    if (atomic_load_explicit(&ep->probation, memory_order_relaxed))
        atomic_store_explicit(&ep->probation, 0, memory_order_relaxed);
}

/*
 * Counts one failed request on ep. Ejects it when the failure streak reaches
 * oc->consecutive_failures (or at once while on probation), unless that would
 * put more than max_ejection_pct of the backend's backend_neps endpoints out
 * (backend_nejected are out now; the first ejection is always allowed).
 * Returns true if this call ejected the endpoint. Any thread, lock-free.
 */
bool hc_report_failure(struct hc_ep *ep, const struct snap_outlier_conf *oc,
                       uint32_t backend_neps, uint32_t backend_nejected)
{
    if (!ep || !oc || oc->consecutive_failures == 0)
        return false;
    uint32_t streak = atomic_fetch_add_explicit(&ep->consec_failures, 1, memory_order_relaxed) + 1;
    bool probation = atomic_load_explicit(&ep->probation, memory_order_relaxed) != 0;
    if (streak < oc->consecutive_failures && !probation)
        return false;
    uint64_t now = hc_now_ms();
    uint64_t until = atomic_load_explicit(&ep->ejected_until_ms, memory_order_acquire);
    if (until != 0 && now < until)
        return false; /* already out: failures of requests sent before the ejection */
    if (backend_nejected > 0 &&
        (uint64_t)(backend_nejected + 1) * 100 > (uint64_t)backend_neps * oc->max_ejection_pct)
        return false;

    uint32_t base = oc->base_ejection_ms ? oc->base_ejection_ms : 1000;
    uint32_t cap = oc->max_ejection_ms ? oc->max_ejection_ms : 30000;
    uint32_t n = atomic_load_explicit(&ep->ejections, memory_order_relaxed);
    uint64_t last_end = atomic_load_explicit(&ep->last_eject_end_ms, memory_order_relaxed);
    if (n && last_end && now > last_end + cap)
        n = 0; /* behaved for a whole cap period since: start over */
    uint64_t dur = base;
    for (uint32_t i = 0; i < n && dur < cap; i++)
        dur *= 2;
    if (dur > cap)
        dur = cap;
    if (dur < base && base <= cap)
        dur = base;
    /* one winner per ejection even when several workers fail at once */
    if (!atomic_compare_exchange_strong_explicit(&ep->ejected_until_ms, &until, now + dur,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return false;
    atomic_store_explicit(&ep->ejections, n + 1, memory_order_relaxed);
    atomic_store_explicit(&ep->last_eject_end_ms, now + dur, memory_order_relaxed);
    atomic_store_explicit(&ep->consec_failures, 0, memory_order_relaxed);
    atomic_store_explicit(&ep->probation, 1, memory_order_relaxed);
    /* an early return needs healthy_threshold passes counted from now */
    atomic_store_explicit(&ep->check_ok_streak, 0, memory_order_relaxed);
    if (probation)
        log_warn("hc: %s ejected for %llu ms (failed again after its last ejection, ejection #%u)",
                 ep->key, (unsigned long long)dur, n + 1);
    else
        log_warn("hc: %s ejected for %llu ms (%u consecutive failures, ejection #%u)", ep->key,
                 (unsigned long long)dur, streak, n + 1);
    return true;
}

/* ---- active checks: probes on the health thread ---- */

struct hc_want {                       /* one wanted probe, copied out of a snapshot */
    char addr[64];                     /* hc_ep key */
    struct sockaddr_storage sa;        /* where to probe (hc port applied) */
    socklen_t salen;
    char host[64];                     /* Host header: the probed ip:port */
    struct snap_hc_conf conf;          /* conf.path points into path[] or NULL */
    char path[256];
    SSL_CTX *ssl_ctx;                  /* backend-protocol HTTPS: probe over TLS (own ref) */
    char sni[256];                     /* "" = no SNI */
};

struct hc_wants {                      /* a whole wanted set (malloc'd; health thread frees) */
    struct hc_want *v;
    uint32_t n;
};

enum hc_probe_phase { HC_PROBE_IDLE = 0, HC_PROBE_CONNECTING, HC_PROBE_READING };

struct hc_probe {                      /* health thread only */
    struct hc_want w;
    struct hc_ep *ep;                  /* own ref */
    struct event *ev_timer;            /* next probe */
    struct event *ev_timeout;          /* this probe's deadline */
    struct bufferevent *bev;           /* NULL when idle */
    enum hc_probe_phase phase;
    bool seen;                         /* reconcile mark */
};

static struct event_base *hc_base;
static struct event *hc_ev_wake;
static pthread_t hc_thread;
static bool hc_running;
static _Atomic(struct hc_wants *) hc_pending;
static struct hc_probe **hc_probes;    /* health thread only, sorted by w.addr */
static uint32_t hc_nprobes;
static _Atomic uint32_t hc_nprobes_pub;
static uint64_t hc_rng = 0x9e3779b97f4a7c15ull;

static void hc_wants_free(struct hc_wants *ws)
{
    if (ws) {
        for (uint32_t i = 0; i < ws->n; i++)
            SSL_CTX_free(ws->v[i].ssl_ctx); /* NULL is a no-op */
        free(ws->v);
        free(ws);
    }
}

static uint64_t hc_rand(void)
{
    hc_rng ^= hc_rng << 13;
    hc_rng ^= hc_rng >> 7;
    hc_rng ^= hc_rng << 17;
    return hc_rng;
}

/* interval shortened by a random 0..10% (never later than the interval) */
static struct timeval hc_jittered(uint32_t interval_ms)
{
    uint64_t ms = interval_ms;
    uint64_t j = ms / 10;
    if (j)
        ms -= hc_rand() % (j + 1);
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    return tv;
}

static void hc_probe_abort(struct hc_probe *p)
{
    if (p->bev) {
        bufferevent_free(p->bev);
        p->bev = NULL;
    }
    evtimer_del(p->ev_timeout);
    p->phase = HC_PROBE_IDLE;
}

static void hc_probe_result(struct hc_probe *p, bool ok, const char *why)
{
    hc_probe_abort(p);
    struct hc_ep *ep = p->ep;
    const struct snap_hc_conf *c = &p->w.conf;
    int state = atomic_load_explicit(&ep->active_state, memory_order_relaxed);
    bool transition;
    if (ok) {
        atomic_store_explicit(&ep->check_fail_streak, 0, memory_order_relaxed);
        uint32_t s = atomic_fetch_add_explicit(&ep->check_ok_streak, 1, memory_order_relaxed) + 1;
        /* only a down endpoint coming back: an unknown one already serves, and
         * a healthy pod must see the plain (jittered) interval from its first check */
        transition = state == HC_DOWN && s < c->healthy_threshold;
        if (s >= c->healthy_threshold) {
            int prev = atomic_exchange_explicit(&ep->active_state, HC_UP, memory_order_relaxed);
            if (prev == HC_DOWN)
                log_info("hc: %s is up (%u checks passed)", ep->key, s);
            uint64_t until = atomic_load_explicit(&ep->ejected_until_ms, memory_order_relaxed);
            if (until && hc_now_ms() < until) {
                /* passed the healthy threshold since the ejection: end it early */
                atomic_store_explicit(&ep->last_eject_end_ms, hc_now_ms(), memory_order_relaxed);
                atomic_store_explicit(&ep->ejected_until_ms, 0, memory_order_release);
                log_info("hc: %s ejection ended early (%u checks passed)", ep->key, s);
            }
        }
    } else {
        atomic_store_explicit(&ep->check_ok_streak, 0, memory_order_relaxed);
        uint32_t s = atomic_fetch_add_explicit(&ep->check_fail_streak, 1, memory_order_relaxed) + 1;
        transition = state != HC_DOWN && s < c->unhealthy_threshold;
        if (s >= c->unhealthy_threshold) {
            int prev = atomic_exchange_explicit(&ep->active_state, HC_DOWN, memory_order_relaxed);
            if (prev != HC_DOWN)
                log_warn("hc: %s is down (%u checks failed, last: %s)", ep->key, s, why);
        }
    }
    if (transition) {
        /*
         * Between states (HAProxy's fastinter): check again at once instead of
         * after a full interval, so the threshold is reached in about
         * interval + threshold x (check time) rather than threshold x interval
         * + timeout. At most threshold - 1 extra checks per transition; a
         * steady endpoint (up or down) is checked at the plain interval.
         */
        struct timeval now = { 0, 0 };
        evtimer_add(p->ev_timer, &now);
    }
}

/* parses "HTTP/1.x NNN" from the start of the response */
static int hc_parse_status(struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    if (len < 12)
        return 0;
    char head[13];
    evbuffer_copyout(in, head, 12);
    head[12] = '\0';
    if (memcmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ')
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (head[i] < '0' || head[i] > '9')
            return -1;
        st = st * 10 + (head[i] - '0');
    }
    return st;
}

static void hc_on_read(struct bufferevent *bev, void *arg)
{
    struct hc_probe *p = arg;
    int st = hc_parse_status(bufferevent_get_input(bev));
    if (st == 0)
        return; /* need more */
    if (st < 0) {
        hc_probe_result(p, false, "malformed response");
        return;
    }
    if (st >= p->w.conf.status_min && st <= p->w.conf.status_max) {
        hc_probe_result(p, true, NULL);
    } else {
        char why[32];
        snprintf(why, sizeof(why), "status %d", st);
        hc_probe_result(p, false, why);
    }
}

static void hc_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct hc_probe *p = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (!p->w.conf.path) {
            hc_probe_result(p, true, NULL);
            return;
        }
        p->phase = HC_PROBE_READING;
        evbuffer_add_printf(bufferevent_get_output(bev),
                            "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: ingressd-hc\r\n"
                            "Connection: close\r\n\r\n",
                            p->w.conf.path, p->w.host);
        bufferevent_enable(bev, EV_READ);
        return;
    }
    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        /* EOF after a full status line is handled by hc_on_read first */
        if (p->phase == HC_PROBE_READING) {
            int st = hc_parse_status(bufferevent_get_input(bev));
            if (st > 0) {
                hc_on_read(bev, p);
                return;
            }
        }
        char why[160];
        unsigned long tls_err = p->w.ssl_ctx ? bufferevent_get_openssl_error(bev) : 0;
        if (what & BEV_EVENT_EOF)
            snprintf(why, sizeof(why), "closed by the pod");
        else if (tls_err)
            snprintf(why, sizeof(why), "TLS: %s", ERR_reason_error_string(tls_err) ? ERR_reason_error_string(tls_err) : "error");
        else
            snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        hc_probe_result(p, false, why);
    }
}

static void hc_on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hc_probe_result(arg, false, "timeout");
}

static void hc_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hc_probe *p = arg;
    if (p->phase != HC_PROBE_IDLE)
        hc_probe_result(p, false, "timeout"); /* still running at the next tick */
    struct timeval next = hc_jittered(p->w.conf.interval_ms);
    evtimer_add(p->ev_timer, &next);

    if (p->w.ssl_ctx) {
        /* the same handshake real traffic does (verification, SNI), then the check */
        SSL *ssl = SSL_new(p->w.ssl_ctx);
        if (ssl && p->w.sni[0])
            SSL_set_tlsext_host_name(ssl, p->w.sni);
        p->bev = ssl ? bufferevent_openssl_socket_new(hc_base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                      BEV_OPT_CLOSE_ON_FREE)
                     : NULL;
        if (ssl && !p->bev)
            SSL_free(ssl);
        if (p->bev) {
            bufferevent_openssl_set_allow_dirty_shutdown(p->bev, 1);
            bufferevent_enable(p->bev, EV_READ | EV_WRITE); /* the handshake reads too */
        }
    } else {
        p->bev = bufferevent_socket_new(hc_base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!p->bev) {
        hc_probe_result(p, false, "no memory");
        return;
    }
    bufferevent_setcb(p->bev, hc_on_read, NULL, hc_on_event, p);
    p->phase = HC_PROBE_CONNECTING;
    struct timeval to = { (time_t)(p->w.conf.timeout_ms / 1000),
                          (suseconds_t)((p->w.conf.timeout_ms % 1000) * 1000) };
    evtimer_add(p->ev_timeout, &to);
    if (bufferevent_socket_connect(p->bev, (struct sockaddr *)&p->w.sa, (int)p->w.salen) < 0 &&
        p->bev && p->phase == HC_PROBE_CONNECTING)
        hc_probe_result(p, false, "connect error"); /* unless the event cb reported it already */
}

static void hc_probe_free(struct hc_probe *p, bool reset_state)
{
    hc_probe_abort(p);
    event_free(p->ev_timer);
    event_free(p->ev_timeout);
    if (reset_state) {
        /* no longer actively checked: back to "serve if ready" */
        atomic_store_explicit(&p->ep->active_state, HC_UNKNOWN, memory_order_relaxed);
        atomic_store_explicit(&p->ep->check_ok_streak, 0, memory_order_relaxed);
        atomic_store_explicit(&p->ep->check_fail_streak, 0, memory_order_relaxed);
    }
    hc_ep_put(p->ep);
    SSL_CTX_free(p->w.ssl_ctx);
    free(p);
}

static int hc_probe_cmp(const void *a, const void *b)
{
    return strcmp((*(struct hc_probe *const *)a)->w.addr, (*(struct hc_probe *const *)b)->w.addr);
}

static struct hc_probe *hc_probe_find(const char *addr)
{
    size_t lo = 0, hi = hc_nprobes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(hc_probes[mid]->w.addr, addr);
        if (c == 0)
            return hc_probes[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int hc_want_cmp(const void *a, const void *b)
{
    const struct hc_want *x = a, *y = b;
    int c = strcmp(x->addr, y->addr);
    if (c)
        return c;
    /* one endpoint in two backends with different checks: the more frequent one wins */
    return x->conf.interval_ms < y->conf.interval_ms ? -1 : x->conf.interval_ms > y->conf.interval_ms;
}

/* health thread: make the probe set equal to ws (keeping state of the ones that remain) */
static void hc_reconcile(struct hc_wants *ws)
{
    /* stable order: duplicates (one endpoint in two backends) become neighbours */
    qsort(ws->v, ws->n, sizeof(*ws->v), hc_want_cmp);
    for (uint32_t i = 0; i < hc_nprobes; i++)
        hc_probes[i]->seen = false;
    struct hc_probe **next = calloc(ws->n + 1, sizeof(*next));
    if (!next)
        abort();
    uint32_t nnext = 0;
    for (uint32_t i = 0; i < ws->n; i++) {
        struct hc_want *w = &ws->v[i];
        struct hc_probe *p = hc_probe_find(w->addr);
        if (p && p->seen)
            continue; /* same endpoint in two backends: the first (shortest interval) wins */
        if (p) {
            bool resched = p->w.conf.interval_ms != w->conf.interval_ms;
            SSL_CTX_free(p->w.ssl_ctx); /* an in-flight SSL holds its own ref on it */
            p->w = *w;
            if (w->ssl_ctx)
                SSL_CTX_up_ref(w->ssl_ctx);
            if (w->conf.path)
                p->w.conf.path = p->w.path;
            p->seen = true;
            if (resched) {
                struct timeval tv = hc_jittered(p->w.conf.interval_ms);
                evtimer_add(p->ev_timer, &tv);
            }
            next[nnext++] = p;
            continue;
        }
        if (nnext && strcmp(next[nnext - 1]->w.addr, w->addr) == 0)
            continue; /* same endpoint in two backends: the first (shortest interval) wins */
        p = calloc(1, sizeof(*p));
        if (!p)
            abort();
        p->w = *w;
        if (w->ssl_ctx)
            SSL_CTX_up_ref(w->ssl_ctx); /* the want's own ref goes with hc_wants_free */
        if (w->conf.path)
            p->w.conf.path = p->w.path;
        p->ep = hc_ep_get(w->addr);
        p->ev_timer = evtimer_new(hc_base, hc_on_timer, p);
        p->ev_timeout = evtimer_new(hc_base, hc_on_timeout, p);
        p->seen = true;
        /* first check at once, spread over a tenth of the interval (<= 100 ms)
         * so a big Service does not probe all its pods in the same instant */
        uint32_t spread = p->w.conf.interval_ms < 1000 ? p->w.conf.interval_ms : 1000;
        uint64_t ms = spread ? hc_rand() % (spread / 10 + 1) : 0;
        struct timeval tv = { 0, (suseconds_t)(ms * 1000) };
        evtimer_add(p->ev_timer, &tv);
        next[nnext++] = p;
    }
    for (uint32_t i = 0; i < hc_nprobes; i++)
        if (!hc_probes[i]->seen)
            hc_probe_free(hc_probes[i], true);
    free(hc_probes);
    hc_probes = next;
    hc_nprobes = nnext;
    qsort(hc_probes, hc_nprobes, sizeof(*hc_probes), hc_probe_cmp);
    atomic_store_explicit(&hc_nprobes_pub, hc_nprobes, memory_order_relaxed);
}

static void hc_on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    struct hc_wants *ws = atomic_exchange_explicit(&hc_pending, NULL, memory_order_acq_rel);
    if (ws) {
        hc_reconcile(ws);
        hc_wants_free(ws);
    }
}

static void *hc_main(void *arg)
{
    (void)arg;
    event_base_loop(hc_base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/*
 * Starts the health thread (main, once, before hc_apply). 0 ok, <0 on error
 * (logged). Safe to call after hc_stop() again (tests).
 */
int hc_start(void)
{
    if (hc_running)
        return 0;
    evthread_use_pthreads(); /* idempotent; the wake-up comes from other threads */
    hc_rng ^= (uint64_t)hc_now_ms() * 0x2545f4914f6cdd1dull ^ (uint64_t)getpid();
    hc_base = event_base_new();
    if (!hc_base) {
        log_err("hc: cannot create event base");
        return -1;
    }
    hc_ev_wake = event_new(hc_base, -1, 0, hc_on_wake, NULL);
    if (!hc_ev_wake || pthread_create(&hc_thread, NULL, hc_main, NULL) != 0) {
        log_err("hc: cannot start the health thread");
        if (hc_ev_wake)
            event_free(hc_ev_wake);
        event_base_free(hc_base);
        hc_base = NULL;
        return -1;
    }
    hc_running = true;
    return 0;
}

static void hc_want_fill(struct hc_want *w, const struct snap_endpoint *ep,
                         const struct snap_hc_conf *c, SSL_CTX *ssl_ctx, const char *sni)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->addr, sizeof(w->addr), "%s", ep->addr);
    memcpy(&w->sa, &ep->sa, sizeof(w->sa));
    w->salen = ep->salen;
    w->conf = *c;
    uint16_t port = 0;
    if (w->sa.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&w->sa;
        if (c->port)
            sin->sin_port = htons(c->port);
        port = ntohs(sin->sin_port);
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(w->host, sizeof(w->host), "%s:%u", ip, port);
    } else if (w->sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&w->sa;
        if (c->port)
            sin6->sin6_port = htons(c->port);
        port = ntohs(sin6->sin6_port);
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(w->host, sizeof(w->host), "[%s]:%u", ip, port);
    } else {
        snprintf(w->host, sizeof(w->host), "%s", ep->addr);
    }
    if (c->path) {
        snprintf(w->path, sizeof(w->path), "%s", c->path[0] == '/' ? c->path : "/");
        w->conf.path = w->path;
    }
    if (ssl_ctx && SSL_CTX_up_ref(ssl_ctx) == 1) {
        w->ssl_ctx = ssl_ctx;
        if (sni)
            snprintf(w->sni, sizeof(w->sni), "%s", sni);
    }
    /* defensive defaults for fields the loader left 0 */
    if (!w->conf.timeout_ms)
        w->conf.timeout_ms = w->conf.interval_ms < 1000 ? w->conf.interval_ms : 1000;
    if (!w->conf.healthy_threshold)
        w->conf.healthy_threshold = 1;
    if (!w->conf.unhealthy_threshold)
        w->conf.unhealthy_threshold = 1;
    if (!w->conf.status_min && !w->conf.status_max) {
        w->conf.status_min = 200;
        w->conf.status_max = 399;
    }
}

/*
 * Adopts a new snapshot: sets the outlier settings lb_done ejects with, and
 * hands the wanted probe set (every ready, non-terminating endpoint of every
 * backend with hc.interval_ms > 0) to the health thread. Any thread; keeps no
 * reference to s after it returns. Without hc_start() only the outlier
 * settings apply.
 */
void hc_apply(struct snap *s)
{
    if (!s)
        return;
    hc_set_outlier(&s->cfg.outlier);
    if (!hc_running)
        return;
    uint32_t n = 0;
    for (uint32_t b = 0; b < s->nbackends; b++)
        if (s->backends[b].hc.interval_ms > 0)
            n += s->backends[b].neps;
    struct hc_wants *ws = calloc(1, sizeof(*ws));
    if (!ws || !(ws->v = calloc(n + 1, sizeof(*ws->v))))
        abort();
    for (uint32_t b = 0; b < s->nbackends; b++) {
        const struct snap_backend *be = &s->backends[b];
        if (be->hc.interval_ms == 0 || be->external_name)
            continue;
        for (uint32_t i = 0; i < be->neps; i++) {
            const struct snap_endpoint *ep = &be->eps[i];
            if (!ep->addr || !ep->ready || ep->terminating || !ep->salen)
                continue;
            hc_want_fill(&ws->v[ws->n++], ep, &be->hc,
                         be->upstream_tls ? (SSL_CTX *)be->upstream_ssl_ctx : NULL,
                         be->upstream_sni);
        }
    }
    hc_wants_free(atomic_exchange_explicit(&hc_pending, ws, memory_order_acq_rel));
    event_active(hc_ev_wake, EV_READ, 0);
}

uint32_t hc_probe_count(void)
{
    return atomic_load_explicit(&hc_nprobes_pub, memory_order_relaxed);
}

/* stops the health thread and frees every probe (main, at exit) */
void hc_stop(void)
{
    if (!hc_running)
        return;
    event_base_loopbreak(hc_base);
    pthread_join(hc_thread, NULL);
    hc_wants_free(atomic_exchange(&hc_pending, NULL));
    for (uint32_t i = 0; i < hc_nprobes; i++)
        hc_probe_free(hc_probes[i], true);
    free(hc_probes);
    hc_probes = NULL;
    hc_nprobes = 0;
    atomic_store(&hc_nprobes_pub, 0);
    event_free(hc_ev_wake);
    event_base_free(hc_base);
    hc_ev_wake = NULL;
    hc_base = NULL;
    hc_running = false;
}
