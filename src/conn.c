/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn: downstream (client) connections (libevent le-proxy.c, twemproxy
 * nc_connection.c).
 *
 *          accept                     head complete            response done
 *   lsn ─────────> CONN_HEAD ──────────────────────> CONN_BUSY ─────────────> CONN_IDLE
 *                    ^  │ header timeout: 408         │  │ 101                   │
 *                    │  └──────────────┐              │  └─> CONN_TUNNEL         │
 *                    └─────────────────┼──────────────┼──── first byte ──────────┘
 *                                      v              v  close / drain
 *                                 CONN_CLOSING (flush, half-close, linger) ─> CONN_DEAD
 *
 * One struct event per connection (embedded, no allocation) carries the
 * timeout of the current state: the whole head must arrive within
 * client_header (a slowloris client cannot extend it by trickling bytes, and
 * since each connection has its own timer 1,000 of them cost nothing to a
 * normal client), keep-alive idle time, and the gap between body reads.
 *
 * Closing never frees inside a callback: conn_close() unhooks the
 * bufferevent, moves the conn to w->dead and kicks the worker's reap event,
 * which frees it on the next loop turn (Redis freeClientAsync). Pipelined
 * input left after a response is processed from the same reap event, so a
 * request never starts inside the previous one's stack.
 *
 * I/O on plain sockets costs two syscalls per request and direction: our
 * own read event reads into the bufferevent's input (conn_sock_read: no
 * FIONREAD before each read, as evbuffer_read does), and responses are
 * written without waiting for EPOLLOUT (conn_flush: at the end of the loop
 * turn, see WRK_DEFER_MAX; EV_WRITE only while the socket is full). The bufferevent itself never does I/O: it is
 * the pair of buffers proxy.c works on, and the owner of the fd.
 *
 * TLS connections work the same way, with OpenSSL on the raw socket
 * (SSL_set_fd) instead of bufferevent_openssl, which costs two SSL_read
 * calls per record, an EPOLLOUT round trip per response, and cannot use
 * read-ahead (it would not see records OpenSSL buffered). Here:
 *  - reads: SSL_read into 16 KiB of the input buffer, read-ahead on (one
 *    read() takes everything the socket has). After a record, read again
 *    only while SSL_has_pending() (no read() that is sure to say EAGAIN);
 *    what OpenSSL holds when reading pauses is picked up by activating the
 *    read event when reading resumes (the socket will not say readable).
 *  - writes: SSL_write right away, at most 16 KiB per call, pulled up so a
 *    small response (head + body) is one record and one write();
 *    SSL_MODE_ENABLE_PARTIAL_WRITE makes each call one record, and
 *    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets a retry after WANT_WRITE pass
 *    the (same) bytes from a pulled-up buffer.
 *  - WANT_WRITE from SSL_read (a TLS 1.3 KeyUpdate answer, tickets, the
 *    handshake) arms our write event, which retries the read; WANT_READ from
 *    SSL_write (not expected without renegotiation) retries the write from
 *    the read event. Errors met while flushing from proxy.c's stack are
 *    reported from the write event, never inside the caller.
 *  - close: one non-blocking SSL_shutdown (close_notify if the socket takes
 *    it) unless the session failed, then SSL_free and close. A close after
 *    flush sends close_notify, half-closes and lingers like a plain one,
 *    discarding what still arrives without decrypting it.
 *
 * Before a close with unread input, the connection half-closes and reads
 * (discarding) for a short linger, so an error response sent while the
 * client is still uploading is not destroyed by a TCP reset.
 *
 * Worker thread only.
 */
#include "ingressd/conn.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ingressd/log.h"
#include "ingressd/lsn.h"
#include "ingressd/proxy.h"
#include "ingressd/snap.h"
#include "ingressd/tls.h"
#include "ingressd/wrk.h"

