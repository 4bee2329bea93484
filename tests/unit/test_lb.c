/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for lb: shares, skipping rules, consistent hashing movement,
 * affinities, panic mode, passive ejection through lb_done, retry budget.
 * Backends are built by hand in an arena, as snap.c would.
 * Each Criterion test runs in its own process, so the global health table and
 * cursors start empty in every test.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingressd/arena.h"
#include "ingressd/hc.h"
#include "ingressd/lb.h"
#include "ingressd/snap-t.h"

TestSuite(lb);

static struct snap_backend *mk_backend(struct arena *a, const char *name, uint32_t n,
                                       const char *const *addrs)
{
    struct snap_backend *be = arena_calloc(a, 1, sizeof(*be));
    be->name = arena_strdup(a, name);
    be->eps = arena_calloc(a, n ? n : 1, sizeof(*be->eps));
    be->neps = n;
    be->nready = n;
    for (uint32_t i = 0; i < n; i++) {
        struct snap_endpoint *ep = &be->eps[i];
        char buf[64];
        if (addrs)
            snprintf(buf, sizeof(buf), "%s", addrs[i]);
        else
            snprintf(buf, sizeof(buf), "10.0.%u.%u:8080", i / 200, i % 200 + 1);
        ep->addr = arena_strdup(a, buf);
        struct sockaddr_in *sin = (struct sockaddr_in *)&ep->sa;
        char ip[64];
        memcpy(ip, buf, sizeof(ip));
        char *colon = strrchr(ip, ':');
        *colon = '\0';
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)atoi(colon + 1));
        inet_pton(AF_INET, ip, &sin->sin_addr);
        ep->salen = sizeof(*sin);
        ep->ready = true;
        ep->hc = hc_ep_get(buf);
    }
    return be;
}

static void put_backend(struct snap_backend *be)
{
    for (uint32_t i = 0; i < be->neps; i++)
        hc_ep_put(be->eps[i].hc);
}

static int ep_index(const struct snap_backend *be, const struct snap_endpoint *ep)
{
    if (!ep)
        abort(); /* every caller expects a pick; the test fails loudly */
    return (int)(ep - be->eps);
}

struct hdrs {
    const char *name, *value;
    const char *name2, *value2;
};

static struct str get_hdr(void *ctx, struct str name)
{
    struct hdrs *h = ctx;
    if (h->name && str_ieq_cstr(name, h->name))
        return str_cstr(h->value);
    if (h->name2 && str_ieq_cstr(name, h->name2))
        return str_cstr(h->value2);
    return STR_NULL;
}

static struct sockaddr_in mk_client(const char *ip, uint16_t port)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, ip, &sin.sin_addr);
    return sin;
}

/* ---- round robin ---- */

Test(lb, rr_share_is_exact_over_30000_picks)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/web:80", 3, NULL);
    unsigned count[3] = { 0 };
    for (int i = 0; i < 30000; i++) {
        struct lb_req req = { 0 };
        const struct snap_endpoint *ep = lb_pick(be, &req, 0);
        cr_assert_not_null(ep);
        count[ep_index(be, ep)]++;
        lb_done(be, ep, LB_OK, 100);
    }
    cr_log_info("rr share over 30000 picks: %u %u %u", count[0], count[1], count[2]);
    cr_assert_eq(count[0], 10000);
    cr_assert_eq(count[1], 10000);
    cr_assert_eq(count[2], 10000);
    cr_assert_eq(atomic_load(&be->eps[0].hc->active_conns), 0);
    cr_assert_eq(atomic_load(&be->eps[0].hc->requests), 10000);
    put_backend(be);
    arena_free(a);
}

Test(lb, rr_cursor_survives_a_reload_and_stays_exact_with_an_endpoint_out)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/web:80", 4, NULL);
    atomic_store(&be->eps[1].hc->active_state, HC_DOWN);
    unsigned count[4] = { 0 };
    for (int i = 0; i < 3000; i++) {
        struct lb_req req = { 0 };
        const struct snap_endpoint *ep = lb_pick(be, &req, 0);
        count[ep_index(be, ep)]++;
        lb_done(be, ep, LB_OK, 100);
    }
    cr_assert_eq(count[1], 0);
    for (int i = 0; i < 4; i++)
        if (i != 1)
            cr_assert_eq(count[i], 1000, "ep %d got %u: the share stays exact", i, count[i]);
    /* the next snapshot's backend of the same name continues the rotation */
    struct snap_backend *be2 = mk_backend(a, "default/web:80", 4, NULL);
    struct lb_req req = { 0 };
    const struct snap_endpoint *ep = lb_pick(be2, &req, 0);
    cr_assert_eq(ep_index(be2, ep), 0, "cursor 3000 over 3 usable -> the first");
    lb_done(be2, ep, LB_OK, 1);
    put_backend(be2);
    put_backend(be);
    arena_free(a);
}

