/* SPDX-License-Identifier: Apache-2.0 */
/*
 * uio: a worker's batched reads and writes through io_uring, on real
 * non-blocking socket pairs and real socket bufferevents (whose buffers are
 * frozen outside their callbacks, as on a worker). The struct wrk is built by
 * hand: uio and wrk_read/wrk_defer touch only base, readq, deferq, uio and id.
 * Where the kernel gives no usable ring, the io_uring tests skip.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ingressd/conn.h"
#include "ingressd/log.h"
#include "ingressd/uio.h"
#include "ingressd/wrk.h"

TestSuite(uio, .timeout = 30);

static void quiet(void) { log_set_level(LOGL_ERR); }

/* ---- a worker by hand ---- */

static struct wrk *wrk_make(void)
{
    struct wrk *w = calloc(1, sizeof(*w));
    cr_assert_not_null(w);
    TAILQ_INIT(&w->readq);
    TAILQ_INIT(&w->deferq);
    w->base = event_base_new();
    cr_assert_not_null(w->base);
    uio_new(w);
    return w;
}

static void wrk_drop(struct wrk *w)
{
    uio_free(w);
    event_base_free(w->base);
    free(w);
}

/* the ring tests mean nothing without a ring: skip, do not fail */
static struct wrk *wrk_ring(void)
{
    struct wrk *w = wrk_make();
    if (!uio_on(w)) {
        wrk_drop(w);
        cr_skip("io_uring cannot be set up here (old or locked-down kernel): nothing to test");
    }
    return w;
}

/* a connected non-blocking pair: sv[0] is ours (the bufferevent's), sv[1] the peer */
static void pair(int sv[2])
{
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0,
                 "socketpair: %s", strerror(errno));
}

/* a socket bufferevent that, like conn.c's, never reads or writes by itself */
static struct bufferevent *bev_on(struct wrk *w, int fd)
{
    struct bufferevent *bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    cr_assert_not_null(bev);
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    return bev;
}

static void send_all(int fd, const void *p, size_t n)
{
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    cr_assert_eq(k, (ssize_t)n, "send %zu: %zd (%s)", n, k, strerror(errno));
}