#define CONN_FREE_MAX   1024            /* conn objects kept for reuse per worker */
#define CONN_LINGER_MS  2000
#define CONN_FLUSH_MS   30000           /* a client that never reads its last response */
#define PIPELINE_HOLD   (64 * 1024)     /* pipelined input held before reading pauses */
#define TLS_CHUNK       16384           /* one TLS record of plaintext */
#define TLS_READS_MAX   8               /* records decrypted per read event */

static void conn_readcb(struct bufferevent *bev, void *arg);
static void conn_writecb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);
static void conn_timercb(struct wrk_tmo *t);

static void conn_revcb(evutil_socket_t fd, short what, void *arg);
static void conn_rd_done(struct wrk_rd *r);
static void conn_wevcb(evutil_socket_t fd, short what, void *arg);
static void tls_flush(struct conn *c);
static void wev_set(struct conn *c, bool on);
static void start_linger(struct conn *c);

static inline const struct snap_timeouts *T(const struct conn *c) { return &c->w->snap->cfg.timeouts; }

static uint32_t header_ms(const struct conn *c)
{
    return T(c)->client_header ? T(c)->client_header : 10000;
}

static uint32_t idle_ms(const struct conn *c)
{
    return T(c)->client_idle ? T(c)->client_idle : 75000;
}

void conn_timer(struct conn *c, uint32_t ms)
{
    wrk_tmo_set(&c->timer, ms);
}

static void flush_now(struct conn *c, struct evbuffer *out)
{
    if (c->tls) {
        tls_flush(c);
        return;
    }
    conn_sock_write(out, bufferevent_getfd(c->bev));
    if (evbuffer_get_length(out))
        bufferevent_enable(c->bev, EV_WRITE);
}

/*
 * Optimistic write: plain connections keep EV_WRITE disabled and write when
 * the loop turn ends (at once for large output); only a full socket enables
 * EV_WRITE, and the write callback disables it again once drained. This
 * saves the two epoll_ctl calls (and one loop turn) per response that a
 * bufferevent's write event costs.
 */
void conn_flush(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t len = evbuffer_get_length(out);
    if (len == 0 || wrk_defer(c->w, &c->defer, len))
        return;
    flush_now(c, out);
}

/* the loop turn ended (wrk_defer) */
static void deferred_flush(struct wrk_defer *d)
{
    struct conn *c = (struct conn *)((char *)d - offsetof(struct conn, defer));
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out))
        flush_now(c, out);
    if (c->state == CONN_CLOSING && evbuffer_get_length(out) == 0)
        start_linger(c);
}

/*
 * send() for one buffer, sendmsg() for several, rather than evbuffer_write's
 * writev(): the socket calls skip the VFS layer (rw_verify_area, fsnotify,
 * the f_pos lock) that read/write-family calls pay on every request.
 */
ssize_t conn_sock_write(struct evbuffer *out, int fd)
{
    struct evbuffer_iovec v[CONN_WRITE_IOV];
    int nv = evbuffer_peek(out, -1, NULL, v, CONN_WRITE_IOV);
    if (nv <= 0)
        return 0;
    if (nv > CONN_WRITE_IOV)
        nv = CONN_WRITE_IOV;
    ssize_t n;
    if (nv == 1) {
        n = send(fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL);
    } else {
        struct iovec iov[CONN_WRITE_IOV];
        for (int i = 0; i < nv; i++) {
            iov[i].iov_base = v[i].iov_base;
            iov[i].iov_len = v[i].iov_len;
        }
        struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)nv };
        n = sendmsg(fd, &m, MSG_NOSIGNAL);
    }
    if (n > 0)
        conn_sock_drained(out, (size_t)n);
    return n;
}

void conn_sock_drained(struct evbuffer *out, size_t n)
{
    /* a socket bufferevent freezes its output's start outside its own callbacks */
    evbuffer_unfreeze(out, 1);
    evbuffer_drain(out, n);
    evbuffer_freeze(out, 1);
}

/* ---- reading ---- */

