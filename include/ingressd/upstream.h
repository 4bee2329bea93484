/* SPDX-License-Identifier: Apache-2.0 */
/*
 * upstream (ups_): connections to pods. Per worker, per endpoint bounded pool
 * of idle keep-alive connections (LIFO); non-blocking connect with the
 * connect timeout; idle connections closed on any event or after the idle
 * timeout; pools of endpoints gone from the snapshot are swept on adoption.
 * Upstream TLS (backend-protocol HTTPS) through bufferevent_openssl with SNI.
 * Worker thread only; a ups_conn belongs to at most one request at a time.
 */
#ifndef INGRESSD_UPSTREAM_H
#define INGRESSD_UPSTREAM_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "ingressd/wrk.h"
#include <sys/socket.h>

#include "ingressd/http1.h"

struct wrk;
struct snap;
struct snap_backend;
struct snap_endpoint;
struct bufferevent;
struct px_req;
struct ups_pool;

struct ups_conn {
    struct wrk *w;
    struct bufferevent *bev;           /* owns the fd */
    struct ups_pool *pool;             /* the endpoint's pool */
    struct px_req *req;                /* owner while busy, NULL while idle */
    struct h1_scan scan;               /* response head search */
    bool connected;
    bool reused;                       /* came from the idle pool */
    bool idle;                         /* in pool->idle */
    bool dead;
    bool tls;
    bool reading;                      /* read interest on */
    bool rev_set;                      /* rev assigned (plain, connected) */
    uint32_t rto_ms;                   /* read timeout while reading, 0 = none */
    uint32_t rdsize;                   /* adaptive read size */
    struct event rev;                  /* plain: our own read event (see conn_sock_read) */
    bool rev_on;                       /* rev added */
    struct wrk_tmo tmo;                /* plain: read inactivity timeout (rto_ms) */
    TAILQ_ENTRY(ups_conn) link;        /* pool->idle or w->ups_dead */
    struct wrk_defer defer;            /* output waiting for the loop turn's end */
    struct wrk_rd rd;                  /* plain: a read waiting for the dispatch's end */
    bool splice;                       /* the request splices from this socket: reads are its own */
};

int ups_init(struct wrk *w);
void ups_fini(struct wrk *w);
/*
 * Returns a connection to ep for req: an idle pooled one (reused = true,
 * connected) or a new one whose connect is in progress (its result arrives as
 * px_us_event with BEV_EVENT_CONNECTED or an error). NULL when a socket could
 * not even be created.
 */
struct ups_conn *ups_get(struct wrk *w, const struct snap_backend *be,
                         const struct snap_endpoint *ep, struct px_req *req, bool fresh);
/* gives a finished connection back to its pool (or closes it if full) */
void ups_put(struct ups_conn *u);
/* read interest on/off, and the read timeout while on (0 = none) */
void ups_read_enable(struct ups_conn *u, bool on);
void ups_read_timeout(struct ups_conn *u, uint32_t ms);
/* writes queued output at the end of this loop turn or now (see conn_flush) */
void ups_flush(struct ups_conn *u);
/* closes (deferred free) */
void ups_close(struct ups_conn *u);
/* drops idle connections to endpoints that are not in s */
void ups_sweep(struct wrk *w, const struct snap *s);
/* reap: free closed connections */
void ups_reap(struct wrk *w);

#endif