Test(lb, picks_skip_not_ready_terminating_down_and_tried)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/web:80", 5, NULL);
    be->eps[0].ready = false;
    be->eps[1].terminating = true;
    atomic_store(&be->eps[2].hc->active_state, HC_DOWN);
    for (int algo = 0; algo < 4; algo++) {
        be->algo = algo;
        for (int i = 0; i < 200; i++) {
            struct lb_req req = { 0 };
            req.tried[req.ntried++] = &be->eps[3];
            const struct snap_endpoint *ep = lb_pick(be, &req, 0);
            cr_assert_eq(ep_index(be, ep), 4, "algo %s picked %d", lb_algo_name(algo),
                         ep_index(be, ep));
            lb_done(be, ep, LB_OK, 100);
            req.tried[req.ntried++] = ep;
            cr_assert_null(lb_pick(be, &req, 0), "algo %s", lb_algo_name(algo));
        }
    }
    put_backend(be);
    arena_free(a);
}

/* ---- least_conn ---- */

Test(lb, least_conn_prefers_fewest_in_flight_and_spreads_ties)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/lc:80", 3, NULL);
    be->algo = LB_LEAST_CONN;
    atomic_store(&be->eps[0].hc->active_conns, 10);
    atomic_store(&be->eps[1].hc->active_conns, 5);
    struct lb_req req = { 0 };
    cr_assert_eq(ep_index(be, lb_pick(be, &req, 0)), 2);
    atomic_store(&be->eps[2].hc->active_conns, 0);
    /* never released: picks must level the in-flight counts */
    for (int i = 0; i < 300; i++) {
        struct lb_req r = { 0 };
        cr_assert_not_null(lb_pick(be, &r, 0));
    }
    uint32_t c0 = atomic_load(&be->eps[0].hc->active_conns);
    uint32_t c1 = atomic_load(&be->eps[1].hc->active_conns);
    uint32_t c2 = atomic_load(&be->eps[2].hc->active_conns);
    cr_assert_eq(c0 + c1 + c2, 315);
    cr_assert(c0 >= 104 && c0 <= 106 && c1 >= 104 && c1 <= 106 && c2 >= 104 && c2 <= 106,
              "%u %u %u", c0, c1, c2);
    /* ties are not broken by index: with equal counts each gets picked sometimes */
    unsigned first[3] = { 0 };
    for (int i = 0; i < 300; i++) {
        for (int k = 0; k < 3; k++)
            atomic_store(&be->eps[k].hc->active_conns, 7);
        struct lb_req r = { 0 };
        int k = ep_index(be, lb_pick(be, &r, 0));
        cr_assert(k >= 0);
        first[k]++;
    }
    cr_assert(first[0] > 50 && first[1] > 50 && first[2] > 50, "%u %u %u", first[0], first[1],
              first[2]);
    put_backend(be);
    arena_free(a);
}

/* ---- ewma ---- */

Test(lb, ewma_sends_most_traffic_away_from_a_10x_slower_endpoint)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/ewma:80", 3, NULL);
    be->algo = LB_EWMA;
    unsigned count[3] = { 0 };
    for (int i = 0; i < 10000; i++) {
        struct lb_req req = { 0 };
        const struct snap_endpoint *ep = lb_pick(be, &req, 0);
        int k = ep_index(be, ep);
        count[k]++;
        lb_done(be, ep, LB_OK, k == 2 ? 20000 : 2000);
    }
    cr_log_info("ewma picks (slow = #2): %u %u %u", count[0], count[1], count[2]);
    cr_assert(count[2] < 500, "slow endpoint got %u of 10000", count[2]);
    cr_assert(count[0] > 3000 && count[1] > 3000);
    put_backend(be);
    arena_free(a);
}

