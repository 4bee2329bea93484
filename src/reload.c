/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rld: hot reload of the configuration (style.md 3.3).
 *
 * The reload model
 * ----------------
 * A reload builds a whole new snapshot beside the one being served and swaps
 * it in; the old one lives until its last user is gone (nginx cycles, Varnish
 * VCL `busy`, Envoy shared_ptr snapshots). This file owns the *when* and the
 * *publish*; snap_load() owns the *what*.
 *
 *     SIGHUP ----------------.              (M: main thread's event_base)
 *     inotify --> debounce --+--> rld_request() --.
 *     POST /reload (adm) ----'                    |  req_seq++ , signal
 *                                                 v
 *                        loader thread (L): snap_load(path, current)
 *                                                 |
 *                  NULL: log every diagnostic, keep current (nothing changes)
 *                  else: wrk_pool_publish(new)   each worker adopts it on its loop
 *                        hc_apply(new)           probes follow the endpoints
 *                        current = new           rld_current() hands out refs
 *                        snap_release(old)       freed when its last request ends
 *
 * Nothing is parsed on M or on the workers (W): the loader thread is the only
 * one that reads the configuration files, so a 10,000-rule configuration never
 * stalls a request or the admin listener.
 *
 * One reload at a time, none lost. Requests are sequence numbers, not events:
 * rld_request() increments req_seq; the loader takes "everything up to
 * req_seq" as its target, builds, then marks done_seq = target. A request that
 * arrives while a build runs has a seq above the target, so exactly one more
 * build follows, however many requests arrived meanwhile (they coalesce: one
 * build reads the newest file for all of them). A waiter (POST /reload) is
 * answered by the first build whose target covers its seq, which is a build
 * that started after the request, so it always sees the file as it was when
 * the request was made or newer.
 *
 * The file watch (inotify on M) must see every way a configuration changes:
 *   - in-place writes: IN_MODIFY / IN_CLOSE_WRITE on the file;
 *   - editors' write-then-rename: the *directory* is watched and events are
 *     matched by name, since the watched inode is replaced (IN_MOVED_TO);
 *   - Kubernetes ConfigMap volumes: FILE is a symlink to ..data/FILE and the
 *     kubelet swaps ..data (a symlink to a timestamped directory) by renaming
 *     ..data_tmp over it: IN_MOVED_TO/IN_CREATE of "..data" in the directory;
 *     after each change the symlink chain is re-resolved and the directory of
 *     the real file is watched too (symlinks pointing elsewhere);
 *   - -c naming a directory: any *.yaml (or ..data) created, written, renamed
 *     or removed in it.
 * Events are debounced: a short quiet timer restarted per event, capped at
 * RLD_DEBOUNCE_MAX_MS after the first event so a constant stream of writes
 * still reloads at least every 100 ms.
 *
 * Freeing a big snapshot (an arena of megabytes, 50,000 health refs to drop)
 * takes milliseconds; it should not happen on a worker loop. rld_defer_release()
 * lets a worker hand its last ref to L, which frees it between builds and
 * returns the pages to the kernel (malloc_trim), so RSS tracks the snapshots
 * alive, not the history of reloads.
 *
 * Threads: rld_start/rld_stop, the watch and SIGHUP on M; rld_request,
 * rld_request_wait, rld_current, rld_status from any thread; the build on L.
 * rld_request_async callbacks run on M (an event activated by L). One mutex
 * (rld.mu) guards the request/outcome bookkeeping, another (rld.cur_mu) only
 * the current pointer, so rld_current() never waits behind bookkeeping.
 */
#include "ingressd/rld.h"

#include <errno.h>
#include <stdatomic.h>
#include <event2/event.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingressd/cfg.h"
#include "ingressd/hc.h"
#include "ingressd/log.h"
#include "ingressd/snap.h"
#include "ingressd/wrk.h"

#define RLD_DEBOUNCE_QUIET_MS 10   /* a rename-over or ..data swap arrives as one burst */
#define RLD_DEBOUNCE_MAX_MS   100  /* contract: the watch debounces for at most 100 ms */
#define RLD_MAX_RULES         4
#define RLD_ADOPT_WAIT_MS     1000 /* a worker busier than this adopts on its own later */

/* ---- state ---- */

struct rld_waiter {                    /* one POST /reload (or rld_request_wait) */
    struct rld_waiter *next;
    uint64_t seq;                      /* answered once done_seq >= seq */
    rld_done_fn cb;                    /* NULL: a synchronous waiter (on its stack) */
    void *arg;
    bool done;
    int rc;
    struct rld_status st;
};

struct rld_dead {                      /* a snapshot whose last ref L drops */
    struct rld_dead *next;
    struct snap *s;
};

struct rld_rule {                      /* "an event on wd named X means reload" */
    int wd;
    char dir[PATH_MAX];
    char name[NAME_MAX + 1];           /* "" = any *.yaml (directory mode) */
};

static struct {
    pthread_mutex_t mu;                /* guards the fields up to `cur_mu` */
    pthread_cond_t cv_work;            /* L waits for requests */
    pthread_cond_t cv_done;            /* synchronous waiters wait for outcomes */
    uint64_t req_seq, done_seq;
    _Atomic bool stop;                 /* also read by L between polls, unlocked */
    bool running;
    struct rld_status st;
    char why[32];                      /* trigger of the newest request */
    struct rld_waiter *pending;        /* waiting for a build */
    struct rld_waiter *completed;      /* async, answered, not yet called on M */
    struct rld_dead *dead;             /* last refs handed over by rld_defer_release */

    pthread_mutex_t cur_mu;            /* guards cur only */
    struct snap *cur;                  /* the published snapshot (one ref) */

    /* set at start, then read-only (L reads path) */
    char path[PATH_MAX];
    pthread_t thr;
    bool thr_started;                  /* M only: whether rld_stop joins thr */
    struct event_base *base;
    struct event *ev_hup, *ev_done, *ev_ino, *ev_debounce, *ev_rewatch;

    /* the watch: M only */
    int ino_fd;
    bool dir_mode;
    struct rld_rule rules[RLD_MAX_RULES];
    int nrules;
    char real[PATH_MAX];               /* last resolved realpath of path */
    bool debounce_armed;
    uint64_t debounce_first_ms;
    uint64_t watch_events;             /* matched events (for the log/debug) */

    /* tests may replace snap_load */
    struct snap *(*load)(const char *, const struct snap *, const struct snap_load_opts *,
                         struct cfg_errs *);
} rld = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cur_mu = PTHREAD_MUTEX_INITIALIZER,
    .ino_fd = -1,
};

