/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lsn: per-worker listening sockets (nginx ngx_init_cycle socket reuse, done
 * per worker because every worker has its own SO_REUSEPORT socket).
 *
 * Each worker binds its own socket for every listener with SO_REUSEADDR and
 * SO_REUSEPORT, so the kernel spreads new connections over the workers
 * without a shared accept lock. On a new snapshot the worker diffs its open
 * listeners against the snapshot's by address (and TLS flag): matching ones
 * stay open (no moment where a connect is refused), new ones are bound,
 * removed ones are closed; connections they accepted keep running until they
 * end, since a connection never refers back to its listener.
 *
 * Threads: the first sync runs on main before the worker thread starts; all
 * later calls on the owning worker.
 */
#include "ingressd/lsn.h"

#include <arpa/inet.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "ingressd/conn.h"
#include "ingressd/log.h"
#include "ingressd/snap-t.h"
#include "ingressd/wrk.h"

static void on_accept(struct evconnlistener *el, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void)el;
    conn_accept(arg, fd, sa, salen);
}

static void on_accept_error(struct evconnlistener *el, void *arg)
{
    struct lsn *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    (void)el;
    /* EMFILE and friends: keep listening, the next accept may succeed */
    log_warn("worker %u: accept on %s: %s", l->w->id, l->address,
             evutil_socket_error_to_string(err));
}

static bool same_addr(const struct lsn *l, const struct snap_listener *sl)
{
    return l->salen == sl->salen && l->tls == sl->tls && memcmp(&l->sa, &sl->sa, sl->salen) == 0;
}

struct lsn *lsn_open(struct wrk *w, const struct snap_listener *sl)
{
    struct lsn *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->w = w;
    memcpy(&l->sa, &sl->sa, sl->salen);
    l->salen = sl->salen;
    l->tls = sl->tls;
    snprintf(l->address, sizeof(l->address), "%s", sl->address ? sl->address : "?");
    if (sl->sa.ss_family == AF_INET)
        l->port = ntohs(((const struct sockaddr_in *)&sl->sa)->sin_port);
    else if (sl->sa.ss_family == AF_INET6)
        l->port = ntohs(((const struct sockaddr_in6 *)&sl->sa)->sin6_port);
    l->el = evconnlistener_new_bind(w->base, on_accept, l,
                                    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
                                        LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT,
                                    4096, (const struct sockaddr *)&l->sa, (int)l->salen);
    if (!l->el) {
        log_err("worker %u: cannot listen on %s: %s", w->id, l->address,
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        free(l);
        return NULL;
    }
    evconnlistener_set_error_cb(l->el, on_accept_error);
    return l;
}

void lsn_close(struct lsn *l)
{
    if (!l)
        return;
    if (l->el)
        evconnlistener_free(l->el);
    free(l);
}

int lsn_sync(struct wrk *w, const struct snap_listener *v, unsigned n)
{
    int failed = 0;
    for (struct lsn *l = w->lsns; l; l = l->next)
        l->keep = false;
    for (unsigned i = 0; i < n; i++) {
        struct lsn *l;
        for (l = w->lsns; l; l = l->next)
            if (same_addr(l, &v[i]))
                break;
        if (l) {
            l->keep = true;
            continue;
        }
        l = lsn_open(w, &v[i]);
        if (!l) {
            failed++;
            continue;
        }
        l->keep = true;
        l->next = w->lsns;
        w->lsns = l;
        log_info("worker %u: listening on %s%s", w->id, l->address, l->tls ? " (tls)" : "");
    }
    struct lsn **pp = &w->lsns;
    while (*pp) {
        struct lsn *l = *pp;
        if (l->keep) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        log_info("worker %u: closing listener %s", w->id, l->address);
        lsn_close(l);
    }
    return failed;
}

void lsn_close_all(struct wrk *w)
{
    while (w->lsns) {
        struct lsn *l = w->lsns;
        w->lsns = l->next;
        lsn_close(l);
    }
}
