/* SPDX-License-Identifier: Apache-2.0 */
/*
 * uio: batched socket calls (io_uring).
 *
 * On loopback and in-cluster networks most of a proxy's CPU is the kernel's
 * (bench/README.md, "Where ingressd's CPU goes"): a keep-alive request costs
 * it four socket calls. A loop turn at 50 connections handles about eight
 * requests, so issuing the turn's recvs together and its sends together turns
 * some 32 kernel entries into two, and a send no longer returns to user space
 * (where a woken peer preempts us) between one socket and the next.
 *
 * Every call carries MSG_DONTWAIT and completes inside io_uring_enter, like
 * the plain call would: the batch waits for all of them before any buffer
 * is touched again. uio_new checks that the kernel does so before using the
 * ring. A call the kernel did not take counts as "nothing moved" (-EAGAIN):
 * the socket is still readable, or the output still queued, and the usual
 * paths take over; the ring is then given up for good.
 */
#include "ingressd/uio.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <liburing.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingressd/conn.h"
#include "ingressd/log.h"
#include "ingressd/wrk.h"

#define UIO_BATCH 128                   /* calls per io_uring_enter */
#define UIO_IOV   8                     /* buffers per send; more: the flush callback writes */

struct uio {
    struct io_uring ring;
    bool broken;                        /* the kernel refused a submission: no more batches */
    int res[UIO_BATCH];                 /* per slot: bytes, or -errno */
    int nv[UIO_BATCH];                  /* per read slot: buffers reserved, -1 none */
    struct wrk_rd *rd[UIO_BATCH];
    struct msghdr msg[UIO_BATCH];
    struct iovec iov[UIO_BATCH][UIO_IOV];
};

/*
 * The batch waits for every completion, so a call must never park in the
 * ring: MSG_DONTWAIT must give -EAGAIN at once, as the plain call would.
 * Tried on a full socket pair.
 */
static bool ring_nowait(struct io_uring *ring)
{
    int sv[2];
    bool ok = false;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return false;
    static const char fill[4096];
    for (int i = 0; i < 4096 && send(sv[0], fill, sizeof(fill), MSG_DONTWAIT) > 0; i++)
        ;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe) {
        io_uring_prep_send(sqe, sv[0], fill, sizeof(fill), MSG_NOSIGNAL | MSG_DONTWAIT);
        struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 200 * 1000 * 1000 };
        struct io_uring_cqe *cqe = NULL;
        if (io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL) >= 0 && cqe) {
            ok = cqe->res == -EAGAIN;
            io_uring_cqe_seen(ring, cqe);
        }
    }
    close(sv[0]);
    close(sv[1]);
    return ok;
}

void uio_new(struct wrk *w)
{
    static atomic_bool said;
    const char *env = getenv("INGRESSD_IO_URING");
    const char *why = NULL;
    struct uio *u = NULL;
    if (env && strcmp(env, "0") == 0) {
        why = "INGRESSD_IO_URING=0";
        goto off;
    }
    if (!(u = calloc(1, sizeof(*u)))) {
        why = "out of memory";
        goto off;
    }
    /* one thread's ring: no submission locking, completions need no task-work wakeups */
    struct io_uring_params p = {
        .flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    };
    int rc = io_uring_queue_init_params(UIO_BATCH, &u->ring, &p);
    if (rc == -EINVAL) { /* before Linux 6.1 */
        memset(&p, 0, sizeof(p));
        rc = io_uring_queue_init_params(UIO_BATCH, &u->ring, &p);
    }
    if (rc < 0) {
        why = strerror(-rc);
        goto fail;
    }
    if (!ring_nowait(&u->ring)) {
        why = "a MSG_DONTWAIT send waited in the ring";
        io_uring_queue_exit(&u->ring);
        goto fail;
    }
    w->uio = u;
    if (!atomic_exchange(&said, true))
        log_info("io_uring: each loop turn's socket reads, then its writes, go to the kernel in one call");
    return;
fail:
    free(u);
off:
    if (!atomic_exchange(&said, true))
        log_info("io_uring off (%s): one socket call per read and write", why);
}

void uio_free(struct wrk *w)
{
    if (!w->uio)
        return;
    io_uring_queue_exit(&w->uio->ring);
    free(w->uio);
    w->uio = NULL;
}

bool uio_on(const struct wrk *w)
{
    return w->uio && !w->uio->broken;
}

/*
 * Submits the n prepared calls (slots 0..n-1, user_data = slot) and waits
 * for the completions of those the kernel took; a slot without one keeps
 * -EAGAIN. Partial submission means the kernel is out of something: the
 * ring is given up (its unsubmitted entries never run) and logged.
 */