/* libevent's evbuffer_iovec is struct iovec where sys/uio.h exists (a #define) */
int conn_sock_read_begin(struct bufferevent *bev, uint32_t rdsize, struct iovec *v)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    /* a socket bufferevent freezes its input's end outside its own callbacks */
    evbuffer_unfreeze(in, 0);
    int nv = evbuffer_reserve_space(in, rdsize ? rdsize : 4096, v, 2);
    if (nv <= 0) {
        evbuffer_freeze(in, 0);
        return -1;
    }
    return nv;
}

int conn_sock_read_end(struct bufferevent *bev, uint32_t *rdsize, struct iovec *v, int nv,
                       ssize_t n, int err)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    uint32_t want = *rdsize ? *rdsize : 4096;
    if (n > 0) {
        size_t room = 0, left = (size_t)n;
        int used = 0;
        for (int i = 0; i < nv; i++)
            room += v[i].iov_len;
        for (int i = 0; i < nv && left; i++) {
            if (v[i].iov_len > left)
                v[i].iov_len = left;
            left -= v[i].iov_len;
            used++;
        }
        evbuffer_commit_space(in, v, used);
        if ((size_t)n == room && want < 65536)
            *rdsize = want * 2;
        else if ((size_t)n < want / 8 && want > 4096)
            *rdsize = want / 2;
    }
    evbuffer_freeze(in, 0);
    if (n > 0)
        return (int)n;
    if (n == 0)
        return 0;
    return (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) ? -2 : -1;
}

int conn_sock_read(struct bufferevent *bev, int fd, uint32_t *rdsize)
{
    struct evbuffer_iovec v[2];
    int nv = conn_sock_read_begin(bev, *rdsize, v);
    if (nv < 0)
        return -1;
    /* recv() when one buffer will do: see conn_sock_write */
    ssize_t n = nv == 1 ? recv(fd, v[0].iov_base, v[0].iov_len, 0)
                        : recvmsg(fd, &(struct msghdr){ .msg_iov = v, .msg_iovlen = (size_t)nv }, 0);
    return conn_sock_read_end(bev, rdsize, v, nv, n, n < 0 ? errno : 0);
}

static void rev_arm(struct conn *c)
{
    if (c->rto_ms) {
        struct timeval tv = { c->rto_ms / 1000, (c->rto_ms % 1000) * 1000 };
        event_add(&c->rev, &tv);
    } else {
        event_add(&c->rev, NULL);
    }
}

void conn_read_enable(struct conn *c, bool on)
{
    if (on == c->reading)
        return;
    c->reading = on;
    if (on) {
        rev_arm(c);
        /* what OpenSSL already holds makes the socket say nothing */
        if (c->tls && c->ssl && (SSL_has_pending(c->ssl) || c->ssl_eof || c->ssl_err))
            event_active(&c->rev, EV_READ, 1);
    } else {
        event_del(&c->rev);
        wrk_unread(c->w, &c->rd);
    }
}

void conn_read_timeout(struct conn *c, uint32_t ms)
{
    if (c->rto_ms == ms)
        return;
    c->rto_ms = ms;
    if (c->reading)
        rev_arm(c);
}

/* ---- accept ---- */