static uint64_t rld_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t rld_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int64_t rld_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* bounded copy that truncates silently (messages, paths for display) */
static void rld_copy(char *dst, size_t len, const char *src)
{
    size_t n = src ? strnlen(src, len - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* ---- the current snapshot ---- */

struct snap *rld_current(void)
{
    pthread_mutex_lock(&rld.cur_mu);
    struct snap *s = snap_ref(rld.cur);
    pthread_mutex_unlock(&rld.cur_mu);
    return s;
}

/* installs s (the caller's ref moves in); returns the previous one to release */
static struct snap *rld_swap_current(struct snap *s)
{
    pthread_mutex_lock(&rld.cur_mu);
    struct snap *old = rld.cur;
    rld.cur = s;
    pthread_mutex_unlock(&rld.cur_mu);
    return old;
}

void rld_status(struct rld_status *out)
{
    pthread_mutex_lock(&rld.mu);
    *out = rld.st;
    pthread_mutex_unlock(&rld.mu);
}

/* ---- the loader thread (L) ---- */

/* L: polls the workers' oldest generation until it reaches gen; returns the wait in us */
static uint64_t rld_wait_adopted(uint64_t gen, uint32_t max_ms)
{
    uint64_t t0 = rld_mono_us();
    for (;;) {
        struct wrk_stats ws;
        wrk_pool_stats(&ws);
        /* 0: no workers (tests, or the pool is gone) */
        if (ws.snap_gen_min == 0 || ws.snap_gen_min >= gen)
            break;
        if (rld_mono_us() - t0 >= (uint64_t)max_ms * 1000 || rld.stop)
            break;
        struct timespec ts = { 0, 200 * 1000 };   /* workers adopt within a loop turn */
        nanosleep(&ts, NULL);
    }
    return rld_mono_us() - t0;
}

/*
 * One build. Runs on L without rld.mu held. Returns 0 when a new snapshot was
 * published, -1 when the current one was kept. Fills *st's outcome fields.
 */
static int rld_build(const char *why, struct rld_status *st, struct snap **garbage)
{
    struct cfg_errs errs;
    struct snap_load_opts opts = { 0 };
    struct snap *prev = rld_current();
    uint64_t prev_gen = prev ? prev->gen : 0;
    uint64_t t0 = rld_mono_us();
    char line[2048];

    cfg_errs_init(&errs);
    struct snap *s = rld.load(rld.path, prev, &opts, &errs);

    /* every rejection is logged with file:line (and the object's name) */
    st->last_error[0] = '\0';
    for (size_t i = 0; i < errs.n; i++) {
        cfg_err_format(&errs.v[i], line, sizeof(line));
        log_msg(errs.v[i].sev == CFG_ERROR ? LOGL_ERR : LOGL_WARN, "%s", line);
        if (errs.v[i].sev == CFG_ERROR && !st->last_error[0])
            rld_copy(st->last_error, sizeof(st->last_error), line);
    }
    st->last_errors = (uint32_t)errs.nerrors;
    cfg_errs_free(&errs);

    uint64_t t_load = rld_mono_us();
    int rc;
    struct snap *old = NULL;
    if (!s) {
        /* the nginx NULL-cycle rule: an unusable configuration changes nothing */
        if (!st->last_error[0])
            rld_copy(st->last_error, sizeof(st->last_error), "configuration not loadable");
        rc = -1;
    } else {
        /* generations only grow, whatever the loader numbered it (not yet published) */
        if (s->gen <= prev_gen)
            s->gen = prev_gen + 1;
        /* workers first: they are what "serving" means; health follows the endpoints */
        wrk_pool_publish(s);
        hc_apply(s);
        old = rld_swap_current(s);
        st->gen = s->gen;
        st->last_quarantined = s->nquarantine;
        rc = 0;
    }
    /* the reload's duration ends at publish; freeing the old world is not part of it */
    uint64_t t_pub = rld_mono_us();
    uint64_t dur = t_pub - t0;
    /*
     * wait (bounded) until every worker serves the new generation: the outcome
     * reported to POST /reload then means "serving", and our ref on the old
     * snapshot is normally its last, so the free happens here on L rather
     * than on a worker loop that adopts after we let go.
     */
    uint64_t adopt_us = rc == 0 ? rld_wait_adopted(s->gen, RLD_ADOPT_WAIT_MS) : 0;
    if (rc == 0 && prev && prev->cfg.admin &&
        (!s->cfg.admin || strcmp(prev->cfg.admin, s->cfg.admin) != 0))
        log_warn("spec.admin changed to %s: the admin listener stays on %s until restart",
                 s->cfg.admin ? s->cfg.admin : "(none)", prev->cfg.admin);
    /* freed by the caller once the outcome is visible: /config never shows a new
     * generation beside the previous reload's status for long */
    garbage[0] = old;
    garbage[1] = prev;

    st->last_ok = rc == 0;
    st->last_duration_us = dur;
    st->last_time_unix_ms = rld_unix_ms();
    rld_copy(st->last_trigger, sizeof(st->last_trigger), why);
    if (rc == 0)
        log_info("reload generation %llu: applied in %.1f ms (%u quarantined) [%s; load %.1f ms, "
                 "publish %.1f ms, all workers serving after %.1f ms more]",
                 (unsigned long long)st->gen, (double)dur / 1000.0, st->last_quarantined, why,
                 (double)(t_load - t0) / 1000.0, (double)(t_pub - t_load) / 1000.0,
                 (double)adopt_us / 1000.0);
    else
        log_err("reload failed in %.1f ms, still serving generation %llu [%s]: %s",
                (double)dur / 1000.0, (unsigned long long)prev_gen, why, st->last_error);
    return rc;
}

static void rld_free_dead(struct rld_dead *d)
{
    while (d) {
        struct rld_dead *n = d->next;
        snap_release(d->s);
        free(d);
        d = n;
    }
    malloc_trim(0);
}

/*
 * Any thread (meant for workers dropping the snapshot they stopped serving):
 * drops one ref like snap_release(), but when it is the last one the free
 * (arena, 50,000 health refs for a big configuration) runs on L, not on the
 * caller's event loop.
 */
void rld_defer_release(struct snap *s)
{
    if (!s)
        return;
    unsigned r = atomic_load_explicit(&s->refs, memory_order_relaxed);
    while (r > 1)
        if (atomic_compare_exchange_weak_explicit(&s->refs, &r, r - 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return;   /* not the last: nothing to free */
    struct rld_dead *d = malloc(sizeof(*d));
    pthread_mutex_lock(&rld.mu);
    if (!d || !rld.running) {
        pthread_mutex_unlock(&rld.mu);
        free(d);
        snap_release(s);
        return;
    }
    d->s = s;
    d->next = rld.dead;
    rld.dead = d;
    pthread_cond_signal(&rld.cv_work);
    pthread_mutex_unlock(&rld.mu);
}

static void *rld_loader_main(void *arg)
{
    (void)arg;
    sigset_t all;
    /* signals belong to the main loop (libevent evsignal) */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    pthread_mutex_lock(&rld.mu);
    for (;;) {
        while (!rld.stop && rld.req_seq == rld.done_seq && !rld.dead)
            pthread_cond_wait(&rld.cv_work, &rld.mu);
        if (rld.stop)
            break;
        if (rld.dead) {
            struct rld_dead *d = rld.dead;
            rld.dead = NULL;
            pthread_mutex_unlock(&rld.mu);
            rld_free_dead(d);
            pthread_mutex_lock(&rld.mu);
            continue;
        }
        uint64_t target = rld.req_seq;   /* everything requested so far */
        char why[32];
        struct rld_status st = rld.st;
        rld_copy(why, sizeof(why), rld.why);
        pthread_mutex_unlock(&rld.mu);

        struct snap *garbage[2] = { NULL, NULL };
        int rc = rld_build(why, &st, garbage);

        pthread_mutex_lock(&rld.mu);
        if (rc == 0)
            st.reloads_ok = rld.st.reloads_ok + 1;
        else
            st.reloads_failed = rld.st.reloads_failed + 1;
        rld.st = st;
        rld.done_seq = target;
        bool wake_main = false;
        struct rld_waiter **pp = &rld.pending;
        while (*pp) {
            struct rld_waiter *w = *pp;
            if (w->seq > target) {
                pp = &w->next;
                continue;
            }
            *pp = w->next;
            w->rc = rc;
            w->st = st;
            w->done = true;
            if (w->cb) {
                w->next = rld.completed;
                rld.completed = w;
                wake_main = true;
            }
        }
        pthread_cond_broadcast(&rld.cv_done);
        if (wake_main && rld.ev_done)
            event_active(rld.ev_done, EV_READ, 0);   /* thread-safe: evthread_use_pthreads */
        pthread_mutex_unlock(&rld.mu);
        /*
         * the old snapshot's arena goes back to malloc when its last request
         * ends (here if no worker holds it any more); hand free pages back to
         * the kernel so RSS tracks the live snapshots, not the reload history.
         */
        snap_release(garbage[0]);
        snap_release(garbage[1]);
        malloc_trim(0);
        pthread_mutex_lock(&rld.mu);
    }
    pthread_mutex_unlock(&rld.mu);
    return NULL;
}

/* ---- requests (any thread) ---- */

/* with rld.mu held: queue one more build; returns its sequence number */
static uint64_t rld_enqueue_locked(const char *why)
{
    rld_copy(rld.why, sizeof(rld.why), why);
    rld.req_seq++;
    pthread_cond_signal(&rld.cv_work);
    return rld.req_seq;
}

void rld_request(const char *why)
{
    pthread_mutex_lock(&rld.mu);
    if (rld.running)
        rld_enqueue_locked(why);
    pthread_mutex_unlock(&rld.mu);
}

int rld_request_wait(const char *why, uint32_t timeout_ms)
{
    struct rld_waiter w = { 0 };
    struct timespec dl;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&rld.mu);
    if (!rld.running) {
        pthread_mutex_unlock(&rld.mu);
        return -1;
    }
    w.seq = rld_enqueue_locked(why);
    w.next = rld.pending;
    rld.pending = &w;
    while (!w.done && !rld.stop && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&rld.cv_done, &rld.mu, &dl);
    if (!w.done) {
        /* give up waiting; the build still happens, nobody hears of it */
        for (struct rld_waiter **pp = &rld.pending; *pp; pp = &(*pp)->next)
            if (*pp == &w) {
                *pp = w.next;
                break;
            }
        pthread_mutex_unlock(&rld.mu);
        return -ETIMEDOUT;
    }
    pthread_mutex_unlock(&rld.mu);
    return w.rc;
}

int rld_request_async(const char *why, rld_done_fn cb, void *arg)
{
    struct rld_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    w->cb = cb;
    w->arg = arg;
    pthread_mutex_lock(&rld.mu);
    if (!rld.running) {
        pthread_mutex_unlock(&rld.mu);
        free(w);
        return -1;
    }
    w->seq = rld_enqueue_locked(why);
    w->next = rld.pending;
    rld.pending = w;
    pthread_mutex_unlock(&rld.mu);
    return 0;
}

static void rld_unlink_arg(struct rld_waiter **head, void *arg)
{
    while (*head) {
        struct rld_waiter *w = *head;
        if (w->cb && w->arg == arg) {
            *head = w->next;
            free(w);
        } else {
            head = &w->next;
        }
    }
}

void rld_request_cancel(void *arg)
{
    pthread_mutex_lock(&rld.mu);
    rld_unlink_arg(&rld.pending, arg);
    rld_unlink_arg(&rld.completed, arg);
    pthread_mutex_unlock(&rld.mu);
}

/* M: calls the async waiters L has answered */
static void rld_on_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    pthread_mutex_lock(&rld.mu);
    struct rld_waiter *list = rld.completed;
    rld.completed = NULL;
    pthread_mutex_unlock(&rld.mu);
    /* oldest first: the list was built by pushing at the head */
    struct rld_waiter *rev = NULL;
    while (list) {
        struct rld_waiter *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        struct rld_waiter *n = rev->next;
        rev->cb(rev->arg, rev->rc, &rev->st);
        free(rev);
        rev = n;
    }
}

/* ---- SIGHUP (M) ---- */

static void rld_on_hup(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    log_info("SIGHUP: reloading %s", rld.path);
    rld_request("SIGHUP");
}

/* ---- the file watch (M) ---- */

/* IN_ATTRIB: `touch FILE` (utimensat alone) is the operator's "reload now" */
#define RLD_IN_FILE_MASK                                                                 \
    (IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_CREATE | IN_ATTRIB | IN_DELETE_SELF |  \
     IN_MOVE_SELF)
#define RLD_IN_DIR_MASK (RLD_IN_FILE_MASK | IN_DELETE | IN_MOVED_FROM)

static bool rld_is_yaml(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && name[0] != '.' && strcmp(name + n - 5, ".yaml") == 0;
}

static void rld_split(const char *p, char *dir, size_t dlen, char *base, size_t blen)
{
    const char *slash = strrchr(p, '/');
    if (!slash) {
        rld_copy(dir, dlen, ".");
        rld_copy(base, blen, p);
    } else if (slash == p) {
        rld_copy(dir, dlen, "/");
        rld_copy(base, blen, slash + 1);
    } else {
        snprintf(dir, dlen, "%.*s", (int)(slash - p), p);
        rld_copy(base, blen, slash + 1);
    }
}

static void rld_add_rule(const char *dir, const char *name, uint32_t mask)
{
    if (rld.nrules >= RLD_MAX_RULES)
        return;
    for (int i = 0; i < rld.nrules; i++)
        if (!strcmp(rld.rules[i].dir, dir) && !strcmp(rld.rules[i].name, name))
            return;
    /* one wd per directory: re-adding an existing dir ORs the masks */
    int wd = inotify_add_watch(rld.ino_fd, dir, mask | IN_MASK_ADD);
    if (wd < 0) {
        log_warn("watch %s: %s (reload with SIGHUP or POST /reload)", dir, strerror(errno));
        return;
    }
    struct rld_rule *r = &rld.rules[rld.nrules++];
    r->wd = wd;
    rld_copy(r->dir, sizeof(r->dir), dir);
    rld_copy(r->name, sizeof(r->name), name);
}

/*
 * (Re)builds the watch rules from the path and its resolved target. Adds the
 * new watches before removing stale ones so no event slips between them.
 */
static void rld_watch_resolve(void)
{
    char dir[PATH_MAX], name[NAME_MAX + 1], real[PATH_MAX];
    struct rld_rule old[RLD_MAX_RULES];
    int nold = rld.nrules;
    struct stat sb;

    memcpy(old, rld.rules, sizeof(old));
    rld.nrules = 0;
    rld.dir_mode = stat(rld.path, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (rld.dir_mode) {
        rld_add_rule(rld.path, "", RLD_IN_DIR_MASK);
        if (realpath(rld.path, real) && strcmp(real, rld.path) != 0)
            rld_add_rule(real, "", RLD_IN_DIR_MASK);
    } else {
        rld_split(rld.path, dir, sizeof(dir), name, sizeof(name));
        rld_add_rule(dir, name, RLD_IN_FILE_MASK);
        rld_add_rule(dir, "..data", RLD_IN_FILE_MASK);   /* ConfigMap volume swap */
        if (realpath(rld.path, real)) {
            char rdir[PATH_MAX], rname[NAME_MAX + 1];
            rld_split(real, rdir, sizeof(rdir), rname, sizeof(rname));
            const char *rbase = strrchr(rdir, '/');
            /*
             * a symlink into another directory: in-place writes happen there.
             * Not for a ConfigMap's "..2026_..." directory: its files never
             * change in place (..data moves instead), and watching it would
             * turn the kubelet's removal of the old one into a second reload.
             */
            if ((strcmp(rdir, dir) != 0 || strcmp(rname, name) != 0) &&
                !(rbase && !strncmp(rbase + 1, "..", 2)))
                rld_add_rule(rdir, rname, IN_CLOSE_WRITE | IN_MODIFY | IN_MOVED_TO | IN_CREATE);
        }
    }
    rld_copy(rld.real, sizeof(rld.real), realpath(rld.path, real) ? real : "");
    for (int i = 0; i < nold; i++) {
        bool keep = false;
        for (int j = 0; j < rld.nrules; j++)
            keep |= rld.rules[j].wd == old[i].wd;
        for (int j = 0; j < i; j++)
            keep |= old[j].wd == old[i].wd;   /* removed already */
        if (!keep)
            inotify_rm_watch(rld.ino_fd, old[i].wd);
    }
}

/* the watched directory vanished: try again every second; reload once it is back */
static void rld_on_rewatch(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    rld_watch_resolve();
    if (rld.nrules > 0) {
        log_info("watching %s again", rld.path);
        rld_request("watch restored");   /* it may have changed while unwatched */
        return;
    }
    struct timeval tv = { 1, 0 };
    evtimer_add(rld.ev_rewatch, &tv);
}

static void rld_on_debounce(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    rld.debounce_armed = false;
    /* the symlink chain may point somewhere else now (..data swapped) */
    char real[PATH_MAX];
    if (!realpath(rld.path, real) || strcmp(real, rld.real) != 0 || rld.nrules == 0)
        rld_watch_resolve();
    if (rld.nrules == 0 && !evtimer_pending(rld.ev_rewatch, NULL)) {
        struct timeval tv = { 1, 0 };
        evtimer_add(rld.ev_rewatch, &tv);
    }
    rld_request("file change");
}

static void rld_watch_kick(bool writer_open)
{
    uint64_t now = rld_mono_ms();
    if (!rld.debounce_armed) {
        rld.debounce_armed = true;
        rld.debounce_first_ms = now;
    }
    /*
     * IN_MODIFY without its IN_CLOSE_WRITE yet: someone is still writing the
     * file in place; reading it now would likely parse half a file, so wait
     * for the close -- but never past the cap.
     */
    uint64_t due = writer_open ? UINT64_MAX : now + RLD_DEBOUNCE_QUIET_MS;
    uint64_t cap = rld.debounce_first_ms + RLD_DEBOUNCE_MAX_MS;
    if (due > cap)
        due = cap;
    uint64_t in = due > now ? due - now : 0;
    struct timeval tv = { .tv_sec = (time_t)(in / 1000), .tv_usec = (suseconds_t)(in % 1000) * 1000 };
    evtimer_add(rld.ev_debounce, &tv);   /* re-adding restarts the quiet timer */
}

static bool rld_event_matches(const struct inotify_event *ev)
{
    if (ev->mask & IN_Q_OVERFLOW)
        return true;   /* lost events: reload to be safe */
    for (int i = 0; i < rld.nrules; i++) {
        const struct rld_rule *r = &rld.rules[i];
        if (r->wd != ev->wd)
            continue;
        if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
            return true;   /* the directory itself went away: re-resolve */
        if (!ev->len)
            continue;
        if (r->name[0] ? !strcmp(r->name, ev->name)
                       : (rld_is_yaml(ev->name) || !strcmp(ev->name, "..data")))
            return true;
    }
    return false;
}

static void rld_on_inotify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool hit = false, gone = false, writer_open = false;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (rld_event_matches(ev)) {
                hit = true;
                rld.watch_events++;
                /* the latest matching event tells whether a writer still has it open */
                writer_open = (ev->mask & IN_MODIFY) != 0 && !(ev->mask & IN_CLOSE_WRITE);
            }
            if (ev->mask & IN_IGNORED)
                gone = true;
            p += sizeof(*ev) + ev->len;
        }
    }
    if (gone)
        rld.nrules = 0;   /* a watched directory vanished: resolve again on the timer */
    if (hit || gone)
        rld_watch_kick(writer_open && !gone);
}