/* everything fd holds now (non-blocking), appended to out; bounded by cap */
static size_t drain_peer(int fd, char *out, size_t cap)
{
    size_t got = 0;
    for (int i = 0; i < 100000 && got < cap; i++) {
        ssize_t k = recv(fd, out + got, cap - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

/* ---- reads ---- */

static int done_seq;                    /* order in which done() handlers ran */

struct trd {
    struct wrk_rd r;
    struct wrk *w;
    int sv[2];
    uint32_t rdsize;
    int calls;                          /* done() ran */
    int res;                            /* r.res as done() saw it */
    int seq;                            /* done_seq when done() last ran */
    bool dead;                          /* "closed" by another handler */
    int ran_dead;                       /* done() ran after it was closed */
    struct trd *victim;                 /* done() closes this one */
    int requeue;                        /* done() queues its read again this many times */
    size_t inlen;                       /* input length when done() ran */
    size_t victim_inlen;                /* the victim's input length when it was closed */
};

static void trd_done(struct wrk_rd *r)
{
    struct trd *t = (struct trd *)((char *)r - offsetof(struct trd, r));
    t->calls++;
    t->res = r->res;
    t->seq = done_seq++;
    t->inlen = evbuffer_get_length(bufferevent_get_input(r->bev));
    cr_assert_not(r->queued, "done() runs for a read already off the queue");
    if (t->dead) {                      /* a real handler returns here */
        t->ran_dead++;
        return;
    }
    if (t->victim) {
        /* what conn_close does to a connection of the batch: off the read
         * queue, marked dead, freed on the next turn (so still readable) */
        t->victim->dead = true;
        t->victim_inlen = evbuffer_get_length(bufferevent_get_input(t->victim->r.bev));
        wrk_unread(t->w, &t->victim->r);
    }
    if (t->requeue > 0) {
        t->requeue--;
        cr_assert(wrk_read(t->w, r));
    }
}

static void trd_init(struct trd *t, struct wrk *w)
{
    memset(t, 0, sizeof(*t));
    t->w = w;
    pair(t->sv);
    t->rdsize = 4096;
    t->r = (struct wrk_rd){ .fd = t->sv[0], .bev = bev_on(w, t->sv[0]),
                            .rdsize = &t->rdsize, .done = trd_done };
}

static void trd_fini(struct trd *t)
{
    bufferevent_free(t->r.bev);         /* closes sv[0] */
    if (t->sv[1] >= 0)
        close(t->sv[1]);
}

/* the bev's input holds exactly want[0..n) */
static void input_is(struct trd *t, const char *want, size_t n)
{
    struct evbuffer *in = bufferevent_get_input(t->r.bev);
    cr_assert_eq(evbuffer_get_length(in), n, "input %zu bytes, want %zu",
                 evbuffer_get_length(in), n);
    if (n)
        cr_assert_eq(memcmp(evbuffer_pullup(in, -1), want, n), 0, "input bytes differ");
}

Test(uio, recv_fills_each_input_with_its_peers_bytes, .init = quiet)
{
    struct wrk *w = wrk_ring();
    enum { N = 5 };
    struct trd t[N];
    char msg[N][5000];
    size_t len[N];
    for (int i = 0; i < N; i++) {
        trd_init(&t[i], w);
        /* 1 to 4096 bytes: a read's room is at least rdsize (4096), so one read takes all */
        len[i] = i == N - 1 ? 4096 : (size_t)(1 + i * 700);
        for (size_t j = 0; j < len[i]; j++)
            msg[i][j] = (char)('a' + (i * 7 + j) % 26);
        send_all(t[i].sv[1], msg[i], len[i]);
        cr_assert(wrk_read(w, &t[i].r));
    }
    cr_assert(wrk_read(w, &t[0].r));     /* already queued: stays where it is, once */
    int q = 0;
    struct wrk_rd *r;
    TAILQ_FOREACH(r, &w->readq, link)
        cr_assert_eq(r, &t[q++].r);
    cr_assert_eq(q, N);
    done_seq = 0;
    uio_recv(w);
    cr_assert(TAILQ_EMPTY(&w->readq));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(t[i].calls, 1, "read %d: done() ran %d times", i, t[i].calls);
        cr_assert_eq(t[i].res, (int)len[i], "read %d: res %d, want %zu", i, t[i].res, len[i]);
        cr_assert_eq(t[i].seq, i, "done() runs in queue order");
        cr_assert_not(t[i].r.queued);
        cr_assert_eq(t[i].inlen, len[i], "the data is in before done() runs");
        input_is(&t[i], msg[i], len[i]);
    }
    /* input already there stays in front of what comes next */
    send_all(t[0].sv[1], "XYZ", 3);
    cr_assert(wrk_read(w, &t[0].r));
    uio_recv(w);
    cr_assert_eq(t[0].calls, 2);
    cr_assert_eq(t[0].res, 3);
    char both[16];
    memcpy(both, msg[0], len[0]);
    memcpy(both + len[0], "XYZ", 3);
    input_is(&t[0], both, len[0] + 3);

    /* a read into the little room left at the end of the input's last buffer
     * plus a new one (two buffers: recvmsg) keeps the bytes in order */
    static char a[8000], b[3000], ab[11000 + 16];
    memset(a, 'A', sizeof(a));
    for (size_t j = 0; j < sizeof(b); j++)
        b[j] = (char)('0' + j % 10);
    struct trd v;
    trd_init(&v, w);
    send_all(v.sv[1], a, sizeof(a));
    size_t have = 0;
    for (int i = 0; i < 10 && have < sizeof(a); i++) {
        cr_assert(wrk_read(w, &v.r));
        uio_recv(w);
        cr_assert_gt(v.res, 0);
        have += (size_t)v.res;
    }
    cr_assert_eq(have, sizeof(a));
    /* the premise: the next read's room is two buffers (asked of conn.c, then given back) */
    struct iovec room[2];
    int nv = conn_sock_read_begin(v.r.bev, v.rdsize, room);
    cr_assert_eq(nv, 2, "the input's next read room is %d buffer(s)", nv);
    size_t blen = room[0].iov_len + room[1].iov_len;
    cr_assert_eq(conn_sock_read_end(v.r.bev, &v.rdsize, room, nv, -1, EAGAIN), -2);
    if (blen > sizeof(b))
        blen = sizeof(b);
    cr_assert_gt(blen, room[0].iov_len);
    send_all(v.sv[1], b, blen);
    cr_assert(wrk_read(w, &v.r));
    uio_recv(w);
    cr_assert_eq(v.res, (int)blen, "one read fills both buffers: %d of %zu", v.res, blen);
    memcpy(ab, a, sizeof(a));
    memcpy(ab + sizeof(a), b, blen);
    input_is(&v, ab, sizeof(a) + blen);
    trd_fini(&v);
    for (int i = 0; i < N; i++)
        trd_fini(&t[i]);
    wrk_drop(w);
}

Test(uio, recv_reports_eof_nothing_there_and_reset, .init = quiet)
{
    struct wrk *w = wrk_ring();
    struct trd eof, empty, data;
    trd_init(&eof, w);
    trd_init(&empty, w);
    trd_init(&data, w);
    close(eof.sv[1]);
    eof.sv[1] = -1;
    send_all(data.sv[1], "hi", 2);

    /* a TCP peer that aborts (RST): the read fails */
    struct trd rst;
    memset(&rst, 0, sizeof(rst));
    rst.w = w;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(l, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(l, 1), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int s = accept(l, NULL, NULL);
    cr_assert_geq(s, 0);
    close(l);
    cr_assert_eq(fcntl(s, F_SETFL, O_NONBLOCK), 0);
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    cr_assert_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(c);                           /* sends RST */
    rst.sv[0] = s;
    rst.sv[1] = -1;
    rst.rdsize = 4096;
    rst.r = (struct wrk_rd){ .fd = s, .bev = bev_on(w, s), .rdsize = &rst.rdsize, .done = trd_done };

    cr_assert(wrk_read(w, &eof.r));
    cr_assert(wrk_read(w, &empty.r));
    cr_assert(wrk_read(w, &rst.r));
    cr_assert(wrk_read(w, &data.r));
    uio_recv(w);
    cr_assert(TAILQ_EMPTY(&w->readq));
    cr_assert_eq(eof.calls, 1);
    cr_assert_eq(eof.res, 0, "peer closed: EOF (0), got %d", eof.res);
    input_is(&eof, "", 0);
    cr_assert_eq(empty.calls, 1);
    cr_assert_eq(empty.res, -2, "nothing to read: -2, got %d", empty.res);
    input_is(&empty, "", 0);
    cr_assert_eq(rst.calls, 1);
    cr_assert_eq(rst.res, -1, "reset: -1, got %d", rst.res);
    input_is(&rst, "", 0);
    cr_assert_eq(data.calls, 1);
    cr_assert_eq(data.res, 2);
    input_is(&data, "hi", 2);

    /* the reservations of the failed reads were given back: the input still
     * takes data through the bufferevent's own frozen-buffer rules */
    send_all(empty.sv[1], "later", 5);
    cr_assert(wrk_read(w, &empty.r));
    uio_recv(w);
    cr_assert_eq(empty.res, 5);
    input_is(&empty, "later", 5);
    trd_fini(&eof);
    trd_fini(&empty);
    trd_fini(&rst);
    trd_fini(&data);
    wrk_drop(w);
}

Test(uio, a_handler_closing_another_of_the_batch_leaves_its_data_and_handler, .init = quiet)
{
    struct wrk *w = wrk_ring();
    enum { N = 4 };
    struct trd t[N];
    for (int i = 0; i < N; i++) {
        trd_init(&t[i], w);
        char m[16];
        int k = snprintf(m, sizeof(m), "conn-%d", i);
        send_all(t[i].sv[1], m, (size_t)k);
        cr_assert(wrk_read(w, &t[i].r));
    }
    t[0].victim = &t[2];                /* a later entry of the batch */
    t[3].victim = &t[1];                /* an earlier one: its handler already ran */
    uio_recv(w);
    cr_assert(TAILQ_EMPTY(&w->readq));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(t[i].calls, 1, "read %d: done() ran %d times", i, t[i].calls);
        char m[16];
        int k = snprintf(m, sizeof(m), "conn-%d", i);
        cr_assert_eq(t[i].res, k);
        /* committed before any handler ran: nothing left reserved or lost */
        input_is(&t[i], m, (size_t)k);
    }
    /* the later one's input was committed before the first handler ran */
    cr_assert_eq(t[0].victim_inlen, strlen("conn-2"));
    /* the closed one's handler still ran, and saw its own dead flag */
    cr_assert(t[2].dead);
    cr_assert_eq(t[2].ran_dead, 1);
    cr_assert(t[1].dead);
    cr_assert_eq(t[1].ran_dead, 0, "t[1]'s handler ran before it was closed");
    for (int i = 0; i < N; i++)
        trd_fini(&t[i]);
    wrk_drop(w);
}

Test(uio, a_handler_may_queue_its_read_again, .init = quiet)
{
    struct wrk *w = wrk_ring();
    struct trd a, b;
    trd_init(&a, w);
    trd_init(&b, w);
    send_all(a.sv[1], "abc", 3);
    send_all(b.sv[1], "de", 2);
    a.requeue = 1;
    cr_assert(wrk_read(w, &a.r));
    cr_assert(wrk_read(w, &b.r));
    uio_recv(w);
    /* the same uio_recv reads it again: nothing more there */
    cr_assert(TAILQ_EMPTY(&w->readq));
    cr_assert_eq(a.calls, 2);
    cr_assert_eq(a.res, -2);
    input_is(&a, "abc", 3);
    cr_assert_eq(b.calls, 1);
    cr_assert_eq(b.res, 2);
    input_is(&b, "de", 2);
    trd_fini(&a);
    trd_fini(&b);
    wrk_drop(w);
}

Test(uio, recv_takes_more_reads_than_one_batch, .init = quiet)
{
    struct wrk *w = wrk_ring();
    enum { N = 300 };                   /* UIO_BATCH is 128: three batches */
    struct trd *t = calloc(N, sizeof(*t));
    cr_assert_not_null(t);
    for (int i = 0; i < N; i++) {
        trd_init(&t[i], w);
        char m[32];
        int k = snprintf(m, sizeof(m), "payload %d of %d", i, N);
        send_all(t[i].sv[1], m, (size_t)k);
        cr_assert(wrk_read(w, &t[i].r));
    }
    /* the first handler closes one of the last batch before it is read; one
     * of the second batch closes a later one of its own batch */
    t[0].victim = &t[N - 1];
    t[130].victim = &t[200];
    done_seq = 0;
    uio_recv(w);
    cr_assert(TAILQ_EMPTY(&w->readq));
    for (int i = 0; i < N - 1; i++) {
        char m[32];
        int k = snprintf(m, sizeof(m), "payload %d of %d", i, N);
        cr_assert_eq(t[i].calls, 1, "read %d: done() ran %d times", i, t[i].calls);
        cr_assert_eq(t[i].res, k, "read %d: res %d, want %d", i, t[i].res, k);
        cr_assert_eq(t[i].seq, i, "done() runs in queue order");
        input_is(&t[i], m, (size_t)k);
    }
    /* every batch is received whole before its handlers run */
    cr_assert(t[200].dead);
    cr_assert_eq(t[200].ran_dead, 1);
    cr_assert_eq(t[130].victim_inlen, strlen("payload 200 of 300"));
    /* taken off the queue before its batch: never read, its data still waits */
    cr_assert_eq(t[N - 1].calls, 0);
    input_is(&t[N - 1], "", 0);
    char buf[64];
    cr_assert_gt(recv(t[N - 1].sv[0], buf, sizeof(buf), 0), 0);
    for (int i = 0; i < N; i++)
        trd_fini(&t[i]);
    free(t);
    wrk_drop(w);
}

/* ---- writes ---- */

struct tsd {
    struct wrk_defer d;
    int sv[2];
    struct bufferevent *bev;
    int flushed;
};

static void tsd_flush(struct wrk_defer *d)
{
    struct tsd *s = (struct tsd *)((char *)d - offsetof(struct tsd, d));
    s->flushed++;
}

static void tsd_init(struct tsd *s, struct wrk *w)
{
    memset(s, 0, sizeof(*s));
    pair(s->sv);
    s->bev = bev_on(w, s->sv[0]);
    s->d = (struct wrk_defer){ .fd = s->sv[0], .out = bufferevent_get_output(s->bev),
                               .flush = tsd_flush };
}

static void tsd_fini(struct tsd *s)
{
    bufferevent_free(s->bev);
    close(s->sv[1]);
}

/* what worker_main does after uio_send: every entry off the queue, flushed */
static void pop_all(struct wrk *w)
{
    struct wrk_defer *d;
    for (int i = 0; i < 100000 && (d = TAILQ_FIRST(&w->deferq)); i++) {
        wrk_undefer(w, d);
        d->flush(d);
    }
    cr_assert(TAILQ_EMPTY(&w->deferq));
}

static int refs_freed;
static void ref_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    (void)arg;
    refs_freed++;
}

static size_t nchains(struct evbuffer *b)
{
    return (size_t)evbuffer_peek(b, -1, NULL, NULL, 0);
}

Test(uio, send_delivers_every_output_in_order_and_drains_it, .init = quiet)
{
    struct wrk *w = wrk_ring();
    enum { N = 4 };
    struct tsd s[N];
    static char want[N][70000];
    size_t wlen[N] = { 0 };
    for (int i = 0; i < N; i++)
        tsd_init(&s[i], w);

    /* 0: one chain */
    evbuffer_add(s[0].d.out, "HTTP/1.1 200 OK\r\n\r\n", 19);
    memcpy(want[0], "HTTP/1.1 200 OK\r\n\r\n", 19);
    wlen[0] = 19;
    /* 1: a head, then body pieces by reference: one chain each */
    static const char *piece[] = { "head\r\n", "alpha", "beta", "gamma", "delta", "epsilon" };
    refs_freed = 0;
    evbuffer_add(s[1].d.out, piece[0], strlen(piece[0]));
    for (size_t j = 1; j < sizeof(piece) / sizeof(piece[0]); j++)
        evbuffer_add_reference(s[1].d.out, piece[j], strlen(piece[j]), ref_cleanup, NULL);
    for (size_t j = 0; j < sizeof(piece) / sizeof(piece[0]); j++) {
        memcpy(want[1] + wlen[1], piece[j], strlen(piece[j]));
        wlen[1] += strlen(piece[j]);
    }
    cr_assert_eq(nchains(s[1].d.out), 6);
    /* 2: exactly UIO_IOV (8) chains, one of them large */
    static char big[60000];
    for (size_t j = 0; j < sizeof(big); j++)
        big[j] = (char)(j * 31 + 7);
    static char tag[7][8];
    for (int j = 0; j < 7; j++) {
        int k = snprintf(tag[j], sizeof(tag[j]), "<%d>", j);
        evbuffer_add_reference(s[2].d.out, tag[j], (size_t)k, NULL, NULL);
        memcpy(want[2] + wlen[2], tag[j], (size_t)k);
        wlen[2] += (size_t)k;
        if (j == 3) {
            evbuffer_add_reference(s[2].d.out, big, sizeof(big), NULL, NULL);
            memcpy(want[2] + wlen[2], big, sizeof(big));
            wlen[2] += sizeof(big);
        }
    }
    cr_assert_eq(nchains(s[2].d.out), 8);
    /* 3: nothing to send; queued anyway */
    for (int i = 0; i < N; i++)
        cr_assert(wrk_defer(w, &s[i].d, evbuffer_get_length(s[i].d.out)));

    uio_send(w);
    /* uio_send leaves the queue to the worker loop */
    int q = 0;
    struct wrk_defer *d;
    TAILQ_FOREACH(d, &w->deferq, link)
        q++;
    cr_assert_eq(q, N);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(evbuffer_get_length(s[i].d.out), 0, "output %d: %zu bytes left", i,
                     evbuffer_get_length(s[i].d.out));
        static char got[80000];
        size_t n = drain_peer(s[i].sv[1], got, sizeof(got));
        cr_assert_eq(n, wlen[i], "peer %d got %zu bytes, want %zu", i, n, wlen[i]);
        cr_assert_eq(memcmp(got, want[i], n), 0, "peer %d: bytes differ", i);
    }
    cr_assert_eq(refs_freed, 5, "the sent references were released");
    pop_all(w);
    for (int i = 0; i < N; i++)
        cr_assert_eq(s[i].flushed, 1);

    /* the output still works the usual way afterwards (freeze state kept) */
    evbuffer_add(s[0].d.out, "next", 4);
    cr_assert(wrk_defer(w, &s[0].d, 4));
    uio_send(w);
    char got[8];
    cr_assert_eq(drain_peer(s[0].sv[1], got, sizeof(got)), 4);
    cr_assert_eq(memcmp(got, "next", 4), 0);
    cr_assert_eq(evbuffer_get_length(s[0].d.out), 0);
    pop_all(w);
    for (int i = 0; i < N; i++)
        tsd_fini(&s[i]);
    wrk_drop(w);
}

