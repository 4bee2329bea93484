/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for hc: the shared table, passive ejection (growth, cap, max
 * percent, probation), and active probes against tiny loopback servers
 * on ephemeral 127.0.0.1 ports (so concurrent runs of this suite in other
 * worktrees never clash), each test in its own process. Every wait is bounded.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ingressd/hc.h"
#include "ingressd/log.h"
#include "ingressd/snap-t.h"

TestSuite(hc);

/* ---- table ---- */

Test(hc, entries_are_shared_by_key_and_freed_with_the_last_ref)
{
    struct hc_ep *a = hc_ep_get("10.0.0.1:80");
    struct hc_ep *b = hc_ep_get("10.0.0.1:80");
    struct hc_ep *c = hc_ep_get("10.0.0.2:80");
    cr_assert_eq(a, b);
    cr_assert_neq(a, c);
    cr_assert_eq(hc_table_size(), 2);
    atomic_store(&a->ejections, 3);
    hc_ep_put(a); /* "old snapshot" goes; the new one still holds b */
    struct hc_ep *d = hc_ep_get("10.0.0.1:80");
    cr_assert_eq(d, b);
    cr_assert_eq(atomic_load(&d->ejections), 3, "state survives while referenced");
    hc_ep_put(b);
    hc_ep_put(d);
    hc_ep_put(c);
    hc_ep_put(NULL);
    cr_assert_eq(hc_table_size(), 0);
    struct hc_ep *e = hc_ep_get("10.0.0.1:80");
    cr_assert_eq(atomic_load(&e->ejections), 0);
    cr_assert_str_eq(hc_state_name(e, hc_now_ms()), "unknown");
    cr_assert(hc_ep_is_usable(e, hc_now_ms()), "no checks configured: serve when ready");
    hc_ep_put(e);
}

/* ---- passive ---- */

static void expire(struct hc_ep *ep)
{
    atomic_store(&ep->ejected_until_ms, hc_now_ms() - 1);
}

static uint64_t ejection_len(struct hc_ep *ep)
{
    return atomic_load(&ep->ejected_until_ms) - hc_now_ms();
}

Test(hc, ejection_grows_with_repeats_and_is_capped)
{
    struct snap_outlier_conf oc = { 2, 1000, 5000, 100 };
    struct hc_ep *ep = hc_ep_get("10.0.0.1:80");
    cr_assert_not(hc_report_failure(ep, &oc, 3, 0));
    cr_assert(hc_report_failure(ep, &oc, 3, 0));
    uint64_t len = ejection_len(ep);
    cr_assert(len > 950 && len <= 1000, "first ejection 1 s, got %llu", (unsigned long long)len);
    cr_assert_not(hc_ep_is_usable(ep, hc_now_ms()));
    cr_assert_not(hc_report_failure(ep, &oc, 3, 0), "already ejected");
    /* back after the time, on probation: one failure re-ejects, twice as long */
    uint64_t expect[] = { 2000, 4000, 5000, 5000 };
    for (int i = 0; i < 4; i++) {
        expire(ep);
        cr_assert(hc_ep_is_usable(ep, hc_now_ms()));
        cr_assert(hc_report_failure(ep, &oc, 3, 0), "probation re-ejects at once");
        len = ejection_len(ep);
        cr_assert(len > expect[i] - 50 && len <= expect[i], "ejection %d: %llu", i + 2,
                  (unsigned long long)len);
    }
    cr_assert_eq(atomic_load(&ep->ejections), 5);
    /* a success ends probation: the streak is needed again */
    expire(ep);
    hc_report_success(ep, 100);
    cr_assert_not(hc_report_failure(ep, &oc, 3, 0));
    /* long good behaviour since the last ejection forgets the multiplier */
    atomic_store(&ep->last_eject_end_ms, hc_now_ms() - 6000);
    cr_assert(hc_report_failure(ep, &oc, 3, 0));
    len = ejection_len(ep);
    cr_assert(len > 950 && len <= 1000, "multiplier reset, got %llu", (unsigned long long)len);
    hc_ep_put(ep);
}