static int rld_watch_start(void)
{
    rld.ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (rld.ino_fd < 0) {
        log_warn("inotify: %s; the configuration is not watched (SIGHUP still reloads)",
                 strerror(errno));
        return 0;
    }
    rld_watch_resolve();
    rld.ev_ino = event_new(rld.base, rld.ino_fd, EV_READ | EV_PERSIST, rld_on_inotify, NULL);
    rld.ev_debounce = evtimer_new(rld.base, rld_on_debounce, NULL);
    rld.ev_rewatch = evtimer_new(rld.base, rld_on_rewatch, NULL);
    if (!rld.ev_ino || !rld.ev_debounce || !rld.ev_rewatch || event_add(rld.ev_ino, NULL) < 0)
        return -1;
    return 0;
}

/* ---- start / stop (M) ---- */

/*
 * Publishes `initial` as generation served (one ref taken), starts the loader
 * thread, SIGHUP and the watch on `base`. `base` must have been created after
 * evthread_use_pthreads() (L activates an event on it). 0 ok, <0 error (logged).
 */
int rld_start(struct event_base *base, const char *path, struct snap *initial)
{
    if (!rld.load)
        rld.load = snap_load;
    rld.base = base;
    rld_copy(rld.path, sizeof(rld.path), path);
    snap_release(rld_swap_current(snap_ref(initial)));

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* rld_request_wait deadlines */
    pthread_cond_init(&rld.cv_done, &ca);
    pthread_cond_init(&rld.cv_work, NULL);
    pthread_condattr_destroy(&ca);

    pthread_mutex_lock(&rld.mu);
    memset(&rld.st, 0, sizeof(rld.st));
    rld.st.gen = initial ? initial->gen : 0;
    rld.st.last_ok = initial != NULL;
    rld.st.last_time_unix_ms = rld_unix_ms();
    rld.st.last_quarantined = initial ? initial->nquarantine : 0;
    rld.st.last_duration_us = initial ? initial->load_ns / 1000 : 0;
    rld_copy(rld.st.last_trigger, sizeof(rld.st.last_trigger), "startup");
    rld_copy(rld.st.source, sizeof(rld.st.source), path);
    rld.req_seq = rld.done_seq = 0;
    rld.stop = false;
    rld.running = true;
    pthread_mutex_unlock(&rld.mu);

    rld.ev_done = event_new(base, -1, 0, rld_on_done, NULL);
    rld.ev_hup = evsignal_new(base, SIGHUP, rld_on_hup, NULL);
    if (!rld.ev_done || !rld.ev_hup || event_add(rld.ev_hup, NULL) < 0) {
        log_err("reload: cannot set up events");
        return -1;
    }
    if (rld_watch_start() < 0) {
        log_err("reload: cannot set up the configuration watch");
        return -1;
    }
    int err = pthread_create(&rld.thr, NULL, rld_loader_main, NULL);
    if (err) {
        log_err("reload: loader thread: %s", strerror(err));
        pthread_mutex_lock(&rld.mu);
        rld.running = false;
        pthread_mutex_unlock(&rld.mu);
        return -1;
    }
    rld.thr_started = true;
    log_info("reload: watching %s%s (SIGHUP, POST /reload)", path,
             rld.dir_mode ? " (directory of *.yaml)" : "");
    return 0;
}