Test(uio, send_leaves_to_flush_what_it_cannot_batch, .init = quiet)
{
    struct wrk *w = wrk_ring();
    struct tsd many, nofd, ok;
    tsd_init(&many, w);
    tsd_init(&nofd, w);
    tsd_init(&ok, w);
    /* more than UIO_IOV (8) chains: the first 8 go, the flush callback writes the rest */
    static const char digits[] = "0123456789";
    for (int j = 0; j < 9; j++)
        evbuffer_add_reference(many.d.out, digits + j, 1, NULL, NULL);
    cr_assert_eq(nchains(many.d.out), 9);
    /* no plain socket (TLS): never sent by uio */
    nofd.d.fd = -1;
    evbuffer_add(nofd.d.out, "tls", 3);
    evbuffer_add(ok.d.out, "ok", 2);
    cr_assert(wrk_defer(w, &many.d, 9));
    cr_assert(wrk_defer(w, &nofd.d, 3));
    cr_assert(wrk_defer(w, &ok.d, 2));
    uio_send(w);
    char got[16];
    cr_assert_eq(evbuffer_get_length(many.d.out), 1);
    cr_assert_eq(drain_peer(many.sv[1], got, sizeof(got)), 8);
    cr_assert_eq(memcmp(got, "01234567", 8), 0);
    cr_assert_eq(*(char *)evbuffer_pullup(many.d.out, -1), '8', "the rest waits, in order");
    cr_assert_eq(evbuffer_get_length(nofd.d.out), 3);
    cr_assert_eq(drain_peer(nofd.sv[1], got, sizeof(got)), 0);
    cr_assert_eq(evbuffer_get_length(ok.d.out), 0);
    cr_assert_eq(drain_peer(ok.sv[1], got, sizeof(got)), 2);
    pop_all(w);
    tsd_fini(&many);
    tsd_fini(&nofd);
    tsd_fini(&ok);
    wrk_drop(w);
}

