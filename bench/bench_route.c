/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_route: micro-benchmark of route_build() and route_match().
 *
 * Builds a table of 10,000 hosts x 10 paths (a mix of Exact and Prefix, the
 * shapes real Ingresses have), then times route_match() over a shuffled set
 * of lookups, hits and misses (unknown host, unknown path, ports and mixed
 * case in the Host header), in batches, and prints the median ns per lookup.
 * Everything is seeded, so two runs do the same work.
 *
 *     make build/bench/bench_route && build/bench/bench_route [batches] [lookups] [hosts]
 *
 * Single-threaded on purpose: route_match() takes no locks and shares nothing
 * writable, so per-thread cost is the figure that matters.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingressd/arena.h"
#include "ingressd/cfg.h"
#include "ingressd/route.h"
#include "ingressd/snap-t.h"

#define NHOSTS_DEFAULT 10000
#define NPATHS 10

struct bench_path {
    const char *path;
    enum route_path_type type;
};

/* per host; hosts with odd numbers lack the "/" catch-all so misses exist */
static const struct bench_path bench_paths[NPATHS] = {
    { "/", ROUTE_PREFIX },
    { "/api", ROUTE_PREFIX },
    { "/api/v1", ROUTE_PREFIX },
    { "/api/v1/users", ROUTE_EXACT },
    { "/api/v2/orders", ROUTE_PREFIX },
    { "/static", ROUTE_PREFIX },
    { "/healthz", ROUTE_EXACT },
    { "/login", ROUTE_EXACT },
    { "/app/dashboard", ROUTE_PREFIX },
    { "/app/settings/profile", ROUTE_EXACT },
};

/* request paths: hits on the rules above and misses (path unknown) */
static const char *const bench_reqs[] = {
    "/api/v1/users",
    "/api/v1/users/12345",
    "/api/v2/orders/987/items",
    "/api/other",
    "/static/css/site.min.css",
    "/healthz",
    "/login",
    "/app/dashboard/widgets/7",
    "/app/settings/profile",
    "/app/settings/profile/x",    /* Exact miss; "/" or nothing */
    "/",
    "/unknown/deep/path/with/many/segments",
    "/favicon.ico",
    "/apix",                      /* not an element-wise prefix */
};
#define NREQS (sizeof(bench_reqs) / sizeof(bench_reqs[0]))

