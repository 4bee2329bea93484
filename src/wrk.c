/* SPDX-License-Identifier: Apache-2.0 */
/*
 * wrk: the worker pool (style.md 3.3 steps 4-5, Envoy's worker/dispatcher).
 *
 *   main ──wrk_pool_start──> N threads, each: event_base (NOLOCK), its own
 *                            SO_REUSEPORT socket per listener, its snapshot
 *   loader/main ──wrk_pool_publish(s)──> w->pending (atomic slot) + eventfd
 *   worker (wake) ──adopt──> w->snap = s; listeners diffed; idle pools swept
 *
 * Each worker is a share-nothing event loop: a connection accepted by a
 * worker stays on it for life, and nothing on the request path takes a lock
 * (the bases are created with EVENT_BASE_FLAG_NOLOCK). The only cross-thread
 * traffic is the pending-snapshot slot, the drain/stop flags and the
 * counters; a cross-thread event_active() would need a locked base, so the
 * doorbell is an eventfd the worker reads. The slot, not the doorbell, is the
 * message: several publishes before the worker wakes coalesce into the
 * newest snapshot, older ones are released by the publisher.
 *
 * Snapshot refs: a worker holds one ref on its current snapshot, the pending
 * slot one on the snapshot in it, and every request one of its own
 * (px_start), so a request in flight finishes on the routes it started with
 * and keep-alive connections see the new snapshot on their next request.
 *
 * Drain (SIGTERM): workers close their listeners and idle keep-alive
 * connections; busy connections answer their current request with
 * `Connection: close`; main waits until no connection is left or the drain
 * timeout passes, then stops and joins the threads.
 */
#include "ingressd/wrk.h"

#include <errno.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ingressd/conn.h"
#include "ingressd/log.h"
#include "ingressd/lsn.h"
#include "ingressd/proxy.h"
#include "ingressd/snap.h"
#include "ingressd/uio.h"
#include "ingressd/upstream.h"

static struct wrk **pool;
static unsigned npool;

/* ---- worker side ---- */

static void adopt(struct wrk *w, struct snap *s)
{
    struct snap *old = w->snap;
    if (!w->draining)
        lsn_sync(w, s->cfg.listeners, s->cfg.nlisteners);
    ups_sweep(w, s);
    w->snap = s;
    atomic_store_explicit(&w->ctr.snap_gen, s->gen, memory_order_relaxed);
    snap_release(old);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct wrk *w = arg;
    uint64_t v;
    (void)what;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("worker %u: eventfd read: %s", w->id, strerror(errno));
    struct snap *s = atomic_exchange_explicit(&w->pending, NULL, memory_order_acq_rel);
    if (s)
        adopt(w, s);
    if (atomic_load(&w->drain_req) && !w->draining) {
        w->draining = true;
        lsn_close_all(w);
        conn_drain_all(w);
    }
    if (atomic_load(&w->stop_req))
        event_base_loopbreak(w->base);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct wrk *w = arg;
    conn_reap(w);
    ups_reap(w);
}

uint64_t wrk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void tmo_arm(struct wrk_tmo *t, uint64_t exp, uint64_t now)
{
    uint64_t ms = exp > now ? exp - now : 0;
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    event_add(&t->ev, &tv);
    t->armed = exp;
}

static void tmo_cb(evutil_socket_t fd, short what, void *arg)
{
    struct wrk_tmo *t = arg;
    (void)fd;
    (void)what;
    t->armed = 0;
    if (!t->exp)
        return;
    uint64_t now = wrk_now_ms();
    if (now < t->exp) {
        tmo_arm(t, t->exp, now); /* pushed back since it was armed */
        return;
    }
    t->exp = 0;
    t->fire(t);
}

void wrk_tmo_init(struct wrk *w, struct wrk_tmo *t, void (*fire)(struct wrk_tmo *t))
{
    event_assign(&t->ev, w->base, -1, 0, tmo_cb, t);
    t->exp = t->armed = 0;
    t->fire = fire;
}

void wrk_tmo_set(struct wrk_tmo *t, uint32_t ms)
{
    if (!ms) {
        t->exp = 0; /* an armed timer finds nothing to do when it fires */
        return;
    }
    uint64_t now = wrk_now_ms();
    t->exp = now + ms;
    if (!t->armed || t->armed > t->exp)
        tmo_arm(t, t->exp, now);
}