void conn_accept(struct lsn *l, int fd, const struct sockaddr *sa, int salen)
{
    struct wrk *w = l->w;
    struct conn *c;

    if (w->draining) {
        close(fd);
        return;
    }
    if (w->conn_free) {
        c = w->conn_free;
        w->conn_free = c->next_free;
        w->nconn_free--;
        memset(c, 0, sizeof(*c));
    } else if (!(c = calloc(1, sizeof(*c)))) {
        close(fd);
        return;
    }
    c->magic = CONN_MAGIC;
    c->w = w;
    c->defer.flush = deferred_flush;
    c->tls = l->tls;
    c->port = l->port;
    if (salen > 0 && (size_t)salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, (size_t)salen);
        c->peerlen = (socklen_t)salen;
    }
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->ip, sizeof(c->ip));
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->ip, sizeof(c->ip));
    c->ipn = (uint8_t)strlen(c->ip);

    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (c->tls) {
        c->ssl = w->snap->tls ? tls_new_server_ssl(w->snap->tls) : NULL;
        if (!c->ssl) {
            log_warn("worker %u: no TLS context for %s, closing", w->id, l->address);
            goto fail;
        }
        /* OpenSSL on the raw socket (BIO_NOCLOSE: the bufferevent closes the fd);
         * read-ahead is safe because our reader asks SSL_has_pending() */
        SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_set_read_ahead(c->ssl, 1);
        if (SSL_set_fd(c->ssl, fd) != 1) {
            SSL_free(c->ssl);
            c->ssl = NULL;
            goto fail;
        }
    }
    c->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        if (c->ssl)
            SSL_free(c->ssl);
        c->ssl = NULL;
        goto fail;
    }
    wrk_tmo_init(w, &c->timer, conn_timercb);
    bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
    /* optimistic writes (conn_flush), our own reads (conn_sock_read, tls_on_read) */
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, conn_revcb, c);
    if (c->tls)
        event_assign(&c->wev, w->base, fd, EV_WRITE | EV_PERSIST, conn_wevcb, c);
    c->rdsize = 4096;
    c->rd = (struct wrk_rd){ .fd = fd, .bev = c->bev, .rdsize = &c->rdsize, .done = conn_rd_done };
    c->defer.fd = c->tls ? -1 : fd; /* TLS output is written by tls_flush, never batched */
    c->defer.out = bufferevent_get_output(c->bev);
    conn_read_enable(c, true);
    c->state = CONN_HEAD;
    conn_timer(c, header_ms(c));
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    WRK_INC(w, conns_accepted);
    WRK_INC(w, conns_active);
    return;
fail:
    close(fd);
    c->next_free = w->conn_free;
    w->conn_free = c;
    w->nconn_free++;
}

/* ---- heads ---- */

static void read_head(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    if (c->state == CONN_IDLE) {
        /* RFC 9112 2.2: ignore empty lines before a request line */
        for (int i = 0; i < 4 && evbuffer_get_length(in) >= 2; i++) {
            const unsigned char *p = evbuffer_pullup(in, 2);
            if (p[0] != '\r' || p[1] != '\n')
                break;
            evbuffer_drain(in, 2);
        }
        if (evbuffer_get_length(in) == 0)
            return;
        c->state = CONN_HEAD;
        memset(&c->scan, 0, sizeof(c->scan));
        conn_timer(c, header_ms(c));
    }
    uint32_t max = c->w->snap->cfg.max_header_size ? c->w->snap->cfg.max_header_size : 32768;
    long hl = h1_head_len(in, &c->scan, max);
    if (hl == 0)
        return;
    conn_timer(c, 0);
    if (hl < 0) {
        px_reject(c, (unsigned)-hl);
        return;
    }
    c->state = CONN_BUSY;
    px_start(c, hl);
}

/* ---- callbacks ---- */

static void conn_readcb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    switch (c->state) {
    case CONN_IDLE:
    case CONN_HEAD:
        read_head(c);
        break;
    case CONN_BUSY:
    case CONN_TUNNEL:
        px_ds_read(c->req);
        break;
    case CONN_CLOSING: {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        evbuffer_drain(in, evbuffer_get_length(in));
        break;
    }
    case CONN_DEAD:
        break;
    }
}

static void start_linger(struct conn *c)
{
    /* everything is flushed: half-close, then read and discard for a while */
    if (!c->tls) {
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
        conn_read_enable(c, true);
        conn_timer(c, CONN_LINGER_MS);
        return;
    }
    /* TLS: close_notify first (the response ends cleanly), then the same
     * half-close; what the client still sends is discarded undecrypted */
    if (c->ssl_err || !SSL_is_init_finished(c->ssl)) {
        conn_close(c);
        return;
    }
    ERR_clear_error();
    int rc = SSL_shutdown(c->ssl);
    ERR_clear_error();
    c->ssl_shut = true;
    if (rc < 0) {
        conn_close(c); /* not even the alert fits: nothing to linger for */
        return;
    }
    shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    wev_set(c, false);
    conn_read_enable(c, true);
    conn_timer(c, CONN_LINGER_MS);
}