Test(hc, max_ejection_percent_but_always_one)
{
    struct snap_outlier_conf oc = { 1, 1000, 30000, 10 };
    struct hc_ep *ep = hc_ep_get("10.0.0.1:80");
    cr_assert(hc_report_failure(ep, &oc, 3, 0), "the first ejection is always allowed");
    expire(ep);
    atomic_store(&ep->probation, 0);
    cr_assert_not(hc_report_failure(ep, &oc, 3, 1), "10%% of 3 allows no second one");
    oc.max_ejection_pct = 67;
    cr_assert(hc_report_failure(ep, &oc, 3, 1), "2 of 3 = 66.7%% <= 67%%");
    expire(ep);
    cr_assert_not(hc_report_failure(ep, &oc, 3, 2));
    oc.consecutive_failures = 0;
    atomic_store(&ep->probation, 0);
    expire(ep);
    cr_assert_not(hc_report_failure(ep, &oc, 3, 0), "consecutive_failures 0 disables it");
    hc_ep_put(ep);
}

Test(hc, concurrent_failures_eject_once)
{
    struct snap_outlier_conf oc = { 5, 1000, 30000, 100 };
    struct hc_ep *ep = hc_ep_get("10.0.0.1:80");
    int ejected = 0;
    for (int i = 0; i < 50; i++)
        ejected += hc_report_failure(ep, &oc, 2, 0);
    cr_assert_eq(ejected, 1);
    cr_assert_eq(atomic_load(&ep->ejections), 1);
    hc_ep_put(ep);
}

/* ---- active: a loopback pod whose behaviour the test flips ---- */

enum pod_mode { POD_OK = 0, POD_503, POD_HANG, POD_CLOSED };

struct pod {
    int lfd;
    uint16_t port;
    _Atomic int mode;
    _Atomic bool stop;
    _Atomic unsigned requests;
    uint64_t at_ms[64];                /* arrival of each request (first 64) */
    pthread_t th;
    int hung[64];
    int nhung;
};

static int pod_listen(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "bind %u: %s", port,
                 strerror(errno));
    cr_assert_eq(listen(fd, 64), 0);
    return fd;
}

/* a loopback port nobody listens on right now (bound, noted, closed) */
static uint16_t free_port(void)
{
    int fd = pod_listen(0);
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    return ntohs(sin.sin_port);
}

static void *pod_main(void *arg)
{
    struct pod *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = { .fd = p->lfd, .events = POLLIN };
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int c = accept(p->lfd, NULL, NULL);
        if (c < 0)
            continue;
        int mode = atomic_load(&p->mode);
        if (mode == POD_HANG) {
            if (p->nhung < 64)
                p->hung[p->nhung++] = c; /* accept and never answer */
            else
                close(c);
            continue;
        }
        char buf[1024];
        struct pollfd cp = { .fd = c, .events = POLLIN };
        if (poll(&cp, 1, 500) > 0 && read(c, buf, sizeof(buf)) > 0) {
            unsigned k = atomic_fetch_add(&p->requests, 1);
            if (k < 64) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                p->at_ms[k] = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
            }
            const char *r = mode == POD_503 ? "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
                                            : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            ssize_t w = write(c, r, strlen(r));
            (void)w;
        }
        close(c);
    }
    return NULL;
}

static void pod_start(struct pod *p, uint16_t port)
{
    memset(p, 0, sizeof(*p));
    p->lfd = pod_listen(port);
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    getsockname(p->lfd, (struct sockaddr *)&sin, &len);
    p->port = ntohs(sin.sin_port);
    pthread_create(&p->th, NULL, pod_main, p);
}

static void pod_stop(struct pod *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->th, NULL);
    close(p->lfd);
    for (int i = 0; i < p->nhung; i++)
        close(p->hung[i]);
}

struct fake_snap {
    struct snap s;
    struct snap_backend be;
    struct snap_endpoint eps[4];
};

static void fake_init(struct fake_snap *f, const uint16_t *ports, int n, const char *path,
                      uint32_t interval_ms)
{
    memset(f, 0, sizeof(*f));
    f->s.magic = SNAP_MAGIC;
    f->s.backends = &f->be;
    f->s.nbackends = 1;
    f->s.cfg.outlier = (struct snap_outlier_conf){ 5, 1000, 30000, 50 };
    f->be.name = "default/web:80";
    f->be.eps = f->eps;
    f->be.neps = (uint32_t)n;
    f->be.hc = (struct snap_hc_conf){ .path = path, .interval_ms = interval_ms,
                                      .timeout_ms = interval_ms * 8 / 10, .healthy_threshold = 2,
                                      .unhealthy_threshold = 2, .status_min = 200,
                                      .status_max = 399 };
    for (int i = 0; i < n; i++) {
        struct snap_endpoint *ep = &f->eps[i];
        static char addrs[4][32];
        snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%u", ports[i]);
        ep->addr = addrs[i];
        struct sockaddr_in *sin = (struct sockaddr_in *)&ep->sa;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(ports[i]);
        inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
        ep->salen = sizeof(*sin);
        ep->ready = true;
        ep->hc = hc_ep_get(addrs[i]);
    }
}