Test(uio, send_to_a_full_socket_keeps_the_output_until_the_peer_reads, .init = quiet)
{
    struct wrk *w = wrk_ring();
    struct tsd full, ok;
    tsd_init(&full, w);
    tsd_init(&ok, w);
    /* fill full's send buffer behind the bufferevent's back */
    static char fill[4096];
    memset(fill, 'f', sizeof(fill));
    size_t filled = 0;
    for (int i = 0; i < 100000; i++) {
        ssize_t k = send(full.sv[0], fill, sizeof(fill), MSG_NOSIGNAL);
        if (k <= 0)
            break;
        filled += (size_t)k;
    }
    cr_assert_gt(filled, 0);
    cr_assert_eq(send(full.sv[0], fill, 1, MSG_NOSIGNAL), -1, "the socket is full");
    cr_assert_eq(errno, EAGAIN);

    evbuffer_add(full.d.out, "tail-", 5);
    evbuffer_add_reference(full.d.out, "of-the-response", 15, NULL, NULL);
    evbuffer_add(ok.d.out, "fine", 4);
    cr_assert(wrk_defer(w, &full.d, 20));
    cr_assert(wrk_defer(w, &ok.d, 4));
    uio_send(w);
    cr_assert(uio_on(w), "a socket without room does not break the ring");
    cr_assert_eq(evbuffer_get_length(full.d.out), 20, "nothing taken, nothing drained");
    cr_assert_eq(evbuffer_get_length(ok.d.out), 0, "the others of the batch still go");
    char got[8];
    cr_assert_eq(drain_peer(ok.sv[1], got, sizeof(got)), 4);
    cr_assert_eq(memcmp(got, "fine", 4), 0);
    pop_all(w);

    /* the peer reads the filler only; the next turn sends the rest */
    static char all[8 << 20];
    size_t n = drain_peer(full.sv[1], all, sizeof(all));
    cr_assert_eq(n, filled);
    cr_assert(wrk_defer(w, &full.d, evbuffer_get_length(full.d.out)));
    uio_send(w);
    cr_assert_eq(evbuffer_get_length(full.d.out), 0);
    n = drain_peer(full.sv[1], all, sizeof(all));
    cr_assert_eq(n, 20);
    cr_assert_eq(memcmp(all, "tail-of-the-response", 20), 0);
    pop_all(w);
    tsd_fini(&full);
    tsd_fini(&ok);
    wrk_drop(w);
}

