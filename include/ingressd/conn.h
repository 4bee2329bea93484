/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conn: one downstream (client) connection on a bufferevent (its buffers
 * only: conn drives the socket, and OpenSSL on TLS listeners, itself). Reads request heads (with the header timeout
 * against slowloris), hands complete heads to proxy.c, keeps the keep-alive
 * idle timer, and closes through a deferred reap (never inside its own
 * callback). Owned by its worker; worker thread only; objects come from a
 * per-worker free-list.
 */
#ifndef INGRESSD_CONN_H
#define INGRESSD_CONN_H

#include <event2/event_struct.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ingressd/http1.h"
#include "ingressd/wrk.h"

struct wrk;
struct lsn;
struct bufferevent;
struct px_req;
typedef struct ssl_st SSL;

#define CONN_MAGIC 0x434f4e4eu

enum conn_state {
    CONN_IDLE = 0,                     /* keep-alive, waiting for the next request */
    CONN_HEAD,                         /* a head is arriving (header timeout runs) */
    CONN_BUSY,                         /* a request is in proxy.c */
    CONN_TUNNEL,                       /* upgraded: raw bytes both ways */
    CONN_CLOSING,                      /* flushing the last response, then closed */
    CONN_DEAD,                         /* in w->dead, freed by the reap */
};

struct conn {
    unsigned magic;
    enum conn_state state;
    struct wrk *w;
    struct bufferevent *bev;           /* owns the fd (BEV_OPT_CLOSE_ON_FREE) */
    SSL *ssl;                          /* TLS listeners: owned by the conn (SSL_free at reap) */
    struct wrk_tmo timer;              /* header / idle / body timeouts */
    struct event rev;                  /* plain sockets: our own read event (no FIONREAD) */
    uint32_t rdsize;                   /* adaptive read size */
    uint32_t rto_ms;                   /* read timeout while reading (tunnels) */
    bool reading;                      /* read interest on */
    struct event wev;                  /* TLS: our write event (socket full, or SSL_read wants write) */
    bool wev_on;                       /* wev added */
    bool ssl_rd_ww;                    /* TLS: SSL_read said WANT_WRITE */
    bool ssl_wr_wr;                    /* TLS: SSL_write said WANT_READ */
    bool ssl_err;                      /* TLS: fatal SSL or socket error seen (no more SSL I/O) */
    bool ssl_eof;                      /* TLS: close_notify or EOF read */
    bool ssl_shut;                     /* TLS: close_notify sent, lingering (raw reads) */
    struct px_req *req;                /* the request in progress, or NULL */
    struct h1_scan scan;               /* head search progress */
    struct sockaddr_storage peer;
    socklen_t peerlen;
    unsigned short port;               /* local listener port */
    bool tls;
    bool queued;                       /* in w->runq */
    bool read_paused;                  /* pipelined input held back */
    uint8_t ipn;                       /* length of ip */
    char ip[46];                       /* peer address text (X-Forwarded-For) */
    TAILQ_ENTRY(conn) link;            /* w->conns, then w->dead */
    TAILQ_ENTRY(conn) runlink;         /* w->runq */
    struct wrk_defer defer;            /* output waiting for the loop turn's end */
    struct wrk_rd rd;                  /* plain: a read waiting for the dispatch's end */
    struct conn *next_free;
};

/*
 * Plain sockets are read here, not by the bufferevent: libevent's
 * evbuffer_read() asks FIONREAD before every read, an extra syscall per
 * read. Reads append to the bufferevent's input buffer, so everything else
 * keeps using bufferevent_get_input(). Returns bytes read, 0 on EOF, -1 on
 * error, -2 when nothing was there. *rdsize adapts to the traffic.
 */
int conn_sock_read(struct bufferevent *bev, int fd, uint32_t *rdsize);
/* conn_sock_read in two halves, for reads received elsewhere (wrk.c's batch):
 * _begin reserves room in the input (number of buffers, or -1), _end commits
 * n bytes (n < 0: err is the errno) and returns what conn_sock_read would */
int conn_sock_read_begin(struct bufferevent *bev, uint32_t rdsize, struct iovec *v);
int conn_sock_read_end(struct bufferevent *bev, uint32_t *rdsize, struct iovec *v, int nv,
                       ssize_t n, int err);
/* writes what out holds (up to CONN_WRITE_IOV pieces) to fd and drains what
 * the socket took: bytes written, or -1 (errno) */
#define CONN_WRITE_IOV 64
ssize_t conn_sock_write(struct evbuffer *out, int fd);
/* n bytes of out left through the socket (written elsewhere: uio's batch) */
void conn_sock_drained(struct evbuffer *out, size_t n);
/* read interest on/off (our read event, plain and TLS) */
void conn_read_enable(struct conn *c, bool on);
/* read timeout while reading is on; 0 = none */
void conn_read_timeout(struct conn *c, uint32_t ms);
/* takes ownership of fd accepted on l */
void conn_accept(struct lsn *l, int fd, const struct sockaddr *sa, int salen);
/* the request ended: back to keep-alive (or closed when close is true) */
void conn_request_done(struct conn *c, bool close);
/* writes queued output at the end of this loop turn (small plain output,
 * see wrk_turn_end) or now (no EPOLLOUT round trip unless the socket is
 * full; TLS: SSL_write on the socket, one record per 16 KiB) */
void conn_flush(struct conn *c);
/* flush what is queued, then close */
void conn_close_after_flush(struct conn *c);
/* close now (deferred free) */
void conn_close(struct conn *c);
/* (re)arm the connection timer for ms milliseconds (0 = disarm) */
void conn_timer(struct conn *c, uint32_t ms);
/* drain: close idle keep-alive connections, mark the others */
void conn_drain_all(struct wrk *w);
/* reap callback work: free dead conns, run pipelined input */
void conn_reap(struct wrk *w);
/* frees every connection (worker exit) */
void conn_free_all(struct wrk *w);

#endif
