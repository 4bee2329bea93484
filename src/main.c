/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ingressd entry point: CLI, start-up order and signals; no logic of its own.
 *
 *   -t -c FILE   load and validate through snap_load() (the same path as a
 *                reload), print every diagnostic, exit 0 valid / 1 not.
 *   -c FILE      load, start the health checker, the workers, the admin
 *                listener and the reload machinery; run the main loop until
 *                SIGTERM/SIGINT, then drain and exit 0.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingressd/adm.h"
#include "ingressd/cfg.h"
#include "ingressd/hc.h"
#include "ingressd/log.h"
#include "ingressd/mem.h"
#include "ingressd/rld.h"
#include "ingressd/snap.h"
#include "ingressd/wrk.h"

#define INGRESSD_VERSION "0.1.0"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ingressd [-t] -c FILE|DIR [--log FILE] [--log-level LEVEL]\n"
            "  -c, --config PATH   configuration: a multi-document YAML file, or a directory of *.yaml\n"
            "  -t, --test          validate the configuration, print every error, exit 0/1\n"
            "      --log FILE      write the error log to FILE instead of stderr\n"
            "      --log-level L   error|warn|info|debug (default info)\n"
            "  -v, --version       print the version\n");
}

static int check_config(const char *path)
{
    struct cfg_errs errs;
    struct snap_load_opts opts = { .check_only = true, .strict = true };
    cfg_errs_init(&errs);
    struct snap *s = snap_load(path, NULL, &opts, &errs);
    cfg_errs_print(&errs, stderr);
    int rc = (s && errs.nerrors == 0) ? 0 : 1;
    if (rc == 0)
        printf("%s: configuration ok: %u ingresses, %u rules, %u services, %u endpoints, "
               "%u listeners\n",
               path, s->ningresses, s->nrules, s->nservices, s->nendpoints,
               s->cfg.nlisteners);
    else
        printf("%s: configuration invalid: %zu error(s), %zu warning(s)\n", path, errs.nerrors,
               errs.nwarnings);
    snap_release(s);
    cfg_errs_free(&errs);
    return rc;
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("signal %d: draining", (int)sig);
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' }, { "test", no_argument, NULL, 't' },
        { "log", required_argument, NULL, 'L' },    { "log-level", required_argument, NULL, 'l' },
        { "version", no_argument, NULL, 'v' },      { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = NULL;
    bool test = false;
    int c;

    mem_install(); /* before libevent allocates anything */

    while ((c = getopt_long(argc, argv, "c:tvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 't': test = true; break;
        case 'L':
            if (log_open(optarg) < 0) {
                fprintf(stderr, "ingressd: cannot open log %s\n", optarg);
                return 2;
            }
            break;
        case 'l':
            if (!strcmp(optarg, "error")) log_set_level(LOGL_ERR);
            else if (!strcmp(optarg, "warn")) log_set_level(LOGL_WARN);
            else if (!strcmp(optarg, "info")) log_set_level(LOGL_INFO);
            else if (!strcmp(optarg, "debug")) log_set_level(LOGL_DEBUG);
            else { usage(stderr); return 2; }
            break;
        case 'v': printf("ingressd %s\n", INGRESSD_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (test)
        return check_config(path);

    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();

    struct cfg_errs errs;
    struct snap_load_opts opts = { 0 };
    cfg_errs_init(&errs);
    struct snap *s = snap_load(path, NULL, &opts, &errs);
    for (size_t i = 0; i < errs.n; i++) {
        char line[2048];
        cfg_err_format(&errs.v[i], line, sizeof(line));
        log_msg(errs.v[i].sev == CFG_ERROR ? LOGL_ERR : LOGL_WARN, "%s", line);
    }
    cfg_errs_free(&errs);
    if (!s) {
        log_err("%s: nothing to serve, exiting", path);
        return 1;
    }

    /*
     * The listeners accept (into their backlog) as soon as the workers start,
     * before the handlers below exist: a SIGHUP or SIGTERM in between would
     * take the default action, terminate. Held until the handlers are in
     * place (then delivered: the reload or the drain happens), and held for
     * good in every thread started from here, so signals are the main loop's.
     */
    sigset_t held;
    sigemptyset(&held);
    sigaddset(&held, SIGHUP);
    sigaddset(&held, SIGTERM);
    sigaddset(&held, SIGINT);
    pthread_sigmask(SIG_BLOCK, &held, NULL);

    struct event_base *base = event_base_new();
    if (!base || hc_start() < 0 || wrk_pool_start(s) < 0) {
        log_err("start-up failed");
        return 1;
    }
    hc_apply(s);
    if (adm_start(base, s) < 0 || rld_start(base, path, s) < 0) {
        log_err("start-up failed");
        return 1;
    }
    uint32_t drain_ms = s->cfg.drain_timeout_ms;
    log_info("ingressd %s serving %s (generation %llu, %u workers)", INGRESSD_VERSION, path,
             (unsigned long long)s->gen, s->cfg.workers);
    snap_release(s); /* rld holds the published ref from here on */

    struct event *ev_term = evsignal_new(base, SIGTERM, on_stop_signal, base);
    struct event *ev_int = evsignal_new(base, SIGINT, on_stop_signal, base);
    event_add(ev_term, NULL);
    event_add(ev_int, NULL);
    pthread_sigmask(SIG_UNBLOCK, &held, NULL);
    event_base_dispatch(base);

    adm_set_draining();
    s = rld_current();
    if (s) {
        drain_ms = s->cfg.drain_timeout_ms;
        snap_release(s);
    }
    rld_stop();
    wrk_pool_drain(drain_ms);
    adm_stop();
    hc_stop();
    event_free(ev_term);
    event_free(ev_int);
    event_base_free(base);
    log_info("drained, exiting");
    return 0;
}