Test(uio, a_partial_send_drains_what_the_socket_took, .init = quiet)
{
    struct wrk *w = wrk_ring();
    struct tsd s;
    tsd_init(&s, w);
    enum { LEN = 4 << 20 };             /* far more than a socket buffer */
    char *want = malloc(LEN), *got = malloc(LEN);
    cr_assert(want && got);
    for (size_t j = 0; j < LEN; j++)
        want[j] = (char)(j * 131 + (j >> 12));
    evbuffer_add(s.d.out, want, LEN);
    size_t n = 0;
    int turns = 0;
    for (; turns < 10000 && evbuffer_get_length(s.d.out) > 0; turns++) {
        size_t before = evbuffer_get_length(s.d.out);
        cr_assert(wrk_defer(w, &s.d, 1));
        uio_send(w);
        pop_all(w);
        size_t sent = before - evbuffer_get_length(s.d.out);
        size_t k = drain_peer(s.sv[1], got + n, LEN - n);
        cr_assert_eq(k, sent, "turn %d: peer got %zu, output drained %zu", turns, k, sent);
        cr_assert_gt(k, 0, "turn %d: the peer made room, yet nothing left", turns);
        n += k;
    }
    cr_assert_gt(turns, 1, "took several turns (partial sends)");
    cr_assert_eq(n, (size_t)LEN);
    cr_assert_eq(memcmp(got, want, LEN), 0, "bytes arrive in order, none lost or repeated");
    free(want);
    free(got);
    tsd_fini(&s);
    wrk_drop(w);
}