static void conn_writecb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (!c->tls && c->state != CONN_CLOSING)
        bufferevent_disable(bev, EV_WRITE);
    if (c->state == CONN_DEAD)
        return;
    switch (c->state) {
    case CONN_BUSY:
    case CONN_TUNNEL:
        px_ds_write(c->req);
        break;
    case CONN_CLOSING:
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
            start_linger(c);
        break;
    default:
        break;
    }
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        return;
    switch (c->state) {
    case CONN_BUSY:
    case CONN_TUNNEL:
        if (what & BEV_EVENT_TIMEOUT)
            px_ds_timeout(c->req);
        else
            px_ds_eof(c->req, (what & BEV_EVENT_ERROR) != 0);
        break;
    case CONN_DEAD:
        break;
    default:
        conn_close(c);
        break;
    }
}

/* ---- TLS on the raw socket ---- */

static void wev_set(struct conn *c, bool on)
{
    if (!c->tls)
        return;
    if (on == c->wev_on)
        return;
    c->wev_on = on;
    if (on)
        event_add(&c->wev, NULL);
    else
        event_del(&c->wev);
}

/* one SSL_read into the input: bytes, 0 on EOF, -1 on error, -2 for "wait" */
static int tls_read(struct conn *c)
{
    if (c->ssl_err)
        return -1;
    if (c->ssl_eof)
        return 0;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer_iovec v;
    evbuffer_unfreeze(in, 0);
    if (evbuffer_reserve_space(in, TLS_CHUNK, &v, 1) < 1) {
        evbuffer_freeze(in, 0);
        c->ssl_err = true;
        return -1;
    }
    size_t room = v.iov_len > INT32_MAX ? INT32_MAX : v.iov_len;
    ERR_clear_error();
    int n = SSL_read(c->ssl, v.iov_base, (int)room);
    if (n > 0) {
        v.iov_len = (size_t)n;
        evbuffer_commit_space(in, &v, 1);
        evbuffer_freeze(in, 0);
        return n;
    }
    evbuffer_freeze(in, 0);
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return -2;
    case SSL_ERROR_WANT_WRITE:
        /* a handshake flight, a ticket or a KeyUpdate answer waits for room */
        c->ssl_rd_ww = true;
        wev_set(c, true);
        return -2;
    case SSL_ERROR_ZERO_RETURN:
        c->ssl_eof = true;
        return 0;
    default:
        c->ssl_err = true;
        ERR_clear_error();
        return -1;
    }
}

/* the socket is readable (or OpenSSL holds records): decrypt, hand over */
static void tls_on_read(struct conn *c)
{
    if (c->ssl_wr_wr) {
        /* a write waits for the peer (SSL_write said WANT_READ) */
        c->ssl_wr_wr = false;
        tls_flush(c);
        if (c->state == CONN_DEAD)
            return;
    }
    bool got = false, more = false;
    int n = -2;
    for (int i = 0; i < TLS_READS_MAX; i++) {
        n = tls_read(c);
        if (n <= 0)
            break;
        got = true;
        /* nothing buffered in OpenSSL: the socket says when there is more */
        if (!(more = SSL_has_pending(c->ssl)))
            break;
    }
    if (got) {
        conn_readcb(c->bev, c);
        if (c->state == CONN_DEAD)
            return;
        if (n == -2 || n > 0) {
            if (more && n > 0 && c->reading)
                event_active(&c->rev, EV_READ, 1); /* the rest next turn */
            return;
        }
        if (!c->reading)
            return; /* EOF or error is seen when reading resumes */
    }
    if (n == 0)
        conn_eventcb(c->bev, BEV_EVENT_EOF | BEV_EVENT_READING, c);
    else if (n == -1)
        conn_eventcb(c->bev, BEV_EVENT_ERROR | BEV_EVENT_READING, c);
}

