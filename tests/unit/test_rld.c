/* SPDX-License-Identifier: Apache-2.0 */
/*
 * rld: coalescing of reload requests, outcomes for waiters, and the file
 * watch (in-place write, rename-over, ConfigMap ..data swap, directory mode).
 * snap_load is replaced by a fake loader so these tests exercise reload.c
 * alone; the main loop runs on a helper thread as it would on M.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingressd/arena.h"
#include "ingressd/rld.h"
#include "ingressd/snap.h"

TestSuite(rld, .timeout = 20);

/*
 * The watch debounces for at most 100 ms; allow scheduling slack on a loaded
 * 2-core CI box (the integration tests 40-reload.py assert the median).
 */
#define RLD_T_MS 250

static atomic_int loads;
static atomic_int load_delay_ms;
static atomic_bool load_fail;

static struct snap *fake_load(const char *path, const struct snap *prev,
                              const struct snap_load_opts *o, struct cfg_errs *errs)
{
    (void)o;
    atomic_fetch_add(&loads, 1);
    int d = atomic_load(&load_delay_ms);
    if (d)
        usleep((useconds_t)d * 1000);
    if (atomic_load(&load_fail)) {
        cfg_errs_add(errs, CFG_ERROR, path, 3, 7, "Ingress default/x", "boom");
        return NULL;
    }
    struct snap *s = calloc(1, sizeof(*s));
    s->magic = SNAP_MAGIC;
    atomic_init(&s->refs, 1);
    s->arena = arena_new(0);
    s->gen = prev ? prev->gen + 1 : 1;
    return s;
}

#include "loop_thread.h"

static char tmpdir[256];

static void start(const char *path)
{
    evthread_use_pthreads();
    base = event_base_new();
    cr_assert(base);
    rld_test_set_loader(fake_load);
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct snap *s = fake_load("init", NULL, NULL, &errs);
    atomic_store(&loads, 0);
    cr_assert_eq(rld_start(base, path, s), 0);
    snap_release(s);
    pthread_create(&loop_thr, NULL, loop_main, NULL);
}

static void stop(void)
{
    loop_stop();
    rld_stop();
    event_base_free(base);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* waits until loads >= n; returns the elapsed ms or -1 */
static long wait_loads(int n, int timeout_ms)
{
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < (uint64_t)timeout_ms) {
        if (atomic_load(&loads) >= n)
            return (long)(now_ms() - t0);
        usleep(2000);
    }
    return -1;
}