static void fake_put(struct fake_snap *f)
{
    for (uint32_t i = 0; i < f->be.neps; i++)
        hc_ep_put(f->eps[i].hc);
}

/* waits up to timeout_ms for ep's active state; returns elapsed ms or -1 */
static long wait_state(struct hc_ep *ep, int want, long timeout_ms)
{
    uint64_t t0 = hc_now_ms();
    while ((long)(hc_now_ms() - t0) <= timeout_ms) {
        if (atomic_load(&ep->active_state) == want)
            return (long)(hc_now_ms() - t0);
        usleep(5000);
    }
    return -1;
}

static void quiet(void) { log_set_level(LOGL_ERR); }

Test(hc, http_probe_marks_down_within_interval_times_threshold_and_up_again, .init = quiet)
{
    struct pod pod;
    pod_start(&pod, 0);
    struct fake_snap f;
    uint16_t ports[] = { pod.port };
    fake_init(&f, ports, 1, "/healthz", 100);
    struct hc_ep *ep = f.eps[0].hc;
    cr_assert_eq(hc_start(), 0);
    hc_apply(&f.s);
    cr_assert(wait_state(ep, HC_UP, 2000) >= 0, "healthy pod goes up");
    cr_assert_str_eq(hc_state_name(ep, hc_now_ms()), "up");
    cr_assert_eq(hc_probe_count(), 1);

    atomic_store(&pod.mode, POD_HANG);
    long t = wait_state(ep, HC_DOWN, 2000);
    cr_log_info("hanging pod out of rotation after %ld ms (interval 100 ms x threshold 2)", t);
    /* worst case interval + threshold x timeout (fast re-checks between states); slack for load */
    cr_assert(t >= 0 && t <= 2 * 100 + 200, "down after %ld ms", t);
    cr_assert_not(hc_ep_is_usable(ep, hc_now_ms()));
    cr_assert_str_eq(hc_state_name(ep, hc_now_ms()), "down");

    atomic_store(&pod.mode, POD_OK);
    t = wait_state(ep, HC_UP, 2000);
    cr_log_info("restarted pod back after %ld ms (healthy threshold 2)", t);
    cr_assert(t >= 0 && t <= 2 * 100 + 250, "up after %ld ms", t);

    /* jitter only shortens an interval, by at most 10%: 9.5..11.2 probes a second */
    unsigned r0 = atomic_load(&pod.requests);
    usleep(2000 * 1000);
    unsigned probes = atomic_load(&pod.requests) - r0;
    cr_log_info("%u probes in 2 s at a 100 ms interval", probes);
    cr_assert(probes >= 17 && probes <= 23, "%u probes in 2 s", probes);

    atomic_store(&pod.mode, POD_503);
    cr_assert(wait_state(ep, HC_DOWN, 2000) >= 0, "status outside 200-399 fails");
    /* steadily down: the plain interval again, no fast re-checks */
    usleep(150 * 1000);
    r0 = atomic_load(&pod.requests);
    usleep(1000 * 1000);
    probes = atomic_load(&pod.requests) - r0;
    cr_assert(probes >= 8 && probes <= 12, "%u probes in 1 s while down", probes);

    hc_stop();
    pod_stop(&pod);
    fake_put(&f);
    cr_assert_eq(hc_table_size(), 0, "probes release their refs");
}

Test(hc, a_healthy_pod_sees_the_jittered_interval_from_its_first_check, .init = quiet)
{
    struct pod pod;
    pod_start(&pod, 0);
    struct fake_snap f;
    uint16_t ports[] = { pod.port };
    fake_init(&f, ports, 1, "/healthz", 100);
    cr_assert_eq(hc_start(), 0);
    hc_apply(&f.s);
    uint64_t t0 = hc_now_ms();
    while (atomic_load(&pod.requests) < 8 && hc_now_ms() - t0 < 3000)
        usleep(5000);
    hc_stop();
    pod_stop(&pod);
    cr_assert(atomic_load(&pod.requests) >= 8);
    for (int i = 1; i < 8; i++) {
        uint64_t gap = pod.at_ms[i] - pod.at_ms[i - 1];
        /* 90..100 ms by design; a little slack for scheduling on a busy machine */
        cr_assert(gap >= 85 && gap <= 160, "gap %d is %llu ms", i, (unsigned long long)gap);
    }
    fake_put(&f);
}

