/* SPDX-License-Identifier: Apache-2.0 */
/*
 * uio: a worker's socket calls in batches, through io_uring. The worker's
 * epoll dispatch queues the plain sockets it found readable (wrk_read) and
 * the output its handlers produced (wrk_defer); uio then receives all the
 * reads in one io_uring_enter, and, once the handlers ran, sends all the
 * writes in another. Without a usable ring (an old or locked-down kernel,
 * INGRESSD_IO_URING=0) the worker makes one recv()/send() per socket as before.
 * Worker thread only.
 */
#ifndef INGRESSD_UIO_H
#define INGRESSD_UIO_H

#include <stdbool.h>

struct wrk;

/* sets up w->uio on the calling (worker) thread, or leaves it NULL (logged once) */
void uio_new(struct wrk *w);
void uio_free(struct wrk *w);
/* the worker batches its socket calls */
bool uio_on(const struct wrk *w);
/* receives every read on w->readq, then runs their done() handlers */
void uio_recv(struct wrk *w);
/* sends what w->deferq holds on plain sockets; the queue's flush() callbacks
 * still run afterwards and write what is left (TLS, a full socket) */
void uio_send(struct wrk *w);

#endif