/* M: stops the loader (a build in progress finishes first), the watch, SIGHUP */
void rld_stop(void)
{
    pthread_mutex_lock(&rld.mu);
    rld.running = false;
    rld.stop = true;
    pthread_cond_signal(&rld.cv_work);
    /* synchronous waiters see done == false and time out; wake them now */
    pthread_cond_broadcast(&rld.cv_done);
    pthread_mutex_unlock(&rld.mu);
    if (rld.thr_started)
        pthread_join(rld.thr, NULL);
    rld.thr_started = false;

    struct event **evs[] = { &rld.ev_hup, &rld.ev_done, &rld.ev_ino, &rld.ev_debounce,
                             &rld.ev_rewatch };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    /* libevent restored SIGHUP's default action (terminate) with ev_hup gone:
     * a SIGHUP during the drain must not kill the process */
    signal(SIGHUP, SIG_IGN);
    if (rld.ino_fd >= 0) {
        close(rld.ino_fd);
        rld.ino_fd = -1;
    }
    rld.nrules = 0;
    rld.debounce_armed = false;

    /* unanswered async waiters: their requests die with the admin listener */
    pthread_mutex_lock(&rld.mu);
    struct rld_waiter *lists[] = { rld.pending, rld.completed };
    rld.pending = rld.completed = NULL;
    struct rld_dead *dead = rld.dead;
    rld.dead = NULL;
    pthread_mutex_unlock(&rld.mu);
    rld_free_dead(dead);
    for (int i = 0; i < 2; i++)
        for (struct rld_waiter *w = lists[i], *n; w; w = n) {
            n = w->next;
            if (w->cb)
                free(w);   /* synchronous ones live on their owner's stack */
        }
    snap_release(rld_swap_current(NULL));
}

void rld_test_set_loader(struct snap *(*fn)(const char *, const struct snap *,
                                            const struct snap_load_opts *, struct cfg_errs *))
{
    rld.load = fn ? fn : snap_load;
}