/*
 * Writes the output with SSL_write, one record per call, until it is empty or
 * the socket is full (then the write event takes over). Called from proxy.c's
 * stack too: an error only marks the conn and is reported by the write event.
 */
static void tls_flush(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (c->ssl_err || c->ssl_wr_wr)
        return;
    evbuffer_unfreeze(out, 1);
    size_t len;
    while ((len = evbuffer_get_length(out)) > 0) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(out, -1, NULL, &v, 1) < 1)
            break;
        const void *p = v.iov_base;
        size_t n = v.iov_len;
        if (n < TLS_CHUNK && n < len) {
            /* a head and a small body in one record (and one write) */
            n = len < TLS_CHUNK ? len : TLS_CHUNK;
            p = evbuffer_pullup(out, (ev_ssize_t)n);
            if (!p) {
                c->ssl_err = true;
                break;
            }
        } else if (n > TLS_CHUNK) {
            n = TLS_CHUNK;
        }
        ERR_clear_error();
        int wr = SSL_write(c->ssl, p, (int)n);
        if (wr > 0) {
            evbuffer_drain(out, (size_t)wr);
            continue;
        }
        int e = SSL_get_error(c->ssl, wr);
        if (e == SSL_ERROR_WANT_WRITE) {
            wev_set(c, true);
        } else if (e == SSL_ERROR_WANT_READ) {
            c->ssl_wr_wr = true;
        } else {
            c->ssl_err = true;
            ERR_clear_error();
        }
        break;
    }
    evbuffer_freeze(out, 1);
    if (c->ssl_err) {
        /* reported from the write event, not from the caller's stack */
        wev_set(c, true);
        event_active(&c->wev, EV_WRITE, 1);
    }
}

static void conn_wevcb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == CONN_DEAD)
        return;
    if (c->ssl_rd_ww) {
        c->ssl_rd_ww = false;
        tls_on_read(c);
        if (c->state == CONN_DEAD)
            return;
    }
    tls_flush(c);
    if (c->ssl_err) {
        wev_set(c, false);
        conn_eventcb(c->bev, BEV_EVENT_ERROR | BEV_EVENT_WRITING, c);
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        if (!c->ssl_rd_ww)
            wev_set(c, false);
        conn_writecb(c->bev, c);
    }
}

static void conn_revcb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    if (c->state == CONN_DEAD)
        return;
    if (what & EV_TIMEOUT) {
        conn_eventcb(c->bev, BEV_EVENT_TIMEOUT | BEV_EVENT_READING, c);
        return;
    }
    if (c->tls && c->ssl_shut) {
        /* lingering after close_notify: discard, close on EOF or error */
        char buf[4096];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            conn_close(c);
        return;
    }
    if (c->tls) {
        tls_on_read(c);
        return;
    }
    if (wrk_read(c->w, &c->rd))
        return;
    c->rd.res = conn_sock_read(c->bev, fd, &c->rdsize);
    conn_rd_done(&c->rd);
}

/* a plain read is in (now, or with the worker's batch) */
static void conn_rd_done(struct wrk_rd *r)
{
    struct conn *c = (struct conn *)((char *)r - offsetof(struct conn, rd));
    if (c->state == CONN_DEAD)
        return;
    if (r->res > 0)
        conn_readcb(c->bev, c);
    else if (r->res == 0)
        conn_eventcb(c->bev, BEV_EVENT_EOF | BEV_EVENT_READING, c);
    else if (r->res == -1)
        conn_eventcb(c->bev, BEV_EVENT_ERROR | BEV_EVENT_READING, c);
}

static void conn_timercb(struct wrk_tmo *t)
{
    struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timer));
    switch (c->state) {
    case CONN_HEAD:
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 || c->scan.off > 0)
            px_reject(c, 408);
        else
            conn_close(c);
        break;
    case CONN_IDLE:
    case CONN_CLOSING:
        conn_close(c);
        break;
    case CONN_BUSY:
    case CONN_TUNNEL:
        px_ds_timeout(c->req);
        break;
    case CONN_DEAD:
        break;
    }
}