Test(lb, ewma_tries_an_endpoint_without_samples_and_penalises_in_flight)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/ewma:80", 2, NULL);
    be->algo = LB_EWMA;
    hc_ewma_update(be->eps[0].hc, 500, hc_now_ms());
    struct lb_req req = { 0 };
    const struct snap_endpoint *ep = lb_pick(be, &req, 0);
    cr_assert_eq(ep_index(be, ep), 1, "unknown latency is optimistic");
    /* a pile of in-flight requests on #1 outweighs its missing sample */
    atomic_store(&be->eps[1].hc->active_conns, 1000);
    struct lb_req r2 = { 0 };
    cr_assert_eq(ep_index(be, lb_pick(be, &r2, 0)), 0);
    put_backend(be);
    arena_free(a);
}

Test(lb, ewma_follows_a_slowdown_lets_a_spike_fade_and_decays_when_idle)
{
    struct hc_ep *ep = hc_ep_get("10.9.9.9:80");
    hc_ewma_update(ep, 1000, 1000);
    cr_assert_eq(hc_ewma_get(ep, 1000), 1000, "the first sample is the average");
    /* a steady 1 ms endpoint at a high rate (same millisecond: the weight floor applies) */
    for (int i = 0; i < 100; i++)
        hc_ewma_update(ep, 1000, 1000);
    hc_ewma_update(ep, 50000, 1000); /* one 50 ms spike */
    uint64_t v = hc_ewma_get(ep, 1000);
    cr_assert(v > 1000 && v < 1000 + 49000 / 10, "one spike moves it a little: %llu",
              (unsigned long long)v);
    for (int i = 0; i < 30; i++)
        hc_ewma_update(ep, 1000, 1000);
    v = hc_ewma_get(ep, 1000);
    cr_assert(v < 1500, "and fades within a few dozen samples: %llu", (unsigned long long)v);
    /* a real slowdown to 9 ms shows within ~2 x HC_EWMA_MIN_N samples */
    for (int i = 0; i < 2 * HC_EWMA_MIN_N; i++)
        hc_ewma_update(ep, 9000, 1000);
    v = hc_ewma_get(ep, 1000);
    cr_assert(v > 7000, "slowdown seen: %llu", (unsigned long long)v);
    /* sparse traffic: one tau between samples blends 1 - 1/e of the new one */
    hc_ewma_update(ep, 1000, 1000 + HC_EWMA_TAU_MS);
    uint64_t w = hc_ewma_get(ep, 1000 + HC_EWMA_TAU_MS);
    cr_assert(w < v * 0.5, "time decay between sparse samples: %llu", (unsigned long long)w);
    cr_assert(hc_ewma_get(ep, 1000 + 5 * HC_EWMA_TAU_MS) < w / 10, "idle decay toward 0");
    hc_ep_put(ep);
}

/* ---- consistent hashing ---- */

static int hash_pick(const struct snap_backend *be, const char *key, const char **addr)
{
    struct hdrs h = { .name = "x-user", .value = key };
    struct lb_req req = { .get_header = get_hdr, .ctx = &h };
    const struct snap_endpoint *ep = lb_pick(be, &req, 0);
    if (ep) {
        *addr = ep->addr;
        lb_done(be, ep, LB_OK, 100);
    }
    return ep_index(be, ep);
}

