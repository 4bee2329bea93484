/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loop_thread.h: a libevent loop on its own thread for unit tests that drive
 * main-thread modules (admin, reload) from the test thread. Included by
 * test_metrics.c and test_rld.c; each test binary gets its own copy.
 */
#ifndef INGRESSD_TEST_LOOP_THREAD_H
#define INGRESSD_TEST_LOOP_THREAD_H

#include <event2/event.h>
#include <pthread.h>

static struct event_base *base;
static pthread_t loop_thr;

static void *loop_main(void *arg)
{
    (void)arg;
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void on_quit(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* ends the loop thread: an active event, since a loopbreak issued before the
 * thread entered its loop would be forgotten */
static void loop_stop(void)
{
    struct event *q = event_new(base, -1, 0, on_quit, base);
    event_active(q, EV_READ, 0);
    pthread_join(loop_thr, NULL);
    event_free(q);
}

#endif
