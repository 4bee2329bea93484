/* SPDX-License-Identifier: Apache-2.0 */
/*
 * upstream (ups_): connections from a worker to pods (h2o socketpool.c, Envoy
 * per-worker connection pools).
 *
 * Each worker keeps a hash table of pools keyed by endpoint address (and
 * whether the connection is TLS); a pool holds idle keep-alive connections
 * in LIFO order (the warmest first) and is bounded by
 * spec.upstreamKeepalive. An idle connection keeps EV_READ enabled with the
 * upstream idle timeout, so a pod closing it (or sending anything, which a
 * pod must not do) frees it at once instead of failing the next request.
 * A request that still meets a dead one (the race with a pod's own idle
 * timeout) is retried once on a fresh connection by proxy.c.
 *
 * Pools live outside snapshots, so endpoints that stay across a reload keep
 * their warm connections; ups_sweep() (on adoption of a new snapshot) closes
 * idle connections of endpoints that are gone.
 *
 * Worker thread only.
 */
#include "ingressd/upstream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ingressd/conn.h"
#include "ingressd/log.h"
#include "ingressd/proxy.h"
#include "ingressd/snap.h"
#include "ingressd/wrk.h"

#define UPS_BUCKETS 1024u
#define UPS_FREE_MAX 256

struct ups_pool {
    struct ups_pool *next;             /* hash chain */
    struct sockaddr_storage sa;
    socklen_t salen;
    bool tls;
    struct ups_list idle;
    unsigned nidle, nbusy;
    uint64_t mark;
};

struct ups_table {
    struct ups_pool *b[UPS_BUCKETS];
    unsigned npools;
    uint64_t mark;
    struct ups_conn *free;             /* reusable conn objects (next via link.tqe_next) */
    unsigned nfree;
};

static void ups_readcb(struct bufferevent *bev, void *arg);
static void ups_writecb(struct bufferevent *bev, void *arg);
static void ups_eventcb(struct bufferevent *bev, short what, void *arg);

static void ups_revcb(evutil_socket_t fd, short what, void *arg);
static void deferred_flush(struct wrk_defer *d);
static void ups_rd_done(struct wrk_rd *r);

/* ---- reading: plain sockets through our own event, TLS through the bufferevent ---- */

static void rev_apply(struct ups_conn *u)
{
    if (u->tls) {
        struct timeval tv = { u->rto_ms / 1000, (u->rto_ms % 1000) * 1000 };
        bufferevent_set_timeouts(u->bev, u->reading && u->rto_ms ? &tv : NULL, NULL);
        if (u->reading)
            bufferevent_enable(u->bev, EV_READ);
        else
            bufferevent_disable(u->bev, EV_READ);
        return;
    }
    if (!u->rev_set)
        return; /* applied once connected */
    if (u->reading != u->rev_on) {
        u->rev_on = u->reading;
        if (u->reading) {
            event_add(&u->rev, NULL);
        } else {
            event_del(&u->rev);
            wrk_unread(u->w, &u->rd);
        }
    }
    wrk_tmo_set(&u->tmo, u->reading ? u->rto_ms : 0);
}

static void ups_tmo_fire(struct wrk_tmo *t)
{
    struct ups_conn *u = (struct ups_conn *)((char *)t - offsetof(struct ups_conn, tmo));
    if (!u->dead && u->reading)
        ups_eventcb(u->bev, BEV_EVENT_TIMEOUT | BEV_EVENT_READING, u);
}

void ups_read_enable(struct ups_conn *u, bool on)
{
    if (u->reading == on && !u->tls)
        return;
    u->reading = on;
    rev_apply(u);
}

void ups_read_timeout(struct ups_conn *u, uint32_t ms)
{
    if (u->rto_ms == ms && !u->tls)
        return;
    u->rto_ms = ms;
    if (u->reading)
        rev_apply(u);
}