Test(lb, hash_removing_1_of_10_moves_about_a_tenth_of_keys)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be10 = mk_backend(a, "default/h:80", 10, NULL);
    be10->algo = LB_HASH;
    be10->hash_by = LB_HASH_HEADER;
    be10->hash_key = "X-User";
    be10->ring = lb_ring_build(a, be10);
    cr_assert_eq(lb_ring_points(be10->ring), 10 * 160);

    /* the same service after endpoint #3 went away, listed in another order */
    const char *addrs9[9];
    for (int i = 0, k = 0; i < 10; i++)
        if (i != 3)
            addrs9[8 - k++] = be10->eps[i].addr;
    struct snap_backend *be9 = mk_backend(a, "default/h:80", 9, addrs9);
    be9->algo = LB_HASH;
    be9->hash_by = LB_HASH_HEADER;
    be9->hash_key = "X-User";
    be9->ring = lb_ring_build(a, be9);

    enum { NKEYS = 100000 };
    unsigned moved = 0, owned_by_removed = 0, per_ep[10] = { 0 };
    for (int i = 0; i < NKEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "user-%d", i);
        const char *a10 = NULL, *a9 = NULL;
        int k10 = hash_pick(be10, key, &a10);
        hash_pick(be9, key, &a9);
        per_ep[k10]++;
        if (k10 == 3)
            owned_by_removed++;
        if (strcmp(a10, a9) != 0) {
            moved++;
            cr_assert_eq(k10, 3, "only keys of the removed endpoint may move");
        }
    }
    double share = (double)moved / NKEYS;
    unsigned mn = NKEYS, mx = 0;
    for (int i = 0; i < 10; i++) {
        mn = per_ep[i] < mn ? per_ep[i] : mn;
        mx = per_ep[i] > mx ? per_ep[i] : mx;
    }
    cr_log_info("hash: removing 1 of 10 moved %.2f%% of %d keys; per-endpoint load %u..%u",
                share * 100, NKEYS, mn, mx);
    cr_assert_eq(moved, owned_by_removed);
    cr_assert(share <= 0.15, "moved %.3f", share);
    cr_assert(share >= 0.05, "moved %.3f: suspiciously few", share);
    cr_assert(mx < (NKEYS / 10) * 3 / 2 && mn > (NKEYS / 10) / 2, "balance %u..%u", mn, mx);
    put_backend(be10);
    put_backend(be9);
    arena_free(a);
}

Test(lb, hash_rings_agree_across_replicas_and_orders_and_without_a_ring)
{
    struct arena *a = arena_new(0);
    struct snap_backend *x = mk_backend(a, "default/h:80", 7, NULL);
    const char *rev[7];
    for (int i = 0; i < 7; i++)
        rev[i] = x->eps[6 - i].addr;
    struct snap_backend *y = mk_backend(a, "default/h:80", 7, rev);
    x->algo = y->algo = LB_HASH;
    x->hash_by = y->hash_by = LB_HASH_PATH;
    x->ring = lb_ring_build(a, x);
    y->ring = lb_ring_build(a, y);
    for (int i = 0; i < 2000; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/item/%d", i);
        struct lb_req r1 = { .path = str_cstr(path) }, r2 = { .path = str_cstr(path) };
        const struct snap_endpoint *e1 = lb_pick(x, &r1, 0), *e2 = lb_pick(y, &r2, 0);
        cr_assert_str_eq(e1->addr, e2->addr);
        lb_done(x, e1, LB_OK, 1);
        lb_done(y, e2, LB_OK, 1);
        struct lb_req r3 = { .path = str_cstr(path) };
        const struct snap_endpoint *e3 = lb_pick(x, &r3, 0);
        cr_assert_eq(e3, e1, "same key, same endpoint");
        lb_done(x, e3, LB_OK, 1);
    }
    /* rendezvous fallback (no ring) also agrees across orders */
    x->ring = NULL;
    y->ring = NULL;
    for (int i = 0; i < 500; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/item/%d", i);
        struct lb_req r1 = { .path = str_cstr(path) }, r2 = { .path = str_cstr(path) };
        const struct snap_endpoint *e1 = lb_pick(x, &r1, 0), *e2 = lb_pick(y, &r2, 0);
        cr_assert_str_eq(e1->addr, e2->addr);
        lb_done(x, e1, LB_OK, 1);
        lb_done(y, e2, LB_OK, 1);
    }
    /* the hash itself is pinned: a change would split replicas running different builds */
    cr_assert_eq(lb_hash64("10.0.0.1:8080", 13), lb_hash64("10.0.0.1:8080", 13));
    char cv[17];
    lb_cookie_value("10.0.0.1:8080", cv);
    cr_assert_eq(strlen(cv), 16);
    put_backend(x);
    put_backend(y);
    arena_free(a);
}