static void mk_tmpdir(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/rld-test-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void write_file(const char *p, const char *text)
{
    FILE *f = fopen(p, "w");
    cr_assert(f, "open %s", p);
    fputs(text, f);
    fclose(f);
}

Test(rld, requests_during_a_reload_coalesce_into_exactly_one_more)
{
    start("/nonexistent/ingressd.yaml");
    atomic_store(&load_delay_ms, 150);
    rld_request("t1");
    cr_assert_neq(wait_loads(1, 1000), -1);
    for (int i = 0; i < 10; i++)
        rld_request("burst");
    usleep(600 * 1000);
    cr_assert_eq(atomic_load(&loads), 2, "loads=%d", atomic_load(&loads));
    struct rld_status st;
    rld_status(&st);
    cr_assert_eq(st.reloads_ok, 2);
    cr_assert_eq(st.gen, 3);
    stop();
}

Test(rld, wait_reports_outcome_and_keeps_current_on_failure)
{
    start("/nonexistent/ingressd.yaml");
    cr_assert_eq(rld_request_wait("w", 2000), 0);
    struct snap *s = rld_current();
    cr_assert_eq(s->gen, 2);
    snap_release(s);

    atomic_store(&load_fail, true);
    cr_assert_lt(rld_request_wait("w", 2000), 0);
    s = rld_current();
    cr_assert_eq(s->gen, 2, "a failed load changes nothing");
    snap_release(s);
    struct rld_status st;
    rld_status(&st);
    cr_assert_eq(st.reloads_failed, 1);
    cr_assert_not(st.last_ok);
    cr_assert(strstr(st.last_error, ":3:7: error: Ingress default/x: boom"), "%s", st.last_error);
    stop();
}

Test(rld, wait_times_out_without_losing_the_reload)
{
    start("/nonexistent/ingressd.yaml");
    atomic_store(&load_delay_ms, 300);
    cr_assert_lt(rld_request_wait("w", 50), 0);
    cr_assert_neq(wait_loads(1, 2000), -1);
    stop();
}

static atomic_int async_rc = 99;
static void on_async(void *arg, int rc, const struct rld_status *st)
{
    (void)arg;
    cr_assert_eq(st->gen, 2);
    atomic_store(&async_rc, rc);
}

Test(rld, async_outcome_runs_on_the_loop)
{
    start("/nonexistent/ingressd.yaml");
    cr_assert_eq(rld_request_async("POST /reload", on_async, NULL), 0);
    for (int i = 0; i < 200 && atomic_load(&async_rc) == 99; i++)
        usleep(5000);
    cr_assert_eq(atomic_load(&async_rc), 0);
    stop();
}

Test(rld, in_place_write_reloads_within_150ms)
{
    char p[512];
    mk_tmpdir();
    snprintf(p, sizeof(p), "%s/ingressd.yaml", tmpdir);
    write_file(p, "a: 1\n");
    start(p);
    usleep(50 * 1000);
    write_file(p, "a: 2\n");
    long ms = wait_loads(1, 1000);
    cr_assert(ms >= 0 && ms <= RLD_T_MS, "reloaded after %ld ms", ms);
    /* unrelated files in the directory do not count */
    char q[512];
    snprintf(q, sizeof(q), "%s/other.txt", tmpdir);
    write_file(q, "x");
    usleep(200 * 1000);
    cr_assert_eq(atomic_load(&loads), 1);
    stop();
}

Test(rld, rename_over_reloads)
{
    char p[512], t[512];
    mk_tmpdir();
    snprintf(p, sizeof(p), "%s/ingressd.yaml", tmpdir);
    snprintf(t, sizeof(t), "%s/.ingressd.yaml.swp", tmpdir);
    write_file(p, "a: 1\n");
    start(p);
    usleep(50 * 1000);
    write_file(t, "a: 2\n");
    usleep(150 * 1000);   /* the temp file alone is no reason to reload */
    cr_assert_eq(atomic_load(&loads), 0);
    cr_assert_eq(rename(t, p), 0);
    long ms = wait_loads(1, 1000);
    cr_assert(ms >= 0 && ms <= RLD_T_MS, "reloaded after %ld ms", ms);
    /* the watch follows the new inode: a second rename-over is seen too */
    write_file(t, "a: 3\n");
    usleep(150 * 1000);
    cr_assert_eq(rename(t, p), 0);
    cr_assert_neq(wait_loads(2, 1000), -1);
    stop();
}

/* lays out a ConfigMap volume: DIR/..TS/cfg.yaml, DIR/..data -> ..TS, DIR/cfg.yaml -> ..data/cfg.yaml */
static void configmap_version(const char *dir, int v, const char *text)
{
    char ts[512], f[600], tmp[512], data[512], name[64];
    snprintf(name, sizeof(name), "..2026_11_29_00_00_%02d", v);
    snprintf(ts, sizeof(ts), "%s/%s", dir, name);
    cr_assert_eq(mkdir(ts, 0755), 0);
    snprintf(f, sizeof(f), "%s/cfg.yaml", ts);
    write_file(f, text);
    snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
    snprintf(data, sizeof(data), "%s/..data", dir);
    cr_assert_eq(symlink(name, tmp), 0);
    cr_assert_eq(rename(tmp, data), 0);   /* the kubelet's atomic swap */
}

Test(rld, configmap_data_symlink_swap_reloads)
{
    char p[512], link[512];
    mk_tmpdir();
    configmap_version(tmpdir, 1, "a: 1\n");
    snprintf(p, sizeof(p), "%s/cfg.yaml", tmpdir);
    cr_assert_eq(symlink("..data/cfg.yaml", p), 0);
    start(p);
    usleep(50 * 1000);
    configmap_version(tmpdir, 2, "a: 2\n");
    /* the kubelet then removes the previous version's directory */
    char old[600];
    snprintf(old, sizeof(old), "%s/..2026_11_29_00_00_01/cfg.yaml", tmpdir);
    cr_assert_eq(unlink(old), 0);
    snprintf(old, sizeof(old), "%s/..2026_11_29_00_00_01", tmpdir);
    cr_assert_eq(rmdir(old), 0);
    long ms = wait_loads(1, 1000);
    cr_assert(ms >= 0 && ms <= RLD_T_MS, "reloaded after %ld ms", ms);
    usleep(200 * 1000);
    cr_assert_eq(atomic_load(&loads), 1, "one reload per ConfigMap update");
    configmap_version(tmpdir, 3, "a: 3\n");
    cr_assert_neq(wait_loads(2, 1000), -1);
    (void)link;
    stop();
}

Test(rld, directory_mode_sees_any_yaml)
{
    char p[512];
    mk_tmpdir();
    snprintf(p, sizeof(p), "%s/a.yaml", tmpdir);
    write_file(p, "a: 1\n");
    start(tmpdir);
    usleep(50 * 1000);
    snprintf(p, sizeof(p), "%s/b.yaml", tmpdir);
    write_file(p, "b: 1\n");
    long ms = wait_loads(1, 1000);
    cr_assert(ms >= 0 && ms <= RLD_T_MS, "reloaded after %ld ms", ms);
    usleep(150 * 1000);
    cr_assert_eq(unlink(p), 0);   /* removing one is a change too */
    cr_assert_neq(wait_loads(2, 1000), -1);
    stop();
}

Test(rld, a_stream_of_writes_still_reloads_every_100ms)
{
    char p[512];
    mk_tmpdir();
    snprintf(p, sizeof(p), "%s/ingressd.yaml", tmpdir);
    write_file(p, "a: 1\n");
    start(p);
    usleep(50 * 1000);
    uint64_t t0 = now_ms();
    /* a write every 10 ms for 550 ms: the quiet timer never expires by itself */
    while (now_ms() - t0 < 550) {
        write_file(p, "a: 2\n");
        usleep(10 * 1000);
    }
    int n = atomic_load(&loads);
    cr_assert(n >= 4, "only %d reloads during 550 ms of writes", n);
    stop();
}

Test(rld, deferred_release_frees_the_last_ref_on_the_loader)
{
    start("/nonexistent/ingressd.yaml");
    struct cfg_errs errs;
    cfg_errs_init(&errs);
    struct snap *s = fake_load("x", NULL, NULL, &errs);
    snap_ref(s);
    rld_defer_release(s);   /* not the last: just a decrement */
    cr_assert_eq(atomic_load(&s->refs), 1);
    rld_defer_release(s);   /* the last: freed on L (ASan checks the rest) */
    usleep(50 * 1000);
    stop();
}

Test(rld, an_in_place_writer_is_awaited_until_close_within_the_cap)
{
    char p[512];
    mk_tmpdir();
    snprintf(p, sizeof(p), "%s/ingressd.yaml", tmpdir);
    write_file(p, "a: 1\n");
    start(p);
    usleep(50 * 1000);
    FILE *f = fopen(p, "w");
    fputs("a: ", f);
    fflush(f);                  /* IN_MODIFY, the file still open */
    uint64_t t0 = now_ms();
    usleep(50 * 1000);          /* < the 100 ms cap */
    if (now_ms() - t0 < 90)     /* a descheduled test may legitimately hit the cap */
        cr_assert_eq(atomic_load(&loads), 0, "no reload of a half-written file");
    fputs("2\n", f);
    fclose(f);                  /* IN_CLOSE_WRITE: now */
    long ms = wait_loads(1, 1000);
    cr_assert(ms >= 0 && ms <= RLD_T_MS - 100, "reloaded %ld ms after the close", ms);
    usleep(150 * 1000);
    cr_assert_leq(atomic_load(&loads), 2, "at most the cap's reload and the close's");
    int base_loads = atomic_load(&loads);

    /* a writer that keeps it open still gets a reload at the 100 ms cap */
    f = fopen(p, "w");
    fputs("a: 3\n", f);
    fflush(f);
    ms = wait_loads(base_loads + 1, 1000);
    cr_assert(ms >= 0 && ms <= RLD_T_MS, "reloaded after %ld ms with the file held open", ms);
    fclose(f);
    stop();
}

Test(rld, symlink_to_a_file_elsewhere_sees_in_place_writes_of_the_target)
{
    char real_dir[300], target[600], link[600];
    mk_tmpdir();
    snprintf(real_dir, sizeof(real_dir), "%s/real", tmpdir);
    cr_assert_eq(mkdir(real_dir, 0755), 0);
    snprintf(target, sizeof(target), "%s/actual.yaml", real_dir);
    write_file(target, "a: 1\n");
    snprintf(link, sizeof(link), "%s/ingressd.yaml", tmpdir);
    cr_assert_eq(symlink(target, link), 0);
    start(link);
    usleep(50 * 1000);
    write_file(target, "a: 2\n");
    long ms = wait_loads(1, 1000);
    cr_assert(ms >= 0 && ms <= RLD_T_MS, "reloaded after %ld ms", ms);
    stop();
}

Test(rld, a_removed_and_recreated_directory_is_watched_again)
{
    char d[512], p[600];
    mk_tmpdir();
    snprintf(d, sizeof(d), "%s/conf.d", tmpdir);
    cr_assert_eq(mkdir(d, 0755), 0);
    snprintf(p, sizeof(p), "%s/a.yaml", d);
    write_file(p, "a: 1\n");
    start(d);
    usleep(50 * 1000);
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(rmdir(d), 0);
    cr_assert_neq(wait_loads(1, 1000), -1, "the removal is a change");
    usleep(400 * 1000);   /* long enough for every event of the removal to be handled */
    int n = atomic_load(&loads);
    cr_assert_eq(mkdir(d, 0755), 0);
    write_file(p, "a: 2\n");
    cr_assert_neq(wait_loads(n + 1, 3000), -1, "watched again after it came back");
    /* and edits are seen as usual from then on */
    usleep(100 * 1000);
    n = atomic_load(&loads);
    write_file(p, "a: 3\n");
    cr_assert_neq(wait_loads(n + 1, 1000), -1);
    stop();
}

Test(rld, touch_reloads)
{
    char p[512];
    mk_tmpdir();
    snprintf(p, sizeof(p), "%s/ingressd.yaml", tmpdir);
    write_file(p, "a: 1\n");
    start(p);
    usleep(50 * 1000);
    cr_assert_eq(utimensat(AT_FDCWD, p, NULL, 0), 0);
    long ms = wait_loads(1, 1000);
    cr_assert(ms >= 0 && ms <= RLD_T_MS, "reloaded after %ld ms", ms);
    stop();
}