Test(uio, send_to_a_closed_peer_keeps_the_output_for_flush, .init = quiet)
{
    struct wrk *w = wrk_ring();
    struct tsd gone, ok;
    tsd_init(&gone, w);
    tsd_init(&ok, w);
    close(gone.sv[1]);
    gone.sv[1] = socket(AF_UNIX, SOCK_STREAM, 0); /* for tsd_fini to close */
    evbuffer_add(gone.d.out, "lost", 4);
    evbuffer_add(ok.d.out, "kept", 4);
    cr_assert(wrk_defer(w, &gone.d, 4));
    cr_assert(wrk_defer(w, &ok.d, 4));
    /* a SIGPIPE would kill the test here (recent kernels add MSG_NOSIGNAL to
     * io_uring sends themselves, so uio's own flag is not what this checks) */
    uio_send(w);
    cr_assert(uio_on(w));
    cr_assert_eq(evbuffer_get_length(gone.d.out), 4, "the flush callback sees the error");
    cr_assert_eq(evbuffer_get_length(ok.d.out), 0);
    char got[8];
    cr_assert_eq(drain_peer(ok.sv[1], got, sizeof(got)), 4);
    cr_assert_eq(memcmp(got, "kept", 4), 0);
    pop_all(w);
    tsd_fini(&gone);
    tsd_fini(&ok);
    wrk_drop(w);
}