/* ---- request end, close ---- */

void conn_request_done(struct conn *c, bool close)
{
    c->req = NULL;
    if (c->state == CONN_DEAD || c->state == CONN_CLOSING)
        return;
    if (close || c->w->draining) {
        conn_close_after_flush(c);
        return;
    }
    c->state = CONN_IDLE;
    conn_read_enable(c, true);
    c->read_paused = false;
    conn_timer(c, idle_ms(c));
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0 && !c->queued) {
        /* pipelined: start it from the reap event, not from this stack */
        c->queued = true;
        TAILQ_INSERT_TAIL(&c->w->runq, c, runlink);
        wrk_kick(c->w);
    }
}

void conn_close_after_flush(struct conn *c)
{
    if (c->state == CONN_DEAD || c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    c->req = NULL;
    conn_read_timeout(c, 0);
    conn_timer(c, CONN_FLUSH_MS);
    conn_flush(c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        start_linger(c);
    else
        conn_read_enable(c, true);
}

void conn_close(struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    if (c->req) {
        struct px_req *r = c->req;
        c->req = NULL;
        px_abort(r);
    }
    wrk_undefer(c->w, &c->defer);
    wrk_unread(c->w, &c->rd);
    wrk_tmo_del(&c->timer);
    event_del(&c->rev);
    if (c->tls) {
        event_del(&c->wev);
        c->wev_on = false;
    }
    c->reading = false;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
    if (c->queued) {
        TAILQ_REMOVE(&c->w->runq, c, runlink);
        c->queued = false;
    }
    c->state = CONN_DEAD;
    TAILQ_REMOVE(&c->w->conns, c, link);
    TAILQ_INSERT_TAIL(&c->w->dead, c, link);
    WRK_DEC(c->w, conns_active);
    wrk_kick(c->w);
}

void conn_reap(struct wrk *w)
{
    struct conn *c;
    while ((c = TAILQ_FIRST(&w->runq))) {
        TAILQ_REMOVE(&w->runq, c, runlink);
        c->queued = false;
        if (c->state == CONN_IDLE || c->state == CONN_HEAD)
            read_head(c);
    }
    while ((c = TAILQ_FIRST(&w->dead))) {
        TAILQ_REMOVE(&w->dead, c, link);
        if (c->ssl) {
            /* close_notify if the socket takes it now; never wait for the peer's */
            if (!c->ssl_err && !c->ssl_shut && SSL_is_init_finished(c->ssl)) {
                ERR_clear_error();
                SSL_shutdown(c->ssl);
            }
            ERR_clear_error();
            SSL_free(c->ssl);
            c->ssl = NULL;
        }
        if (c->bev)
            bufferevent_free(c->bev); /* closes the fd */
        c->bev = NULL;
        c->magic = 0;
        if (w->nconn_free < CONN_FREE_MAX) {
            c->next_free = w->conn_free;
            w->conn_free = c;
            w->nconn_free++;
        } else {
            free(c);
        }
    }
}

void conn_drain_all(struct wrk *w)
{
    struct conn *c, *next;
    for (c = TAILQ_FIRST(&w->conns); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->state == CONN_IDLE ||
            (c->state == CONN_HEAD && evbuffer_get_length(bufferevent_get_input(c->bev)) == 0))
            conn_close(c);
        else if ((c->state == CONN_BUSY || c->state == CONN_TUNNEL) && c->req)
            px_set_draining(c->req);
    }
}

void conn_free_all(struct wrk *w)
{
    struct conn *c;
    while ((c = TAILQ_FIRST(&w->conns)))
        conn_close(c);
    conn_reap(w);
    while ((c = w->conn_free)) {
        w->conn_free = c->next_free;
        free(c);
    }
    w->nconn_free = 0;
}
