/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "ingressd/mem.h"

Test(mem, freed_block_is_reused_for_its_class)
{
    void *a = mem_malloc(4096);
    cr_assert_not_null(a);
    memset(a, 0xab, 4096);
    mem_free(a);
    void *b = mem_malloc(4096); /* the same class: the same block */
    cr_assert_eq(a, b);
    void *c = mem_malloc(8192); /* the next class: a new block */
    cr_assert_neq(b, c);
    mem_free(b);
    mem_free(c);
}

Test(mem, blocks_are_16_byte_aligned_and_writable)
{
    size_t sizes[] = { 0, 1, 63, 64, 65, 1000, 8192, 131072, 131073, 1 << 20 };
    void *p[sizeof(sizes) / sizeof(sizes[0])];
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        p[i] = mem_malloc(sizes[i]);
        cr_assert_not_null(p[i]);
        cr_assert_eq((uintptr_t)p[i] % 16, 0);
        memset(p[i], (int)i, sizes[i]);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        mem_free(p[i]);
}

Test(mem, realloc_keeps_the_bytes)
{
    char *p = mem_realloc(NULL, 10);
    memcpy(p, "0123456789", 10);
    p = mem_realloc(p, 50);         /* no chain size: plain realloc */
    cr_assert_eq(memcmp(p, "0123456789", 10), 0);
    p = mem_realloc(p, 1024);       /* a chain size */
    cr_assert_eq(memcmp(p, "0123456789", 10), 0);
    p = mem_realloc(p, 300000);     /* large */
    cr_assert_eq(memcmp(p, "0123456789", 10), 0);
    p = mem_realloc(p, 5);          /* shrink into a class */
    cr_assert_eq(memcmp(p, "01234", 5), 0);
    mem_free(p);
    mem_free(NULL);
}

Test(mem, cache_is_bounded)
{
    /* 1,000 frees of 8 KiB blocks: MEM_CLASS_BYTES (K blocks) stay cached, the rest go back to malloc */
    enum { N = 1000, K = MEM_CLASS_BYTES / 8192 };
    _Static_assert(K < N, "the test frees more than the cache keeps");
    static void *p[N], *q[N];
    for (int i = 0; i < N; i++)
        p[i] = mem_malloc(8192);
    for (int i = 0; i < N; i++)
        mem_free(p[i]);
    int from_cache = 0;
    for (int i = 0; i < N; i++) {
        q[i] = mem_malloc(8192);
        for (int j = 0; j < K; j++) /* the cache keeps the first K freed */
            if (q[i] == p[j])
                from_cache++;
    }
    /* glibc may hand back other freed blocks too; ASan's quarantine never does */
    cr_assert_geq(from_cache, K);
    for (int i = 0; i < K; i++)
        cr_assert_eq(q[i], p[K - 1 - i], "the cache pops the most recently freed first");
    for (int i = 0; i < N; i++)
        mem_free(q[i]);
}

static void *thread_frees(void *arg)
{
    mem_free(arg); /* cached on this thread, released when it exits */
    return NULL;
}

Test(mem, another_thread_may_free)
{
    void *p = mem_malloc(2048);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, thread_frees, p), 0);
    pthread_join(t, NULL);
}
