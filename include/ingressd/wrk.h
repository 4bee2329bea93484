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

/* ---- worker internals shared by the data-plane modules (conn, proxy, upstream, lsn) ---- */

/* before sys/queue.h: event_struct.h #undefs the TAILQ macros after keyvalq_struct.h */
#include <event2/event_struct.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/queue.h>

struct event;
struct event_base;
struct lsn;
struct conn;
struct px_req;
struct ups_conn;
struct ups_table;
struct evdns_base;

/* per-worker counters: written by the owning worker only (relaxed load+store),
 * read by anyone with relaxed loads (wrk_pool_stats, /metrics) */
struct wrk_counters {
    _Atomic uint64_t conns_accepted, conns_active;
    _Atomic uint64_t requests, responses_by_class[6];
    _Atomic uint64_t upstream_connect_errors, upstream_timeouts, retries;
    _Atomic uint64_t bytes_in, bytes_out;
    _Atomic uint64_t inflight;            /* requests and tunnels in progress */
    _Atomic uint64_t snap_gen;            /* generation this worker serves */
};

#define WRK_INC(w, f) atomic_store_explicit(&(w)->ctr.f, \
        atomic_load_explicit(&(w)->ctr.f, memory_order_relaxed) + 1, memory_order_relaxed)
#define WRK_DEC(w, f) atomic_store_explicit(&(w)->ctr.f, \
        atomic_load_explicit(&(w)->ctr.f, memory_order_relaxed) - 1, memory_order_relaxed)
#define WRK_ADD(w, f, n) atomic_store_explicit(&(w)->ctr.f, \
        atomic_load_explicit(&(w)->ctr.f, memory_order_relaxed) + (n), memory_order_relaxed)

TAILQ_HEAD(conn_list, conn);

/* a connection whose output waits for the end of the loop turn (see WRK_DEFER_MAX);
 * embedded in struct conn and struct ups_conn */
struct wrk_defer {
    TAILQ_ENTRY(wrk_defer) link;       /* w->deferq */
    bool queued;
    int fd;                            /* plain socket the loop may send `out` on, or -1 */
    struct evbuffer *out;
    void (*flush)(struct wrk_defer *d);  /* runs after the batched send, or writes itself */
};
TAILQ_HEAD(wrk_defer_list, wrk_defer);

/* a plain socket that epoll said is readable: its recv waits for the end of
 * the dispatch, to go into the kernel in one batch with the others (wrk_read) */
struct wrk_rd {
    TAILQ_ENTRY(wrk_rd) link;          /* w->readq */
    bool queued;
    int fd;
    int res;                           /* what conn_sock_read would have returned */
    struct bufferevent *bev;           /* reads into its input */
    uint32_t *rdsize;
    void (*done)(struct wrk_rd *r);    /* the data (or EOF, error) is in */
};
TAILQ_HEAD(wrk_rd_list, wrk_rd);
TAILQ_HEAD(ups_list, ups_conn);

/*
 * One worker thread. Owned by the pool (main thread creates and joins it);
 * every field below `thr` is touched only by the worker's own thread, except
 * `pending`, `drain_req`, `stop_req` (atomics written by main) and `ctr`.
 */
struct wrk {
    unsigned id;
    pthread_t thr;
    struct event_base *base;           /* EVENT_BASE_FLAG_NOLOCK: one thread only */
    _Atomic(struct snap *) pending;    /* published, not adopted yet (one ref) */
    _Atomic bool drain_req, stop_req;
    int wake_fd;                       /* eventfd: the cross-thread doorbell */
    struct event *ev_wake;
    struct event *ev_reap;             /* deferred frees and pipelined restarts */
    struct snap *snap;                 /* current snapshot (one ref) */
    bool draining;
    struct lsn *lsns;                  /* open listeners (singly linked) */
    struct conn_list conns;            /* every downstream connection */
    struct conn_list dead;             /* closed, freed by ev_reap */
    struct conn_list runq;             /* pipelined input waiting to be processed */
    struct ups_list ups_dead;          /* upstream conns to free */
    struct wrk_defer_list deferq;      /* output written when the loop turn ends */
    struct wrk_rd_list readq;          /* reads received when the dispatch ends */
    int pipes[16][2];                  /* empty pipes kept for splicing response bodies */
    unsigned npipes;
    struct uio *uio;                   /* batched socket calls (io_uring), NULL: one call each */
    struct px_req *req_free;           /* free-list of request objects */
    struct conn *conn_free;            /* free-list of connection objects */
    unsigned nreq_free, nconn_free;
    struct ups_table *ups;             /* upstream keep-alive pools */
    struct evdns_base *dns;            /* ExternalName lookups (created on first use) */
    int alog_fd;                       /* access log (-1 none), opened lazily */
    char *alog_path;                   /* the path alog_fd was opened for */
    char reqid_prefix[17];             /* random hex, per worker */
    uint64_t reqid_seq;
    struct wrk_counters ctr;
};

/*
 * Small writes wait for the end of the loop turn (conn_flush, ups_flush):
 * one turn's requests to a pod, and responses to a client, then leave in one
 * burst, so the peer is woken once for the burst instead of once per write.
 * Waking a sleeping peer is the largest single cost in a loopback send
 * (ep_poll_callback, try_to_wake_up, an IPI in a VM). Larger output is written at
 * once: backpressure decisions see what the socket really took.
 */
#define WRK_DEFER_MAX (64 * 1024)

/* true: d is queued (once) and its flush runs when the turn ends; false: len
 * is too large to wait, d is off the queue and the caller writes now */
bool wrk_defer(struct wrk *w, struct wrk_defer *d, size_t len);
/* takes d off the queue (the connection closes, or writes now) */
void wrk_undefer(struct wrk *w, struct wrk_defer *d);
/* true: r is queued (once) and r->done runs when its data is in; false: the
 * worker does not batch (no io_uring), the caller reads now */
bool wrk_read(struct wrk *w, struct wrk_rd *r);
/* takes r off the queue (the connection closes, or stops reading) */
void wrk_unread(struct wrk *w, struct wrk_rd *r);

/*
 * A timeout that is cheap to push back (HAProxy's expiry dates). Connections
 * move their deadline two or three times per request (header, idle, upstream
 * read); re-adding a libevent timer each time is a heap removal and insert.
 * Here the libevent timer stays armed at the earliest deadline it was given:
 * a later deadline only writes `exp`, and a timer that fires early re-arms
 * itself for the rest. Worker thread only.
 */
struct wrk_tmo {
    struct event ev;
    uint64_t exp;                      /* deadline (wrk_now_ms), 0 = none */
    uint64_t armed;                    /* deadline ev is armed for, 0 = not armed */
    void (*fire)(struct wrk_tmo *t);   /* the deadline passed */
};
uint64_t wrk_now_ms(void);             /* CLOCK_MONOTONIC, milliseconds */
void wrk_tmo_init(struct wrk *w, struct wrk_tmo *t, void (*fire)(struct wrk_tmo *t));
/* the deadline is ms from now; 0 = no deadline */
void wrk_tmo_set(struct wrk_tmo *t, uint32_t ms);
/* no deadline and the libevent timer removed (before the owner is freed) */
void wrk_tmo_del(struct wrk_tmo *t);

/* the calling worker asks for its deferred work to run (ev_reap) */
void wrk_kick(struct wrk *w);

#endif