void wrk_tmo_del(struct wrk_tmo *t)
{
    t->exp = t->armed = 0;
    event_del(&t->ev);
}

bool wrk_defer(struct wrk *w, struct wrk_defer *d, size_t len)
{
    if (len >= WRK_DEFER_MAX) {
        wrk_undefer(w, d);
        return false;
    }
    if (!d->queued) {
        d->queued = true;
        TAILQ_INSERT_TAIL(&w->deferq, d, link);
    }
    return true;
}

void wrk_undefer(struct wrk *w, struct wrk_defer *d)
{
    if (d->queued) {
        TAILQ_REMOVE(&w->deferq, d, link);
        d->queued = false;
    }
}

bool wrk_read(struct wrk *w, struct wrk_rd *r)
{
    if (!uio_on(w))
        return false;
    if (!r->queued) {
        r->queued = true;
        TAILQ_INSERT_TAIL(&w->readq, r, link);
    }
    return true;
}

void wrk_unread(struct wrk *w, struct wrk_rd *r)
{
    if (r->queued) {
        TAILQ_REMOVE(&w->readq, r, link);
        r->queued = false;
    }
}

void wrk_kick(struct wrk *w)
{
    event_active(w->ev_reap, EV_TIMEOUT, 0);
}

static void *worker_main(void *arg)
{
    struct wrk *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "ingressd-w%u", w->id);
    pthread_setname_np(pthread_self(), name);
    uio_new(w); /* here: the ring belongs to the thread that creates it */
    /* one loop turn at a time: the deferred writes leave when it ends */
    while (!event_base_got_break(w->base)) {
        if (event_base_loop(w->base, EVLOOP_ONCE) != 0)
            break;
        if (!TAILQ_EMPTY(&w->readq))
            uio_recv(w);
        if (!TAILQ_EMPTY(&w->deferq))
            uio_send(w);
        struct wrk_defer *d;
        while ((d = TAILQ_FIRST(&w->deferq))) {
            wrk_undefer(w, d);
            d->flush(d);
        }
    }
    /* stopped: free everything this thread owns */
    lsn_close_all(w);
    conn_free_all(w);
    conn_reap(w);
    if (w->dns)
        evdns_base_free(w->dns, 1);
    w->dns = NULL;
    ups_fini(w);
    ups_reap(w);
    px_free_all(w);
    uio_free(w);
    return NULL;
}

static void ring(struct wrk *w)
{
    uint64_t one = 1;
    if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("worker %u: eventfd write: %s", w->id, strerror(errno));
}

static void worker_destroy(struct wrk *w)
{
    if (!w)
        return;
    if (w->ev_wake)
        event_free(w->ev_wake);
    if (w->ev_reap)
        event_free(w->ev_reap);
    if (w->base)
        event_base_free(w->base);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    if (w->alog_fd > 2)
        close(w->alog_fd);
    free(w->alog_path);
    snap_release(atomic_exchange(&w->pending, NULL));
    snap_release(w->snap);
    free(w);
}

static struct wrk *worker_new(unsigned id, struct snap *s)
{
    struct wrk *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->id = id;
    w->wake_fd = -1;
    w->alog_fd = -1;
    TAILQ_INIT(&w->conns);
    TAILQ_INIT(&w->dead);
    TAILQ_INIT(&w->runq);
    TAILQ_INIT(&w->ups_dead);
    TAILQ_INIT(&w->deferq);
    TAILQ_INIT(&w->readq);
    struct event_config *ec = event_config_new();
    if (!ec)
        goto fail;
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!w->base)
        goto fail;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0)
        goto fail;
    w->ev_wake = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, on_wake, w);
    w->ev_reap = event_new(w->base, -1, 0, on_reap, w);
    if (!w->ev_wake || !w->ev_reap || event_add(w->ev_wake, NULL) < 0)
        goto fail;
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
        rnd = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)id;
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++)
        w->reqid_prefix[i] = hx[(rnd >> (60 - 4 * i)) & 15];
    w->reqid_prefix[16] = 0;
    if (ups_init(w) < 0)
        goto fail;
    w->snap = snap_ref(s);
    atomic_store(&w->ctr.snap_gen, s->gen);
    return w;
fail:
    log_err("worker %u: cannot create its event loop", id);
    worker_destroy(w);
    return NULL;
}