Test(uio, send_takes_more_outputs_than_one_batch, .init = quiet)
{
    struct wrk *w = wrk_ring();
    enum { N = 300 };
    struct tsd *s = calloc(N, sizeof(*s));
    cr_assert_not_null(s);
    for (int i = 0; i < N; i++) {
        tsd_init(&s[i], w);
        evbuffer_add_printf(s[i].d.out, "response %d", i);
        cr_assert(wrk_defer(w, &s[i].d, 16));
    }
    uio_send(w);
    for (int i = 0; i < N; i++) {
        char m[32], got[32];
        int k = snprintf(m, sizeof(m), "response %d", i);
        cr_assert_eq(evbuffer_get_length(s[i].d.out), 0, "output %d not sent", i);
        cr_assert_eq(drain_peer(s[i].sv[1], got, sizeof(got)), (size_t)k);
        cr_assert_eq(memcmp(got, m, (size_t)k), 0);
    }
    pop_all(w);
    for (int i = 0; i < N; i++)
        tsd_fini(&s[i]);
    free(s);
    wrk_drop(w);
}

/* ---- off ---- */

Test(uio, env_zero_turns_it_off_and_the_plain_calls_take_over, .init = quiet)
{
    cr_assert_eq(setenv("INGRESSD_IO_URING", "0", 1), 0);
    struct wrk *w = wrk_make();
    cr_assert_not(uio_on(w));
    cr_assert_null(w->uio);
    struct trd t;
    trd_init(&t, w);
    send_all(t.sv[1], "plain", 5);
    cr_assert_not(wrk_read(w, &t.r), "no batching: the caller reads now");
    cr_assert_not(t.r.queued);
    cr_assert(TAILQ_EMPTY(&w->readq));
    /* a read queued anyway (the ring broke) is read with a plain call */
    t.r.queued = true;
    TAILQ_INSERT_TAIL(&w->readq, &t.r, link);
    uio_recv(w);
    cr_assert(TAILQ_EMPTY(&w->readq));
    cr_assert_eq(t.calls, 1);
    cr_assert_eq(t.res, 5);
    input_is(&t, "plain", 5);
    /* uio_send leaves the output to the flush callbacks */
    struct tsd s;
    tsd_init(&s, w);
    evbuffer_add(s.d.out, "x", 1);
    cr_assert(wrk_defer(w, &s.d, 1));
    uio_send(w);
    cr_assert_eq(evbuffer_get_length(s.d.out), 1);
    pop_all(w);
    cr_assert_eq(s.flushed, 1);
    uio_free(w);                        /* nothing to free: harmless */
    cr_assert_null(w->uio);
    trd_fini(&t);
    tsd_fini(&s);
    wrk_drop(w);
    unsetenv("INGRESSD_IO_URING");
}
