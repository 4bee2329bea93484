/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lsn: listening sockets, one per listener per worker (SO_REUSEPORT, the
 * kernel spreads connections over workers), diffed by address on reload:
 * matching listeners stay open, new ones open, removed ones close while the
 * connections they accepted drain. Owned by one worker; worker thread only
 * (the first set is opened by main before the worker thread starts).
 */
#ifndef INGRESSD_LSN_H
#define INGRESSD_LSN_H

#include <stdbool.h>
#include <sys/socket.h>

struct wrk;
struct snap_listener;
struct evconnlistener;

struct lsn {
    struct lsn *next;
    struct wrk *w;
    struct evconnlistener *el;
    struct sockaddr_storage sa;
    socklen_t salen;
    bool tls;
    unsigned short port;               /* X-Forwarded-Port */
    char address[64];
    bool keep;                         /* diff mark */
};

/* opens one listener on w's base; NULL on error (logged) */
struct lsn *lsn_open(struct wrk *w, const struct snap_listener *sl);
void lsn_close(struct lsn *l);         /* NULL is a no-op */
/* makes w's listeners match the snapshot's; returns how many failed to open */
int lsn_sync(struct wrk *w, const struct snap_listener *v, unsigned n);
/* closes every listener of w (drain) */
void lsn_close_all(struct wrk *w);

#endif