/* ---- pool side (main thread) ---- */

/*
 * Creates s->cfg.workers workers (the CPU count when 0), binds every
 * listener on each before any thread starts, so a bind error fails start-up.
 * Returns 0, or <0 with everything undone (logged).
 */
int wrk_pool_start(struct snap *s)
{
    unsigned n = s->cfg.workers;
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (unsigned)c : 1;
    }
    pool = calloc(n, sizeof(*pool));
    if (!pool)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        pool[i] = worker_new(i, s);
        if (!pool[i] || lsn_sync(pool[i], s->cfg.listeners, s->cfg.nlisteners) != 0)
            goto fail;
        npool = i + 1;
    }
    for (unsigned i = 0; i < n; i++) {
        if (pthread_create(&pool[i]->thr, NULL, worker_main, pool[i]) != 0) {
            log_err("cannot start worker thread %u", i);
            /* threads already running are stopped by the drain at exit */
            return -1;
        }
    }
    return 0;
fail:
    for (unsigned i = 0; i < n; i++) {
        if (pool[i]) {
            lsn_close_all(pool[i]);
            ups_fini(pool[i]);
            worker_destroy(pool[i]);
        }
    }
    free(pool);
    pool = NULL;
    npool = 0;
    return -1;
}

/* any thread except a worker: hands s to every worker (each gets its own ref) */
void wrk_pool_publish(struct snap *s)
{
    for (unsigned i = 0; i < npool; i++) {
        struct wrk *w = pool[i];
        struct snap *old = atomic_exchange_explicit(&w->pending, snap_ref(s), memory_order_acq_rel);
        snap_release(old);
        ring(w);
    }
}

static uint64_t sum_conns(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < npool; i++)
        n += atomic_load_explicit(&pool[i]->ctr.conns_active, memory_order_relaxed);
    return n;
}

/*
 * Stops accepting, lets every connection finish its request (keep-alive ones
 * get Connection: close), waits until none is left or timeout_ms passed,
 * then stops and joins the workers. Main thread; once.
 */
void wrk_pool_drain(uint32_t timeout_ms)
{
    for (unsigned i = 0; i < npool; i++) {
        atomic_store(&pool[i]->drain_req, true);
        ring(pool[i]);
    }
    struct timespec t0, now, nap = { 0, 5 * 1000 * 1000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (sum_conns() == 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t el = (uint64_t)(now.tv_sec - t0.tv_sec) * 1000 +
                      (uint64_t)((now.tv_nsec - t0.tv_nsec) / 1000000);
        if (el >= timeout_ms) {
            log_warn("drain timeout: %llu connection(s) still open",
                     (unsigned long long)sum_conns());
            break;
        }
        nanosleep(&nap, NULL);
    }
    for (unsigned i = 0; i < npool; i++) {
        atomic_store(&pool[i]->stop_req, true);
        ring(pool[i]);
    }
    for (unsigned i = 0; i < npool; i++) {
        pthread_join(pool[i]->thr, NULL);
        worker_destroy(pool[i]);
    }
    free(pool);
    pool = NULL;
    npool = 0;
}

void wrk_pool_stats(struct wrk_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->snap_gen_min = UINT64_MAX;
    for (unsigned i = 0; i < npool; i++) {
        struct wrk_counters *c = &pool[i]->ctr;
#define LD(f) atomic_load_explicit(&c->f, memory_order_relaxed)
        out->conns_accepted += LD(conns_accepted);
        out->conns_active += LD(conns_active);
        out->requests += LD(requests);
        for (int k = 0; k < 6; k++)
            out->responses_by_class[k] += LD(responses_by_class[k]);
        out->upstream_connect_errors += LD(upstream_connect_errors);
        out->upstream_timeouts += LD(upstream_timeouts);
        out->retries += LD(retries);
        out->bytes_in += LD(bytes_in);
        out->bytes_out += LD(bytes_out);
        uint64_t g = LD(snap_gen);
        if (g < out->snap_gen_min)
            out->snap_gen_min = g;
#undef LD
    }
    if (out->snap_gen_min == UINT64_MAX)
        out->snap_gen_min = 0;
}

uint64_t wrk_pool_inflight(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < npool; i++)
        n += atomic_load_explicit(&pool[i]->ctr.inflight, memory_order_relaxed);
    return n;
}