Test(hc, tcp_probe_without_path, .init = quiet)
{
    struct fake_snap f;
    uint16_t ports[] = { free_port() };
    fake_init(&f, ports, 1, NULL, 50);
    struct hc_ep *ep = f.eps[0].hc;
    cr_assert_eq(hc_start(), 0);
    hc_apply(&f.s);
    cr_assert(wait_state(ep, HC_DOWN, 2000) >= 0, "nothing listening: down");
    struct pod pod;
    pod_start(&pod, ports[0]);
    cr_assert(wait_state(ep, HC_UP, 2000) >= 0, "listening: up");
    cr_assert_eq(atomic_load(&pod.requests), 0, "a TCP check sends no request");
    hc_stop();
    pod_stop(&pod);
    fake_put(&f);
}

Test(hc, probes_reconcile_across_apply_keeping_state, .init = quiet)
{
    struct pod p1, p2;
    pod_start(&p1, 0);
    pod_start(&p2, 0);
    atomic_store(&p2.mode, POD_503);
    struct fake_snap f1, f2, f3;
    uint16_t ports1[] = { p1.port, p2.port };
    fake_init(&f1, ports1, 2, "/", 50);
    cr_assert_eq(hc_start(), 0);
    hc_apply(&f1.s);
    cr_assert(wait_state(f1.eps[0].hc, HC_UP, 2000) >= 0);
    cr_assert(wait_state(f1.eps[1].hc, HC_DOWN, 2000) >= 0);

    /* reload: p2 stays (and stays down, no reset to unknown), a dead port appears */
    uint16_t ports2[] = { p2.port, free_port() };
    fake_init(&f2, ports2, 2, "/", 50);
    hc_apply(&f2.s);
    fake_put(&f1); /* the old snapshot goes */
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(atomic_load(&f2.eps[0].hc->active_state), HC_DOWN);
        usleep(10000);
    }
    cr_assert(wait_state(f2.eps[1].hc, HC_DOWN, 2000) >= 0, "nothing on the new port");
    cr_assert_eq(hc_probe_count(), 2);
    cr_assert_eq(hc_table_size(), 2, "p1 is gone from the table with its probe");

    /* checks switched off: endpoints are back to "serve if ready" */
    fake_init(&f3, ports2, 2, "/", 0);
    hc_apply(&f3.s);
    fake_put(&f2);
    cr_assert(wait_state(f3.eps[0].hc, HC_UNKNOWN, 2000) >= 0);
    cr_assert(hc_ep_is_usable(f3.eps[0].hc, hc_now_ms()));
    cr_assert_eq(hc_probe_count(), 0);
    hc_stop();
    fake_put(&f3);
    pod_stop(&p1);
    pod_stop(&p2);
    cr_assert_eq(hc_table_size(), 0);
}

Test(hc, passing_checks_end_an_ejection_early, .init = quiet)
{
    struct pod pod;
    pod_start(&pod, 0);
    struct fake_snap f;
    uint16_t ports[] = { pod.port };
    fake_init(&f, ports, 1, "/healthz", 50);
    struct hc_ep *ep = f.eps[0].hc;
    /* a steady UP endpoint (no fast re-checks) that requests keep failing */
    atomic_store(&ep->active_state, HC_UP);
    struct snap_outlier_conf oc = { 1, 60000, 60000, 100 };
    cr_assert(hc_report_failure(ep, &oc, 1, 0));
    cr_assert(hc_ep_is_ejected(ep, hc_now_ms()));
    cr_assert_eq(hc_start(), 0);
    hc_apply(&f.s);
    uint64_t t0 = hc_now_ms();
    while (hc_ep_is_ejected(ep, hc_now_ms()) && hc_now_ms() - t0 < 2000)
        usleep(5000);
    cr_assert_not(hc_ep_is_ejected(ep, hc_now_ms()), "2 passing checks end a 60 s ejection");
    cr_assert(hc_now_ms() - t0 >= 30, "needs the healthy threshold, not one check");
    hc_stop();
    pod_stop(&pod);
    fake_put(&f);
}

Test(hc, apply_sets_outlier_settings_even_without_the_thread)
{
    struct fake_snap f;
    uint16_t ports[] = { 1 };
    fake_init(&f, ports, 1, NULL, 0);
    f.s.cfg.outlier = (struct snap_outlier_conf){ 7, 2000, 9000, 25 };
    hc_apply(&f.s);
    struct snap_outlier_conf oc;
    hc_get_outlier(&oc);
    cr_assert(oc.consecutive_failures == 7 && oc.base_ejection_ms == 2000 &&
              oc.max_ejection_ms == 9000 && oc.max_ejection_pct == 25);
    fake_put(&f);
}