static uint32_t sa_hash(const struct sockaddr_storage *sa, bool tls)
{
    uint32_t h = 2166136261u ^ (tls ? 0x9e37u : 0);
    const unsigned char *p;
    size_t n;
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        p = (const unsigned char *)&s4->sin_addr;
        n = 4;
        h ^= s4->sin_port;
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        p = (const unsigned char *)&s6->sin6_addr;
        n = 16;
        h ^= s6->sin6_port;
    }
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static bool sa_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
}

static struct ups_pool *pool_find(struct ups_table *t, const struct sockaddr_storage *sa, bool tls,
                                  bool create, socklen_t salen)
{
    uint32_t h = sa_hash(sa, tls) & (UPS_BUCKETS - 1);
    for (struct ups_pool *p = t->b[h]; p; p = p->next)
        if (p->tls == tls && sa_eq(&p->sa, sa))
            return p;
    if (!create)
        return NULL;
    struct ups_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    memcpy(&p->sa, sa, salen);
    p->salen = salen;
    p->tls = tls;
    TAILQ_INIT(&p->idle);
    p->mark = t->mark;
    p->next = t->b[h];
    t->b[h] = p;
    t->npools++;
    return p;
}

int ups_init(struct wrk *w)
{
    w->ups = calloc(1, sizeof(*w->ups));
    return w->ups ? 0 : -1;
}

static struct ups_conn *conn_alloc(struct wrk *w)
{
    struct ups_table *t = w->ups;
    struct ups_conn *u = t->free;
    if (u) {
        t->free = TAILQ_NEXT(u, link);
        t->nfree--;
        memset(u, 0, sizeof(*u));
    } else {
        u = calloc(1, sizeof(*u));
    }
    if (u) {
        u->w = w;
        u->defer.flush = deferred_flush;
        wrk_tmo_init(w, &u->tmo, ups_tmo_fire);
    }
    return u;
}

static void conn_release(struct wrk *w, struct ups_conn *u)
{
    struct ups_table *t = w->ups;
    if (t && t->nfree < UPS_FREE_MAX) {
        TAILQ_NEXT(u, link) = t->free;
        t->free = u;
        t->nfree++;
    } else {
        free(u);
    }
}