Test(lb, hash_falls_to_the_next_endpoint_on_the_ring_and_back)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/h:80", 5, NULL);
    be->algo = LB_HASH;
    be->hash_by = LB_HASH_COOKIE;
    be->hash_key = "sid";
    be->ring = lb_ring_build(a, be);
    struct hdrs h = { .name = "Cookie", .value = "a=1; sid=abc; b=2" };
    struct lb_req req = { .get_header = get_hdr, .ctx = &h };
    const struct snap_endpoint *home = lb_pick(be, &req, 0);
    lb_done(be, home, LB_OK, 1);
    atomic_store(&home->hc->active_state, HC_DOWN);
    struct lb_req r2 = { .get_header = get_hdr, .ctx = &h };
    const struct snap_endpoint *alt = lb_pick(be, &r2, 0);
    cr_assert_not_null(alt);
    cr_assert_neq(alt, home);
    lb_done(be, alt, LB_OK, 1);
    struct lb_req r3 = { .get_header = get_hdr, .ctx = &h };
    cr_assert_eq(lb_pick(be, &r3, 0), alt, "the fallback is stable too");
    atomic_store(&home->hc->active_state, HC_UP);
    struct lb_req r4 = { .get_header = get_hdr, .ctx = &h };
    cr_assert_eq(lb_pick(be, &r4, 0), home, "keys return when the endpoint does");
    put_backend(be);
    arena_free(a);
}

Test(lb, hash_without_its_key_hashes_the_client_ip)
{
    struct arena *a = arena_new(0);
    struct snap_backend *byhdr = mk_backend(a, "default/h:80", 8, NULL);
    struct snap_backend *byip = mk_backend(a, "default/h:80", 8, NULL);
    byhdr->algo = byip->algo = LB_HASH;
    byhdr->hash_by = LB_HASH_HEADER;
    byhdr->hash_key = "X-User";
    byip->hash_by = LB_HASH_REMOTE_ADDR;
    byhdr->ring = lb_ring_build(a, byhdr);
    byip->ring = lb_ring_build(a, byip);
    struct hdrs none = { 0 };
    for (int i = 0; i < 100; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "172.16.%d.%d", i / 50, i % 50 + 1);
        struct sockaddr_in c = mk_client(ip, (uint16_t)(1000 + i));
        struct lb_req r1 = { .client = (struct sockaddr *)&c, .get_header = get_hdr, .ctx = &none };
        struct lb_req r2 = { .client = (struct sockaddr *)&c };
        const struct snap_endpoint *e1 = lb_pick(byhdr, &r1, 0), *e2 = lb_pick(byip, &r2, 0);
        cr_assert_str_eq(e1->addr, e2->addr);
        lb_done(byhdr, e1, LB_OK, 1);
        lb_done(byip, e2, LB_OK, 1);
    }
    put_backend(byhdr);
    put_backend(byip);
    arena_free(a);
}

/* ---- session affinity ---- */

struct aff_arg {
    const struct snap_backend *be;
    const struct snap_endpoint *got[50];
};

static void *aff_thread(void *p)
{
    struct aff_arg *arg = p;
    for (int i = 0; i < 50; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "192.168.7.%d", i + 1);
        struct sockaddr_in c = mk_client(ip, (uint16_t)(40000 + i * 7 + (int)(uintptr_t)p % 13));
        struct lb_req req = { .client = (struct sockaddr *)&c };
        arg->got[i] = lb_pick(arg->be, &req, 0);
        lb_done(arg->be, arg->got[i], LB_OK, 10);
    }
    return NULL;
}

Test(lb, client_ip_affinity_agrees_across_threads_ports_and_algorithms)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/sticky:80", 6, NULL);
    be->affinity = LB_AFFINITY_CLIENT_IP;
    be->algo = LB_ROUND_ROBIN; /* affinity wins over the algorithm */
    be->ring = lb_ring_build(a, be);
    struct aff_arg args[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        args[t].be = be;
        pthread_create(&th[t], NULL, aff_thread, &args[t]);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    unsigned distinct = 0;
    bool seen[6] = { false };
    for (int i = 0; i < 50; i++) {
        for (int t = 1; t < 4; t++)
            cr_assert_eq(args[t].got[i], args[0].got[i], "client %d differs across threads", i);
        int k = ep_index(be, args[0].got[i]);
        distinct += !seen[k];
        seen[k] = true;
    }
    cr_assert(distinct >= 4, "50 clients should spread, got %u endpoints", distinct);
    /* an IPv4-mapped IPv6 client is the same client */
    struct sockaddr_in6 c6;
    memset(&c6, 0, sizeof(c6));
    c6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:192.168.7.1", &c6.sin6_addr);
    struct lb_req r6 = { .client = (struct sockaddr *)&c6 };
    cr_assert_eq(lb_pick(be, &r6, 0), args[0].got[0]);
    lb_done(be, args[0].got[0], LB_OK, 1);
    /* the chosen endpoint ejected: next on the ring, the same for everyone */
    struct hc_ep *h0 = args[0].got[0]->hc;
    atomic_store(&h0->ejected_until_ms, hc_now_ms() + 60000);
    struct sockaddr_in c = mk_client("192.168.7.1", 1);
    struct lb_req r1 = { .client = (struct sockaddr *)&c }, r2 = { .client = (struct sockaddr *)&c };
    const struct snap_endpoint *f1 = lb_pick(be, &r1, 0), *f2 = lb_pick(be, &r2, 0);
    cr_assert_neq(f1, args[0].got[0]);
    cr_assert_eq(f1, f2);
    put_backend(be);
    arena_free(a);
}