static void run(struct wrk *w, unsigned n)
{
    struct uio *u = w->uio;
    for (unsigned i = 0; i < n; i++)
        u->res[i] = -EAGAIN;
    unsigned taken = 0, got = 0;
    for (int tries = 0; tries < 3 && taken < n; tries++) {
        int rc = io_uring_submit(&u->ring);
        if (rc > 0)
            taken += (unsigned)rc;
        else if (rc != -EINTR && rc != -EAGAIN)
            break;
    }
    while (got < taken) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&u->ring, &cqe);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            break;
        uint64_t i = io_uring_cqe_get_data64(cqe);
        if (i < n)
            u->res[i] = cqe->res;
        io_uring_cqe_seen(&u->ring, cqe);
        got++;
    }
    if (taken < n || got < taken) {
        u->broken = true;
        log_err("worker %u: io_uring took %u of %u socket calls, completed %u: back to one call each",
                w->id, taken, n, got);
    }
}

/*
 * The inputs of a batch are all committed before any handler runs: a
 * handler may close another connection of the batch, and its reserved
 * input must not be left open. A closed connection stays allocated until
 * the next loop turn reaps it, so its done() can still look at it.
 */
void uio_recv(struct wrk *w)
{
    struct uio *u = w->uio;
    while (uio_on(w) && !TAILQ_EMPTY(&w->readq)) {
        unsigned n = 0;
        struct wrk_rd *r;
        TAILQ_FOREACH(r, &w->readq, link) {
            struct io_uring_sqe *sqe;
            if (n == UIO_BATCH || !(sqe = io_uring_get_sqe(&u->ring)))
                break;
            int nv = conn_sock_read_begin(r->bev, *r->rdsize, u->iov[n]);
            if (nv < 0) {
                io_uring_prep_nop(sqe);
            } else if (nv == 1) {
                io_uring_prep_recv(sqe, r->fd, u->iov[n][0].iov_base, u->iov[n][0].iov_len, MSG_DONTWAIT);
            } else {
                u->msg[n] = (struct msghdr){ .msg_iov = u->iov[n], .msg_iovlen = (size_t)nv };
                io_uring_prep_recvmsg(sqe, r->fd, &u->msg[n], MSG_DONTWAIT);
            }
            io_uring_sqe_set_data64(sqe, n);
            u->nv[n] = nv;
            u->rd[n++] = r;
        }
        if (n == 0)
            return;
        run(w, n);
        for (unsigned i = 0; i < n; i++) {
            int res = u->res[i];
            u->rd[i]->res = u->nv[i] < 0 ? -1
                : conn_sock_read_end(u->rd[i]->bev, u->rd[i]->rdsize, u->iov[i], u->nv[i],
                                     res < 0 ? -1 : res, res < 0 ? -res : 0);
        }
        for (unsigned i = 0; i < n; i++)
            wrk_unread(w, u->rd[i]);
        /* the data is in: each handler runs, even where an earlier one paused
         * the reading (done() ignores a connection closed meanwhile) */
        for (unsigned i = 0; i < n; i++)
            u->rd[i]->done(u->rd[i]);
    }
    /* the ring broke: the rest read themselves */
    struct wrk_rd *r;
    while ((r = TAILQ_FIRST(&w->readq))) {
        wrk_unread(w, r);
        r->res = conn_sock_read(r->bev, r->fd, r->rdsize);
        r->done(r);
    }
}

void uio_send(struct wrk *w)
{
    struct uio *u = w->uio;
    struct wrk_defer *d = TAILQ_FIRST(&w->deferq);
    struct wrk_defer *sent[UIO_BATCH];
    while (uio_on(w) && d) {
        unsigned n = 0;
        for (; d && n < UIO_BATCH; d = TAILQ_NEXT(d, link)) {
            if (d->fd < 0)
                continue;
            /* the first UIO_IOV pieces; the flush callback writes the rest */
            struct iovec *v = u->iov[n];
            int nv = evbuffer_peek(d->out, -1, NULL, v, UIO_IOV);
            if (nv <= 0)
                continue;
            struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
            if (!sqe)
                break;
            if (nv == 1) {
                io_uring_prep_send(sqe, d->fd, v[0].iov_base, v[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
            } else {
                u->msg[n] = (struct msghdr){ .msg_iov = v, .msg_iovlen = (size_t)nv };
                io_uring_prep_sendmsg(sqe, d->fd, &u->msg[n], MSG_NOSIGNAL | MSG_DONTWAIT);
            }
            io_uring_sqe_set_data64(sqe, n);
            sent[n++] = d;
        }
        if (n == 0)
            return;
        run(w, n);
        for (unsigned i = 0; i < n; i++)
            if (u->res[i] > 0)
                conn_sock_drained(sent[i]->out, (size_t)u->res[i]);
    }
}