struct ups_conn *ups_get(struct wrk *w, const struct snap_backend *be, const struct snap_endpoint *ep,
                         struct px_req *req, bool fresh)
{
    bool tls = be->upstream_tls;
    struct ups_pool *p = pool_find(w->ups, &ep->sa, tls, true, ep->salen);
    if (!p)
        return NULL;
    struct ups_conn *u;
    if (!fresh && (u = TAILQ_FIRST(&p->idle))) {
        TAILQ_REMOVE(&p->idle, u, link);
        p->nidle--;
        p->nbusy++;
        u->idle = false;
        u->reused = true;
        u->req = req;
        memset(&u->scan, 0, sizeof(u->scan));
        u->rto_ms = 0;
        u->reading = false;
        ups_read_enable(u, true);
        return u;
    }
    u = conn_alloc(w);
    if (!u)
        return NULL;
    u->tls = tls;
    if (tls) {
        SSL *ssl = be->upstream_ssl_ctx ? SSL_new(be->upstream_ssl_ctx) : NULL;
        if (!ssl) {
            log_warn("worker %u: no upstream TLS context for %s", w->id, be->name);
            conn_release(w, u);
            return NULL;
        }
        if (be->upstream_sni)
            SSL_set_tlsext_host_name(ssl, be->upstream_sni);
        u->bev = bufferevent_openssl_socket_new(w->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        if (!u->bev)
            SSL_free(ssl);
    } else {
        u->bev = bufferevent_socket_new(w->base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!u->bev) {
        conn_release(w, u);
        return NULL;
    }
    uint32_t cms = w->snap->cfg.timeouts.upstream_connect;
    if (!cms)
        cms = 5000;
    struct timeval tv = { cms / 1000, (cms % 1000) * 1000 };
    bufferevent_set_timeouts(u->bev, NULL, &tv);
    bufferevent_setcb(u->bev, ups_readcb, ups_writecb, ups_eventcb, u);
    if (bufferevent_socket_connect(u->bev, (const struct sockaddr *)&ep->sa, (int)ep->salen) < 0) {
        bufferevent_free(u->bev);
        conn_release(w, u);
        return NULL;
    }
    bufferevent_enable(u->bev, tls ? EV_READ | EV_WRITE : EV_WRITE);
    u->reading = true; /* from the connect on (applied at CONNECTED for plain) */
    u->rdsize = 4096;
    u->pool = p;
    p->nbusy++;
    u->req = req;
    return u;
}

static void unlink_pool(struct ups_conn *u)
{
    struct ups_pool *p = u->pool;
    if (!p)
        return;
    if (u->idle) {
        TAILQ_REMOVE(&p->idle, u, link);
        p->nidle--;
        u->idle = false;
    } else {
        p->nbusy--;
    }
    u->pool = NULL;
}

void ups_close(struct ups_conn *u)
{
    if (!u || u->dead)
        return;
    unlink_pool(u);
    wrk_undefer(u->w, &u->defer);
    wrk_unread(u->w, &u->rd);
    u->dead = true;
    u->req = NULL;
    if (u->rev_set)
        event_del(&u->rev);
    u->rev_on = false;
    wrk_tmo_del(&u->tmo);
    u->reading = false;
    bufferevent_disable(u->bev, EV_READ | EV_WRITE);
    bufferevent_setcb(u->bev, NULL, NULL, NULL, NULL);
    TAILQ_INSERT_TAIL(&u->w->ups_dead, u, link);
    wrk_kick(u->w);
}

void ups_put(struct ups_conn *u)
{
    struct wrk *w = u->w;
    struct ups_pool *p = u->pool;
    uint32_t max = w->snap->cfg.upstream_keepalive;
    u->req = NULL;
    if (!p || w->draining || p->nidle >= max ||
        evbuffer_get_length(bufferevent_get_input(u->bev)) ||
        evbuffer_get_length(bufferevent_get_output(u->bev))) {
        ups_close(u);
        return;
    }
    p->nbusy--;
    p->nidle++;
    u->idle = true;
    u->reused = false;
    TAILQ_INSERT_HEAD(&p->idle, u, link);
    uint32_t ims = w->snap->cfg.timeouts.upstream_idle;
    if (!ims)
        ims = 60000;
    if (!u->tls)
        bufferevent_disable(u->bev, EV_WRITE);
    u->rto_ms = ims;
    u->reading = false;
    ups_read_enable(u, true);
}

static void flush_now(struct ups_conn *u, struct evbuffer *out)
{
    conn_sock_write(out, bufferevent_getfd(u->bev));
    if (evbuffer_get_length(out))
        bufferevent_enable(u->bev, EV_WRITE);
}

void ups_flush(struct ups_conn *u)
{
    struct evbuffer *out = bufferevent_get_output(u->bev);
    size_t len = evbuffer_get_length(out);
    if (u->tls || !u->connected || len == 0 || wrk_defer(u->w, &u->defer, len))
        return;
    flush_now(u, out);
}

/* the loop turn ended (wrk_defer) */
static void deferred_flush(struct wrk_defer *d)
{
    struct ups_conn *u = (struct ups_conn *)((char *)d - offsetof(struct ups_conn, defer));
    struct evbuffer *out = bufferevent_get_output(u->bev);
    if (evbuffer_get_length(out))
        flush_now(u, out);
}

/* ---- callbacks: busy ones go to proxy.c, idle ones mean the pod gave up ---- */

static void ups_readcb(struct bufferevent *bev, void *arg)
{
    struct ups_conn *u = arg;
    (void)bev;
    if (u->req)
        px_us_read(u->req);
    else
        ups_close(u);
}

static void ups_writecb(struct bufferevent *bev, void *arg)
{
    struct ups_conn *u = arg;
    if (!u->tls && u->connected)
        bufferevent_disable(bev, EV_WRITE);
    if (u->req)
        px_us_write(u->req);
}

static void ups_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct ups_conn *u = arg;
    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;
        u->connected = true;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (!u->tls) {
            /* from now on writes are optimistic (ups_flush), reads ours */
            bufferevent_disable(bev, EV_READ | EV_WRITE);
            event_assign(&u->rev, u->w->base, bufferevent_getfd(bev), EV_READ | EV_PERSIST,
                         ups_revcb, u);
            u->rd = (struct wrk_rd){ .fd = bufferevent_getfd(bev), .bev = bev, .rdsize = &u->rdsize,
                                     .done = ups_rd_done };
            u->defer.fd = u->rd.fd; /* only plain, connected sockets are deferred (ups_flush) */
            u->defer.out = bufferevent_get_output(bev);
            u->rev_set = true;
            rev_apply(u);
            ups_flush(u);
        }
    }
    if (u->req)
        px_us_event(u->req, what);
    else if (!(what & BEV_EVENT_CONNECTED))
        ups_close(u);
}