Test(lb, cookie_affinity_sets_then_follows_the_cookie)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/cookie:80", 4, NULL);
    be->affinity = LB_AFFINITY_COOKIE;
    be->affinity_cookie = "route";
    struct hdrs none = { 0 };
    struct lb_req r1 = { .get_header = get_hdr, .ctx = &none };
    const struct snap_endpoint *ep = lb_pick(be, &r1, 0);
    cr_assert(r1.set_cookie);
    char want[17];
    lb_cookie_value(ep->addr, want);
    cr_assert_str_eq(r1.cookie_value, want);
    lb_done(be, ep, LB_OK, 1);

    char cookie[64];
    snprintf(cookie, sizeof(cookie), "theme=dark; route=%s", r1.cookie_value);
    struct hdrs h = { .name = "Cookie", .value = cookie };
    for (int i = 0; i < 20; i++) {
        struct lb_req r = { .get_header = get_hdr, .ctx = &h };
        cr_assert_eq(lb_pick(be, &r, 0), ep, "round robin must not override the cookie");
        cr_assert_not(r.set_cookie);
        lb_done(be, ep, LB_OK, 1);
    }
    /* the named endpoint is gone from health: pick another and re-set the cookie */
    atomic_store(&ep->hc->active_state, HC_DOWN);
    struct lb_req r = { .get_header = get_hdr, .ctx = &h };
    const struct snap_endpoint *ep2 = lb_pick(be, &r, 0);
    cr_assert_neq(ep2, ep);
    cr_assert(r.set_cookie);
    lb_cookie_value(ep2->addr, want);
    cr_assert_str_eq(r.cookie_value, want);
    put_backend(be);
    arena_free(a);
}

/* ---- panic mode ---- */

Test(lb, panic_mode_fails_open_below_the_threshold)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/panic:80", 4, NULL);
    for (int i = 0; i < 3; i++)
        atomic_store(&be->eps[i].hc->active_state, HC_DOWN);
    be->eps[3].ready = false; /* 3 ready endpoints, 0 healthy */
    struct lb_req r = { 0 };
    cr_assert_null(lb_pick(be, &r, 0), "no panic threshold: none usable => NULL");
    unsigned count[4] = { 0 };
    for (int i = 0; i < 300; i++) {
        struct lb_req q = { 0 };
        const struct snap_endpoint *ep = lb_pick(be, &q, 50);
        cr_assert_not_null(ep);
        cr_assert(q.panic);
        count[ep_index(be, ep)]++;
        lb_done(be, ep, LB_OK, 1);
    }
    cr_assert_eq(count[3], 0, "panic mode still needs ready endpoints");
    cr_assert(count[0] == 100 && count[1] == 100 && count[2] == 100);
    /* 1 of 3 healthy = 33%: under a 50% threshold panic, over a 30% one not */
    atomic_store(&be->eps[0].hc->active_state, HC_UP);
    struct lb_req q1 = { 0 }, q2 = { 0 };
    lb_done(be, lb_pick(be, &q1, 50), LB_OK, 1);
    cr_assert(q1.panic);
    for (int i = 0; i < 10; i++) {
        const struct snap_endpoint *ep = lb_pick(be, &q2, 30);
        cr_assert_not(q2.panic);
        cr_assert_eq(ep_index(be, ep), 0);
        lb_done(be, ep, LB_OK, 1);
    }
    put_backend(be);
    arena_free(a);
}