struct lookup {
    char host[64];
    size_t hostlen;
    const char *path;
    size_t pathlen;
};

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rng(void)
{
    /* xorshift64*: deterministic and fast enough not to matter */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static double clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* on-CPU time: a shared 2-core box deschedules us; that is not route_match's cost */
static double cpu_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int batches = argc > 1 ? atoi(argv[1]) : 21;
    size_t nlook = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 200000;
    /* a third argument shrinks the table to see the cost without cache misses */
    int NHOSTS = argc > 3 ? atoi(argv[3]) : NHOSTS_DEFAULT;
    size_t nspecs = 0, nbuilds = 5;
    struct route_spec *specs = calloc(NHOSTS * NPATHS, sizeof(*specs));
    struct snap_route *acts = calloc(NHOSTS * NPATHS, sizeof(*acts));
    char (*hosts)[48] = calloc(NHOSTS, sizeof(*hosts));
    struct lookup *look = calloc(nlook, sizeof(*look));
    double *per = calloc((size_t)(batches > 0 ? batches : 1), sizeof(*per));
    double *wall = calloc((size_t)(batches > 0 ? batches : 1), sizeof(*wall));
    double builds[5], builds_wall[5];

    if (batches <= 0 || nlook == 0 || NHOSTS <= 0 || !specs || !acts || !hosts || !look || !per || !wall) {
        fprintf(stderr, "usage: bench_route [batches>0] [lookups>0] [hosts>0]\n");
        return 2;
    }
    for (int h = 0; h < NHOSTS; h++) {
        snprintf(hosts[h], sizeof(hosts[h]), "svc%d.ns%d.example.com", h, h % 37);
        for (int p = 0; p < NPATHS; p++) {
            if (p == 0 && (h & 1))
                continue;
            specs[nspecs] = (struct route_spec){ .host = hosts[h], .path = bench_paths[p].path,
                                                 .type = bench_paths[p].type,
                                                 .action = &acts[nspecs] };
            acts[nspecs].host = hosts[h];
            acts[nspecs].path = bench_paths[p].path;
            nspecs++;
        }
    }

    /* build: median of a few, each into a fresh arena as a reload does */
    struct arena *a = NULL;
    struct route_table *t = NULL;
    size_t arena_mib = 0;
    for (size_t i = 0; i < nbuilds; i++) {
        struct cfg_errs errs;
        cfg_errs_init(&errs);
        if (t)
            route_table_free(t);
        arena_free(a);
        a = arena_new(0);
        double w0 = now_ns(), c0 = cpu_ns();
        t = route_build(a, specs, nspecs, &errs);
        builds[i] = cpu_ns() - c0;
        builds_wall[i] = now_ns() - w0;
        if (!t || errs.n) {
            fprintf(stderr, "route_build failed (%zu diagnostics)\n", errs.n);
            return 1;
        }
        cfg_errs_free(&errs);
        arena_mib = arena_bytes(a) >> 20;
    }
    qsort(builds, nbuilds, sizeof(builds[0]), cmp_double);
    qsort(builds_wall, nbuilds, sizeof(builds_wall[0]), cmp_double);

    /* lookups: 90% known hosts (some with a port, some upper-case), 10% unknown */
    for (size_t i = 0; i < nlook; i++) {
        uint64_t r = rng();
        int h = (int)(r % NHOSTS);
        unsigned kind = (unsigned)((r >> 20) % 10);
        struct lookup *l = &look[i];
        int n;
        if (kind == 0)
            n = snprintf(l->host, sizeof(l->host), "nohost%d.example.org", h);
        else if (kind == 1)
            n = snprintf(l->host, sizeof(l->host), "%s:443", hosts[h]);
        else if (kind == 2)
            n = snprintf(l->host, sizeof(l->host), "SVC%d.NS%d.Example.COM", h, h % 37);
        else
            n = snprintf(l->host, sizeof(l->host), "%s", hosts[h]);
        l->hostlen = (size_t)n;
        l->path = bench_reqs[(r >> 32) % NREQS];
        l->pathlen = strlen(l->path);
    }

    size_t hits = 0;
    uintptr_t sink = 0;
    for (size_t i = 0; i < nlook; i++) { /* warm-up, and the hit ratio */
        const struct snap_route *m = route_match(t, look[i].host, look[i].hostlen, look[i].path,
                                                 look[i].pathlen);
        hits += m != NULL;
        sink += (uintptr_t)m;
    }
    for (int b = 0; b < batches; b++) {
        double w0 = now_ns(), c0 = cpu_ns();
        for (size_t i = 0; i < nlook; i++)
            sink += (uintptr_t)route_match(t, look[i].host, look[i].hostlen, look[i].path,
                                           look[i].pathlen);
        per[b] = (cpu_ns() - c0) / (double)nlook;
        wall[b] = (now_ns() - w0) / (double)nlook;
    }
    qsort(per, (size_t)batches, sizeof(per[0]), cmp_double);
    qsort(wall, (size_t)batches, sizeof(wall[0]), cmp_double);

    printf("route_build: %d hosts x %d paths (%zu routes, %zu hosts): median %.1f ms on-CPU over "
           "%zu builds (wall-clock %.1f ms), arena %zu MiB\n",
           NHOSTS, NPATHS, route_count(t), route_host_count(t), builds[nbuilds / 2] / 1e6, nbuilds,
           builds_wall[nbuilds / 2] / 1e6, arena_mib);
    printf("route_match: %d batches x %zu shuffled lookups (%.0f%% hits): median %.1f ns/lookup "
           "on-CPU (min %.1f, max %.1f); wall-clock median %.1f\n",
           batches, nlook, 100.0 * (double)hits / (double)nlook, per[batches / 2], per[0],
           per[batches - 1], wall[batches / 2]);
    if (sink == 1) /* keeps the loop honest */
        puts("");

    route_table_free(t);
    arena_free(a);
    free(specs);
    free(acts);
    free(hosts);
    free(look);
    free(per);
    free(wall);
    return 0;
}