static void ups_revcb(evutil_socket_t fd, short what, void *arg)
{
    struct ups_conn *u = arg;
    (void)what;
    /* the read timeout counts from the last time the socket said something,
     * as a libevent read event's own timeout would */
    if (u->rto_ms)
        wrk_tmo_set(&u->tmo, u->rto_ms);
    if (u->splice) {
        ups_readcb(u->bev, u);
        return;
    }
    if (wrk_read(u->w, &u->rd))
        return;
    u->rd.res = conn_sock_read(u->bev, fd, &u->rdsize);
    ups_rd_done(&u->rd);
}

/* a plain read is in (now, or with the worker's batch) */
static void ups_rd_done(struct wrk_rd *r)
{
    struct ups_conn *u = (struct ups_conn *)((char *)r - offsetof(struct ups_conn, rd));
    if (u->dead)
        return;
    if (r->res > 0)
        ups_readcb(u->bev, u);
    else if (r->res == 0)
        ups_eventcb(u->bev, BEV_EVENT_EOF | BEV_EVENT_READING, u);
    else if (r->res == -1)
        ups_eventcb(u->bev, BEV_EVENT_ERROR | BEV_EVENT_READING, u);
}

/* ---- sweep, reap, fini ---- */

void ups_sweep(struct wrk *w, const struct snap *s)
{
    struct ups_table *t = w->ups;
    if (!t || t->npools == 0)
        return;
    t->mark++;
    for (uint32_t i = 0; i < s->nbackends; i++) {
        const struct snap_backend *be = &s->backends[i];
        for (uint32_t k = 0; k < be->neps; k++) {
            struct ups_pool *p = pool_find(t, &be->eps[k].sa, be->upstream_tls, false, 0);
            if (p)
                p->mark = t->mark;
        }
    }
    for (uint32_t i = 0; i < UPS_BUCKETS; i++) {
        struct ups_pool **pp = &t->b[i];
        while (*pp) {
            struct ups_pool *p = *pp;
            if (p->mark == t->mark) {
                pp = &p->next;
                continue;
            }
            struct ups_conn *u;
            while ((u = TAILQ_FIRST(&p->idle)))
                ups_close(u);
            if (p->nbusy) {
                pp = &p->next;
                continue;
            }
            *pp = p->next;
            t->npools--;
            free(p);
        }
    }
}

void ups_reap(struct wrk *w)
{
    struct ups_conn *u;
    while ((u = TAILQ_FIRST(&w->ups_dead))) {
        TAILQ_REMOVE(&w->ups_dead, u, link);
        if (u->bev)
            bufferevent_free(u->bev);
        conn_release(w, u);
    }
}

void ups_fini(struct wrk *w)
{
    struct ups_table *t = w->ups;
    if (!t)
        return;
    for (uint32_t i = 0; i < UPS_BUCKETS; i++) {
        while (t->b[i]) {
            struct ups_pool *p = t->b[i];
            struct ups_conn *u;
            while ((u = TAILQ_FIRST(&p->idle)))
                ups_close(u);
            t->b[i] = p->next;
            free(p);
        }
    }
    ups_reap(w);
    struct ups_conn *u;
    while ((u = t->free)) {
        t->free = TAILQ_NEXT(u, link);
        free(u);
    }
    free(t);
    w->ups = NULL;
}