/* ---- passive health through lb_done ---- */

Test(lb, consecutive_failures_eject_and_max_percent_holds)
{
    struct snap_outlier_conf oc = { 3, 1000, 30000, 50 };
    hc_set_outlier(&oc);
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/out:80", 4, NULL);
    /* two failures and a success: the streak resets */
    for (int i = 0; i < 2; i++)
        lb_done(be, &be->eps[0], LB_CONNECT_FAIL, 0);
    lb_done(be, &be->eps[0], LB_OK, 10);
    lb_done(be, &be->eps[0], LB_HTTP_5XX, 10);
    cr_assert(hc_ep_is_usable(be->eps[0].hc, hc_now_ms()));
    /* eject #0 and #1 (2 of 4 = 50%), #2 would be 75% */
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < 3; i++)
            lb_done(be, &be->eps[k], i % 2 ? LB_RESET : LB_TIMEOUT, 1000);
    uint64_t now = hc_now_ms();
    cr_assert(hc_ep_is_ejected(be->eps[0].hc, now));
    cr_assert(hc_ep_is_ejected(be->eps[1].hc, now));
    cr_assert_not(hc_ep_is_ejected(be->eps[2].hc, now), "max_ejection_pct 50 of 4 is 2");
    cr_assert_str_eq(hc_state_name(be->eps[0].hc, now), "ejected");
    uint64_t until = atomic_load(&be->eps[0].hc->ejected_until_ms);
    cr_assert(until >= now + 900 && until <= now + 1000, "first ejection lasts 1 s");
    for (int i = 0; i < 100; i++) {
        struct lb_req r = { 0 };
        const struct snap_endpoint *ep = lb_pick(be, &r, 0);
        cr_assert(ep_index(be, ep) >= 2);
        lb_done(be, ep, LB_OK, 10);
    }
    struct hc_ep_view v;
    hc_ep_snapshot(be->eps[0].hc, now, &v);
    cr_assert(v.ejected && v.ejections == 1 && v.failures == 6 && v.requests == 7, "%u %llu %llu", v.ejections, (unsigned long long)v.failures, (unsigned long long)v.requests);
    put_backend(be);
    arena_free(a);
}

/* ---- retry budget ---- */

Test(lb, retry_budget_floor_of_3_and_share_of_live_requests)
{
    cr_assert(lb_retry_begin(20));
    cr_assert(lb_retry_begin(20));
    cr_assert(lb_retry_begin(20));
    cr_assert_not(lb_retry_begin(20), "3 retries in flight with no live requests is the floor");
    lb_retry_end();
    cr_assert(lb_retry_begin(20));
    for (int i = 0; i < 3; i++)
        lb_retry_end();
    for (int i = 0; i < 100; i++)
        lb_request_begin();
    int ok = 0;
    while (ok < 1000 && lb_retry_begin(20))
        ok++;
    cr_assert_eq(ok, 20, "20%% of 100 live requests");
    uint64_t lr, lt;
    lb_budget_stats(&lr, &lt);
    cr_assert(lr == 100 && lt == 20);
    for (int i = 0; i < 20; i++)
        lb_retry_end();
    for (int i = 0; i < 100; i++)
        lb_request_end();
    lb_retry_end(); /* extra end never underflows */
    lb_budget_stats(&lr, &lt);
    cr_assert(lr == 0 && lt == 0);
}

Test(lb, algo_names_parse_both_spellings)
{
    cr_assert_eq(lb_algo_parse("round_robin"), LB_ROUND_ROBIN);
    cr_assert_eq(lb_algo_parse("ewma"), LB_EWMA);
    cr_assert_eq(lb_algo_parse("least_conn"), LB_LEAST_CONN);
    cr_assert_eq(lb_algo_parse("hash"), LB_HASH);
    cr_assert_eq(lb_algo_parse("bogus"), -1);
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(lb_ops_get(i)->name, lb_algo_name(i));
}

Test(lb, empty_backend_gives_null)
{
    struct arena *a = arena_new(0);
    struct snap_backend *be = mk_backend(a, "default/none:80", 0, NULL);
    struct lb_req r = { 0 };
    cr_assert_null(lb_pick(be, &r, 50));
    cr_assert_null(lb_ring_build(a, be));
    lb_done(be, NULL, LB_OK, 0);
    arena_free(a);
}
